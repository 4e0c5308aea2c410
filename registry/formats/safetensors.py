"""Strict safetensors: parse and validate a header before any tensor data is read; write canonically.

The reference library tolerates things a registry must not: it keeps the last of two tensors with
the same name, and a file's bytes depend on how it was written. Here every file is checked whole
from its header alone, and each problem has its own exception (all :class:`SafetensorsError`, a
:class:`registry.errors.UnsafeFileError`) that names the file and what is wrong::

    SafetensorsError(UnsafeFileError)
    ├── TruncatedFileError         shorter than 8 bytes, or the header runs past the end
    ├── HeaderTooLargeError        header length over MAX_HEADER_SIZE (100 MB, as safetensors)
    ├── InvalidHeaderError         not UTF-8, not JSON, not an object, malformed tensor entry
    │   ├── HeaderLimitError       over a limit of registry.limits (nesting, tensors, rank, name length)
    │   ├── DuplicateTensorError   the same tensor name twice (or a duplicated field)
    │   ├── UnknownDtypeError      a dtype safetensors does not define
    │   ├── InvalidMetadataError   ``__metadata__`` not an object of strings
    │   └── InvalidShapeError      a dim that is negative or not an integer
    ├── SizeMismatchError          dtype x shape does not match the data_offsets
    ├── OffsetsOutOfRangeError     offsets reversed or past the end of the file
    ├── OverlappingDataError       two tensors share bytes
    ├── GapInDataError             bytes between tensors that belong to none
    ├── TrailingDataError          bytes after the last tensor
    └── ShardIndexError            a sharded checkpoint whose index and shards disagree
        └── TensorInTwoShardsError the same tensor name in two shards

File layout (all offsets in :class:`TensorInfo` are absolute file offsets)::

    [u64 little-endian N][N bytes of JSON header, space padded][tensor data ...]
                          ^ 8                                 ^ data_start = 8 + N
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ..files import atomic_file
from ..errors import InputError, UnsafeFileError
from ..limits import NAME_BYTES, SAFETENSORS_HEADER_BYTES, TENSOR_RANK, TENSORS, LimitExceeded, NotJSON, loads_json

__all__ = [
    "DTYPE_BITS",
    "DTYPE_SIZES",
    "MAX_HEADER_SIZE",
    "INDEX_SUFFIX",
    "SafetensorsHeader",
    "TensorInfo",
    "Checkpoint",
    "TensorViews",
    "read_header",
    "read_checkpoint",
    "find_weights",
    "open_tensors",
    "write_safetensors",
    "tensor_nbytes",
    "tensor_bytes",
    "normalize_tensors",
    "build_header",
    "parse_header_bytes",
    "numpy_dtype",
    "dtype_of_numpy",
    "SafetensorsError",
    "TruncatedFileError",
    "HeaderTooLargeError",
    "InvalidHeaderError",
    "HeaderLimitError",
    "DuplicateTensorError",
    "UnknownDtypeError",
    "InvalidMetadataError",
    "InvalidShapeError",
    "SizeMismatchError",
    "OffsetsOutOfRangeError",
    "OverlappingDataError",
    "GapInDataError",
    "TrailingDataError",
    "ShardIndexError",
    "TensorInTwoShardsError",
]

#: Largest header accepted, in bytes (the safetensors library's own limit; registry.limits).
MAX_HEADER_SIZE = SAFETENSORS_HEADER_BYTES

#: Suffix of a sharded checkpoint's index (``model.safetensors.index.json``).
INDEX_SUFFIX = ".safetensors.index.json"

#: Bits per element of every dtype the safetensors format defines (safetensors 0.6+ ``Dtype``).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}

#: Bytes per element of every whole-byte dtype (all of DTYPE_BITS except the packed F4 and F6).
DTYPE_SIZES: dict[str, int] = {name: bits // 8 for name, bits in DTYPE_BITS.items() if bits % 8 == 0}

_NUMPY_NAMES = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "U16": "uint16",
    "I16": "int16",
    "F16": "float16",
    "U32": "uint32",
    "I32": "int32",
    "F32": "float32",
    "U64": "uint64",
    "I64": "int64",
    "F64": "float64",
    "C64": "complex64",
    # ml_dtypes names, when that package provides them
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz",
    "F8_E8M0": "float8_e8m0fnu",
}
_DTYPE_OF_NUMPY = {numpy_name: dtype for dtype, numpy_name in _NUMPY_NAMES.items()}


# --------------------------------------------------------------------------------------- errors


class SafetensorsError(UnsafeFileError):
    """A safetensors file (or sharded checkpoint) refused by the strict parser."""

    def __init__(self, path: str | os.PathLike[str], problem: str, tensor: str | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.tensor = tensor
        super().__init__(f"{self.path}: {problem}; {self.fix}")

    fix = "the file is not a valid safetensors file: re-export it (safetensors save_file) or obtain it again"


class TruncatedFileError(SafetensorsError):
    """Shorter than the 8-byte length prefix, or the header runs past the end of the file."""

    fix = "the file is truncated: download or copy it again"


class HeaderTooLargeError(SafetensorsError):
    """The header length exceeds MAX_HEADER_SIZE."""


class InvalidHeaderError(SafetensorsError):
    """The header is not a UTF-8 JSON object of well-formed tensor entries."""


class HeaderLimitError(InvalidHeaderError, LimitExceeded):
    """The header (or index) is over one of the limits of :mod:`registry.limits`: nesting, tensor
    count, rank or name length. Checked before the JSON is parsed or the entries are used."""

    fix = "the file is not one any safetensors writer makes; obtain it again from a trustworthy source"


def _over(path: Path, limit: Any, what: str, value: Any, tensor: str | None = None) -> HeaderLimitError:
    error = HeaderLimitError(path, limit.describe(what, value), tensor)
    error.limit, error.value = limit, value
    return error


class DuplicateTensorError(InvalidHeaderError):
    """The same tensor name (or the same field of one entry) appears twice."""

    fix = "a tensor name must appear once: re-export the file with unique names"


class UnknownDtypeError(InvalidHeaderError):
    """A dtype the safetensors format does not define."""


class InvalidMetadataError(InvalidHeaderError):
    """``__metadata__`` is not an object mapping strings to strings."""


class InvalidShapeError(InvalidHeaderError):
    """A shape that is not a list of non-negative integers."""


class SizeMismatchError(SafetensorsError):
    """The byte size implied by dtype and shape differs from the tensor's data_offsets."""


