"""The links of a block, by codec: what a DAG walk follows.

Elements interprets only UnixFS (dag-pb and raw) as files, but it stores, checks for
completeness and re-exports DAGs of any codec, byte for byte:

    codec       code     links
    raw         0x55     none
    dag-pb      0x70     PBNode.Links, in order
    dag-cbor    0x71     every tag-42 CID, in document order
    dag-json    0x0129   every ``{"/": "<cid>"}``, in document order
    git-raw     0x78     commit: tree, parents, mergetag objects; tree: every entry; tag: object
    any other   -        none known: the block is carried as a leaf

Document order is the order go-ipld-prime's traversal (and so ``ipfs dag export``) visits the
links of a node; for git objects it is go-ipld-git's schema order (a commit's tree, then its
parents, then its merge tags' objects), each link a CIDv1 git-raw sha1 of the object named. Blocks are hostile input: the CBOR scan is iterative and consumes at least
one byte per item, so a block of n bytes costs O(n) whatever its lengths claim; JSON nesting
is measured before the (recursive) parser runs and refused past :data:`MAX_JSON_DEPTH`.
"""

from __future__ import annotations

import json
import re

from .cid import CID, DAG_CBOR, DAG_JSON, DAG_PB, encode_varint
from .dagpb import decode_node
from .errors import CIDError, DAGError

__all__ = ["FOLLOWED", "GIT_RAW", "MAX_JSON_DEPTH", "links_of", "cbor_links", "json_links", "git_links"]

GIT_RAW = 0x78
#: Codecs whose links are followed; blocks of every other codec are leaves.
FOLLOWED = frozenset({DAG_PB, DAG_CBOR, DAG_JSON, GIT_RAW})


def links_of(cid: CID, block: bytes | memoryview) -> list[CID]:
    """The CIDs a block links to, in the order a DAG walk visits them.

    Raises:
        DAGError: a dag-pb, dag-cbor, dag-json or git-raw block that does not decode.
    """
    codec = cid.codec
    if codec == DAG_PB:
        return [link.cid for link in decode_node(block).links]
    if codec == DAG_CBOR:
        return cbor_links(block, f"dag-cbor block {cid}")
    if codec == DAG_JSON:
        return json_links(block, f"dag-json block {cid}")
    if codec == GIT_RAW:
        return git_links(block, f"git-raw block {cid}")
    return []  # raw, and codecs Elements does not interpret: leaves


def cbor_links(block: bytes | memoryview, what: str = "dag-cbor block") -> list[CID]:
    """Every CID (tag 42) in a dag-cbor block, in document order.

    Raises:
        DAGError: truncated, trailing bytes, indefinite lengths, a tag other than 42, or a
            tag-42 value that is not ``0x00`` + a binary CID.
    """
    buf = memoryview(block)
    end = len(buf)
    pos = 0
    pending = 1  # items still to read: arrays and maps add theirs
    link_next = False
    links: list[CID] = []
    try:
        while pending:
            if pos >= end:
                raise ValueError("truncated")
            first = buf[pos]
            pos += 1
            major, info = first >> 5, first & 31
            if info < 24:
                value = info
            elif info <= 27:
                size = 1 << (info - 24)
                if pos + size > end:
                    raise ValueError("truncated")
                value = int.from_bytes(buf[pos : pos + size], "big")
                pos += size
            elif info == 31:
                raise ValueError("indefinite lengths are not dag-cbor")
            else:
                raise ValueError(f"reserved additional information {info}")
            pending -= 1
            if link_next and major != 2:
                raise ValueError("a tag-42 link must hold a byte string")
            if major in (2, 3):
                if value > end - pos:
                    raise ValueError("truncated")
                if link_next:
                    links.append(_cbor_cid(buf[pos : pos + value]))
                    link_next = False
                pos += value
            elif major == 4:
                pending += value
            elif major == 5:
                pending += 2 * value
            elif major == 6:
                if value != 42:
                    raise ValueError(f"tag {value} is not dag-cbor (only 42, links)")
                pending += 1
                link_next = True
            # majors 0, 1 (integers) and 7 (simple values, floats) hold nothing more
        if pos != end:
            raise ValueError(f"{end - pos} bytes after the top-level item")
    except ValueError as exc:
        raise DAGError(f"{what} is not valid dag-cbor ({exc})") from None
    return links


