"""The vocabulary of ``elements.recipe/v1`` documents: the format name, its errors, and the
checks of single values (strings, content ids, numbers, layer numbers, regular expressions,
relative paths) that every part of a recipe is read with, each within :mod:`registry.limits`."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import PurePosixPath
from typing import Any, Mapping

from ...errors import InputError
from ...limits import LAYER_NUMBER, RECIPE_STEPS, REGEX_CHARS, LimitExceededError, check_path

__all__ = [
    "FORMAT",
    "CAST_DTYPES",
    "RecipeError",
    "RecipeLimitError",
    "over_limit",
    "check_count",
    "shown",
    "Reader",
    "as_str",
    "as_hex32",
    "as_number",
    "as_int",
    "as_layer",
    "as_bool",
    "as_str_list",
    "as_regex",
    "as_dtype",
    "check_relative_path",
    "check_text",
]

FORMAT = "elements.recipe/v1"
# Output dtypes a cast or a derived tensor may have.
CAST_DTYPES = ("F32", "F16", "BF16")
_HEX32 = re.compile(r"0x[0-9a-f]{64}")
# Tensor names: printable, no control characters (safetensors allows any UTF-8 string).
_BAD_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class RecipeError(InputError):
    """A recipe is malformed or asks for something its inputs cannot give."""


class RecipeLimitError(RecipeError, LimitExceededError):
    """A recipe over one of the limits of :mod:`registry.limits` (size, nesting, counts, name and
    path lengths, layer numbers, LoRA ranks, pattern lengths)."""


def over_limit(limit: Any, what: str, value: Any) -> RecipeLimitError:
    """The :class:`RecipeLimitError` for ``value`` over ``limit`` (for the readers of other formats
    that become recipes)."""
    error: RecipeLimitError = limit.exceeded(what, value, RecipeLimitError)
    return error


def check_count(items: Any, limit: Any, what: str) -> Any:
    """``items`` when it has at most ``limit`` entries (checked before they are parsed one by one)."""
    if isinstance(items, (list, tuple, Mapping)) and len(items) > limit:
        raise over_limit(limit, f"the number of {what}", len(items))
    return items


def shown(value: Any) -> str:
    """A value for a one-line message: its repr, cut short (recipes are written by anyone)."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


# --------------------------------------------------------------------------------------------
# small validators


