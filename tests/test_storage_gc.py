"""registry.storage.gc and .roots: what ELEMENTS_HOME holds, and which blocks gc frees (only those no
record of yours, no pin and no recent assembly reaches, older than the grace period)."""

from __future__ import annotations

import json
import os
import time

import pytest

from registry.formats.content_id import canonical_json
from registry.storage.blockstore import BlockStore
from registry.storage.gc import GcBusyError, home_usage, plan_gc, run_gc, store_lock
from registry.storage.roots import assemblies, note_assembly, pin, pins, unpin
from registry.storage.unixfs import Profile, file_size
from tests.cli_support import elements, one_line_error

TINY = Profile("tiny", 1, True, 1000, 3)


def age(home, seconds: float = 7200) -> None:
    """Make every file under the block store ``seconds`` old (past gc's grace period)."""
    old = time.time() - seconds
    for path in (home / "blocks").rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))


def dag_files(store: BlockStore, cid) -> set:
    return {store.path_of(c) for c, _ in store.blocks(cid)}


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def store(home):
    return BlockStore(home / "blocks")


def manifest_over(store: BlockStore, data_cid) -> object:
    document = {"format": "elements.manifest/v1", "kind": "file", "content_id": "0x" + "11" * 32,
                "data": {"cid": str(data_cid), "size": file_size(data_cid, store.get), "name": "x"}}
    return store.add_file(canonical_json(document))


def test_gc_keeps_published_documents_their_data_pins_and_recent_assemblies_and_frees_the_rest(home, store):
    published_data = store.add_file(os.urandom(5000), TINY)
    published = manifest_over(store, published_data)
    pinned = store.add_file(os.urandom(4000), TINY)
    assembled = store.add_file(os.urandom(3000), TINY)
    stale = store.add_file(os.urandom(2000), TINY)
    garbage = store.add_file(os.urandom(6000), TINY)
    pin(home, pinned)
    note_assembly(home, "0x" + "ab" * 32, "0x" + "cd" * 32, home / "out", [str(assembled)])
    note_assembly(home, "0x" + "ef" * 32, "0x" + "cd" * 32, home / "old", [str(stale)], now=time.time() - 30 * 86400)
    age(home)
    keep = set().union(*(dag_files(store, c) for c in (published, published_data, pinned, assembled)))
    free = (dag_files(store, stale) | dag_files(store, garbage)) - keep
    plan = plan_gc(home, store, [str(published)])
    assert plan.roots == {"published": 1, "pins": 1, "recent_assemblies": 1}
    assert {p for p, _ in plan.garbage} == free
    assert plan.garbage_bytes == sum(p.stat().st_size for p in free)
    assert run_gc(plan) == plan.garbage_bytes
    assert all(p.is_file() for p in keep) and not any(p.exists() for p in free)
    assert store.missing(published_data) == [] and store.missing(pinned) == [] and store.missing(assembled) == []


def test_blocks_younger_than_the_grace_period_are_kept_whatever_references_them(home, store):
    fresh = store.add_file(os.urandom(5000), TINY)
    plan = plan_gc(home, store, grace=3600)
    assert plan.garbage == [] and plan.young == len(dag_files(store, fresh))
    assert len(plan_gc(home, store, grace=0).garbage) == len(dag_files(store, fresh))


def test_gc_frees_the_derived_caches_and_a_dry_plan_removes_nothing(home, store):
    (home / "cache" / "elements").mkdir(parents=True)
    (home / "cache" / "elements" / "bafyexported").write_bytes(b"x" * 10_000)
    (home / "cache" / "compositions").mkdir(parents=True)
    (home / "cache" / "compositions" / "build").write_bytes(b"y" * 100)
    plan = plan_gc(home, store)
    assert [p.name for p, _ in plan.caches] == ["elements"] and plan.cache_bytes >= 10_000
    assert (home / "cache" / "elements" / "bafyexported").is_file()  # planning removes nothing
    run_gc(plan)
    assert not (home / "cache" / "elements").exists()
    assert (home / "cache" / "compositions" / "build").is_file()  # built once, costly: kept
    assert not [p for p in (home / "cache").iterdir() if p.name.startswith(".")]


