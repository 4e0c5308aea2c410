"""The recipe format ``elements.recipe/v1``: how a composition is assembled from elements.

A recipe names its inputs (elements, each pinned by content id and, once published, by record
id), lists the tensor steps that build the output weights, the files that go next to them, and
what the output is expected to be (tensor table, content id). The full specification, with
examples, is ``docs/recipes.md``; this module parses it strictly (unknown keys are refused, so a
typo never silently changes a model), normalizes it, and writes the canonical JSON that is hashed
and published (sorted keys, no whitespace, UTF-8, defaults omitted).

Shape of the parsed model::

    Recipe
    ├── inputs:  {name: InputRef(kind, content_id, record, path)}   kind: tensors | file | composition
    ├── steps:   [Take | Stack | Override | Linear | TaskArithmetic | Lora | Cast | Merge]
    ├── files:   [FileSpec(path, source, patch, file)]
    └── output:  OutputSpec(content_id, tensors, files, metadata)
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping

from ..digest import parse_bytes32
from .content_id import TensorEntry, bytes_content_id
from .content_id import canonical_json as encode_canonical_json
from .safetensors import tensor_nbytes
from ..errors import InputError
from ..limits import (
    DOCUMENT_BYTES,
    LAYER_NUMBER,
    LORA_RANK,
    NAME_BYTES,
    RECIPE_FILES,
    RECIPE_INPUTS,
    RECIPE_STEPS,
    REGEX_CHARS,
    TENSOR_RANK,
    TENSORS,
    LimitExceeded,
    NotJSON,
    check_path,
    loads_json,
    loads_yaml,
)

__all__ = [
    "FORMAT",
    "CAST_DTYPES",
    "RecipeError",
    "RecipeLimitError",
    "over_limit",
    "InputRef",
    "Selection",
    "Rename",
    "Take",
    "StackSlice",
    "Stack",
    "Override",
    "WeightedSource",
    "Linear",
    "TaskArithmetic",
    "LoraParams",
    "Lora",
    "Cast",
    "MergeSource",
    "Merge",
    "RandomInit",
    "MERGE_METHODS",
    "evaluate_parameter",
    "FileSpec",
    "OutputTensor",
    "OutputFile",
    "OutputSpec",
    "Recipe",
    "parse_recipe",
    "load_recipe",
    "canonical_json",
    "with_record_ids",
    "check_publishable",
    "check_relative_path",
    "apply_renames",
]

FORMAT = "elements.recipe/v1"
# Output dtypes a cast or a derived tensor may have.
CAST_DTYPES = ("F32", "F16", "BF16")
KINDS = ("tensors", "file", "composition")
_HEX32 = re.compile(r"0x[0-9a-f]{64}")
_INPUT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]*")
# Tensor names: printable, no control characters (safetensors allows any UTF-8 string).
_BAD_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class RecipeError(InputError):
    """A recipe is malformed or asks for something its inputs cannot give."""


class RecipeLimitError(RecipeError, LimitExceeded):
    """A recipe over one of the limits of :mod:`registry.limits` (size, nesting, counts, name and
    path lengths, layer numbers, LoRA ranks, pattern lengths)."""


def over_limit(limit: Any, what: str, value: Any) -> RecipeLimitError:
    """The :class:`RecipeLimitError` for ``value`` over ``limit`` (for the readers of other formats
    that become recipes)."""
    error: RecipeLimitError = limit.exceeded(what, value, RecipeLimitError)
    return error


_over = over_limit


def _count(items: Any, limit: Any, what: str) -> Any:
    """``items`` when it has at most ``limit`` entries (checked before they are parsed one by one)."""
    if isinstance(items, (list, tuple, Mapping)) and len(items) > limit:
        raise _over(limit, f"the number of {what}", len(items))
    return items


def _shown(value: Any) -> str:
    """A value for a one-line message: its repr, cut short (recipes are written by anyone)."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


# --------------------------------------------------------------------------------------------
# canonical JSON


def canonical_json(value: Any) -> bytes:
    """Canonical JSON bytes (:func:`registry.formats.content_id.canonical_json`: sorted keys, no
    whitespace, UTF-8, shortest round-trip floats), refusing NaN and infinities by where they are.

    Raises:
        RecipeError: a NaN or infinite number (JSON has none).
    """
    _check_finite(value, "$")
    return encode_canonical_json(value)


