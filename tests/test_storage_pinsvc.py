"""The Pinning Service API client against scripted services on loopback: what the specification
says is read as it says, and every answer outside it (garbage, floods, lies, refusals, a dead
port) ends in one PinServiceError line. The real service (IPFS Cluster's pinsvcapi) is exercised
by tests/test_cli_pinning.py."""

from __future__ import annotations

import json

import pytest

from registry.config import FetchLimits
from registry.errors import ServiceError
from registry.storage import pinsvc as pinsvc_module
from registry.storage.errors import PinServiceAuthError, PinServiceError
from registry.storage.pinsvc import MAX_CIDS_PER_QUERY, PinService
from registry.storage.unixfs import add_file

from tests.kubo_fixtures import free_port

CIDS = [str(add_file(f"pinned {i}".encode())) for i in range(12)]
TOKEN = "s3cret-token-value"


def status(requestid: str, cid: str, state: str = "queued", **extra) -> dict:
    return {"requestid": requestid, "status": state, "created": "2026-11-30T03:00:00Z",
            "pin": {"cid": cid, "name": extra.pop("name", None)}, "delegates": extra.pop("delegates", []),
            "info": extra.pop("info", {}), **extra}


def answer(value) -> bytes:
    return json.dumps(value).encode()


def service(server, token: str | None = TOKEN, **limits) -> PinService:
    return PinService(server.url, token, name="test", limits=FetchLimits(timeout=5, deadline=10, **limits))


def test_public_names_are_exported():
    for name in pinsvc_module.__all__:
        assert hasattr(pinsvc_module, name)


def test_add_posts_the_cid_with_origins_and_the_bearer_token(hostile_server):
    hostile_server.route("POST", "/pins", answer(status("r1", CIDS[0], delegates=["/ip4/127.0.0.1/tcp/4001/p2p/QmX"])),
                         status=202, headers={"Content-Type": "application/json"})
    got = service(hostile_server).add(CIDS[0], name="layer.0", origins=["/ip4/127.0.0.1/tcp/1/p2p/QmY"])
    assert (got.requestid, got.status, got.cid, got.delegates) == ("r1", "queued", CIDS[0], ("/ip4/127.0.0.1/tcp/4001/p2p/QmX",))
    method, path, _, headers = hostile_server.requests[-1]
    assert (method, path) == ("POST", "/pins")
    assert headers["Authorization"] == f"Bearer {TOKEN}"


def test_find_asks_for_every_status_in_groups_of_ten_cids(hostile_server):
    def results(query):
        asked = query["cid"][0].split(",")
        return answer({"count": len(asked), "results": [status(f"r-{c[-6:]}", c, "pinned") for c in asked]})

    hostile_server.route("GET", "/pins", results)
    found = service(hostile_server).find(CIDS)
    assert [s.cid for s in found] == CIDS
    queries = [q for m, p, q, _ in hostile_server.requests if (m, p) == ("GET", "/pins")]
    assert [len(q["cid"][0].split(",")) for q in queries] == [MAX_CIDS_PER_QUERY, len(CIDS) - MAX_CIDS_PER_QUERY]
    assert all(q["status"] == ["queued,pinning,pinned,failed"] for q in queries)


def test_find_drops_pins_of_cids_that_were_not_asked_for(hostile_server):
    hostile_server.route("GET", "/pins", answer({"count": 2, "results": [status("a", CIDS[0], "pinned"),
                                                                          status("b", CIDS[5], "pinned")]}))
    assert [s.cid for s in service(hostile_server).find([CIDS[0]])] == [CIDS[0]]


def test_get_and_remove_address_one_request(hostile_server):
    hostile_server.route("GET", "/pins/r7", answer(status("r7", CIDS[1], "pinning")))
    hostile_server.route("DELETE", "/pins/r7", b"", status=202)
    pins = service(hostile_server)
    assert pins.get("r7").status == "pinning"
    pins.remove("r7")
    assert hostile_server.requests[-1][:2] == ("DELETE", "/pins/r7")


