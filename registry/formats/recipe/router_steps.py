"""The recipe steps that make new tensors for a mixture of experts' routers: ``random_init`` (drawn
from the counter stream) and ``prompt_gate`` (from prompts' token embeddings, as token ids)."""

from __future__ import annotations

import math
from typing import Any

from ...limits import RECIPE_STEPS, TENSOR_RANK
from .steps import GatePrompts, PromptGate, RandomInit
from .values import Reader, RecipeError, as_dtype, as_int, as_layer, as_number, as_str, check_count

__all__ = ["parse_random_init", "parse_prompt_gate", "PROMPT_TOKENS"]


def parse_random_init(r: Reader, where: str) -> RandomInit:
    """A ``random_init`` step (its ``op`` already read)."""
    name = as_str(r.required("name"), f"{where}.name")
    shape = r.required("shape")
    dtype = as_dtype(r.required("dtype"), f"{where}.dtype")
    distribution = r.get("distribution", "normal")
    scale = r.get("scale")
    seed = as_int(r.get("seed", 0), f"{where}.seed")
    layer_range = r.get("layer_range")
    r.done()
    if distribution not in ("normal", "uniform"):
        raise RecipeError(f"{where}.distribution must be 'normal' (mergekit-moe's random) or 'uniform' (uniform_random)")
    if not isinstance(shape, list) or not shape or len(shape) > TENSOR_RANK:
        raise RecipeError(f"{where}.shape must be a non-empty list of dimensions")
    dims = tuple(as_int(d, f"{where}.shape", minimum=1) for d in shape)
    if math.prod(dims) > 1 << 34:
        raise RecipeError(f"{where}.shape {list(dims)} holds more than 2**34 elements")
    if seed >= 1 << 64:
        raise RecipeError(f"{where}.seed must be below 2**64")
    if scale is not None:
        scale = as_number(scale, f"{where}.scale")
    layers = _named_layers(name, layer_range, where)
    return RandomInit(name, dims, dtype, distribution, scale, seed, layers)


#: token ids a prompt_gate step may hold in all (the embedding rows it sums)
PROMPT_TOKENS = 1 << 16


def _token_lists(value: Any, where: str, required: bool) -> tuple[tuple[int, ...], ...]:
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not value or not all(isinstance(p, list) and p for p in value):
        raise RecipeError(f"{where} must be a non-empty list of prompts, each a non-empty list of token ids")
    return tuple(tuple(as_int(t, f"{where}[{i}]", minimum=0) for t in p) for i, p in enumerate(value))


def parse_prompt_gate(r: Reader, where: str, source: tuple[str, ...]) -> PromptGate:
    """A ``prompt_gate`` step (its ``op`` and ``from`` already read)."""
    embedding = as_str(r.required("embedding"), f"{where}.embedding")
    name = as_str(r.required("name"), f"{where}.name")
    raw_experts = r.required("experts")
    dtype = as_dtype(r.required("dtype"), f"{where}.dtype")
    layer_range = r.get("layer_range")
    r.done()
    if not isinstance(raw_experts, list) or not raw_experts:
        raise RecipeError(f"{where}.experts must be a non-empty list of {{positive: [[token ids]], negative: …}}")
    check_count(raw_experts, RECIPE_STEPS, f"experts in {where}")
    experts = []
    for i, item in enumerate(raw_experts):
        e = Reader(item, f"{where}.experts[{i}]")
        positive = _token_lists(e.required("positive"), f"{where}.experts[{i}].positive", True)
        negative = _token_lists(e.get("negative"), f"{where}.experts[{i}].negative", False)
        e.done()
        experts.append(GatePrompts(positive, negative))
    tokens = sum(len(p) for x in experts for p in x.positive + x.negative)
    if tokens > PROMPT_TOKENS:
        raise RecipeError(f"{where} holds {tokens} token ids, more than {PROMPT_TOKENS}; use shorter prompts")
    layers = _named_layers(name, layer_range, where)
    return PromptGate(source, embedding, name, tuple(experts), dtype, layers)


def _named_layers(name: str, layer_range: Any, where: str) -> tuple[int, ...]:
    """The layers a step's ``{n}`` name stands for (``layer_range`` [start, end)); none without ``{n}``."""
    if "{n}" not in name:
        if layer_range is not None:
            raise RecipeError(f"{where}.layer_range needs a name with {{n}} where the layer number goes")
        return ()
    if not isinstance(layer_range, list) or len(layer_range) != 2:
        raise RecipeError(f"{where}: name {name!r} holds {{n}}, so it needs layer_range [start, end)")
    lo, hi = (as_layer(v, f"{where}.layer_range", end=True) for v in layer_range)
    if hi <= lo:
        raise RecipeError(f"{where}.layer_range [{lo}, {hi}) is empty; the end is excluded")
    return tuple(range(lo, hi))
