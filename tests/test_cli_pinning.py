"""Published means available: ``elements publish-model --pin`` on a real IPFS Cluster (two peers,
each with its own Kubo, replication factor 2, the pinsvcapi endpoint), on anvil, as a user runs it
(subprocesses, real exit codes). Then the publisher's node and the first peer's node stop, and a
fresh ELEMENTS_HOME whose only source is the second peer's gateway assembles and verifies the
model. The failures (service down, token refused, a pin stuck in ``queued``, a ``failed`` pin)
end in the CLI's one-line errors; ``pin-service`` and ``pins`` as a user sees them.
"""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from registry.chain.devnet import Anvil
from registry.chain.registry import Registry
from tests.cli_support import elements, one_line_error
from tests.kubo_fixtures import free_port
from tests.pinsvc_support import ScriptedPinService
from tests.publish_support import MODEL, MODEL_CONTENT_ID, funded_account

pytestmark = pytest.mark.kubo


def published_json(result) -> dict:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def anvil(anvil_binary, tmp_path_factory):
    """An anvil of this module's own, with the registry: `verify` weighs every claim of the real
    model on the chain, and other modules claim it on the session's anvil under other terms (which
    of them ran first depends on the order, and on the xdist worker this module lands on)."""
    with Anvil(binary=anvil_binary, log=tmp_path_factory.mktemp("anvil-pinning") / "anvil.log") as node:
        chain = node.connect()
        Registry.deploy(chain, chain.dev_accounts[0])
        yield node


@pytest.fixture(scope="module")
def world(cluster, anvil, tmp_path_factory):
    """The real model published on anvil with ``--pin cluster`` from a home whose Kubo is the publisher's node."""
    base = tmp_path_factory.mktemp("pinning")
    home = base / "publisher"
    added = elements(home, "pin-service", "add", "cluster", cluster.pinsvc_url, "--token-env", "CLUSTER_TOKEN",
                     "--wait", "600", "--queued-timeout", "300")
    assert added.returncode == 0, added.stderr
    key = "0x" + funded_account(anvil.connect()).key.hex()
    env = {"ELEMENTS_PRIVATE_KEY": key, "CLUSTER_TOKEN": cluster.token()}
    args = ("--rpc-url", anvil.url, "--ipfs-api", cluster.publisher.api_url)
    report = published_json(elements(home, "--json", *args, "publish-model", MODEL, "--license", "Apache-2.0", **env))
    return {"base": base, "home": home, "args": args, "env": env, "report": report}


def test_publish_model_pins_every_dag_on_the_default_service_and_both_peers_hold_them(world, cluster):
    report = world["report"]
    pinning = report["pinning"]
    expected = {cid for record in report["records"] for cid in (record["cid"], record["data_cid"]) if cid}
    expected.add(report["composition"]["cid"])
    assert pinning["service"] == "cluster" and pinning["requested"] == len(expected)
    assert {p["cid"] for p in pinning["pins"]} == expected
    assert all(p["status"] == "pinned" for p in pinning["pins"])
    for cid in expected:
        assert set(cluster.status(cid).values()) == {"pinned"} and len(cluster.status(cid)) == 2


def test_publishing_again_finds_the_pins_and_requests_none(world):
    again = published_json(elements(world["home"], "--json", *world["args"], "publish-model", MODEL,
                                    "--license", "Apache-2.0", "--pin", "cluster", **world["env"]))
    assert again["published"] == 0
    assert again["pinning"]["requested"] == 0
    assert again["pinning"]["reused"] == len(world["report"]["pinning"]["pins"])


def test_pins_shows_every_dag_of_the_publishers_records_pinned(world):
    shown = published_json(elements(world["home"], "--json", *world["args"], "pins", **world["env"]))
    rows = shown["dags"]
    assert {row["cid"] for row in rows} == {p["cid"] for p in world["report"]["pinning"]["pins"]}
    assert {row["cluster"] for row in rows} == {"pinned"}
    human = elements(world["home"], *world["args"], "pins", **world["env"])
    assert human.returncode == 0 and "pinned" in human.stdout and "not pinned" not in human.stdout


