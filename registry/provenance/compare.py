"""A model's tensors compared with what a claim says they are: a copy's digest (traced through
composition inputs down to the element it comes from), or a derived tensor recomputed from its
inputs' data; renamed tensors found by content."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from ..compose.tensor_plans import CompositionIntegrityError, CopyPlan, Plan, TensorPlan
from ..formats.content_id import TensorEntry
from ..formats.recipe import Recipe
from .manifest_elements import leaf_copies, recompute_verified
from .results import Source, TensorResult

__all__ = ["Expected", "compare", "expected_of_plan", "summary"]


@dataclass
class Expected:
    """What one output tensor of a claim must be."""

    dtype: str
    shape: tuple[int, ...]
    digest: str | None  # known in advance (copies; element claims)
    sources: list[Source]
    how: str | None = None
    claimed: str | None = None  # the recipe's output table digest
    plan: TensorPlan | None = None


def expected_of_plan(plan: Plan, recipe: Recipe) -> dict[str, Expected]:
    """What each output tensor must be: a copy's digest (traced through composition inputs down
    to the element it comes from), or a derived tensor's plan to recompute."""
    claimed = {t.name: t.digest for t in recipe.output.tensors}
    out: dict[str, Expected] = {}
    for name, tensor in plan.tensors.items():
        if isinstance(tensor, CopyPlan):
            base = getattr(tensor.element, "origin", None) or Source(None, None, tensor.element.ref.content_id, None, tensor.element.ref.name)
            sources = [Source(base.record_id, base.publisher, base.content_id, tensor.name, base.input, base.block, base.yanked)]
            out[name] = Expected(tensor.dtype, tuple(tensor.shape), str(tensor.digest), sources, None, claimed.get(name), tensor)
        else:
            origins: dict[tuple[str, str], Source] = {}
            for leaf in leaf_copies(tensor):
                origin = getattr(leaf.element, "origin", None)
                if origin is not None:
                    origins.setdefault((origin.record_id, leaf.name), Source(
                        origin.record_id, origin.publisher, origin.content_id, leaf.name, origin.input, origin.block, origin.yanked))
            sources = sorted(origins.values(), key=lambda o: (o.input or "", o.tensor or ""))
            out[name] = Expected(tensor.dtype, tuple(tensor.shape), None, sources, tensor.describe(), claimed.get(name), tensor)
    return out


def compare(model: Mapping[str, TensorEntry], expected: Mapping[str, Expected],
             problems: list[str] | None = None) -> list[TensorResult]:
    """Compare the model's tensors with what a claim says they are (recomputing derived ones).

    A derived tensor of a composition input that does not build what the composition's table
    says is reported as ``differs`` and its message added to ``problems`` (the claim is invalid).
    """
    results: dict[str, TensorResult] = {}
    for name in sorted(set(model) | set(expected), key=lambda n: n.encode("utf-8")):
        entry, want = model.get(name), expected.get(name)
        if want is None:
            if entry is None:  # pragma: no cover - every name comes from one of the two
                continue
            results[name] = TensorResult(name, "extra", entry.dtype, entry.shape, str(entry.digest),
                                         message=f"{name} is extra: the claim does not produce it")
            continue
        src = want.sources[0].label() if want.sources else "the claim"
        if entry is None:
            results[name] = TensorResult(name, "missing", want.dtype, want.shape, None, want.digest or want.claimed, want.sources, want.how,
                                         message=f"{name} is missing (the claim takes it from {want.how or src})")
            continue
        result = TensorResult(name, "match", entry.dtype, entry.shape, str(entry.digest), want.digest, want.sources, want.how)
        if (entry.dtype, tuple(entry.shape)) != (want.dtype, tuple(want.shape)):
            result.status = "differs"
            result.message = (f"{name} differs from {src}: it is {entry.dtype}{list(entry.shape)}, "
                              f"expected {want.dtype}{list(want.shape)}")
        elif want.digest is not None:
            if want.digest == str(entry.digest):
                result.message = f"{name} matches {src}"
            else:
                result.status = "differs"
                result.message = f"{name} differs from {src}"
        else:
            try:
                recomputed = recompute_verified(want.plan) if want.plan is not None else None
            except CompositionIntegrityError as exc:
                result.status, result.message = "differs", f"{name} cannot be recomputed: {exc}"
                if problems is not None:
                    problems.append(str(exc))
                results[name] = result
                continue
            result.expected = recomputed
            if recomputed == str(entry.digest):
                result.status = "recomputed"
                result.message = f"{name} recomputed from {want.how}"
            else:
                result.status = "differs"
                result.message = f"{name} differs from its recomputation {want.how} (inputs: {', '.join(dict.fromkeys(s.label() for s in want.sources))})"
        results[name] = result
    # A missing tensor whose content is present under another name was renamed.
    missing_by_digest: dict[str, str] = {}
    for name, result in results.items():
        if result.status == "missing" and result.expected:
            missing_by_digest.setdefault(result.expected, name)
    for name, result in list(results.items()):
        if result.status != "extra" or result.digest not in missing_by_digest:
            continue
        old = missing_by_digest.pop(result.digest)
        gone = results.pop(old)
        result.status = "renamed"
        result.renamed_from = old
        result.expected = gone.expected
        result.sources = gone.sources
        src = gone.sources[0].label() if gone.sources else "the claim"
        result.message = f"{name} is {old} of {src}, renamed"
    return list(results.values())


def summary(results: Iterable[TensorResult]) -> str:
    counts: dict[str, int] = {}
    first: dict[str, str] = {}
    for result in results:
        if result.ok:
            continue
        counts[result.status] = counts.get(result.status, 0) + 1
        first.setdefault(result.status, result.message)
    parts = [f"{n} {status}" for status, n in counts.items()]
    return "the model does not match: " + ", ".join(parts) + (f" (first: {next(iter(first.values()))})" if first else "")
