"""mergekit configs as they are: a mergekit YAML turned into an ``elements.recipe/v1`` document.

A mergekit config names models by path or hub id; Elements pins every input by content id, so a
**model map** says what each name is: ``{name: <recipe input>}`` where the input is what a recipe's
``inputs`` holds (``{content_id, record}`` or ``{content_id, path}``; ``kind: composition`` for a
published model, whose output tensors are the model's). Every mergekit field Elements supports is
carried over; any other is refused by name, never ignored:

- ``merge_method``: ``linear`` (mergekit's ``normalize`` default, true, is kept), ``task_arithmetic``,
  ``passthrough`` (with ``slices``: a ``stack`` of their layer ranges plus the first slice's
  non-layer tensors) and every other method (a merge step of that name,
  :mod:`registry.compose.merges`), with ``models`` or with ``slices`` (one merge step per slice,
  its layers renumbered after the previous slices, plus one for the tensors outside the layers);
- ``models[].model`` / ``.parameters``, ``base_model``, ``parameters`` (gradients and filters as
  they are), ``dtype`` / ``out_dtype`` (the output dtype: Elements always computes in float64).

Refused: sources of one slice with different layer ranges, ``modules``, ``tokenizer_source``,
``tokenizer``, ``chat_template`` (the output's files are the recipe's ``files``: add them to the
converted recipe), model references with ``+lora`` or a revision the map does not name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping

from ..limits import DOCUMENT_BYTES, LAYER_NUMBER, LimitExceededError, NotJSONError, loads_json, loads_yaml, read_bounded
from .recipe import MERGE_METHODS, Recipe, RecipeError, over_limit as _over, parse_recipe

__all__ = ["recipe_from_mergekit", "mergekit_document", "load_mergekit", "MERGEKIT_DTYPES"]

MERGEKIT_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "fp32": "F32", "fp16": "F16", "bf16": "BF16"}
_TOP_KEYS = {"merge_method", "models", "base_model", "parameters", "dtype", "out_dtype", "slices",
             "modules", "tokenizer_source", "tokenizer", "chat_template", "name", "description"}
_UNSUPPORTED = {
    "modules": "per-module merges are not supported; write one recipe step per module",
    "tokenizer_source": "the output's tokenizer files come from the recipe's files; add them to the converted recipe",
    "tokenizer": "the output's tokenizer files come from the recipe's files; add them to the converted recipe",
    "chat_template": "the output's files come from the recipe's files; patch tokenizer_config.json there",
}


def _where(key: str) -> str:
    return f"mergekit config: {key}"


def _model_name(value: Any, where: str) -> str:
    if isinstance(value, Mapping):
        value = value.get("model", value)
    if not isinstance(value, str) or not value:
        raise RecipeError(f"{where} must be a model name (a string), got {value!r:.80}")
    return value


def _parameters(value: Any, where: str) -> dict[str, Any]:
    """A ``parameters`` mapping (absent: none); a config is hand-written, so anything else is named."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RecipeError(f"{where} must be a mapping of parameter names to values, got {value!r:.80}")
    return dict(value)


def _names(keys: Any) -> str:
    """Keys for a message, sorted (a YAML config may mix strings with numbers, which do not sort together)."""
    return ", ".join(sorted(map(str, keys)))


