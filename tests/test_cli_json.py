"""``--json``: every command's output is one JSON document on stdout (errors too), checked for
each leaf command of the parser tree against a real anvil with records published by the CLI."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from registry.chain.devnet import free_port
from registry.cli import main
from registry.formats.safetensors_writer import write_safetensors
from tests.cli_support import DEV_ADDRESSES, DEV_KEYS, DevnetProcess, elements
from tests.publish_support import MODEL
from tests.test_cli_help import PATHS

KEY, ADDRESS = DEV_KEYS[8], DEV_ADDRESSES[8]
PASSWORD = "correct horse battery staple"

# Leaf commands whose --json is checked in another file (long-running, or needing a whole story).
ELSEWHERE = {
    ("demo",): "tests/test_cli_demo.py (its JSON step by step)",
    ("assemble",): "tests/test_cli_jobs.py (assemble --json of a composition)",
    ("relay",): "tests/test_cli_jobs.py (relay --json)",
    ("yank",): "tests/test_cli_records.py (yank --json, twice)",
    ("publish-delta",): "tests/test_cli_records.py (publish-delta --json of a real fine-tune)",
    ("cache",): "tests/test_storage_gc.py (cache --pin --json)",
    ("gc",): "tests/test_cli_footprint.py (gc --dry-run --json and gc --json on anvil), tests/test_storage_gc.py (--no-chain)",
    ("convert-mergekit",): "tests/test_cli_mergekit.py (convert-mergekit --json, then assemble-local of what it wrote)",
}


#: Leaf commands expected to fail (exit 2) with something other than a group's usage error.
ERROR_NAMES = {("pins",): "pinning service jsonsvc"}


@pytest.fixture(scope="module")
def world(anvil_registry, anvil, tmp_path_factory):
    """A home on the session's anvil with a tensors element and a file element published by the CLI."""
    base = tmp_path_factory.mktemp("cli-json")
    home = base / "home"
    layer = base / "layer.safetensors"
    rng = np.random.default_rng(11)
    weight, bias = rng.standard_normal((8, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    write_safetensors(layer, {"dense.weight": weight, "dense.bias": bias})
    tuned = base / "tuned.safetensors"  # the layer fine-tuned a little: extract-lora's second model
    write_safetensors(tuned, {"dense.weight": weight + np.float32(0.01) * rng.standard_normal((8, 4)).astype(np.float32),
                              "dense.bias": bias})
    notes = base / "notes.txt"
    notes.write_text("elements json test\n")
    env = {"ELEMENTS_RPC_URL": anvil.url, "ELEMENTS_PRIVATE_KEY": KEY}
    published = elements(home, "publish", layer, notes, "--license", "MIT", "--json", **env)
    assert published.returncode == 0, published.stderr
    records = {r["name"]: r for r in json.loads(published.stdout)["records"]}
    recipe = base / "copy.json"
    element = records["layer.safetensors"]
    recipe.write_text(json.dumps({
        "format": "elements.recipe/v1", "name": "copy",
        "inputs": {"layer": {"content_id": element["content_id"], "record": element["record_id"]}},
        "steps": [{"op": "take", "from": ["layer"]}],
    }))
    split = elements(home, "split", layer, "--out", base / "split", **env)
    assert split.returncode == 0, split.stderr
    return {"base": base, "home": home, "layer": layer, "tuned": tuned, "notes": notes, "records": records, "recipe": recipe,
            "url": anvil.url, "env": env}


def _cases(w) -> dict[tuple[str, ...], tuple[list, int]]:
    """path -> (arguments, expected exit code)."""
    b, element = w["base"], w["records"]["layer.safetensors"]
    return {
        ("id",): ([MODEL], 0),
        ("cid",): ([w["notes"]], 0),
        ("licenses",): ([], 0),
        ("ls",): (["--publisher", ADDRESS], 0),
        ("show",): ([element["record_id"]], 0),
        ("resolve",): ([element["content_id"]], 0),
        ("verify",): ([w["layer"]], 0),
        ("config",): ([], 0),
        ("config", "show"): ([], 0),
        ("config", "network"): ([], 0),
        ("config", "trust"): ([], 0),
        ("keys",): ([], 2),  # a group without its action: a usage error, as JSON
        ("keys", "list"): ([], 0),
        ("car",): ([], 2),
        ("publish",): ([w["notes"], "--license", "MIT", "--dry-run"], 0),
        ("publish-model",): ([MODEL, "--license", "Apache-2.0", "--dry-run"], 0),
        ("compose",): ([w["recipe"], "--license", "MIT", "--dry-run"], 0),
        ("assemble-local",): ([b / "split" / "recipe.json", "--elements", b / "split", "--dry-run"], 0),
        ("split",): ([w["layer"], "--out", b / "split-again"], 0),
        ("deploy",): ([], 0),
        ("add-license",): (["LicenseRef-Json-Test", "--commercial", "--derivatives"], 0),
        ("keys", "new"): (["alice"], 0),
        ("keys", "import"): (["bob"], 0),
        ("config", "set"): (["ipfs_api", "http://127.0.0.1:5001"], 0),
        ("config", "unset"): (["ipfs_api"], 0),
        ("config", "network", "add"): (["sepolia", "--rpc-url", "https://rpc.example", "--chain-id", "11155111"], 0),
        ("config", "network", "rm"): (["sepolia"], 0),
        ("config", "trust", "add"): ([ADDRESS], 0),
        ("config", "trust", "rm"): ([ADDRESS], 0),
        ("car", "export"): ([element["record_id"], "-o", b / "layer.car"], 0),
        ("car", "import"): ([b / "layer.car"], 0),
        ("extract-lora",): ([w["layer"], w["tuned"], "--rank", "2", "-o", b / "lora"], 0),
        ("pin-service",): ([], 2),
        ("pin-service", "add"): (["jsonsvc", "http://127.0.0.1:9/psa", "--no-token"], 0),
        ("pin-service", "list"): ([], 0),
        ("pins",): ([], 2),  # the service configured above does not answer: its error, as JSON
        ("pin-service", "remove"): (["jsonsvc"], 0),
        ("devnet",): (None, 0),  # long-running: test_devnet_json_is_one_line_per_event
    }


def test_every_leaf_command_has_its_json_checked(world):
    cases = _cases(world)
    untested = [p for p in PATHS if p not in cases and p not in ELSEWHERE]
    assert untested == []


# The order matters where one command prepares the next (export before import, add before rm).
ORDER = ["id", "cid", "licenses", "ls", "show", "resolve", "verify", "config", "config show", "config network",
         "config trust", "keys", "car", "publish", "publish-model", "compose", "assemble-local", "split",
         "deploy", "add-license", "keys new", "keys import", "keys list", "config set", "config unset", "config network add",
         "config network rm", "config trust add", "config trust rm", "car export", "car import", "extract-lora",
         "pin-service", "pin-service add", "pin-service list", "pins", "pin-service remove"]


@pytest.mark.parametrize("name", ORDER)
def test_json_output_is_one_document(world, name, monkeypatch, capsys):
    path = tuple(name.split())
    args, expected = _cases(world)[path]
    for variable in [v for v in __import__("os").environ if v.startswith("ELEMENTS_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("ELEMENTS_HOME", str(world["home"]))
    for variable, value in world["env"].items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("ELEMENTS_KEYSTORE_PASSWORD", PASSWORD)
    monkeypatch.setattr("sys.stdin", io.StringIO(DEV_KEYS[9] + "\n"))
    code = main([*path, *map(str, args), "--json"])
    out, err = capsys.readouterr()
    assert code == expected, (out, err)
    document = json.loads(out)  # the whole of stdout is one JSON document
    assert err == ""
    if expected == 2:
        assert document["ok"] is False and document["exit_code"] == 2
        assert ERROR_NAMES.get(path, "choose an action") in document["message"]
    else:
        assert document not in (None, [], {})


def test_errors_with_json_are_one_json_object_on_stdout(world, tmp_path):
    unknown = elements(world["home"], "--json", "show", "0x" + "ab" * 32, **world["env"])
    assert unknown.returncode == 2 and unknown.stderr == ""
    error = json.loads(unknown.stdout)
    assert error["error"] == "HashNotFoundError" and "elements ls" in error["message"] and error["exit_code"] == 2


def test_devnet_json_is_one_line_per_event(anvil_binary, tmp_path):
    devnet = DevnetProcess(tmp_path / "home", free_port(), tmp_path / "state.json", json=True)
    first = json.loads(devnet.start())
    assert first["event"] == "running" and first["rpc_url"] == devnet.url and first["network"] == "devnet"
    assert first["accounts"][0]["address"] == DEV_ADDRESSES[0]
    code, out, err = devnet.stop()
    assert code == 0, err
    assert [json.loads(line) for line in out.splitlines()] == [{"event": "stopped", "state": str(devnet.state)}]