class OffsetsOutOfRangeError(SafetensorsError):
    """data_offsets reversed, or past the end of the file."""


class OverlappingDataError(SafetensorsError):
    """Two tensors claim some of the same bytes."""


class GapInDataError(SafetensorsError):
    """Bytes between two tensors belong to no tensor."""


class TrailingDataError(SafetensorsError):
    """Bytes after the last tensor belong to no tensor."""


class ShardIndexError(SafetensorsError):
    """A sharded checkpoint's index and its shards disagree (or the index is malformed)."""

    fix = "the index must list every tensor of every shard exactly once: regenerate the index or download the checkpoint again"


class TensorInTwoShardsError(ShardIndexError):
    """The same tensor name is stored in two shards."""


# ---------------------------------------------------------------------------------- header model


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a header. ``start``/``end`` are absolute offsets in the file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def size(self) -> int:
        """Size of the tensor's data in bytes."""
        return self.end - self.start

    @property
    def numel(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


@dataclass(frozen=True)
class SafetensorsHeader:
    """A validated safetensors header: every tensor accounted for, no byte of data read yet."""

    path: Path
    header_size: int
    data_start: int
    metadata: dict[str, str]
    tensors: dict[str, TensorInfo]  # in file (offset) order
    file_size: int

    @property
    def names(self) -> list[str]:
        """Tensor names in canonical (UTF-8 byte) order."""
        return sorted(self.tensors, key=_name_key)

    @property
    def data_size(self) -> int:
        return self.file_size - self.data_start


def _name_key(name: str) -> bytes:
    return name.encode("utf-8")


def tensor_nbytes(dtype: str, shape: Iterable[int]) -> int:
    """Bytes taken by a tensor of ``dtype`` and ``shape``.

    Raises:
        InputError: unknown dtype, or a packed dtype whose bits do not fill whole bytes.
    """
    try:
        bits = DTYPE_BITS[dtype]
    except (KeyError, TypeError):
        raise InputError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPE_BITS)}") from None
    count = 1
    for dim in shape:
        count *= dim
    total_bits = count * bits
    if total_bits % 8:
        raise InputError(f"{count} elements of {dtype} do not fill whole bytes ({total_bits} bits)")
    return total_bits // 8


# --------------------------------------------------------------------------------------- parsing


