"""Where assembly gets its elements: the :class:`ElementSource` interface.

A source only has to say where an element's manifest and data are (``manifest(ref)`` and
``data_path(ref)``); everything that makes them trustworthy happens in :meth:`ElementSource.open`
and the verified readers of :mod:`registry.compose.readers`, the same for every source (a split
output directory, the block store and the chain):

- the manifest's content id is re-derived from its tensor table and must equal the id the recipe
  pins (``ref.content_id``);
- the data file's safetensors header is parsed strictly and must list exactly the manifest's
  tensors (names, dtypes, shapes);
- every tensor's bytes are hashed as they are read and must match the manifest's digest before
  the last block is handed out; a file element's bytes must hash to its content id.

So a tensor nobody reads is never read, and a byte that is used has always been checked.

An input of kind ``composition`` is opened by :mod:`registry.compose.nested`: a source that can
provide compositions implements :meth:`ElementSource.recipe` (the composition's recipe) and may
override :meth:`ElementSource.composition_cache` (where compositions with derived tensors are
built once, by :func:`registry.compose.writer.assemble_elements`, when used as inputs).
"""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

from ..digest import parse_content_id
from ..errors import IntegrityError, NotFoundError
from ..formats.content_id import Manifest, ManifestError, file_content_id, manifest_of
from ..formats.recipe import InputRef, Recipe, RecipeError, load_recipe
from ..limits import DOCUMENT_BYTES, LimitExceededError, read_bounded
from .nested import open_composition
from .readers import ElementIntegrityError, FileElement, TensorElement
from .writer import assemble_elements

__all__ = [
    "ElementSource",
    "LocalElementSource",
    "TensorElement",
    "FileElement",
    "ElementNotFoundError",
    "ElementIntegrityError",
    "MANIFEST_SUFFIX",
]

#: A local element ``X`` has its manifest beside it as ``X.manifest.json``.
MANIFEST_SUFFIX = ".manifest.json"


class ElementNotFoundError(NotFoundError):
    """A recipe input that the element source does not have."""


class ElementSource(ABC):
    """Gives assembly the manifest and a local data file of each input; the caller verifies."""

    @abstractmethod
    def manifest(self, ref: InputRef) -> Manifest:
        """The element's manifest (its content id is checked against ``ref`` by the caller).

        Raises:
            ElementNotFoundError: the source does not have this element.
        """

    @abstractmethod
    def data_path(self, ref: InputRef) -> Path:
        """A local file holding the element's bytes (a .safetensors file or the plain file).

        Raises:
            ElementNotFoundError: the source does not have this element.
        """

    def recipe(self, ref: InputRef) -> Recipe:
        """The recipe of a composition input (``ref.kind == "composition"``); the caller checks it
        builds ``ref.content_id``.

        Raises:
            ElementNotFoundError: the source does not have this composition.
        """
        raise ElementNotFoundError(
            f"input {ref.name!r} is a composition, and {type(self).__name__} cannot provide compositions; "
            "give it a local recipe path, or assemble from the chain (elements assemble)"
        )

    def composition_cache(self) -> Path:
        """Where a composition input with derived tensors is built (once) before it is used.

        Default: a temporary directory that lives as long as this source.
        """
        temporary = getattr(self, "_composition_tmp", None)
        if temporary is None:
            temporary = self._composition_tmp = tempfile.TemporaryDirectory(prefix="elements-compositions-")
        return Path(temporary.name)

    def open(self, ref: InputRef) -> TensorElement | FileElement:
        """Open an input, verified against the content id the recipe pins for it (a composition
        input is opened recursively, see :mod:`registry.compose.nested`, and built with the
        writer when it has derived tensors)."""
        if ref.kind == "composition":
            return open_composition(self, ref, build=assemble_elements)
        manifest = self.manifest(ref)
        if manifest.content_id != parse_content_id(ref.content_id):
            raise ElementIntegrityError(
                f"input {ref.name!r}: the source's manifest has content id {manifest.content_id}, "
                f"the recipe pins {ref.content_id}; the element was changed or the recipe names the wrong one"
            )
        if manifest.kind != ref.kind:
            raise RecipeError(f"input {ref.name!r} is a {manifest.kind} element but the recipe uses it as {ref.kind}")
        path = self.data_path(ref)
        if manifest.kind == "tensors":
            return TensorElement(ref, manifest, path)
        return FileElement(ref, manifest, path)