def test_a_status_for_another_request_is_refused(hostile_server):
    hostile_server.route("GET", "/pins/r7", answer(status("r8", CIDS[1], "pinned")))
    with pytest.raises(PinServiceError, match="not the Pinning Service API"):
        service(hostile_server).get("r7")


def test_a_refused_token_is_one_line_naming_the_fix_and_never_the_token(hostile_server):
    hostile_server.route("GET", "/pins", answer({"error": {"reason": "UNAUTHORIZED", "details": "bad token"}}), status=401)
    with pytest.raises(PinServiceAuthError) as caught:
        service(hostile_server).find([CIDS[0]])
    message = str(caught.value)
    assert "UNAUTHORIZED: bad token" in message and "elements pin-service add test" in message
    assert TOKEN not in message and "\n" not in message
    assert isinstance(caught.value, ServiceError)


def test_errors_of_the_specification_are_reported_with_their_reason(hostile_server):
    hostile_server.route("POST", "/pins", answer({"error": {"reason": "INSUFFICIENT_FUNDS"}}), status=402)
    with pytest.raises(PinServiceError, match="paid plan.*INSUFFICIENT_FUNDS"):
        service(hostile_server).add(CIDS[0])
    hostile_server.route("POST", "/pins", b"<html>busy</html>", status=503)
    with pytest.raises(PinServiceError, match="HTTP 503"):
        service(hostile_server).add(CIDS[0])


def test_a_dead_port_is_one_line_saying_the_service_is_unreachable():
    with pytest.raises(PinServiceError, match="is unreachable .*pin-service list") as caught:
        PinService(f"http://127.0.0.1:{free_port()}", TOKEN, name="down").find([CIDS[0]])
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("body", [
    b"not json",
    answer([1, 2, 3]),
    answer({"results": "many"}),
    answer({"count": True, "results": []}),
    answer({"count": 1, "results": [{"requestid": "x", "status": "pinned", "pin": {"cid": "not-a-cid"}}]}),
    answer({"count": 1, "results": [{"requestid": "", "status": "pinned", "pin": {"cid": CIDS[0]}}]}),
    answer({"count": 1, "results": [{"requestid": "x", "status": "pinned! or not", "pin": {"cid": CIDS[0]}}]}),
    answer({"count": 1, "results": [{"requestid": "x", "status": "pinned", "pin": {"cid": CIDS[0]}, "delegates": [7]}]}),
    b"[" * 100_000 + b"]" * 100_000,
], ids=["text", "list", "results-not-list", "count-bool", "bad-cid", "empty-id", "odd-status", "bad-delegate", "deep"])
def test_answers_outside_the_specification_are_refused_in_one_line(hostile_server, body):
    hostile_server.route("GET", "/pins", body)
    with pytest.raises(PinServiceError) as caught:
        service(hostile_server).find([CIDS[0]])
    assert "\n" not in str(caught.value)


def test_a_flood_is_cut_at_the_answer_cap(hostile_server):
    hostile_server.route("GET", "/pins", b"x" * (1 << 20), length=1 << 30)
    with pytest.raises(PinServiceError, match="bytes"):
        service(hostile_server).find([CIDS[0]])


def test_a_status_outside_the_specification_in_plain_words_counts_as_unknown(hostile_server):
    # IPFS Cluster answers "undefined" before any peer took the pin up.
    hostile_server.route("GET", "/pins/r1", answer(status("r1", CIDS[0], "undefined")))
    assert service(hostile_server).get("r1").status == "unknown"


def test_a_token_with_a_line_break_is_refused_before_any_request(hostile_server):
    with pytest.raises(PinServiceAuthError, match="line break"):
        PinService(hostile_server.url, "abc\r\nX-Evil: 1")
    assert hostile_server.requests == []


@pytest.mark.parametrize("url", ["ftp://host/psa", "no-scheme", "http://", "http://a b", "http://[::1", "https://x:abc", "http://127.0.0.1:99999"])
def test_urls_that_are_not_http_endpoints_are_refused(url):
    with pytest.raises(PinServiceError, match="not a pinning service URL"):
        PinService(url)


def test_the_url_may_be_given_with_or_without_pins():
    assert PinService("https://api.example.org/psa/pins/").url == "https://api.example.org/psa"
