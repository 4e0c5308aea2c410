"""The local block store: one file per block under ``$ELEMENTS_HOME/blocks``.

Layout (a block is keyed by its multihash, as Kubo's flatfs does, so a block reached as raw
or as dag-pb, as CIDv0 or CIDv1, is one file)::

    blocks/
    ├── 7q/                         shard: the two characters before the last of the name
    │   └── ciqd...7qa              base32 (lower, unpadded) multihash = the block's bytes
    └── .staging/
        ├── import-<pid>-<token>/   a CAR or gateway import, moved into place once complete
        └── put-<pid>-<token>/      this process's block writes in progress

Rules: a block is written under a temporary name in a scratch area of the writing process
and renamed into place, so a crash leaves either the whole block or nothing under its name.
Scratch areas are locked by their process while it lives (:mod:`registry.storage.scratch`);
the next import or write in the store removes those whose process is gone. Every read is
hashed against the CID asked for; a block that fails is removed (so it can be fetched again)
and reported.

Concurrency: any number of threads and processes may read, write and import into one store at
once. Temporary names are unique per writer, every block enters by an atomic rename, and a
block that is already there is left alone (or replaced by the same verified bytes).
"""

from __future__ import annotations

import base64
import functools
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Iterator, Sequence

from ..files import atomic_file, atomic_write, install
from .cid import CID, IDENTITY, RAW
from .errors import BlockIntegrityError, BlockNotFoundError, DAGError, IncompleteDAGError
from .scratch import ScratchArea, make_area, sweep
from .unixfs import DEFAULT_PROFILE, Profile, Source, add_file, links_of, read_file, walk_dag

__all__ = ["BlockStore", "Staging"]

BlockData = bytes | bytearray | memoryview | Sequence[bytes | bytearray | memoryview]


def _name(cid: CID) -> str:
    return _multihash_name(cid.multihash)


@functools.lru_cache(maxsize=1 << 16)
def _multihash_name(multihash: bytes) -> str:
    # Cached: base32 is pure Python here (~15 us), and an assembly names each leaf more than once
    # (the completeness walk, then the copy): 2,048 leaves per GiB.
    return base64.b32encode(multihash).decode("ascii").rstrip("=").lower()


def _parts(cid: CID, data: BlockData, trusted: bool, where: str) -> list:
    """The block's parts, to be written in order; unless ``trusted``, joined and checked against ``cid``."""
    parts = [data] if isinstance(data, (bytes, bytearray, memoryview)) else list(data)
    if trusted:
        return parts
    block = parts[0] if len(parts) == 1 else b"".join(bytes(p) for p in parts)
    cid.check(block, where)
    return [block]


