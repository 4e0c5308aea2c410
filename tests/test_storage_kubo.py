"""The Kubo RPC client against a real Kubo 0.42 daemon, a dead port and a garbage server;
and the evidence for not using ipfshttpclient."""

from __future__ import annotations

import io
import json
import random
import warnings

import pytest

from registry.errors import ServiceError
from registry.storage import kubo as kubo_module
from registry.storage.blockstore import BlockStore
from registry.storage.cid import CID
from registry.storage.errors import BlockIntegrityError, BlockNotFoundError, KuboError
from registry.storage.kubo import Kubo
from registry.storage.unixfs import Profile, add_file

from tests.kubo_fixtures import free_port

pytestmark = pytest.mark.kubo


def test_public_names_are_exported():
    for name in kubo_module.__all__:
        assert hasattr(kubo_module, name)


def test_multiaddr_and_bare_host_port_api_addresses_are_understood():
    assert Kubo("/ip4/127.0.0.1/tcp/5001").url == "http://127.0.0.1:5001"
    assert Kubo("127.0.0.1:5001/").url == "http://127.0.0.1:5001"
    assert Kubo("http://h:1/api/v0").url == "http://h:1"


def test_version_reports_the_running_kubo(kubo_node):
    assert kubo_node.client().version() == "0.42.0"
    assert kubo_node.client().id()["ID"] == kubo_node.peer_id


def test_put_dag_keeps_our_cids_and_pins_the_root(kubo_node, tmp_path):
    store = BlockStore(tmp_path / "blocks")
    data = random.Random("put-dag").randbytes(2_500_000)
    root = store.add_file(data)  # unixfs-v1-2025: not the node's own import settings
    kubo = kubo_node.client()
    assert not kubo.has(root)
    assert kubo.put_dag(root, store.get) == root
    assert kubo.has(root)
    assert kubo.pin_ls(root) == {root: "recursive"}
    assert root in kubo.pin_ls()
    assert kubo.is_pinned(root)
    assert b"".join(kubo.cat(root)) == data
    assert kubo.cat_unverified(root) == data
    for cid, block in store.blocks(root):
        assert kubo.block_get(cid) == block
        assert kubo.block_stat(cid) == len(block)


def test_dag_export_brings_a_kubo_dag_into_the_store_verified(kubo_node, tmp_path):
    data = random.Random("export").randbytes(1_500_000)
    cid = kubo_node.ipfs("add", "--quieter", "--chunker=size-100000", input=data).stdout.decode().strip()
    store = BlockStore(tmp_path / "blocks")
    result = kubo_node.client().dag_export(cid, store)
    assert [str(r) for r in result.roots] == [cid]
    assert result.blocks == 16  # 15 dag-pb leaves and their parent
    assert b"".join(store.cat(cid)) == data


def test_pin_add_and_pin_rm(kubo_node):
    kubo = kubo_node.client()
    cid = kubo.block_put(b"a block to pin")
    assert cid == CID.of(b"a block to pin")
    kubo.pin_add(cid)
    assert kubo.is_pinned(cid)
    kubo.pin_rm(cid)
    assert kubo.pin_ls(cid) == {}


def test_add_only_hash_with_cid_version_1_agrees_with_our_importer(kubo_node):
    data = random.Random("add").randbytes(700_000)
    kubo = kubo_node.client()
    assert kubo.add_only_hash(data, {"cid-version": 1}) == add_file(data, profile="cidv1")
    assert kubo.add_only_hash(data) == add_file(data, profile="unixfs-v0-2015")
    flags = {"cid-version": 1, "raw-leaves": True, "chunker": "size-1048576", "max-file-links": 1024}
    assert kubo.add_only_hash(data, flags) == add_file(data, profile="unixfs-v1-2025")


def test_an_unknown_block_is_not_found_without_waiting_on_the_network(kubo_node, tmp_path):
    kubo = kubo_node.client()
    absent = CID.of(b"no node has this block " + random.randbytes(8))
    with pytest.raises(BlockNotFoundError) as info:
        kubo.block_get(absent, offline=True)
    assert info.value.cid == absent and kubo_node.api_url in str(info.value)
    assert not kubo.has(absent)
    with pytest.raises(BlockNotFoundError):
        kubo.dag_export(absent, BlockStore(tmp_path / "blocks"), offline=True)
    assert not (tmp_path / "blocks").exists()


def test_a_node_that_is_down_is_a_service_error_naming_the_fix():
    kubo = Kubo(f"http://127.0.0.1:{free_port()}", timeout=5)
    with pytest.raises(KuboError) as info:
        kubo.version()
    assert isinstance(info.value, ServiceError) and isinstance(info.value, ConnectionError)
    assert "unreachable" in str(info.value) and "--ipfs-api" in str(info.value)


