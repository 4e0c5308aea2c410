"""Pinning a recipe's inputs to record ids: what makes a local recipe publishable."""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping

from .model import InputRef, Recipe
from .values import RecipeError, as_hex32

__all__ = ["with_record_ids", "check_publishable"]


def with_record_ids(recipe: Recipe, records: Mapping[str, str]) -> Recipe:
    """Pin every input to a record id (the publish step): local paths are dropped.

    ``records`` maps an input's name or its content id to the record id that claims it.

    Raises:
        RecipeError: an input has no record id in ``records``, or a record id is malformed.
    """
    lowered = {k.lower() if k.startswith("0x") else k: v for k, v in records.items()}
    inputs = {}
    missing = []
    for name, ref in recipe.inputs.items():
        record = lowered.get(name) or lowered.get(ref.content_id) or ref.record
        if record is None:
            missing.append(name)
            continue
        inputs[name] = InputRef(name=name, kind=ref.kind, content_id=ref.content_id, record=as_hex32(record, f"record id of {name}"))
    if missing:
        raise RecipeError(f"no record id for input(s) {', '.join(sorted(missing))}; publish those elements first")
    return replace(recipe, inputs=inputs)


def check_publishable(recipe: Recipe) -> None:
    """Refuse a recipe that cannot be published: every input must carry a record id.

    Raises:
        RecipeError: naming the inputs that are only local files.
    """
    local = sorted(name for name, ref in recipe.inputs.items() if not ref.record)
    if local:
        shown = ", ".join(local[:5]) + (f" and {len(local) - 5} more" if len(local) > 5 else "")
        raise RecipeError(f"input(s) {shown} have no record id; publish those elements and pin them with with_record_ids")