def test_publish_delta_pins_the_delta_and_its_composition(world, cluster, tmp_path):
    from safetensors.numpy import load_file, save_file

    tuned = tmp_path / "tuned"
    shutil.copytree(MODEL, tuned)
    tensors = load_file(str(tuned / "model.safetensors"))
    name = "encoder.layer.1.output.dense.bias"
    tensors[name] = (tensors[name] * np.float32(1.01)).astype(np.float32)
    save_file(tensors, str(tuned / "model.safetensors"), metadata={"format": "pt"})
    composition = world["report"]["composition"]["record_id"]
    delta = published_json(elements(world["home"], "--json", *world["args"], "publish-delta", composition, tuned,
                                    "--license", "Apache-2.0", "--pin", "cluster", **world["env"]))
    pins = delta["pinning"]["pins"]
    assert delta["composition"]["cid"] in {p["cid"] for p in pins}
    assert len(pins) == 3 and delta["pinning"]["requested"] == 3  # the delta's data and manifest, the recipe
    for pin in pins:
        assert pin["status"] == "pinned" and set(cluster.status(pin["cid"]).values()) == {"pinned"}


def test_a_refused_token_stops_before_anything_is_sent(world, tmp_path):
    refused = elements(world["home"], *world["args"], "publish", MODEL / "config.json", "--license", "Apache-2.0",
                       **{**world["env"], "CLUSTER_TOKEN": "not-a-jwt"})
    line = one_line_error(refused)
    assert "refused the access token" in line and "elements pin-service add cluster" in line
    assert "not-a-jwt" not in refused.stderr


def test_with_the_publishers_node_gone_a_fresh_home_assembles_from_the_other_peers_gateway(world, cluster, tmp_path):
    # The publisher's node and the first peer's node stop: only the second peer's Kubo holds the data.
    cluster.publisher.stop()
    cluster.peers[0].kubo.stop()
    fresh = tmp_path / "fresh-home"
    gateway = ("--rpc-url", world["args"][1], "--gateway", cluster.peers[1].kubo.gateway_url)
    composition = world["report"]["composition"]["record_id"]
    out = tmp_path / "model"
    assembled = published_json(elements(fresh, "--json", *gateway, "assemble", composition, "-o", out))
    assert assembled["assembly"]["content_id"] == MODEL_CONTENT_ID
    verified = elements(fresh, *gateway, "verify", out)
    assert verified.returncode == 0, (verified.stdout, verified.stderr)


# -- failures against services on loopback -------------------------------------------------------


@pytest.fixture
def notice(tmp_path) -> Path:
    path = tmp_path / "NOTICE"
    path.write_text(f"a file pinned by {tmp_path.name}\n")
    return path


def add_scripted(home: Path, url: str, *extra: str) -> None:
    added = elements(home, "pin-service", "add", "scripted", url, "--token-env", "SCRIPTED_TOKEN", *extra)
    assert added.returncode == 0, added.stderr


def test_a_service_that_is_down_stops_before_anything_is_sent(kubo_node, tmp_path, notice):
    add_scripted(tmp_path, f"http://127.0.0.1:{free_port()}")
    down = elements(tmp_path, "--ipfs-api", kubo_node.api_url, "publish", notice, "--license", "MIT", SCRIPTED_TOKEN="t")
    assert "is unreachable" in one_line_error(down)
    assert not (tmp_path / "blocks").exists()  # nothing hashed, stored or sent


