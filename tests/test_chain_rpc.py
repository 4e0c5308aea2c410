"""JSON-RPC held to limits: hostile servers on loopback that stall, drip, flood, bomb or nest, and a
real anvil behind a client-side log cap."""

from __future__ import annotations

import gzip
import json
import os
import sys

import pytest

from registry.chain import Kind, RecordInput, Registry, connect
from registry.chain.devnet import Anvil, free_port
from registry.chain.errors import RpcResponseError, RpcUnavailableError
from registry.chain.rpc import BoundedHTTPProvider, RpcLimits, public_url
from tests.rpc_support import RawServer, http_head

CID = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"


def answer(conn, request, body: bytes, **headers) -> None:
    conn.sendall(http_head(Content_Type="application/json", Content_Length=len(body), **headers) + body)


def test_a_node_that_never_answers_is_abandoned_at_the_deadline():
    def stall(conn, request, stopping):
        stopping.wait()

    with RawServer(stall) as server:
        with pytest.raises(RpcUnavailableError) as info:
            connect(server.url, timeout=1)
    assert server.url in str(info.value) and "within 1s" in str(info.value)


def test_a_node_that_drips_its_answer_is_abandoned_at_the_deadline():
    def drip(conn, request, stopping):
        conn.sendall(http_head(Content_Type="application/json", Content_Length=1000) + b"{")
        while not stopping.wait(0.05):
            conn.sendall(b" ")  # each byte well inside the socket timeout: only the deadline stops it

    with RawServer(drip) as server:
        with pytest.raises(RpcUnavailableError) as info:
            connect(server.url, timeout=1)
    assert "did not finish its answer to eth_chainId within 1s" in str(info.value)


def test_an_answer_announced_over_the_byte_budget_is_refused_unread():
    def huge(conn, request, stopping):
        conn.sendall(http_head(Content_Type="application/json", Content_Length=10**12))
        stopping.wait()

    with RawServer(huge) as server:
        with pytest.raises(RpcResponseError) as info:
            connect(server.url)
    assert "1,000,000,000,000-byte answer to eth_chainId" in str(info.value) and server.url in str(info.value)


def test_an_endless_answer_is_cut_at_the_byte_budget():
    def flood(conn, request, stopping):
        conn.sendall(http_head(Content_Type="application/json", Connection="close") + b'{"jsonrpc":"2.0","id":1,"result":"0x' )
        while not stopping.is_set():
            conn.sendall(b"0" * 65536)

    limits = RpcLimits(max_bytes=2**20)
    with RawServer(flood) as server:
        with pytest.raises(RpcResponseError) as info:
            connect(server.url, limits=limits)
    assert f"more than {2**20:,} bytes" in str(info.value)


def test_a_compressed_bomb_is_cut_at_the_byte_budget_without_inflating_it():
    bomb = gzip.compress(b'{"jsonrpc":"2.0","id":1,"result":"0x' + b"0" * (64 * 2**20) + b'"}', 9)
    assert len(bomb) < 2**20

    def send(conn, request, stopping):
        answer(conn, request, bomb, Content_Encoding="gzip")

    with RawServer(send) as server:
        with pytest.raises(RpcResponseError) as info:
            connect(server.url, limits=RpcLimits(max_bytes=2**20))
    assert f"more than {2**20:,} bytes" in str(info.value)


def test_a_small_compressed_answer_is_read():
    def send(conn, request, stopping):
        answer(conn, request, gzip.compress(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "0x7a69"}).encode()),
               Content_Encoding="gzip")

    with RawServer(send) as server:
        assert connect(server.url).chain_id == 31337


def test_json_nested_deeper_than_the_limit_is_refused_before_parsing():
    # py-evm (imported with the in-process chain) raises the recursion limit so far that json.loads
    # would overflow the C stack on this instead of raising. The test sets that limit itself: which
    # test of its worker imported py-evm first, and what others (Hypothesis) did to the limit since,
    # is not this test's business.
    deep = b"[" * 200_000 + b"]" * 200_000

    def send(conn, request, stopping):
        answer(conn, request, b'{"jsonrpc":"2.0","id":1,"result":' + deep + b"}")

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(100_000, old))
    try:
        with RawServer(send) as server:
            with pytest.raises(RpcResponseError) as info:
                connect(server.url)
    finally:
        sys.setrecursionlimit(old)
    assert "JSON_DEPTH" in str(info.value) and "200,001" in str(info.value)


