"""Notes of data DAGs checked against an element's content id (registry.storage.checked)."""

from __future__ import annotations

import os

from registry.storage.blockstore import BlockStore
from registry.storage.checked import CHECKED, is_checked, note_all_checked, note_checked
from registry.storage.dagfile import DagFile

CONTENT_ID = "0x" + "ab" * 32


def test_a_note_names_the_pair_it_was_written_for_and_no_other(tmp_path):
    store = BlockStore(tmp_path / "blocks")
    data = store.add_file(os.urandom(3 << 20))
    other = store.add_file(os.urandom(1000))
    assert not is_checked(tmp_path, CONTENT_ID, data)
    note_checked(tmp_path, CONTENT_ID, data, DagFile(data, store).block_paths())
    assert is_checked(tmp_path, CONTENT_ID, data) and is_checked(tmp_path, CONTENT_ID.upper().replace("0X", "0x"), str(data))
    assert not is_checked(tmp_path, "0x" + "cd" * 32, data) and not is_checked(tmp_path, CONTENT_ID, other)
    assert [p.name for p in (tmp_path / CHECKED).iterdir()] == [f"{'ab' * 32}-{data}"]
    assert (tmp_path / CHECKED / f"{'ab' * 32}-{data}").stat().st_size == 0


def test_the_block_paths_of_a_dag_are_its_root_its_inner_nodes_and_every_leaf(tmp_path):
    store = BlockStore(tmp_path / "blocks")
    data = store.add_file(os.urandom((3 << 20) + 5))
    paths = list(DagFile(data, store).block_paths())
    assert sorted(paths) == sorted(store.path_of(cid) for cid, _ in store.blocks(data))
    assert len(paths) == 5  # the root and four 1 MiB leaves (the last one short)


def test_several_pairs_are_noted_after_one_flush_of_all_their_blocks_and_no_pairs_write_nothing(tmp_path):
    store = BlockStore(tmp_path / "blocks")
    first, second = store.add_file(os.urandom(2 << 20)), store.add_file(os.urandom(5000))
    blocks = [*DagFile(first, store).block_paths(), *DagFile(second, store).block_paths(), tmp_path / "blocks" / "gone" / "x"]
    assert note_all_checked(tmp_path, [], blocks) == 0 and not (tmp_path / CHECKED).exists()
    assert note_all_checked(tmp_path, [(CONTENT_ID, first), ("0x" + "cd" * 32, str(second))], blocks) == 2
    assert is_checked(tmp_path, CONTENT_ID, first) and is_checked(tmp_path, "0x" + "cd" * 32, second)
    assert not is_checked(tmp_path, CONTENT_ID, second)
