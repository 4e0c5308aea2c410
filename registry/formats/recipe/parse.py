"""Reading a recipe document (JSON or YAML, within the document limits) into a :class:`Recipe`:
strictly (an unknown key is an error, so a typo never silently changes a model), checking that
every step and file names a declared input of the right kind."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from ...limits import (
    DOCUMENT_BYTES,
    LAYER_NUMBER,
    NAME_BYTES,
    RECIPE_FILES,
    RECIPE_INPUTS,
    RECIPE_STEPS,
    REGEX_CHARS,
    TENSOR_RANK,
    TENSORS,
    LimitExceededError,
    NotJSONError,
    loads_json,
    loads_yaml,
    read_bounded,
)
from .canonical import check_finite
from .merge_params import MERGE_METHODS, REQUIRED, freeze, is_gradient, parse_setting
from .model import KINDS, FileSpec, InputRef, OutputFile, OutputSpec, OutputTensor, Recipe
from .router_steps import parse_prompt_gate, parse_random_init
from .steps import (
    Cast,
    Linear,
    Lora,
    LoraParams,
    Merge,
    MergeSource,
    Override,
    PromptGate,
    Rename,
    Selection,
    Stack,
    StackSlice,
    Step,
    Take,
    TaskArithmetic,
    WeightedSource,
)
from .values import (
    FORMAT,
    Reader,
    RecipeError,
    as_bool,
    as_dtype,
    as_hex32,
    as_int,
    as_layer,
    as_number,
    as_regex,
    as_str,
    as_str_list,
    check_count,
    check_text,
    check_relative_path,
    over_limit,
    shown,
)

__all__ = ["RESERVED_OUTPUT_NAMES", "parse_recipe", "load_recipe"]

_INPUT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]*")


def _parse_input(name: str, data: Any) -> InputRef:
    where = f"inputs.{name[:40]}"
    if len(name.encode("utf-8", "surrogatepass")) > NAME_BYTES:
        raise over_limit(NAME_BYTES, f"the input name {name[:40]!r}…", len(name.encode("utf-8", "surrogatepass")))
    if not _INPUT_NAME.fullmatch(name):
        raise RecipeError(f"input name {shown(name)} must be letters, digits and _ . - / (not starting with . - /)")
    r = Reader(data, where)
    kind = r.get("kind")
    content_id = as_hex32(r.required("content_id"), f"{where}.content_id")
    record = r.get("record")
    path = r.get("path")
    r.done()
    if kind is not None and kind not in KINDS:
        raise RecipeError(f"{where}.kind must be 'tensors', 'file' or 'composition', got {shown(kind)}")
    if record is not None:
        record = as_hex32(record, f"{where}.record")
    if path is not None:
        path = check_relative_path(path, f"{where}.path")
    if record is None and path is None:
        if kind == "composition":
            raise RecipeError(f"{where} needs 'record' (a published composition) or 'path' (a local recipe file)")
        raise RecipeError(f"{where} needs 'record' (a published element) or 'path' (a local element file)")
    return InputRef(name=name, kind=kind or "", content_id=content_id, record=record, path=path)


def _parse_selection(r: Reader, where: str) -> Selection:
    select = as_str_list(r.get("select"), f"{where}.select")
    match = r.get("match")
    if match is not None:
        match = as_regex(match, f"{where}.match")
    exclude = as_str_list(r.get("exclude"), f"{where}.exclude")
    return Selection(select=select, match=match, exclude=exclude)


def _parse_renames(value: Any, where: str) -> tuple[Rename, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RecipeError(f"{where} must be a list of {{prefix|regex, to}} objects")
    check_count(value, RECIPE_STEPS, f"renames in {where}")
    out = []
    for i, item in enumerate(value):
        r = Reader(item, f"{where}[{i}]")
        prefix, regex = r.get("prefix"), r.get("regex")
        to = r.required("to")
        r.done()
        if not isinstance(to, str):
            raise RecipeError(f"{where}[{i}].to must be a string")
        if (prefix is None) == (regex is None):
            raise RecipeError(f"{where}[{i}] needs exactly one of 'prefix' or 'regex'")
        if prefix is not None:
            out.append(Rename("prefix", as_str(prefix, f"{where}[{i}].prefix"), to))
        else:
            pattern = as_regex(regex, f"{where}[{i}].regex")
            if len(to) > REGEX_CHARS:
                raise over_limit(REGEX_CHARS, f"the replacement {where}[{i}].to", len(to))
            try:
                re.compile(pattern).sub(to, "")
            except (re.error, IndexError) as exc:
                raise RecipeError(f"{where}[{i}].to is not a valid replacement for its regex ({exc})") from None
            out.append(Rename("regex", pattern, to))
    return tuple(out)


def _parse_sources(value: Any, where: str) -> tuple[str, ...]:
    names = as_str_list(value, where)
    if not names:
        raise RecipeError(f"{where} must name at least one input")
    if len(set(names)) != len(names):
        raise RecipeError(f"{where} names an input twice")
    return names


def _template(value: Any, where: str) -> str:
    template = as_str(value, where)
    if template.count("{n}") != 1 or "{" in template.replace("{n}", "") or "}" in template.replace("{n}", ""):
        raise RecipeError(f"{where} must contain '{{n}}' exactly once, e.g. 'model.layers.{{n}}.'")
    return template


def _parse_merge(op: str, r: Reader, where: str) -> Merge:
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
    check_count(raw_sources, RECIPE_STEPS, f"sources in {where}")
    if len(raw_sources) < lo or (hi is not None and len(raw_sources) > hi):
        wanted = f"exactly {lo}" if lo == hi else f"at least {lo}"
        raise RecipeError(f"{where}: {op} takes {wanted} source(s) besides the base, got {len(raw_sources)}")
    if not isinstance(raw_parameters, Mapping):
        raise RecipeError(f"{where}.parameters must be an object")
    parameters = []
    for key, value in raw_parameters.items():
        if key not in step_params and key not in source_params:
            known = ", ".join(sorted({*step_params, *source_params})) or "none"
            raise RecipeError(f"{where}.parameters has unknown parameter {shown(key)} for {op} (it takes: {known})")
        setting = parse_setting(key, value, f"{where}.parameters.{key}")
        default = step_params.get(key, source_params.get(key))
        if setting != default:
            parameters.append((key, freeze(setting)))
    for key, default in step_params.items():
        if default == REQUIRED and key not in raw_parameters:
            raise RecipeError(f"{where}: {op} needs parameters.{key}")
    sources = []
    for i, item in enumerate(raw_sources):
        sw = f"{where}.sources[{i}]"
        s = Reader(item, sw)
        names = _parse_sources(s.required("from"), f"{sw}.from")
        own = []
        for key in sorted(set(s.data) - {"from"}):
            if key not in source_params:
                known = ", ".join(sorted(source_params)) or "none"
                raise RecipeError(f"{sw} has unknown parameter {shown(key)} for {op} (a source takes: {known})")
            own.append((key, freeze(parse_setting(key, s.get(key), f"{sw}.{key}"))))
        s.done()
        for key, default in source_params.items():
            if default == REQUIRED and key not in dict(own) and key not in raw_parameters:
                raise RecipeError(f"{sw} needs '{key}' (or set it for every source in parameters)")
        sources.append(MergeSource(names, tuple(own)))
    if template is not None:
        template = _template(template, f"{where}.template")
    else:
        for key, value in [*parameters, *(p for src in sources for p in src.params)]:
            if is_gradient(value):
                raise RecipeError(
                    f"{where}: {key} is a gradient over layers; set 'template' (like 'model.layers.{{n}}.') so layers can be found"
                )
    if random:
        seed = as_int(seed if seed is not None else 0, f"{where}.seed")
        if seed >= 1 << 64:
            raise RecipeError(f"{where}.seed must be below 2**64")
    elif seed is not None:
        raise RecipeError(f"{where}.seed is only for the methods that drop at random ({', '.join(m for m, v in MERGE_METHODS.items() if v[5])})")
    return Merge(op, tuple(sources), base, tuple(sorted(parameters)), template, seed, selection, rename,
                 as_dtype(dtype, f"{where}.dtype") if dtype else None)


def _parse_weighted(value: Any, where: str) -> tuple[WeightedSource, ...]:
    if not isinstance(value, list) or not value:
        raise RecipeError(f"{where} must be a non-empty list of {{from, weight}} objects")
    check_count(value, RECIPE_STEPS, f"sources in {where}")
    out = []
    for i, item in enumerate(value):
        r = Reader(item, f"{where}[{i}]")
        source = _parse_sources(r.required("from"), f"{where}[{i}].from")
        weight = as_number(r.required("weight"), f"{where}[{i}].weight")
        r.done()
        out.append(WeightedSource(source, weight))
    return tuple(out)


def _parse_step(data: Any, where: str) -> Step:
    r = Reader(data, where)
    op = r.required("op")
    if op in ("take", "override"):
        source = _parse_sources(r.required("from"), f"{where}.from")
        selection = _parse_selection(r, where)
        rename = _parse_renames(r.get("rename"), f"{where}.rename")
        r.done()
        return (Take if op == "take" else Override)(source, selection, rename)
    if op == "stack":
        template = as_str(r.required("template"), f"{where}.template")
        if template.count("{n}") != 1 or "{" in template.replace("{n}", "") or "}" in template.replace("{n}", ""):
            raise RecipeError(f"{where}.template must contain '{{n}}' exactly once, e.g. 'encoder.layer.{{n}}.'")
        start = as_layer(r.get("start", 0), f"{where}.start")
        raw_slices = r.required("slices")
        r.done()
        if not isinstance(raw_slices, list) or not raw_slices:
            raise RecipeError(f"{where}.slices must be a non-empty list")
        check_count(raw_slices, RECIPE_STEPS, f"slices in {where}")
        slices = []
        for i, item in enumerate(raw_slices):
            sw = f"{where}.slices[{i}]"
            s = Reader(item, sw)
            source = _parse_sources(s.required("from"), f"{sw}.from")
            layer_range, layers = s.get("layer_range"), s.get("layers")
            s.done()
            if (layer_range is None) == (layers is None):
                raise RecipeError(f"{sw} needs exactly one of 'layer_range' [start, end) or 'layers' [i, j, ...]")
            if layer_range is not None:
                if not isinstance(layer_range, list) or len(layer_range) != 2:
                    raise RecipeError(f"{sw}.layer_range must be [start, end) (end excluded, as in mergekit)")
                lo, hi = (as_layer(v, f"{sw}.layer_range", end=True) for v in layer_range)
                if hi <= lo:
                    raise RecipeError(f"{sw}.layer_range [{lo}, {hi}) is empty; the end is excluded")
                picked = tuple(range(lo, hi))
            else:
                if not isinstance(layers, list) or not layers:
                    raise RecipeError(f"{sw}.layers must be a non-empty list of layer numbers")
                check_count(layers, LAYER_NUMBER, f"layers in {sw}")
                picked = tuple(as_layer(v, f"{sw}.layers") for v in layers)
                if len(set(picked)) != len(picked):
                    raise RecipeError(f"{sw}.layers repeats a layer")
            slices.append(StackSlice(source, picked))
        return Stack(template, tuple(slices), start)
    if op == "linear":
        sources = _parse_weighted(r.required("sources"), f"{where}.sources")
        selection = _parse_selection(r, where)
        rename = _parse_renames(r.get("rename"), f"{where}.rename")
        normalize = as_bool(r.get("normalize", False), f"{where}.normalize")
        dtype = r.get("dtype")
        r.done()
        if normalize and sum(s.weight for s in sources) == 0:
            raise RecipeError(f"{where}: normalize needs weights that do not sum to 0")
        return Linear(sources, selection, rename, normalize, as_dtype(dtype, f"{where}.dtype") if dtype else None)
    if op == "task_arithmetic":
        base = _parse_sources(r.required("base"), f"{where}.base")
        sources = _parse_weighted(r.required("sources"), f"{where}.sources")
        selection = _parse_selection(r, where)
        rename = _parse_renames(r.get("rename"), f"{where}.rename")
        dtype = r.get("dtype")
        r.done()
        return TaskArithmetic(base, sources, selection, rename, as_dtype(dtype, f"{where}.dtype") if dtype else None)
    if op == "lora":
        adapter = as_str(r.required("adapter"), f"{where}.adapter")
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
            config=as_str(config, f"{where}.config") if config is not None else None,
            params=LoraParams.from_params(params, f"{where}.params") if params is not None else None,
            strip_prefix=strip_prefix,
            rename=rename,
            dtype=as_dtype(dtype, f"{where}.dtype") if dtype else None,
        )
    if op == "cast":
        dtype = as_dtype(r.required("dtype"), f"{where}.dtype")
        selection = _parse_selection(r, where)
        r.done()
        return Cast(dtype, selection)
    if isinstance(op, str) and op in MERGE_METHODS:
        return _parse_merge(op, r, where)
    if op == "random_init":
        return parse_random_init(r, where)
    if op == "prompt_gate":
        return parse_prompt_gate(r, where, _parse_sources(r.required("from"), f"{where}.from"))
    raise RecipeError(
        f"{where}.op {shown(op)} is unknown; use take, stack, override, linear, task_arithmetic, lora, cast, random_init, prompt_gate "
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
    elif isinstance(step, PromptGate):
        yield from ((n, "tensors") for n in step.source)
    elif isinstance(step, Lora):
        yield step.adapter, "tensors"
        if step.config:
            yield step.config, "file"


def _parse_output(data: Any) -> OutputSpec:
    if data is None:
        return OutputSpec()
    r = Reader(data, "output")
    content_id = r.get("content_id")
    tensors = r.get("tensors") or []
    files = r.get("files") or []
    metadata = r.get("metadata")
    r.done()
    if content_id is not None:
        content_id = as_hex32(content_id, "output.content_id")
    if not isinstance(tensors, list) or not isinstance(files, list):
        raise RecipeError("output.tensors and output.files must be lists")
    check_count(tensors, TENSORS, "tensors in output.tensors")
    check_count(files, RECIPE_FILES, "files in output.files")
    table = []
    for i, item in enumerate(tensors):
        w = f"output.tensors[{i}]"
        t = Reader(item, w)
        name = as_str(t.required("name"), f"{w}.name")
        if len(name.encode("utf-8", "surrogatepass")) > NAME_BYTES:
            raise over_limit(NAME_BYTES, f"the tensor name {w}.name", len(name.encode("utf-8", "surrogatepass")))
        dtype = as_str(t.required("dtype"), f"{w}.dtype")
        shape = t.required("shape")
        digest = as_hex32(t.required("digest"), f"{w}.digest")
        t.get("size")  # accepted (manifest rows carry it) but derived from dtype and shape
        t.done()
        if not isinstance(shape, list):
            raise RecipeError(f"{w}.shape must be a list of integers")
        if len(shape) > TENSOR_RANK:
            raise over_limit(TENSOR_RANK, f"the rank of {w}", len(shape))
        dims = tuple(as_int(d, f"{w}.shape") for d in shape)
        if any(d >= 1 << 64 for d in dims):
            raise RecipeError(f"{w}.shape has a dimension over 2**64-1")
        table.append(OutputTensor(name, dtype, dims, digest))
    names = [t.name for t in table]
    if len(set(names)) != len(names):
        raise RecipeError("output.tensors names a tensor twice")
    out_files = []
    for i, item in enumerate(files):
        w = f"output.files[{i}]"
        f = Reader(item, w)
        out_files.append(OutputFile(check_relative_path(f.required("path"), f"{w}.path"), as_hex32(f.required("content_id"), f"{w}.content_id")))
        f.done()
    if metadata is None:
        meta: tuple[tuple[str, str], ...] = (("format", "pt"),)
    else:
        if not isinstance(metadata, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise RecipeError("output.metadata must be an object of strings (the safetensors __metadata__)")
        meta = tuple(sorted(metadata.items()))
    return OutputSpec(content_id, tuple(sorted(table, key=lambda t: t.name)), tuple(sorted(out_files, key=lambda f: f.path)), meta)


def parse_recipe(data: Any) -> Recipe:
    """Validate a recipe document (a dict from JSON or YAML) into a :class:`Recipe`.

    Raises:
        RecipeError: unknown format, unknown keys, a step naming a missing input, an input used
            both as tensors and as a file, a path that escapes, a duplicate output file.
    """
    r = Reader(data, "recipe")
    check_text(data, "the recipe")
    fmt = r.required("format")
    if fmt != FORMAT:
        raise RecipeError(f"recipe format is {shown(fmt)}; this version reads {FORMAT!r}")
    raw_inputs = r.required("inputs")
    raw_steps = r.get("steps") or []
    raw_files = r.get("files") or []
    output = _parse_output(r.get("output"))
    name = r.get("name")
    description = r.get("description")
    r.done()
    if name is not None:
        name = as_str(name, "name")
    if description is not None and not isinstance(description, str):
        raise RecipeError("description must be a string")
    if not isinstance(raw_inputs, Mapping) or not raw_inputs:
        raise RecipeError("recipe.inputs must be a non-empty object of named inputs")
    check_count(raw_inputs, RECIPE_INPUTS, "inputs in recipe.inputs")
    inputs = {str(k): _parse_input(str(k), v) for k, v in raw_inputs.items()}
    if not isinstance(raw_steps, list) or not isinstance(raw_files, list):
        raise RecipeError("recipe.steps and recipe.files must be lists")
    check_count(raw_steps, RECIPE_STEPS, "steps in recipe.steps")
    check_count(raw_files, RECIPE_FILES, "files in recipe.files")
    steps = tuple(_parse_step(s, f"steps[{i}]") for i, s in enumerate(raw_steps))
    files = []
    for i, item in enumerate(raw_files):
        w = f"files[{i}]"
        f = Reader(item, w)
        path = check_relative_path(f.required("path"), f"{w}.path")
        source = as_str(f.required("from"), f"{w}.from")
        patch = f.get("patch")
        nested_file = f.get("file")
        f.done()
        if patch is not None:
            if not isinstance(patch, Mapping):
                raise RecipeError(f"{w}.patch must be an object (a JSON merge patch)")
            check_finite(patch, f"{w}.patch")
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
            text = read_bounded(path, DOCUMENT_BYTES, what)  # bounded while read: /dev/zero has no size
        except LimitExceededError as exc:
            raise over_limit(exc.limit, exc.what, exc.value) from None
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
        except NotJSONError:
            try:
                data = loads_yaml(decoded, what=what, max_bytes=DOCUMENT_BYTES)
            except NotJSONError as exc:
                raise RecipeError(f"recipe is neither JSON nor YAML ({exc})") from None
    except LimitExceededError as exc:
        raise over_limit(exc.limit, exc.what, exc.value) from None
    return parse_recipe(data)
