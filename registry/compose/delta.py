"""Fine-tune deltas: an element of only the tensors a fine-tune changed, and the override recipe.

A fine-tune that touched k tensors is published as one element of those k tensors; the
composition "base recipe + override(delta)" assembles to the fine-tuned model exactly.
:func:`plan_delta` decides the element and the recipe from the fine-tune's headers and tensor
digests without writing anything: ``elements publish-delta`` streams the element's canonical
bytes from the fine-tune's memory map into its blocks (:class:`registry.formats.element_stream.ElementStream`),
so no delta file is written. :func:`make_delta` writes the same element as a file (the same bytes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..files import atomic_write
from ..formats.content_id import Manifest, tensor_entries, tensor_set_content_id
from ..formats.checkpoint import Checkpoint, open_tensors, read_checkpoint
from ..formats.safetensors_writer import write_safetensors
from ..formats.split import PlannedElement
from ..formats.recipe import InputRef, OutputSpec, OutputTensor, Override, Recipe, RecipeError, check_relative_path

__all__ = ["DeltaPlan", "make_delta", "plan_delta"]


@dataclass(frozen=True)
class DeltaPlan:
    """A delta decided, nothing written: the override recipe, the delta element (its manifest and
    its tensors in canonical order, read from ``checkpoint``)."""

    recipe: Recipe
    element: PlannedElement
    checkpoint: Checkpoint

    @property
    def manifest(self) -> Manifest:
        return self.element.manifest


def plan_delta(base: Recipe, finetuned: str | os.PathLike, name: str = "delta") -> DeltaPlan:
    """The element of the tensors of ``finetuned`` that differ from ``base``'s output table and the
    recipe that overrides them (its output pinned to the fine-tuned weights), nothing written.

    Raises:
        RecipeError: ``base`` has no output table, the fine-tune adds or removes tensors (an
            override cannot), nothing changed, or ``name`` is already an input.
    """
    if not base.output.tensors:
        raise RecipeError("the base recipe has no output table; assemble it once and record its output first")
    if name in base.inputs:
        raise RecipeError(f"the base recipe already has an input named {name!r}; choose another delta name")
    relative = check_relative_path(f"elements/{name}.safetensors", "delta name")
    checkpoint = read_checkpoint(finetuned)
    entries = {entry.name: entry for entry in tensor_entries(checkpoint)}
    table = {row.name: row for row in base.output.tensors}
    added, removed = sorted(set(entries) - set(table)), sorted(set(table) - set(entries))
    if added or removed:
        detail = ", ".join([f"adds {n!r}" for n in added[:2]] + [f"removes {n!r}" for n in removed[:2]])
        raise RecipeError(f"the fine-tune {detail}; an override delta can only replace existing tensors")
    changed = sorted(
        (n for n, e in entries.items() if (e.dtype, e.shape, str(e.digest)) != (table[n].dtype, table[n].shape, table[n].digest)),
        key=lambda n: n.encode("utf-8"),
    )
    if not changed:
        raise RecipeError("the fine-tuned weights are identical to the base; there is no delta to publish")
    manifest = Manifest.for_tensors([entries[n] for n in changed], metadata={"name": name})
    inputs = dict(base.inputs)
    inputs[name] = InputRef(name=name, kind="tensors", content_id=str(manifest.content_id), path=relative)
    output = OutputSpec(
        content_id=str(tensor_set_content_id(entries.values())),
        tensors=tuple(OutputTensor(e.name, e.dtype, e.shape, str(e.digest)) for e in sorted(entries.values(), key=lambda e: e.name)),
        files=base.output.files,
        metadata=base.output.metadata,
    )
    recipe = replace(base, inputs=inputs, steps=(*base.steps, Override((name,))), output=output)
    return DeltaPlan(recipe, PlannedElement(name, "tensors", relative, manifest, tuple(changed)), checkpoint)


def make_delta(base: Recipe, finetuned: str | os.PathLike, elements_dir: str | os.PathLike,
               name: str = "delta") -> tuple[Recipe, Manifest]:
    """Write ``elements_dir/elements/<name>.safetensors`` (+ manifest): :func:`plan_delta`'s element
    as a file; returns its recipe and manifest.

    Raises:
        RecipeError: as :func:`plan_delta`.
    """
    plan = plan_delta(base, finetuned, name)
    entries = {entry.name: entry for entry in plan.manifest.entries}
    root = Path(elements_dir)
    path = root / plan.element.path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_tensors(plan.checkpoint) as views:
        write_safetensors(path, [(n, entries[n].dtype, entries[n].shape, (lambda n=n: views[n])) for n in plan.element.members])
    if Manifest.for_tensors(tensor_entries(path)).content_id != plan.manifest.content_id:  # pragma: no cover - writer bug
        raise AssertionError(f"delta element {path} does not hold the tensors it was written from")
    atomic_write(root / (plan.element.path + ".manifest.json"), plan.manifest.to_json_bytes())
    return plan.recipe, plan.manifest
