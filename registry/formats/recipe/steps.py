"""The tensor steps of a recipe (take, stack, override, linear, task_arithmetic, lora, cast, the
mergekit merge methods, random_init, prompt_gate), with the selections and renames they apply: each normalizes
to the dict of its canonical form (defaults omitted)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ...limits import LORA_RANK, NAME_BYTES, RECIPE_STEPS
from .merge_params import MERGE_METHODS, thaw
from .values import (
    Reader,
    RecipeError,
    as_bool,
    as_int,
    as_number,
    as_regex,
    as_str_list,
    check_count,
    over_limit,
    shown,
)

__all__ = [
    "GatePrompts",
    "PromptGate",
    "Selection",
    "Rename",
    "apply_renames",
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
    "Step",
]


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
            raise over_limit(NAME_BYTES, f"tensor {name[:40]!r} renamed by {rename.to_dict()} gives a name that", size)
        name = renamed
    return name


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
            raise RecipeError(f"{where} trains biases (bias={shown(data.get('bias'))}); only bias='none' adapters can be merged")
        known = {"r", "lora_alpha", "use_rslora", "fan_in_fan_out", "target_modules", "rank_pattern", "alpha_pattern"}
        return cls.from_params({k: v for k, v in data.items() if k in known and v is not None}, where)

    @classmethod
    def from_params(cls, data: Any, where: str) -> "LoraParams":
        r = Reader(data, where)
        rank = _rank(r.required("r"), f"{where}.r")
        alpha = as_number(r.required("lora_alpha"), f"{where}.lora_alpha")
        rslora = as_bool(r.get("use_rslora", False), f"{where}.use_rslora")
        fifo = as_bool(r.get("fan_in_fan_out", False), f"{where}.fan_in_fan_out")
        targets = r.get("target_modules")
        if isinstance(targets, str):
            targets = as_regex(targets, f"{where}.target_modules") if targets != "all-linear" else targets
        elif targets is not None:
            targets = tuple(sorted(set(as_str_list(targets, f"{where}.target_modules"))))
        rank_pattern = r.get("rank_pattern") or {}
        alpha_pattern = r.get("alpha_pattern") or {}
        r.done()
        if not isinstance(rank_pattern, Mapping) or not isinstance(alpha_pattern, Mapping):
            raise RecipeError(f"{where}.rank_pattern and alpha_pattern must be objects")
        for name, pattern in (("rank_pattern", rank_pattern), ("alpha_pattern", alpha_pattern)):
            check_count(pattern, RECIPE_STEPS, f"entries of {where}.{name}")
            for key in pattern:  # each key is a regex over module names
                as_regex(str(key), f"{where}.{name} key")
        ranks = tuple(sorted((str(k), _rank(v, f"{where}.rank_pattern.{k}")) for k, v in rank_pattern.items()))
        alphas = tuple(sorted((str(k), as_number(v, f"{where}.alpha_pattern.{k}")) for k, v in alpha_pattern.items()))
        return cls(rank, alpha, rslora, fifo, targets, ranks, alphas)


def _rank(value: Any, where: str) -> int:
    rank = as_int(value, where, minimum=1)
    if rank > LORA_RANK:
        raise over_limit(LORA_RANK, f"the LoRA rank {where}", rank)
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


@dataclass(frozen=True)
class MergeSource:
    """One model of a merge and its own parameters (weight, density, gamma, epsilon)."""

    source: tuple[str, ...]
    params: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"from": list(self.source), **{k: thaw(v) for k, v in self.params}}


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
            out["parameters"] = {k: thaw(v) for k, v in self.parameters}
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


@dataclass(frozen=True)
class GatePrompts:
    """One expert's prompts as token ids (each prompt a list, the tokenizer's BOS first if it has one)."""

    positive: tuple[tuple[int, ...], ...]
    negative: tuple[tuple[int, ...], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"positive": [list(p) for p in self.positive]}
        if self.negative:
            out["negative"] = [list(p) for p in self.negative]
        return out


@dataclass(frozen=True)
class PromptGate:
    """Router weights from the prompts' token embeddings (mergekit-moe's ``cheap_embed``): row j is
    expert j's normalized sum of the embedding rows of its positive prompts' tokens (minus the
    negative prompts', normalized again), the same in every layer of ``layers``."""

    source: tuple[str, ...]
    embedding: str
    name: str
    experts: tuple[GatePrompts, ...]
    dtype: str
    layers: tuple[int, ...] = ()
    op = "prompt_gate"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "from": list(self.source), "embedding": self.embedding, "name": self.name,
                               "experts": [e.to_dict() for e in self.experts], "dtype": self.dtype}
        if self.layers:
            out["layer_range"] = [self.layers[0], self.layers[-1] + 1]
        return out

    def names(self) -> list[str]:
        return [self.name.replace("{n}", str(n)) for n in self.layers] if self.layers else [self.name]


Step = Take | Stack | Override | Linear | TaskArithmetic | Lora | Cast | Merge | RandomInit | PromptGate
