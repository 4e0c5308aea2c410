"""Writing safetensors files canonically: the same tensors and metadata always give the same bytes.

Tensors sorted by name (UTF-8 bytes), their data in that order with no gaps, a compact JSON header
padded with spaces to a multiple of 8 bytes, ``__metadata__`` first with sorted keys. Tensors come
as numpy arrays, buffers or callables producing them, streamed one at a time into an atomic file
(:func:`registry.files.atomic_file`); the result is read back through the strict parser of
:mod:`registry.formats.safetensors`.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Union

from ..errors import InputError
from ..files import atomic_file
from .safetensors import (
    DTYPE_BITS,
    MAX_HEADER_SIZE,
    SafetensorsHeader,
    dtype_of_numpy,
    is_u64,
    read_header,
    tensor_name_key,
    tensor_nbytes,
)

__all__ = ["TensorData", "TensorSpec", "build_header", "normalize_tensors", "tensor_bytes", "write_safetensors"]

TensorData = Union[bytes, bytearray, memoryview, Any, Callable[[], Any]]
TensorSpec = tuple[str, str, tuple[int, ...], TensorData]


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
        if not all(is_u64(dim) for dim in shape):
            raise InputError(f"tensor {name!r}: shape {list(shape)} must hold non-negative integers")
        specs.append((name, dtype, shape, data))
    specs.sort(key=lambda spec: tensor_name_key(spec[0]))
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
        document["__metadata__"] = {key: metadata[key] for key in sorted(metadata, key=tensor_name_key)}
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
