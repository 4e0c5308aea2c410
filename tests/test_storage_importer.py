"""Several files through one importer pool (registry.storage.importer.add_files): each gets the CID
and the blocks add_file gives it alone, in order, whatever its size or kind of source."""

from __future__ import annotations

import io
import random
import threading

import pytest

from registry.errors import InputError
from registry.storage.blockstore import BlockStore
from registry.storage.importer import BATCH_BYTES, add_file, add_files

MiB = 1 << 20


class Recording:
    """A block sink that keeps every block it is given (a copy: the parts are the importer's buffers)."""

    def __init__(self) -> None:
        self.blocks: dict[object, bytes] = {}
        self.lock = threading.Lock()

    def put(self, cid, data, *, trusted=False):
        block = b"".join(bytes(p) for p in data) if isinstance(data, (list, tuple)) else bytes(data)
        with self.lock:
            self.blocks[cid] = block
        return cid


def sources(tmp_path):
    rng = random.Random(20261130)
    path = tmp_path / "on-disk.bin"
    path.write_bytes(rng.randbytes(3 * BATCH_BYTES + 12345))
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    return [
        rng.randbytes(100),                                   # one small leaf
        lambda: io.BytesIO(rng.randbytes(2 * BATCH_BYTES + 1)),  # a stream: batches plus one byte
        path,                                                 # a memory map
        b"",                                                  # nothing at all
        rng.randbytes(5 * MiB),                               # under one batch, after large ones
        empty,
        lambda: io.BytesIO(rng.randbytes(BATCH_BYTES)),       # exactly one batch
    ]


def materialised(items):
    return [item() if callable(item) else item for item in items]


def replay(items):
    """The same sources again (a stream is read once)."""
    out = []
    for item in items:
        out.append(io.BytesIO(item.getvalue()) if isinstance(item, io.BytesIO) else item)
    return out


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_each_file_gets_the_cid_and_blocks_it_gets_alone(tmp_path, workers):
    items = materialised(sources(tmp_path))
    alone_store, together_store = Recording(), Recording()
    alone = [add_file(item, alone_store, workers=workers) for item in replay(items)]
    seen: list[tuple[int, object]] = []
    together = add_files(replay(items), together_store, workers=workers, done=lambda i, cid: seen.append((i, cid)))
    assert together == alone
    assert seen == list(enumerate(alone))
    assert together_store.blocks == alone_store.blocks


def test_progress_counts_every_byte_of_every_file(tmp_path):
    items = materialised(sources(tmp_path))
    sizes = [len(i) if isinstance(i, bytes) else len(i.getvalue()) if isinstance(i, io.BytesIO) else i.stat().st_size
             for i in items]
    counted = []
    add_files(items, None, workers=2, progress=counted.append)
    assert sum(counted) == sum(sizes)


def test_sources_are_taken_one_at_a_time_while_the_one_before_is_stored(tmp_path):
    taken: list[int] = []
    ahead: list[int] = []

    def lazily():
        for i in range(4):
            taken.append(i)
            yield io.BytesIO(bytes([i]) * (3 * BATCH_BYTES + 7))

    # Four batches a file, a window of four batches (two workers): when a file is done, the next
    # may be open, never the one after it.
    cids = add_files(lazily(), None, workers=2, done=lambda i, cid: ahead.append(len(taken) - 1 - i))
    assert taken == [0, 1, 2, 3]
    assert all(0 <= n <= 1 for n in ahead), ahead
    assert cids == [add_file(bytes([i]) * (3 * BATCH_BYTES + 7)) for i in range(4)]


class Failing(io.RawIOBase):
    """A stream that breaks after ``good`` bytes."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.left <= 0:
            raise OSError("the disk went away")
        n = min(len(buffer), self.left)
        buffer[:n] = b"\x07" * n
        self.left -= n
        return n


def test_a_source_that_fails_midway_raises_and_leaves_no_thread_behind(tmp_path):
    before = threading.active_count()
    with pytest.raises(OSError, match="the disk went away"):
        add_files([io.BytesIO(b"\x01" * (3 * BATCH_BYTES)), Failing(2 * BATCH_BYTES + 5), b"never read"],
                  BlockStore(tmp_path / "store"), workers=2)
    assert threading.active_count() == before


def test_an_unreadable_path_among_them_is_an_input_error(tmp_path):
    with pytest.raises(InputError):
        add_files([b"fine", tmp_path / "missing.bin"], None, workers=2)
