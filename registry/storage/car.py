"""CAR (content addressable archive) files: version 1 out, versions 1 and 2 in.

CAR v1 (ipld/specs ``car-v1``)::

    varint(len(header)) header        header = dag-cbor {"roots": [CID, ...], "version": 1}
    varint(len(cid) + len(block)) cid block        ... one section per block

CAR v2 wraps a v1 payload (an 11-byte pragma, a 40-byte header with the payload's offset
and size, then the payload); it is read, never written.

:func:`export_car` writes a DAG depth first with links in order, each block once (the order
of ``ipfs dag export``), for any codec (links as :mod:`.codecs` finds them). :func:`import_car`
checks every block against its CID (any hash function Kubo accepts, :mod:`.multihash`) and
decodes every dag-pb, dag-cbor, dag-json and git-raw node while it stages the blocks apart from the
store; only when the whole CAR read cleanly and every root's DAG is complete are the blocks
moved into the store. A corrupt or truncated CAR stores nothing. Blocks of other codecs are
stored and exported as they are.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, Sequence

from ..files import atomic_file
from ..limits import CARV2_PADDING_BYTES
from .cid import CID, encode_varint, read_varint
from .codecs import FOLLOWED, links_of
from .errors import BlockIntegrityError, CARError, CIDError, IncompleteDAGError
from .unixfs import walk_dag

__all__ = [
    "CarImport",
    "CarReader",
    "encode_header",
    "write_car",
    "export_car",
    "car_chunks",
    "import_car",
    "IterStream",
]

MAX_HEADER = 1 << 20
# A block over this cannot come from any UnixFS importer (Kubo's limit is 2 MiB).
MAX_SECTION = 4 << 20
# Bytes a CARv2 may put between its header and its data. Writers align the data to a few KiB
# at most; a larger gap is read (not allocated) but only this far.
MAX_V2_PADDING = int(CARV2_PADDING_BYTES)
_V2_PRAGMA = bytes.fromhex("0aa16776657273696f6e02")
_V2_PREFIX = len(_V2_PRAGMA) + 40  # pragma + the fixed CARv2 header


# -- dag-cbor, just enough for the header -------------------------------------------------------


def _cbor_head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes((major << 5 | value,))
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes((major << 5 | extra,)) + value.to_bytes(size, "big")
    raise ValueError("integer too large for CBOR")


def encode_header(roots: Sequence[CID], version: int = 1) -> bytes:
    """The dag-cbor CAR v1 header (map keys in dag-cbor order: "roots" before "version")."""
    out = bytearray(_cbor_head(5, 2))
    out += _cbor_head(3, 5) + b"roots"
    out += _cbor_head(4, len(roots))
    for root in roots:
        link = b"\x00" + bytes(root)
        out += b"\xd8\x2a" + _cbor_head(2, len(link)) + link
    out += _cbor_head(3, 7) + b"version" + _cbor_head(0, version)
    return bytes(out)


class _Cbor:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise ValueError("header is truncated")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def item(self, depth: int = 0):
        if depth > 8:
            raise ValueError("header nests too deep")
        first = self._take(1)[0]
        major, info = first >> 5, first & 31
        if info < 24:
            value = info
        elif info <= 27:
            value = int.from_bytes(self._take(1 << (info - 24)), "big")
        else:
            raise ValueError("indefinite lengths are not dag-cbor")
        if major == 0:
            return value
        if major == 1:
            return -1 - value
        if major == 2:
            return self._take(value)
        if major == 3:
            return self._take(value).decode("utf-8")
        if major == 4:
            return [self.item(depth + 1) for _ in range(value)]
        if major == 5:
            return {self.item(depth + 1): self.item(depth + 1) for _ in range(value)}
        if major == 6:
            inner = self.item(depth + 1)
            if value != 42 or not isinstance(inner, bytes) or inner[:1] != b"\x00":
                raise ValueError(f"unexpected tag {value}")
            return CID.parse(inner[1:])
        if major == 7 and info in (20, 21, 22):
            return {20: False, 21: True, 22: None}[info]
        raise ValueError(f"unsupported CBOR item (major type {major})")


def _decode_header(raw: bytes) -> dict:
    try:
        parser = _Cbor(raw)
        header = parser.item()
        if parser.pos != len(raw):
            raise ValueError("trailing bytes after the header")
    except (ValueError, UnicodeDecodeError, CIDError, TypeError) as exc:  # TypeError: a list as a map key
        raise CARError(f"malformed CAR header ({exc})") from None
    if not isinstance(header, dict):
        raise CARError("malformed CAR header (not a map)")
    return header


# -- reading ------------------------------------------------------------------------------------


class IterStream(io.RawIOBase):
    """A read-only binary stream over an iterator of byte chunks (an HTTP body, say)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buf = b""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            rest = [self._buf[self._pos :]] + list(self._chunks)
            self._buf, self._pos = b"", 0
            return b"".join(rest)
        while len(self._buf) - self._pos < n:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                break
            self._buf = self._buf[self._pos :] + chunk
            self._pos = 0
        out = self._buf[self._pos : self._pos + n]
        self._pos += len(out)
        return out

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class _Counted:
    """A stream that counts what was read from it (error messages name the byte)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.position = 0

    def read(self, n: int) -> bytes:
        data = self.stream.read(n)
        self.position += len(data)
        return data


class _Limited:
    def __init__(self, stream, limit: int) -> None:
        self.stream = stream
        self.left = limit

    def read(self, n: int) -> bytes:
        data = self.stream.read(min(n, self.left))
        self.left -= len(data)
        return data


class CarReader:
    """Iterate the verified ``(cid, block)`` sections of a CAR v1 or v2 stream, as go-car does.

    ``roots`` and ``version`` are read when the reader is made. Iterating raises
    :class:`CARError` on a malformed or truncated stream and
    :class:`BlockIntegrityError` on a block that does not match its CID (:class:`CIDError`
    when its hash function is one Kubo refuses).

    A zero-length section is an error, as in go-car and Kubo's ``ipfs dag import``; with
    ``zero_length_as_end`` it ends the data instead (go-car's ``ZeroLengthSectionAsEOF``:
    some writers pad the end of a CAR with zeros) and nothing after it is read.
    """

    def __init__(self, stream: BinaryIO, where: str = "the CAR", *, zero_length_as_end: bool = False) -> None:
        self.where = where
        self.version = 1
        self.zero_length_as_end = zero_length_as_end
        #: Where the CAR v1 payload starts in the stream (after a CARv2's header and padding).
        self.data_offset = 0
        #: Where the data ended at a zero-length section (``zero_length_as_end``), else ``None``.
        self.ended_at: int | None = None
        self._counted = _Counted(stream)
        self._stream = self._counted
        length = self._varint("header length")
        if length is None:
            raise CARError(f"{where} is empty; give a CAR file (made by `elements car export` or `ipfs dag export`)")
        if length > MAX_HEADER or length == 0:
            raise CARError(f"{where} is not a CAR (header length {length})")
        header = _decode_header(self._exact(length, "header"))
        version = header.get("version")
        # go-car tells the versions apart by this field alone: 2 is the CARv2 pragma.
        if version == 2 and not isinstance(version, bool):
            self._open_v2()
            return
        self._check_header(header)

    def _open_v2(self) -> None:
        self.version = 2
        fixed = self._exact(40, "CARv2 header")
        data_offset, data_size, index_offset = struct.unpack_from("<QQQ", fixed, 16)
        # go-car reads these as signed 64-bit integers: a "negative" one is malformed.
        if not _V2_PREFIX <= data_offset < 1 << 63:
            raise CARError(f"{self.where} is a malformed CARv2 (data offset {data_offset}); get the file again")
        if not 0 < data_size < 1 << 63:
            raise CARError(f"{self.where} is a malformed CARv2 (data size {data_size}); get the file again")
        if index_offset >= 1 << 63:
            raise CARError(f"{self.where} is a malformed CARv2 (index offset {index_offset}); get the file again")
        # The offset counts from the start of the file (the spec); go-car counts it from the end
        # of an 11-byte pragma, which is the same for every CARv2 a writer makes.
        padding = data_offset - self._counted.position
        if padding < 0:
            raise CARError(f"{self.where} is a malformed CARv2 (data offset {data_offset} is inside its header)")
        # Checked before the padding is read: the offset is the file's word.
        CARV2_PADDING_BYTES.check(padding, f"the padding before the data of {self.where} (CARv2 data offset {data_offset:,})",
                                  CARError)
        self._skip(padding, "CARv2 padding")
        self.data_offset = data_offset
        self._stream = _Limited(self._counted, data_size)  # type: ignore[assignment]
        length = self._varint("header length")
        if length is None or length > MAX_HEADER or length == 0:
            raise CARError(f"{self.where} is a malformed CARv2 (no inner CAR v1 header)")
        header = _decode_header(self._exact(length, "header"))
        if header.get("version") != 1:
            raise CARError(
                f"{self.where} is a malformed CARv2 (its payload is CAR version {header.get('version')!r}, not 1)"
            )
        self._check_header(header)

    def _check_header(self, header: dict) -> None:
        if header.get("version") != 1 or isinstance(header.get("version"), bool):
            raise CARError(f"{self.where} has CAR version {header.get('version')!r}; only versions 1 and 2 exist")
        roots = header.get("roots")
        if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
            raise CARError(f"{self.where} has a malformed CAR header (roots must be a list of CIDs)")
        self.roots: list[CID] = roots

    def _varint(self, what: str) -> int | None:
        try:
            return read_varint(self._stream)
        except ValueError as exc:
            raise CARError(f"{self.where} is corrupt: bad {what} ({exc})") from None

    def _exact(self, n: int, what: str) -> bytes:
        data = self._stream.read(n)
        if len(data) != n:
            raise CARError(f"{self.where} is truncated (in a {what}: {len(data)} of {n} bytes); get the whole file again")
        return data

    def _skip(self, n: int, what: str) -> None:
        # Read (never allocate) what a header says to skip: a stream cannot seek, and a
        # hostile offset must cost no more memory than a small buffer.
        left = n
        while left:
            got = len(self._stream.read(min(left, 1 << 16)))
            if not got:
                raise CARError(f"{self.where} is truncated (in the {what}: {n - left} of {n} bytes); get the whole file again")
            left -= got

    def __iter__(self) -> Iterator[tuple[CID, bytes]]:
        while True:
            start = self._counted.position
            length = self._varint("section length")
            if length is None:
                return
            if length == 0:
                if self.zero_length_as_end:
                    self.ended_at = start
                    return
                raise CARError(
                    f"{self.where} has a zero-length section at byte {start} (go-car and `ipfs dag import` refuse it "
                    "too); if the rest is padding, import it with --zero-length-as-end"
                )
            if length > MAX_SECTION:
                raise CARError(f"{self.where} is corrupt: a section of {length} bytes at byte {start} (the limit is {MAX_SECTION})")
            section = self._exact(length, "block section")
            try:
                cid, offset = CID.read_from(section)
            except CIDError as exc:
                raise CARError(f"{self.where} is corrupt at byte {start}: {exc}") from None
            block = section[offset:]
            try:
                genuine = cid.matches(block)
            except CIDError as exc:  # a hash function Kubo refuses: say where the block came from
                raise CIDError(f"{self.where} holds block {cid}: {exc}") from None
            if not genuine:
                raise BlockIntegrityError(cid, self.where)
            yield cid, block


# -- writing ------------------------------------------------------------------------------------


def write_car(out: BinaryIO, roots: Sequence[CID], blocks: Iterable[tuple[CID, bytes]]) -> tuple[int, int]:
    """Write a CAR v1; returns ``(blocks written, bytes written)``."""
    header = encode_header(roots)
    head = encode_varint(len(header)) + header
    out.write(head)
    total = len(head)
    count = 0
    for cid, block in blocks:
        raw = bytes(cid)
        prefix = encode_varint(len(raw) + len(block)) + raw
        out.write(prefix)
        out.write(block)
        total += len(prefix) + len(block)
        count += 1
    return count, total


def dag_blocks(roots: Sequence[CID], get_block: Callable[[CID], bytes]) -> Iterator[tuple[CID, bytes]]:
    """The blocks of the DAGs under ``roots``, depth first, each once, verified.

    Identity CIDs are written as sections too, where the walk meets them, as ``ipfs dag
    export`` does (their block is the CID's own digest).
    """
    seen: set[CID] = set()
    for root in roots:
        for cid, block in walk_dag(root, get_block):
            if cid in seen:
                continue
            seen.add(cid)
            yield cid, block


def car_chunks(roots: Sequence[CID], get_block: Callable[[CID], bytes]) -> Iterator[bytes]:
    """A CAR v1 of the DAGs under ``roots``, produced lazily, one section at a time."""
    header = encode_header(roots)
    yield encode_varint(len(header)) + header
    for cid, block in dag_blocks(roots, get_block):
        raw = bytes(cid)
        yield encode_varint(len(raw) + len(block)) + raw + block


def export_car(
    roots: CID | Sequence[CID], get_block: Callable[[CID], bytes], out: str | os.PathLike | BinaryIO
) -> tuple[int, int]:
    """Export whole DAGs as a CAR v1, to a path (atomically) or a binary stream.

    Args:
        roots: the root CID(s).
        get_block: returns a block (e.g. ``BlockStore.get``); every block is verified again.
        out: a path (written to a temporary name, then renamed) or a writable binary stream.

    Returns:
        ``(blocks written, bytes written)``.

    Raises:
        BlockNotFoundError / BlockIntegrityError / DAGError: from the walk; nothing is left at a path.
    """
    roots = [roots] if isinstance(roots, CID) else list(roots)
    if isinstance(out, (str, os.PathLike)):
        with atomic_file(out) as f:
            result = write_car(f, roots, dag_blocks(roots, get_block))
        return result
    return write_car(out, roots, dag_blocks(roots, get_block))


# -- importing ----------------------------------------------------------------------------------


@dataclass
class CarImport:
    """What an import did."""

    roots: list[CID]
    blocks: int = 0
    new_blocks: int = 0
    bytes: int = 0
    missing: dict[str, list[str]] = field(default_factory=dict)
    #: 1 or 2.
    version: int = 1
    #: Where the CAR v1 payload starts in the file (0 for a CAR v1).
    data_offset: int = 0
    #: The byte where a zero-length section ended the data (``zero_length_as_end``), else ``None``.
    ended_at: int | None = None

    def to_json(self) -> dict:
        out = {
            "roots": [str(r) for r in self.roots],
            "blocks": self.blocks,
            "new_blocks": self.new_blocks,
            "bytes": self.bytes,
            "missing": self.missing,
        }
        if self.ended_at is not None:
            out["ended_at_zero_length_section"] = self.ended_at
        return out


def import_car(
    source: str | os.PathLike | BinaryIO | io.RawIOBase,
    store,
    *,
    where: str | None = None,
    expect_roots: Sequence[CID] | None = None,
    exact: bool = False,
    allow_incomplete: bool = False,
    zero_length_as_end: bool = False,
    accept: Callable[[CID, bytes], None] | None = None,
) -> CarImport:
    """Import a CAR into a block store; all or nothing.

    Every block is verified against its CID and staged apart from the store. The blocks
    enter the store only if the whole CAR read cleanly and the DAG under every root is
    complete (from the CAR and the blocks the store already holds).

    Args:
        source: a path or a readable binary stream.
        store: a :class:`~registry.storage.blockstore.BlockStore`.
        where: how to name the source in errors.
        expect_roots: the roots the CAR must declare (exactly these, in this order).
        exact: also refuse blocks that belong to none of the roots' DAGs (for gateways).
        allow_incomplete: store what is there and report missing blocks instead of failing.
        zero_length_as_end: read a zero-length section as the end of the data (go-car's
            ``ZeroLengthSectionAsEOF``) instead of refusing the CAR.
        accept: called with each verified block before it is staged; raises to refuse it (a
            fetch refuses the first block outside the DAG it asked for, see ``limits.DagWalk``).

    Raises:
        CARError: malformed, truncated, wrong roots, or extra blocks (``exact``).
        BlockIntegrityError: a block that does not match its CID.
        CIDError: a block whose hash function Kubo refuses (see :mod:`.multihash`).
        DAGError: a dag-pb, dag-cbor, dag-json or git-raw block that does not decode.
        IncompleteDAGError: blocks missing (unless ``allow_incomplete``).
    """
    options = (expect_roots, exact, allow_incomplete, zero_length_as_end, accept)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        where = where or str(path)
        try:
            stream = open(path, "rb")
        except OSError as exc:
            raise CARError(f"cannot read {path}: {exc.strerror}") from None
        with stream:
            return _import(stream, store, where, *options)
    return _import(source, store, where or "the CAR stream", *options)


def _import(stream, store, where, expect_roots, exact, allow_incomplete, zero_length_as_end, accept) -> CarImport:
    stream = stream if hasattr(stream, "peek") else io.BufferedReader(_Raw(stream))
    reader = CarReader(stream, where, zero_length_as_end=zero_length_as_end)
    roots = reader.roots
    if expect_roots is not None and list(expect_roots) != roots:
        want = ", ".join(str(r) for r in expect_roots)
        got = ", ".join(str(r) for r in roots) or "none"
        raise CARError(f"{where} has roots [{got}] where [{want}] was asked; the source answered for another CID")
    if not roots:
        raise CARError(f"{where} declares no root; it cannot be checked for completeness")
    result = CarImport(roots=list(roots), version=reader.version, data_offset=reader.data_offset)
    with store.staging() as staging:
        for cid, block in reader:
            if cid.codec in FOLLOWED:
                # As `ipfs dag import` does: a node that does not decode is refused even where no
                # root reaches it, so the store never holds one that a later walk would trip on.
                links_of(cid, block)
            if accept is not None:
                accept(cid, block)
            staging.put(cid, block, trusted=True)
            result.blocks += 1
            result.bytes += len(block)
        result.ended_at = reader.ended_at
        for root in roots:
            missing = staging.missing(root)
            if missing:
                result.missing[str(root)] = [str(c) for c in missing]
                if not allow_incomplete:
                    raise IncompleteDAGError(root, missing, where)
        if exact:
            staged = {c.multihash for c in staging.cids}
            extra = staged - staging.reachable(roots)
            if extra:
                raise CARError(
                    f"{where} holds {len(extra)} block(s) outside the DAG of {roots[0]}; the source is not trustworthy"
                )
        result.new_blocks = staging.commit()
    return result


class _Raw(io.RawIOBase):
    """Adapt any object with ``read(n)`` to a raw stream so it can be buffered."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._stream.read(len(b))
        b[: len(data)] = data
        return len(data)