def test_a_pin_stuck_in_queued_ends_in_one_line_naming_the_fix(kubo_node, tmp_path, notice):
    service = ScriptedPinService(lambda cid, polls: "queued")
    try:
        add_scripted(tmp_path, service.url, "--queued-timeout", "0.5")
        stuck = elements(tmp_path, "--ipfs-api", kubo_node.api_url, "publish", notice, "--license", "MIT",
                         SCRIPTED_TOKEN="t0ken")
        line = one_line_error(stuck)
        assert "queued for over 0.5s" in line and "run the command again to resume" in line
        assert service.posted() == 2  # the data and the manifest
    finally:
        service.close()


def test_a_failed_pin_ends_in_one_line_with_the_services_reason(kubo_node, tmp_path, notice):
    service = ScriptedPinService(lambda cid, polls: "failed")
    try:
        add_scripted(tmp_path, service.url)
        failed = elements(tmp_path, "--ipfs-api", kubo_node.api_url, "publish", notice, "--license", "MIT",
                          SCRIPTED_TOKEN="t0ken")
        line = one_line_error(failed)
        assert "failed" in line and "could not find the content" in line and "--ipfs-api" in line
    finally:
        service.close()


def test_pin_needs_a_kubo_node_for_the_service_to_fetch_from(tmp_path, notice):
    add_scripted(tmp_path, "http://127.0.0.1:9")
    line = one_line_error(elements(tmp_path, "publish", notice, "--license", "MIT", "--pin", "scripted"))
    assert "needs a Kubo node" in line and "--ipfs-api" in line


def test_an_unknown_service_and_pin_with_no_pin_are_refused(tmp_path, notice):
    assert "no pinning service 'nope'" in one_line_error(elements(tmp_path, "publish", notice, "--license", "MIT",
                                                                  "--pin", "nope"))
    assert "exclude each other" in one_line_error(elements(tmp_path, "publish", notice, "--license", "MIT",
                                                           "--pin", "x", "--no-pin"))


def test_no_pin_and_dry_run_skip_the_default_service(kubo_node, tmp_path, notice):
    add_scripted(tmp_path, f"http://127.0.0.1:{free_port()}")
    dry = elements(tmp_path, "--json", "publish", notice, "--license", "MIT", "--dry-run")
    assert dry.returncode == 0 and "pinning" not in json.loads(dry.stdout)
    skipped = elements(tmp_path, "--json", "--ipfs-api", kubo_node.api_url, "publish", notice, "--license", "MIT", "--no-pin")
    assert skipped.returncode == 0 and "pinning" not in json.loads(skipped.stdout)


# -- pin-service -----------------------------------------------------------------------------------


def test_pin_service_add_list_remove_as_a_user_runs_them(tmp_path):
    added = elements(tmp_path, "pin-service", "add", "vault", "https://pins.example.org/psa", "--token-stdin",
                     stdin="secret-token-123\n")
    assert added.returncode == 0 and "the default for --pin" in added.stdout
    token_file = tmp_path / "pin-services" / "vault.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    listed = elements(tmp_path, "pin-service", "list")
    assert "vault" in listed.stdout and "https://pins.example.org/psa" in listed.stdout and "(default)" in listed.stdout
    assert "secret-token-123" not in listed.stdout + elements(tmp_path, "--json", "pin-service", "list").stdout
    removed = elements(tmp_path, "pin-service", "remove", "vault")
    assert removed.returncode == 0 and not token_file.exists()
    assert "no pinning service 'vault'" in one_line_error(elements(tmp_path, "pin-service", "remove", "vault"))


def test_a_token_is_never_taken_from_the_command_line(tmp_path):
    line = one_line_error(elements(tmp_path, "pin-service", "add", "x", "https://pins.example.org", "--token", "abc"))
    assert "--token" in line
    assert "no token on stdin" in one_line_error(elements(tmp_path, "pin-service", "add", "x", "https://p.example.org",
                                                          "--token-stdin", stdin=""))
    assert "not a pinning service URL" in one_line_error(elements(tmp_path, "pin-service", "add", "x", "ftp://p",
                                                                  "--token-env", "T"))
