"""A UnixFS file in the block store read in place: a seekable, verifying file object over its DAG.

Assembly reads elements straight from their blocks instead of exporting each one to a file first
(issue 17: a model on disk once). A file of the default profile is a tree of 1 MiB raw leaves, so
a byte offset maps onto one leaf through the ``blocksizes`` of the inner nodes above it::

    root (dag-pb, blocksizes [1 MiB, 1 MiB, ...])
      ├── leaf 0   bytes [0, 1 MiB)        blocks/<shard>/<multihash>: the bytes themselves
      ├── leaf 1   bytes [1 MiB, 2 MiB)
      ...

- Inner nodes are read once, verified against their CID, checked (UnixFS file, as many sizes as
  links, sizes that add up to what the parent says) and kept; they are small (one per 1024
  leaves, about 40 KiB each).
- :meth:`DagFile.readinto` / ``read`` / ``pread`` hash every leaf they read against its CID and
  check its length against its parent's ``blocksizes``; at most one leaf is held, so memory is one
  block whatever the file's size.
- :meth:`DagFile.copy_to` moves a byte range into another file in the kernel: for raw leaves the
  block file *is* the range, so the kernel moves it from the block files without the bytes
  entering the process (:class:`registry.storage.splice.OutputCopy`: spliced through a pipe and
  written in windows aligned in the output, each leaf file open until its bytes are written). Those bytes are
  **not** hashed here; the caller must hash what it wrote (the assembly engine hashes every
  copied tensor from the output as it is written and checks it against its manifest digest) and,
  on a mismatch, :meth:`BlockStore.scrub` the DAG.
"""

from __future__ import annotations

import io
import os
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from .blockstore import BlockStore
from .cid import CID, DAG_PB, IDENTITY, RAW
from .errors import BlockIntegrityError, BlockNotFoundError, DAGError
from .splice import OutputCopy
from .unixfs import MAX_DEPTH, file_node

__all__ = ["DagFile"]


@dataclass(frozen=True)
class _Node:
    """A checked inner node: its children, their file-byte sizes and start offsets, inline data."""

    children: tuple[CID, ...]
    starts: tuple[int, ...]  # offset of each child relative to the node's start (after inline data)
    sizes: tuple[int, ...]
    inline: bytes
    total: int


