"""UnixFS files read back: a verifying streaming reader, a walk of any DAG, and a check of a local
copy against a file's DAG. Every block is hashed against its CID (unless the block source already
does) and every size is checked against its parent's, so a hostile block source can stall or
refuse, never hand back other bytes.
"""

from __future__ import annotations

import os
from typing import Callable, Iterator

from .cid import CID, DAG_PB, IDENTITY, RAW
from .codecs import links_of as codec_links
from .dagpb import DIRECTORY, FILE, HAMT_SHARD, RAW_TYPE, decode_node, decode_unixfs
from .errors import BlockIntegrityError, DAGError

__all__ = ["GetBlock", "MAX_DEPTH", "file_matches", "file_node", "file_size", "links_of", "read_file", "walk_dag"]

# A DAG deeper than this is not a file anyone imported: refuse instead of recursing.
MAX_DEPTH = 64
# No block is over this (CAR sections and gateway blocks are refused over it too).
_MAX_LEAF = 4 << 20

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
