"""An element's bytes as a readable stream, straight from the checkpoint: what
:func:`registry.formats.split.split_model` would write for it, without writing it.

``publish-model``, ``publish`` of a planned element and ``publish-delta`` read these streams into
their blocks (:func:`registry.storage.unixfs.add_file`), so no split file is ever written and each
byte is hashed once, as it passes (docs/storage.md, "A model on disk once").
"""

from __future__ import annotations

import io
import os
import struct
from typing import Any

from ..digest import Bytes32
from .split import PlannedElement, SplitError, TensorGroup

__all__ = ["ElementStream"]


class ElementStream:
    """The bytes :func:`split_model` would write for an element, as a readable stream: a tensors
    element's canonical safetensors file straight from the checkpoint's memory map (each tensor
    hashed as it passes, its pages then dropped from the resident set), or a file element's bytes
    (hashed against its content id).

    A planned element's tensors are checked against the plan when each has passed. A
    :class:`TensorGroup` of a layout has no plan yet: each digest is put in ``digests`` (tensor
    name -> digest) for :meth:`SplitLayout.plan`. Either way what is hashed is the copy ``read``
    hands on, so the digests are of exactly the bytes that went into the blocks.

    Raises (from ``read``):
        SplitError: the model changed since it was planned.
    """

    def __init__(self, element: PlannedElement | TensorGroup, views: Any = None, *, digests: dict[str, Bytes32] | None = None) -> None:
        from ..digest import blake3_hasher
        from .content_id import FILE_DOMAIN
        from .safetensors_writer import build_header

        self.element = element
        self._views = views
        self._parts: list[tuple[str | None, Any]] = []
        self._file: io.BufferedReader | None = None
        self._expected: dict[str, Bytes32] | None = None
        self.digests: dict[str, Bytes32] = {} if digests is None else digests
        if element.kind == "tensors":
            if isinstance(element, PlannedElement):
                self._expected = {e.name: e.digest for e in element.manifest.entries}
            elif digests is None:
                raise SplitError(f"tensor group {element.name} has no plan to check against; pass digests to collect them")
            if views is None:
                raise SplitError(f"tensors element {element.name} needs the checkpoint's views to read from")
            infos = views.checkpoint.tensors
            specs: list[Any] = [(t, infos[t].dtype, infos[t].shape, None) for t in element.members]
            header, sizes = build_header(specs, None)
            self._parts.append((None, memoryview(struct.pack("<Q", len(header)) + header)))
            for t in element.members:
                self._parts.append((t, None))
            self.size = 8 + len(header) + sum(sizes)
        else:
            if not isinstance(element, PlannedElement) or element.source is None:
                raise SplitError(f"file element {element.path} has no source file to read")
            self._file_source, self._file_id = element.source, element.manifest.content_id
            self._file = open(element.source, "rb")
            self.size = os.fstat(self._file.fileno()).st_size
            self._file_hasher = blake3_hasher(self.size)
            self._file_hasher.update(FILE_DOMAIN)
        self._hasher_of = blake3_hasher
        self._current: tuple[str | None, memoryview, Any, int] | None = None
        self._done = 0

    def read(self, n: int = -1) -> bytes | bytearray:
        if self._file is not None:
            data: bytes = self._file.read(n)
            self._file_hasher.update(data)
            self._done += len(data)
            if not data or self._done == self.size:
                self._finish_file()
            return data
        left = self.size - self._done
        out = bytearray(left if n is None or n < 0 else min(n, left))
        filled = self.readinto(out)
        if filled < len(out):
            del out[filled:]
        return out

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` (any writable buffer) with the next bytes, as many as fit and remain; the
        number written. The importer reads into a few buffers it uses again and again, so the one
        copy out of the map lands in memory that is already paged in."""
        with memoryview(buffer).cast("B") as target:
            if self._file is not None:
                got = self._file.readinto(target) or 0
                with target[:got] as data:
                    self._file_hasher.update(data)
                self._done += got
                if not got or self._done == self.size:
                    self._finish_file()
                return got
            want = min(len(target), self.size - self._done)
            filled = 0
            while True:
                if self._current is None:
                    # Empty tensors after the last byte still pass (and are hashed) on the last read.
                    if not self._parts or (filled == want and self._done + filled < self.size):
                        break
                    name, view = self._parts.pop(0)
                    hasher = None
                    if name is not None:
                        view = self._views[name]
                        # One thread: the importer's pool is hashing SHA-256 on the other cores meanwhile.
                        hasher = self._hasher_of(len(view), threads=1)
                    self._current = (name, view, hasher, 0)
                name, view, hasher, passed = self._current
                if filled == want and len(view):
                    break
                take = min(len(view), want - filled)
                with target[filled:filled + take] as piece:
                    piece[:] = view[:take]
                    if hasher is not None:
                        hasher.update(piece)  # the bytes handed on, not the map a second time
                filled += take
                if name is not None:
                    self._views.drop_pages(name, passed, passed + take)  # passed on: out of the resident set
                rest = view[take:]
                if len(rest):
                    self._current = (name, rest, hasher, passed + take)
                else:
                    self._current = None
                    if name is not None and hasher is not None:
                        self._tensor_passed(name, Bytes32(hasher.digest()))
            self._done += filled
            return filled

    def _tensor_passed(self, name: str, digest: Bytes32) -> None:
        if self._expected is not None and digest != self._expected[name]:
            raise SplitError(f"{name!r} in the model changed while it was being published; publish again")
        self.digests[name] = digest
        self._views.drop_pages(name)

    def _finish_file(self) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        if self._done != self.size or bytes(self._file_hasher.digest()) != bytes(self._file_id):
            raise SplitError(f"{self._file_source} changed while it was being published; publish again")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
