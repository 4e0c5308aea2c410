"""registry.storage.dagfile: a UnixFS file read in place from the block store, verified block by block."""

from __future__ import annotations

import io
import os
import random

import pytest

from registry.storage.blockstore import BlockStore
from registry.storage.cid import RAW
from registry.storage.dagfile import DagFile
from registry.storage.errors import BlockIntegrityError, BlockNotFoundError
from registry.storage.unixfs import Profile

PROFILES = ["unixfs-v1-2025", "unixfs-v0-2015", "cidv1", Profile("tiny-raw", 1, True, 1000, 3), Profile("tiny-v0", 0, False, 1000, 3)]
SIZES = [0, 1, 999, 1000, 1001, 3000, 3001, 9001, 27001, 2 * 1024 * 1024 + 5]


@pytest.fixture
def store(tmp_path):
    return BlockStore(tmp_path / "blocks")


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p if isinstance(p, str) else p.name)
def test_every_byte_range_reads_and_copies_as_the_file_holds_it(store, tmp_path, profile):
    rng = random.Random(17)
    for size in SIZES:
        data = rng.randbytes(size)
        cid = store.add_file(data, profile)
        reader = DagFile(cid, store)
        assert reader.size == size and reader.read() == data
        for _ in range(12):
            start = rng.randrange(0, size + 1)
            end = rng.randrange(start, size + 1)
            buffer = bytearray(end - start)
            assert reader.pread(buffer, start) == end - start and bytes(buffer) == data[start:end]
            fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT | os.O_TRUNC)
            try:
                reader.copy_to(fd, 3, start, end - start)
            finally:
                os.close(fd)
            assert (tmp_path / "out").read_bytes()[3:] == data[start:end]


def test_it_is_a_seekable_file_object(store):
    data = random.Random(1).randbytes(5000)
    reader = DagFile(store.add_file(data, Profile("tiny", 1, True, 1000, 3)), store)
    assert reader.seek(-10, io.SEEK_END) == 4990 and reader.read() == data[-10:]
    reader.seek(1234)
    assert reader.read(100) == data[1234:1334] and reader.tell() == 1334
    assert io.BufferedReader(DagFile(reader.root, store)).read() == data


def test_a_rotten_leaf_is_refused_on_read_and_removed_from_the_store(store):
    data = random.Random(2).randbytes(5000)
    cid = store.add_file(data, Profile("tiny", 1, True, 1000, 3))
    leaf = [c for c, _ in store.blocks(cid) if c.codec == RAW][2]  # bytes 2000..2999
    store.path_of(leaf).write_bytes(b"\0" * 1000)
    reader = DagFile(cid, store)
    assert reader.pread(bytearray(1000), 0) == 1000  # the sound leaves still read
    with pytest.raises(BlockIntegrityError, match=str(leaf)):
        reader.pread(bytearray(10), 2500)
    assert not store.has(leaf)
    with pytest.raises(BlockNotFoundError):
        reader.pread(bytearray(10), 2500)


def test_a_kernel_copy_refuses_a_leaf_of_the_wrong_length(store, tmp_path):
    data = random.Random(3).randbytes(5000)
    cid = store.add_file(data, Profile("tiny", 1, True, 1000, 3))
    leaf = [c for c, _ in store.blocks(cid) if c.codec == RAW][1]
    store.path_of(leaf).write_bytes(b"short")
    fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(BlockIntegrityError, match="parent says 1,000"):
            DagFile(cid, store).copy_to(fd, 0, 0, 5000)
    finally:
        os.close(fd)


def test_reading_holds_one_leaf_and_the_inner_nodes_not_the_file(store):
    data = random.Random(4).randbytes(40_000)
    reader = DagFile(store.add_file(data, Profile("tiny", 1, True, 1000, 3)), store)
    assert reader.read() == data
    inner = [c for c, _ in store.blocks(reader.root) if c.codec != RAW]
    assert set(reader._nodes) == set(inner) and len(reader._leaf[1]) == 1000  # the inner nodes and one leaf, no more


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p if isinstance(p, str) else p.name)
def test_a_complete_file_misses_nothing_as_the_store_says(store, profile):
    for size in (0, 1, 3001, 27001):
        cid = store.add_file(random.Random(size).randbytes(size), profile)
        assert DagFile(cid, store).missing() == store.missing(cid) == []