class _Pairs(list[tuple[str, Any]]):
    """A JSON object kept as its (key, value) pairs, so duplicate keys can be refused."""


def _keep_pairs(pairs: list[tuple[str, Any]]) -> _Pairs:
    return _Pairs(pairs)


def _loads_pairs(path: Path, raw: bytes, what: str, error: type[SafetensorsError]) -> Any:
    """The header or index JSON, within the limits of registry.limits (nesting before parsing)."""
    try:
        return loads_json(raw, what=what, max_bytes=SAFETENSORS_HEADER_BYTES, object_pairs_hook=_keep_pairs)
    except LimitExceeded as exc:
        raise _over(path, exc.limit, exc.what, exc.value) from None
    except NotJSON as exc:
        raise error(path, f"{what} is not valid JSON ({exc})") from None


def _check_utf8(path: Path, value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidHeaderError(path, f"{what} {value!r} is not valid UTF-8 (a lone surrogate escape)") from None


def _entry_fields(path: Path, name: str, pairs: Any) -> dict[str, Any]:
    if not isinstance(pairs, _Pairs):
        raise InvalidHeaderError(path, f"tensor {name!r} must be an object with dtype, shape, data_offsets", name)
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if key in fields:
            raise DuplicateTensorError(path, f"tensor {name!r} has field {key!r} twice", name)
        fields[key] = value
    unknown = set(fields) - {"dtype", "shape", "data_offsets"}
    missing = {"dtype", "shape", "data_offsets"} - set(fields)
    if missing or unknown:
        detail = []
        if missing:
            detail.append("missing " + ", ".join(sorted(missing)))
        if unknown:
            detail.append("unknown field(s) " + ", ".join(sorted(unknown)))
        raise InvalidHeaderError(path, f"tensor {name!r}: {'; '.join(detail)}", name)
    return fields


_U64_MAX = (1 << 64) - 1


def _is_uint(value: Any) -> bool:
    """A JSON integer that fits the format's u64 (booleans are not integers here)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _U64_MAX


def parse_header_bytes(path: str | os.PathLike[str], raw: bytes, file_size: int) -> SafetensorsHeader:
    """Validate a header's JSON bytes (without the length prefix) against a file of ``file_size``.

    Exposed for callers that already hold the header bytes (a download in progress); ``read_header``
    is the usual entry point.
    """
    path = Path(path)
    raw = bytes(raw)
    header_size = len(raw)
    data_start = 8 + header_size
    data_size = file_size - data_start
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidHeaderError(path, f"header is not UTF-8 (byte {exc.start})") from None
    document = _loads_pairs(path, raw, "header", InvalidHeaderError)
    if not isinstance(document, _Pairs):
        raise InvalidHeaderError(path, f"header must be a JSON object, found a JSON {_json_type(document)}")
    if len(document) > TENSORS + 1:
        raise _over(path, TENSORS, "the number of tensors in the header", len(document) - 1)

    metadata: dict[str, str] = {}
    raw_entries: dict[str, Any] = {}
    seen: set[str] = set()
    for key, value in document:
        if key in seen:
            what = "__metadata__" if key == "__metadata__" else f"tensor {key!r}"
            raise DuplicateTensorError(path, f"{what} appears twice in the header", key)
        seen.add(key)
        _check_utf8(path, key, "tensor name")
        if len(key.encode("utf-8")) > NAME_BYTES:
            raise _over(path, NAME_BYTES, f"tensor name {key[:40]!r}…", len(key.encode("utf-8")), key[:40])
        if key == "__metadata__":
            if not isinstance(value, _Pairs):
                raise InvalidMetadataError(path, "__metadata__ must be an object of strings")
            for meta_key, meta_value in value:
                if meta_key in metadata:
                    raise DuplicateTensorError(path, f"__metadata__ has key {meta_key!r} twice")
                if not isinstance(meta_value, str):
                    raise InvalidMetadataError(
                        path, f"__metadata__[{meta_key!r}] is a JSON {_json_type(meta_value)}, not a string"
                    )
                _check_utf8(path, meta_key, "metadata key")
                _check_utf8(path, meta_value, "metadata value")
                metadata[meta_key] = meta_value
        else:
            raw_entries[key] = value

    infos: list[TensorInfo] = []
    for name, value in raw_entries.items():
        fields = _entry_fields(path, name, value)
        dtype = fields["dtype"]
        if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
            raise UnknownDtypeError(path, f"tensor {name!r} has unknown dtype {dtype!r}", name)
        shape = fields["shape"]
        if not isinstance(shape, list) or isinstance(shape, _Pairs):
            raise InvalidShapeError(path, f"tensor {name!r}: shape must be a list of integers, got {_plain(shape)!r}", name)
        if len(shape) > TENSOR_RANK:
            raise _over(path, TENSOR_RANK, f"the rank of tensor {name!r}", len(shape), name)
        for dim in shape:
            if not _is_uint(dim):
                raise InvalidShapeError(
                    path, f"tensor {name!r}: shape {_plain(shape)} has a dimension that is not an integer in 0..2**64-1", name
                )
        offsets = fields["data_offsets"]
        if not (isinstance(offsets, list) and not isinstance(offsets, _Pairs) and len(offsets) == 2
                and all(_is_uint(o) for o in offsets)):
            raise InvalidHeaderError(
                path, f"tensor {name!r}: data_offsets must be [begin, end] non-negative integers, got {_plain(offsets)!r}", name
            )
        begin, end = offsets
        if begin > end:
            raise OffsetsOutOfRangeError(path, f"tensor {name!r}: data_offsets [{begin}, {end}] end before they begin", name)
        if end > data_size:
            raise OffsetsOutOfRangeError(
                path, f"tensor {name!r}: data_offsets [{begin}, {end}] run past the {max(data_size, 0)} bytes of data", name
            )
        numel = 1
        for dim in shape:
            numel *= dim
        bits = numel * DTYPE_BITS[dtype]
        if bits % 8 or bits // 8 != end - begin:
            expected = f"{_number(bits // 8)} bytes" if bits % 8 == 0 else f"{_number(bits)} bits (not whole bytes)"
            shown = str(list(shape)) if len(str(list(shape))) <= 120 else str(list(shape))[:110] + "...]"
            raise SizeMismatchError(
                path,
                f"tensor {name!r}: {dtype}{shown} needs {expected} but data_offsets give {end - begin}",
                name,
            )
        infos.append(TensorInfo(name, dtype, tuple(shape), data_start + begin, data_start + end))

    infos.sort(key=lambda info: (info.start, info.end))
    position = data_start
    previous: TensorInfo | None = None
    for info in infos:
        if info.start < position:
            raise OverlappingDataError(
                path, f"tensor {info.name!r} overlaps tensor {previous.name if previous else ''!r} at byte {info.start - data_start} of the data",
                info.name,
            )
        if info.start > position:
            where = f"after tensor {previous.name!r}" if previous else "before the first tensor"
            raise GapInDataError(
                path, f"{info.start - position} unused bytes {where} (data bytes {position - data_start}..{info.start - data_start})",
                info.name,
            )
        position = info.end
        previous = info
    if position != file_size:
        raise TrailingDataError(path, f"{file_size - position} bytes after the last tensor belong to no tensor")

    return SafetensorsHeader(
        path=path,
        header_size=header_size,
        data_start=data_start,
        metadata=metadata,
        tensors={info.name: info for info in infos},
        file_size=file_size,
    )


def _number(value: int) -> str:
    """An integer for a message: in full up to 30 digits, else as a power of two."""
    return str(value) if value < 10**30 else f"about 2**{value.bit_length() - 1}"


def _json_type(value: Any) -> str:
    if isinstance(value, _Pairs):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _plain(value: Any) -> Any:
    if isinstance(value, _Pairs):
        return {k: _plain(v) for k, v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def read_header(path: str | os.PathLike[str], *, max_header_size: int = MAX_HEADER_SIZE) -> SafetensorsHeader:
    """Read and strictly validate a safetensors file's header; no tensor data is read.

    Raises:
        SafetensorsError: one subclass per problem (see the module docstring).
        InputError: the path does not exist or is not a regular file.
    """
    path = Path(path)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; check the path") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory; give a .safetensors file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror}); check the path and permissions") from None
    with handle:
        file_size = os.fstat(handle.fileno()).st_size
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise TruncatedFileError(path, f"file is {file_size} bytes, shorter than the 8-byte header length")
        (header_size,) = struct.unpack("<Q", prefix)
        if header_size > max_header_size:
            raise HeaderTooLargeError(path, f"header length {header_size} exceeds the {max_header_size}-byte limit")
        if 8 + header_size > file_size:
            raise TruncatedFileError(
                path, f"header length {header_size} runs past the end of the file ({file_size} bytes)"
            )
        raw = handle.read(header_size)
        if len(raw) != header_size:  # the file shrank under us
            raise TruncatedFileError(path, f"header length {header_size} but only {len(raw)} bytes could be read")
    return parse_header_bytes(path, raw, file_size)


# ------------------------------------------------------------------------------ sharded checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """The tensors of one model, in a single file or in shards listed by an index.

    ``tensors`` maps every name to its :class:`TensorInfo`; ``shard_of[name]`` is the header of the
    file that holds it (offsets in a TensorInfo are offsets in that file).
    """

    path: Path  # the .safetensors file or the index
    index_path: Path | None
    shards: tuple[SafetensorsHeader, ...]
    tensors: dict[str, TensorInfo]
    shard_of: dict[str, SafetensorsHeader] = field(repr=False)
    index_metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Tensor names in canonical (UTF-8 byte) order."""
        return sorted(self.tensors, key=_name_key)

    @property
    def files(self) -> list[Path]:
        """Every file of the checkpoint: the index (if any), then the shards."""
        return ([self.index_path] if self.index_path else []) + [shard.path for shard in self.shards]


def find_weights(directory: str | os.PathLike[str]) -> Path:
    """The weights of a model directory: its ``*.safetensors.index.json`` or single ``*.safetensors``.

    ``model.safetensors.index.json`` / ``model.safetensors`` win; otherwise exactly one index or one
    safetensors file must be present.

    Raises:
        InputError: no weights, or an ambiguous set of them.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory")
    preferred_index = directory / ("model" + INDEX_SUFFIX)
    preferred_file = directory / "model.safetensors"
    if preferred_index.is_file() and preferred_file.is_file():
        raise InputError(
            f"{directory} holds both model.safetensors and model{INDEX_SUFFIX}; remove the one that is stale"
        )
    if preferred_index.is_file():
        return preferred_index
    if preferred_file.is_file():
        return preferred_file
    indexes = sorted(p for p in directory.iterdir() if p.name.endswith(INDEX_SUFFIX) and p.is_file())
    if len(indexes) == 1:
        return indexes[0]
    if len(indexes) > 1:
        raise InputError(f"{directory} holds several indexes ({', '.join(p.name for p in indexes)}); point at one")
    files = sorted(p for p in directory.iterdir() if p.name.endswith(".safetensors") and p.is_file())
    if len(files) == 1:
        return files[0]
    if len(files) > 1:
        raise InputError(
            f"{directory} holds several .safetensors files and no index ({', '.join(p.name for p in files)}); point at one"
        )
    raise InputError(f"{directory} holds no .safetensors weights; give a model directory, a .safetensors file or an index")


def _single(header: SafetensorsHeader) -> Checkpoint:
    return Checkpoint(
        path=header.path,
        index_path=None,
        shards=(header,),
        tensors=dict(header.tensors),
        shard_of={name: header for name in header.tensors},
    )


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a ``.safetensors`` file, a sharded checkpoint's index, or a model directory's weights.

    Every shard is validated strictly; the index must list each tensor of each shard exactly once.

    Raises:
        SafetensorsError: a shard refused; ShardIndexError / TensorInTwoShardsError for the index.
        InputError: no such path, or no weights in a directory.
    """
    path = Path(path)
    if path.is_dir():
        path = find_weights(path)
    if not path.name.endswith(INDEX_SUFFIX):
        return _single(read_header(path))
    try:
        size = path.stat().st_size
        if size > MAX_HEADER_SIZE:
            raise ShardIndexError(path, f"index is {size} bytes, over the {MAX_HEADER_SIZE}-byte limit")
        raw = path.read_bytes()
        raw.decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; check the path") from None
    except UnicodeDecodeError:
        raise ShardIndexError(path, "index is not UTF-8") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror}); check the path and permissions") from None
    document = _loads_pairs(path, raw, "index", ShardIndexError)
    if not isinstance(document, _Pairs):
        raise ShardIndexError(path, "index must be a JSON object with a weight_map")
    top: dict[str, Any] = {}
    for key, value in document:
        if key in top:
            raise ShardIndexError(path, f"index has key {key!r} twice")
        top[key] = value
    weight_pairs = top.get("weight_map")
    if not isinstance(weight_pairs, _Pairs):
        raise ShardIndexError(path, "index has no weight_map object")
    weight_map: dict[str, str] = {}
    for name, shard_name in weight_pairs:
        if name in weight_map:
            raise ShardIndexError(path, f"weight_map lists tensor {name!r} twice", name)
        if not isinstance(shard_name, str):
            raise ShardIndexError(path, f"weight_map[{name!r}] must be a file name, got {_plain(shard_name)!r}", name)
        if (not shard_name or "/" in shard_name or "\\" in shard_name or shard_name in (".", "..")
                or not shard_name.endswith(".safetensors")):
            raise ShardIndexError(
                path, f"weight_map[{name!r}] = {shard_name!r} is not a .safetensors file name beside the index", name
            )
        weight_map[name] = shard_name
    index_metadata = _plain(top.get("metadata") or _Pairs())
    if not isinstance(index_metadata, dict):
        raise ShardIndexError(path, "index metadata must be an object")

    shards: list[SafetensorsHeader] = []
    tensors: dict[str, TensorInfo] = {}
    shard_of: dict[str, SafetensorsHeader] = {}
    for shard_name in sorted(set(weight_map.values())):
        shard_path = path.parent / shard_name
        if not shard_path.is_file():
            raise ShardIndexError(path, f"shard {shard_name} named by the index is missing")
        header = read_header(shard_path)
        shards.append(header)
        for name, info in header.tensors.items():
            if name in tensors:
                raise TensorInTwoShardsError(
                    path, f"tensor {name!r} is stored in both {shard_of[name].path.name} and {shard_name}", name
                )
            tensors[name] = info
            shard_of[name] = header
    for name, shard_name in weight_map.items():
        if name not in tensors:
            raise ShardIndexError(path, f"index puts tensor {name!r} in {shard_name}, which does not hold it", name)
        actual = shard_of[name].path.name
        if actual != shard_name:
            raise ShardIndexError(path, f"index puts tensor {name!r} in {shard_name} but it is in {actual}", name)
    for name in tensors:
        if name not in weight_map:
            raise ShardIndexError(
                path, f"shard {shard_of[name].path.name} holds tensor {name!r} that the index does not list", name
            )
    return Checkpoint(
        path=path, index_path=path, shards=tuple(shards), tensors=tensors, shard_of=shard_of,
        index_metadata=index_metadata,
    )