def _cbor_cid(raw: memoryview) -> CID:
    if raw[:1] != b"\x00":
        raise ValueError("a tag-42 link must start with the 0x00 multibase prefix")
    try:
        return CID.parse(bytes(raw[1:]))
    except CIDError as exc:
        raise ValueError(f"a link that is not a CID: {exc}") from None


#: dag-json nesting Elements reads. The check comes before the parser because the parser
#: recurses in C: with the recursion limit py-evm sets (100 000) a deep enough document would
#: overflow the C stack instead of raising RecursionError.
MAX_JSON_DEPTH = 512
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects (brackets inside strings do not count)."""
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    break
        else:
            depth -= 1
    return deepest


def json_links(block: bytes | memoryview, what: str = "dag-json block") -> list[CID]:
    """Every link ``{"/": "<cid>"}`` in a dag-json block, in document order.

    Raises:
        DAGError: not UTF-8 JSON, nested too deep to parse, or a link that is not a CID.
    """
    links: list[CID] = []

    def pairs(items: list[tuple[str, object]]) -> dict:
        # Links are the only single-"/" maps holding a string; link maps never nest, so the
        # hook (called as each object closes) sees them in document order.
        if len(items) == 1 and items[0][0] == "/" and isinstance(items[0][1], str):
            try:
                links.append(CID.parse(items[0][1]))
            except CIDError as exc:
                raise ValueError(f"a link that is not a CID: {exc}") from None
        return dict(items)

    raw = bytes(block)
    depth = _json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise DAGError(f"{what} nests more than {MAX_JSON_DEPTH} levels deep; refusing it")
    try:
        json.loads(raw.decode("utf-8"), object_pairs_hook=pairs)
    except RecursionError:
        raise DAGError(f"{what} nests too deep to be read") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DAGError(f"{what} is not valid dag-json ({exc})") from None
    return links



_GIT_PREFIX = encode_varint(1) + encode_varint(GIT_RAW) + b"\x11\x14"  # CIDv1 git-raw, sha1 (20 bytes)


def _git_cid(sha: bytes) -> CID:
    return CID.parse(_GIT_PREFIX + sha)


def _git_hex(value: bytes) -> CID:
    try:
        sha = bytes.fromhex(value.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError(f"{value[:50]!r} is not a hex object name") from None
    if len(sha) != 20:
        raise ValueError(f"an object name of {len(sha)} bytes (sha1 names are 20)")
    return _git_cid(sha)


def git_links(block: bytes | memoryview, what: str = "git-raw block") -> list[CID]:
    """The objects a git object names (a loose object, ``<type> <size>\\0<body>``), in
    go-ipld-git's order.

    Raises:
        DAGError: not a commit, tree, tag or blob, or a malformed one.
    """
    raw = bytes(block)
    try:
        head, sep, body = raw.partition(b"\0")
        kind, _, size = head.partition(b" ")
        if not sep or not size.isdigit():
            raise ValueError("no '<type> <size>\\0' header")
        if kind == b"blob":
            return []
        if kind == b"tree":
            links = []
            pos = 0
            while pos < len(body):
                name_end = body.index(b"\0", pos)  # "<mode> <name>\0" then 20 bytes of sha1
                if b" " not in body[pos:name_end] or name_end + 21 > len(body):
                    raise ValueError("a truncated tree entry")
                links.append(_git_cid(body[name_end + 1 : name_end + 21]))
                pos = name_end + 21
            return links
        if kind in (b"commit", b"tag"):
            headers = body.split(b"\n\n", 1)[0].split(b"\n")
            if kind == b"tag":
                return [_git_hex(line[len(b"object ") :]) for line in headers if line.startswith(b"object ")][:1]
            tree = [_git_hex(line[5:]) for line in headers if line.startswith(b"tree ")]
            parents = [_git_hex(line[7:]) for line in headers if line.startswith(b"parent ")]
            merged = [_git_hex(line[16:]) for line in headers if line.startswith(b"mergetag object ")]
            return tree[-1:] + parents + merged
        raise ValueError(f"unknown object type {kind[:20]!r}")
    except ValueError as exc:
        raise DAGError(f"{what} is not a git object ({exc})") from None