def test_gc_does_not_run_while_an_assembly_holds_the_store(store):
    with store_lock(store, exclusive=False):
        with pytest.raises(GcBusyError, match="run `elements gc` again"):
            with store_lock(store, exclusive=True):
                pass
    with store_lock(store, exclusive=True):
        pass


def test_pins_and_assembly_notes_are_whole_files_and_unreadable_notes_keep_nothing(home, store):
    cid = store.add_file(b"pinned")
    pin(home, cid)
    assert pins(home) == [cid]
    assert unpin(home, cid) and not unpin(home, cid) and pins(home) == []
    note_assembly(home, "0x" + "12" * 32, "0x" + "34" * 32, home / "out", [str(cid)])
    (home / "assemblies" / "broken.json").write_text("{not json")
    [note] = assemblies(home)
    assert note.cids == (str(cid),) and note.record == "0x" + "12" * 32
    assert not [p for p in (home / "assemblies").iterdir() if p.name.startswith(".")]


def test_home_usage_counts_each_kind_once(home, store):
    store.add_file(os.urandom(3000), TINY)
    (home / "cache" / "data").mkdir(parents=True)
    (home / "cache" / "data" / "f").write_bytes(b"z" * 5000)
    (home / "config.json").write_text("{}")
    usage = home_usage(home)
    assert usage.kinds["blocks"][0] == len(list((home / "blocks").glob("[!.]*/*")))  # the blocks, not the writes in progress
    assert usage.kinds["blocks/.staging"][0] == len([p for p in (home / "blocks" / ".staging").rglob("*") if p.is_file()])
    assert usage.kinds["cache/data"][0] == 1 and usage.kinds["other"][0] == 1
    assert usage.total == sum(b for _, b in usage.kinds.values())


def test_gc_on_the_in_process_chain_refuses_in_one_line_since_it_cannot_know_your_records(tmp_path):
    error = one_line_error(elements(tmp_path / "home", "gc"))
    assert "--network" in error and "--no-chain" in error