def _check_finite(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise RecipeError(f"{where} is {value}; recipes hold finite numbers only")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite(v, f"{where}[{i}]")


# --------------------------------------------------------------------------------------------
# small validators


class _Reader:
    """Reads one JSON object strictly: every key is consumed once, leftovers are an error."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise RecipeError(f"{where} must be an object, not {type(data).__name__}")
        self.data = dict(data)
        self.where = where
        for key in self.data:
            if not isinstance(key, str):
                raise RecipeError(f"{where} has a non-string key {_shown(key)}")
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


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise RecipeError(f"{where} must be a non-empty string")
    return value


def _hex32(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _HEX32.fullmatch(value.lower()):
        raise RecipeError(f"{where} must be 0x followed by 64 hex digits, got {_shown(value)}")
    return value.lower()


def _number(value: Any, where: str) -> float:
    # YAML 1.1 reads `1e-3` as a string; accept numeric strings so mergekit-style configs work.
    if isinstance(value, bool):
        raise RecipeError(f"{where} must be a number, not a boolean")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise RecipeError(f"{where} must be a number, got {_shown(value)}") from None
    if not isinstance(value, (int, float)):
        raise RecipeError(f"{where} must be a number, got {_shown(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise RecipeError(f"{where} must be finite, got {number}")
    return number


def _int(value: Any, where: str, minimum: int | None = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecipeError(f"{where} must be an integer, got {_shown(value)}")
    if minimum is not None and value < minimum:
        raise RecipeError(f"{where} must be >= {minimum}, got {value}")
    return value


def _layer(value: Any, where: str, end: bool = False) -> int:
    """A layer number (or, with ``end``, the excluded end of a range) within LAYER_NUMBER."""
    number = _int(value, where)
    if number > LAYER_NUMBER + (1 if end else 0):
        raise _over(LAYER_NUMBER, f"the layer number {where}", number)
    return number


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise RecipeError(f"{where} must be true or false, got {_shown(value)}")
    return value


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise RecipeError(f"{where} must be a string or a list of strings")
    _count(value, RECIPE_STEPS, f"entries of {where}")
    return tuple(_str(v, f"{where}[{i}]") for i, v in enumerate(value))


def _regex(raw: Any, where: str) -> str:
    value = _str(raw, where)
    if len(value) > REGEX_CHARS:
        raise _over(REGEX_CHARS, f"the regular expression {where}", len(value))
    try:
        re.compile(value)
    except (re.error, RecursionError, OverflowError) as exc:
        raise RecipeError(f"{where} is not a valid regular expression ({exc})") from None
    if _nested_repeat(value):
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


def _dtype(value: Any, where: str) -> str:
    if value not in CAST_DTYPES:
        raise RecipeError(f"{where} must be one of {', '.join(CAST_DTYPES)}, got {_shown(value)}")
    return str(value)


def check_relative_path(raw: Any, where: str) -> str:
    """A relative POSIX path that stays inside its directory (no '..', no absolute, no '\\').

    Raises:
        RecipeError: the path is empty, absolute, escapes with '..', or has odd characters.
    """
    value = _str(raw, where)
    check_path(value, where, RecipeLimitError)
    if "\\" in value or _BAD_NAME_CHARS.search(value) or value.startswith("/") or ":" in value.split("/")[0]:
        raise RecipeError(f"{where} {_shown(value)} must be a relative path with '/' separators")
    parts = PurePosixPath(value).parts
    if any(p in ("..", ".") for p in value.split("/")) or not parts or str(PurePosixPath(*parts)) != value:
        raise RecipeError(f"{where} {_shown(value)} escapes its directory or is not normalized; use a plain relative path")
    return value


# --------------------------------------------------------------------------------------------
# inputs


@dataclass(frozen=True)
class InputRef:
    """One named input: an element pinned by content id, by record id once published.

    ``path`` (relative to an elements directory) is how a local, unpublished recipe finds its
    element; a publishable recipe has ``record`` on every input. An input of kind
    ``composition`` is a composition: ``content_id`` is the content id of the weights it
    assembles to, ``record`` its composition record, ``path`` a local recipe file.
    """

    name: str
    kind: str
    content_id: str
    record: str | None = None
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "content_id": self.content_id}
        if self.record:
            out["record"] = self.record
        if self.path:
            out["path"] = self.path
        return out


def _parse_input(name: str, data: Any) -> InputRef:
    where = f"inputs.{name[:40]}"
    if len(name.encode("utf-8", "surrogatepass")) > NAME_BYTES:
        raise _over(NAME_BYTES, f"the input name {name[:40]!r}…", len(name.encode("utf-8", "surrogatepass")))
    if not _INPUT_NAME.fullmatch(name):
        raise RecipeError(f"input name {_shown(name)} must be letters, digits and _ . - / (not starting with . - /)")
    r = _Reader(data, where)
    kind = r.get("kind")
    content_id = _hex32(r.required("content_id"), f"{where}.content_id")
    record = r.get("record")
    path = r.get("path")
    r.done()
    if kind is not None and kind not in KINDS:
        raise RecipeError(f"{where}.kind must be 'tensors', 'file' or 'composition', got {_shown(kind)}")
    if record is not None:
        record = _hex32(record, f"{where}.record")
    if path is not None:
        path = check_relative_path(path, f"{where}.path")
    if record is None and path is None:
        if kind == "composition":
            raise RecipeError(f"{where} needs 'record' (a published composition) or 'path' (a local recipe file)")
        raise RecipeError(f"{where} needs 'record' (a published element) or 'path' (a local element file)")
    return InputRef(name=name, kind=kind or "", content_id=content_id, record=record, path=path)


# --------------------------------------------------------------------------------------------
# selection and renames


@dataclass(frozen=True)
class Selection:
    """Which tensors of a source a step uses: globs and/or a regex (searched), minus excludes.

    Empty ``select`` and no ``match`` mean every tensor. Each glob and the regex must match at
    least one tensor, so a misspelled name is an error, not an empty result.
    """

    select: tuple[str, ...] = ()
    match: str | None = None
    exclude: tuple[str, ...] = ()

    @property
    def is_all(self) -> bool:
        return not self.select and self.match is None and not self.exclude

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.select:
            out["select"] = list(self.select)
        if self.match is not None:
            out["match"] = self.match
        if self.exclude:
            out["exclude"] = list(self.exclude)
        return out


def _parse_selection(r: _Reader, where: str) -> Selection:
    select = _str_list(r.get("select"), f"{where}.select")
    match = r.get("match")
    if match is not None:
        match = _regex(match, f"{where}.match")
    exclude = _str_list(r.get("exclude"), f"{where}.exclude")
    return Selection(select=select, match=match, exclude=exclude)


@dataclass(frozen=True)
class Rename:
    """A rename applied to tensor names in order: a prefix swap or a regex substitution."""

    kind: str  # "prefix" | "regex"
    pattern: str
    to: str

    def apply(self, name: str) -> str:
        if self.kind == "prefix":
            return self.to + name[len(self.pattern):] if name.startswith(self.pattern) else name
        return re.sub(self.pattern, self.to, name)

    def to_dict(self) -> dict[str, Any]:
        return {self.kind: self.pattern, "to": self.to}


def _parse_renames(value: Any, where: str) -> tuple[Rename, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RecipeError(f"{where} must be a list of {{prefix|regex, to}} objects")
    _count(value, RECIPE_STEPS, f"renames in {where}")
    out = []
    for i, item in enumerate(value):
        r = _Reader(item, f"{where}[{i}]")
        prefix, regex = r.get("prefix"), r.get("regex")
        to = r.required("to")
        r.done()
        if not isinstance(to, str):
            raise RecipeError(f"{where}[{i}].to must be a string")
        if (prefix is None) == (regex is None):
            raise RecipeError(f"{where}[{i}] needs exactly one of 'prefix' or 'regex'")
        if prefix is not None:
            out.append(Rename("prefix", _str(prefix, f"{where}[{i}].prefix"), to))
        else:
            pattern = _regex(regex, f"{where}[{i}].regex")
            if len(to) > REGEX_CHARS:
                raise _over(REGEX_CHARS, f"the replacement {where}[{i}].to", len(to))
            try:
                re.compile(pattern).sub(to, "")
            except (re.error, IndexError) as exc:
                raise RecipeError(f"{where}[{i}].to is not a valid replacement for its regex ({exc})") from None
            out.append(Rename("regex", pattern, to))
    return tuple(out)


def apply_renames(renames: Iterable[Rename], name: str) -> str:
    """``name`` through every rename in order.

    Raises:
        RecipeLimitError: a rename made the name longer than NAME_BYTES (each rename could
            otherwise multiply its length).
    """
    for rename in renames:
        renamed = rename.apply(name)
        size = len(renamed.encode("utf-8", "surrogatepass"))
        if size > NAME_BYTES:
            raise _over(NAME_BYTES, f"tensor {name[:40]!r} renamed by {rename.to_dict()} gives a name that", size)
        name = renamed
    return name


def _parse_sources(value: Any, where: str) -> tuple[str, ...]:
    names = _str_list(value, where)
    if not names:
        raise RecipeError(f"{where} must name at least one input")
    if len(set(names)) != len(names):
        raise RecipeError(f"{where} names an input twice")
    return names


# --------------------------------------------------------------------------------------------
# steps


@dataclass(frozen=True)
class _SelectFrom:
    """A step that selects tensors of a source (one input or the union of several), renamed."""

    source: tuple[str, ...]
    selection: Selection = Selection()
    rename: tuple[Rename, ...] = ()
    op = ""

    def to_dict(self) -> dict[str, Any]:
        out = {"op": self.op, "from": list(self.source), **self.selection.to_dict()}
        if self.rename:
            out["rename"] = [r.to_dict() for r in self.rename]
        return out


@dataclass(frozen=True)
class Take(_SelectFrom):
    """Add tensors from a source (one input or the union of several) to the output."""

    op = "take"


@dataclass(frozen=True)
class StackSlice:
    """Layers of one source, in the order given (mergekit ``layer_range`` is half-open)."""

    source: tuple[str, ...]
    layers: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"from": list(self.source)}
        layers = self.layers
        if len(layers) > 1 and all(b == a + 1 for a, b in zip(layers, layers[1:])):
            out["layer_range"] = [layers[0], layers[-1] + 1]
        else:
            out["layers"] = list(layers)
        return out


@dataclass(frozen=True)
class Stack:
    """Stack layer blocks from slices, renumbered consecutively from ``start``.

    ``template`` is a tensor-name prefix with ``{n}`` where the layer number goes, e.g.
    ``encoder.layer.{n}.``; layer ``i`` of a source is every tensor whose name starts with the
    template for ``n=i``.
    """

    template: str
    slices: tuple[StackSlice, ...]
    start: int = 0
    op = "stack"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "template": self.template, "slices": [s.to_dict() for s in self.slices]}
        if self.start:
            out["start"] = self.start
        return out

    def prefix(self, n: int) -> str:
        return self.template.replace("{n}", str(n))

    def layer_regex(self) -> re.Pattern[str]:
        head, tail = self.template.split("{n}")
        return re.compile(re.escape(head) + r"(0|[1-9][0-9]*)" + re.escape(tail))


@dataclass(frozen=True)
class Override(_SelectFrom):
    """Replace tensors already in the output with the ones a (delta) source contains."""

    op = "override"


@dataclass(frozen=True)
class WeightedSource:
    source: tuple[str, ...]
    weight: float

    def to_dict(self) -> dict[str, Any]:
        return {"from": list(self.source), "weight": self.weight}


@dataclass(frozen=True)
class Linear:
    """out = sum_i w_i * x_i over same-named tensors of every source (float64, in order)."""

    sources: tuple[WeightedSource, ...]
    selection: Selection = Selection()
    rename: tuple[Rename, ...] = ()
    normalize: bool = False
    dtype: str | None = None
    op = "linear"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "sources": [s.to_dict() for s in self.sources], **self.selection.to_dict()}
        if self.rename:
            out["rename"] = [r.to_dict() for r in self.rename]
        if self.normalize:
            out["normalize"] = True
        if self.dtype:
            out["dtype"] = self.dtype
        return out


@dataclass(frozen=True)
class TaskArithmetic:
    """out = base + sum_i w_i * (x_i - base) (float64, in order)."""

    base: tuple[str, ...]
    sources: tuple[WeightedSource, ...]
    selection: Selection = Selection()
    rename: tuple[Rename, ...] = ()
    dtype: str | None = None
    op = "task_arithmetic"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "op": self.op,
            "base": list(self.base),
            "sources": [s.to_dict() for s in self.sources],
            **self.selection.to_dict(),
        }
        if self.rename:
            out["rename"] = [r.to_dict() for r in self.rename]
        if self.dtype:
            out["dtype"] = self.dtype
        return out


@dataclass(frozen=True)
class LoraParams:
    """The PEFT LoRA fields that decide the merge (a subset of ``adapter_config.json``)."""

    r: int
    lora_alpha: float
    use_rslora: bool = False
    fan_in_fan_out: bool = False
    target_modules: tuple[str, ...] | str | None = None
    rank_pattern: tuple[tuple[str, int], ...] = ()
    alpha_pattern: tuple[tuple[str, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"r": self.r, "lora_alpha": self.lora_alpha}
        if self.use_rslora:
            out["use_rslora"] = True
        if self.fan_in_fan_out:
            out["fan_in_fan_out"] = True
        if self.target_modules is not None:
            out["target_modules"] = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        if self.rank_pattern:
            out["rank_pattern"] = dict(self.rank_pattern)
        if self.alpha_pattern:
            out["alpha_pattern"] = dict(self.alpha_pattern)
        return out

    @classmethod
    def from_peft_config(cls, data: Any, where: str) -> "LoraParams":
        """Read a PEFT ``adapter_config.json`` object; unsupported variants are refused."""
        if not isinstance(data, Mapping):
            raise RecipeError(f"{where} must be a JSON object (a PEFT adapter_config.json)")
        peft_type = data.get("peft_type", "LORA")
        if peft_type != "LORA":
            raise RecipeError(f"{where} is a {peft_type} adapter; only LORA adapters can be merged")
        if data.get("use_dora"):
            raise RecipeError(f"{where} is a DoRA adapter (use_dora); only plain LoRA can be merged")
        if data.get("bias", "none") not in ("none", None):
            raise RecipeError(f"{where} trains biases (bias={_shown(data.get('bias'))}); only bias='none' adapters can be merged")
        known = {"r", "lora_alpha", "use_rslora", "fan_in_fan_out", "target_modules", "rank_pattern", "alpha_pattern"}
        return cls._parse({k: v for k, v in data.items() if k in known and v is not None}, where)

    @classmethod
    def _parse(cls, data: Any, where: str) -> "LoraParams":
        r = _Reader(data, where)
        rank = _rank(r.required("r"), f"{where}.r")
        alpha = _number(r.required("lora_alpha"), f"{where}.lora_alpha")
        rslora = _bool(r.get("use_rslora", False), f"{where}.use_rslora")
        fifo = _bool(r.get("fan_in_fan_out", False), f"{where}.fan_in_fan_out")
        targets = r.get("target_modules")
        if isinstance(targets, str):
            targets = _regex(targets, f"{where}.target_modules") if targets != "all-linear" else targets
        elif targets is not None:
            targets = tuple(sorted(set(_str_list(targets, f"{where}.target_modules"))))
        rank_pattern = r.get("rank_pattern") or {}
        alpha_pattern = r.get("alpha_pattern") or {}
        r.done()
        if not isinstance(rank_pattern, Mapping) or not isinstance(alpha_pattern, Mapping):
            raise RecipeError(f"{where}.rank_pattern and alpha_pattern must be objects")
        for name, pattern in (("rank_pattern", rank_pattern), ("alpha_pattern", alpha_pattern)):
            _count(pattern, RECIPE_STEPS, f"entries of {where}.{name}")
            for key in pattern:  # each key is a regex over module names
                _regex(str(key), f"{where}.{name} key")
        ranks = tuple(sorted((str(k), _rank(v, f"{where}.rank_pattern.{k}")) for k, v in rank_pattern.items()))
        alphas = tuple(sorted((str(k), _number(v, f"{where}.alpha_pattern.{k}")) for k, v in alpha_pattern.items()))
        return cls(rank, alpha, rslora, fifo, targets, ranks, alphas)


def _rank(value: Any, where: str) -> int:
    rank = _int(value, where, minimum=1)
    if rank > LORA_RANK:
        raise _over(LORA_RANK, f"the LoRA rank {where}", rank)
    return rank


@dataclass(frozen=True)
class Lora:
    """Merge a PEFT LoRA adapter into tensors already in the output: W += scale * B @ A."""

    adapter: str
    config: str | None = None
    params: LoraParams | None = None
    strip_prefix: str = "base_model.model."
    rename: tuple[Rename, ...] = ()
    dtype: str | None = None
    op = "lora"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "adapter": self.adapter}
        if self.config:
            out["config"] = self.config
        if self.params:
            out["params"] = self.params.to_dict()
        if self.strip_prefix != "base_model.model.":
            out["strip_prefix"] = self.strip_prefix
        if self.rename:
            out["rename"] = [r.to_dict() for r in self.rename]
        if self.dtype:
            out["dtype"] = self.dtype
        return out


@dataclass(frozen=True)
class Cast:
    """Round floating-point tensors to another float dtype (round to nearest, ties to even)."""

    dtype: str
    selection: Selection = Selection()
    op = "cast"

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "dtype": self.dtype, **self.selection.to_dict()}


# --------------------------------------------------------------------------------------------
# mergekit's merge methods

_REQ = "required"
#: method -> (base: required|optional|none, min sources, max sources or None,
#:            per-source parameters {name: default or _REQ}, step parameters {name: default or _REQ}, random)
_GTA_PARAMS = {"int8_mask": False, "normalize": False, "rescale": False, "lambda": 1.0}


def _gta_method(normalize: bool, rescale: bool, extra: dict[str, Any], random: bool = False) -> tuple[Any, ...]:
    return ("required", 1, None, {"weight": _REQ, "density": 1.0, **extra},
            {**_GTA_PARAMS, "normalize": normalize, "rescale": rescale}, random)


MERGE_METHODS: dict[str, tuple[Any, ...]] = {
    "slerp": ("required", 1, 1, {}, {"t": _REQ}, False),
    "nuslerp": ("optional", 2, 2, {"weight": _REQ}, {"nuslerp_row_wise": False, "nuslerp_flatten": True}, False),
    "multislerp": ("optional", 1, None, {"weight": _REQ}, {"normalize_weights": True, "eps": 1e-8}, False),
    "karcher": ("none", 2, None, {}, {"max_iter": 10, "tol": 1e-5}, False),
    "ties": _gta_method(True, False, {}),
    "dare_ties": _gta_method(False, True, {}, True),
    "dare_linear": _gta_method(False, True, {}, True),
    "breadcrumbs": _gta_method(False, False, {"gamma": 0.01}),
    "breadcrumbs_ties": _gta_method(False, False, {"gamma": 0.01}),
    "della": _gta_method(True, True, {"epsilon": 0.15}, True),
    "della_linear": _gta_method(False, True, {"epsilon": 0.15}, True),
    "sce": ("required", 1, None, {}, {"int8_mask": False, "select_topk": 1.0}, False),
    "model_stock": ("required", 2, None, {}, {"filter_wise": False}, False),
    "nearswap": ("required", 1, 1, {}, {"t": _REQ}, False),
    "arcee_fusion": ("required", 1, 1, {}, {}, False),
    "ram": ("required", 1, None, {}, {"epsilon": 1e-5}, False),
    "ramplus_tl": ("required", 1, None, {}, {"r": 0.1, "alpha": 0.2, "epsilon": 1e-5}, False),
}
_BOOL_PARAMS = frozenset({"int8_mask", "normalize", "rescale", "nuslerp_row_wise", "nuslerp_flatten",
                          "normalize_weights", "filter_wise"})
_INT_PARAMS = {"max_iter": 1000}  # bounded: each iteration is a pass over the tensor


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple) and value and isinstance(value[0], tuple) and value[0] and value[0][0] in ("filter", "value"):
        return {k: _thaw(v) for k, v in value}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _parse_setting(name: str, value: Any, where: str, conditional: bool = True) -> Any:
    """One mergekit parameter setting: a scalar, a gradient (list of numbers, interpolated over
    the layers), or a list of {filter, value} conditionals (the first whose filter is a substring
    of the tensor name wins; no filter or '*' matches every tensor)."""
    if name in _BOOL_PARAMS:
        if isinstance(value, bool):
            return value
        if not (conditional and isinstance(value, list)):
            raise RecipeError(f"{where} must be true or false (or a list of {{filter, value}}), got {_shown(value)}")
    elif name in _INT_PARAMS:
        if not (conditional and isinstance(value, list)):
            number = _int(value, where)
            if number > _INT_PARAMS[name]:
                raise RecipeError(f"{where} is {number}; at most {_INT_PARAMS[name]}")
            return number
    elif not isinstance(value, list):
        return _number(value, where)
    if not isinstance(value, list) or not value:
        raise RecipeError(f"{where} must be a value, a gradient [v0, v1, …] or a list of {{filter, value}}")
    _count(value, RECIPE_STEPS, f"entries of {where}")
    if all(not isinstance(v, Mapping) for v in value):
        if name in _BOOL_PARAMS or name in _INT_PARAMS:
            raise RecipeError(f"{where}: {name} cannot be a gradient; give one value or {{filter, value}} entries")
        return [_number(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not conditional:
        raise RecipeError(f"{where}: a {{filter, value}} entry cannot hold another list of conditionals")
    out = []
    for i, item in enumerate(value):
        c = _Reader(item, f"{where}[{i}]")
        condition = c.get("filter")
        inner = _parse_setting(name, c.required("value"), f"{where}[{i}].value", conditional=False)
        c.done()
        entry: dict[str, Any] = {"value": inner}
        if condition is not None:
            entry["filter"] = _str(condition, f"{where}[{i}].filter")
        out.append(entry)
    return out


def evaluate_parameter(setting: Any, tensor: str, t: float) -> Any:
    """A setting's value for one tensor at layer position ``t`` in [0, 1] (mergekit's
    evaluate_setting: a gradient [v0 … vn-1] is interpolated linearly at t·(n-1)); None when no
    conditional matches."""
    if isinstance(setting, tuple):
        setting = _thaw(setting)
    if not isinstance(setting, list):
        return setting
    if all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in setting):
        scaled = t * (len(setting) - 1)
        i0 = int(scaled)
        i1 = min(len(setting) - 1, i0 + 1)
        frac = scaled - i0
        return (1 - frac) * setting[i0] + frac * setting[i1]
    for cond in setting:
        condition = cond.get("filter")
        if condition is None or condition == "*" or (tensor and condition in tensor):
            return evaluate_parameter(cond["value"], tensor, t)
    return None


def _is_gradient(setting: Any) -> bool:
    setting = _thaw(setting)
    if isinstance(setting, list):
        return any(isinstance(e, (int, float)) and not isinstance(e, bool) for e in setting) or any(
            isinstance(c, Mapping) and isinstance(c.get("value"), list) for c in setting)
    return False


@dataclass(frozen=True)
class MergeSource:
    """One model of a merge and its own parameters (weight, density, gamma, epsilon)."""

    source: tuple[str, ...]
    params: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"from": list(self.source), **{k: _thaw(v) for k, v in self.params}}


@dataclass(frozen=True)
class Merge:
    """A mergekit merge method (``op`` is its name) over same-named tensors of a base and sources."""

    op: str
    sources: tuple[MergeSource, ...]
    base: tuple[str, ...] | None = None
    parameters: tuple[tuple[str, Any], ...] = ()
    template: str | None = None
    seed: int | None = None
    selection: Selection = Selection()
    rename: tuple[Rename, ...] = ()
    dtype: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op}
        if self.base is not None:
            out["base"] = list(self.base)
        out["sources"] = [s.to_dict() for s in self.sources]
        if self.parameters:
            out["parameters"] = {k: _thaw(v) for k, v in self.parameters}
        if self.template is not None:
            out["template"] = self.template
        if self.seed is not None:
            out["seed"] = self.seed
        out.update(self.selection.to_dict())
        if self.rename:
            out["rename"] = [r.to_dict() for r in self.rename]
        if self.dtype:
            out["dtype"] = self.dtype
        return out

    @property
    def random(self) -> bool:
        return bool(MERGE_METHODS[self.op][5])

    def layer_regex(self) -> re.Pattern[str] | None:
        if self.template is None:
            return None
        head, tail = self.template.split("{n}")
        return re.compile(re.escape(head) + r"(0|[1-9][0-9]*)" + re.escape(tail))

    def settings(self, index: int | None) -> dict[str, Any]:
        """Step parameters (index None) or source ``index``'s parameters, step values as defaults."""
        base_mode, _lo, _hi, source_params, step_params, _random = MERGE_METHODS[self.op]
        if index is None:
            out = dict(step_params)
            out.update({k: v for k, v in self.parameters if k in step_params})
            return out
        out = dict(source_params)
        out.update({k: v for k, v in self.parameters if k in source_params})
        out.update(dict(self.sources[index].params))
        return out


