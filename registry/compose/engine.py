"""The assembly engine: a recipe plus an element source in, a verified model directory out.

This module opens the inputs (composition inputs through :mod:`registry.compose.nested`, which
receives the writer as its builder) and plans them; :mod:`registry.compose.writer` writes.

The output directory's layout is :mod:`registry.compose.writer`'s.

Guarantees:

- nothing is written before the whole recipe is planned against the inputs' manifests, and
  nothing is left in OUT (or beside it) when anything fails;
- every input is verified against the content id the recipe pins (``sources``); copied tensors
  are moved by the kernel and hashed from the output file as they are written (one pass), so
  every copy is checked against its input's manifest digest and the output's content id is
  computed from the bytes actually written; inputs of derived tensors are verified as they are
  read; the content id and each tensor must match the recipe's expected ones;
- memory stays bounded by a few blocks (copies use none; derived tensors 2**20-element float64
  blocks per source; hashing 16 MiB mmap windows), not by tensor or model size;
- the bytes are the same on every run and machine: canonical safetensors layout (the elements
  layer's header encoder), tensors in name order, shards filled in that order, fixed numerics.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Mapping

from ..digest import Bytes32, blake3_hasher
from ..formats.content_id import TensorEntry, bytes_content_id, tensor_set_content_id
from ..formats.recipe import Recipe, load_recipe
from ..limits import check_output_path
from .nested import open_input
from .outputs import OutputExistsError, OutputMismatchError, check_output_table, merge_patch, patched_json
from .plan import plan_tensors
from .readers import FileElement, TensorElement
from .sources import ElementSource
from .tensor_plans import CopyPlan, TensorPlan, block_elems
from .writer import (
    DEFAULT_MAX_SHARD_SIZE,
    PROVENANCE_FORMAT,
    PROVENANCE_NAME,
    AssemblyResult,
    Progress,
    assemble_elements,
    file_plan,
    parse_size,
)

__all__ = [
    "DEFAULT_MAX_SHARD_SIZE",
    "PROVENANCE_NAME",
    "PROVENANCE_FORMAT",
    "AssemblyResult",
    "OutputExistsError",
    "OutputMismatchError",
    "assemble",
    "assemble_elements",
    "check_recipe",
    "file_plan",
    "inspect_recipe",
    "merge_patch",
    "patched_json",
    "parse_size",
]


@contextlib.contextmanager
def _opened(recipe: Recipe, source: ElementSource, materialize: bool = True):
    elements: dict[str, TensorElement | FileElement] = {}
    try:
        for name in sorted(recipe.inputs):
            elements[name] = open_input(source, recipe.inputs[name], build=assemble_elements, materialize=materialize)
        yield elements
    finally:
        for element in elements.values():
            element.close()


def inspect_recipe(recipe: Recipe | str | os.PathLike, source: ElementSource) -> dict[str, Any]:
    """Plan a recipe without writing anything: the output table (digests where known in advance),
    the predicted content id (when every tensor is a copy), sizes.

    Raises:
        RecipeError / ElementNotFoundError / ElementIntegrityError / OutputMismatchError: as :func:`assemble`.
    """
    recipe = _recipe_of(recipe)
    # Planning only: a composition input with derived tensors is planned, not built.
    with _opened(recipe, source, materialize=False) as elements:
        plan = plan_tensors(recipe, elements)
        check_output_table(recipe, plan)
        return {
            "content_id": plan.predicted_content_id(),
            "tensor_count": len(plan.tensors),
            "total_bytes": plan.total_bytes,
            "largest_tensor": plan.largest_tensor,
            "tensors": [
                {"name": n, "dtype": p.dtype, "shape": list(p.shape), "digest": str(p.digest) if p.digest else None,
                 "from": p.describe()}
                for n, p in sorted(plan.tensors.items(), key=lambda item: item[0].encode())
            ],
        }


def assemble(
    recipe: Recipe | str | os.PathLike,
    source: ElementSource,
    out_dir: str | os.PathLike,
    *,
    force: bool = False,
    max_shard_size: int = DEFAULT_MAX_SHARD_SIZE,
    progress: Progress | None = None,
    provenance: Mapping[str, Any] | None = None,
    durable: bool = True,
) -> AssemblyResult:
    """Assemble ``recipe`` from ``source`` into the directory ``out_dir``.

    Args:
        force: replace ``out_dir`` if it exists (only once the new output is complete).
        max_shard_size: bytes of tensor data per shard; above it the weights are sharded.
        progress: called as ``progress(bytes_done, bytes_total)`` while tensor data is written.
        provenance: extra top-level fields for ``elements-provenance.json`` (chain id, registry,
            composition record: filled by callers that resolved the recipe on chain).
        durable: fsync every file before the output is moved into place.

    Raises:
        OutputExistsError: ``out_dir`` exists and ``force`` is false.
        RecipeError: the recipe asks what its inputs cannot give (nothing is written).
        ElementNotFoundError: the source lacks an input.
        ElementIntegrityError: an input differs from the content id the recipe pins.
        OutputMismatchError: the output differs from the recipe's expected table or content id.
    """
    recipe = _recipe_of(recipe)
    out = check_output_path(out_dir, "the output directory")
    if (out.exists() or out.is_symlink()) and not force:
        raise OutputExistsError(f"output directory {out} exists; choose another -o or pass --force to replace it")
    with _opened(recipe, source) as elements:
        return assemble_elements(recipe, elements, out, force=force, max_shard_size=max_shard_size, progress=progress,
                                 provenance=provenance, durable=durable)


def check_recipe(recipe: Recipe | str | os.PathLike, source: ElementSource, *, progress: Progress | None = None) -> AssemblyResult:
    """What ``recipe`` assembles to, checked as :func:`assemble` checks it, with nothing written:
    every copied tensor is hashed from its input's verified reads and must match its manifest
    digest (an element checked before is taken as :func:`assemble` takes it, see
    :attr:`TensorElement.checked`), every derived tensor is computed and hashed, every file checked
    against its content id, and the output's table, content id and files compared with the
    recipe's. What a composition is pinned with when its model is not kept (issue 17: no second
    copy of the model under ``tmp/``); the result's ``path`` is ``os.devnull`` and it names no
    weight files.

    Raises:
        as :func:`assemble` (but OutputExistsError: nothing is written).
    """
    recipe = _recipe_of(recipe)
    with _opened(recipe, source) as elements:
        plan = plan_tensors(recipe, elements)
        check_output_table(recipe, plan)
        expected = {t.name: t.digest for t in recipe.output.tensors}
        entries, done = [], 0
        for name in sorted(plan.tensors, key=lambda n: n.encode("utf-8")):
            tensor = plan.tensors[name]
            digest = _checked_digest(tensor)
            if name in expected and str(digest) != expected[name]:
                raise OutputMismatchError(f"output tensor {name!r} has digest {digest} but the recipe's table says {expected[name]}")
            entries.append(TensorEntry(name, tensor.dtype, tuple(tensor.shape), digest, tensor.nbytes))
            done += tensor.nbytes
            if progress:
                progress(done, plan.total_bytes)
        content_id = str(tensor_set_content_id(entries))
        if recipe.output.content_id and content_id != recipe.output.content_id:
            raise OutputMismatchError(f"the recipe's weights have content id {content_id} but the recipe expects {recipe.output.content_id}")
        files: dict[str, str] = {}
        for relative, element, patch in file_plan(recipe, elements):
            if patch is not None:
                files[relative] = str(bytes_content_id(patched_json(element.read_bytes(), patch, relative)))
            else:
                for _ in element.stream():  # checked against its content id before the last chunk
                    pass
                files[relative] = str(element.manifest.content_id)
        files = dict(sorted(files.items()))
        if recipe.output.files and {f.path: f.content_id for f in recipe.output.files} != files:
            raise OutputMismatchError("the recipe's files differ from its output.files")
        return AssemblyResult(path=Path(os.devnull), content_id=content_id, tensors=entries, weight_files=[], files=files,
                              recipe_content_id=recipe.content_id(), largest_tensor=plan.largest_tensor,
                              metadata=dict(recipe.output.metadata))


def _checked_digest(tensor: TensorPlan) -> Bytes32:
    """A tensor's digest from its bytes (a copy's checked against its manifest as it is read)."""
    if isinstance(tensor, CopyPlan):
        if not tensor.element.checked:
            for _ in tensor.element.stream(tensor.name, 16 << 20):  # raises in place of the last chunk on a mismatch
                pass
        return tensor.element.entries[tensor.name].digest
    import numpy as np

    hasher = blake3_hasher(tensor.nbytes)
    for block in tensor.blocks(block_elems(tensor)):
        hasher.update(np.ascontiguousarray(block).data.cast("B"))
    return Bytes32(hasher.digest())


def _recipe_of(recipe: Recipe | str | os.PathLike) -> Recipe:
    """The recipe itself, or read from a path (any os.PathLike: load_recipe reads only str and
    Path as paths and took anything else for the recipe's bytes) or a str (a path or the text)."""
    if isinstance(recipe, Recipe):
        return recipe
    return load_recipe(recipe if isinstance(recipe, str) else Path(recipe))
