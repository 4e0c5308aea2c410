"""Content ids and element manifests (the exact encoding is specified in ``docs/content-id.md``).

A content id is a BLAKE3-256 digest shown as ``0x`` + 64 hex:

- **tensor set**: ``BLAKE3(TENSORS_DOMAIN || u64(n) || entry_1 || ... || entry_n)`` with the
  entries sorted by UTF-8 name bytes and each entry
  ``u64(len name) name u64(len dtype) dtype u64(rank) u64(dim)... digest``, where ``digest`` is the
  plain BLAKE3 of the tensor's raw little-endian bytes and ``u64`` is unsigned 64-bit little-endian.
  It depends on names, dtypes, shapes and data only: not on tensor order in the file, header
  padding, ``__metadata__`` or how the tensors are sharded.
- **file**: ``BLAKE3(FILE_DOMAIN || file bytes)``. The two domains differ in their first bytes,
  so a file never has the id of a tensor set.

Hashing streams through mmap in windows (memory stays flat), runs tensors on a thread pool and
large tensors on every core (BLAKE3 ``max_threads``).
"""

from __future__ import annotations

import json
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

#: ``progress(bytes_done, bytes_total)``, called as hashing proceeds (progress bars).
Progress = Callable[[int, int], None]

from ..digest import AUTO_THREADS, PARALLEL_THRESHOLD, Bytes32, ContentId, blake3_digest, hash_file, parse_bytes32, parse_content_id
from ..digest.hashing import hash_mapped_region
from ..errors import InputError, IntegrityError
from ..limits import DOCUMENT_BYTES, NAME_BYTES, TENSOR_RANK, TENSORS, LimitExceededError, NotJSONError, loads_json
from .safetensors import DTYPE_BITS, TensorInfo, tensor_name_key, tensor_nbytes
from .checkpoint import INDEX_SUFFIX, Checkpoint, open_tensors, read_checkpoint
from .safetensors_writer import normalize_tensors, tensor_bytes

__all__ = [
    "FILE_DOMAIN",
    "TENSORS_DOMAIN",
    "MANIFEST_FORMAT",
    "TensorEntry",
    "Manifest",
    "DirectoryIds",
    "ManifestError",
    "ManifestLimitError",
    "ContentIdMismatchError",
    "tensor_digest",
    "tensor_entries",
    "tensor_entries_of_data",
    "tensor_set_content_id",
    "encode_tensor_table",
    "canonical_json",
    "file_content_id",
    "bytes_content_id",
    "manifest_of",
    "content_id",
    "directory_ids",
    "is_weights_path",
]

#: Domain prefixes: they differ at byte 9, so file ids and tensor-set ids can never collide.
FILE_DOMAIN = b"elements.file.v1\x00"
TENSORS_DOMAIN = b"elements.tensors.v1\x00"

MANIFEST_FORMAT = "elements.manifest/v1"

_U64 = struct.Struct("<Q")


class ManifestError(InputError):
    """A manifest document that is malformed (wrong format, fields, types or order)."""


class ManifestLimitError(ManifestError, LimitExceededError):
    """A manifest over one of the limits of :mod:`registry.limits` (size, nesting, tensors, rank,
    name length), refused before it is parsed or used."""


def _limit(limit: Any, what: str, value: int) -> ManifestLimitError:
    error: ManifestLimitError = limit.exceeded(what, value, ManifestLimitError)
    return error


class ContentIdMismatchError(IntegrityError):
    """A manifest's content id differs from the one re-derived from its tensor table or data."""


