"""UnixFS files: a streaming importer whose CIDs are Kubo's, and a verifying reader.

The importer reproduces boxo's balanced layout (``ipld/unixfs/importer/balanced``) with the
fixed-size chunker, for the profiles Kubo 0.42 names (``ipfs init --profile=...``, IPIP-499)::

    profile          CID  leaves   chunk     links  Kubo flags
    unixfs-v0-2015   v0   dag-pb   256 KiB   174    (Kubo's default; alias legacy-cid-v0)
    unixfs-v1-2025   v1   raw      1 MiB     1024   the project default
    cidv1            v1   raw      256 KiB   174    ipfs add --cid-version=1

Layout rules (each is checked by a test against a real Kubo):

- a file of one chunk is that chunk's leaf; an empty file is one empty leaf;
- otherwise leaves are grouped left to right into nodes of ``max_links`` children, and
  those nodes again, until one node remains (a lone leftover child still gets a parent);
- a size that is an exact multiple of the chunk has no empty trailing chunk;
- inner nodes are dag-pb ``File`` nodes: links (empty name, Tsize = sub-DAG bytes) then
  Data ``{Type: File, filesize, blocksizes: [file bytes per child]}``;
- dag-pb leaves are ``{Type: File, Data: chunk, filesize}`` (boxo keeps ``File``, not ``Raw``).

Any profile may hash with another function Kubo accepts (``Profile.with_hash``, what
``ipfs add --hash`` does; a CIDv0 is always sha2-256): every block's multihash is then that
function's, at its default length.

Speed: leaves are hashed in batches by a thread pool (hashlib releases the GIL), straight
from a memory map of the file (pages dropped again once hashed, so memory stays flat) or
from a stream. Inner nodes, one per ``max_links`` leaves, are built on the calling thread.
"""

from __future__ import annotations

import mmap
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Protocol, Sequence, Union

from ..errors import InputError
from . import multihash as mh
from .cid import CID, DAG_PB, IDENTITY, RAW, encode_varint
from .codecs import links_of as codec_links
from .dagpb import DIRECTORY, FILE, HAMT_SHARD, RAW_TYPE, decode_node, decode_unixfs, encode_link, encode_node, encode_unixfs
from .errors import BlockIntegrityError, CIDError, DAGError

__all__ = [
    "Profile",
    "PROFILES",
    "DEFAULT_PROFILE",
    "get_profile",
    "add_file",
    "read_file",
    "file_matches",
    "walk_dag",
    "file_node",
    "links_of",
    "BlockSink",
    "Readable",
    "file_size",
]

class Readable(Protocol):
    """What add_file reads a stream through: ``read(n)``, fewer bytes only at the end (a file
    opened "rb", or a producer such as the split's element stream)."""

    def read(self, n: int, /) -> bytes | bytearray: ...


Source = Union[str, os.PathLike, bytes, bytearray, memoryview, Readable]

