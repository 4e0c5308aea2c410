"""Copies under looser terms at the command line, on a real anvil devnet: Alice runs
`elements publish-model` under CC-BY-NC-4.0, then Mallory under MIT (the same content). `verify
--trust Mallory` exits 1 naming Alice's earlier claim, and 0 with `--accept-disputed` under
Alice's terms; `resolve`, `show` and `assemble` warn on stderr (one line per disputed record)
and carry `disputes` in --json; the assembled `elements-provenance.json` names Alice's claims."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from unittest import mock

import pytest

from registry.chain.devnet import Anvil
from registry.chain.connection import anvil_dev_accounts, connect
from registry.chain.registry import Kind, Registry
from registry.cli import main
from tests.provenance_support import MODEL

_CLEAN = ("ELEMENTS_RPC_URL", "ELEMENTS_NETWORK", "ELEMENTS_REGISTRY", "ELEMENTS_KEYSTORE", "ELEMENTS_PRIVATE_KEY",
          "ELEMENTS_IPFS_API", "ELEMENTS_GATEWAY", "ELEMENTS_HOME", "ELEMENTS_DEBUG")


@contextmanager
def environment(**values: str):
    clean = {k: v for k, v in os.environ.items() if k not in _CLEAN}
    with mock.patch.dict(os.environ, {**clean, "ELEMENTS_NO_PROGRESS": "1", **values}, clear=True):
        yield


def run(capsys, world, *argv: str, key: str | None = None) -> tuple[int, str, str]:
    with environment(**({"ELEMENTS_PRIVATE_KEY": key} if key else {})):
        code = main([*map(str, argv), *world["base"]])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, world, *argv: str) -> tuple[int, object, str]:
    code, out, err = run(capsys, world, *argv, "--json")
    return code, json.loads(out), err


@pytest.fixture(scope="module")
def world(anvil_binary, tmp_path_factory):
    """Anvil with the registry; Alice (dev account 0) publishes the model under CC-BY-NC-4.0, then
    Mallory (account 1) the same model under MIT, both with `publish-model`."""
    root = tmp_path_factory.mktemp("disputes-cli")
    node = Anvil(binary=anvil_binary, log=root / "anvil.log")
    node.start()
    accounts = anvil_dev_accounts(2)
    keys = ["0x" + bytes(a.key).hex() for a in accounts]
    base = ["--rpc-url", node.url, "--home", str(root / "home")]
    try:
        with environment(ELEMENTS_PRIVATE_KEY=keys[0]):
            assert main(["deploy", *base]) == 0
        for key, spdx in zip(keys, ("CC-BY-NC-4.0", "MIT")):
            with environment(ELEMENTS_PRIVATE_KEY=key):
                assert main(["publish-model", str(MODEL), "--license", spdx, *base, "--json"]) == 0
        yield {"base": base, "alice": accounts[0].address, "mallory": accounts[1].address, "root": root}
    finally:
        node.stop()


@pytest.fixture(scope="module")
def records(world):
    """Each publisher's records: ``composition`` and element content id -> record id (read back from the chain)."""
    registry = Registry.attach(connect(world["base"][1]), None, world["root"] / "home")
    return {who: {("composition" if r.kind == Kind.COMPOSITION else "0x" + r.content_id.hex()): "0x" + r.record_id.hex()
                  for r in registry.records_by(world[who])} for who in ("alice", "mallory")}


def test_verify_trusting_mallory_exits_1_naming_alices_earlier_claim(capsys, world, records):
    code, out, err = run(capsys, world, "verify", MODEL, "--trust", world["mallory"])
    assert code == 1, err
    text = " ".join(out.split())
    alice = records["alice"]["composition"]
    assert text.startswith("NOT VERIFIED: disputed")
    assert f"{world['alice']} claimed the same content earlier under stricter terms (record {alice}" in text
    assert "CC-BY-NC-4.0; MIT lifts non-commercial" in text and f"--accept-disputed {alice}" in text
    assert "commercial use allowed" not in text
    assert "next: another publisher claimed this content first under stricter terms" in text


def test_verify_json_marks_the_copy_and_its_elements_disputed(capsys, world, records):
    code, data, _ = run_json(capsys, world, "verify", MODEL, "--trust", world["mallory"])
    assert code == 1 and data["verdict"] == "disputed" and data["exit_code"] == 1 and data["accepted_claim"] is None
    original, copy = data["claims"]
    assert original["publisher"] == world["alice"] and original["disputes"] == []
    assert copy["publisher"] == world["mallory"] and copy["disputed"] is True and len(copy["disputes"]) == 20
    assert {d["earlier"]["record_id"] for d in copy["disputes"]} == set(records["alice"].values())
    assert len(data["disputes"]) == 20 and all(d["accepted"] is False for d in data["disputes"])