# ---------------------------------------------------------------------------------- data access


class TensorViews(Mapping[str, memoryview]):
    """Read-only memoryviews of a checkpoint's tensors, backed by mmap (no copies).

    Valid only inside the :func:`open_tensors` block; views handed out are released on exit.
    """

    def __init__(self, checkpoint: Checkpoint, maps: dict[Path, mmap.mmap | None]) -> None:
        self.checkpoint = checkpoint
        self._maps = maps
        self._views: list[memoryview] = []

    def __getitem__(self, name: str) -> memoryview:
        info = self.checkpoint.tensors[name]
        mapped = self._maps[self.checkpoint.shard_of[name].path]
        if mapped is None or info.size == 0:
            return memoryview(b"")
        whole = memoryview(mapped)
        view = whole[info.start:info.end]
        self._views.append(whole)
        self._views.append(view)
        return view

    def __iter__(self) -> Iterator[str]:
        return iter(self.checkpoint.names)

    def __len__(self) -> int:
        return len(self.checkpoint.tensors)

    def info(self, name: str) -> TensorInfo:
        return self.checkpoint.tensors[name]

    def mapped(self, name: str) -> tuple[mmap.mmap | None, TensorInfo]:
        """The mmap holding tensor ``name`` and its info (absolute offsets into that map)."""
        return self._maps[self.checkpoint.shard_of[name].path], self.checkpoint.tensors[name]

    def drop_pages(self, name: str, start: int = 0, end: int | None = None) -> None:
        """Drop tensor ``name``'s pages (bytes ``start`` to ``end`` of it, default all) from this
        process's resident set (the page cache keeps them; a later read faults them back in), so
        reading a checkpoint piece by piece costs about one piece of RSS, not the checkpoint.
        Advice only: never fails."""
        mapped, info = self.mapped(name)
        if mapped is None or info.size == 0 or not hasattr(mmap, "MADV_DONTNEED"):
            return
        first = info.start + start
        last = info.end if end is None else min(info.end, info.start + end)
        first -= first % mmap.PAGESIZE
        if last > first:
            with contextlib.suppress(OSError, ValueError):
                mapped.madvise(mmap.MADV_DONTNEED, first, last - first)

    def array(self, name: str) -> Any:
        """Tensor ``name`` as a read-only numpy array (zero copy); needs a numpy dtype for it."""
        import numpy as np

        info = self.checkpoint.tensors[name]
        return np.frombuffer(self[name], dtype=numpy_dtype(info.dtype)).reshape(info.shape)

    def _close(self) -> None:
        for view in reversed(self._views):
            with contextlib.suppress(BufferError):
                view.release()
        self._views.clear()
        for mapped in self._maps.values():
            if mapped is not None:
                with contextlib.suppress(BufferError):  # the caller still holds an array; GC closes it
                    mapped.close()


