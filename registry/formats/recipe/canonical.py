"""Canonical JSON of a recipe: the bytes that are hashed and published."""

from __future__ import annotations

import math
from typing import Any

from ..content_id import canonical_json as encode_canonical_json
from .values import RecipeError

__all__ = ["canonical_json", "check_finite"]


def canonical_json(value: Any) -> bytes:
    """Canonical JSON bytes (:func:`registry.formats.content_id.canonical_json`: sorted keys, no
    whitespace, UTF-8, shortest round-trip floats), refusing NaN and infinities by where they are.

    Raises:
        RecipeError: a NaN or infinite number (JSON has none).
    """
    check_finite(value, "$")
    return encode_canonical_json(value)


def check_finite(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise RecipeError(f"{where} is {value}; recipes hold finite numbers only")
    if isinstance(value, dict):
        for k, v in value.items():
            check_finite(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_finite(v, f"{where}[{i}]")
