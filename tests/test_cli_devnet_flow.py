"""The three jobs as a user runs them, on the easiest real chain: a fresh ELEMENTS_HOME,
``elements devnet`` in the background, then every command with ``--network devnet`` (subprocesses,
real exit codes and output): publish the real all-MiniLM-L6-v2, resolve, assemble, verify (0), a
tampered copy (1, the tensor named), a bill of materials, CAR export/import (into a fresh home and
into a real Kubo); then Ctrl-C and a restart from the same state file keeps every record.
"""

from __future__ import annotations

import json
import shutil

import pytest

from registry.chain.devnet import free_port
from registry.formats.safetensors import read_header
from tests.cli_support import DEV_ADDRESSES, DevnetProcess, elements, one_line_error
from tests.publish_support import MODEL, MODEL_CONTENT_ID, tensors_equal

#: slow: a devnet process per test and whole jobs against it (`scripts/test.sh --fast` leaves it out)
pytestmark = pytest.mark.slow

TAMPERED = "encoder.layer.3.attention.self.query.weight"
NET = ("--network", "devnet")
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def world(anvil_binary, tmp_path_factory):
    """A fresh home, a devnet started as a user starts it, the real model published on it."""
    base = tmp_path_factory.mktemp("devnet-flow")
    home = base / "home"
    alice = elements(home, "keys", "new", "alice", "--json", ELEMENTS_KEYSTORE_PASSWORD=PASSWORD)  # before the devnet: it funds keystores
    assert alice.returncode == 0, alice.stderr
    devnet = DevnetProcess(home, free_port(), base / "chain-state.json")
    banner = devnet.start()
    try:
        published = elements(home, *NET, "publish-model", MODEL, "--license", "Apache-2.0", "--json")
        assert published.returncode == 0, published.stderr
        yield {"base": base, "home": home, "devnet": devnet, "banner": banner, "report": json.loads(published.stdout),
               "alice": json.loads(alice.stdout)["address"]}
    finally:
        devnet.stop()


def test_devnet_prints_what_to_do_next_and_writes_the_network(world):
    banner, devnet = world["banner"], world["devnet"]
    assert f"devnet running: {devnet.url} (chain id 31337)" in banner
    assert "export ELEMENTS_NETWORK=devnet" in banner and DEV_ADDRESSES[0] in banner
    network = json.loads((world["home"] / "config.json").read_text())["networks"]["devnet"]
    assert network["rpc_url"] == devnet.url and network["chain_id"] == 31337 and network["state"] == str(devnet.state)


def test_the_devnet_funds_the_homes_keystores_so_they_can_publish(world, tmp_path):
    assert f"funded keystore alice: {world['alice']} (100 ETH)" in world["banner"]
    notes = tmp_path / "NOTICE"
    notes.write_text("published by alice on the devnet\n")
    published = elements(world["home"], *NET, "--keystore", "alice", "publish", notes, "--license", "MIT", "--json",
                         ELEMENTS_KEYSTORE_PASSWORD=PASSWORD)
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["publisher"] == world["alice"]


def test_publish_model_on_the_devnet_claims_every_element_and_the_composition(world):
    report = world["report"]
    assert report["published"] == 20 and report["already_present"] == 0
    assert report["publisher"] == DEV_ADDRESSES[0]  # the devnet's funded dev key signs: nothing to configure
    composition = report["composition"]
    assert composition["kind"] == "composition" and composition["content_id"] == MODEL_CONTENT_ID
    assert len(composition["parents"]) == 19


def test_resolve_prints_the_graph_behind_the_composition(world):
    record = world["report"]["composition"]["record_id"]
    human = elements(world["home"], *NET, "resolve", record)
    assert human.returncode == 0, human.stderr
    assert human.stdout.startswith(f"composition 0x{record[2:]}") and "20 records, depth 1, 2 RPC round trips" in human.stdout
    as_json = elements(world["home"], *NET, "resolve", MODEL_CONTENT_ID, "--json")
    graph = json.loads(as_json.stdout)
    assert as_json.returncode == 0 and len(graph["records"]) == 20 and graph["roots"] == [record]