# Kubo refuses chunks over 2 MiB (boxo chunker.ChunkSizeLimit).
MAX_CHUNK_SIZE = 2 * 1024 * 1024
# A DAG deeper than this is not a file anyone imported: refuse instead of recursing.
MAX_DEPTH = 64
# No block is over this (CAR sections and gateway blocks are refused over it too).
_MAX_LEAF = 4 << 20
# Leaves are handed to the pool in batches of about this many bytes.
BATCH_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Profile:
    """The import parameters that decide a file's CID."""

    name: str
    cid_version: int
    raw_leaves: bool
    chunk_size: int
    max_links: int
    #: The multihash function, by its ``ipfs add --hash`` name (see :mod:`.multihash`).
    hash: str = "sha2-256"

    def __post_init__(self) -> None:
        if self.cid_version not in (0, 1):
            raise InputError(f"CID version {self.cid_version} does not exist; use 0 or 1")
        function = mh.by_name(self.hash)
        if function.name != self.hash:
            raise InputError(f"hash {self.hash!r} is spelt {function.name!r} here; use Profile.with_hash")
        if self.cid_version == 0 and function.code != mh.SHA2_256:
            raise InputError(
                f"a CIDv0 is always sha2-256, so profile {self.name} cannot use {self.hash} (Kubo refuses it too); "
                "use --profile unixfs-v1-2025 or cidv1"
            )
        if self.cid_version == 0 and self.raw_leaves:
            raise InputError("raw leaves need CIDv1; use cid_version=1")
        if not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise InputError(f"chunk size {self.chunk_size} is outside 1..{MAX_CHUNK_SIZE} bytes")
        if self.max_links < 2:
            raise InputError(f"max links {self.max_links} must be at least 2")

    def with_hash(self, name: str) -> "Profile":
        """This profile with another hash function (any spelling ``ipfs add --hash`` takes).

        Raises:
            CIDError: a hash function Kubo does not accept.
            InputError: a CIDv0 profile with anything but sha2-256.
        """
        return replace(self, hash=mh.by_name(name).name)

    def kubo_add_flags(self) -> list[str]:
        """The ``ipfs add`` flags that give the same CIDs on any Kubo repo."""
        flags = [
            f"--cid-version={self.cid_version}",
            f"--raw-leaves={'true' if self.raw_leaves else 'false'}",
            f"--chunker=size-{self.chunk_size}",
            f"--max-file-links={self.max_links}",
        ]
        if self.hash != "sha2-256":
            flags.append(f"--hash={self.hash}")
        return flags

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "cid_version": self.cid_version,
            "raw_leaves": self.raw_leaves,
            "chunk_size": self.chunk_size,
            "max_links": self.max_links,
            "hash": self.hash,
        }


PROFILES: dict[str, Profile] = {
    "unixfs-v1-2025": Profile("unixfs-v1-2025", 1, True, 1024 * 1024, 1024),
    "unixfs-v0-2015": Profile("unixfs-v0-2015", 0, False, 256 * 1024, 174),
    "cidv1": Profile("cidv1", 1, True, 256 * 1024, 174),
}
_ALIASES = {"legacy-cid-v0": "unixfs-v0-2015", "kubo-default": "unixfs-v0-2015", "cid-version-1": "cidv1"}
DEFAULT_PROFILE = "unixfs-v1-2025"


def get_profile(profile: str | Profile) -> Profile:
    """A profile by name (or the profile itself).

    Raises:
        InputError: an unknown name.
    """
    if isinstance(profile, Profile):
        return profile
    name = _ALIASES.get(profile, profile)
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise InputError(f"unknown UnixFS profile {profile!r}; use one of {known}") from None


class BlockSink(Protocol):
    """Where the importer puts blocks: anything with ``put(cid, parts, trusted=True)``."""

    def put(self, cid: CID, data: bytes | Sequence[bytes | memoryview], *, trusted: bool = False) -> CID: ...