@dataclass(frozen=True)
class TensorEntry:
    """One row of a tensor table: what the content id commits to, plus the data size in bytes."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    digest: Bytes32
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "digest": str(self.digest), "size": self.size}

    @classmethod
    def from_json(cls, value: Any) -> "TensorEntry":
        if not isinstance(value, dict) or set(value) != {"name", "dtype", "shape", "digest", "size"}:
            raise ManifestError(f"a tensor entry has exactly name, dtype, shape, digest, size; got {_shown(value)}")
        name, dtype, shape, size = value["name"], value["dtype"], value["shape"], value["size"]
        if not isinstance(name, str):
            raise ManifestError(f"tensor name must be a string, got {_shown(name)}")
        if len(name.encode("utf-8", "surrogatepass")) > NAME_BYTES:
            raise _limit(NAME_BYTES, f"tensor name {name[:40]!r}…", len(name.encode("utf-8", "surrogatepass")))
        if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
            raise ManifestError(f"tensor {name!r}: unknown dtype {_shown(dtype)}")
        if isinstance(shape, list) and len(shape) > TENSOR_RANK:
            raise _limit(TENSOR_RANK, f"the rank of tensor {name!r}", len(shape))
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 64 for d in shape):
            raise ManifestError(f"tensor {name!r}: shape must be a list of non-negative integers, got {_shown(shape)}")
        try:
            expected = tensor_nbytes(dtype, shape)
        except InputError as exc:
            raise ManifestError(f"tensor {name!r}: {exc}") from None
        if size != expected or isinstance(size, bool):
            raise ManifestError(f"tensor {name!r}: size {_shown(size)} but {dtype}{shape} takes {expected} bytes")
        try:
            digest = parse_bytes32(value["digest"])
        except InputError as exc:
            raise ManifestError(f"tensor {name!r}: digest: {exc}") from None
        return cls(name, dtype, tuple(shape), digest, size)


def encode_tensor_table(entries: Iterable[TensorEntry]) -> bytes:
    """The exact bytes a tensor set's content id hashes (see docs/content-id.md).

    Raises:
        InputError: two entries with the same name.
    """
    ordered = sorted(entries, key=lambda entry: tensor_name_key(entry.name))
    parts = [TENSORS_DOMAIN, _U64.pack(len(ordered))]
    previous: bytes | None = None
    for entry in ordered:
        name = tensor_name_key(entry.name)
        if name == previous:
            raise InputError(f"tensor {entry.name!r} appears twice in the tensor set; names must be unique")
        previous = name
        dtype = entry.dtype.encode("ascii")
        parts += [_U64.pack(len(name)), name, _U64.pack(len(dtype)), dtype, _U64.pack(len(entry.shape))]
        parts += [_U64.pack(dim) for dim in entry.shape]
        digest = bytes(entry.digest)
        if len(digest) != 32:
            raise InputError(f"tensor {entry.name!r}: digest must be 32 bytes")
        parts.append(digest)
    return b"".join(parts)


def tensor_set_content_id(entries: Iterable[TensorEntry]) -> ContentId:
    """The content id of a set of tensors from its table (order of ``entries`` does not matter)."""
    return ContentId(blake3_digest(encode_tensor_table(entries), threads=1))


def tensor_digest(data: Any) -> Bytes32:
    """The per-tensor digest: plain BLAKE3 of the raw little-endian bytes (buffer or numpy array)."""
    return blake3_digest(tensor_bytes("tensor", data))


def bytes_content_id(data: Any) -> ContentId:
    """The content id of a file given as bytes in memory."""
    return ContentId(blake3_digest(data, prefix=FILE_DOMAIN))


def file_content_id(path: str | os.PathLike[str]) -> ContentId:
    """The content id of a plain file (config.json, tokenizer.json ...): domain-separated BLAKE3."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path")
    return ContentId(hash_file(path, prefix=FILE_DOMAIN))


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def tensor_entries(source: str | os.PathLike[str] | Checkpoint, progress: Progress | None = None) -> list[TensorEntry]:
    """The tensor table (sorted by name) of a .safetensors file, an index, or a model directory.

    Validates strictly first, then hashes every tensor through mmap: big tensors on every core,
    small ones spread over a thread pool. ``progress(bytes_done, bytes_total)`` follows the
    tensor data hashed.
    """
    checkpoint = source if isinstance(source, Checkpoint) else read_checkpoint(source)
    digests: dict[str, Bytes32] = {}
    total = sum(info.size for info in checkpoint.tensors.values())
    done = 0
    with open_tensors(checkpoint) as views:
        jobs = sorted(checkpoint.tensors.values(), key=lambda info: info.size, reverse=True)

        def run(info: TensorInfo) -> tuple[str, Bytes32]:
            mapped, _ = views.mapped(info.name)
            if mapped is None or info.size == 0:
                return info.name, blake3_digest(b"")
            threads = AUTO_THREADS if info.size >= PARALLEL_THRESHOLD else 1
            return info.name, hash_mapped_region(mapped, info.start, info.end, threads=threads)

        with ThreadPoolExecutor(max_workers=_workers()) as pool:
            for info, (name, digest) in zip(jobs, pool.map(run, jobs)):
                digests[name] = digest
                if progress:
                    done += info.size
                    progress(done, total)
    return [
        TensorEntry(name, info.dtype, info.shape, digests[name], info.size)
        for name, info in sorted(checkpoint.tensors.items(), key=lambda item: tensor_name_key(item[0]))
    ]


