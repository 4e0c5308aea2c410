"""mergekit's merge methods as recipe steps: which base, how many sources and which parameters each
method takes (:data:`MERGE_METHODS`), and the parameter settings (scalars, gradients over layers,
``{filter, value}`` conditionals) read and evaluated as mergekit does."""

from __future__ import annotations

from typing import Any, Mapping

from ...limits import RECIPE_STEPS
from .values import Reader, RecipeError, as_int, as_number, as_str, check_count, shown

__all__ = ["REQUIRED", "MERGE_METHODS", "freeze", "thaw", "parse_setting", "evaluate_parameter", "is_gradient"]

REQUIRED = "required"
#: method -> (base: required|optional|none, min sources, max sources or None,
#:            per-source parameters {name: default or REQUIRED}, step parameters {name: default or REQUIRED}, random)
_GTA_PARAMS = {"int8_mask": False, "normalize": False, "rescale": False, "lambda": 1.0}


def _gta_method(normalize: bool, rescale: bool, extra: dict[str, Any], random: bool = False) -> tuple[Any, ...]:
    return ("required", 1, None, {"weight": REQUIRED, "density": 1.0, **extra},
            {**_GTA_PARAMS, "normalize": normalize, "rescale": rescale}, random)


MERGE_METHODS: dict[str, tuple[Any, ...]] = {
    "slerp": ("required", 1, 1, {}, {"t": REQUIRED}, False),
    "nuslerp": ("optional", 2, 2, {"weight": REQUIRED}, {"nuslerp_row_wise": False, "nuslerp_flatten": True}, False),
    "multislerp": ("optional", 1, None, {"weight": REQUIRED}, {"normalize_weights": True, "eps": 1e-8}, False),
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
    "nearswap": ("required", 1, 1, {}, {"t": REQUIRED}, False),
    "arcee_fusion": ("required", 1, 1, {}, {}, False),
    "ram": ("required", 1, None, {}, {"epsilon": 1e-5}, False),
    "ramplus_tl": ("required", 1, None, {}, {"r": 0.1, "alpha": 0.2, "epsilon": 1e-5}, False),
}
_BOOL_PARAMS = frozenset({"int8_mask", "normalize", "rescale", "nuslerp_row_wise", "nuslerp_flatten",
                          "normalize_weights", "filter_wise"})
_INT_PARAMS = {"max_iter": 1000}  # bounded: each iteration is a pass over the tensor


def freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    return value


def thaw(value: Any) -> Any:
    if isinstance(value, tuple) and value and isinstance(value[0], tuple) and value[0] and value[0][0] in ("filter", "value"):
        return {k: thaw(v) for k, v in value}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def parse_setting(name: str, value: Any, where: str, conditional: bool = True) -> Any:
    """One mergekit parameter setting: a scalar, a gradient (list of numbers, interpolated over
    the layers), or a list of {filter, value} conditionals (the first whose filter is a substring
    of the tensor name wins; no filter or '*' matches every tensor)."""
    if name in _BOOL_PARAMS:
        if isinstance(value, bool):
            return value
        if not (conditional and isinstance(value, list)):
            raise RecipeError(f"{where} must be true or false (or a list of {{filter, value}}), got {shown(value)}")
    elif name in _INT_PARAMS:
        if not (conditional and isinstance(value, list)):
            number = as_int(value, where)
            if number > _INT_PARAMS[name]:
                raise RecipeError(f"{where} is {number}; at most {_INT_PARAMS[name]}")
            return number
    elif not isinstance(value, list):
        return as_number(value, where)
    if not isinstance(value, list) or not value:
        raise RecipeError(f"{where} must be a value, a gradient [v0, v1, …] or a list of {{filter, value}}")
    check_count(value, RECIPE_STEPS, f"entries of {where}")
    if all(not isinstance(v, Mapping) for v in value):
        if name in _BOOL_PARAMS or name in _INT_PARAMS:
            raise RecipeError(f"{where}: {name} cannot be a gradient; give one value or {{filter, value}} entries")
        return [as_number(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not conditional:
        raise RecipeError(f"{where}: a {{filter, value}} entry cannot hold another list of conditionals")
    out = []
    for i, item in enumerate(value):
        c = Reader(item, f"{where}[{i}]")
        condition = c.get("filter")
        inner = parse_setting(name, c.required("value"), f"{where}[{i}].value", conditional=False)
        c.done()
        entry: dict[str, Any] = {"value": inner}
        if condition is not None:
            entry["filter"] = as_str(condition, f"{where}[{i}].filter")
        out.append(entry)
    return out


def evaluate_parameter(setting: Any, tensor: str, t: float) -> Any:
    """A setting's value for one tensor at layer position ``t`` in [0, 1] (mergekit's
    evaluate_setting: a gradient [v0 … vn-1] is interpolated linearly at t·(n-1)); None when no
    conditional matches."""
    if isinstance(setting, tuple):
        setting = thaw(setting)
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


def is_gradient(setting: Any) -> bool:
    setting = thaw(setting)
    if isinstance(setting, list):
        return any(isinstance(e, (int, float)) and not isinstance(e, bool) for e in setting) or any(
            isinstance(c, Mapping) and isinstance(c.get("value"), list) for c in setting)
    return False