@contextlib.contextmanager
def open_tensors(path: str | os.PathLike[str] | Checkpoint) -> Iterator[TensorViews]:
    """Validate a file / index / model directory, map it, and yield its tensors as memoryviews.

    Example::

        with open_tensors("model.safetensors") as tensors:
            digest = blake3(tensors["embeddings.weight"]).digest()
    """
    checkpoint = path if isinstance(path, Checkpoint) else read_checkpoint(path)
    maps: dict[Path, mmap.mmap | None] = {}
    handles = []
    try:
        for shard in checkpoint.shards:
            handle = open(shard.path, "rb")
            handles.append(handle)
            size = os.fstat(handle.fileno()).st_size
            if size != shard.file_size:
                raise TruncatedFileError(shard.path, f"file changed size since its header was read ({shard.file_size} -> {size})")
            maps[shard.path] = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        views = TensorViews(checkpoint, maps)
        try:
            yield views
        finally:
            views._close()
    finally:
        for handle in handles:
            handle.close()


# --------------------------------------------------------------------------------------- writing

TensorData = Union[bytes, bytearray, memoryview, Any, Callable[[], Any]]
TensorSpec = tuple[str, str, tuple[int, ...], TensorData]


def numpy_dtype(dtype: str) -> Any:
    """The numpy dtype for a safetensors dtype (BF16 / F8 need the ``ml_dtypes`` package)."""
    import numpy as np

    name = _NUMPY_NAMES.get(dtype)
    if name is None:
        raise InputError(f"dtype {dtype} has no numpy equivalent")
    try:
        return np.dtype(name)
    except TypeError:
        try:
            import ml_dtypes  # noqa: F401  (registers bfloat16 / float8 with numpy)

            return np.dtype(getattr(ml_dtypes, name))
        except (ImportError, AttributeError):
            raise InputError(f"dtype {dtype} needs the ml_dtypes package for numpy access") from None