def tensor_entries_of_data(tensors: Mapping[str, Any] | Iterable[Any]) -> list[TensorEntry]:
    """The tensor table of in-memory tensors, given in any form ``write_safetensors`` accepts
    (so a composition's content id can be known before its file is written).

    Raises:
        InputError: bad names, dtypes, shapes, or data whose length does not match.
    """
    entries = []
    for name, dtype, shape, data in normalize_tensors(tensors):
        size = tensor_nbytes(dtype, shape)
        view = tensor_bytes(name, data)
        if view.nbytes != size:
            raise InputError(f"tensor {name!r}: {dtype}{list(shape)} needs {size} bytes but its data has {view.nbytes}")
        entries.append(TensorEntry(name, dtype, tuple(shape), blake3_digest(view), size))
    return entries


def canonical_json(document: Any) -> bytes:
    """Canonical JSON, the encoding of manifests and recipes: sorted keys, no whitespace, UTF-8,
    shortest round-trip floats (the same document, the same bytes, the same CID).

    Raises:
        ValueError: a NaN or infinite number (JSON has none).
    """
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


@dataclass(frozen=True)
class Manifest:
    """An element manifest (``elements.manifest/v1``): what a record's CID points to.

    ``entries`` is the tensor table (kind ``tensors``, sorted by name; empty for kind ``file``);
    ``data`` is ``{"cid", "size", "name"}`` of the stored data file once a caller stored it
    (``None`` before); ``metadata`` is free-form JSON that does not enter the content id.
    """

    kind: str
    content_id: ContentId
    entries: tuple[TensorEntry, ...] = ()
    data: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_tensors(cls, entries: Iterable[TensorEntry], *, data: Mapping[str, Any] | None = None,
                    metadata: Mapping[str, Any] | None = None) -> "Manifest":
        """A tensors manifest whose content id is derived from ``entries``."""
        ordered = tuple(sorted(entries, key=lambda entry: tensor_name_key(entry.name)))
        return cls("tensors", tensor_set_content_id(ordered), ordered, dict(data) if data else None, dict(metadata or {}))

    @property
    def tensors(self) -> tuple[TensorEntry, ...]:
        return self.entries

    @property
    def size(self) -> int:
        """Total tensor bytes (kind tensors) or the stored data size when known."""
        if self.kind == "tensors":
            return sum(entry.size for entry in self.entries)
        return int(self.data["size"]) if self.data and "size" in self.data else 0

    def with_data(self, cid: Any, size: int, name: str) -> "Manifest":
        """A copy with the data reference filled in (``cid`` is stored as its string form)."""
        return replace(self, data={"cid": str(cid), "size": int(size), "name": str(name)})

    def with_metadata(self, metadata: Mapping[str, Any]) -> "Manifest":
        return replace(self, metadata=dict(metadata))

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "kind": self.kind,
            "content_id": str(self.content_id),
            "metadata": self.metadata,
        }
        if self.data is not None:
            document["data"] = self.data
        if self.kind == "tensors":
            document["tensors"] = [entry.to_json() for entry in self.entries]
        return document

    def to_json_bytes(self) -> bytes:
        """Canonical JSON: sorted keys, no whitespace, UTF-8 (the same manifest, the same bytes)."""
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, document: bytes | str | Mapping[str, Any], *, require_canonical: bool = False) -> "Manifest":
        """Parse a manifest and re-derive its content id from its tensor table.

        Args:
            require_canonical: also refuse bytes that are not exactly the canonical encoding.

        Raises:
            ManifestError: malformed document.
            ContentIdMismatchError: the tensor table does not hash to the stated content id.
        """
        raw = document
        if isinstance(document, (bytes, bytearray, memoryview, str)):
            try:
                document = loads_json(document, what="the manifest", max_bytes=DOCUMENT_BYTES, object_pairs_hook=_unique_keys)
            except LimitExceededError as exc:
                raise _limit(exc.limit, exc.what, exc.value) from None
            except NotJSONError as exc:
                problem = "not UTF-8" if "not UTF-8" in str(exc) else f"not valid JSON ({exc})"
                raise ManifestError(f"manifest is {problem}") from None
        if not isinstance(document, Mapping):
            raise ManifestError("a manifest is a JSON object")
        if document.get("format") != MANIFEST_FORMAT:
            raise ManifestError(f"not an element manifest: format is {_shown(document.get('format'))}, expected {MANIFEST_FORMAT!r}")
        kind = document.get("kind")
        allowed = {"format", "kind", "content_id", "data", "metadata"} | ({"tensors"} if kind == "tensors" else set())
        unknown = set(document) - allowed
        if kind not in ("tensors", "file"):
            raise ManifestError(f"manifest kind must be 'tensors' or 'file', got {_shown(kind)}")
        if unknown:
            raise ManifestError(f"manifest has unknown field(s) {_shown(', '.join(sorted(unknown)))}")
        try:
            stated = parse_content_id(document.get("content_id"), None)
        except InputError as exc:
            raise ManifestError(f"manifest content_id: {exc}") from None
        data = document.get("data")
        if data is not None:
            if not isinstance(data, Mapping) or set(data) != {"cid", "size", "name"}:
                raise ManifestError(f"manifest data must be {{cid, size, name}}, got {_shown(data)}")
            if not isinstance(data["cid"], str) or not isinstance(data["name"], str) or not (
                isinstance(data["size"], int) and not isinstance(data["size"], bool) and 0 <= data["size"] < 1 << 64
            ):
                raise ManifestError(f"manifest data has wrong types or a size outside 0..2**64-1: {_shown(data)}")
            data = dict(data)
        metadata = document.get("metadata", {})
        if not isinstance(metadata, Mapping):
            raise ManifestError("manifest metadata must be an object")
        entries: tuple[TensorEntry, ...] = ()
        if kind == "tensors":
            table = document.get("tensors")
            if not isinstance(table, list):
                raise ManifestError("a tensors manifest needs a tensors list")
            if len(table) > TENSORS:
                raise _limit(TENSORS, "the number of tensors in the manifest", len(table))
            entries = tuple(TensorEntry.from_json(item) for item in table)
            keys = [tensor_name_key(entry.name) for entry in entries]
            if keys != sorted(keys) or len(set(keys)) != len(keys):
                raise ManifestError("manifest tensors must be sorted by name with no name twice")
            derived = tensor_set_content_id(entries)
            if derived != stated:
                raise ContentIdMismatchError(
                    f"manifest states content id {stated} but its tensor table hashes to {derived}; the manifest was altered"
                )
        manifest = cls(kind, stated, entries, data, dict(metadata))
        if require_canonical and isinstance(raw, (bytes, bytearray, memoryview)) and bytes(raw) != manifest.to_json_bytes():
            raise ManifestError("manifest bytes are not in canonical form (sorted keys, no whitespace, UTF-8)")
        return manifest

    def check_file(self, path: str | os.PathLike[str]) -> None:
        """Check that ``path`` (a weights file/index/dir, or a plain file) has this manifest's content.

        Raises:
            ContentIdMismatchError: it does not.
        """
        actual = content_id(path) if self.kind == "tensors" else file_content_id(path)
        if actual != self.content_id:
            raise ContentIdMismatchError(f"{path} has content id {actual}, the manifest expects {self.content_id}")


