"""Hashing primitives: BLAKE3 and SHA-256, parallel hashing of big buffers and file regions.

Everything above this layer hashes through here, so the choices live in one place:

- :class:`Bytes32` is a 32-byte digest that prints as ``0x`` + 64 hex (the form ids take on the
  chain and in JSON) and compares equal to the raw ``bytes``; :class:`ContentId` and
  :class:`RecordId` are the two kinds of id, kept apart by the type checker, parsed by
  :func:`parse_content_id` / :func:`parse_record_id`. Ids stay typed in memory; hex is written
  only where they leave it (JSON, ABI words, messages).
- :func:`blake3_digest` / :func:`sha256_digest` hash any buffer (bytes, memoryview, mmap slice,
  numpy array) without copying it; BLAKE3 uses every core for buffers of
  :data:`PARALLEL_THRESHOLD` bytes or more.
- :func:`hash_file_region` hashes a byte range of a file through ``mmap`` in windows of
  :data:`WINDOW` bytes, dropping each window from the process's memory once hashed, so memory stays
  flat however large the file.
"""

from __future__ import annotations

from .hashing import (
    AUTO_THREADS,
    PARALLEL_THRESHOLD,
    WINDOW,
    Bytes32,
    ContentId,
    RecordId,
    blake3_digest,
    blake3_hasher,
    hash_file,
    hash_file_region,
    parse_bytes32,
    parse_content_id,
    parse_record_id,
    sha256_digest,
    to_hex,
)

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
    "parse_bytes32",
    "parse_content_id",
    "parse_record_id",
    "sha256_digest",
    "to_hex",
]
