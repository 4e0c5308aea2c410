"""Verified element readers: an element opened for reading, every byte checked before it is used.

- :class:`TensorElement`: the data file's safetensors header is parsed strictly and must list
  exactly the manifest's tensors (names, dtypes, shapes); every tensor's bytes are hashed as they
  are read and must match the manifest's digest before the last block is handed out;
- :class:`FileElement`: a file element's bytes must hash to its content id.

So a tensor nobody reads is never read, and a byte that is used has always been checked. Where
the manifest and the data come from is :mod:`registry.compose.sources`' job; planning
(:mod:`registry.compose.plan`, :mod:`registry.compose.tensor_plans`), nested compositions (:mod:`registry.compose.nested`) and the
writer (:mod:`registry.compose.writer`) read through these classes only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from ..digest import Bytes32, blake3_hasher
from ..errors import IntegrityError
from ..formats.content_id import FILE_DOMAIN, Manifest, bytes_content_id
from ..formats.recipe import InputRef, RecipeLimitError
from ..formats.safetensors import SafetensorsHeader, read_header
from ..limits import MODEL_JSON_BYTES
from ..storage.splice import OutputCopy

if TYPE_CHECKING:  # numpy loads only where tensors are computed (a plain copy verifies without it)
    import numpy as np

__all__ = [
    "ElementIntegrityError",
    "FileElement",
    "TensorElement",
]


class ElementIntegrityError(IntegrityError):
    """An element's manifest or bytes do not match the content id the recipe pins."""