def recipe_from_mergekit(config: Any, models: Mapping[str, Any], template: str = "model.layers.{n}.") -> dict[str, Any]:
    """The ``elements.recipe/v1`` document equivalent to a mergekit config (validated by
    :func:`registry.formats.recipe.parse_recipe` before it is returned).

    Raises:
        RecipeError: a field Elements does not support (by name), a model the map does not name,
            or anything the resulting recipe refuses.
    """
    if not isinstance(template, str) or template.count("{n}") != 1 or "{" in template.replace("{n}", "") or "}" in template.replace("{n}", ""):
        # the recipe's rule for a stack template; the layer number is put in by replacement, never
        # str.format (a '{x}' or '{n:>99999999999}' in a user's --mergekit-template is text, not code)
        raise RecipeError(f"the mergekit template {template!r:.80} (--mergekit-template) must contain '{{n}}' exactly once, e.g. 'model.layers.{{n}}.'")
    if not isinstance(config, Mapping):
        raise RecipeError("a mergekit config must be a mapping (merge_method, models, …)")
    unknown = set(config) - _TOP_KEYS
    if unknown:
        raise RecipeError(f"mergekit config has field(s) {_names(unknown)} that Elements does not know; remove them")
    for key, why in _UNSUPPORTED.items():
        if config.get(key) is not None:
            raise RecipeError(f"{_where(key)} is not supported: {why}")
    method = config.get("merge_method")
    if not isinstance(method, str):
        raise RecipeError(f"{_where('merge_method')} is required (linear, slerp, ties, …)")
    if not isinstance(models, Mapping):
        raise RecipeError("the model map must map each mergekit model name to a recipe input ({content_id, record|path})")
    inputs: dict[str, Any] = {}
    names: dict[str, str] = {}

    def use(name: str, where: str) -> str:
        if name not in models:
            known = _names(list(models)[:8]) or "none"
            raise RecipeError(f"{where} names model {name!r}, which the model map does not (it maps: {known}); add it")
        if name not in names:
            input_name = f"m{len(names)}"
            names[name] = input_name
            inputs[input_name] = models[name]
        return names[name]

    dtype = config.get("out_dtype") or config.get("dtype")
    out_dtype = None
    if dtype is not None:
        if not isinstance(dtype, str) or dtype not in MERGEKIT_DTYPES:
            raise RecipeError(f"{_where('dtype')} {dtype!r} is not one of {', '.join(MERGEKIT_DTYPES)}")
        out_dtype = MERGEKIT_DTYPES[dtype]
    parameters = _parameters(config.get("parameters"), _where("parameters"))
    base_name = config.get("base_model")
    if base_name is not None:
        base_name = _model_name(base_name, _where("base_model"))
    steps: list[dict[str, Any]] = []
    if config.get("slices") is not None:
        if config.get("models") is not None:
            raise RecipeError(f"{_where('slices')} and models cannot both be given; keep one")
        slices = config["slices"]
        if not isinstance(slices, list) or not slices:
            raise RecipeError(f"{_where('slices')} must be a non-empty list")
        if method == "passthrough":
            if parameters:
                raise RecipeError(f"{_where('slices')}: passthrough takes slices only (no parameters)")
            steps.extend(_passthrough_steps(slices, use, template))
        else:
            steps.extend(_sliced_merge_steps(method, slices, base_name, parameters, use, template, out_dtype))
    else:
        entries = config.get("models")
        if not isinstance(entries, list) or not entries:
            raise RecipeError(f"{_where('models')} must be a non-empty list of {{model, parameters}}")
        if _baseless(method):  # base_model is then only one of the models, as in mergekit
            listed = {_model_name(e, "models") for e in entries}
            if base_name is not None and base_name not in listed:
                raise RecipeError(f"{_where('base_model')}: {method} takes no base; list {base_name!r} in models or remove base_model")
            base_name = None
        base = use(base_name, "base_model") if base_name is not None else None
        sources = []
        for i, entry in enumerate(entries):
            if isinstance(entry, Mapping):
                extra = set(entry) - {"model", "parameters"}
                if extra:
                    raise RecipeError(f"{_where(f'models[{i}]')} has field(s) {_names(extra)} that Elements does not support")
            name = _model_name(entry, f"models[{i}].model")
            own = _parameters(entry.get("parameters"), _where(f"models[{i}].parameters")) if isinstance(entry, Mapping) else {}
            if name == base_name:
                if own:
                    raise RecipeError(f"{_where(f'models[{i}]')}: the base model takes no parameters in {method}")
                continue
            sources.append({"from": use(name, f"models[{i}]"), **own})
        steps.append(_method_step(method, base, sources, parameters, template, out_dtype, _where("parameters")))
    if out_dtype and steps[0]["op"] == "take":
        steps.append({"op": "cast", "dtype": out_dtype})
    document: dict[str, Any] = {"format": "elements.recipe/v1", "inputs": inputs, "steps": steps}
    if config.get("name"):
        document["name"] = config["name"]
    parse_recipe(document)  # every value checked now, with the recipe's own messages
    return document


def _baseless(method: str) -> bool:
    return method == "linear" or (method in MERGE_METHODS and MERGE_METHODS[method][0] == "none")


