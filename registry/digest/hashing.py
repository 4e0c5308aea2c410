"""BLAKE3 / SHA-256 over buffers and memory-mapped file regions, using every core, in flat memory."""

from __future__ import annotations

import hashlib
import mmap
import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import blake3 as _blake3

from ..errors import InputError

__all__ = [
    "AUTO_THREADS",
    "PARALLEL_THRESHOLD",
    "WINDOW",
    "Bytes32",
    "ContentId",
    "RecordId",
    "blake3_digest",
    "blake3_hasher",
    "hash_file",
    "hash_file_region",
    "hash_mapped_region",
    "parse_bytes32",
    "parse_content_id",
    "parse_record_id",
    "sha256_digest",
    "to_hex",
]

Algorithm = Literal["blake3", "sha256"]

#: ``max_threads`` value that lets BLAKE3 use every core.
AUTO_THREADS: int = _blake3.blake3.AUTO

#: Buffers at least this large are hashed by BLAKE3 on every core; below it the thread start-up
#: costs more than it saves (measured: 1 MiB already runs ~1.7x faster on 2 cores).
PARALLEL_THRESHOLD: int = 1 << 20

#: File regions are hashed through ``mmap`` in windows of this size; each window is dropped from
#: the process (``MADV_DONTNEED``) once hashed, so resident memory stays near one window per
#: hashing thread however large the file is.
WINDOW: int = 16 << 20

_PAGE = mmap.PAGESIZE


_B = TypeVar("_B", bound="Bytes32")


class Bytes32(bytes):
    """A 32-byte digest or id: ``bytes`` that prints as ``0x`` + 64 lowercase hex.

    Compares and hashes equal to the plain ``bytes`` (so web3 and dict lookups accept it).
    """

    __slots__ = ()

    def __new__(cls: type[_B], value: bytes | bytearray | memoryview | str) -> _B:
        if isinstance(value, cls):
            return value  # immutable: the value itself is the copy
        if isinstance(value, str):
            value = parse_bytes32(value)
        raw = bytes(value)
        if len(raw) != 32:
            raise InputError(f"a 32-byte id was expected, got {len(raw)} bytes; pass a full 0x + 64 hex id")
        return super().__new__(cls, raw)

    def __str__(self) -> str:
        return "0x" + self.hex()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def to_json(self) -> str:
        return str(self)


class ContentId(Bytes32):
    """What an element or a model *is*: the content id of its bytes (registry/formats/content_id.py),
    the ``contentId`` of a record on chain.

    A distinct type from :class:`RecordId` so that mypy refuses one where the other is declared;
    at run time both are the same 32 bytes (equal to each other and to the plain ``bytes``).
    """

    __slots__ = ()


class RecordId(Bytes32):
    """Which claim on chain: the EIP-712 struct hash of a record (registry/chain/inputs.py), the
    ``recordId`` of ``RecordPublished`` and of a composition's parents."""

    __slots__ = ()


def to_hex(value: bytes) -> str:
    """``0x`` + lowercase hex of ``value`` (any length)."""
    return "0x" + bytes(value).hex()


def parse_bytes32(value: object, what: str | None = None) -> Bytes32:
    """Parse ``0x`` + 64 hex (case-insensitive, ``0x`` optional) or 32 raw bytes into a Bytes32:
    the one parser of 32-byte ids and digests.

    Args:
        what: what the value is (``"parent record id"``, ``"content id"``), for the message:
            ``'0x12' is not a parent record id (expected 0x + 64 hex digits)``. Without it any
            value that is not a string or bytes is refused, and the message speaks of an id.

    Raises:
        InputError: not 32 bytes / not hex.
    """
    if isinstance(value, Bytes32):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if what is not None and len(raw) != 32:
            raise InputError(f"a {what} has 32 bytes, got {len(raw)}")
        return Bytes32(raw)
    if what is not None:
        text = str(value).strip()
        body = text[2:] if text[:2].lower() == "0x" else text
        if len(body) != 64 or not _is_hex(body):
            shown = repr(text) if len(text) <= 80 else repr(text[:70]) + "…"
            raise InputError(f"{shown} is not a {what} (expected 0x + 64 hex digits)")
        return bytes.__new__(Bytes32, bytes.fromhex(body))
    if not isinstance(value, str):
        raise InputError(f"an id must be a 0x-prefixed hex string, got {type(value).__name__}")
    text = value.strip()
    if text[:2] in ("0x", "0X"):
        text = text[2:]
    if len(text) != 64:
        shown = repr(value) if len(value) <= 80 else repr(value[:70]) + "..."
        raise InputError(f"an id is 0x + 64 hex digits, got {shown} ({len(text):,} digits)")
    if not _is_hex(text):
        raise InputError(f"an id is 0x + 64 hex digits, got {value!r} (not hex)")
    return bytes.__new__(Bytes32, bytes.fromhex(text))


