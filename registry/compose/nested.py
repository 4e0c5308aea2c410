"""Compositions as recipe inputs: build on a composition as on an element.

A recipe input ``{kind: composition, content_id: 0x…, record: 0x…}`` (or ``path:`` to a local
recipe file) stands for what that composition assembles to: its **tensors** are its recipe's
output tensor table (``output.tensors``), its **files** are its output files, named by path in
``files:`` (``{path: config.json, from: bob, file: config.json}``). ``content_id`` pins the
weights' content id, exactly as for an element.

Opening one (:func:`open_composition`), depth first, at most :data:`MAX_NESTING_DEPTH` levels
below the recipe being assembled::

    recipe  <- source.recipe(ref)           a checked chain document, or a local recipe file
    table   must hash to ref.content_id     (when the recipe has one; published ones always do)
    cached build under source.composition_cache()/<content id>/ that hashes to ref.content_id?
        -> read from it (hashed back before use; rebuilt when it does not match)
    else its inputs are opened (recursively), its steps planned over their manifests, and its
    table checked against every copy:
        every tensor a copy  -> the content id predicted from the element manifests must be
                                ref.content_id; the input reads straight from those elements
                                (no intermediate file: a take/stack of it is a kernel copy of
                                the original element's bytes, checked against its digest)
        derived tensors      -> the builder it was given (the writer's assemble_elements)
                                builds it into the cache, checked against ref.content_id, once;
                                later uses (and later runs) read the build

So a composition that does not build the content id it claims is refused (with
:class:`CompositionIntegrityError`) before a byte of the outer model is written, or, for a
derived tensor, before that tensor completes. Memory stays bounded as in the engine: nested
plans stream block by block, a build is an ordinary assembly.

With ``materialize=False`` (planning only: ``inspect_recipe``; verification) nothing is built:
a derived tensor of a composition input is planned as a :class:`CheckedPlan` that recomputes it
from the composition's own plan and checks the table's digest as it streams
(:func:`planned_composition`, which verification uses over the inputs it opens itself).

This module imports neither the engine nor the sources: it is given the source (anything with
``open``, ``recipe`` and ``composition_cache``: :class:`CompositionSource`) and the builder
(:class:`Build`), so what imports it (sources, engine, verification) is never imported back.

Files of a composition input are produced by its own file steps (a plain copy of a file element
is read straight from it; a patched one is patched in memory) and checked against its recipe's
``output.files``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Protocol

from ..digest import parse_content_id
from ..errors import ElementsError
from ..formats.content_id import Manifest, bytes_content_id, manifest_of
from ..formats.recipe import InputRef, Recipe, RecipeError
from ..limits import COMPOSITION_NESTING
from .outputs import OutputMismatchError, check_output_table, patched_json
from .plan import plan_tensors
from .tensor_plans import CheckedPlan, CompositionIntegrityError, CopyPlan, Plan, TensorPlan, read_whole
from .readers import ElementIntegrityError, FileElement, TensorElement

if TYPE_CHECKING:  # numpy loads only where tensors are computed (a plain copy verifies without it)
    import numpy as np

__all__ = [
    "MAX_NESTING_DEPTH",
    "Build",
    "CompositionElement",
    "CompositionIntegrityError",
    "CompositionSource",
    "NestingError",
    "composition_manifest",
    "open_composition",
    "open_input",
    "plan_composition",
    "planned_composition",
    "cached_build",
    "has_cached_build",
]

#: How many levels of compositions a recipe may nest below itself (the recipe's own composition
#: inputs are level 1). The chain's graph is a DAG by construction; this bounds the work
#: (registry.limits.COMPOSITION_NESTING).
MAX_NESTING_DEPTH = COMPOSITION_NESTING

# A build bigger than any shard limit stays one file, so it opens as one element.
_ONE_SHARD = 1 << 62


class NestingError(RecipeError):
    """Compositions nested deeper than MAX_NESTING_DEPTH, or a local recipe that includes itself."""


class CompositionSource(Protocol):
    """What opening a composition needs of a source (:class:`registry.compose.sources.ElementSource`
    is one): its elements verified, its compositions' recipes, a place for builds."""

    def open(self, ref: InputRef) -> Any: ...

    def recipe(self, ref: InputRef) -> Recipe: ...

    def composition_cache(self) -> Path: ...