def test_a_file_missing_a_leaf_or_an_inner_node_names_what_the_store_would(store):
    data = random.Random(5).randbytes(27_001)
    cid = store.add_file(data, Profile("tiny", 1, True, 1000, 3))
    blocks = [c for c, _ in store.blocks(cid)]
    leaf = [c for c in blocks if c.codec == RAW][4]
    inner = [c for c in blocks if c.codec != RAW and c != cid][1]
    store.delete(leaf)
    store.path_of(inner).write_bytes(b"rot")  # corrupt: removed when read, and counted as missing
    reader = DagFile(cid, store)
    found = reader.missing()
    assert inner in found and not store.has(inner)
    assert sorted(map(str, found)) == sorted(map(str, store.missing(cid)))


def test_the_completeness_check_reads_each_inner_node_once_for_every_read_after_it(store, monkeypatch):
    data = random.Random(6).randbytes(27_001)
    cid = store.add_file(data, Profile("tiny", 1, True, 1000, 3))
    reads: list = []
    real_get = store.get
    monkeypatch.setattr(store, "get", lambda c: reads.append(c) or real_get(c))
    reader = DagFile(cid, store)
    assert reader.missing() == []
    inner = [c for c, _ in BlockStore(store.root).blocks(cid) if c.codec != RAW]
    assert sorted(map(str, reads)) == sorted(map(str, inner))  # each inner node once, no leaf hashed
    reads.clear()
    assert reader.read() == data
    assert all(c.codec == RAW for c in reads)  # reading decodes no node again


def test_a_trusted_read_gives_the_bytes_of_a_verified_one_without_hashing_a_leaf(store, monkeypatch):
    data = random.Random(7).randbytes(27_001)
    cid = store.add_file(data, Profile("tiny", 1, True, 1000, 3))
    reader = DagFile(cid, store)
    reader.missing()  # the inner nodes, read and checked
    hashed: list = []
    real_get = store.get
    monkeypatch.setattr(store, "get", lambda c: hashed.append(c) or real_get(c))
    rng = random.Random(8)
    for _ in range(30):
        start = rng.randrange(0, len(data) + 1)
        end = rng.randrange(start, len(data) + 1)
        buffer = bytearray(end - start + 5)
        assert reader.pread_trusted(buffer, start) == min(len(buffer), len(data) - start)
        assert bytes(buffer[:end - start]) == data[start:end]
    assert hashed == []


def test_a_trusted_read_takes_a_rotten_leaf_as_it_is_but_not_a_missing_or_short_one(store):
    # The checked trade: bytes of the right length are not hashed here (the verified read and
    # `elements assemble --verify-blocks` catch them); an absent or resized block is still refused.
    data = random.Random(9).randbytes(5000)
    cid = store.add_file(data, Profile("tiny", 1, True, 1000, 3))
    leaves = [c for c, _ in store.blocks(cid) if c.codec == RAW]
    reader = DagFile(cid, store)
    store.path_of(leaves[1]).write_bytes(b"\1" * 1000)
    buffer = bytearray(10)
    reader.pread_trusted(buffer, 1000)
    assert bytes(buffer) == b"\1" * 10
    with pytest.raises(BlockIntegrityError, match=str(leaves[1])):
        reader.pread(buffer, 1000)
    store.path_of(leaves[2]).write_bytes(b"short")
    with pytest.raises(BlockIntegrityError, match="parent says 1,000"):
        reader.pread_trusted(buffer, 2000)
    store.delete(leaves[3])
    with pytest.raises(BlockNotFoundError):
        reader.pread_trusted(buffer, 3000)