class Reader:
    """Reads one JSON object strictly: every key is consumed once, leftovers are an error."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise RecipeError(f"{where} must be an object, not {type(data).__name__}")
        self.data = dict(data)
        self.where = where
        for key in self.data:
            if not isinstance(key, str):
                raise RecipeError(f"{where} has a non-string key {shown(key)}")
        self.seen: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return self.data.get(key, default)

    def required(self, key: str) -> Any:
        self.seen.add(key)
        if key not in self.data:
            raise RecipeError(f"{self.where} needs '{key}'")
        return self.data[key]

    def done(self) -> None:
        extra = sorted(set(self.data) - self.seen)
        if extra:
            raise RecipeError(f"{self.where} has unknown key(s) {', '.join(extra)}; see docs/recipes.md for the format")


def as_str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise RecipeError(f"{where} must be a non-empty string")
    return value


def as_hex32(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _HEX32.fullmatch(value.lower()):
        raise RecipeError(f"{where} must be 0x followed by 64 hex digits, got {shown(value)}")
    return value.lower()


def as_number(value: Any, where: str) -> float:
    # YAML 1.1 reads `1e-3` as a string; accept numeric strings so mergekit-style configs work.
    if isinstance(value, bool):
        raise RecipeError(f"{where} must be a number, not a boolean")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise RecipeError(f"{where} must be a number, got {shown(value)}") from None
    if not isinstance(value, (int, float)):
        raise RecipeError(f"{where} must be a number, got {shown(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise RecipeError(f"{where} must be finite, got {number}")
    return number


def as_int(value: Any, where: str, minimum: int | None = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecipeError(f"{where} must be an integer, got {shown(value)}")
    if minimum is not None and value < minimum:
        raise RecipeError(f"{where} must be >= {minimum}, got {value}")
    return value


def as_layer(value: Any, where: str, end: bool = False) -> int:
    """A layer number (or, with ``end``, the excluded end of a range) within LAYER_NUMBER."""
    number = as_int(value, where)
    if number > LAYER_NUMBER + (1 if end else 0):
        raise over_limit(LAYER_NUMBER, f"the layer number {where}", number)
    return number


def as_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise RecipeError(f"{where} must be true or false, got {shown(value)}")
    return value


def as_str_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise RecipeError(f"{where} must be a string or a list of strings")
    check_count(value, RECIPE_STEPS, f"entries of {where}")
    return tuple(as_str(v, f"{where}[{i}]") for i, v in enumerate(value))


def as_regex(raw: Any, where: str) -> str:
    value = as_str(raw, where)
    if len(value) > REGEX_CHARS:
        raise over_limit(REGEX_CHARS, f"the regular expression {where}", len(value))
    with warnings.catch_warnings():  # "possible nested set": a second line on the user's stderr
        warnings.simplefilter("ignore")
        try:
            re.compile(value)
        except (re.error, RecursionError, OverflowError) as exc:
            raise RecipeError(f"{where} is not a valid regular expression ({exc})") from None
        nested = _nested_repeat(value)
    if nested:
        raise RecipeError(
            f"{where} {value!r} repeats a group that itself repeats (like (a+)+), which can take exponential time "
            "on a hostile tensor name; write it without nested repetition"
        )
    return value


def _nested_repeat(pattern: str) -> bool:
    """Whether a regex has a repetition inside a repetition: Python's backtracking engine can take
    exponential time on such a pattern, and tensor names are chosen by whoever published them."""
    from re import _constants as constants, _parser as parser  # type: ignore[attr-defined]  # private; Python 3.11+
    repeats = {constants.MAX_REPEAT, constants.MIN_REPEAT}

    def walk(items: Any, inside: bool) -> bool:
        for op, av in items:
            if op in repeats:
                low, high, body = av
                many = high > 1
                if many and inside:
                    return True
                if walk(body, inside or many):
                    return True
            elif op is constants.SUBPATTERN:
                if walk(av[-1], inside):
                    return True
            elif op is constants.BRANCH:
                if any(walk(branch, inside) for branch in av[1]):
                    return True
            elif op in (constants.ASSERT, constants.ASSERT_NOT):
                if walk(av[1], inside):
                    return True
        return False

    return walk(parser.parse(pattern), False)


def as_dtype(value: Any, where: str) -> str:
    if value not in CAST_DTYPES:
        raise RecipeError(f"{where} must be one of {', '.join(CAST_DTYPES)}, got {shown(value)}")
    return str(value)


def check_relative_path(raw: Any, where: str) -> str:
    """A relative POSIX path that stays inside its directory (no '..', no absolute, no '\\').

    Raises:
        RecipeError: the path is empty, absolute, escapes with '..', or has odd characters.
    """
    value = as_str(raw, where)
    check_path(value, where, RecipeLimitError)
    if "\\" in value or _BAD_NAME_CHARS.search(value) or value.startswith("/") or ":" in value.split("/")[0]:
        raise RecipeError(f"{where} {shown(value)} must be a relative path with '/' separators")
    parts = PurePosixPath(value).parts
    if any(p in ("..", ".") for p in value.split("/")) or not parts or str(PurePosixPath(*parts)) != value:
        raise RecipeError(f"{where} {shown(value)} escapes its directory or is not normalized; use a plain relative path")
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(document: Any, where: str) -> None:
    """Refuse a lone surrogate in any key or string of ``document``: JSON can escape one
    (``"\\ud800"``) but it is not text, and every name, path and value of a recipe is written as
    UTF-8 in the end (a tensor name, a file name, a patched config)."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise RecipeError(f"{where} holds a lone surrogate in {shown(item)}, which is not UTF-8 text; remove the \\ud8xx escape")
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