class TensorElement:
    """A tensors element opened for reading: header checked against the manifest, reads verified."""

    #: Whether this element's data was checked, tensor by tensor, against this manifest before and
    #: is read from where it was checked (a note of the block store, :mod:`registry.storage.checked`):
    #: then the writer copies its tensors without hashing them again. Never true for a local file.
    checked = False

    def __init__(self, ref: InputRef, manifest: Manifest, path: Path, header: SafetensorsHeader | None = None) -> None:
        self.ref = ref
        self.manifest = manifest
        self.path = path
        # A subclass that reads elsewhere than a local file (the block store) gives the header.
        self.header = header if header is not None else read_header(path)
        self.entries = {entry.name: entry for entry in manifest.entries}
        found = {name: (info.dtype, info.shape) for name, info in self.header.tensors.items()}
        wanted = {name: (entry.dtype, entry.shape) for name, entry in self.entries.items()}
        if found != wanted:
            extra = sorted(set(found) - set(wanted))
            missing = sorted(set(wanted) - set(found))
            changed = sorted(n for n in set(found) & set(wanted) if found[n] != wanted[n])
            detail = "; ".join(
                part for part in (
                    f"not in manifest: {', '.join(extra[:3])}" if extra else "",
                    f"missing: {', '.join(missing[:3])}" if missing else "",
                    f"dtype/shape differ: {', '.join(changed[:3])}" if changed else "",
                ) if part
            )
            raise ElementIntegrityError(f"input {ref.name!r}: {path} does not hold the tensors its manifest lists ({detail})")
        self._fd: int | None = os.open(path, os.O_RDONLY) if header is None else None

    @property
    def names(self) -> list[str]:
        return list(self.entries)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def stream(self, name: str, chunk_bytes: int) -> Iterator[memoryview]:
        """The tensor's raw bytes in chunks (one reused buffer), verified before the last chunk.

        Raises:
            ElementIntegrityError: the bytes do not hash to the manifest's digest (raised in
                place of the last chunk, so unverified data is never complete downstream).
        """
        info = self.header.tensors[name]
        entry = self.entries[name]
        hasher = blake3_hasher(info.size)
        if info.size == 0:
            self._check(name, hasher.digest(), entry.digest)
            return
        buffer = memoryview(bytearray(min(chunk_bytes, info.size)))
        position = info.start
        while position < info.end:
            count = min(len(buffer), info.end - position)
            view = buffer[:count]
            self._read_exact(view, position, name)
            hasher.update(view)
            position += count
            if position == info.end:
                self._check(name, hasher.digest(), entry.digest)
            yield view

    def blocks(self, name: str, block_elems: int) -> Iterator[np.ndarray]:
        """The tensor as flat raw-element arrays of ``block_elems`` (last shorter), verified."""
        import numpy as np
        from .ops import storage_dtype
        dtype = storage_dtype(self.entries[name].dtype)
        for chunk in self.stream(name, block_elems * dtype.itemsize):
            yield np.frombuffer(chunk, dtype=dtype)

    def read_all(self, name: str) -> np.ndarray:
        """The whole tensor as a raw-element array (a copy), verified."""
        import numpy as np
        from .ops import storage_dtype
        entry = self.entries[name]
        out = np.empty(entry.size, dtype=np.uint8)
        position = 0
        for chunk in self.stream(name, max(entry.size, 1)):
            out[position:position + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            position += len(chunk)
        return out.view(storage_dtype(entry.dtype)).reshape(entry.shape)

    def copy_unverified(self, name: str, dst_fd: int, dst_offset: int, on_bytes=None) -> None:
        """Copy the tensor's raw bytes into ``dst_fd`` at ``dst_offset`` in the kernel
        (:class:`registry.storage.splice.OutputCopy`: spliced in aligned windows, or
        ``copy_file_range``, or a pread/pwrite loop where the kernel cannot).

        The bytes are NOT verified here: the caller must hash what it wrote and compare with
        ``self.entries[name].digest`` before using the output (the engine does, for every copy).
        """
        info = self.header.tensors[name]
        self._copy(name, info.start, info.size, dst_fd, dst_offset, on_bytes)

    def copy_part(self, name: str, start: int, count: int, dst_fd: int, dst_offset: int) -> None:
        """Copy ``count`` bytes of the tensor from its byte ``start`` into ``dst_fd`` at
        ``dst_offset``, in the kernel and unverified (as :meth:`copy_unverified`); safe to call
        from several threads at once. The writer uses it only for a :attr:`checked` element."""
        info = self.header.tensors[name]
        if start < 0 or count < 0 or start + count > info.size:  # pragma: no cover - the writer's parts lie within
            raise ValueError(f"bytes [{start}, {start + count}) are not within tensor {name!r} ({info.size} bytes)")
        self._copy(name, info.start + start, count, dst_fd, dst_offset)

    def _copy(self, name: str, position: int, count: int, dst_fd: int, dst_offset: int, on_bytes=None) -> None:
        with OutputCopy(dst_fd, dst_offset, on_bytes) as out:
            if out.copy(self._open_fd(), position, count) != count:
                raise ElementIntegrityError(f"input {self.ref.name!r}: {self.path} ended while copying tensor {name!r}; the file changed")

    def check_digest(self, name: str, actual: bytes) -> None:
        """Raise ElementIntegrityError unless ``actual`` is the manifest's digest of ``name``."""
        self._check(name, actual, self.entries[name].digest)

    def _read_exact(self, view: memoryview, offset: int, name: str) -> None:
        done = 0
        while done < len(view):
            got = os.preadv(self._open_fd(), [view[done:]], offset + done)
            if got == 0:
                raise ElementIntegrityError(f"input {self.ref.name!r}: {self.path} ended while reading tensor {name!r}; the file changed")
            done += got

    def _open_fd(self) -> int:
        """The local file's descriptor (a subclass given a header reads elsewhere and overrides
        every method that would need one)."""
        if self._fd is None:
            raise ValueError(f"input {self.ref.name!r}: {self.path} is closed (or read from elsewhere); open the element again")
        return self._fd

    def _check(self, name: str, actual: bytes, expected: Bytes32) -> None:
        if bytes(actual) != bytes(expected):
            raise ElementIntegrityError(
                f"input {self.ref.name!r}: tensor {name!r} in {self.path} does not match its digest in the manifest "
                f"(0x{bytes(actual).hex()} != {expected}); the element file is corrupt, fetch or split it again"
            )


class FileElement:
    """A file element: bytes checked against the content id before they are used."""

    def __init__(self, ref: InputRef, manifest: Manifest, path: Path) -> None:
        self.ref = ref
        self.manifest = manifest
        self.path = path

    def close(self) -> None:
        pass

    def read_bytes(self) -> bytes:
        """The whole file, verified. Only a JSON file a recipe patches or reads is read whole, so
        a file over MODEL_JSON_BYTES is refused before it is read (RecipeLimitError)."""
        size = self.path.stat().st_size
        MODEL_JSON_BYTES.check(size, f"input {self.ref.name!r} (read whole to be patched or parsed)", RecipeLimitError)
        data = self.path.read_bytes()
        self._check(bytes_content_id(data))
        return data

    def stream(self, chunk_bytes: int = 8 << 20) -> Iterator[memoryview]:
        """The file's bytes in chunks (one reused buffer), verified before the last chunk."""
        with open(self.path, "rb", buffering=0) as handle:
            yield from self._verified_chunks(self.path.stat().st_size, lambda view, _offset: handle.readinto(view), chunk_bytes)

    def _verified_chunks(self, size: int, read: Callable[[memoryview, int], int | None],
                         chunk_bytes: int) -> Iterator[memoryview]:
        """``size`` bytes in chunks from ``read(view, offset)`` (the count it filled), hashed as they
        go and checked against the content id before the last chunk is given out."""
        hasher = blake3_hasher(size)
        hasher.update(FILE_DOMAIN)
        buffer = memoryview(bytearray(max(1, min(chunk_bytes, size))))
        if size == 0:
            self._check(hasher.digest())
        done = 0
        while done < size:
            count = read(buffer[: min(len(buffer), size - done)], done)
            if not count:
                raise ElementIntegrityError(f"input {self.ref.name!r}: {self.path} shrank while being read; the file changed")
            view = buffer[:count]
            hasher.update(view)
            done += count
            if done == size:
                self._check(hasher.digest())
            yield view

    def _check(self, actual: bytes) -> None:
        if bytes(actual) != bytes(self.manifest.content_id):
            raise ElementIntegrityError(
                f"input {self.ref.name!r}: {self.path} has content id 0x{bytes(actual).hex()}, the recipe pins "
                f"{self.ref.content_id}; the file was changed, fetch or split it again"
            )