class Build(Protocol):
    """Builds a recipe over inputs already opened into ``out_dir``, checked against the recipe's
    output (:func:`registry.compose.writer.assemble_elements`); raises ``OutputMismatchError`` when the
    output is not what the recipe says."""

    def __call__(self, recipe: Recipe, elements: Mapping[str, Any], out_dir: Path, *, force: bool,
                 durable: bool, max_shard_size: int, provenance: Mapping[str, Any]) -> Any: ...


def _label(ref: InputRef) -> str:
    where = f"record {ref.record}" if ref.record else f"recipe {ref.path}"
    return f"composition input {ref.name!r} ({where})"


def _key(ref: InputRef) -> str:
    return ref.record or f"path:{ref.path}"


def _qualified(outer: InputRef, name: str, inner: InputRef) -> InputRef:
    # Inputs of a nested recipe are named after the input they serve ("bob/encoder.layer.0"), so
    # every message and provenance line says which composition they come through.
    return replace(inner, name=f"{outer.name}/{name}")


def composition_manifest(recipe: Recipe, ref: InputRef) -> Manifest | None:
    """The tensors manifest of a composition input from its recipe's output table (``None``
    without a table).

    Raises:
        CompositionIntegrityError: the table does not hash to ``ref.content_id``, or the recipe
            states another output content id.
    """
    if recipe.output.content_id and recipe.output.content_id != ref.content_id:
        raise CompositionIntegrityError(
            f"{_label(ref)}: its recipe builds {recipe.output.content_id}, but the input pins {ref.content_id}; "
            "pin the content id the composition claims"
        )
    if not recipe.output.tensors:
        return None
    manifest = Manifest.for_tensors(recipe.output.entries())
    if manifest.content_id != parse_content_id(ref.content_id):
        raise CompositionIntegrityError(
            f"{_label(ref)}: its recipe's output table hashes to {manifest.content_id}, not to the content id "
            f"{ref.content_id} it claims; the composition is inconsistent, do not build on it"
        )
    return manifest


def plan_composition(ref: InputRef, recipe: Recipe, elements: Mapping[str, Any]) -> Plan:
    """Plan a composition input's recipe over its opened inputs and check it against what it
    claims: its output table (shapes, dtypes, every copy's digest) and, when every tensor is a
    copy, the content id predicted from the element manifests.

    Raises:
        CompositionIntegrityError: the recipe cannot be planned over its inputs, or does not
            build its table or ``ref.content_id``.
    """
    try:
        plan = plan_tensors(recipe, elements)
    except RecipeError as exc:
        raise CompositionIntegrityError(f"{_label(ref)}: its recipe cannot be planned over its own inputs: {exc}") from None
    try:
        check_output_table(recipe, plan)
    except OutputMismatchError as exc:
        raise CompositionIntegrityError(
            f"{_label(ref)} does not build the content id it claims ({ref.content_id}): {exc}"
        ) from None
    predicted = plan.predicted_content_id()
    if predicted is not None and predicted != ref.content_id:
        raise CompositionIntegrityError(
            f"{_label(ref)}: its recipe builds content id {predicted}, not the {ref.content_id} it claims; "
            "the composition is inconsistent, do not build on it"
        )
    return plan


# --------------------------------------------------------------------------------------------
# the input


class _BytesFileElement(FileElement):
    """A file produced in memory by a composition's file step (a JSON merge patch)."""

    def __init__(self, ref: InputRef, data: bytes) -> None:
        self.ref = ref
        self.data = data
        self.manifest = Manifest("file", bytes_content_id(data))
        self.path = None  # type: ignore[assignment]  # bytes in memory, no local file: writer.data_paths skips a None path

    def read_bytes(self) -> bytes:
        return self.data

    def stream(self, chunk_bytes: int = 8 << 20) -> Iterator[memoryview]:
        view = memoryview(self.data)
        for start in range(0, len(view), max(1, chunk_bytes)):
            yield view[start:start + chunk_bytes]


