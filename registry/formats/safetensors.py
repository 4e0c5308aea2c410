"""Strict safetensors: parse and validate a file's header before any tensor data is read.

This module is the format itself: the dtypes (and their numpy names), the header model
(:class:`SafetensorsHeader`, :class:`TensorInfo`), the strict parser and the exceptions it raises.
Reading whole checkpoints (single files, sharded indexes, mmap'd tensors) is
:mod:`registry.formats.checkpoint`; writing canonical files is :mod:`registry.formats.safetensors_writer`.

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

import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, UnsafeFileError
from ..limits import NAME_BYTES, SAFETENSORS_HEADER_BYTES, TENSOR_RANK, TENSORS, LimitExceededError, NotJSONError, loads_json

__all__ = [
    "DTYPE_BITS",
    "DTYPE_SIZES",
    "MAX_HEADER_SIZE",
    "SafetensorsHeader",
    "TensorInfo",
    "JsonPairs",
    "read_header",
    "parse_header_bytes",
    "loads_json_pairs",
    "plain_json",
    "tensor_name_key",
    "tensor_nbytes",
    "is_u64",
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


class HeaderLimitError(InvalidHeaderError, LimitExceededError):
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
        return sorted(self.tensors, key=tensor_name_key)

    @property
    def data_size(self) -> int:
        return self.file_size - self.data_start


def tensor_name_key(name: str) -> bytes:
    """The sort key of the canonical tensor order: the name's UTF-8 bytes."""
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


class JsonPairs(list[tuple[str, Any]]):
    """A JSON object kept as its (key, value) pairs, so duplicate keys can be refused."""


def _keep_pairs(pairs: list[tuple[str, Any]]) -> JsonPairs:
    return JsonPairs(pairs)


def loads_json_pairs(path: Path, raw: bytes, what: str, error: type[SafetensorsError]) -> Any:
    """The header or index JSON, within the limits of registry.limits (nesting before parsing)."""
    try:
        return loads_json(raw, what=what, max_bytes=SAFETENSORS_HEADER_BYTES, object_pairs_hook=_keep_pairs)
    except LimitExceededError as exc:
        raise _over(path, exc.limit, exc.what, exc.value) from None
    except NotJSONError as exc:
        raise error(path, f"{what} is not valid JSON ({exc})") from None


def _check_utf8(path: Path, value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidHeaderError(path, f"{what} {value!r} is not valid UTF-8 (a lone surrogate escape)") from None


def _entry_fields(path: Path, name: str, pairs: Any) -> dict[str, Any]:
    if not isinstance(pairs, JsonPairs):
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


def is_u64(value: Any) -> bool:
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
    document = loads_json_pairs(path, raw, "header", InvalidHeaderError)
    if not isinstance(document, JsonPairs):
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
            if not isinstance(value, JsonPairs):
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
        if not isinstance(shape, list) or isinstance(shape, JsonPairs):
            raise InvalidShapeError(path, f"tensor {name!r}: shape must be a list of integers, got {plain_json(shape)!r}", name)
        if len(shape) > TENSOR_RANK:
            raise _over(path, TENSOR_RANK, f"the rank of tensor {name!r}", len(shape), name)
        for dim in shape:
            if not is_u64(dim):
                raise InvalidShapeError(
                    path, f"tensor {name!r}: shape {plain_json(shape)} has a dimension that is not an integer in 0..2**64-1", name
                )
        offsets = fields["data_offsets"]
        if not (isinstance(offsets, list) and not isinstance(offsets, JsonPairs) and len(offsets) == 2
                and all(is_u64(o) for o in offsets)):
            raise InvalidHeaderError(
                path, f"tensor {name!r}: data_offsets must be [begin, end] non-negative integers, got {plain_json(offsets)!r}", name
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
    if isinstance(value, JsonPairs):
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


def plain_json(value: Any) -> Any:
    """A value parsed with :func:`loads_json_pairs` as plain JSON (objects as dicts)."""
    if isinstance(value, JsonPairs):
        return {k: plain_json(v) for k, v in value}
    if isinstance(value, list):
        return [plain_json(v) for v in value]
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


# ----------------------------------------------------------------------------------- numpy


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