def test_assemble_verify_tamper_and_bom(world, tmp_path):
    home, record = world["home"], world["report"]["composition"]["record_id"]
    out = tmp_path / "minilm"
    assembled = elements(home, *NET, "assemble", record, "-o", out)
    assert assembled.returncode == 0, assembled.stderr
    assert f"content id {MODEL_CONTENT_ID} (matches the claim)" in assembled.stdout
    assert tensors_equal(out / "model.safetensors", MODEL / "model.safetensors")
    assert "--force" in one_line_error(elements(home, *NET, "assemble", record, "-o", out))

    verified = elements(home, *NET, "verify", out)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "VERIFIED" in verified.stdout and record in verified.stdout

    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    weights = tampered / "model.safetensors"
    header = read_header(weights)
    info = header.tensors[TAMPERED]
    with open(weights, "r+b") as f:  # one byte of one weight, as a careless (or hostile) edit would
        f.seek(info.start + 101)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x01]))
    caught = elements(home, *NET, "verify", tampered)
    assert caught.returncode == 1, caught.stdout + caught.stderr
    assert "Traceback" not in caught.stderr
    assert f"{TAMPERED} differs" in " ".join(caught.stdout.split())
    assert "next: 1 tensor(s) above differ" in caught.stdout and f"`elements assemble {record} -o DIR`" in caught.stdout
    as_json = json.loads(elements(home, *NET, "verify", tampered, "--json").stdout)
    assert [t["name"] for t in as_json["attribution"]["tensors"] if t["status"] == "differs"] == [TAMPERED]

    bom = tmp_path / "minilm.cdx.json"
    with_bom = elements(home, *NET, "verify", out, "--bom", bom)
    assert with_bom.returncode == 0, with_bom.stdout + with_bom.stderr
    document = json.loads(bom.read_text())
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.6"
    assert MODEL_CONTENT_ID[2:] in bom.read_text()


def test_car_export_of_a_record_carries_everything_a_fresh_home_needs_to_assemble(world, tmp_path):
    home, devnet, record = world["home"], world["devnet"], world["report"]["composition"]["record_id"]
    car = tmp_path / "minilm.car"
    exported = elements(home, *NET, "car", "export", record, "-o", car, "--json")
    assert exported.returncode == 0, exported.stderr
    summary = json.loads(exported.stdout)
    assert len(summary["records"]) == 20 and len(summary["roots"]) == 20 + 19  # documents + element data files
    assert "--force" in one_line_error(elements(home, *NET, "car", "export", record, "-o", car))

    fresh = tmp_path / "fresh-home"  # no config, no blocks: the chain by URL, the registry at its CREATE2 address
    imported = elements(fresh, "car", "import", car, "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["roots"] == summary["roots"]
    rebuilt = elements(fresh, "--rpc-url", devnet.url, "assemble", record, "-o", tmp_path / "rebuilt")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert tensors_equal(tmp_path / "rebuilt" / "model.safetensors", MODEL / "model.safetensors")

    empty = tmp_path / "empty-home"
    missing = one_line_error(elements(empty, "--rpc-url", devnet.url, "car", "export", record, "-o", tmp_path / "x.car"))
    assert "--ipfs-api or --gateway" in missing and not (tmp_path / "x.car").exists()


def test_a_car_exported_by_elements_imports_into_kubo_and_back(world, kubo_node, tmp_path):
    home, devnet = world["home"], world["devnet"]
    element = next(r for r in world["report"]["records"] if r["name"] == "encoder.layer.0")
    car = tmp_path / "layer0.car"
    assert elements(home, *NET, "car", "export", element["record_id"], "-o", car).returncode == 0
    pinned = kubo_node.ipfs("dag", "import", "--pin-roots", str(car)).stdout.decode()
    assert element["cid"] in pinned and element["data_cid"] in pinned
    # Kubo's own export of the data DAG is what `elements car export CID` writes, byte for byte.
    ours = tmp_path / "data.car"
    assert elements(home, "car", "export", element["data_cid"], "-o", ours).returncode == 0
    assert ours.read_bytes() == kubo_node.ipfs("dag", "export", element["data_cid"]).stdout
    # A fresh home that only knows the Kubo node resolves the element with its documents.
    shown = elements(tmp_path / "fresh", "--rpc-url", devnet.url, "--ipfs-api", kubo_node.api_url, "show", element["record_id"])
    assert shown.returncode == 0, shown.stderr
    assert "tensor   encoder.layer.0." in shown.stdout and "unavailable" not in shown.stdout


def test_the_devnet_restarts_from_its_state_file_with_every_record(world):
    devnet, home, record = world["devnet"], world["home"], world["report"]["composition"]["record_id"]
    code, out, err = devnet.stop()
    assert code == 0, err
    assert f"devnet stopped; state saved to {devnet.state}" in out and devnet.state.is_file()
    down = one_line_error(elements(home, *NET, "ls"))
    assert "elements devnet" in down

    banner = devnet.start()
    assert "devnet running" in banner
    shown = elements(home, *NET, "show", record)
    assert shown.returncode == 0, shown.stderr
    assert f"record     {record}" in shown.stdout and "kind       composition" in shown.stdout
    listed = json.loads(elements(home, *NET, "ls", "--json").stdout)
    assert {r["record_id"] for r in world["report"]["records"]} <= {r["record_id"] for r in listed}
    assert f"funded keystore alice: {world['alice']}" in banner  # her balance survived the restart