class BlockStore:
    """Blocks on the local disk, verified on every read.

    Args:
        root: the directory (``$ELEMENTS_HOME/blocks``); created on the first write.
        fsync: flush each block to disk before it is renamed into place (slower; a torn
            block is caught on read anyway, removed, and fetched again).
    """

    def __init__(self, root: str | os.PathLike, *, fsync: bool = False) -> None:
        self.root = Path(root)
        self._root_text = os.fspath(self.root)
        self.fsync = fsync
        self._shards: set[str] = set()
        self._writes: ScratchArea | None = None
        self._writes_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BlockStore({str(self.root)!r})"

    # -- single blocks ------------------------------------------------------------------------

    def path_of(self, cid: CID) -> Path:
        """Where a block lives (whether or not it is there)."""
        name = _name(cid)
        return self.root / name[-3:-1] / name

    def file_of(self, cid: CID) -> str:
        """:meth:`path_of` as a string: the copy of a file from its blocks names one per MiB, and a
        Path costs several times the string."""
        name = _name(cid)
        return f"{self._root_text}{os.sep}{name[-3:-1]}{os.sep}{name}"

    def has(self, cid: CID) -> bool:
        if cid.hash_code == IDENTITY:
            return True
        return os.path.isfile(self.file_of(cid))

    def put(self, cid: CID | str, data: BlockData, *, trusted: bool = False) -> CID:
        """Store a block under its CID.

        Args:
            data: the block, or its parts in order (written without joining them).
            trusted: skip hashing because the caller just computed ``cid`` from these bytes.

        Raises:
            BlockIntegrityError: ``data`` does not hash to ``cid``.
        """
        cid = CID.parse(cid)
        parts = _parts(cid, data, trusted, "the caller")
        if cid.hash_code == IDENTITY:
            return cid
        path = self.path_of(cid)
        try:
            # A block already there is left alone, unless its size is wrong: after a power loss a
            # block renamed before its data reached the disk can be empty or short, and a re-run
            # (publish again) puts the good bytes back instead of keeping it.
            if path.stat().st_size == sum(len(p) for p in parts):
                return cid
        except FileNotFoundError:
            pass
        self._mkshard(path.parent)
        atomic_write(path, parts, fsync=self.fsync, mode=0o644, scratch=self._scratch())
        return cid

    def _scratch(self) -> Path:
        """This store's area for block writes in progress, made (and the store's leftovers
        swept) on the first write; it goes with the store object or the process."""
        area = self._writes
        if area is None or area.closed:
            with self._writes_lock:
                area = self._writes
                if area is None or area.closed:
                    area = self._writes = make_area(self.root / ".staging", "put")
                    weakref.finalize(self, area.close)
        return area.path

    def put_block(self, data: bytes, codec: int = RAW, version: int = 1) -> CID:
        """Hash and store a block; returns its CID."""
        cid = CID.of(data, codec, version)
        return self.put(cid, data, trusted=True)

    def get(self, cid: CID | str) -> bytes:
        """A block's bytes, checked against its CID.

        Raises:
            BlockNotFoundError: not in the store.
            BlockIntegrityError: the stored bytes are corrupt (the file is removed).
        """
        cid = CID.parse(cid)
        if cid.hash_code == IDENTITY:
            return cid.digest
        path = self.path_of(cid)
        try:
            with open(path, "rb") as f:
                block = f.read()
                inode = os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            raise BlockNotFoundError(cid) from None
        if not cid.matches(block):
            self._quarantine(path, inode)
            raise BlockIntegrityError(cid, f"the local block store ({path})", "removed it")
        return block

    def size(self, cid: CID | str) -> int:
        """A block's size in bytes (not verified)."""
        cid = CID.parse(cid)
        try:
            return self.path_of(cid).stat().st_size
        except FileNotFoundError:
            raise BlockNotFoundError(cid) from None

    def delete(self, cid: CID | str) -> bool:
        """Remove a block; returns whether it was there."""
        cid = CID.parse(cid)
        try:
            self.path_of(cid).unlink()
            return True
        except FileNotFoundError:
            return False

    def _read(self, cid: CID) -> bytes:
        if cid.hash_code == IDENTITY:
            return cid.digest
        try:
            with open(self.path_of(cid), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise BlockNotFoundError(cid) from None

    def _quarantine(self, path: Path, inode: int) -> None:
        # Only the file that was read: another writer may have put a good copy there since.
        try:
            if os.stat(path).st_ino == inode:
                path.unlink()
        except FileNotFoundError:
            pass

    def _mkshard(self, shard: Path) -> None:
        if shard.name not in self._shards:
            shard.mkdir(parents=True, exist_ok=True)
            self._shards.add(shard.name)

    # -- DAGs and files -----------------------------------------------------------------------

    def add_file(self, source: Source, profile: str | Profile = DEFAULT_PROFILE) -> CID:
        """Import a file into the store (see :func:`registry.storage.unixfs.add_file`)."""
        return add_file(source, store=self, profile=profile)

    def missing(self, root: CID | str) -> list[CID]:
        """The blocks of a DAG that the store lacks (empty when the DAG is complete).

        Inner nodes are read and verified; raw leaves are only looked up (they are verified
        when read). A corrupt node is removed and counted as missing.
        """
        return _missing(CID.parse(root), self.has, self.get)

    def require(self, root: CID | str) -> CID:
        """Raise :class:`IncompleteDAGError` unless the whole DAG under ``root`` is here."""
        root = CID.parse(root)
        missing = self.missing(root)
        if missing:
            if missing == [root]:
                raise BlockNotFoundError(root)
            raise IncompleteDAGError(root, missing)
        return root

    def cat(self, cid: CID | str) -> Iterator[bytes]:
        """Stream a UnixFS file's bytes; every block is verified as it is read.

        Raises:
            BlockNotFoundError, BlockIntegrityError, DAGError: while iterating.
        """
        return read_file(CID.parse(cid), self.get, verify=False)

    def export_file(self, cid: CID | str, path: str | os.PathLike) -> int:
        """Write a UnixFS file to ``path`` atomically (a temporary name, then a rename).

        Returns the number of bytes written. Nothing appears at ``path`` on any failure.
        """
        cid = CID.parse(cid)
        written = 0
        with atomic_file(path, fsync=self.fsync) as out:
            for chunk in self.cat(cid):
                out.write(chunk)
                written += len(chunk)
        return written

    def scrub(self, root: CID | str) -> list[CID]:
        """Read and verify every block of a DAG that is here; remove the corrupt ones.

        Returns the CIDs removed (fetch them again, e.g. with ``Sources.ensure``). Blocks under
        a node that is corrupt or absent are not reached.
        """
        removed: list[CID] = []
        seen: set[CID] = set()
        stack = [CID.parse(root)]
        while stack:
            cid = stack.pop()
            if cid in seen:
                continue
            seen.add(cid)
            try:
                block = self.get(cid)
            except BlockIntegrityError:
                removed.append(cid)
                continue
            except BlockNotFoundError:
                continue
            try:
                stack.extend(links_of(cid, block))
            except DAGError:
                continue
        return removed

    def blocks(self, root: CID | str) -> Iterator[tuple[CID, bytes]]:
        """Every block of a DAG once, depth first (the order of ``ipfs dag export``), verified."""
        return walk_dag(CID.parse(root), self.get, verify=False)

    # -- staging and housekeeping -------------------------------------------------------------

    def staging(self) -> "Staging":
        """A private area for blocks that enter the store only once a whole import checks out."""
        return Staging(self)

    def clean_incomplete(self, older_than: float = 3600.0) -> int:
        """Remove what crashed writers left: scratch areas whose process is gone (at once) and
        temporaries beside blocks older than ``older_than`` seconds (older versions wrote those).
        Returns how many were removed."""
        if not self.root.is_dir():
            return 0
        removed = sweep(self.root / ".staging")
        cutoff = time.time() - older_than
        for shard in self.root.iterdir():
            if shard.is_symlink() or not shard.is_dir() or shard.name.startswith("."):  # a symlink leads out of the store
                continue
            for entry in shard.iterdir():
                try:
                    if entry.name.endswith(".tmp") and entry.stat().st_mtime < cutoff:
                        entry.unlink(missing_ok=True)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed


def _missing(root: CID, has, get) -> list[CID]:
    missing: list[CID] = []
    seen: set[CID] = set()
    stack = [root]
    while stack:
        cid = stack.pop()
        if cid in seen:
            continue
        seen.add(cid)
        if not has(cid):
            missing.append(cid)
            continue
        if cid.codec == RAW:
            continue
        try:
            block = get(cid)
        except (BlockIntegrityError, BlockNotFoundError):
            missing.append(cid)
            continue
        stack.extend(reversed(links_of(cid, block)))
    return missing


class Staging:
    """Blocks held apart from the store until :meth:`commit` moves them in.

    Use as a context manager: leaving it with an exception discards everything staged.
    Blocks are verified when put; reads fall through to the store for blocks it holds. The
    blocks wait in a scratch area of this process (``.staging/import-<pid>-<token>``), which
    the next import removes if the process dies first.
    """

    def __init__(self, store: BlockStore) -> None:
        self.store = store
        self._area: ScratchArea | None = None
        self._staged: dict[bytes, CID] = {}
        self.bytes = 0

    def __enter__(self) -> "Staging":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.discard()  # after a commit there is nothing left; after a failure, nothing is kept

    @property
    def dir(self) -> Path:
        if self._area is None:
            self._area = make_area(self.store.root / ".staging", "import")
        return self._area.path

    @property
    def cids(self) -> list[CID]:
        return list(self._staged.values())

    def put(self, cid: CID, data: BlockData, *, trusted: bool = False) -> CID:
        parts = _parts(cid, data, trusted, "the import")
        if cid.hash_code == IDENTITY or cid.multihash in self._staged:
            return cid
        atomic_write(self.dir / _name(cid), parts, fsync=False, mode=0o644)
        self._staged[cid.multihash] = cid
        self.bytes += sum(len(p) for p in parts)
        return cid

    def has(self, cid: CID) -> bool:
        return cid.multihash in self._staged or self.store.has(cid)

    def staged(self, cid: CID) -> bool:
        return cid.multihash in self._staged

    def get(self, cid: CID) -> bytes:
        if cid.multihash in self._staged:
            with open(self.dir / _name(cid), "rb") as f:
                block = f.read()
            cid.check(block, "the staging area")
            return block
        return self.store.get(cid)

    def missing(self, root: CID) -> list[CID]:
        """Blocks of the DAG under ``root`` neither staged nor in the store."""
        return _missing(root, self.has, self.get)

    def reachable(self, roots: Sequence[CID]) -> set[bytes]:
        """Multihashes of the staged blocks that the DAGs under ``roots`` use."""
        used: set[bytes] = set()
        seen: set[CID] = set()
        stack = list(roots)
        while stack:
            cid = stack.pop()
            if cid in seen or not self.has(cid):
                continue
            seen.add(cid)
            if cid.multihash in self._staged:
                used.add(cid.multihash)
            if cid.codec != RAW:
                stack.extend(links_of(cid, self.get(cid)))
        return used

    def commit(self) -> int:
        """Move every staged block into the store; returns how many were new.

        A block another writer put there meanwhile is replaced by the same bytes (both were
        verified against the one name), so the move is atomic whoever comes first.
        """
        added = 0
        for multihash, cid in self._staged.items():
            target = self.store.path_of(cid)
            if target.is_file():
                continue
            self.store._mkshard(target.parent)
            install(self.dir / _name(cid), target, fsync=self.store.fsync)
            added += 1
        self._staged.clear()
        self.discard()
        return added

    def discard(self) -> None:
        self._staged.clear()
        if self._area is not None:
            self._area.close()
            try:
                self._area.root.rmdir()  # .staging, when nothing else is in progress
            except OSError:
                pass