def test_an_http_error_page_is_reported_with_its_status():
    def bad_gateway(conn, request, stopping):
        body = b"<html>502 Bad Gateway</html>"
        conn.sendall(http_head("502 Bad Gateway", Content_Type="text/html", Content_Length=len(body)) + body)

    with RawServer(bad_gateway) as server:
        with pytest.raises(RpcUnavailableError) as info:
            connect(server.url)
    assert "HTTP 502" in str(info.value) and server.url in str(info.value)


def test_a_json_rpc_error_under_an_http_error_status_is_handed_to_the_caller():
    def refuse(conn, request, stopping):
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32005, "message": "rate limited"}}).encode()
        conn.sendall(http_head("429 Too Many Requests", Content_Type="application/json", Content_Length=len(body)) + body)

    with RawServer(refuse) as server:
        provider = BoundedHTTPProvider(server.url)
        assert provider.make_request("eth_getLogs", [{}])["error"]["message"] == "rate limited"


@pytest.mark.parametrize("ids", [[1, 1], [1], [1, 2, 3], ["x", 2]], ids=["repeated", "missing", "extra", "not a number"])
def test_a_batch_answer_that_does_not_match_its_calls_is_refused(ids):
    def send(conn, request, stopping):
        first = request[0]["id"]
        shifted = [i + first - 1 if isinstance(i, int) else i for i in ids]
        answer(conn, request, json.dumps([{"jsonrpc": "2.0", "id": i, "result": "0x1"} for i in shifted]).encode())

    with RawServer(send) as server:
        provider = BoundedHTTPProvider(server.url)
        with pytest.raises(RpcResponseError) as info:
            provider.make_batch_request([("eth_blockNumber", []), ("eth_chainId", [])])
    assert "batch" in str(info.value) and server.url in str(info.value)


def test_a_batch_answer_in_another_order_is_matched_by_id():
    def send(conn, request, stopping):
        answers = [{"jsonrpc": "2.0", "id": call["id"], "result": call["method"]} for call in request]
        answer(conn, request, json.dumps(answers[::-1]).encode())

    with RawServer(send) as server:
        provider = BoundedHTTPProvider(server.url)
        got = provider.make_batch_request([("eth_blockNumber", []), ("eth_chainId", [])])
    assert [a["result"] for a in got] == ["eth_blockNumber", "eth_chainId"]


def test_a_password_in_an_endpoint_url_never_appears_in_a_message():
    url = f"http://alice:s3cret@127.0.0.1:{free_port()}/key"
    assert public_url(url) == url.replace("s3cret", "***")
    with pytest.raises(RpcUnavailableError) as info:
        connect(url)
    assert "s3cret" not in str(info.value) and "alice:***@127.0.0.1" in str(info.value)


def test_more_logs_than_the_cap_are_split_like_a_capping_node_and_all_read(anvil_binary, tmp_path):
    with Anvil(binary=anvil_binary, log=tmp_path / "anvil.log") as node:
        chain = node.connect()
        registry = Registry.deploy(chain, chain.dev_accounts[0])
        content = os.urandom(32)
        for account in chain.dev_accounts[:5]:
            registry.with_account(account).publish(RecordInput(content, CID, 2, Kind.ELEMENT))
        capped_chain = connect(node.url, limits=RpcLimits(max_logs=2))
        capped = Registry(capped_chain, registry.address, deploy_block=registry.deploy_block)
        claims = capped.claims(content)
        assert [c.record_id for c in claims] == [c.record_id for c in registry.claims(content)]
        assert [c.publisher for c in claims] == [a.address for a in chain.dev_accounts[:5]]
        # One query could not hold them: the range was split and asked again.
        assert capped_chain.requests_sent > 4


def test_every_request_to_a_node_goes_through_the_bounded_provider(anvil):
    chain = connect(anvil.url, timeout=7)
    assert isinstance(chain.provider, BoundedHTTPProvider) and chain.provider.limits.timeout == 7
    assert chain.block_number() >= 0 and chain.requests_sent == 2  # eth_chainId, eth_blockNumber