def _shown(value: Any) -> str:
    """A value for a one-line message: its repr, cut short (documents are written by anyone)."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ManifestError(f"manifest has key {_shown(key)} twice")
        result[key] = value
    return result


def is_weights_path(path: str | os.PathLike[str]) -> bool:
    """True for a .safetensors file, a sharded checkpoint index, or a directory."""
    path = Path(path)
    return path.is_dir() or path.name.endswith(".safetensors") or path.name.endswith(INDEX_SUFFIX)


def manifest_of(path: str | os.PathLike[str], *, metadata: Mapping[str, Any] | None = None,
                progress: Progress | None = None) -> Manifest:
    """The manifest of a .safetensors file, a sharded checkpoint (index), a model directory's
    weights, or a plain file (kind ``file``). ``data`` is left for the caller that stores it.
    ``progress(bytes_done, bytes_total)`` follows the hashing.

    Raises:
        SafetensorsError: the weights are refused by the strict parser.
        InputError: no such path / no weights in a directory.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory; check the path")
    if is_weights_path(path):
        return Manifest.for_tensors(tensor_entries(path, progress), metadata=metadata)
    file_id = file_content_id(path)
    if progress:
        size = path.stat().st_size
        progress(size, size)
    return Manifest("file", file_id, (), None, dict(metadata or {}))