def test_a_server_that_is_not_kubo_is_refused_as_garbage(hostile_server):
    hostile_server.route("POST", "/api/v0/version", b"<html>hello</html>", headers={"Content-Type": "text/html"})
    with pytest.raises(KuboError, match="not Kubo's API"):
        Kubo(hostile_server.url).version()
    hostile_server.route("POST", "/api/v0/version", json.dumps({"Version": 42}).encode())
    with pytest.raises(KuboError, match="not Kubo's API"):
        Kubo(hostile_server.url).version()
    with pytest.raises(KuboError, match="not Kubo's API"):  # 404 for everything else
        Kubo(hostile_server.url).pin_ls()


def test_a_node_that_returns_other_bytes_for_a_block_is_caught(hostile_server, tmp_path):
    cid = CID.of(b"the real block")
    hostile_server.route("POST", "/api/v0/block/get", b"a forged block")
    with pytest.raises(BlockIntegrityError) as info:
        Kubo(hostile_server.url).block_get(cid)
    assert info.value.cid == cid


def test_a_node_that_streams_a_forged_dag_stores_nothing(hostile_server, tmp_path):
    source = BlockStore(tmp_path / "source")
    root = source.add_file(random.Random(1).randbytes(5000), profile=Profile("t", 1, True, 1000, 3))
    from registry.storage.car import export_car

    out = io.BytesIO()
    export_car(root, source.get, out)
    forged = bytearray(out.getvalue())
    forged[-3] ^= 1
    hostile_server.route("POST", "/api/v0/dag/export", bytes(forged))
    target = BlockStore(tmp_path / "target")
    with pytest.raises(BlockIntegrityError):
        Kubo(hostile_server.url).dag_export(root, target)
    assert not target.root.exists() or not any(p.is_file() for p in target.root.rglob("*"))


# -- why not ipfshttpclient -----------------------------------------------------------------------


@pytest.fixture
def ipfshttpclient():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import ipfshttpclient
    return ipfshttpclient


def test_ipfshttpclient_connect_refuses_kubo_0_42(ipfshttpclient, kubo_node):
    assert ipfshttpclient.__version__ == "0.7.0"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ipfshttpclient.exceptions.VersionMismatch) as info:
            ipfshttpclient.connect(f"/ip4/127.0.0.1/tcp/{kubo_node.api_port}/http")
    assert "0.42.0" in str(info.value) and "0.8.0" in str(info.value)


def test_ipfshttpclient_add_with_cid_version_1_gives_another_cid_than_kubo_and_us(ipfshttpclient, kubo_node):
    data = b"hello world"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = ipfshttpclient.Client(f"/ip4/127.0.0.1/tcp/{kubo_node.api_port}/http")  # skips the version check
        theirs = client.add(io.BytesIO(data), cid_version=1, only_hash=True)["Hash"]
        client.close()
    kubo_cli = kubo_node.ipfs("add", "--quieter", "--only-hash", "--cid-version=1", input=data).stdout.decode().strip()
    ours = str(add_file(data, profile="cidv1"))
    assert kubo_cli == ours == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    assert theirs == "bafybeihykld7uyxzogax6vgyvag42y7464eywpf55gxi5qpoisibh3c5wa"  # dag-pb leaf: raw-leaves=false
    assert theirs != ours


def test_ipfshttpclient_dag_import_fails_on_a_car_with_two_roots(ipfshttpclient, kubo_node, tmp_path):
    store = BlockStore(tmp_path / "blocks")
    roots = [store.add_file(b"first root"), store.add_file(b"second root")]
    car = tmp_path / "two.car"
    from registry.storage.car import export_car

    export_car(roots, store.get, car)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = ipfshttpclient.Client(f"/ip4/127.0.0.1/tcp/{kubo_node.api_port}/http")
        with open(car, "rb") as f, pytest.raises(AssertionError):
            client.dag.imprt(f)
        client.close()
    assert sorted(kubo_node.client().dag_import(car)) == sorted(roots)  # every root line (Kubo orders them freely)


@pytest.mark.parametrize("name", ["keccak-256", "blake2b-256", "sha3-256"])
def test_dags_hashed_with_other_functions_come_from_kubo_verified(kubo_node, tmp_path, name):
    data = random.Random(name).randbytes(600_000)
    cid = kubo_node.ipfs("add", "--quieter", f"--hash={name}", input=data).stdout.decode().strip()
    kubo = kubo_node.client()
    store = BlockStore(tmp_path / "blocks")
    result = kubo.dag_export(cid, store)
    assert [str(r) for r in result.roots] == [cid] and result.blocks == 4  # 3 raw leaves of 256 KiB and the root
    assert b"".join(kubo.cat(cid)) == data == b"".join(store.cat(cid))
    assert all(c.hash_name == name for c, _ in store.blocks(cid))


def test_a_node_that_returns_other_bytes_for_a_blake2b_block_is_caught(hostile_server):
    cid = CID.of(b"the real block", hash_code=0xB220)
    hostile_server.route("POST", "/api/v0/block/get", b"a forged block", headers={"Content-Type": "text/plain"})
    with pytest.raises(BlockIntegrityError) as info:
        Kubo(hostile_server.url).block_get(cid)
    assert info.value.cid == cid
