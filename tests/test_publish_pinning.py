"""registry.publish.pinning: the services' configuration (tokens from a named variable or a 0600
file, never shown) and pin_dags against a scripted Pinning Service API on loopback: it asks only
for what the service lacks, follows requests already made, and stops with one line on a
``failed`` pin, a pin left ``queued`` and a wait that runs out. The real service (IPFS Cluster)
is in tests/test_cli_pinning.py."""

from __future__ import annotations

import json
import os
import stat

import pytest

from registry.config import Settings
from registry.errors import ConfigError, InputError
from registry.publish import pinning as pinning_module
from registry.publish.pinning import add_service, dags_of, open_service, pin_dags, remove_service, service_configs
from registry.storage.errors import PinFailedError, PinServiceAuthError, PinServiceError
from registry.storage.pinsvc import PinService
from registry.storage.unixfs import add_file

from tests.pinsvc_support import ScriptedPinService

CIDS = [str(add_file(f"dag {i}".encode())) for i in range(3)]


class FakeTime:
    """A clock the polls move forward (the waits are measured in polls, not in wall time)."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def scripted():
    services = []

    def make(outcome=None, token="t0ken"):
        services.append(ScriptedPinService(outcome, token))
        return services[-1]

    yield make
    for service in services:
        service.close()


def client(server, token="t0ken") -> PinService:
    return PinService(server.url, token, name="scripted")


def test_public_names_are_exported():
    for name in pinning_module.__all__:
        assert hasattr(pinning_module, name)


def test_pins_are_requested_and_followed_until_pinned_with_progress(scripted):
    server, seen, time = scripted(), [], FakeTime()
    report = pin_dags(client(server), CIDS, origins=["/ip4/127.0.0.1/tcp/4001/p2p/QmOrigin"],
                      progress=lambda done, total: seen.append((done, total)), clock=time.clock, sleep=time.sleep)
    assert [p.status for p in report.pins] == ["pinned"] * 3 and report.requested == 3
    assert server.posted() == 3
    assert seen[0] == (0, 3) and seen[-1] == (3, 3)
    assert all(p["pin"]["origins"] == ["/ip4/127.0.0.1/tcp/4001/p2p/QmOrigin"] for p in server.pins.values())


def test_a_second_run_finds_the_requests_and_asks_for_nothing(scripted):
    server, time = scripted(), FakeTime()
    pin_dags(client(server), CIDS, clock=time.clock, sleep=time.sleep)
    again = pin_dags(client(server), CIDS + CIDS[:1], clock=time.clock, sleep=time.sleep)
    assert server.posted() == 3 and again.requested == 0
    assert [p.reused for p in again.pins] == [True] * 3


def test_an_interrupted_run_resumes_the_requests_it_made(scripted):
    server, time = scripted(lambda cid, polls: "queued" if polls < 2 else "pinned"), FakeTime()
    with pytest.raises(PinFailedError, match="queued for over 0.1s"):
        pin_dags(client(server), CIDS[:1], queued_timeout=0.1, clock=time.clock, sleep=time.sleep)
    resumed = pin_dags(client(server), CIDS[:1], clock=time.clock, sleep=time.sleep)
    assert server.posted() == 1 and resumed.pins[0].reused and resumed.pins[0].status == "pinned"


def test_a_pin_stuck_in_queued_stops_with_one_line_naming_the_fix(scripted):
    server, time = scripted(lambda cid, polls: "queued"), FakeTime()
    with pytest.raises(PinFailedError) as caught:
        pin_dags(client(server), CIDS[:2], queued_timeout=30, clock=time.clock, sleep=time.sleep)
    message = str(caught.value)
    assert "kept the pin of" in message and "queued for over 30s" in message and "--queued-timeout" in message
    assert "\n" not in message


def test_a_failed_pin_stops_with_the_services_reason(scripted):
    server, time = scripted(lambda cid, polls: "failed" if cid == CIDS[1] else "pinned"), FakeTime()
    with pytest.raises(PinFailedError, match=f"pin of {CIDS[1]} failed .*could not find the content.*run the command again"):
        pin_dags(client(server), CIDS, clock=time.clock, sleep=time.sleep)


def test_after_a_failure_the_next_run_asks_again(scripted):
    attempts = []

    def outcome(cid, polls):
        attempts.append(cid)
        return "failed" if len(server.pins) == 1 else "pinned"

    server, time = scripted(outcome), FakeTime()
    with pytest.raises(PinFailedError):
        pin_dags(client(server), CIDS[:1], clock=time.clock, sleep=time.sleep)
    report = pin_dags(client(server), CIDS[:1], clock=time.clock, sleep=time.sleep)
    assert server.posted() == 2 and report.pins[0].status == "pinned" and not report.pins[0].reused


def test_a_wait_that_runs_out_says_how_to_resume(scripted):
    server, time = scripted(lambda cid, polls: "pinning"), FakeTime()
    with pytest.raises(PinFailedError, match=r"has not pinned 1 of 1 DAG\(s\) within 20s .*pinning.*run the command again"):
        pin_dags(client(server), CIDS[:1], wait=20, clock=time.clock, sleep=time.sleep)


def test_a_refused_token_is_an_auth_error(scripted):
    server = scripted()
    with pytest.raises(PinServiceAuthError, match="refused the access token"):
        pin_dags(client(server, token="wrong"), CIDS[:1])
    assert server.posted() == 0


def test_a_status_naming_another_cid_is_refused(scripted):
    server, time = scripted(lambda cid, polls: "pinning"), FakeTime()
    original = server._route

    def lying(method, path, query, body):
        code, value = original(method, path, query, body)
        if method == "GET" and path.startswith("/pins/"):
            value = {**value, "pin": {**value["pin"], "cid": CIDS[2]}}
        return code, value

    server._route = lying
    with pytest.raises(PinServiceError, match="not trustworthy"):
        pin_dags(client(server), CIDS[:1], clock=time.clock, sleep=time.sleep)


def test_dags_of_lists_each_published_or_present_claims_dags_once():
    class Claim:
        def __init__(self, pins):
            self.pins = pins

    class Result:
        def __init__(self, status, pins):
            self.status, self.claim = status, Claim(pins)

    class Report:
        def __init__(self, results, dry_run=False):
            self.results, self.dry_run = results, dry_run

    one = Report([Result("published", ("a", "b")), Result("present", ("c", "b"))])
    two = Report([Result("published", ("d",))], dry_run=True)
    assert dags_of(one, two, None) == ["a", "b", "c"]


# -- configuration ------------------------------------------------------------------------------


def test_a_token_from_stdin_is_kept_in_a_file_only_its_owner_reads(tmp_path):
    config = add_service(tmp_path, "svc", "https://pins.example.org/psa/", token="abc.def-ghi")
    path = tmp_path / config.token_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["pin_services"]["svc"] == {"url": "https://pins.example.org/psa", "token_file": "pin-services/svc.token"}
    assert saved["pin_service"] == "svc"
    assert "abc.def-ghi" not in (tmp_path / "config.json").read_text()
    service, _ = open_service(Settings.resolve({"home": str(tmp_path)}, environ={}), "svc")
    assert service._client.headers["Authorization"] == "Bearer abc.def-ghi"


def test_a_token_file_others_can_read_is_refused(tmp_path):
    config = add_service(tmp_path, "svc", "https://pins.example.org", token="abc")
    os.chmod(tmp_path / config.token_file, 0o644)
    with pytest.raises(ConfigError, match="may be read by others .*chmod 600"):
        open_service(Settings.resolve({"home": str(tmp_path)}, environ={}), "svc")


def test_a_token_variable_is_read_at_each_use_and_its_absence_named(tmp_path, monkeypatch):
    add_service(tmp_path, "svc", "https://pins.example.org", token_env="MY_PIN_TOKEN")
    settings = Settings.resolve({"home": str(tmp_path)}, environ={})
    monkeypatch.delenv("MY_PIN_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="variable MY_PIN_TOKEN, which is not set; export MY_PIN_TOKEN=TOKEN"):
        open_service(settings, "svc")
    monkeypatch.setenv("MY_PIN_TOKEN", "from-env")
    service, _ = open_service(settings, "svc")
    assert service._client.headers["Authorization"] == "Bearer from-env"


@pytest.mark.parametrize("variable", ["ELEMENTS_PRIVATE_KEY", "ELEMENTS_ANYTHING", "1ABC", "A-B", "TOKÉN", ""])
def test_elements_own_variables_and_odd_names_cannot_hold_a_token(tmp_path, variable):
    with pytest.raises(ConfigError):
        add_service(tmp_path, "svc", "https://pins.example.org", token_env=variable or " ")


def test_removing_a_service_removes_its_token_and_the_default(tmp_path):
    config = add_service(tmp_path, "svc", "https://pins.example.org", token="abc")
    add_service(tmp_path, "other", "https://other.example.org", token_env="OTHER_TOKEN")
    assert remove_service(tmp_path, "svc") and not remove_service(tmp_path, "svc")
    assert not (tmp_path / config.token_file).exists()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert set(saved["pin_services"]) == {"other"} and "pin_service" not in saved


@pytest.mark.parametrize("name", ["", "-x", "a/b", "x" * 65])
def test_service_names_are_checked(tmp_path, name):
    with pytest.raises(InputError, match="cannot name a pinning service"):
        add_service(tmp_path, name, "https://pins.example.org", token_env="T")


@pytest.mark.parametrize("entry", [
    {"pin_services": []},
    {"pin_services": {"x": {"token_env": "T"}}},
    {"pin_services": {"x": {"url": "https://a", "wait": -1}}},
    {"pin_services": {"x": {"url": "https://a", "token_file": 7}}},
    {"pin_service": 3},
])
def test_a_hand_edited_config_with_wrong_types_is_one_config_error(tmp_path, entry):
    (tmp_path / "config.json").write_text(json.dumps(entry))
    with pytest.raises(ConfigError, match="elements config"):
        Settings.resolve({"home": str(tmp_path)}, environ={})


def test_the_configured_services_are_listed_with_their_limits(tmp_path):
    add_service(tmp_path, "svc", "https://pins.example.org", token_env="T", wait=60, queued_timeout=5)
    configs = service_configs(Settings.resolve({"home": str(tmp_path)}, environ={}).file)
    assert (configs["svc"].wait, configs["svc"].queued_timeout, configs["svc"].token_source) == (60, 5, "variable T")