def _template(value: Any, where: str) -> str:
    template = _str(value, where)
    if template.count("{n}") != 1 or "{" in template.replace("{n}", "") or "}" in template.replace("{n}", ""):
        raise RecipeError(f"{where} must contain '{{n}}' exactly once, e.g. 'model.layers.{{n}}.'")
    return template


def _parse_merge(op: str, r: _Reader, where: str) -> Merge:
    base_mode, lo, hi, source_params, step_params, random = MERGE_METHODS[op]
    raw_base = r.get("base")
    raw_sources = r.required("sources")
    raw_parameters = r.get("parameters") or {}
    template = r.get("template")
    seed = r.get("seed")
    selection = _parse_selection(r, where)
    rename = _parse_renames(r.get("rename"), f"{where}.rename")
    dtype = r.get("dtype")
    r.done()
    if base_mode == "none" and raw_base is not None:
        raise RecipeError(f"{where}: {op} takes no base; list every model in sources")
    if base_mode == "required" and raw_base is None:
        raise RecipeError(f"{where}: {op} needs 'base' (the model the others are merged onto)")
    base = _parse_sources(raw_base, f"{where}.base") if raw_base is not None else None
    if not isinstance(raw_sources, list) or not raw_sources:
        raise RecipeError(f"{where}.sources must be a non-empty list of {{from, …}} objects")
    _count(raw_sources, RECIPE_STEPS, f"sources in {where}")
    if len(raw_sources) < lo or (hi is not None and len(raw_sources) > hi):
        wanted = f"exactly {lo}" if lo == hi else f"at least {lo}"
        raise RecipeError(f"{where}: {op} takes {wanted} source(s) besides the base, got {len(raw_sources)}")
    if not isinstance(raw_parameters, Mapping):
        raise RecipeError(f"{where}.parameters must be an object")
    parameters = []
    for key, value in raw_parameters.items():
        if key not in step_params and key not in source_params:
            known = ", ".join(sorted({*step_params, *source_params})) or "none"
            raise RecipeError(f"{where}.parameters has unknown parameter {_shown(key)} for {op} (it takes: {known})")
        setting = _parse_setting(key, value, f"{where}.parameters.{key}")
        default = step_params.get(key, source_params.get(key))
        if setting != default:
            parameters.append((key, _freeze(setting)))
    for key, default in step_params.items():
        if default == _REQ and key not in raw_parameters:
            raise RecipeError(f"{where}: {op} needs parameters.{key}")
    sources = []
    for i, item in enumerate(raw_sources):
        sw = f"{where}.sources[{i}]"
        s = _Reader(item, sw)
        names = _parse_sources(s.required("from"), f"{sw}.from")
        own = []
        for key in sorted(set(s.data) - {"from"}):
            if key not in source_params:
                known = ", ".join(sorted(source_params)) or "none"
                raise RecipeError(f"{sw} has unknown parameter {_shown(key)} for {op} (a source takes: {known})")
            own.append((key, _freeze(_parse_setting(key, s.get(key), f"{sw}.{key}"))))
        s.done()
        for key, default in source_params.items():
            if default == _REQ and key not in dict(own) and key not in raw_parameters:
                raise RecipeError(f"{sw} needs '{key}' (or set it for every source in parameters)")
        sources.append(MergeSource(names, tuple(own)))
    if template is not None:
        template = _template(template, f"{where}.template")
    else:
        for key, value in [*parameters, *(p for src in sources for p in src.params)]:
            if _is_gradient(value):
                raise RecipeError(
                    f"{where}: {key} is a gradient over layers; set 'template' (like 'model.layers.{{n}}.') so layers can be found"
                )
    if random:
        seed = _int(seed if seed is not None else 0, f"{where}.seed")
        if seed >= 1 << 64:
            raise RecipeError(f"{where}.seed must be below 2**64")
    elif seed is not None:
        raise RecipeError(f"{where}.seed is only for the methods that drop at random ({', '.join(m for m, v in MERGE_METHODS.items() if v[5])})")
    return Merge(op, tuple(sources), base, tuple(sorted(parameters)), template, seed, selection, rename,
                 _dtype(dtype, f"{where}.dtype") if dtype else None)