def _method_step(method: str, base: str | None, sources: list[dict[str, Any]], parameters: Mapping[str, Any],
                 template: str, out_dtype: str | None, where: str) -> dict[str, Any]:
    """One recipe step of ``method`` over ``sources`` (recipe input names with their parameters)."""
    parameters = dict(parameters)
    if method == "linear":
        step: dict[str, Any] = {"op": "linear", "normalize": parameters.pop("normalize", True)}
        weight = parameters.pop("weight", None)
        step["sources"] = [dict(s, **({"weight": weight} if weight is not None and "weight" not in s else {})) for s in sources]
    elif method == "task_arithmetic":
        if base is None:
            raise RecipeError(f"{_where('base_model')} is required for task_arithmetic")
        weight = parameters.pop("weight", None)
        step = {"op": "task_arithmetic", "base": base,
                "sources": [dict(s, **({"weight": weight} if weight is not None and "weight" not in s else {})) for s in sources]}
    elif method in MERGE_METHODS:
        step = {"op": method, "sources": sources}
        if base is not None:
            step["base"] = base
        if any(isinstance(v, list) for v in parameters.values()) or any(isinstance(v, list) for s in sources for v in s.values()):
            step["template"] = template
    elif method == "passthrough":
        raise RecipeError(f"{_where('merge_method')} passthrough needs slices")
    else:
        raise RecipeError(f"{_where('merge_method')} {method!r} is not a mergekit method Elements knows")
    if parameters:
        if step["op"] in ("linear", "task_arithmetic"):
            raise RecipeError(f"{where} {', '.join(sorted(parameters))} are not supported by Elements' {step['op']}")
        step["parameters"] = parameters
    if out_dtype:
        step["dtype"] = out_dtype
    return step


def _slice_sources(item: Any, i: int) -> list[Mapping[str, Any]]:
    sources = item.get("sources") if isinstance(item, Mapping) else None
    if not isinstance(sources, list) or not sources:
        raise RecipeError(f"{_where(f'slices[{i}]')} must be {{sources: [{{model, layer_range}}, …]}}")
    extra = set(item) - {"sources", "parameters"}
    if extra:
        raise RecipeError(f"{_where(f'slices[{i}]')} has field(s) {_names(extra)} that Elements does not support")
    for j, source in enumerate(sources):
        where = _where(f"slices[{i}].sources[{j}]")
        if not isinstance(source, Mapping):
            raise RecipeError(f"{where} must be {{model, layer_range[, parameters]}}")
        unknown = set(source) - {"model", "layer_range", "parameters"}
        if unknown:
            raise RecipeError(f"{where} has field(s) {_names(unknown)} that Elements does not support")
        rng = source.get("layer_range")
        if (not isinstance(rng, list) or len(rng) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in rng)
                or not 0 <= rng[0] < rng[1]):
            raise RecipeError(f"{where}.layer_range must be [first, end) with 0 <= first < end, got {rng!r:.60}")
        if rng[1] > LAYER_NUMBER + 1:
            raise _over(LAYER_NUMBER, f"the layer number {where}.layer_range[1]", rng[1])
    return sources


def _passthrough_steps(slices: list[Any], use: Callable[[str, str], str], template: str) -> list[dict[str, Any]]:
    pieces = []
    for i, item in enumerate(slices):
        sources = _slice_sources(item, i)
        if len(sources) != 1 or item.get("parameters") or sources[0].get("parameters"):
            raise RecipeError(f"{_where(f'slices[{i}]')} must have one source and no parameters for passthrough")
        source = sources[0]
        pieces.append({"from": use(_model_name(source, f"slices[{i}].sources[0].model"), f"slices[{i}]"),
                       "layer_range": source["layer_range"]})
    head = template.split("{n}")[0]
    return [{"op": "take", "from": pieces[0]["from"], "exclude": [head + "*"]},
            {"op": "stack", "template": template, "slices": pieces}]


def _layer_rules(template: str, first: int, end: int, out_first: int) -> tuple[list[str], list[dict[str, str]]]:
    """Globs of layers first..end-1 and the prefix renames moving them to out_first…, ordered so
    that no renamed name is renamed again (descending when moving up, ascending when moving down)."""
    globs = [template.replace("{n}", str(n)) + "*" for n in range(first, end)]
    shift = out_first - first
    order = range(end - 1, first - 1, -1) if shift > 0 else range(first, end)
    renames = [{"prefix": template.replace("{n}", str(n)), "to": template.replace("{n}", str(n + shift))} for n in order] if shift else []
    return globs, renames