class LocalElementSource(ElementSource):
    """Elements in a local directory, such as the output of ``elements split``.

    An input with a ``path`` is ``root/path`` (its manifest ``root/path.manifest.json``, computed
    from the file when absent); an input with only a record id is found by content id among the
    directory's manifests. A composition input's ``path`` is a recipe file (JSON or YAML) under
    ``root`` whose own inputs are found the same way.

    Args:
        cache_dir: where composition inputs with derived tensors are built (default: a
            temporary directory that lives as long as this source).
    """

    def __init__(self, root: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise NotFoundError(f"elements directory {self.root} does not exist; give the --out directory of `elements split`")
        self._by_content_id: dict[str, Path] | None = None
        self._manifests: dict[Path, Manifest] = {}
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None

    def composition_cache(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else super().composition_cache()

    def recipe(self, ref: InputRef) -> Recipe:
        if not ref.path:
            raise ElementNotFoundError(
                f"composition input {ref.name!r} has no path; give the local recipe file (path: …) or assemble from the chain"
            )
        path = self._inside(ref.path)
        if not path.is_file():
            raise ElementNotFoundError(f"composition input {ref.name!r}: recipe {path} does not exist; fix the recipe's path")
        return load_recipe(path)

    def _inside(self, relative: str) -> Path:
        path = self.root / relative
        root = self.root.resolve()
        resolved = path.resolve()
        if resolved != root and root not in resolved.parents:
            raise RecipeError(f"input path {relative!r} escapes the elements directory {self.root}")
        return path

    def _index(self) -> dict[str, Path]:
        if self._by_content_id is None:
            found: dict[str, Path] = {}
            for manifest_path in sorted(self.root.rglob("*" + MANIFEST_SUFFIX)):
                data = manifest_path.with_name(manifest_path.name[: -len(MANIFEST_SUFFIX)])
                if not data.is_file():
                    continue
                try:
                    manifest = Manifest.from_json(_read_manifest(manifest_path))
                except (ManifestError, IntegrityError, OSError):
                    continue  # not ours to judge here; a recipe naming it fails on its own
                found.setdefault(str(manifest.content_id), data)
                self._manifests[data] = manifest
            self._by_content_id = found
        return self._by_content_id

    def data_path(self, ref: InputRef) -> Path:
        if ref.path:
            path = self._inside(ref.path)
            if not path.is_file():
                raise ElementNotFoundError(f"input {ref.name!r}: {path} does not exist; re-run `elements split` or fix the recipe's path")
            return path
        found = self._index().get(ref.content_id)
        if found is None:
            raise ElementNotFoundError(
                f"input {ref.name!r} (content id {ref.content_id}) is not in {self.root}; "
                "give the directory that holds it, or fetch it from the chain with `elements assemble`"
            )
        return found

    def manifest(self, ref: InputRef) -> Manifest:
        path = self.data_path(ref)
        if path in self._manifests:
            return self._manifests[path]
        manifest_path = path.with_name(path.name + MANIFEST_SUFFIX)
        if manifest_path.is_file():
            try:
                manifest = Manifest.from_json(_read_manifest(manifest_path))
            except IntegrityError as exc:
                raise ElementIntegrityError(f"input {ref.name!r}: {manifest_path}: {exc}") from None
        elif ref.kind == "file":
            manifest = Manifest("file", file_content_id(path))
        else:
            manifest = manifest_of(path)
        self._manifests[path] = manifest
        return manifest


def _read_manifest(path: Path) -> bytes:
    """A manifest file's bytes, read no further than a manifest may be (a sparse file of
    gigabytes would otherwise be held whole before its size is checked)."""
    try:
        return read_bounded(path, DOCUMENT_BYTES, f"the manifest {path}")
    except LimitExceededError as exc:
        raise ManifestError(str(exc)) from None