@dataclass(frozen=True)
class RandomInit:
    """New tensors drawn from the counter stream (mergekit-moe's ``random`` / ``uniform_random``
    gate initialisations): one per layer of ``layers`` when ``name`` holds ``{n}``."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    distribution: str = "normal"
    scale: float | None = None
    seed: int = 0
    layers: tuple[int, ...] = ()
    op = "random_init"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                               "distribution": self.distribution, "seed": self.seed}
        if self.scale is not None:
            out["scale"] = self.scale
        if self.layers:
            out["layer_range"] = [self.layers[0], self.layers[-1] + 1]
        return out

    def names(self) -> list[str]:
        return [self.name.replace("{n}", str(n)) for n in self.layers] if self.layers else [self.name]

    @property
    def effective_scale(self) -> float:
        if self.scale is not None:
            return self.scale
        return 1.0 if self.distribution == "normal" else math.sqrt(1.0 / self.shape[-1])


def _parse_random_init(r: _Reader, where: str) -> RandomInit:
    name = _str(r.required("name"), f"{where}.name")
    shape = r.required("shape")
    dtype = _dtype(r.required("dtype"), f"{where}.dtype")
    distribution = r.get("distribution", "normal")
    scale = r.get("scale")
    seed = _int(r.get("seed", 0), f"{where}.seed")
    layer_range = r.get("layer_range")
    r.done()
    if distribution not in ("normal", "uniform"):
        raise RecipeError(f"{where}.distribution must be 'normal' (mergekit-moe's random) or 'uniform' (uniform_random)")
    if not isinstance(shape, list) or not shape or len(shape) > TENSOR_RANK:
        raise RecipeError(f"{where}.shape must be a non-empty list of dimensions")
    dims = tuple(_int(d, f"{where}.shape", minimum=1) for d in shape)
    if math.prod(dims) > 1 << 34:
        raise RecipeError(f"{where}.shape {list(dims)} holds more than 2**34 elements")
    if seed >= 1 << 64:
        raise RecipeError(f"{where}.seed must be below 2**64")
    if scale is not None:
        scale = _number(scale, f"{where}.scale")
    layers: tuple[int, ...] = ()
    if "{n}" in name:
        if not isinstance(layer_range, list) or len(layer_range) != 2:
            raise RecipeError(f"{where}: name {name!r} holds {{n}}, so it needs layer_range [start, end)")
        lo, hi = (_layer(v, f"{where}.layer_range", end=True) for v in layer_range)
        if hi <= lo:
            raise RecipeError(f"{where}.layer_range [{lo}, {hi}) is empty; the end is excluded")
        layers = tuple(range(lo, hi))
    elif layer_range is not None:
        raise RecipeError(f"{where}.layer_range needs a name with {{n}} where the layer number goes")
    return RandomInit(name, dims, dtype, distribution, scale, seed, layers)


Step = Take | Stack | Override | Linear | TaskArithmetic | Lora | Cast | Merge | RandomInit


def _parse_weighted(value: Any, where: str) -> tuple[WeightedSource, ...]:
    if not isinstance(value, list) or not value:
        raise RecipeError(f"{where} must be a non-empty list of {{from, weight}} objects")
    _count(value, RECIPE_STEPS, f"sources in {where}")
    out = []
    for i, item in enumerate(value):
        r = _Reader(item, f"{where}[{i}]")
        source = _parse_sources(r.required("from"), f"{where}[{i}].from")
        weight = _number(r.required("weight"), f"{where}[{i}].weight")
        r.done()
        out.append(WeightedSource(source, weight))
    return tuple(out)


def _parse_step(data: Any, where: str) -> Step:
    r = _Reader(data, where)
    op = r.required("op")
    if op in ("take", "override"):
        source = _parse_sources(r.required("from"), f"{where}.from")
        selection = _parse_selection(r, where)
        rename = _parse_renames(r.get("rename"), f"{where}.rename")
        r.done()
        return (Take if op == "take" else Override)(source, selection, rename)
    if op == "stack":
        template = _str(r.required("template"), f"{where}.template")
        if template.count("{n}") != 1 or "{" in template.replace("{n}", "") or "}" in template.replace("{n}", ""):
            raise RecipeError(f"{where}.template must contain '{{n}}' exactly once, e.g. 'encoder.layer.{{n}}.'")
        start = _layer(r.get("start", 0), f"{where}.start")
        raw_slices = r.required("slices")
        r.done()
        if not isinstance(raw_slices, list) or not raw_slices:
            raise RecipeError(f"{where}.slices must be a non-empty list")
        _count(raw_slices, RECIPE_STEPS, f"slices in {where}")
        slices = []
        for i, item in enumerate(raw_slices):
            sw = f"{where}.slices[{i}]"
            s = _Reader(item, sw)
            source = _parse_sources(s.required("from"), f"{sw}.from")
            layer_range, layers = s.get("layer_range"), s.get("layers")
            s.done()
            if (layer_range is None) == (layers is None):
                raise RecipeError(f"{sw} needs exactly one of 'layer_range' [start, end) or 'layers' [i, j, ...]")
            if layer_range is not None:
                if not isinstance(layer_range, list) or len(layer_range) != 2:
                    raise RecipeError(f"{sw}.layer_range must be [start, end) (end excluded, as in mergekit)")
                lo, hi = (_layer(v, f"{sw}.layer_range", end=True) for v in layer_range)
                if hi <= lo:
                    raise RecipeError(f"{sw}.layer_range [{lo}, {hi}) is empty; the end is excluded")
                picked = tuple(range(lo, hi))
            else:
                if not isinstance(layers, list) or not layers:
                    raise RecipeError(f"{sw}.layers must be a non-empty list of layer numbers")
                _count(layers, LAYER_NUMBER, f"layers in {sw}")
                picked = tuple(_layer(v, f"{sw}.layers") for v in layers)
                if len(set(picked)) != len(picked):
                    raise RecipeError(f"{sw}.layers repeats a layer")
            slices.append(StackSlice(source, picked))
        return Stack(template, tuple(slices), start)
    if op == "linear":
        sources = _parse_weighted(r.required("sources"), f"{where}.sources")
        selection = _parse_selection(r, where)
        rename = _parse_renames(r.get("rename"), f"{where}.rename")
        normalize = _bool(r.get("normalize", False), f"{where}.normalize")
        dtype = r.get("dtype")
        r.done()
        if normalize and sum(s.weight for s in sources) == 0:
            raise RecipeError(f"{where}: normalize needs weights that do not sum to 0")
        return Linear(sources, selection, rename, normalize, _dtype(dtype, f"{where}.dtype") if dtype else None)
    if op == "task_arithmetic":
        base = _parse_sources(r.required("base"), f"{where}.base")
        sources = _parse_weighted(r.required("sources"), f"{where}.sources")
        selection = _parse_selection(r, where)
        rename = _parse_renames(r.get("rename"), f"{where}.rename")
        dtype = r.get("dtype")
        r.done()
        return TaskArithmetic(base, sources, selection, rename, _dtype(dtype, f"{where}.dtype") if dtype else None)
    if op == "lora":
        adapter = _str(r.required("adapter"), f"{where}.adapter")
        config = r.get("config")
        params = r.get("params")
        strip_prefix = r.get("strip_prefix", "base_model.model.")
        rename = _parse_renames(r.get("rename"), f"{where}.rename")
        dtype = r.get("dtype")
        r.done()
        if (config is None) == (params is None):
            raise RecipeError(f"{where} needs exactly one of 'config' (an adapter_config.json input) or 'params'")
        if not isinstance(strip_prefix, str):
            raise RecipeError(f"{where}.strip_prefix must be a string")
        return Lora(
            adapter=adapter,
            config=_str(config, f"{where}.config") if config is not None else None,
            params=LoraParams._parse(params, f"{where}.params") if params is not None else None,
            strip_prefix=strip_prefix,
            rename=rename,
            dtype=_dtype(dtype, f"{where}.dtype") if dtype else None,
        )
    if op == "cast":
        dtype = _dtype(r.required("dtype"), f"{where}.dtype")
        selection = _parse_selection(r, where)
        r.done()
        return Cast(dtype, selection)
    if isinstance(op, str) and op in MERGE_METHODS:
        return _parse_merge(op, r, where)
    if op == "random_init":
        return _parse_random_init(r, where)
    raise RecipeError(
        f"{where}.op {_shown(op)} is unknown; use take, stack, override, linear, task_arithmetic, lora, cast, random_init "
        f"or a merge method ({', '.join(MERGE_METHODS)})"
    )


def _step_inputs(step: Step) -> Iterable[tuple[str, str]]:
    """(input name, kind it must have) for every input a step uses."""
    if isinstance(step, (Take, Override)):
        yield from ((n, "tensors") for n in step.source)
    elif isinstance(step, Stack):
        for piece in step.slices:
            yield from ((n, "tensors") for n in piece.source)
    elif isinstance(step, Linear):
        for s in step.sources:
            yield from ((n, "tensors") for n in s.source)
    elif isinstance(step, TaskArithmetic):
        yield from ((n, "tensors") for n in step.base)
        for s in step.sources:
            yield from ((n, "tensors") for n in s.source)
    elif isinstance(step, Merge):
        yield from ((n, "tensors") for n in step.base or ())
        for merged in step.sources:
            yield from ((n, "tensors") for n in merged.source)
    elif isinstance(step, Lora):
        yield step.adapter, "tensors"
        if step.config:
            yield step.config, "file"


# --------------------------------------------------------------------------------------------
# files and output


@dataclass(frozen=True)
class FileSpec:
    """A file of the output directory, copied from a file input (or, with ``file``, from that
    output file of a composition input), JSON-merge-patched if asked."""

    path: str
    source: str
    patch: Mapping[str, Any] | None = None
    file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "from": self.source}
        if self.file is not None:
            out["file"] = self.file
        if self.patch is not None:
            out["patch"] = json.loads(json.dumps(self.patch))
        return out


@dataclass(frozen=True)
class OutputTensor:
    """One row of the expected output tensor table (as in an element manifest)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "digest": self.digest}