def test_verify_accepting_the_disputes_exits_0_under_alices_terms(capsys, world, records):
    code, data, _ = run_json(capsys, world, "verify", MODEL, "--trust", world["mallory"], "--accept-disputed", "all")
    assert code == 0 and data["verdict"] == "verified" and data["accepted_claim"] == records["mallory"]["composition"]
    lic = data["effective_license"]
    assert lic["commercial_use"] is False and lic["expression"] == "MIT AND CC-BY-NC-4.0"
    assert set(lic["earlier_claims"]) == set(records["alice"].values())
    assert data["policy"]["accept_disputed"] == ["all"]
    code, out, _ = run(capsys, world, "verify", MODEL, "--trust", world["mallory"], "--accept-disputed", "all")
    text = " ".join(out.split())
    assert code == 0 and text.startswith("VERIFIED") and "commercial use NOT allowed" in text and "DISPUTED (accepted)" in text


def test_verify_trusting_alice_too_accepts_her_claim_and_a_bad_acceptance_is_refused(capsys, world, records):
    code, data, _ = run_json(capsys, world, "verify", MODEL, "--trust", world["mallory"], "--trust", world["alice"])
    assert code == 0 and data["accepted_claim"] == records["alice"]["composition"]
    assert data["effective_license"]["commercial_use"] is False
    code, out, err = run(capsys, world, "verify", MODEL, "--accept-disputed", "alice")
    assert code == 2 and out == "" and "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith("elements: error: --accept-disputed 'alice' is neither a record id")


def test_resolve_warns_one_line_per_disputed_record_on_stderr(capsys, world, records):
    copy = records["mallory"]["composition"]
    code, out, err = run(capsys, world, "resolve", copy)
    assert code == 0
    assert out.splitlines()[0].split()[1] == copy and "DISPUTED" in out.splitlines()[0]
    warnings = err.strip().splitlines()
    assert len(warnings) == 9 and all(line.startswith("WARNING: ") for line in warnings)
    assert warnings[0].startswith(f"WARNING: record {copy} by {world['mallory']} under MIT is disputed")
    assert f"(record {records['alice']['composition']}, block" in warnings[0]
    assert warnings[-1] == "WARNING: … and 12 more disputed record(s) (--json lists each)"
    code, data, err = run_json(capsys, world, "resolve", copy)
    assert code == 0 and err == "" and len(data["disputes"]) == 20
    root = next(r for r in data["records"] if r["record_id"] == copy)
    assert root["disputes"][0]["earlier"]["record_id"] == records["alice"]["composition"]
    assert "priority_block" in root


def test_resolve_of_the_original_warns_nothing(capsys, world, records):
    code, out, err = run(capsys, world, "resolve", records["alice"]["composition"])
    assert code == 0 and err == "" and "DISPUTED" not in out


def test_show_of_the_content_id_lists_both_claims_and_warns_about_the_copy(capsys, world, records):
    code, data, _ = run_json(capsys, world, "show", records["mallory"]["composition"])
    assert code == 0 and len(data) == 1
    [dispute] = data[0]["disputes"]
    assert dispute["earlier"]["record_id"] == records["alice"]["composition"] and dispute["restrictions_lifted"] == ["non-commercial"]
    content_id = data[0]["content_id"]
    code, out, err = run(capsys, world, "show", content_id)
    assert code == 0 and out.startswith(f"2 claims of {content_id}, earliest first:")
    assert out.count("DISPUTED   by earlier claim") == 1
    [warning] = err.strip().splitlines()
    assert warning.startswith(f"WARNING: record {records['mallory']['composition']} by {world['mallory']} under MIT is disputed")


def test_assemble_warns_and_writes_the_earlier_claims_into_the_provenance_file(capsys, world, records, tmp_path):
    copy = records["mallory"]["composition"]
    code, out, err = run(capsys, world, "assemble", copy, "-o", tmp_path / "out")
    assert code == 0, err
    warnings = err.strip().splitlines()
    assert len(warnings) == 9 and warnings[0].startswith(f"WARNING: record {copy} by {world['mallory']} under MIT is disputed")
    provenance = json.loads((tmp_path / "out" / "elements-provenance.json").read_text())
    assert provenance["disputed"] is True and len(provenance["disputes"]) == 20
    assert {d["earlier"]["record_id"] for d in provenance["disputes"]} == set(records["alice"].values())
    assert all(d["earlier"]["publisher"] == world["alice"] for d in provenance["disputes"])
    code, data, err = run_json(capsys, world, "assemble", copy, "-o", tmp_path / "again")
    assert code == 0 and err == "" and data["disputes"] == provenance["disputes"]