def dtype_of_numpy(array_dtype: Any) -> str:
    """The safetensors dtype name of a numpy dtype."""
    name = getattr(array_dtype, "name", str(array_dtype))
    try:
        return _DTYPE_OF_NUMPY[name]
    except KeyError:
        raise InputError(f"numpy dtype {name} has no safetensors equivalent") from None


def normalize_tensors(tensors: Any) -> list[TensorSpec]:
    """Tensors in any form ``write_safetensors`` accepts, as ``(name, dtype, shape, data)`` sorted
    by name (data not yet produced: callables stay callables).

    Raises:
        InputError: duplicate or reserved names, unknown dtypes, bad shapes.
    """
    items: Iterable[Any]
    if isinstance(tensors, Mapping):
        items = []
        for name, value in tensors.items():
            if isinstance(value, tuple):
                if len(value) != 3:
                    raise InputError(f"tensor {name!r}: give (dtype, shape, data) or a numpy array")
                items.append((name, *value))
            else:
                items.append((name, value))
    else:
        items = tensors
    specs: list[TensorSpec] = []
    seen: set[str] = set()
    for item in items:
        if len(item) == 2:
            name, array = item
            if not hasattr(array, "dtype") or not hasattr(array, "shape"):
                raise InputError(f"tensor {name!r}: give (name, dtype, shape, data) or (name, numpy array)")
            dtype, shape, data = dtype_of_numpy(array.dtype), tuple(array.shape), array
        elif len(item) == 4:
            name, dtype, shape, data = item
        else:
            raise InputError("each tensor must be (name, dtype, shape, data) or (name, numpy array)")
        if not isinstance(name, str) or name == "__metadata__":
            raise InputError(f"tensor name {name!r} is not allowed; use a non-reserved string")
        name.encode("utf-8")
        if name in seen:
            raise InputError(f"tensor {name!r} given twice; tensor names must be unique")
        seen.add(name)
        if dtype not in DTYPE_BITS:
            raise InputError(f"tensor {name!r}: unknown dtype {dtype!r}; known: {', '.join(DTYPE_BITS)}")
        shape = tuple(shape)
        if not all(_is_uint(dim) for dim in shape):
            raise InputError(f"tensor {name!r}: shape {list(shape)} must hold non-negative integers")
        specs.append((name, dtype, shape, data))
    specs.sort(key=lambda spec: _name_key(spec[0]))
    return specs


