"""The UnixFS importer: a file's bytes into leaves and dag-pb File nodes, CIDs exactly Kubo's
(the layout rules and profiles are in :mod:`registry.storage.unixfs`).

Speed: leaves are hashed (and handed to the block sink) in batches by a thread pool (hashlib
releases the GIL, and so does the write of a block), straight from a memory map of the file
(pages dropped again once hashed, so memory stays flat) or from a stream read into a few
batch buffers that are used again and again: a fresh buffer per batch costs more in page faults
than the copy into it. Inner nodes, one per ``max_links`` leaves, are built on the calling thread.
Each byte is hashed once per CID, and a stream's producer (an element stream, hashing each tensor
as it passes) fills a buffer while the pool hashes the ones before it.
"""

from __future__ import annotations

import io
import mmap
import os
import stat
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, Protocol, Sequence, Union

from ..errors import InputError
from . import multihash as mh
from .cid import CID, DAG_PB, RAW, encode_varint
from .dagpb import FILE, encode_link, encode_node, encode_unixfs
from .errors import CIDError
from .profiles import DEFAULT_PROFILE, Profile, get_profile

__all__ = ["BATCH_BYTES", "BlockSink", "Readable", "Source", "add_file", "add_files"]


class Readable(Protocol):
    """What add_file reads a stream through: ``read(n)``, fewer bytes only at the end (a file
    opened "rb", or a producer such as the split's element stream). A stream that also has
    ``readinto`` (as both of those do) is read into buffers that are used again."""

    def read(self, n: int, /) -> bytes | bytearray: ...


Source = Union[str, os.PathLike, bytes, bytearray, memoryview, Readable]

# Leaves are handed to the pool in batches of about this many bytes.
BATCH_BYTES = 8 * 1024 * 1024


class BlockSink(Protocol):
    """Where the importer puts blocks: anything with ``put(cid, parts, trusted=True)``. The parts
    are views of the importer's buffers, valid during the call only (a buffer is filled again
    once its batch is stored): a sink that keeps a block copies it (``bytes``)."""

    def put(self, cid: CID, data: bytes | Sequence[bytes | memoryview], *, trusted: bool = False) -> CID: ...


_Entry = tuple[bytes, int, int]  # (CID bytes, Tsize, file bytes)


class _Hashing:
    """CID bytes of blocks under one profile's CID version and hash function."""

    def __init__(self, profile: Profile, codec: int) -> None:
        self.function = mh.by_name(profile.hash)
        self.v0 = profile.cid_version == 0
        self.head = b"" if self.v0 else b"\x01" + encode_varint(codec)
        self.prefix = self._prefix(self.function.size)

    def _prefix(self, length: int) -> bytes:
        return self.head + encode_varint(self.function.code) + encode_varint(length)

    def cid_bytes(self, parts: Sequence[bytes | memoryview]) -> bytes:
        if self.function.code == mh.IDENTITY:
            block = b"".join(bytes(p) for p in parts)
            if len(block) > mh.MAX_IDENTITY:
                raise CIDError(
                    f"hash identity inlines each block in its CID, and this file has a block of {len(block)} bytes, "
                    f"over the {mh.MAX_IDENTITY}-byte limit (Kubo refuses it too); use another --hash"
                )
            return self._prefix(len(block)) + block
        hasher = self.function.new()
        for part in parts:
            hasher.update(part)
        return self.prefix + hasher.digest(self.function.size)


class _Leaves:
    """Hashes leaves of one profile; safe to call from several threads."""

    def __init__(self, profile: Profile, sink: BlockSink | None) -> None:
        self.profile = profile
        self.sink = sink
        self.hashing = _Hashing(profile, RAW if profile.raw_leaves else DAG_PB)

    def leaf(self, chunk: memoryview | bytes) -> _Entry:
        n = len(chunk)
        if self.profile.raw_leaves:
            cid_bytes = self.hashing.cid_bytes([chunk])
            if self.sink is not None:
                self.sink.put(CID.parse(cid_bytes), [chunk], trusted=True)
            return cid_bytes, n, n
        # A dag-pb leaf is `0a len(Data) | 08 02 [12 len(chunk) chunk] 18 filesize`: hash the
        # framing around the chunk instead of copying the chunk into a new buffer.
        if n:
            head = b"\x08\x02\x12" + encode_varint(n)
        else:
            head = b"\x08\x02"
        tail = b"\x18" + encode_varint(n)
        inner = len(head) + n + len(tail)
        head = b"\x0a" + encode_varint(inner) + head
        cid_bytes = self.hashing.cid_bytes([head, chunk, tail])
        if self.sink is not None:
            self.sink.put(CID.parse(cid_bytes), [head, chunk, tail], trusted=True)
        return cid_bytes, len(head) + n + len(tail), n

    def batch(self, view: memoryview, release: Callable[[], None] | None = None) -> list[_Entry]:
        size = self.profile.chunk_size
        try:
            return [self.leaf(view[i : i + size]) for i in range(0, len(view), size)]
        finally:
            view.release()
            if release is not None:
                release()


