"""Recipe inputs seen through their manifests: planning and copies need only the manifest; the data
is fetched (and verified) only when a derived tensor is recomputed or a file is read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..compose.tensor_plans import CopyPlan, TensorPlan, block_elems
from ..compose.readers import ElementIntegrityError, FileElement, TensorElement
from ..digest import blake3_hasher, to_hex
from ..errors import UnsafeFileError
from ..formats.content_id import Manifest
from ..formats.recipe import InputRef
from ..records.documents import Documents
from .results import Source

if TYPE_CHECKING:  # numpy loads only where tensors are computed
    import numpy as np

__all__ = ["ManifestFileElement", "ManifestTensorElement", "fetcher", "leaf_copies", "recompute_verified"]


def fetcher(documents: Documents, manifest: Manifest, what: str) -> Callable[[], Path]:
    return lambda: documents.data_file(manifest, what)


class ManifestTensorElement(TensorElement):
    """A recipe input known by its manifest; its data file is fetched on the first read."""

    def __init__(self, ref: InputRef, manifest: Manifest, fetch: Callable[[], Path], origin: "Source | None" = None) -> None:
        self.ref = ref
        self.manifest = manifest
        self.entries = {entry.name: entry for entry in manifest.entries}
        # No local file until the first read (TensorElement's path is a local file's): the reads
        # go to the fetched copy, and writer.data_paths skips a None path.
        self.path = None  # type: ignore[assignment]
        self._fd = None
        self._fetch = fetch
        self._local: Path | None = None
        self._opened: TensorElement | None = None
        self.origin = origin

    def _element(self) -> TensorElement:
        if self._opened is None:
            self._local = self._fetch()
            self._opened = TensorElement(self.ref, self.manifest, self._local)
        return self._opened

    def refetch(self) -> None:
        """Drop the local copy (a cached file that failed verification) so the next read fetches again."""
        if self._opened is not None:
            self._opened.close()
            self._opened = None
        local = self._local
        if local is not None:
            local.unlink(missing_ok=True)
            self._local = None

    def stream(self, name: str, chunk_bytes: int) -> Iterator[memoryview]:
        return self._element().stream(name, chunk_bytes)

    def blocks(self, name: str, block_elems: int) -> Iterator[np.ndarray]:
        return self._element().blocks(name, block_elems)

    def read_all(self, name: str) -> np.ndarray:
        return self._element().read_all(name)

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()


class ManifestFileElement(FileElement):
    def __init__(self, ref: InputRef, manifest: Manifest, fetch: Callable[[], Path], origin: "Source | None" = None) -> None:
        self.ref = ref
        self.manifest = manifest
        self._fetch = fetch
        self._path: Path | None = None
        self.origin = origin

    @property
    def path(self) -> Path:
        if self._path is None:
            self._path = self._fetch()
        return self._path

    @path.setter
    def path(self, value: Path) -> None:
        self._path = value

    def read_bytes(self) -> bytes:
        try:
            return super().read_bytes()
        except ElementIntegrityError:  # a cached copy changed on disk: export it again, once
            if self._path is not None:
                self._path.unlink(missing_ok=True)
                self._path = None
            return super().read_bytes()


def leaf_copies(plan: Any) -> list[CopyPlan]:
    """The element tensors a plan reads (through nested compositions too)."""
    if isinstance(plan, CopyPlan):
        return [plan]
    children = [getattr(plan, name) for name in ("child", "base", "lora_a", "lora_b") if hasattr(plan, name)]
    children += list(getattr(plan, "children", []))
    return [leaf for child in children for leaf in leaf_copies(child)]


def recompute_verified(plan: TensorPlan) -> str:
    """Recompute a derived tensor; a cached input file that fails verification is fetched again once."""
    try:
        return _recompute_digest(plan)
    except (ElementIntegrityError, UnsafeFileError):
        elements = [c.element for c in leaf_copies(plan) if isinstance(c.element, ManifestTensorElement)]
        if not elements:
            raise
        for element in elements:
            element.refetch()
        return _recompute_digest(plan)


def _recompute_digest(plan: TensorPlan) -> str:
    import numpy as np
    hasher = blake3_hasher(plan.nbytes)
    for block in plan.blocks(block_elems(plan)):
        hasher.update(np.ascontiguousarray(block).data.cast("B"))
    return to_hex(hasher.digest())