def parse_content_id(value: object, what: str | None = "content id") -> ContentId:
    """A content id from ``0x`` + 64 hex (the command line, JSON documents) or 32 raw bytes (ABI
    words); the message of a bad one names ``what`` (``None``: speaks of an id; see
    :func:`parse_bytes32`)."""
    if type(value) is ContentId:
        return value
    return bytes.__new__(ContentId, parse_bytes32(value, what))


def parse_record_id(value: object, what: str | None = "record id") -> RecordId:
    """A record id from ``0x`` + 64 hex or 32 raw bytes; the message of a bad one names ``what``
    (``"parent record id"``, ``"record id (--parent)"``)."""
    if type(value) is RecordId:
        return value
    return bytes.__new__(RecordId, parse_bytes32(value, what))


def _is_hex(text: str) -> bool:
    # bytes.fromhex also accepts spaces between digit pairs: "00 11..." is not an id.
    return all(c in "0123456789abcdefABCDEF" for c in text)


def blake3_hasher(size_hint: int = 0, *, threads: int | None = None, **kwargs: Any) -> "_blake3.blake3":
    """A BLAKE3 hasher that uses every core when ``size_hint`` reaches PARALLEL_THRESHOLD.

    ``threads`` forces a ``max_threads`` value (1 = single-threaded); extra keyword arguments
    (``key``, ``derive_key_context``) go to ``blake3.blake3``.
    """
    if threads is None:
        threads = AUTO_THREADS if size_hint >= PARALLEL_THRESHOLD else 1
    return _blake3.blake3(max_threads=threads, **kwargs)


def blake3_digest(data: Any, *, prefix: bytes = b"", threads: int | None = None) -> Bytes32:
    """BLAKE3-256 of ``prefix + data`` (``data``: any contiguous buffer; no copy is made)."""
    view = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
    hasher = blake3_hasher(len(view), threads=threads)
    if prefix:
        hasher.update(prefix)
    hasher.update(view)
    return Bytes32(hasher.digest())


def sha256_digest(data: Any, *, prefix: bytes = b"") -> Bytes32:
    """SHA-256 of ``prefix + data`` (``data``: any contiguous buffer; no copy is made)."""
    view = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
    hasher = hashlib.sha256(prefix)
    hasher.update(view)
    return Bytes32(hasher.digest())


def _new(algorithm: Algorithm, size: int, threads: int | None) -> Any:
    if algorithm == "blake3":
        return blake3_hasher(size, threads=threads)
    if algorithm == "sha256":
        return hashlib.sha256()
    raise ValueError(f"unknown hash algorithm {algorithm!r}; use 'blake3' or 'sha256'")


def hash_mapped_region(
    mapped: mmap.mmap,
    start: int,
    end: int,
    *,
    algorithm: Algorithm = "blake3",
    prefix: bytes = b"",
    threads: int | None = None,
    window: int = WINDOW,
) -> Bytes32:
    """Hash ``mapped[start:end]`` window by window, releasing each window's pages once hashed.

    Safe to call from several threads on the same map (each on its own region): the GIL is
    released while hashing, and dropping a page another thread still needs only makes it fault
    back in from the page cache.
    """
    if not 0 <= start <= end <= len(mapped):
        raise ValueError(f"region [{start}, {end}) is outside the {len(mapped)}-byte map")
    hasher = _new(algorithm, end - start, threads)
    if prefix:
        hasher.update(prefix)
    with memoryview(mapped) as whole:
        position = start
        while position < end:
            stop = min(end, position + window)
            with whole[position:stop] as chunk:
                hasher.update(chunk)
            aligned = position - position % _PAGE
            try:
                mapped.madvise(mmap.MADV_DONTNEED, aligned, stop - aligned)
            except OSError:  # pragma: no cover - advisory only
                pass
            position = stop
    return Bytes32(hasher.digest())


def hash_file_region(
    path: str | os.PathLike[str],
    start: int = 0,
    end: int | None = None,
    *,
    algorithm: Algorithm = "blake3",
    prefix: bytes = b"",
    threads: int | None = None,
) -> Bytes32:
    """Hash bytes ``[start, end)`` of a file (``end=None``: to the end) through mmap, in flat memory."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        end = size if end is None else end
        if not 0 <= start <= end <= size:
            raise InputError(f"{path}: region [{start}, {end}) is outside the file ({size} bytes)")
        if start == end:
            hasher = _new(algorithm, 0, threads)
            hasher.update(prefix)
            return Bytes32(hasher.digest())
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return hash_mapped_region(mapped, start, end, algorithm=algorithm, prefix=prefix, threads=threads)


def hash_file(
    path: str | os.PathLike[str], *, algorithm: Algorithm = "blake3", prefix: bytes = b"", threads: int | None = None
) -> Bytes32:
    """Hash a whole file (``prefix`` first) through mmap, in flat memory, on every core for BLAKE3."""
    return hash_file_region(Path(path), 0, None, algorithm=algorithm, prefix=prefix, threads=threads)