@dataclass(frozen=True)
class OutputFile:
    path: str
    content_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "content_id": self.content_id}


@dataclass(frozen=True)
class OutputSpec:
    """What the assembly must produce, where known: weights content id, tensor table, files."""

    content_id: str | None = None
    tensors: tuple[OutputTensor, ...] = ()
    files: tuple[OutputFile, ...] = ()
    metadata: tuple[tuple[str, str], ...] = (("format", "pt"),)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.content_id:
            out["content_id"] = self.content_id
        if self.tensors:
            out["tensors"] = [t.to_dict() for t in self.tensors]
        if self.files:
            out["files"] = [f.to_dict() for f in self.files]
        if self.metadata != (("format", "pt"),):
            out["metadata"] = dict(self.metadata)
        return out

    def entries(self) -> list[TensorEntry]:
        """The output tensor table as tensor entries: what the output's content id commits to.

        Raises:
            InputError: a row whose dtype safetensors does not define.
        """
        return [TensorEntry(t.name, t.dtype, tuple(t.shape), parse_bytes32(t.digest), tensor_nbytes(t.dtype, t.shape))
                for t in self.tensors]


def _parse_output(data: Any) -> OutputSpec:
    if data is None:
        return OutputSpec()
    r = _Reader(data, "output")
    content_id = r.get("content_id")
    tensors = r.get("tensors") or []
    files = r.get("files") or []
    metadata = r.get("metadata")
    r.done()
    if content_id is not None:
        content_id = _hex32(content_id, "output.content_id")
    if not isinstance(tensors, list) or not isinstance(files, list):
        raise RecipeError("output.tensors and output.files must be lists")
    _count(tensors, TENSORS, "tensors in output.tensors")
    _count(files, RECIPE_FILES, "files in output.files")
    table = []
    for i, item in enumerate(tensors):
        w = f"output.tensors[{i}]"
        t = _Reader(item, w)
        name = _str(t.required("name"), f"{w}.name")
        if len(name.encode("utf-8", "surrogatepass")) > NAME_BYTES:
            raise _over(NAME_BYTES, f"the tensor name {w}.name", len(name.encode("utf-8", "surrogatepass")))
        dtype = _str(t.required("dtype"), f"{w}.dtype")
        shape = t.required("shape")
        digest = _hex32(t.required("digest"), f"{w}.digest")
        t.get("size")  # accepted (manifest rows carry it) but derived from dtype and shape
        t.done()
        if not isinstance(shape, list):
            raise RecipeError(f"{w}.shape must be a list of integers")
        if len(shape) > TENSOR_RANK:
            raise _over(TENSOR_RANK, f"the rank of {w}", len(shape))
        dims = tuple(_int(d, f"{w}.shape") for d in shape)
        if any(d >= 1 << 64 for d in dims):
            raise RecipeError(f"{w}.shape has a dimension over 2**64-1")
        table.append(OutputTensor(name, dtype, dims, digest))
    names = [t.name for t in table]
    if len(set(names)) != len(names):
        raise RecipeError("output.tensors names a tensor twice")
    out_files = []
    for i, item in enumerate(files):
        w = f"output.files[{i}]"
        f = _Reader(item, w)
        out_files.append(OutputFile(check_relative_path(f.required("path"), f"{w}.path"), _hex32(f.required("content_id"), f"{w}.content_id")))
        f.done()
    if metadata is None:
        meta: tuple[tuple[str, str], ...] = (("format", "pt"),)
    else:
        if not isinstance(metadata, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise RecipeError("output.metadata must be an object of strings (the safetensors __metadata__)")
        meta = tuple(sorted(metadata.items()))
    return OutputSpec(content_id, tuple(sorted(table, key=lambda t: t.name)), tuple(sorted(out_files, key=lambda f: f.path)), meta)


# --------------------------------------------------------------------------------------------
# the recipe


@dataclass(frozen=True)
class Recipe:
    """A parsed, validated ``elements.recipe/v1`` document."""

    inputs: Mapping[str, InputRef]
    steps: tuple[Step, ...]
    files: tuple[FileSpec, ...] = ()
    output: OutputSpec = field(default_factory=OutputSpec)
    name: str | None = None
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The normalized document (defaults omitted), ready for :func:`canonical_json`."""
        out: dict[str, Any] = {
            "format": FORMAT,
            "inputs": {name: ref.to_dict() for name, ref in sorted(self.inputs.items())},
            "steps": [s.to_dict() for s in self.steps],
        }
        if self.files:
            out["files"] = [f.to_dict() for f in self.files]
        output = self.output.to_dict()
        if output:
            out["output"] = output
        if self.name:
            out["name"] = self.name
        if self.description:
            out["description"] = self.description
        return out

    def canonical_json(self) -> bytes:
        """The bytes that are hashed, stored on IPFS and published."""
        return canonical_json(self.to_dict())

    def content_id(self) -> str:
        """The content id of the canonical recipe document (a file content id of its bytes)."""
        return str(bytes_content_id(self.canonical_json()))

    @property
    def publishable(self) -> bool:
        """True when every input is pinned by a record id."""
        return all(ref.record for ref in self.inputs.values())

    def with_output(self, output: OutputSpec) -> "Recipe":
        return replace(self, output=output)


def parse_recipe(data: Any) -> Recipe:
    """Validate a recipe document (a dict from JSON or YAML) into a :class:`Recipe`.

    Raises:
        RecipeError: unknown format, unknown keys, a step naming a missing input, an input used
            both as tensors and as a file, a path that escapes, a duplicate output file.
    """
    r = _Reader(data, "recipe")
    fmt = r.required("format")
    if fmt != FORMAT:
        raise RecipeError(f"recipe format is {_shown(fmt)}; this version reads {FORMAT!r}")
    raw_inputs = r.required("inputs")
    raw_steps = r.get("steps") or []
    raw_files = r.get("files") or []
    output = _parse_output(r.get("output"))
    name = r.get("name")
    description = r.get("description")
    r.done()
    if name is not None:
        name = _str(name, "name")
    if description is not None and not isinstance(description, str):
        raise RecipeError("description must be a string")
    if not isinstance(raw_inputs, Mapping) or not raw_inputs:
        raise RecipeError("recipe.inputs must be a non-empty object of named inputs")
    _count(raw_inputs, RECIPE_INPUTS, "inputs in recipe.inputs")
    inputs = {str(k): _parse_input(str(k), v) for k, v in raw_inputs.items()}
    if not isinstance(raw_steps, list) or not isinstance(raw_files, list):
        raise RecipeError("recipe.steps and recipe.files must be lists")
    _count(raw_steps, RECIPE_STEPS, "steps in recipe.steps")
    _count(raw_files, RECIPE_FILES, "files in recipe.files")
    steps = tuple(_parse_step(s, f"steps[{i}]") for i, s in enumerate(raw_steps))
    files = []
    for i, item in enumerate(raw_files):
        w = f"files[{i}]"
        f = _Reader(item, w)
        path = check_relative_path(f.required("path"), f"{w}.path")
        source = _str(f.required("from"), f"{w}.from")
        patch = f.get("patch")
        nested_file = f.get("file")
        f.done()
        if patch is not None:
            if not isinstance(patch, Mapping):
                raise RecipeError(f"{w}.patch must be an object (a JSON merge patch)")
            _check_finite(patch, f"{w}.patch")
        if nested_file is not None:
            nested_file = check_relative_path(nested_file, f"{w}.file")
        files.append(FileSpec(path, source, patch, nested_file))
    paths = [f.path for f in files]
    if len(set(paths)) != len(paths):
        raise RecipeError("recipe.files writes the same path twice")
    written = set(paths)
    for other in paths:
        if other in RESERVED_OUTPUT_NAMES or _SHARD_NAME.fullmatch(other):
            raise RecipeError(f"files path {other!r} is reserved for the assembled weights or provenance")
        parts = other.split("/")
        for cut in range(1, len(parts)):  # every directory above it (linear, not pairwise)
            path = "/".join(parts[:cut])
            if path in written:
                raise RecipeError(f"files path {path!r} is both a file and a directory ({other!r})")
    if not steps:
        raise RecipeError("recipe.steps is empty; a composition needs at least one tensor step")

    uses: dict[str, str] = {}
    used: set[str] = set()

    def use(name: str, kind: str, where: str, nested_file: str | None = None) -> None:
        if name not in inputs:
            known = ", ".join(sorted(inputs)[:8]) + (" ..." if len(inputs) > 8 else "")
            raise RecipeError(f"{where} names input {name!r}, which recipe.inputs does not define (inputs: {known})")
        used.add(name)
        if inputs[name].kind == "composition":
            # A composition gives tensors (its output table) and files (its output files, by path).
            if kind == "file" and nested_file is None:
                raise RecipeError(
                    f"{where} uses composition input {name!r} as a file; name one of its output files "
                    f"({{path: …, from: {name}, file: config.json}}), in files only"
                )
            return
        if nested_file is not None:
            raise RecipeError(f"{where}.file names a file of input {name!r}, which is not a composition (declare it kind: composition)")
        if uses.setdefault(name, kind) != kind:
            raise RecipeError(f"input {name!r} is used both as tensors and as a file; use two inputs")

    for i, step in enumerate(steps):
        for input_name, kind in _step_inputs(step):
            use(input_name, kind, f"steps[{i}]")
    for i, spec in enumerate(files):
        use(spec.source, "file", f"files[{i}]", spec.file)
    for input_name, ref in list(inputs.items()):
        if input_name not in used:
            raise RecipeError(f"input {input_name!r} is not used by any step or file; remove it")
        if ref.kind == "composition":
            continue
        kind = uses[input_name]
        if ref.kind and ref.kind != kind:
            raise RecipeError(f"input {input_name!r} is declared kind {ref.kind!r} but used as {kind!r}")
        inputs[input_name] = replace(ref, kind=kind)
    return Recipe(inputs=inputs, steps=steps, files=tuple(files), output=output, name=name, description=description)


RESERVED_OUTPUT_NAMES = frozenset({"model.safetensors", "model.safetensors.index.json", "elements-provenance.json"})
_SHARD_NAME = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")


def load_recipe(source: str | Path | bytes | Mapping[str, Any]) -> Recipe:
    """Read a recipe from a path (JSON or YAML), from text/bytes, or from a dict.

    Raises:
        RecipeError: unreadable, not JSON/YAML, or not a valid recipe.
    """
    if isinstance(source, Mapping):
        return parse_recipe(source)
    what = "the recipe"
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and not source.lstrip().startswith("{")):
        path = Path(source)
        what = f"the recipe {path}"
        try:
            size = path.stat().st_size
            if size > DOCUMENT_BYTES:
                raise _over(DOCUMENT_BYTES, what, size)
            text = path.read_bytes()
        except OSError as exc:
            raise RecipeError(f"cannot read recipe {path}: {exc.strerror or exc}") from None
    else:
        text = source.encode("utf-8", "surrogatepass") if isinstance(source, str) else bytes(source)
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        raise RecipeError("recipe is not UTF-8 text") from None
    try:
        try:
            data = loads_json(text, what=what, max_bytes=DOCUMENT_BYTES)
        except NotJSON:
            try:
                data = loads_yaml(decoded, what=what, max_bytes=DOCUMENT_BYTES)
            except NotJSON as exc:
                raise RecipeError(f"recipe is neither JSON nor YAML ({exc})") from None
    except LimitExceeded as exc:
        raise _over(exc.limit, exc.what, exc.value) from None
    return parse_recipe(data)


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
        inputs[name] = InputRef(name=name, kind=ref.kind, content_id=ref.content_id, record=_hex32(record, f"record id of {name}"))
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
