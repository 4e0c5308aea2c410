"""Elements read in place from the block store (issue 17): :class:`BlockTensorElement` and
:class:`BlockFileElement` read a recipe input's data through its DAG
(:class:`registry.storage.dagfile.DagFile`), so no second copy of an element is written anywhere.

The safetensors header and every tensor a derived step reads come through verified block reads; a
copied tensor is moved by the kernel from the leaf files into the output (:mod:`registry.storage.splice`) and
hashed from the output as it is written, against its manifest digest, unless the element was
checked before (:mod:`registry.storage.checked`: its tensors and header are read unhashed). A file
element is hashed against its content id before use. :mod:`registry.compose.chain_source` makes
these elements for the inputs it finds on chain.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Iterator

from ..formats.content_id import Manifest, bytes_content_id
from ..formats.recipe import InputRef, RecipeLimitError
from ..formats.safetensors import MAX_HEADER_SIZE, HeaderTooLargeError, SafetensorsError, TruncatedFileError, parse_header_bytes
from ..limits import MODEL_JSON_BYTES
from ..storage.dagfile import DagFile
from .readers import FileElement, TensorElement
from .sources import ElementIntegrityError

__all__ = ["BlockFileElement", "BlockTensorElement"]


def _dag_header(data: DagFile, where: str, *, trusted: bool = False):
    """The safetensors header at the start of ``data``, parsed strictly (as ``read_header`` does a
    file's); ``trusted``: read without hashing its leaf (data checked before, see
    :meth:`DagFile.pread_trusted`)."""
    pread = data.pread_trusted if trusted else data.pread
    prefix = bytearray(8)
    if pread(prefix, 0) < 8:
        raise TruncatedFileError(where, f"file is {data.size} bytes, shorter than the 8-byte header length")
    (header_size,) = struct.unpack("<Q", prefix)
    if header_size > MAX_HEADER_SIZE:
        raise HeaderTooLargeError(where, f"header length {header_size} exceeds the {MAX_HEADER_SIZE}-byte limit")
    if 8 + header_size > data.size:
        raise TruncatedFileError(where, f"header length {header_size} runs past the end of the file ({data.size} bytes)")
    raw = bytearray(header_size)
    pread(raw, 8)
    return parse_header_bytes(where, bytes(raw), data.size)


class BlockTensorElement(TensorElement):
    """A tensors element read in place from its blocks: header and every read verified block by
    block; copies made by the kernel from the leaf files and checked by the engine's digest check."""

    def __init__(self, ref: InputRef, manifest: Manifest, data: DagFile, *, checked: bool = False) -> None:
        self.data = data
        self.checked = checked
        #: the tensors whose bytes matched their manifest digest in this run (all of them: the pair is noted)
        self.matched: set[str] = set()
        where = f"data {data.root}"
        # ``where`` names the DAG in messages where TensorElement has a local path; the header given
        # means no file is opened, and every method that would read one is overridden below.
        if checked:
            # Checked data is copied without hashing, so its header is read the same way (a few
            # bytes instead of a MiB hashed). Should it not parse or not list the manifest's
            # tensors, it is read again through verified reads: a rotted leaf is then caught,
            # removed and fetched again (the assembly's retry), as it would have been.
            try:
                super().__init__(ref, manifest, where, header=_dag_header(data, where, trusted=True))  # type: ignore[arg-type]
                return
            except (SafetensorsError, ElementIntegrityError):
                pass
        super().__init__(ref, manifest, where, header=_dag_header(data, where))  # type: ignore[arg-type]

    def data_paths(self) -> Iterator[Path]:
        yield Path(self.data.store.root)  # what the output must not be, nor contain

    def close(self) -> None:
        self.data.close()

    def _read_exact(self, view: memoryview, offset: int, name: str) -> None:
        if self.data.pread(view, offset) != len(view):
            raise ElementIntegrityError(f"input {self.ref.name!r}: {self.path} ended while reading tensor {name!r}")

    def copy_unverified(self, name: str, dst_fd: int, dst_offset: int, on_bytes=None) -> None:
        info = self.header.tensors[name]
        self.data.copy_to(dst_fd, dst_offset, info.start, info.end - info.start, on_bytes)

    def copy_part(self, name: str, start: int, count: int, dst_fd: int, dst_offset: int) -> None:
        self.data.copy_to(dst_fd, dst_offset, self.header.tensors[name].start + start, count)

    def _check(self, name: str, actual: bytes, expected) -> None:
        super()._check(name, actual, expected)
        self.matched.add(name)


class BlockFileElement(FileElement):
    """A file element read in place from its blocks, checked against its content id before use."""

    def __init__(self, ref: InputRef, manifest: Manifest, data: DagFile) -> None:
        # The label stands where FileElement has a local path; every method that would read it is overridden.
        super().__init__(ref, manifest, f"data {data.root}")  # type: ignore[arg-type]
        self.data = data

    def data_paths(self) -> Iterator[Path]:
        yield Path(self.data.store.root)

    def close(self) -> None:
        self.data.close()

    def read_bytes(self) -> bytes:
        MODEL_JSON_BYTES.check(self.data.size, f"input {self.ref.name!r} (read whole to be patched or parsed)", RecipeLimitError)
        raw = bytearray(self.data.size)
        self.data.pread(raw, 0)
        data = bytes(raw)
        self._check(bytes_content_id(data))
        return data

    def stream(self, chunk_bytes: int = 8 << 20) -> Iterator[memoryview]:
        return self._verified_chunks(self.data.size, self.data.pread, chunk_bytes)