def test_cache_and_gc_no_chain_as_a_user_runs_them(tmp_path):
    home = tmp_path / "home"
    store = BlockStore(home / "blocks")
    kept = store.add_file(os.urandom(3000), TINY)
    store.add_file(os.urandom(3000), TINY)
    age(home)
    pinned = elements(home, "cache", "--pin", str(kept), "--json")
    assert pinned.returncode == 0, pinned.stderr
    shown = json.loads(pinned.stdout)
    assert shown["pins"] == [str(kept)] and shown["kinds"]["blocks"]["files"] == len(list((home / "blocks").glob("[!.]*/*")))
    dry = elements(home, "gc", "--no-chain", "--dry-run")
    assert dry.returncode == 0, dry.stderr and "would free" in dry.stdout
    done = json.loads(elements(home, "gc", "--no-chain", "--json").stdout)
    assert done["freed_bytes"] > 0 and store.missing(kept) == []
    assert "is not pinned" in one_line_error(elements(home, "cache", "--unpin", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"))


# ------------------------------------------------------------------------------ a size limit (LRU)


def used(files: set, days_ago: float) -> None:
    """Set ``files`` as last written and read ``days_ago`` days ago. (Reading a block afterwards
    would move its access time to now, as it does for a user: tests list the files first.)"""
    when = time.time() - days_ago * 86400
    for path in files:
        os.utime(path, (when, when))


def size_of(files: set) -> int:
    return sum(p.stat().st_size for p in files)


def test_a_size_limit_evicts_the_least_recently_used_unneeded_blocks_and_keeps_the_rest_as_a_cache(home, store):
    pinned = store.add_file(os.urandom(4000), TINY)
    dags = [store.add_file(os.urandom(3000 + i), TINY) for i in range(3)]
    pin(home, pinned)
    files = {cid: dag_files(store, cid) for cid in (pinned, *dags)}
    oldest, older, newest = (files[c] for c in dags)
    for cid, days in zip((pinned, *dags), (90, 30, 20, 10)):
        used(files[cid], days)
    limit = size_of(files[pinned]) + size_of(older) + size_of(newest)
    plan = plan_gc(home, store, max_size=limit)
    assert {p for p, _ in plan.garbage} == oldest
    assert plan.cached == len(older | newest) and plan.over_limit == 0
    smaller = plan_gc(home, store, max_size=limit - 1)  # one byte less: one block of the next oldest goes too
    extra = {p for p, _ in smaller.garbage} - oldest
    assert len(extra) == 1 and extra <= older
    run_gc(plan)
    assert size_of(set((home / "blocks").glob("[!.]*/*"))) <= limit
    assert all(p.is_file() for p in files[pinned] | older | newest) and not any(p.exists() for p in oldest)


def test_an_old_assembly_note_counts_as_a_use_of_the_blocks_it_read(home, store):
    assembled = store.add_file(os.urandom(3000), TINY)
    fetched = store.add_file(os.urandom(3000), TINY)
    assembled_files, fetched_files = dag_files(store, assembled), dag_files(store, fetched)
    used(assembled_files, 40)
    used(fetched_files, 5)
    note_assembly(home, "0x" + "ab" * 32, "0x" + "cd" * 32, home / "out", [str(assembled)], now=time.time() - 2 * 86400)
    plan = plan_gc(home, store, keep_days=1, max_size=size_of(assembled_files))  # the note is no root: too old
    assert plan.roots["recent_assemblies"] == 0
    assert {p for p, _ in plan.garbage} == fetched_files


def test_needed_blocks_are_never_evicted_and_the_excess_over_the_limit_is_reported(home, store):
    pinned = store.add_file(os.urandom(9000), TINY)
    unneeded = store.add_file(os.urandom(2000), TINY)
    pin(home, pinned)
    pinned_files, unneeded_files = dag_files(store, pinned), dag_files(store, unneeded)
    age(home)
    plan = plan_gc(home, store, max_size=1000)
    assert {p for p, _ in plan.garbage} == unneeded_files
    assert plan.over_limit == size_of(pinned_files) - 1000 and plan.cached == 0
    run_gc(plan)
    assert store.missing(pinned) == []


def test_gc_max_size_and_the_cache_limit_config_as_a_user_runs_them(tmp_path):
    home = tmp_path / "home"
    store = BlockStore(home / "blocks")
    old = store.add_file(os.urandom(3000), TINY)
    new = store.add_file(os.urandom(3000), TINY)
    old_files, new_files = dag_files(store, old), dag_files(store, new)
    used(old_files, 30)
    used(new_files, 2)
    limit, old_bytes = size_of(new_files), size_of(old_files)
    dry = json.loads(elements(home, "gc", "--no-chain", "--max-size", str(limit), "--dry-run", "--json").stdout)
    assert dry["max_size"] == limit and dry["garbage_blocks"] == len(old_files) and dry["freed_bytes"] == 0
    assert "is not a size" in one_line_error(elements(home, "gc", "--no-chain", "--max-size", "lots"))
    assert "is not a size" in one_line_error(elements(home, "config", "set", "cache_limit", "lots"))
    assert elements(home, "config", "set", "cache_limit", f"{limit}B").returncode == 0
    done = json.loads(elements(home, "gc", "--no-chain", "--json").stdout)  # the config's limit applies
    assert done["max_size"] == limit and done["freed_bytes"] == old_bytes
    assert all(p.is_file() for p in new_files) and not any(p.exists() for p in old_files)
    unlimited = json.loads(elements(home, "gc", "--no-chain", "--max-size", "none", "--json").stdout)
    assert unlimited["max_size"] is None and not any(p.exists() for p in new_files)


def test_gc_never_follows_a_symlinked_shard_out_of_the_store(home, store, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku").write_bytes(b"someone else's file")
    old = time.time() - 7 * 86400
    os.utime(victim / "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", (old, old))
    (victim / "draft.tmp").write_bytes(b"their draft")  # what clean_incomplete removes from a shard
    os.utime(victim / "draft.tmp", (old, old))
    store.root.mkdir(parents=True, exist_ok=True)
    (store.root / "zz").symlink_to(victim)  # placed by another user of a shared home
    with store_lock(store, exclusive=True):
        run_gc(plan_gc(home, store, grace=0))
    assert (victim / "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku").read_bytes() == b"someone else's file"
    assert (victim / "draft.tmp").read_bytes() == b"their draft"