def content_id(path: str | os.PathLike[str]) -> ContentId:
    """The content id of a path: a plain file's, or the weights' of a .safetensors file, an index
    or a model directory."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory; check the path")
    if is_weights_path(path):
        return tensor_set_content_id(tensor_entries(path))
    return file_content_id(path)


@dataclass(frozen=True)
class DirectoryIds:
    """A model directory: its weights manifest, the weight files, and each other file's id."""

    path: Path
    weights: Manifest
    weight_files: tuple[str, ...]
    files: dict[str, ContentId]

    @property
    def content_id(self) -> ContentId:
        return self.weights.content_id

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "content_id": str(self.content_id),
            "tensor_count": len(self.weights.entries),
            "weight_files": list(self.weight_files),
            "files": {name: str(file_id) for name, file_id in self.files.items()},
            "manifest": self.weights.to_json(),
        }


def directory_ids(directory: str | os.PathLike[str], progress: Progress | None = None) -> DirectoryIds:
    """Content ids of a model directory: the weights' (the directory's id) and every other file's.

    Other files are found recursively (hidden files and directories skipped), keyed by their
    POSIX path relative to the directory, sorted. ``progress(bytes_done, bytes_total)`` follows
    the hashing of the weights, then of the other files.
    """
    directory = Path(directory)
    checkpoint = read_checkpoint(directory)
    weight_paths = {p.resolve() for p in checkpoint.files}
    weight_files = tuple(sorted(p.relative_to(directory).as_posix() for p in checkpoint.files))
    others: list[Path] = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = Path(root) / name
            if path.resolve() in weight_paths or not path.is_file():
                continue
            others.append(path)
    weight_bytes = sum(info.size for info in checkpoint.tensors.values())
    total = weight_bytes + sum(p.stat().st_size for p in others)
    weights = Manifest.for_tensors(tensor_entries(checkpoint, (lambda done, _: progress(done, total)) if progress else None))
    files: dict[str, ContentId] = {}
    done = weight_bytes
    for path in others:
        files[path.relative_to(directory).as_posix()] = file_content_id(path)
        if progress:
            done += path.stat().st_size
            progress(done, total)
    return DirectoryIds(directory, weights, weight_files, dict(sorted(files.items())))
