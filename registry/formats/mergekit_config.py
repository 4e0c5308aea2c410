"""mergekit configs as they are: a mergekit YAML turned into an ``elements.recipe/v1`` document.

A mergekit config names models by path or hub id; Elements pins every input by content id, so a
**model map** says what each name is: ``{name: <recipe input>}`` where the input is what a recipe's
``inputs`` holds (``{content_id, record}`` or ``{content_id, path}``; ``kind: composition`` for a
published model, whose output tensors are the model's). Every mergekit field Elements supports is
carried over; any other is refused by name, never ignored:

- ``merge_method``: ``linear`` (mergekit's ``normalize`` default, true, is kept), ``task_arithmetic``,
  ``passthrough`` (with ``slices``: a ``stack`` of their layer ranges plus the first slice's
  non-layer tensors) and every other method (a merge step of that name,
  :mod:`registry.compose.merges`);
- ``models[].model`` / ``.parameters``, ``base_model``, ``parameters`` (gradients and filters as
  they are), ``dtype`` / ``out_dtype`` (the output dtype: Elements always computes in float64).

Refused: ``slices`` with a method other than passthrough, ``modules``, ``tokenizer_source``,
``tokenizer``, ``chat_template`` (the output's files are the recipe's ``files``: add them to the
converted recipe), model references with ``+lora`` or a revision the map does not name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from ..limits import DOCUMENT_BYTES, LimitExceeded, NotJSON, loads_json, loads_yaml
from .recipe import MERGE_METHODS, Recipe, RecipeError, RecipeLimitError, over_limit as _over, parse_recipe

__all__ = ["recipe_from_mergekit", "load_mergekit", "MERGEKIT_DTYPES"]

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


def recipe_from_mergekit(config: Any, models: Mapping[str, Any], template: str = "model.layers.{n}.") -> dict[str, Any]:
    """The ``elements.recipe/v1`` document equivalent to a mergekit config (validated by
    :func:`registry.formats.recipe.parse_recipe` before it is returned).

    Raises:
        RecipeError: a field Elements does not support (by name), a model the map does not name,
            or anything the resulting recipe refuses.
    """
    if not isinstance(config, Mapping):
        raise RecipeError("a mergekit config must be a mapping (merge_method, models, …)")
    unknown = sorted(set(config) - _TOP_KEYS)
    if unknown:
        raise RecipeError(f"mergekit config has field(s) {', '.join(map(str, unknown))} that Elements does not know; remove them")
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
            known = ", ".join(sorted(models)[:8]) or "none"
            raise RecipeError(f"{where} names model {name!r}, which the model map does not (it maps: {known}); add it")
        if name not in names:
            input_name = f"m{len(names)}"
            names[name] = input_name
            inputs[input_name] = models[name]
        return names[name]

    dtype = config.get("out_dtype") or config.get("dtype")
    out_dtype = None
    if dtype is not None:
        if dtype not in MERGEKIT_DTYPES:
            raise RecipeError(f"{_where('dtype')} {dtype!r} is not one of {', '.join(MERGEKIT_DTYPES)}")
        out_dtype = MERGEKIT_DTYPES[dtype]
    parameters = dict(config.get("parameters") or {})
    base_name = config.get("base_model")
    steps: list[dict[str, Any]] = []
    if config.get("slices") is not None:
        if method != "passthrough":
            raise RecipeError(f"{_where('slices')} with merge_method {method!r} is not supported; use models: (a whole-model merge)")
        if config.get("models") is not None or parameters:
            raise RecipeError(f"{_where('slices')}: passthrough takes slices only (no models or parameters)")
        slices = config["slices"]
        if not isinstance(slices, list) or not slices:
            raise RecipeError(f"{_where('slices')} must be a non-empty list")
        pieces = []
        for i, item in enumerate(slices):
            sources = item.get("sources") if isinstance(item, Mapping) else None
            if not isinstance(sources, list) or len(sources) != 1 or set(item) - {"sources"}:
                raise RecipeError(f"{_where(f'slices[{i}]')} must be {{sources: [{{model, layer_range}}]}} with one source for passthrough")
            source = sources[0]
            extra = sorted(set(source) - {"model", "layer_range"}) if isinstance(source, Mapping) else []
            if extra:
                raise RecipeError(f"{_where(f'slices[{i}].sources[0]')} has field(s) {', '.join(extra)} that Elements does not support")
            pieces.append({"from": use(_model_name(source, f"slices[{i}].sources[0].model"), f"slices[{i}]"),
                           "layer_range": source.get("layer_range")})
        head = template.split("{n}")[0]
        steps.append({"op": "take", "from": pieces[0]["from"], "exclude": [head + "*"]})
        steps.append({"op": "stack", "template": template, "slices": pieces})
    else:
        entries = config.get("models")
        if not isinstance(entries, list) or not entries:
            raise RecipeError(f"{_where('models')} must be a non-empty list of {{model, parameters}}")
        baseless = method == "linear" or (method in MERGE_METHODS and MERGE_METHODS[method][0] == "none")
        if baseless:  # base_model is then only one of the models, as in mergekit
            listed = {_model_name(e, "models") for e in entries}
            if base_name is not None and base_name not in listed:
                raise RecipeError(f"{_where('base_model')}: {method} takes no base; list {base_name!r} in models or remove base_model")
            base_name = None
        base = use(base_name, "base_model") if base_name is not None else None
        sources = []
        for i, entry in enumerate(entries):
            if isinstance(entry, Mapping):
                extra = sorted(set(entry) - {"model", "parameters"})
                if extra:
                    raise RecipeError(f"{_where(f'models[{i}]')} has field(s) {', '.join(extra)} that Elements does not support")
            name = _model_name(entry, f"models[{i}].model")
            own = dict(entry.get("parameters") or {}) if isinstance(entry, Mapping) else {}
            if name == base_name:
                if own:
                    raise RecipeError(f"{_where(f'models[{i}]')}: the base model takes no parameters in {method}")
                continue
            sources.append({"from": use(name, f"models[{i}]"), **own})
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
                raise RecipeError(f"{_where('parameters')} {', '.join(sorted(parameters))} are not supported by Elements' {step['op']}")
            step["parameters"] = parameters
        if out_dtype:
            step["dtype"] = out_dtype
        steps.append(step)
    if out_dtype and steps[0]["op"] == "take":
        steps.append({"op": "cast", "dtype": out_dtype})
    document: dict[str, Any] = {"format": "elements.recipe/v1", "inputs": inputs, "steps": steps}
    if config.get("name"):
        document["name"] = config["name"]
    parse_recipe(document)  # every value checked now, with the recipe's own messages
    return document


def _read_document(path: Path, what: str) -> Any:
    try:
        size = path.stat().st_size
        if size > DOCUMENT_BYTES:
            raise DOCUMENT_BYTES.exceeded(what, size, RecipeLimitError)
        raw = path.read_bytes()
    except OSError as exc:
        raise RecipeError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        try:
            return loads_json(raw, what=what, max_bytes=DOCUMENT_BYTES)
        except NotJSON:
            return loads_yaml(raw.decode("utf-8"), what=what, max_bytes=DOCUMENT_BYTES)
    except UnicodeDecodeError:
        raise RecipeError(f"{what} {path} is not UTF-8 text") from None
    except NotJSON as exc:
        raise RecipeError(f"{what} {path} is neither JSON nor YAML ({exc})") from None
    except LimitExceeded as exc:
        raise _over(exc.limit, exc.what, exc.value) from None


def load_mergekit(config: str | os.PathLike[str], models: str | os.PathLike[str], template: str = "model.layers.{n}.") -> Recipe:
    """Read a mergekit YAML and a model map file (JSON or YAML) and give the equivalent recipe.

    Raises:
        RecipeError: unreadable files, or anything :func:`recipe_from_mergekit` refuses.
    """
    document = recipe_from_mergekit(_read_document(Path(config), "the mergekit config"),
                                    _read_document(Path(models), "the model map"), template)
    return parse_recipe(document)
