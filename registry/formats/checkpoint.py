"""Checkpoints: a model's tensors in one ``.safetensors`` file or in shards listed by an index,
read strictly and mapped into memory.

:func:`read_checkpoint` takes a file, a ``*.safetensors.index.json`` or a model directory
(:func:`find_weights` picks its weights) and checks every shard with the strict parser of
:mod:`registry.formats.safetensors`, and the index against the shards (each tensor listed once,
in the shard that holds it). :func:`open_tensors` maps the files and yields the tensors as
zero-copy memoryviews (:class:`TensorViews`), released when the block ends.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .safetensors import (
    MAX_HEADER_SIZE,
    JsonPairs,
    SafetensorsHeader,
    ShardIndexError,
    TensorInfo,
    TensorInTwoShardsError,
    TruncatedFileError,
    loads_json_pairs,
    numpy_dtype,
    plain_json,
    read_header,
    tensor_name_key,
)

__all__ = ["INDEX_SUFFIX", "Checkpoint", "TensorViews", "find_weights", "open_tensors", "read_checkpoint"]

#: Suffix of a sharded checkpoint's index (``model.safetensors.index.json``).
INDEX_SUFFIX = ".safetensors.index.json"


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
        return sorted(self.tensors, key=tensor_name_key)

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
        with open(path, "rb") as handle:  # bounded while read: /dev/zero has no size
            raw = handle.read(MAX_HEADER_SIZE + 1)
        if len(raw) > MAX_HEADER_SIZE:
            raise ShardIndexError(path, f"index is over the {MAX_HEADER_SIZE}-byte limit")
        raw.decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; check the path") from None
    except UnicodeDecodeError:
        raise ShardIndexError(path, "index is not UTF-8") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror}); check the path and permissions") from None
    document = loads_json_pairs(path, raw, "index", ShardIndexError)
    if not isinstance(document, JsonPairs):
        raise ShardIndexError(path, "index must be a JSON object with a weight_map")
    top: dict[str, Any] = {}
    for key, value in document:
        if key in top:
            raise ShardIndexError(path, f"index has key {key!r} twice")
        top[key] = value
    weight_pairs = top.get("weight_map")
    if not isinstance(weight_pairs, JsonPairs):
        raise ShardIndexError(path, "index has no weight_map object")
    weight_map: dict[str, str] = {}
    for name, shard_name in weight_pairs:
        if name in weight_map:
            raise ShardIndexError(path, f"weight_map lists tensor {name!r} twice", name)
        if not isinstance(shard_name, str):
            raise ShardIndexError(path, f"weight_map[{name!r}] must be a file name, got {plain_json(shard_name)!r}", name)
        if (not shard_name or "/" in shard_name or "\\" in shard_name or shard_name in (".", "..")
                or not shard_name.endswith(".safetensors")):
            raise ShardIndexError(
                path, f"weight_map[{name!r}] = {shard_name!r} is not a .safetensors file name beside the index", name
            )
        weight_map[name] = shard_name
    index_metadata = plain_json(top.get("metadata") or JsonPairs())
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