class _Tree:
    """Groups entries bottom-up into dag-pb File nodes exactly as boxo's balanced layout does."""

    def __init__(self, profile: Profile, sink: BlockSink | None) -> None:
        self.max_links = profile.max_links
        self.hashing = _Hashing(profile, DAG_PB)
        self.sink = sink
        self.levels: list[list[_Entry]] = [[]]

    def add(self, entry: _Entry, level: int = 0) -> None:
        while True:
            if level == len(self.levels):
                self.levels.append([])
            row = self.levels[level]
            row.append(entry)
            # A full node is final whatever follows: close it now so memory stays flat.
            if len(row) < self.max_links:
                return
            entry = self._node(row)
            self.levels[level] = []
            level += 1

    def finish(self) -> _Entry:
        for level, row in enumerate(self.levels):
            above = any(self.levels[level + 1 :])
            if not above and len(row) == 1:
                return row[0]
            if row:
                self.levels[level] = []
                self.add(self._node(row), level + 1)
        raise AssertionError("an import always has at least one leaf")

    def _node(self, children: list[_Entry]) -> _Entry:
        sizes = [c[2] for c in children]
        filesize = sum(sizes)
        data = encode_unixfs(FILE, b"", filesize, sizes)
        block = encode_node((encode_link(c[0], c[1]) for c in children), data)
        cid_bytes = self.hashing.cid_bytes([block])
        if self.sink is not None:
            self.sink.put(CID.parse(cid_bytes), block, trusted=True)
        return cid_bytes, len(block) + sum(c[1] for c in children), filesize


