"""`elements verify` end to end on a real anvil devnet: the model is published with
`elements publish-model` by two accounts, then verified from other processes (the chain and the
block store persist): exit codes, --json, --trust and the config trust list, attribution by name,
--bom, the cached attribution index, and one-line errors for an unreachable chain or a missing
registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import pytest

from registry.chain.devnet import Anvil
from registry.chain.connection import anvil_dev_accounts
from registry.cli import main
from registry.formats.content_id import content_id
from tests.provenance_support import MODEL, WEIGHTS, changed_weights

ROOT = Path(__file__).resolve().parent.parent
QUERY3 = "encoder.layer.3.attention.self.query.weight"
_CLEAN = ("ELEMENTS_RPC_URL", "ELEMENTS_NETWORK", "ELEMENTS_REGISTRY", "ELEMENTS_KEYSTORE", "ELEMENTS_PRIVATE_KEY",
          "ELEMENTS_IPFS_API", "ELEMENTS_GATEWAY", "ELEMENTS_HOME")


@contextmanager
def environment(**values: str):
    clean = {k: v for k, v in os.environ.items() if k not in _CLEAN}
    with mock.patch.dict(os.environ, {**clean, **values}, clear=True):
        yield


def run(capsys, *argv: str, key: str | None = None) -> tuple[int, str, str]:
    with environment(**({"ELEMENTS_PRIVATE_KEY": key} if key else {})):
        code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def devnet(anvil_binary, tmp_path_factory):
    """Anvil with the registry; the model published by dev accounts 0 then 1 (`publish-model`)."""
    root = tmp_path_factory.mktemp("cli")
    node = Anvil(binary=anvil_binary, log=root / "anvil.log")
    node.start()
    home = root / "home"
    accounts = anvil_dev_accounts(3)
    keys = ["0x" + bytes(a.key).hex() for a in accounts]
    base = ["--rpc-url", node.url, "--home", str(home)]
    try:
        with environment(ELEMENTS_PRIVATE_KEY=keys[0]):
            assert main(["deploy", *base]) == 0
        for key in keys[:2]:
            with environment(ELEMENTS_PRIVATE_KEY=key):
                assert main(["publish-model", str(MODEL), "--license", "Apache-2.0", *base, "--json"]) == 0
        yield {"node": node, "home": home, "base": base, "accounts": [a.address for a in accounts], "root": root}
    finally:
        node.stop()


def verify_json(capsys, devnet, *argv: str) -> tuple[int, dict]:
    code, out, err = run(capsys, "verify", *argv, *devnet["base"], "--json")
    return code, json.loads(out)


def test_verify_prints_both_claims_earliest_first_and_exits_0(capsys, devnet):
    code, data = verify_json(capsys, devnet, MODEL)
    assert code == 0 and data["verified"] and data["verdict"] == "verified"
    first, second = devnet["accounts"][:2]
    assert [c["publisher"] for c in data["claims"]] == [first, second]
    assert data["claims"][0]["first"] and data["claims"][0]["block"] < data["claims"][1]["block"]
    assert data["accepted_claim"] == data["claims"][0]["record_id"]
    assert data["model"]["content_id"] == str(content_id(WEIGHTS))
    assert all(f["status"] == "match" for f in data["files"])


def test_human_output_shows_the_verdict_the_tree_and_the_licence(capsys, devnet):
    code, out, err = run(capsys, "verify", MODEL, *devnet["base"])
    assert code == 0, err
    text = " ".join(out.split())
    assert text.startswith("VERIFIED") and "Claims (2, earliest first)" in text
    assert "encoder.layer.3 element" in text and "effective licence Apache-2.0" in text


def test_trust_flag_selects_the_later_publisher_and_a_stranger_fails(capsys, devnet):
    first, second, stranger = devnet["accounts"]
    code, data = verify_json(capsys, devnet, MODEL, "--trust", second)
    assert code == 0 and data["accepted_claim"] == data["claims"][1]["record_id"]
    assert [c["trusted"] for c in data["claims"]] == [False, True]
    code, data = verify_json(capsys, devnet, MODEL, "--trust", stranger)
    assert code == 1 and data["verdict"] == "untrusted"
    code, out, _ = run(capsys, "verify", MODEL, *devnet["base"], "--trust", stranger)
    assert code == 1 and "no claim by a trusted publisher" in " ".join(out.split())


def test_the_trust_list_in_the_config_file_is_used(capsys, devnet, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.json").write_text(json.dumps({"trust": [devnet["accounts"][1]]}))
    # a fresh home: no block store, but the element claims verify from the same store via --home
    blocks = devnet["home"] / "blocks"
    (home / "blocks").symlink_to(blocks)
    base = ["--rpc-url", devnet["node"].url, "--home", str(home)]
    code, out, _ = run(capsys, "verify", MODEL, *base, "--json")
    data = json.loads(out)
    assert code == 0 and data["trust"] == {"publishers": [devnet["accounts"][1]], "enforced": True}
    assert data["accepted_claim"] == data["claims"][1]["record_id"]


def test_a_changed_weight_exits_1_and_names_the_tensor_and_its_element(capsys, devnet, tmp_path):
    def flip(tensors, shapes):
        dtype, raw = tensors[QUERY3]
        raw = raw.copy()
        raw[100] ^= 0x80
        tensors[QUERY3] = (dtype, raw)

    path = changed_weights(tmp_path / "model.safetensors", flip)
    code, data = verify_json(capsys, devnet, path)
    assert code == 1 and data["verdict"] == "unknown"
    [changed] = [t for t in data["attribution"]["tensors"] if t["status"] == "differs"]
    assert changed["name"] == QUERY3 and changed["sources"][0]["input"] == "encoder.layer.3"
    assert changed["sources"][0]["publisher"] == devnet["accounts"][0]  # the earliest claim is the reference
    code, out, _ = run(capsys, "verify", path, *devnet["base"])
    text = " ".join(out.split())
    assert code == 1 and f"{QUERY3} differs from element 0x" in text and f"(encoder.layer.3) by publisher {devnet['accounts'][0]}" in text


def test_the_attribution_index_is_cached_under_the_home_and_updated_incrementally(capsys, devnet, tmp_path):
    path = changed_weights(tmp_path / "model.safetensors", lambda t, s: t.pop("pooler.dense.bias"))
    _, first = verify_json(capsys, devnet, path)
    index = devnet["home"] / "cache" / "provenance"
    assert [p.name for p in index.glob("index-31337-*.sqlite")]
    _, again = verify_json(capsys, devnet, path)
    assert again["attribution"]["index"]["new"] == 0 and again["attribution"]["index"]["fetched"] == 0
    assert again["attribution"]["index"]["indexed"] == first["attribution"]["index"]["indexed"] > 0
    assert [t["name"] for t in again["attribution"]["missing"]] == ["pooler.dense.bias"]


@pytest.mark.slow  # CycloneDX's strict validation of the real model's BOM: an Earley parse per IRI, about a second each here
def test_bom_is_written_and_validates_against_cyclonedx_1_6(capsys, devnet, tmp_path):
    bom = tmp_path / "model.cdx.json"
    code, data = verify_json(capsys, devnet, MODEL, "--bom", bom)
    assert code == 0 and data["bom"] == str(bom)
    text = bom.read_text()
    # Imported here: jsonschema builds its URI grammars on import (seconds), which every xdist
    # worker would otherwise pay when it collects this file.
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    document = json.loads(text)
    assert document["specVersion"] == "1.6" and document["metadata"]["component"]["type"] == "machine-learning-model"


def test_a_real_process_exits_0_on_the_original_and_1_on_a_renamed_tensor(devnet, tmp_path):
    def rename(tensors, shapes):
        tensors["pooler.dense.b"] = tensors.pop("pooler.dense.bias")
        shapes["pooler.dense.b"] = shapes.pop("pooler.dense.bias")

    env = {k: v for k, v in os.environ.items() if k not in _CLEAN}
    command = [sys.executable, "-m", "registry", "verify", *devnet["base"]]
    ok = subprocess.run([*command, str(WEIGHTS)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    path = changed_weights(tmp_path / "model.safetensors", rename)
    bad = subprocess.run([*command, str(path), "--json"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert bad.returncode == 1, bad.stderr
    [renamed] = [t for t in json.loads(bad.stdout)["attribution"]["tensors"] if t["status"] == "renamed"]
    assert (renamed["name"], renamed["renamed_from"]) == ("pooler.dense.b", "pooler.dense.bias")


def test_an_unreachable_chain_exits_2_with_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in _CLEAN}
    result = subprocess.run(
        [sys.executable, "-m", "registry", "verify", str(WEIGHTS), "--rpc-url", "http://127.0.0.1:9", "--home", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("elements: error: cannot reach a JSON-RPC node at http://127.0.0.1:9")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_missing_registry_exits_2_with_the_fix(capsys, devnet, tmp_path):
    code, out, err = run(capsys, "verify", WEIGHTS, "--rpc-url", devnet["node"].url, "--home", tmp_path,
                         "--registry", "0x000000000000000000000000000000000000dEaD")
    assert code == 2 and err.startswith("elements: error: no registry at 0x000000000000000000000000000000000000dEaD")
    assert "elements deploy" in err
    code, out, err = run(capsys, "verify", WEIGHTS, "--rpc-url", devnet["node"].url, "--home", tmp_path,
                         "--registry", "0x000000000000000000000000000000000000dEaD", "--json")
    assert code == 2 and json.loads(out)["error"] == "NoRegistryError"


def test_bad_input_exits_2(capsys, devnet, tmp_path):
    code, _, err = run(capsys, "verify", tmp_path / "missing", *devnet["base"])
    assert code == 2 and "no such file or directory" in err
    code, _, err = run(capsys, "verify", WEIGHTS, *devnet["base"], "--trust", "bob")
    assert code == 2 and "not an address" in err