# -- importer ---------------------------------------------------------------------------------

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
    prof = get_profile(profile)
    leaves = _Leaves(prof, store)
    tree = _Tree(prof, store)
    workers = workers or min(os.cpu_count() or 1, 8)
    batch = max(1, BATCH_BYTES // prof.chunk_size) * prof.chunk_size
    with _Reader(source) as reader:
        any_leaf = False
        pending: deque[Future] = deque()
        pool = ThreadPoolExecutor(workers, thread_name_prefix="unixfs") if workers > 1 and reader.large(batch) else None
        try:
            for view, release in reader.batches(batch):
                if pool is None:
                    entries = leaves.batch(view, release)
                    any_leaf |= bool(entries)
                    for entry in entries:
                        tree.add(entry)
                    if progress:
                        progress(sum(e[2] for e in entries))
                    continue
                pending.append(pool.submit(leaves.batch, view, release))
                # A bounded window keeps memory flat on streams and page-dropping on maps.
                while len(pending) > workers * 2:
                    any_leaf |= _drain_one(pending, tree, progress)
            while pending:
                any_leaf |= _drain_one(pending, tree, progress)
        finally:
            for future in pending:
                future.cancel()
            if pool is not None:
                pool.shutdown(wait=True)
        if not any_leaf:
            tree.add(leaves.leaf(b""))
    return CID.parse(tree.finish()[0])


def _drain_one(pending: deque, tree: _Tree, progress: Callable[[int], None] | None) -> bool:
    entries = pending.popleft().result()
    for entry in entries:
        tree.add(entry)
    if progress:
        progress(sum(e[2] for e in entries))
    return bool(entries)


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
        while True:
            buf = _read_full(stream, batch)
            if not buf:
                return
            yield memoryview(buf), None
            if len(buf) < batch:
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
    import stat

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


# -- reader -----------------------------------------------------------------------------------

GetBlock = Callable[[CID], bytes]


def _fetch(cid: CID, get_block: GetBlock, verify: bool) -> bytes:
    if cid.hash_code == IDENTITY:
        return cid.digest
    block = get_block(cid)
    if verify and not cid.matches(block):
        raise BlockIntegrityError(cid, "the block source")
    return block


def links_of(cid: CID, block: bytes) -> list[CID]:
    """The CIDs a block links to, for any codec (see :mod:`.codecs`; raw blocks link to nothing).

    Raises:
        DAGError: a malformed dag-pb, dag-cbor, dag-json or git-raw block.
    """
    return codec_links(cid, block)


def walk_dag(root: CID, get_block: GetBlock, *, verify: bool = True) -> Iterator[tuple[CID, bytes]]:
    """Every block of a DAG once, depth first, links in order (the order of ``ipfs dag export``).

    Any codec is walked (links as :mod:`.codecs` finds them). UnixFS nodes (dag-pb) deeper
    than :data:`MAX_DEPTH` are refused; dag-cbor DAGs may be long chains (one block per
    epoch, say), and the walk is iterative and visits each block once, so their depth costs
    nothing.

    Raises:
        BlockIntegrityError: a block that does not match its CID (when ``verify``).
        DAGError: a malformed node.
    """
    seen: set[CID] = set()
    stack = [(root, 0)]
    while stack:
        cid, depth = stack.pop()
        if cid in seen:
            continue
        seen.add(cid)
        if depth > MAX_DEPTH:
            raise DAGError(f"DAG {root} is deeper than {MAX_DEPTH} levels; refusing it")
        block = _fetch(cid, get_block, verify)
        children = links_of(cid, block)
        yield cid, block
        step = 1 if cid.codec == DAG_PB else 0
        stack.extend((child, depth + step) for child in reversed(children))



def file_node(cid: CID, block: bytes, expected: int | None):
    """The decoded dag-pb node and UnixFS data of an inner node of a file, checked: a file (not a
    directory), one block size per link, its parts adding up to its declared size and to the size
    its parent gives (``expected``). Shared by the streaming reader and the seekable one.

    Raises:
        DAGError: any of those does not hold.
    """
    node = decode_node(block)
    data = decode_unixfs(node.data)
    if data.type in (DIRECTORY, HAMT_SHARD):
        raise DAGError(f"{cid} is a UnixFS directory, not a file")
    if data.type not in (FILE, RAW_TYPE):
        raise DAGError(f"{cid} is a UnixFS {data.type_name}, not a file")
    if len(data.blocksizes) != len(node.links):
        raise DAGError(f"node {cid} has {len(node.links)} links but {len(data.blocksizes)} block sizes")
    total = len(data.data) + sum(data.blocksizes)
    if data.filesize is not None and data.filesize != total:
        raise DAGError(f"node {cid} says {data.filesize} bytes but its parts add up to {total}")
    if expected is not None and total != expected:
        raise DAGError(f"node {cid} holds {total} bytes where its parent says {expected}")
    return node, data

def read_file(root: CID, get_block: GetBlock, *, verify: bool = True) -> Iterator[bytes]:
    """Stream the bytes of a UnixFS file, checking every block and every size on the way.

    Args:
        root: the file's CID.
        get_block: returns a block's bytes (raises BlockNotFoundError when absent).
        verify: hash every block against its CID (leave on unless ``get_block`` already does).

    Raises:
        BlockIntegrityError: a block that does not match its CID.
        DAGError: not a file (a directory, a symlink), or sizes that do not add up.
    """
    stack: list[tuple[CID, int | None, int]] = [(root, None, 0)]
    while stack:
        cid, expected, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise DAGError(f"DAG {root} is deeper than {MAX_DEPTH} levels; refusing it")
        block = _fetch(cid, get_block, verify)
        if cid.codec == RAW:
            if expected is not None and len(block) != expected:
                raise DAGError(f"block {cid} holds {len(block)} bytes where its parent says {expected}")
            if block:
                yield block
            continue
        if cid.codec != DAG_PB:
            raise DAGError(f"block {cid} has codec {cid.codec_name}; a UnixFS file is dag-pb or raw")
        node, data = file_node(cid, block, expected)
        if data.data:
            yield data.data
        for link, size in zip(reversed(node.links), reversed(data.blocksizes)):
            stack.append((link.cid, size, depth + 1))


def file_matches(root: CID, get_block: GetBlock, path: str | os.PathLike) -> bool:
    """Whether the file at ``path`` holds exactly the bytes of the UnixFS file ``root``.

    The DAG's nodes come from ``get_block`` (and are checked as :func:`read_file` checks them);
    its raw leaves are not read from there: the file's own bytes are hashed against each leaf's
    CID. So a local copy is checked at the cost of hashing it once.

    Raises:
        BlockNotFoundError / BlockIntegrityError: from ``get_block`` (a node absent or corrupt).
        DAGError: not a file, or sizes that do not add up.
    """
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size != file_size(root, get_block):
            return False
        stack: list[tuple[CID, int | None, int]] = [(root, None, 0)]
        while stack:
            cid, expected, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise DAGError(f"DAG {root} is deeper than {MAX_DEPTH} levels; refusing it")
            if cid.codec == RAW and cid.hash_code != IDENTITY:
                if expected is not None and expected > _MAX_LEAF:
                    raise DAGError(f"leaf {cid} of {root} claims {expected:,} bytes; no block is over {_MAX_LEAF:,}")
                if not cid.matches(f.read(expected if expected is not None else _MAX_LEAF + 1)):
                    return False
                continue
            block = _fetch(cid, get_block, True)
            if cid.codec == RAW:
                if f.read(len(block)) != block:
                    return False
                continue
            if cid.codec != DAG_PB:
                raise DAGError(f"block {cid} has codec {cid.codec_name}; a UnixFS file is dag-pb or raw")
            node = decode_node(block)
            data = decode_unixfs(node.data)
            if data.type not in (FILE, RAW_TYPE):
                raise DAGError(f"{cid} is a UnixFS {data.type_name}, not a file")
            if len(data.blocksizes) != len(node.links):
                raise DAGError(f"node {cid} has {len(node.links)} links but {len(data.blocksizes)} block sizes")
            total = len(data.data) + sum(data.blocksizes)
            if expected is not None and total != expected:
                raise DAGError(f"node {cid} holds {total} bytes where its parent says {expected}")
            if data.data and f.read(len(data.data)) != data.data:
                return False
            for link, size in zip(reversed(node.links), reversed(data.blocksizes)):
                stack.append((link.cid, size, depth + 1))
        return f.read(1) == b""


def file_size(root: CID, get_block: GetBlock) -> int:
    """The size of a UnixFS file, read from its root block alone."""
    block = _fetch(root, get_block, True)
    if root.codec == RAW:
        return len(block)
    if root.codec != DAG_PB:
        raise DAGError(f"block {root} has codec {root.codec_name}; a UnixFS file is dag-pb or raw")
    data = decode_unixfs(decode_node(block).data)
    return len(data.data) + sum(data.blocksizes)
