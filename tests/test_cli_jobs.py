"""The command line as a user runs it (real exit codes and output) against its own anvil: deploy,
publish-model, resolve, assemble, compose; keys and relaying; bad input; Kubo. The first test runs
every command as a real ``python -m registry`` process; the others call the command line in this
process (``tests/cli_support.py``: the same argv, environment and streams, without a second of
interpreter start per command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry.chain.devnet import Anvil, free_port
from tests.cli_support import DEV_ADDRESSES, DEV_KEYS, run_main
from tests.keystore_support import write_keystore
from tests.publish_support import MODEL, MODEL_CONTENT_ID, tensors_equal

ROOT = Path(__file__).resolve().parent.parent
KEYS = DEV_KEYS
ADDRESSES = DEV_ADDRESSES


@pytest.fixture(scope="module")
def devnet(anvil_binary, tmp_path_factory):
    """An anvil of this module's own (a clean chain: record counts are this module's)."""
    with Anvil(binary=anvil_binary, log=tmp_path_factory.mktemp("anvil-cli") / "anvil.log") as node:
        yield node


@pytest.fixture(scope="module")
def deployed_home(devnet, tmp_path_factory):
    home = tmp_path_factory.mktemp("home-deployer")
    result = elements(home, devnet, "deploy", key=KEYS[0])
    assert result.returncode == 0, result.stderr
    return home


def job_env(home: Path, devnet, key: str | None = None, extra_env: dict | None = None, rpc: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELEMENTS_")}
    env.update(ELEMENTS_HOME=str(home), ELEMENTS_NO_PROGRESS="1", PYTHONPATH=str(ROOT))
    if devnet is not None:
        env["ELEMENTS_RPC_URL"] = rpc or devnet.url
    if key:
        env["ELEMENTS_PRIVATE_KEY"] = key
    env.update(extra_env or {})
    return env


def elements(home: Path, devnet, *args: str, key: str | None = None, stdin: str | None = None, extra_env: dict | None = None,
             rpc: str | None = None) -> subprocess.CompletedProcess:
    """``elements ARGS`` in this process (``registry.cli.main``), as the user ``home`` on ``devnet``."""
    return run_main([*args], env=job_env(home, devnet, key, extra_env, rpc), stdin=stdin)


def elements_process(home: Path, devnet, *args: str, key: str | None = None, stdin: str | None = None,
                     extra_env: dict | None = None, rpc: str | None = None) -> subprocess.CompletedProcess:
    """The same as a real ``python -m registry`` process."""
    return subprocess.run([sys.executable, "-m", "registry", *args], env=job_env(home, devnet, key, extra_env, rpc), cwd=ROOT,
                          input=stdin, capture_output=True, text=True, timeout=600)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The CLI failed the way it promises: exit 2, one line on stderr, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("elements: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def record_count(home, devnet) -> int:
    listed = elements(home, devnet, "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    return len(json.loads(listed.stdout))


@pytest.mark.slow  # every command as a real process
def test_deploy_publish_model_resolve_assemble_as_a_user_would(devnet, tmp_path):
    home = tmp_path / "home"
    deploy = elements_process(home, devnet, "deploy", key=KEYS[0])
    assert deploy.returncode == 0 and "registry" in deploy.stdout and (home / "deployments.json").is_file()

    dry = elements_process(home, devnet, "publish-model", str(MODEL), "--license", "Apache-2.0", "--dry-run", key=KEYS[0])
    assert dry.returncode == 0, dry.stderr
    assert "dry run: would publish 20 record(s), 0 already there; nothing was stored or sent" in dry.stdout
    assert "estimated" in dry.stdout and " gas in 1 transaction(s)" in dry.stdout

    published = elements_process(home, devnet, "publish-model", str(MODEL), "--license", "Apache-2.0", "--json", key=KEYS[0])
    assert published.returncode == 0, published.stderr
    report = json.loads(published.stdout)
    assert report["published"] == 20 and report["already_present"] == 0 and len(report["transactions"]) == 1
    composition = report["composition"]
    assert composition["content_id"] == MODEL_CONTENT_ID and composition["kind"] == "composition"
    assert all(r["record_id"].startswith("0x") and r["cid"] and r["transaction"] for r in report["records"])

    rerun = elements_process(home, devnet, "publish-model", str(MODEL), "--license", "Apache-2.0", key=KEYS[0])
    assert rerun.returncode == 0 and "0 record(s) published, 20 already there; 0 transaction(s)" in rerun.stdout

    resolved = elements_process(home, devnet, "resolve", composition["record_id"], "--json")
    assert resolved.returncode == 0, resolved.stderr
    graph = json.loads(resolved.stdout)
    assert len(graph["records"]) == 20 and graph["depth"] == 1 and graph["round_trips"] == 2
    assert all(r["document"] is not None for r in graph["records"])
    human = elements_process(home, devnet, "resolve", MODEL_CONTENT_ID)
    assert human.returncode == 0 and "20 records, depth 1, 2 RPC round trips" in human.stdout

    out = tmp_path / "model"
    assembled = elements_process(home, devnet, "assemble", composition["record_id"], "-o", str(out))
    assert assembled.returncode == 0, assembled.stderr
    assert f"content id {MODEL_CONTENT_ID} (matches the claim)" in assembled.stdout
    assert tensors_equal(out / "model.safetensors", MODEL / "model.safetensors")
    assert (out / "tokenizer.json").read_bytes() == (MODEL / "tokenizer.json").read_bytes()
    provenance = json.loads((out / "elements-provenance.json").read_text())
    assert provenance["record"] == composition["record_id"] and provenance["chain_id"] == 31337

    again = elements_process(home, devnet, "assemble", composition["record_id"], "-o", str(out))
    assert "exists" in one_line_error(again) and "--force" in again.stderr

    # compose: three layers of the published model, every input a record.
    records = {r["name"]: r for r in report["records"]}
    pick = ["embeddings", "pooler", "encoder.layer.0", "encoder.layer.5", "config.json"]
    recipe = {
        "format": "elements.recipe/v1",
        "name": "minilm-2-layers",
        "inputs": {n: {"content_id": records[n]["content_id"], "record": records[n]["record_id"]} for n in pick},
        "steps": [
            {"op": "take", "from": ["embeddings", "pooler"]},
            {"op": "stack", "template": "encoder.layer.{n}.", "slices": [{"from": "encoder.layer.0", "layers": [0]},
                                                                         {"from": "encoder.layer.5", "layers": [5]}]},
        ],
        "files": [{"path": "config.json", "from": "config.json", "patch": {"num_hidden_layers": 2}}],
    }
    (tmp_path / "two.json").write_text(json.dumps(recipe))
    composed = elements_process(home, devnet, "compose", str(tmp_path / "two.json"), "--license", "Apache-2.0", "--json", key=KEYS[0])
    assert composed.returncode == 0, composed.stderr
    two = json.loads(composed.stdout)["composition"]
    assert sorted(two["parents"]) == sorted(records[n]["record_id"] for n in pick)
    small = elements_process(home, devnet, "assemble", two["record_id"], "-o", str(tmp_path / "small"), "--json")
    assert small.returncode == 0, small.stderr
    assert json.loads(small.stdout)["assembly"]["content_id"] == two["content_id"]
    assert json.loads((tmp_path / "small" / "config.json").read_text())["num_hidden_layers"] == 2

    shown = elements_process(home, devnet, "show", two["record_id"])
    assert shown.returncode == 0 and "recipe     minilm-2-layers" in shown.stdout
    listed = elements_process(home, devnet, "ls", "--publisher", ADDRESSES[0], "--kind", "composition", "--json")
    assert {r["record_id"] for r in json.loads(listed.stdout)} == {composition["record_id"], two["record_id"]}


def test_bad_input_fails_in_one_line_with_exit_2_and_publishes_nothing(devnet, deployed_home, tmp_path):
    home = deployed_home
    element = tmp_path / "layer.safetensors"
    from tests.publish_support import random_tensors, write_raw_safetensors
    import numpy as np

    write_raw_safetensors(element, random_tensors(np.random.default_rng(3), ["w", "b"]), None)
    base = elements(home, devnet, "publish", str(element), "--license", "CC-BY-NC-4.0", "--json", key=KEYS[1])
    assert base.returncode == 0, base.stderr
    parent = json.loads(base.stdout)["records"][0]["record_id"]
    before = record_count(home, devnet)

    garbage = tmp_path / "broken.safetensors"
    garbage.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}trailing")
    assert "broken.safetensors" in one_line_error(elements(home, devnet, "publish", str(garbage), "--license", "MIT", key=KEYS[2]))
    pickle = tmp_path / "pytorch_model.bin"
    pickle.write_bytes(b"\x80\x04")
    assert "never reads" in one_line_error(elements(home, devnet, "publish", str(pickle), "--license", "MIT", key=KEYS[2]))

    unknown_parent = one_line_error(elements(home, devnet, "publish", str(element), "--license", "MIT", "--parent", "0x" + "cd" * 32, key=KEYS[2]))
    assert "0x" + "cd" * 32 in unknown_parent and "does not exist" in unknown_parent

    unknown_licence = one_line_error(elements(home, devnet, "publish", str(element), "--license", "Beerware", key=KEYS[2]))
    assert "'Beerware' is not registered" in unknown_licence and "Apache-2.0" in unknown_licence
    assert "elements add-license Beerware" in unknown_licence

    breaking = one_line_error(elements(home, devnet, "publish", str(element), "--license", "Apache-2.0", "--parent", parent, key=KEYS[2]))
    assert parent in breaking and "non-commercial" in breaking and "CC-BY-NC-4.0" in breaking

    poor = "0x" + "7e" * 32
    no_funds = one_line_error(elements(home, devnet, "publish", str(element), "--license", "MIT", key=poor))
    assert "fund it" in no_funds

    config = json.loads((home / "config.json").read_text()) if (home / "config.json").exists() else {}
    config.setdefault("networks", {})["wrongnet"] = {"rpc_url": devnet.url, "chain_id": 11155111}
    (home / "config.json").write_text(json.dumps(config))
    wrong = one_line_error(elements(home, None, "--network", "wrongnet", "publish", str(element), "--license", "MIT", key=KEYS[2]))
    assert "chain id 31337, expected 11155111" in wrong

    down = one_line_error(elements(home, devnet, "publish", str(element), "--license", "MIT", key=KEYS[2],
                                   rpc=f"http://127.0.0.1:{free_port()}"))
    assert "cannot reach" in down

    assert record_count(home, devnet) == before


def test_keystores_sign_and_a_relayer_pays(devnet, deployed_home, tmp_path):
    home = deployed_home
    password = {"ELEMENTS_KEYSTORE_PASSWORD": "correct horse battery staple"}
    created = elements(home, devnet, "keys", "new", "alice", "--json", extra_env=password)
    assert created.returncode == 0, created.stderr
    alice = json.loads(created.stdout)
    assert alice["address"].startswith("0x") and Path(alice["path"]).stat().st_mode & 0o077 == 0

    imported = elements(home, devnet, "keys", "import", "bob", "--json", stdin=KEYS[3] + "\n", extra_env=password)
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["address"] == ADDRESSES[3]
    assert KEYS[3][2:] not in imported.stdout + imported.stderr
    assert KEYS[3][2:] not in (home / "keystores" / "bob.json").read_text()
    listed = json.loads(elements(home, devnet, "keys", "list", "--json").stdout)
    assert [(k["name"], k["address"]) for k in listed] == [("alice", alice["address"]), ("bob", ADDRESSES[3])]

    config = tmp_path / "config.json"
    config.write_text('{"hidden_size": 8}\n')
    by_bob = elements(home, devnet, "--keystore", "bob", "publish", str(config), "--license", "MIT", "--json", extra_env=password)
    assert by_bob.returncode == 0, by_bob.stderr
    assert json.loads(by_bob.stdout)["publisher"] == ADDRESSES[3]
    # A wrong password, on a keystore of lighter (but real) scrypt than keys import writes: the
    # refusal is the same, and a second of key derivation less (tests/keystore_support.py).
    write_keystore(home, "carol", "correct horse battery staple", KEYS[4])
    wrong = elements(home, devnet, "--keystore", "carol", "publish", str(config), "--license", "MIT",
                     extra_env={"ELEMENTS_KEYSTORE_PASSWORD": "wrong"})
    assert "wrong password" in one_line_error(wrong)

    # alice has no ether: she signs, key 5 relays and pays; alice is the publisher.
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\nhello\n")
    signed = tmp_path / "signed.json"
    sign = elements(home, devnet, "--keystore", "alice", "publish", str(vocab), "--license", "MIT", "--sign-only", str(signed), extra_env=password)
    assert sign.returncode == 0, sign.stderr
    assert f"signed 1 record(s) as {alice['address']}" in sign.stdout
    relayed = elements(home, devnet, "relay", str(signed), "--json", key=KEYS[5])
    assert relayed.returncode == 0, relayed.stderr
    relay = json.loads(relayed.stdout)
    assert relay["publisher"] == alice["address"] and relay["relayer"] == ADDRESSES[5] and relay["published"] == 1
    shown = json.loads(elements(home, devnet, "show", relay["records"][0]["record_id"], "--json").stdout)
    assert shown[0]["publisher"] == alice["address"]
    again = elements(home, devnet, "relay", str(signed), "--json", key=KEYS[5])
    assert again.returncode == 0 and json.loads(again.stdout)["already_present"] == 1


def test_a_new_licence_is_added_and_used(devnet, deployed_home, tmp_path):
    home = deployed_home
    added = elements(home, devnet, "add-license", "LicenseRef-Elements-Test", "--commercial", "--derivatives", "--attribution", "--json", key=KEYS[7])
    assert added.returncode == 0, added.stderr
    terms = json.loads(added.stdout)
    assert terms["license_id"] > 14 and terms["created"] and terms["flags"] == 11
    again = elements(home, devnet, "add-license", "LicenseRef-Elements-Test", "--commercial", "--derivatives", "--attribution", key=KEYS[7])
    assert again.returncode == 0 and "already registered" in again.stdout
    note = tmp_path / "NOTICE"
    note.write_text("made with elements\n")
    used = elements(home, devnet, "publish", str(note), "--license", "LicenseRef-Elements-Test", "--json", key=KEYS[7])
    assert used.returncode == 0, used.stderr
    assert json.loads(used.stdout)["records"][0]["license_id"] == terms["license_id"]


@pytest.mark.slow  # publish-model into Kubo and back
def test_a_model_published_into_kubo_assembles_in_a_fresh_home_that_only_knows_the_kubo_node(devnet, deployed_home, kubo_node, tmp_path):
    publisher_home = deployed_home
    published = elements(publisher_home, devnet, "--ipfs-api", kubo_node.api_url, "publish-model", str(MODEL), "--license", "MIT",
                         "--by", "module", "--json", key=KEYS[6])
    assert published.returncode == 0, published.stderr
    report = json.loads(published.stdout)
    assert report["pinned"]
    record = report["composition"]["record_id"]

    fresh = tmp_path / "fresh-home"  # no blocks, no deployments file: the registry is found at its CREATE2 address
    assembled = elements(fresh, devnet, "assemble", record, "-o", str(tmp_path / "out"), extra_env={"ELEMENTS_IPFS_API": kubo_node.api_url})
    assert assembled.returncode == 0, assembled.stderr
    assert tensors_equal(tmp_path / "out" / "model.safetensors", MODEL / "model.safetensors")
    without = elements(tmp_path / "empty-home", devnet, "assemble", record, "-o", str(tmp_path / "out2"))
    assert "configure --ipfs-api or --gateway" in one_line_error(without)
    assert not (tmp_path / "out2").exists()


@pytest.mark.slow  # many processes at once
def test_car_imports_and_assemblies_of_one_model_into_one_home_at_once_all_succeed(devnet, deployed_home, kubo_node, tmp_path):
    published = elements(deployed_home, devnet, "--ipfs-api", kubo_node.api_url, "publish-model", str(MODEL), "--license", "MIT",
                         "--by", "module", "--json", key=KEYS[5])
    assert published.returncode == 0, published.stderr
    record = json.loads(published.stdout)["composition"]["record_id"]
    car = tmp_path / "model.car"
    exported = elements(deployed_home, devnet, "car", "export", record, "-o", str(car))
    assert exported.returncode == 0, exported.stderr

    env = {k: v for k, v in os.environ.items() if not k.startswith("ELEMENTS_")}
    env.update(ELEMENTS_NO_PROGRESS="1", PYTHONPATH=str(ROOT), ELEMENTS_RPC_URL=devnet.url, ELEMENTS_IPFS_API=kubo_node.api_url)
    for round in range(2):  # the library's stress test (tests/test_storage_blockstore.py) runs 30 rounds
        home = tmp_path / f"home-{round}"  # one home, shared by every process of the round
        commands = [["car", "import", str(car)]] * 2 + [["assemble", record, "-o", str(tmp_path / f"out-{round}-{n}")] for n in range(2)]
        processes = [subprocess.Popen([sys.executable, "-m", "registry", *args], env={**env, "ELEMENTS_HOME": str(home)}, cwd=ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args in commands]
        for process, args in zip(processes, commands):
            out, err = process.communicate(timeout=600)
            assert process.returncode == 0, (round, args, err)
        for n in range(2):
            assert tensors_equal(tmp_path / f"out-{round}-{n}" / "model.safetensors", MODEL / "model.safetensors")
        staging = home / "blocks" / ".staging"
        assert not staging.exists() or os.listdir(staging) == []
        assert not (home / "cache" / "elements").exists()  # elements read in place from the blocks: no export at all