def tensor_bytes(name: str, data: Any) -> memoryview:
    """The raw little-endian bytes of tensor data (bytes, buffer, numpy array or a callable
    producing one) as a flat byte memoryview, copying only to fix byte order or contiguity."""
    if callable(data) and not hasattr(data, "shape"):
        data = data()
    return _as_bytes_view(name, data)


def _as_bytes_view(name: str, data: Any) -> memoryview:
    if hasattr(data, "dtype") and hasattr(data, "shape") and not isinstance(data, memoryview):
        import numpy as np

        array = np.ascontiguousarray(data)
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        return memoryview(array.reshape(-1).view(np.uint8))  # type: ignore[arg-type]  # an ndarray is a buffer
    try:
        view = memoryview(data)
    except TypeError:
        raise InputError(f"tensor {name!r}: data must be bytes, a buffer or a numpy array, got {type(data).__name__}") from None
    if not view.c_contiguous:
        raise InputError(f"tensor {name!r}: data buffer is not contiguous")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def build_header(specs: list[TensorSpec], metadata: Mapping[str, str] | None) -> tuple[bytes, list[int]]:
    """The canonical header bytes (space padded to 8 bytes) and each tensor's data size."""
    document: dict[str, Any] = {}
    if metadata:
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InputError(f"metadata must map strings to strings; {key!r}: {value!r} does not")
        document["__metadata__"] = {key: metadata[key] for key in sorted(metadata, key=_name_key)}
    sizes = []
    offset = 0
    for name, dtype, shape, _ in specs:
        try:
            size = tensor_nbytes(dtype, shape)
        except InputError as exc:
            raise InputError(f"tensor {name!r}: {exc}") from None
        document[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
        sizes.append(size)
    header = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    header += b" " * (-len(header) % 8)
    if len(header) > MAX_HEADER_SIZE:
        raise InputError(f"header of {len(header)} bytes exceeds the {MAX_HEADER_SIZE}-byte safetensors limit")
    return header, sizes


def write_safetensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, Any] | Iterable[Any],
    metadata: Mapping[str, str] | None = None,
) -> SafetensorsHeader:
    """Write a safetensors file in canonical layout, atomically, streaming one tensor at a time.

    Canonical layout: tensors sorted by name (UTF-8 bytes), data in that order with no gaps,
    compact JSON header padded with spaces to a multiple of 8 bytes, ``__metadata__`` first with
    sorted keys (omitted when empty). The same tensors and metadata always give the same bytes.

    Args:
        path: destination; written by :func:`registry.files.atomic_file` (a temporary, fsynced, renamed into place).
        tensors: a mapping ``name -> numpy array | (dtype, shape, data)`` or an iterable of
            ``(name, dtype, shape, data)`` / ``(name, array)``. ``data`` is bytes, a buffer, a numpy
            array, or a zero-argument callable returning one (called when its turn comes, so only
            one tensor needs to be in memory at a time).
        metadata: ``__metadata__`` strings.

    Returns:
        The validated header of the written file.

    Raises:
        InputError: bad names/dtypes/shapes/metadata, or data whose length does not match.
    """
    path = Path(path)
    specs = normalize_tensors(tensors)
    header, sizes = build_header(specs, metadata)
    with atomic_file(path) as out:
        out.write(struct.pack("<Q", len(header)))
        out.write(header)
        for (name, dtype, shape, data), size in zip(specs, sizes):
            view = tensor_bytes(name, data)
            if view.nbytes != size:
                raise InputError(
                    f"tensor {name!r}: {dtype}{list(shape)} needs {size} bytes but its data has {view.nbytes}"
                )
            out.write(view)
            del view, data
    return read_header(path)
