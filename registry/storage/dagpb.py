"""dag-pb nodes and the UnixFS ``Data`` message inside them, byte-compatible with boxo.

Wire format (protobuf; boxo ``ipld/merkledag``, ``ipld/unixfs/pb``)::

    PBNode { repeated PBLink Links = 2;  optional bytes Data = 1; }   Links are written first
    PBLink { bytes Hash = 1;  string Name = 2;  uint64 Tsize = 3; }   Name written even when empty
    Data   { Type = 1; bytes Data = 2; uint64 filesize = 3; repeated uint64 blocksizes = 4;
             hashType = 5; fanout = 6; mode = 7; mtime = 8 }           blocksizes not packed

``Tsize`` of a link is the size of the whole sub-DAG below it (block bytes, recursively);
``blocksizes`` are the file bytes under each child.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from ..limits import DAGPB_LINKS, DAGPB_NAME_BYTES
from .cid import CID, decode_varint, encode_varint
from .errors import CIDError, DAGError

__all__ = [
    "PBLink",
    "PBNode",
    "UnixFSData",
    "encode_node",
    "decode_node",
    "encode_unixfs",
    "decode_unixfs",
    "RAW_TYPE",
    "DIRECTORY",
    "FILE",
    "METADATA",
    "SYMLINK",
    "HAMT_SHARD",
]

RAW_TYPE, DIRECTORY, FILE, METADATA, SYMLINK, HAMT_SHARD = range(6)
UNIXFS_TYPE_NAMES = {0: "raw", 1: "directory", 2: "file", 3: "metadata", 4: "symlink", 5: "HAMT shard"}

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


@dataclass(frozen=True)
class PBLink:
    cid: CID
    tsize: int | None = None
    name: str | None = ""


@dataclass(frozen=True)
class PBNode:
    links: tuple[PBLink, ...] = ()
    data: bytes | None = None


@dataclass(frozen=True)
class UnixFSData:
    type: int
    data: bytes = b""
    filesize: int | None = None
    blocksizes: tuple[int, ...] = ()
    extra: bool = False  # hashType / fanout / mode / mtime were present

    @property
    def type_name(self) -> str:
        return UNIXFS_TYPE_NAMES.get(self.type, str(self.type))


# -- encoding ---------------------------------------------------------------------------------


def _len_field(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + encode_varint(len(payload)) + payload


def encode_link(cid_bytes: bytes, tsize: int, name: bytes = b"") -> bytes:
    """One PBLink, as boxo writes it (Hash, Name even when empty, Tsize)."""
    return _len_field(0x0A, cid_bytes) + _len_field(0x12, name) + b"\x18" + encode_varint(tsize)


def encode_node(links: Iterable[bytes], data: bytes | None) -> bytes:
    """A PBNode from already encoded links (see :func:`encode_link`) and optional Data."""
    out = bytearray()
    for link in links:
        out += b"\x12"
        out += encode_varint(len(link))
        out += link
    if data is not None:
        out += _len_field(0x0A, data)
    return bytes(out)


def encode_unixfs(type_: int, data: bytes = b"", filesize: int | None = None, blocksizes: Sequence[int] = ()) -> bytes:
    """A UnixFS Data message; Data is omitted when empty, as boxo does."""
    out = bytearray(b"\x08" + encode_varint(type_))
    if data:
        out += _len_field(0x12, data)
    if filesize is not None:
        out += b"\x18" + encode_varint(filesize)
    for size in blocksizes:
        out += b"\x20" + encode_varint(size)
    return bytes(out)


# -- decoding ---------------------------------------------------------------------------------


def _fields(buf: bytes | memoryview, what: str):
    """Yield ``(field number, wire type, value)``; value is an int or a memoryview."""
    view = memoryview(buf)
    pos = 0
    end = len(view)
    try:
        while pos < end:
            key, pos = decode_varint(view, pos)
            number, wire = key >> 3, key & 7
            value: int | memoryview
            if wire == _VARINT:
                value, pos = decode_varint(view, pos)
            elif wire == _LEN:
                length, pos = decode_varint(view, pos)
                if pos + length > end:
                    raise ValueError("field runs past the end")
                value = view[pos : pos + length]
                pos += length
            else:
                raise ValueError(f"unsupported wire type {wire}")
            yield number, wire, value
    except ValueError as exc:
        raise DAGError(f"malformed {what} ({exc})") from None


def decode_node(block: bytes | memoryview) -> PBNode:
    """Decode a dag-pb block.

    Raises:
        DAGError: not a valid dag-pb node.
    """
    links: list[PBLink] = []
    data: bytes | None = None
    for number, wire, value in _fields(block, "dag-pb node"):
        if number == 2 and wire == _LEN:
            if data is not None:
                raise DAGError("malformed dag-pb node (a link after the data)")
            if len(links) == DAGPB_LINKS:
                raise DAGPB_LINKS.exceeded("the number of links of a dag-pb node", len(links) + 1, DAGError)
            links.append(_decode_link(value))
        elif number == 1 and wire == _LEN:
            if data is not None:
                raise DAGError("malformed dag-pb node (two data fields)")
            data = bytes(value)
        else:
            raise DAGError(f"malformed dag-pb node (unexpected field {number})")
    return PBNode(tuple(links), data)


def _decode_link(buf: memoryview) -> PBLink:
    cid = None
    name: str | None = None
    tsize: int | None = None
    for number, wire, value in _fields(buf, "dag-pb link"):
        if number == 1 and wire == _LEN and cid is None:
            try:
                cid = CID.parse(bytes(value))
            except CIDError as exc:
                raise DAGError(f"malformed dag-pb link ({exc})") from None
        elif number == 2 and wire == _LEN and name is None:
            DAGPB_NAME_BYTES.check(len(value), "the name of a dag-pb link", DAGError)
            try:
                name = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                raise DAGError("malformed dag-pb link (name is not UTF-8)") from None
        elif number == 3 and wire == _VARINT and tsize is None:
            tsize = value
        else:
            raise DAGError(f"malformed dag-pb link (unexpected or repeated field {number})")
    if cid is None:
        raise DAGError("malformed dag-pb link (no hash)")
    return PBLink(cid, tsize, name)


def decode_unixfs(data: bytes | memoryview | None) -> UnixFSData:
    """Decode the UnixFS Data message of a dag-pb node.

    Raises:
        DAGError: absent or malformed.
    """
    if data is None:
        raise DAGError("dag-pb node has no UnixFS data; it is not a UnixFS file")
    type_: int | None = None
    payload = b""
    filesize: int | None = None
    blocksizes: list[int] = []
    extra = False
    for number, wire, value in _fields(data, "UnixFS data"):
        if number == 1 and wire == _VARINT:
            type_ = value
        elif number == 2 and wire == _LEN:
            payload = bytes(value)
        elif number == 3 and wire == _VARINT:
            filesize = value
        elif number == 4 and wire == _VARINT:
            blocksizes.append(value)
        elif number == 4 and wire == _LEN:  # packed, as some encoders write it
            pos = 0
            try:
                while pos < len(value):
                    size, pos = decode_varint(value, pos)
                    blocksizes.append(size)
            except ValueError as exc:
                raise DAGError(f"malformed UnixFS blocksizes ({exc})") from None
        elif number in (5, 6, 7, 8):
            extra = True
        else:
            raise DAGError(f"malformed UnixFS data (unexpected field {number})")
    if type_ is None:
        raise DAGError("malformed UnixFS data (no type)")
    return UnixFSData(type_, payload, filesize, tuple(blocksizes), extra)