class CompositionElement(TensorElement):
    """A composition opened as a recipe input: its output tensor table, each tensor backed by
    the composition's own plan (straight from its elements) or by its build; its output files.

    Args:
        ref: the input (kind ``composition``).
        recipe: the composition's recipe.
        manifest: the tensors manifest of its output (content id ``ref.content_id``).
        plans: the composition's plan per output tensor (not built), or ``None`` with ``built``.
        inputs: its opened inputs, by its recipe's names (closed with this element).
        built: its build (a verified tensors element of the cached output), if built.
        open_input: opens one of its inputs on demand (a file asked of a built composition).
        files_only: opened for its files only (its tensors are not available).
    """

    def __init__(self, ref: InputRef, recipe: Recipe, manifest: Manifest, *, plans: Mapping[str, TensorPlan] | None = None,
                 inputs: Mapping[str, Any] | None = None, built: TensorElement | None = None,
                 open_input: Callable[[str], Any] | None = None, files_only: bool = False) -> None:
        self.ref = ref
        self.recipe = recipe
        self.manifest = manifest
        self.entries = {entry.name: entry for entry in manifest.entries}
        self.built = built
        # Unbuilt, it has no local file nor header (reads go through its plans; writer.data_paths
        # skips a None path): TensorElement's attributes are a local file's.
        self.path = built.path if built is not None else None  # type: ignore[assignment]
        self.header = built.header if built is not None else None  # type: ignore[assignment]
        self._fd = None
        self._plans = dict(plans or {})
        self._inputs: dict[str, Any] = dict(inputs or {})
        self._open_input = open_input
        self._files: dict[str, FileElement] = {}
        self.files_only = files_only

    # -- tensors -------------------------------------------------------------------------------

    @property
    def flattened(self) -> bool:
        """True when its tensors are read straight from its elements (no build)."""
        return self.built is None

    def tensor_plan(self, name: str) -> TensorPlan:
        """The plan of one of its output tensors (what a step that takes it uses)."""
        if self.built is not None:
            return CopyPlan(self.built, name)
        if self.files_only:  # pragma: no cover - only file steps reach a files-only composition
            raise AssertionError(f"{_label(self.ref)} was opened for its files only")
        inner = self._plans[name]
        if isinstance(inner, CopyPlan):
            return inner
        return CheckedPlan(inner, self.entries[name].digest, f"tensor {name!r} of {_label(self.ref)}")

    def blocks(self, name: str, block_elems: int) -> Iterator[np.ndarray]:
        return self.tensor_plan(name).blocks(block_elems)

    def stream(self, name: str, chunk_bytes: int) -> Iterator[memoryview]:
        import numpy as np
        from .ops import storage_dtype
        plan = self.tensor_plan(name)
        elems = max(1, chunk_bytes // max(1, storage_dtype(plan.dtype).itemsize))
        for block in plan.blocks(elems):
            yield np.ascontiguousarray(block).data.cast("B")

    def read_all(self, name: str) -> np.ndarray:
        return read_whole(self.tensor_plan(name))

    def copy_unverified(self, name: str, dst_fd: int, dst_offset: int, on_bytes=None) -> None:  # pragma: no cover
        raise AssertionError("tensors of a composition input are copied through their own plans")

    def check_digest(self, name: str, actual: bytes) -> None:  # pragma: no cover - see copy_unverified
        raise AssertionError("tensors of a composition input are checked through their own plans")

    def data_paths(self) -> Iterator[Path]:
        """Every local file this input reads (its build, or its elements' files, recursively)."""
        if self.built is not None:
            yield self.built.path
            return
        for element in self._inputs.values():
            paths = getattr(element, "data_paths", None)
            if paths is not None:
                yield from paths()
            elif getattr(element, "path", None) is not None:
                yield element.path

    # -- files ---------------------------------------------------------------------------------

    def file(self, path: str) -> FileElement:
        """Its output file ``path``, produced by its own file step and checked against its
        recipe's ``output.files``.

        Raises:
            RecipeError: it has no such file.
            CompositionIntegrityError: the file step does not give what ``output.files`` says.
        """
        if path in self._files:
            return self._files[path]
        specs = {spec.path: spec for spec in self.recipe.files}
        spec = specs.get(path)
        if spec is None:
            have = ", ".join(sorted(specs)[:8]) or "none"
            raise RecipeError(f"{_label(self.ref)} has no output file {path!r} (its files: {have})")
        source = self._input(spec.source)
        if spec.file is not None:
            source = source.file(spec.file)
        if spec.patch is None:
            element = source
            content_id = str(source.manifest.content_id)
        else:
            data = patched_json(source.read_bytes(), spec.patch, f"{self.ref.name}:{path}")
            element = _BytesFileElement(replace(self.ref, name=f"{self.ref.name}:{path}", kind="file",
                                                content_id=str(bytes_content_id(data))), data)
            content_id = str(element.manifest.content_id)
        listed = {f.path: f.content_id for f in self.recipe.output.files}
        if path in listed and listed[path] != content_id:
            raise CompositionIntegrityError(
                f"{_label(self.ref)}: its file step gives {path} with content id {content_id}, but its output says "
                f"{listed[path]}; the composition is inconsistent, do not build on it"
            )
        self._files[path] = element
        return element

    def _input(self, name: str) -> Any:
        element = self._inputs.get(name)
        if element is None:
            if self._open_input is None:  # pragma: no cover - flattened inputs are all open
                raise RecipeError(f"{_label(self.ref)}: input {name!r} is not open")
            element = self._inputs[name] = self._open_input(name)
        return element

    def close(self) -> None:
        for element in self._inputs.values():
            element.close()
        self._inputs.clear()
        if self.built is not None:
            self.built.close()


# --------------------------------------------------------------------------------------------
# opening


def open_input(source: CompositionSource, ref: InputRef, *, build: Build | None = None, materialize: bool = True,
               depth: int = 0, stack: tuple[str, ...] = (), files_only: bool = False) -> Any:
    """Open one recipe input from ``source``: an element (``source.open``) or a composition."""
    if ref.kind == "composition":
        return open_composition(source, ref, build=build, materialize=materialize, depth=depth + 1, stack=stack,
                                files_only=files_only)
    return source.open(ref)


def open_composition(source: CompositionSource, ref: InputRef, *, build: Build | None = None, materialize: bool = True,
                     depth: int = 1, stack: tuple[str, ...] = (), files_only: bool = False) -> CompositionElement:
    """Open a composition input (see the module docstring).

    Args:
        build: builds a composition that has derived tensors (the writer's ``assemble_elements``);
            needed only with ``materialize`` (the default) and only when one has derived tensors.
        materialize: build a composition that has derived tensors into the source's
            composition cache (assembly); ``False`` plans them as checked derived tensors.
        depth: its nesting level (the recipe's own composition inputs are 1).
        stack: the compositions being opened around it (a local recipe may not include itself).
        files_only: only its files will be read (a file of a built composition): nothing below
            it is opened until a file step needs it, its tensors are not available.

    Raises:
        NestingError: deeper than :data:`MAX_NESTING_DEPTH`, or a cycle of local recipes.
        CompositionIntegrityError: it does not build the content id it claims.
        what ``source.recipe`` and ``source.open`` raise.
    """
    if depth > MAX_NESTING_DEPTH:
        raise NestingError(
            f"{_label(ref)} is nested {depth} compositions deep; at most {MAX_NESTING_DEPTH} levels are assembled "
            "(build on a shallower composition, or publish the deep one's weights as an element)"
        )
    key = _key(ref)
    if key in stack:
        raise NestingError(f"{_label(ref)} includes itself ({' -> '.join([*stack, key])}); a recipe cannot be its own input")
    recipe = source.recipe(ref)
    manifest = composition_manifest(recipe, ref)
    inner_stack = (*stack, key)

    def open_one(name: str) -> Any:
        return open_input(source, _qualified(ref, name, recipe.inputs[name]), build=build, materialize=materialize,
                          depth=depth, stack=inner_stack)

    def open_for_files(name: str) -> Any:
        # A file step reads one file input (or a file of a composition): open only that.
        return open_input(source, _qualified(ref, name, recipe.inputs[name]), build=build, materialize=materialize,
                          depth=depth, stack=inner_stack, files_only=True)

    if files_only:
        return CompositionElement(ref, recipe, manifest or Manifest("tensors", parse_content_id(ref.content_id, None)),
                                  open_input=open_for_files, files_only=True)
    if materialize:
        built = cached_build(source, ref, manifest)
        if built is not None:
            return CompositionElement(ref, recipe, _manifest_or(manifest, built), built=built, open_input=open_for_files)
    inputs: dict[str, Any] = {}
    try:
        for name in sorted(recipe.inputs):
            inputs[name] = open_one(name)
        plan = plan_composition(ref, recipe, inputs)
        if plan.predicted_content_id() is not None or not materialize:
            element = planned_composition(ref, recipe, manifest, plan, inputs)
            if element is None:
                raise CompositionIntegrityError(
                    f"{_label(ref)} has derived tensors and no output table, so they cannot be checked without building it; "
                    "publish compositions with their output table (elements compose does)"
                )
            return element
        if build is None:  # pragma: no cover - a caller's bug: assembly always passes the writer
            raise TypeError(f"{_label(ref)} has derived tensors: opening it to be read needs build= (the writer's assemble_elements)")
        built = _build(source, ref, recipe, inputs, build)
    except BaseException:
        for element in inputs.values():
            element.close()
        raise
    return CompositionElement(ref, recipe, _manifest_or(manifest, built), built=built, inputs=inputs, open_input=open_for_files)


def planned_composition(ref: InputRef, recipe: Recipe, manifest: Manifest | None, plan: Plan,
                        inputs: Mapping[str, Any]) -> CompositionElement | None:
    """A composition input read through its own plan over its opened ``inputs``, not built: each
    tensor straight from its elements when every one is a copy (the table is the recipe's, or the
    plan's), else each derived tensor recomputed and checked against the recipe's table
    (``manifest``, from :func:`composition_manifest`) as it streams. ``None`` when it has derived
    tensors and no table: nothing could check them short of building it. ``plan`` is
    :func:`plan_composition`'s (already checked against what the composition claims); the element
    closes ``inputs`` when it is closed."""
    copies = plan.copy_table()
    if copies is not None:
        table = manifest or Manifest.for_tensors(copies)
        return CompositionElement(ref, recipe, table, plans=plan.tensors, inputs=inputs)
    if manifest is None:
        return None
    return CompositionElement(ref, recipe, manifest, plans=plan.tensors, inputs=inputs)


def _manifest_or(manifest: Manifest | None, built: TensorElement) -> Manifest:
    return manifest if manifest is not None else built.manifest


# --------------------------------------------------------------------------------------------
# builds in the cache

#: (path, inode, size, mtime) -> content id of builds already hashed in this process.
_VERIFIED: dict[tuple[str, int, int, int], str] = {}


def _build_dir(source: CompositionSource, ref: InputRef) -> Path:
    return Path(source.composition_cache()) / ref.content_id


def cached_build(source: CompositionSource, ref: InputRef, manifest: Manifest | None = None) -> TensorElement | None:
    """The cached build of a composition input if there is one and its weights hash to
    ``ref.content_id`` (hashed once per process and file version), else ``None``."""
    weights = _build_dir(source, ref) / "model.safetensors"
    try:
        stat = weights.stat()
    except OSError:
        return None
    key = (str(weights), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    found = _VERIFIED.get(key)
    if found is None:
        try:
            found = str(manifest_of(weights).content_id)
        except (ElementsError, OSError):
            return None
        _VERIFIED[key] = found
    if found != ref.content_id:
        return None
    try:
        built = manifest if manifest is not None else manifest_of(weights)
        return TensorElement(ref, Manifest.for_tensors(built.entries), weights)
    except (ElementsError, OSError):
        return None


def has_cached_build(source: CompositionSource, ref: InputRef) -> bool:
    """Whether a composition input has a valid build in the source's composition cache."""
    built = cached_build(source, ref)
    if built is None:
        return False
    built.close()
    return True


def _build(source: CompositionSource, ref: InputRef, recipe: Recipe, inputs: Mapping[str, Any], build: Build) -> TensorElement:
    """Assemble a composition input into the cache (verified against ``ref.content_id``)."""
    target = _build_dir(source, ref)
    pinned = recipe.with_output(replace(recipe.output, content_id=ref.content_id))
    try:
        build(pinned, inputs, target, force=True, durable=False, max_shard_size=_ONE_SHARD,
                          provenance={"built_as_input": ref.name, "record": ref.record})
    except OutputMismatchError as exc:
        raise CompositionIntegrityError(f"{_label(ref)} does not build the content id it claims: {exc}") from None
    built = cached_build(source, ref)
    if built is None:  # pragma: no cover - the engine checked the content id it wrote
        raise ElementIntegrityError(f"{_label(ref)}: its build in {target} changed while it was opened; assemble again")
    return built