def add_file(
    source: Source,
    store: BlockSink | None = None,
    profile: str | Profile = DEFAULT_PROFILE,
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> CID:
    """Import a file as UnixFS and return its CID, as ``ipfs add`` would with that profile.

    Args:
        source: a path, bytes, or a readable binary stream; read in constant memory.
        store: where to put the blocks (a :class:`~registry.storage.blockstore.BlockStore`);
            ``None`` only computes the CID (``ipfs add --only-hash``). Leaves are put before
            the nodes that link to them and the root last.
        profile: a profile name from :data:`PROFILES` or a :class:`Profile`.
        workers: hashing threads (default: the number of CPUs, at most 8).
        progress: called with the number of file bytes hashed, batch by batch.

    Raises:
        InputError: unknown profile, unreadable path.
    """
    return add_files([source], store, profile, workers=workers, progress=progress)[0]


def add_files(
    sources: Iterable[Source],
    store: BlockSink | None = None,
    profile: str | Profile = DEFAULT_PROFILE,
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    done: Callable[[int, CID], None] | None = None,
) -> list[CID]:
    """Import files one after another, each exactly as :func:`add_file` does, through one pool:
    the first batches of a file are read (by the calling thread) while the pool still hashes and
    stores the last ones of the file before, so no core waits at each file's end. ``sources`` is
    read lazily, one source once the one before has been read to its end; ``done(index, cid)`` is
    called as each file's root is stored, in order. Returns the CIDs in order.

    Raises:
        InputError: unknown profile, unreadable path.
    """
    prof = get_profile(profile)
    leaves = _Leaves(prof, store)
    workers = workers or min(os.cpu_count() or 1, 8)
    batch = max(1, BATCH_BYTES // prof.chunk_size) * prof.chunk_size
    cids: list[CID] = []
    # In file order: a batch being hashed (its future and its file) or a file's end (None).
    pending: deque[tuple[Future | None, _FileImport]] = deque()
    in_flight = 0
    pool: ThreadPoolExecutor | None = None
    imports: list[_FileImport] = []

    def drain_one() -> None:
        nonlocal in_flight
        future, file = pending.popleft()
        if future is None:
            cids.append(file.finish(leaves))
            if done:
                done(len(cids) - 1, cids[-1])
            return
        in_flight -= 1
        file.add(future.result(), progress)

    try:
        for source in sources:
            file = _FileImport(_Reader(source), _Tree(prof, store))
            imports.append(file)
            if pool is None and workers > 1 and file.reader.large(batch):
                pool = ThreadPoolExecutor(workers, thread_name_prefix="unixfs")
            for view, release in file.reader.batches(batch):
                if pool is None:  # nothing in flight: the file's leaves in order, on this thread
                    file.add(leaves.batch(view, release), progress)
                    continue
                pending.append((pool.submit(leaves.batch, view, release), file))
                in_flight += 1
                # A bounded window keeps memory flat on streams and page-dropping on maps.
                while in_flight > workers * 2:
                    drain_one()
            pending.append((None, file))
            while pending and pending[0][0] is None:
                drain_one()
        while pending:
            drain_one()
    finally:
        for future, _ in pending:
            if future is not None:
                future.cancel()
        if pool is not None:
            pool.shutdown(wait=True)
        for file in imports:
            file.reader.close()
    return cids


class _FileImport:
    """One file of :func:`add_files`: its reader and its tree, the leaves added in order."""

    def __init__(self, reader: "_Reader", tree: _Tree) -> None:
        self.reader = reader
        self.tree = tree
        self.any_leaf = False

    def add(self, entries: list[_Entry], progress: Callable[[int], None] | None) -> None:
        self.any_leaf |= bool(entries)
        for entry in entries:
            self.tree.add(entry)
        if progress:
            progress(sum(e[2] for e in entries))

    def finish(self, leaves: _Leaves) -> CID:
        if not self.any_leaf:
            self.tree.add(leaves.leaf(b""))
        self.reader.close()  # every batch of it is hashed: its map (if any) can go
        return CID.parse(self.tree.finish()[0])


class _Reader:
    """Batches of a source as memoryviews, each with a callback run once it is hashed."""

    def __init__(self, source: Source) -> None:
        self._file = None
        self._map = None
        self._data: memoryview | None = None
        self._stream: Readable | None = None
        self.size: int | None = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._data = memoryview(source).cast("B")
            self.size = len(self._data)
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            try:
                self._file = open(path, "rb")
            except IsADirectoryError:
                raise InputError(f"{path} is a directory; give a file") from None
            except OSError as exc:
                raise InputError(f"cannot read {path}: {exc.strerror}") from None
            self.size = os.fstat(self._file.fileno()).st_size
            if self.size and _regular(self._file):
                self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
                self._data = memoryview(self._map)
            else:  # empty, a pipe or a device: read it as a stream
                self._stream = self._file
                self.size = None if not _regular(self._file) else self.size
        elif hasattr(source, "read"):
            self._stream = source
        else:
            raise InputError(f"cannot import a {type(source).__name__}; give a path, bytes or a binary stream")

    def large(self, batch: int) -> bool:
        return self.size is None or self.size > batch

    def batches(self, batch: int) -> Iterator[tuple[memoryview, Callable[[], None] | None]]:
        if self._data is not None:
            for start in range(0, len(self._data), batch):
                end = min(start + batch, len(self._data))
                yield self._data[start:end], self._dropper(start, end)
            return
        stream = self._stream
        assert stream is not None
        readinto = _readinto_of(stream)
        if readinto is None:
            while True:
                buf = _read_full(stream, batch)
                if not buf:
                    return
                yield memoryview(buf), None
                if len(buf) < batch:
                    return
        # A buffer goes back on the free list once its batch is hashed and stored (on a pool
        # thread), so the importer's window of batches in flight is also how many buffers exist.
        free: list[memoryview] = []
        lock = threading.Lock()
        while True:
            with lock:
                target = free.pop() if free else None
            if target is None:
                target = memoryview(bytearray(batch))
            got = _readinto_full(readinto, target)
            if not got:
                return

            def back(target: memoryview = target) -> None:
                with lock:
                    free.append(target)

            yield target[:got], back
            if got < batch:
                return

    def _dropper(self, start: int, end: int) -> Callable[[], None] | None:
        if self._map is None or not hasattr(mmap, "MADV_DONTNEED"):
            return None
        mapped = self._map

        def drop() -> None:
            # Hashed pages leave this process's resident set (the page cache keeps them).
            page = mmap.PAGESIZE
            lo = start - start % page
            try:
                mapped.madvise(mmap.MADV_DONTNEED, lo, end - lo)
            except (OSError, ValueError):  # advice only
                pass

        return drop

    def close(self) -> None:
        if self._data is not None:
            self._data.release()
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a failed import left a view alive; the GC unmaps it later
                pass
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> "_Reader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _regular(file: BinaryIO) -> bool:
    return stat.S_ISREG(os.fstat(file.fileno()).st_mode)


def _read_full(stream: Readable, n: int) -> bytes | bytearray:
    """Read exactly ``n`` bytes, or fewer only at the end of the stream."""
    first = stream.read(n)
    if not first or len(first) == n:
        return first or b""
    parts = [first]
    got = len(first)
    while got < n:
        more = stream.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _readinto_of(stream: Readable) -> Callable[[memoryview], int | None] | None:
    """The stream's ``readinto``, if it has a working one (``io.RawIOBase``'s default raises)."""
    readinto = getattr(stream, "readinto", None)
    if readinto is None or getattr(type(stream), "readinto", None) is io.RawIOBase.readinto:
        return None
    return readinto


def _readinto_full(readinto: Callable[[memoryview], int | None], target: memoryview) -> int:
    """Fill ``target`` through ``readinto``; fewer bytes only at the end of the stream."""
    got = 0
    while got < len(target):
        with target[got:] as rest:
            n = readinto(rest)
        if not n:
            break
        got += n
    return got
