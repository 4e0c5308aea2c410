"""What a recipe says it builds, checked against what its steps build: the output table check and
the output files' JSON merge patches, shared by assembly, nested compositions and verification.

A recipe's ``output`` pins a tensor table (name, dtype, shape, digest) and a content id. Its steps,
planned over its inputs' manifests (:func:`registry.compose.plan.plan_tensors`), must give exactly
that table: :func:`table_differences` is the one comparison. Assembly and nested compositions
refuse the first difference (:func:`check_output_table`, an :class:`OutputMismatchError`);
verification reports every one (:func:`output_table_problems`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import InputError, IntegrityError
from ..formats.recipe import OutputTensor, Recipe, RecipeError, RecipeLimitError
from ..limits import MODEL_JSON_BYTES, LimitExceededError, NotJSONError, loads_json
from .tensor_plans import Plan, TensorPlan

__all__ = [
    "OutputExistsError",
    "OutputMismatchError",
    "TableDifferences",
    "check_output_table",
    "merge_patch",
    "output_table_problems",
    "patched_json",
    "table_differences",
]


class OutputExistsError(InputError):
    """The output directory exists and --force was not given."""


class OutputMismatchError(IntegrityError):
    """The assembled output differs from what the recipe says it must be."""


@dataclass
class TableDifferences:
    """How a recipe's planned tensors differ from its output table (empty without a table).

    Attributes:
        extra: tensors the steps produce that the table lacks (sorted).
        missing: tensors the table lists that the steps do not produce (sorted).
        rows: tensors in both that differ, in table order: (name, table row, plan, what), where
            ``what`` is ``"shape"`` (dtype or shape) or ``"digest"`` (a copy's digest).
    """

    extra: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    rows: list[tuple[str, OutputTensor, TensorPlan, str]] = field(default_factory=list)


def table_differences(recipe: Recipe, plan: Plan) -> TableDifferences:
    """Compare ``plan`` (the recipe's steps over its inputs) with the recipe's output table."""
    table = {t.name: t for t in recipe.output.tensors}
    if not table:
        return TableDifferences()
    have = plan.tensors
    found = TableDifferences(sorted(set(have) - set(table)), sorted(set(table) - set(have)))
    for name, row in table.items():
        tensor = have.get(name)
        if tensor is None:
            continue
        if (tensor.dtype, tuple(tensor.shape)) != (row.dtype, tuple(row.shape)):
            found.rows.append((name, row, tensor, "shape"))
        elif tensor.digest is not None and str(tensor.digest) != row.digest:
            found.rows.append((name, row, tensor, "digest"))
    return found


def check_output_table(recipe: Recipe, plan: Plan) -> None:
    """Refuse a plan that does not build the recipe's output table or content id (the content id
    is predicted when every tensor is a copy).

    Raises:
        OutputMismatchError: the first difference, naming the tensor and both sides.
    """
    found = table_differences(recipe, plan)
    extra, missing = found.extra, found.missing
    if extra or missing:
        detail = (f"produces {', '.join(extra[:3])} not in the table" if extra else "") + (
            ("; " if extra else "") + f"does not produce {', '.join(missing[:3])}" if missing else "")
        raise OutputMismatchError(f"the recipe's steps do not match its output table: it {detail}; fix the steps or the table")
    for name, row, tensor, what in found.rows:
        if what == "shape":
            raise OutputMismatchError(
                f"output tensor {name!r} would be {tensor.dtype}{list(tensor.shape)} but the recipe's table says {row.dtype}{list(row.shape)}"
            )
        raise OutputMismatchError(
            f"output tensor {name!r} would be copied with digest {tensor.digest} but the recipe's table says {row.digest}"
        )
    expected = recipe.output.content_id
    predicted = plan.predicted_content_id()
    if expected and predicted and predicted != expected:
        raise OutputMismatchError(
            f"the recipe's steps give content id {predicted} but it expects {expected}; the recipe is inconsistent"
        )


def output_table_problems(recipe: Recipe, plan: Plan) -> list[str]:
    """Every difference between the plan and the recipe's output table, one line each, for a
    verification report (the table is what a published composition claims)."""
    found = table_differences(recipe, plan)
    problems = []
    if found.extra or found.missing:
        problems.append(f"its recipe's steps produce {len(found.extra)} tensor(s) its output table lacks and lack "
                        f"{len(found.missing)} it lists (e.g. {(found.extra or found.missing)[0]}); the recipe is inconsistent")
    for name, row, tensor, what in sorted(found.rows, key=lambda item: item[0]):
        if what == "shape":
            problems.append(f"its recipe's output table says {name} is {row.dtype}{list(row.shape)} but its steps give {tensor.dtype}{list(tensor.shape)}")
        else:
            problems.append(f"its recipe's output table says {name} is {row.digest} but its steps copy {tensor.digest}")
    return problems


# --------------------------------------------------------------------------------------------
# output files


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def patched_json(data: bytes, patch: Mapping, path: str) -> bytes:
    """A file step's JSON merge patch applied to ``data`` (docs/recipes.md, "Files"): indent 2,
    the original key order, a final newline.

    Raises:
        RecipeError: ``data`` is not a JSON object (``path`` names the file in the message).
    """
    try:
        document = loads_json(data, what=f"files: {path} (the input of a patch)", max_bytes=MODEL_JSON_BYTES)
    except LimitExceededError as exc:
        if exc.limit is None:  # pragma: no cover - loads_json names the limit of every refusal
            raise
        raise exc.limit.exceeded(exc.what, exc.value, RecipeLimitError) from None
    except NotJSONError as exc:
        raise RecipeError(f"files: {path} has a patch but its input is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise RecipeError(f"files: {path} has a patch but its input is not a JSON object")
    patched = merge_patch(document, patch)
    try:
        return (json.dumps(patched, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a "\ud800" escape in the input file: JSON, but not text
        raise RecipeError(f"files: {path} has a patch but its input holds a lone surrogate (a \\ud8xx escape), which is not UTF-8 text") from None