class DagFile(io.RawIOBase):
    """The UnixFS file ``root`` in ``store``, read in place and verified block by block.

    Args:
        root: the file's CID (the DAG must be present: :meth:`Sources.ensure` first).
        store: the block store holding it.

    Raises (on open or read):
        BlockNotFoundError: a block is absent.
        BlockIntegrityError: a block does not hash to its CID (the store removed it).
        DAGError: not a UnixFS file, or sizes that do not add up.
    """

    def __init__(self, root: CID | str, store: BlockStore) -> None:
        super().__init__()
        self.root = CID.parse(root)
        self.store = store
        self._nodes: dict[CID, _Node] = {}
        self._leaf: tuple[CID, bytes] | None = None
        self._position = 0
        if self.root.codec == RAW or self.root.hash_code == IDENTITY:
            data = self._block(self.root)
            self.size = len(data)
            self._leaf = (self.root, data)  # read and checked: the first read takes it from here
        else:
            self.size = self._node(self.root, None).total

    def __repr__(self) -> str:
        return f"DagFile({str(self.root)!r}, {self.size:,} bytes)"

    # -- io.RawIOBase ---------------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer) -> int:
        count = self.pread(buffer, self._position)
        self._position += count
        return count

    # -- positioned reads and copies --------------------------------------------------------------

    def pread(self, buffer, offset: int) -> int:
        """Fill ``buffer`` with verified bytes from ``offset``; returns the count (short only at the end)."""
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and offset + done < self.size:
            cid, start, data = self._piece(offset + done)
            within = offset + done - start
            count = min(len(view) - done, len(data) - within)
            view[done:done + count] = data[within:within + count]
            done += count
        return done

    def pread_trusted(self, buffer, offset: int) -> int:
        """:meth:`pread` for data whose every byte was checked before (:mod:`registry.storage.checked`):
        raw leaves are read from their block files without hashing them, as :meth:`copy_to` copies
        them, so reading a few bytes costs a few bytes, not a MiB hashed (inner nodes are checked as
        ever). The caller takes the checked trade for these bytes: a block that rotted since is not
        caught here. Returns the count (short only at the end).

        Raises:
            BlockNotFoundError / BlockIntegrityError: a block absent, or not the size its parent says.
        """
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and offset + done < self.size:
            cid, start, length = self._locate(offset + done)
            within = offset + done - start
            count = min(len(view) - done, length - within)
            if cid is None or cid.codec != RAW or cid.hash_code == IDENTITY:
                count = self.pread(view[done:done + count], offset + done)
            else:
                self._read_leaf(cid, length, within, view[done:done + count])
            done += count
        return done

    def _open_leaf(self, cid: CID, length: int) -> tuple[int, str]:
        """An open descriptor of a raw leaf's block file and its path, the file checked to hold
        ``length`` bytes, as the leaf's parent says (the caller closes it)."""
        path = self.store.file_of(cid)
        try:
            src = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise BlockNotFoundError(cid) from None
        size = os.fstat(src).st_size
        if size != length:
            os.close(src)
            raise BlockIntegrityError(cid, f"the local block store ({path})", f"it holds {size:,} bytes, its parent says {length:,}")
        return src, path

    def _read_leaf(self, cid: CID, length: int, within: int, view: memoryview) -> None:
        src, path = self._open_leaf(cid, length)
        try:
            done = 0
            while done < len(view):
                got = os.preadv(src, [view[done:]], within + done)
                if got == 0:
                    raise BlockIntegrityError(cid, f"the local block store ({path})", "it shrank while being read")
                done += got
        finally:
            os.close(src)

    def copy_to(self, dst_fd: int, dst_offset: int, offset: int, count: int,
                on_bytes: Callable[[int], None] | None = None) -> None:
        """Copy ``count`` bytes from ``offset`` to ``dst_fd`` at ``dst_offset``, raw leaves in the
        kernel (unverified: the caller hashes what it wrote), anything else through verified reads.

        Raises:
            DAGError: the range runs past the end of the file.
            BlockNotFoundError / BlockIntegrityError: a block absent, or shorter than its parent says.
        """
        if offset + count > self.size:
            raise DAGError(f"{self.root} holds {self.size:,} bytes; cannot copy [{offset:,}, {offset + count:,})")
        end = offset + count
        with OutputCopy(dst_fd, dst_offset, on_bytes) as out:
            while offset < end:
                cid, start, length = self._locate(offset)
                want = min(end - offset, start + length - offset)
                if cid is not None and cid.codec == RAW and cid.hash_code != IDENTITY:
                    src, path = self._open_leaf(cid, length)
                    if out.copy(src, offset - start, want, close=True) != want:
                        raise BlockIntegrityError(cid, f"the local block store ({path})", "it shrank while being copied")
                else:
                    piece = bytearray(want)
                    self.pread(piece, offset)
                    out.write(piece)
                offset += want

    def missing(self) -> list[CID]:
        """The blocks of the DAG that the store lacks (empty when the file is complete), as
        :meth:`BlockStore.missing` answers, from this file's own nodes: each inner node is read,
        checked and kept for the reads that follow (so the DAG is decoded once, not once to check
        it and once to read it); raw leaves are only looked up (they are checked when read). A
        corrupt node is removed from the store and counted as missing.
        """
        missing: list[CID] = []
        seen: set[CID] = set()
        stack: list[tuple[CID, int | None, int]] = [(self.root, None, 0)]
        while stack:
            cid, expected, depth = stack.pop()
            if cid in seen or cid.hash_code == IDENTITY:
                continue
            seen.add(cid)
            if depth > MAX_DEPTH:
                raise DAGError(f"DAG {self.root} is deeper than {MAX_DEPTH} levels; refusing it")
            if cid.codec == RAW:
                if not os.path.isfile(self.store.file_of(cid)):
                    missing.append(cid)
                continue
            try:
                node = self._node(cid, expected)
            except (BlockNotFoundError, BlockIntegrityError):
                missing.append(cid)
                continue
            stack.extend(reversed([(child, size, depth + 1) for child, size in zip(node.children, node.sizes)]))
        return missing

    def block_paths(self) -> Iterator[Path]:
        """The store's file of every block of the DAG (inner nodes read and checked as they are
        reached; leaves only named): what :func:`registry.storage.checked.note_checked` flushes."""
        stack: list[tuple[CID, int | None, int]] = [(self.root, None, 0)]
        while stack:
            cid, expected, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise DAGError(f"DAG {self.root} is deeper than {MAX_DEPTH} levels; refusing it")
            if cid.hash_code == IDENTITY:
                continue
            yield self.store.path_of(cid)
            if cid.codec == DAG_PB:
                node = self._node(cid, expected)
                stack.extend((child, size, depth + 1) for child, size in zip(node.children, node.sizes))

    # -- the tree --------------------------------------------------------------------------------

    def _block(self, cid: CID) -> bytes:
        return self.store.get(cid)  # hashed against its CID; a corrupt block is removed

    def _node(self, cid: CID, expected: int | None) -> _Node:
        node = self._nodes.get(cid)
        if node is not None:
            return node
        if cid.codec != DAG_PB:
            raise DAGError(f"block {cid} has codec {cid.codec_name}; a UnixFS file is dag-pb or raw")
        decoded, data = file_node(cid, self._block(cid), expected)
        total = len(data.data) + sum(data.blocksizes)
        starts, position = [], len(data.data)
        for size in data.blocksizes:
            starts.append(position)
            position += size
        node = _Node(tuple(link.cid for link in decoded.links), tuple(starts), tuple(data.blocksizes), bytes(data.data), total)
        self._nodes[cid] = node
        return node

    def _locate(self, offset: int) -> tuple[CID | None, int, int]:
        """The leaf holding file byte ``offset``: (its CID or None for a node's inline data, its
        start in the file, its length)."""
        if self.root.codec == RAW or self.root.hash_code == IDENTITY:
            return self.root, 0, self.size
        cid, base, expected = self.root, 0, None
        for _ in range(MAX_DEPTH + 1):
            node = self._node(cid, expected)
            within = offset - base
            if within < len(node.inline):
                return None, base, len(node.inline)
            index = bisect_right(node.starts, within) - 1
            child, start, size = node.children[index], base + node.starts[index], node.sizes[index]
            if child.codec == RAW or child.hash_code == IDENTITY:
                return child, start, size
            cid, base, expected = child, start, size
            node = self._node(cid, expected)
            if not node.children:  # a dag-pb leaf (unixfs-v0-2015): its bytes are its inline data
                return cid, start, size
        raise DAGError(f"DAG {self.root} is deeper than {MAX_DEPTH} levels; refusing it")

    def _piece(self, offset: int) -> tuple[CID | None, int, bytes]:
        """Verified bytes of the leaf holding ``offset``: (CID, start in the file, bytes)."""
        cid, start, length = self._locate(offset)
        if cid is None or (cid.codec == DAG_PB and not self._nodes[cid].children):
            holder = self._holder(offset) if cid is None else cid
            data = self._nodes[holder].inline
            return cid, start, data
        held = self._leaf  # read once: copies may run in several threads
        if held is not None and held[0] == cid:
            return cid, start, held[1]
        data = self._block(cid)
        if len(data) != length:
            raise DAGError(f"block {cid} holds {len(data)} bytes where its parent says {length}")
        self._leaf = (cid, data)
        return cid, start, data

    def _holder(self, offset: int) -> CID:
        """The inner node whose inline data holds ``offset`` (only single-node files have any)."""
        cid, base = self.root, 0
        while True:
            node = self._nodes[cid]
            within = offset - base
            if within < len(node.inline):
                return cid
            index = bisect_right(node.starts, within) - 1
            cid, base = node.children[index], base + node.starts[index]