def _sliced_merge_steps(method: str, slices: list[Any], base_name: str | None, parameters: Mapping[str, Any],
                        use: Callable[[str, str], str], template: str, out_dtype: str | None) -> list[dict[str, Any]]:
    """mergekit's ``slices`` with a merge method: each slice's layers merged across its sources by
    the method (a gradient's t runs over the slice, as mergekit's), renumbered after the previous
    slices; the tensors outside the layers merged across the first slice's sources."""
    if _baseless(method):
        base_name = None
    steps: list[dict[str, Any]] = []
    plans: list[tuple[int, int, str | None, list[dict[str, Any]], dict[str, Any]]] = []
    for i, item in enumerate(slices):
        sources = _slice_sources(item, i)
        ranges = {tuple(s["layer_range"]) for s in sources}
        if len(ranges) != 1:
            raise RecipeError(f"{_where(f'slices[{i}]')}: sources with different layer_range are not supported "
                              "(Elements merges same-named tensors); give every source of a slice the same range")
        first, end = ranges.pop()
        own = {**parameters, **_parameters(item.get("parameters"), _where(f"slices[{i}].parameters"))}
        out_layers = sum(p[1] - p[0] for p in plans) + end - first  # each renamed layer is one glob and one rename
        if out_layers > LAYER_NUMBER + 1:
            raise _over(LAYER_NUMBER, f"the layers the slices of {_where('slices')} stack", out_layers)
        base, entries = None, []
        for j, source in enumerate(sources):
            name = _model_name(source, f"slices[{i}].sources[{j}].model")
            if name == base_name:
                if source.get("parameters"):
                    raise RecipeError(f"{_where(f'slices[{i}].sources[{j}]')}: the base model takes no parameters in {method}")
                base = use(name, f"slices[{i}]")
                continue
            entries.append({"from": use(name, f"slices[{i}].sources[{j}]"),
                            **_parameters(source.get("parameters"), _where(f"slices[{i}].sources[{j}].parameters"))})
        if base_name is not None and base is None:
            raise RecipeError(f"{_where(f'slices[{i}]')} does not list base_model {base_name!r}; add it to the slice's sources")
        plans.append((first, end, base, entries, own))
    first_plan, last_plan = plans[0], plans[-1]
    if first_plan[2:] != last_plan[2:]:
        raise RecipeError(f"{_where('slices')}: the first and last slices must merge the same models with the same parameters "
                          "(mergekit merges the embeddings across the first and the head across the last; Elements merges "
                          "all tensors outside the layers in one step)")
    head = template.split("{n}")[0]
    outside = _method_step(method, first_plan[2], first_plan[3], first_plan[4], template, out_dtype, _where("parameters"))
    outside["exclude"] = [head + "*"]
    steps.append(outside)
    out_first = 0
    for i, (first, end, base, entries, own) in enumerate(plans):
        step = _method_step(method, base, entries, own, template, out_dtype, _where(f"slices[{i}].parameters"))
        globs, renames = _layer_rules(template, first, end, out_first)
        step["select"] = globs
        if renames:
            step["rename"] = renames
        steps.append(step)
        out_first += end - first
    return steps


def _read_document(path: Path, what: str) -> Any:
    try:
        raw = read_bounded(path, DOCUMENT_BYTES, what)  # bounded while read: /dev/zero has no size
    except LimitExceededError as exc:
        raise _over(exc.limit, exc.what, exc.value) from None
    except OSError as exc:
        raise RecipeError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        try:
            return loads_json(raw, what=what, max_bytes=DOCUMENT_BYTES)
        except NotJSONError:
            return loads_yaml(raw.decode("utf-8"), what=what, max_bytes=DOCUMENT_BYTES)
    except UnicodeDecodeError:
        raise RecipeError(f"{what} {path} is not UTF-8 text") from None
    except NotJSONError as exc:
        raise RecipeError(f"{what} {path} is neither JSON nor YAML ({exc})") from None
    except LimitExceededError as exc:
        raise _over(exc.limit, exc.what, exc.value) from None


def mergekit_document(config: str | os.PathLike[str], models: str | os.PathLike[str],
                      template: str = "model.layers.{n}.") -> dict[str, Any]:
    """Read a mergekit YAML and a model map file (JSON or YAML) and give the equivalent
    ``elements.recipe/v1`` document (validated).

    Raises:
        RecipeError: unreadable files, or anything :func:`recipe_from_mergekit` refuses.
    """
    return recipe_from_mergekit(_read_document(Path(config), "the mergekit config"),
                                _read_document(Path(models), "the model map"), template)


def load_mergekit(config: str | os.PathLike[str], models: str | os.PathLike[str], template: str = "model.layers.{n}.") -> Recipe:
    """The parsed recipe of :func:`mergekit_document`.

    Raises:
        RecipeError: unreadable files, or anything :func:`recipe_from_mergekit` refuses.
    """
    return parse_recipe(mergekit_document(config, models, template))
