"""Planning: run a recipe's steps over manifests only, giving one lazy plan per output tensor
(the plans themselves are :mod:`registry.compose.tensor_plans`).

Every bad-input case that can be found without reading tensor data is found here, before a byte
is written: a missing input, a selection that matches nothing, a layer that is not there, a name
produced twice, shapes that cannot merge, dtypes that cannot cast, a LoRA pair that does not fit
its target.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Mapping

from ..formats.content_id import TensorEntry
from ..limits import MODEL_JSON_BYTES, PLAN_WORK, TENSORS, LimitExceededError, NotJSONError, loads_json
from ..formats.recipe import (
    Cast,
    Linear,
    Lora,
    LoraParams,
    Merge,
    Override,
    PromptGate,
    RandomInit,
    Recipe,
    RecipeError,
    RecipeLimitError,
    Selection,
    Stack,
    Take,
    TaskArithmetic,
    apply_renames,
    evaluate_parameter,
)
from .readers import FileElement, TensorElement
from .tensor_plans import (
    CastPlan,
    LinearPlan,
    LoraPlan,
    MergePlan,
    Plan,
    PromptGatePlan,
    RandomPlan,
    TaskArithmeticPlan,
    TensorPlan,
    copy_of,
)

__all__ = ["plan_tensors"]



def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class _Source:
    """The union of one or more tensor elements, seen as one model."""

    def __init__(self, names: tuple[str, ...], elements: Mapping[str, TensorElement], where: str) -> None:
        self.label = "+".join(names)
        self.tensors: dict[str, TensorElement] = {}
        for input_name in names:
            element = elements[input_name]
            for tensor in element.names:
                if tensor in self.tensors:
                    raise RecipeError(
                        f"{where}: tensor {tensor!r} is in both {self.tensors[tensor].ref.name!r} and {input_name!r}; "
                        "a source's inputs must not overlap"
                    )
                self.tensors[tensor] = element

    def copy(self, tensor: str) -> TensorPlan:
        return copy_of(self.tensors[tensor], tensor)

    def entry(self, tensor: str) -> TensorEntry:
        return self.tensors[tensor].entries[tensor]


def select(names: list[str], selection: Selection, where: str, what: str) -> list[str]:
    """The names a selection picks, in the given order; every pattern must match something."""
    if selection.is_all:
        return list(names)
    picked: set[str] = set()
    for pattern in selection.select:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            kind = "tensor" if not any(c in pattern for c in "*?[") else "pattern"
            raise RecipeError(f"{where}: {kind} {pattern!r} matches no tensor of {what}")
        picked.update(hits)
    if selection.match is not None:
        regex = re.compile(selection.match)
        hits = [n for n in names if regex.search(n)]
        if not hits:
            raise RecipeError(f"{where}: regex {selection.match!r} matches no tensor of {what}")
        picked.update(hits)
    if not selection.select and selection.match is None:
        picked = set(names)
    for pattern in selection.exclude:
        picked = {n for n in picked if not fnmatch.fnmatchcase(n, pattern)}
    if not picked:
        raise RecipeError(f"{where}: the selection leaves no tensor of {what}")
    return [n for n in names if n in picked]


def _add(work: dict[str, TensorPlan], name: str, plan: TensorPlan, where: str, origin: dict[str, str]) -> None:
    if len(work) >= TENSORS:  # a stack of many slices can multiply an input's tensors
        raise TENSORS.exceeded(f"{where}: the number of tensors the recipe produces", len(work) + 1, RecipeLimitError)
    if name in work:
        raise RecipeError(
            f"{where}: tensor {name!r} is already produced by {origin[name]}; use an override step to replace it"
        )
    if not name or name == "__metadata__":
        raise RecipeError(f"{where}: {name!r} is not a valid tensor name")
    work[name] = plan
    origin[name] = where


def _is_float(dtype: str) -> bool:
    from . import ops
    return dtype in ops.FLOAT_DTYPES


def _merge_plans(where: str, name: str, plans: list[TensorPlan], labels: list[str]) -> str | None:
    """Check same-named tensors can merge; returns None for floats, or a reason to copy."""
    first = plans[0]
    for plan, label in zip(plans[1:], labels[1:]):
        if plan.shape != first.shape:
            raise RecipeError(
                f"{where}: shapes cannot merge: {name!r} is {list(first.shape)} in {labels[0]} and {list(plan.shape)} in {label}"
            )
    dtypes = {plan.dtype for plan in plans}
    if all(_is_float(d) for d in dtypes):
        return None
    if len(dtypes) == 1 and len({bytes(p.digest) for p in plans if p.digest is not None}) == 1 and all(p.digest for p in plans):
        return "identical"
    raise RecipeError(
        f"{where}: cannot merge {name!r}: {'/'.join(sorted(dtypes))} is not a float dtype and the sources differ; "
        "exclude it from the merge and take it from one source"
    )


def _peft_matches(patterns: tuple[str, ...] | str | None, module: str) -> bool:
    if patterns is None or patterns == "all-linear":
        return True
    if isinstance(patterns, str):
        return re.fullmatch(patterns, module) is not None
    return any(module == t or module.endswith("." + t) for t in patterns)


def _pattern_value(pattern: tuple[tuple[str, object], ...], module: str, default):
    # PEFT's get_pattern_key: the first key that matches a dotted suffix of the module name.
    for key, value in pattern:
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def _scan_cost(step: object, elements: Mapping[str, TensorElement], produced: int) -> int:
    """How many tensor names ``step`` scans and tests, counted before it runs (PLAN_WORK): the
    tensors of every input it reads times the patterns each is tested against."""

    def names(inputs: tuple[str, ...]) -> int:
        return sum(len(elements[n].names) for n in inputs if n in elements)

    def patterns(selection: Selection) -> int:
        return 1 + len(selection.select) + (selection.match is not None) + len(selection.exclude)

    if isinstance(step, (Take, Override)):
        return names(step.source) * patterns(step.selection)
    if isinstance(step, Stack):
        return sum(names(piece.source) + len(piece.layers) for piece in step.slices)
    if isinstance(step, (Linear, TaskArithmetic)):
        sources = ([step.base] if isinstance(step, TaskArithmetic) else []) + [s.source for s in step.sources]
        return sum(names(s) for s in sources) * patterns(step.selection)
    if isinstance(step, Merge):
        sources = ([step.base] if step.base else []) + [s.source for s in step.sources]
        return sum(names(s) for s in sources) * patterns(step.selection)
    if isinstance(step, Lora):
        return names((step.adapter,)) * 2
    if isinstance(step, Cast):
        return produced * patterns(step.selection)  # at most every tensor the inputs hold
    return 0


def plan_tensors(recipe: Recipe, elements: Mapping[str, TensorElement | FileElement]) -> Plan:
    """Run the recipe's steps over the (opened, verified) elements' manifests.

    Raises:
        RecipeError: anything the recipe asks that its inputs cannot give (see module docstring).
    """
    tensor_elements = {n: e for n, e in elements.items() if isinstance(e, TensorElement)}
    work: dict[str, TensorPlan] = {}
    origin: dict[str, str] = {}

    def source(names: tuple[str, ...], where: str) -> _Source:
        return _Source(names, tensor_elements, where)

    # Estimated before any step runs, so a recipe that would scan for hours is refused at once.
    available = sum(len(e.names) for e in tensor_elements.values())
    PLAN_WORK.check(sum(_scan_cost(step, tensor_elements, available) for step in recipe.steps),
                    "the tensor names the recipe's steps would scan", RecipeLimitError)
    # Every stacked layer gives at least one tensor: refuse a stack that would give too many now.
    TENSORS.check(sum(len(piece.layers) for step in recipe.steps if isinstance(step, Stack) for piece in step.slices),
                  "the tensors the recipe's stack steps would give (one per layer at least)", RecipeLimitError)
    for index, step in enumerate(recipe.steps):
        where = f"steps[{index}] ({step.op})"
        if isinstance(step, Take):
            src = source(step.source, where)
            for name in select(list(src.tensors), step.selection, where, f"input {src.label!r}"):
                _add(work, apply_renames(step.rename, name), src.copy(name), where, origin)
        elif isinstance(step, Override):
            src = source(step.source, where)
            for name in select(list(src.tensors), step.selection, where, f"input {src.label!r}"):
                target = apply_renames(step.rename, name)
                if target not in work:
                    raise RecipeError(
                        f"{where}: override tensor {target!r} is not in the composition yet; add it with a take step"
                    )
                work[target] = src.copy(name)
                origin[target] = where
        elif isinstance(step, Stack):
            regex = step.layer_regex()
            counter = step.start
            for s_index, piece in enumerate(step.slices):
                src = source(piece.source, f"{where}.slices[{s_index}]")
                layers: dict[int, list[str]] = {}
                for name in src.tensors:
                    m = regex.match(name)
                    if m:
                        layers.setdefault(int(m.group(1)), []).append(name)
                for layer in piece.layers:
                    if layer not in layers:
                        have = sorted(layers)
                        span = f"layers {have[0]}-{have[-1]}" if have else f"no tensor named {step.prefix(0)!r}..."
                        raise RecipeError(
                            f"{where}.slices[{s_index}]: layer {layer} is not in input {src.label!r} (it has {span})"
                        )
                    old, new = step.prefix(layer), step.prefix(counter)
                    for name in sorted(layers[layer], key=_natural):
                        _add(work, new + name[len(old):], src.copy(name), where, origin)
                    counter += 1
        elif isinstance(step, (Linear, TaskArithmetic)):
            bases = [source(step.base, where)] if isinstance(step, TaskArithmetic) else []
            others = [source(s.source, where) for s in step.sources]
            srcs = bases + others
            first = srcs[0]
            labels = [f"input {s.label!r}" for s in srcs]
            names = select(list(first.tensors), step.selection, where, labels[0])
            weights = [s.weight for s in step.sources]
            if isinstance(step, Linear):
                from . import ops

                weights = ops.normalized_weights(weights, step.normalize)
            for name in names:
                for s, label in zip(srcs[1:], labels[1:]):
                    if name not in s.tensors:
                        raise RecipeError(f"{where}: tensor {name!r} is in {labels[0]} but not in {label}; shapes cannot merge")
                plans: list[TensorPlan] = [s.copy(name) for s in srcs]
                target = apply_renames(step.rename, name)
                if _merge_plans(where, name, plans, labels) == "identical":
                    _add(work, target, plans[0], where, origin)
                    continue
                dtype = step.dtype or plans[0].dtype
                if isinstance(step, Linear):
                    merged: TensorPlan = LinearPlan(plans, weights, dtype)
                else:
                    merged = TaskArithmeticPlan(plans[0], plans[1:], weights, dtype)
                _add(work, target, merged, where, origin)
        elif isinstance(step, Merge):
            _plan_merge(step, where, work, origin, source)
        elif isinstance(step, PromptGate):
            _plan_prompt_gate(step, where, work, origin, source(step.source, where))
        elif isinstance(step, RandomInit):
            for name in step.names():
                _add(work, name, RandomPlan(name, step.shape, step.dtype, step.distribution, step.effective_scale, step.seed),
                     where, origin)
        elif isinstance(step, Lora):
            _plan_lora(step, where, work, origin, tensor_elements, elements)
        elif isinstance(step, Cast):
            names = list(work)
            if step.selection.is_all:
                chosen = [n for n in names if _is_float(work[n].dtype)]
            else:
                chosen = select(names, step.selection, where, "the composition")
            for name in chosen:
                plan = work[name]
                if not _is_float(plan.dtype):
                    raise RecipeError(
                        f"{where}: cannot cast {name!r} from {plan.dtype} to {step.dtype}; only F64/F32/F16/BF16 tensors cast "
                        "(exclude it from the selection)"
                    )
                if plan.dtype != step.dtype:
                    work[name] = CastPlan(plan, step.dtype)
        else:  # pragma: no cover - parse_recipe admits no other step
            raise RecipeError(f"{where}: unknown step")
    if not work:
        raise RecipeError("the recipe's steps produce no tensor")
    return Plan(tensors=work)


def _plan_lora(step: Lora, where: str, work: dict[str, TensorPlan], origin: dict[str, str],
               tensor_elements: Mapping[str, TensorElement], elements: Mapping) -> None:
    from . import ops
    adapter = tensor_elements[step.adapter]
    if step.params is not None:
        params = step.params
    else:
        config = elements[step.config]
        try:
            document = loads_json(config.read_bytes(), what=f"{where}: adapter config {step.config!r}", max_bytes=MODEL_JSON_BYTES)
        except LimitExceededError as exc:
            if exc.limit is None:  # pragma: no cover - loads_json names the limit of every refusal
                raise
            raise exc.limit.exceeded(exc.what, exc.value, RecipeLimitError) from None
        except NotJSONError as exc:
            raise RecipeError(f"{where}: adapter config {step.config!r} is not JSON ({exc})") from None
        params = LoraParams.from_peft_config(document, f"adapter config {step.config!r}")
    pairs: dict[str, dict[str, str]] = {}
    suffixes = {".lora_A.weight": "A", ".lora_B.weight": "B"}
    for tensor in adapter.names:
        for suffix, which in suffixes.items():
            if tensor.endswith(suffix):
                break
        else:
            raise RecipeError(
                f"{where}: adapter tensor {tensor!r} is not a lora_A/lora_B weight; only plain LoRA adapters "
                "(no bias, DoRA, embedding or modules_to_save tensors) can be merged"
            )
        if not tensor.startswith(step.strip_prefix):
            raise RecipeError(f"{where}: adapter tensor {tensor!r} does not start with {step.strip_prefix!r}; set strip_prefix")
        module = tensor[len(step.strip_prefix): -len(suffix)]
        pairs.setdefault(module, {})[which] = tensor
    if not pairs:
        raise RecipeError(f"{where}: adapter {step.adapter!r} holds no lora_A/lora_B weights")
    for module in sorted(pairs, key=_natural):
        pair = pairs[module]
        if set(pair) != {"A", "B"}:
            missing = "lora_B" if "A" in pair else "lora_A"
            raise RecipeError(f"{where}: adapter has no {missing} weight for module {module!r}")
        if not _peft_matches(params.target_modules, module):
            raise RecipeError(f"{where}: adapter has weights for {module!r}, which its target_modules do not name")
        a_entry, b_entry = adapter.entries[pair["A"]], adapter.entries[pair["B"]]
        for entry in (a_entry, b_entry):
            if len(entry.shape) != 2 or not _is_float(entry.dtype):
                raise RecipeError(f"{where}: adapter tensor {entry.name!r} must be a 2-D float matrix, got {entry.dtype}{list(entry.shape)}")
        rank, fan_in = a_entry.shape
        fan_out, rank_b = b_entry.shape
        expected_rank = _pattern_value(params.rank_pattern, module, params.r)
        if rank != rank_b or rank != expected_rank:
            raise RecipeError(
                f"{where}: LoRA shapes for {module!r} do not fit: lora_A {list(a_entry.shape)}, lora_B {list(b_entry.shape)}, r={expected_rank}"
            )
        target = apply_renames(step.rename, module + ".weight")
        if target not in work:
            raise RecipeError(f"{where}: LoRA target {target!r} is not in the composition; take the base weights first or rename")
        base = work[target]
        expected_shape = (fan_in, fan_out) if params.fan_in_fan_out else (fan_out, fan_in)
        if base.shape != expected_shape:
            raise RecipeError(
                f"{where}: shapes cannot merge: {target!r} is {list(base.shape)} but the LoRA update for it is "
                f"{list(expected_shape)} (fan_in_fan_out={str(params.fan_in_fan_out).lower()})"
            )
        if not _is_float(base.dtype):
            raise RecipeError(f"{where}: cannot merge LoRA into {target!r}: it is {base.dtype}, not a float dtype")
        alpha = _pattern_value(params.alpha_pattern, module, params.lora_alpha)
        scale = ops.lora_scale(alpha, expected_rank, params.use_rslora)
        work[target] = LoraPlan(
            base, copy_of(adapter, pair["A"]), copy_of(adapter, pair["B"]), scale, params.fan_in_fan_out,
            step.dtype or base.dtype,
        )
        origin[target] = where


def _layer_positions(step: Merge, names: list[str]) -> dict[str, float]:
    """Each tensor's t for gradients, as mergekit: layer i of n (in the step's selection, by
    number) is at i / (n - 1) (1 when n is 1); a tensor outside the layers is at 0."""
    regex = step.layer_regex()
    if regex is None:
        return {}
    found = {name: int(m.group(1)) for name in names if (m := regex.match(name))}
    layers = sorted(set(found.values()))
    count = len(layers)
    index = {layer: i for i, layer in enumerate(layers)}
    return {name: (index[layer] / (count - 1) if count > 1 else 1.0) for name, layer in found.items()}


def _evaluated(settings: dict, name: str, t: float, where: str, what: str) -> dict:
    out = {}
    for key, setting in settings.items():
        value = evaluate_parameter(setting, name, t)
        if value is None:
            raise RecipeError(f"{where}: no {{filter, value}} of {what}{key} matches tensor {name!r}; add one without a filter")
        out[key] = value
    return out


def _plan_prompt_gate(step: PromptGate, where: str, work: dict[str, TensorPlan], origin: dict[str, str], src) -> None:
    if step.embedding not in src.tensors:
        raise RecipeError(f"{where}: embedding {step.embedding!r} is not in input {src.label!r}; name its token embedding")
    embedding = src.copy(step.embedding)
    if len(embedding.shape) != 2 or not _is_float(embedding.dtype):
        raise RecipeError(f"{where}: embedding {step.embedding!r} must be a 2-D float tensor [vocabulary, hidden]")
    vocabulary, hidden = embedding.shape
    for i, expert in enumerate(step.experts):
        largest = max(t for prompt in expert.positive + expert.negative for t in prompt)
        if largest >= vocabulary:
            raise RecipeError(f"{where}: experts[{i}] has token id {largest}, beyond the embedding's {vocabulary} rows")
    experts = tuple((e.positive, e.negative) for e in step.experts)
    for name in step.names():
        _add(work, name, PromptGatePlan(embedding, experts, (len(experts), hidden), step.dtype), where, origin)


def _plan_merge(step: Merge, where: str, work: dict[str, TensorPlan], origin: dict[str, str], source) -> None:
    from . import merges
    bases = [source(step.base, where)] if step.base else []
    others = [source(s.source, where) for s in step.sources]
    srcs = bases + others
    labels = [f"input {s.label!r}" for s in srcs]
    names = select(list(srcs[0].tensors), step.selection, where, labels[0])
    positions = _layer_positions(step, names)
    step_settings = step.settings(None)
    source_settings = [step.settings(i) for i in range(len(step.sources))]
    for name in names:
        for s, label in zip(srcs[1:], labels[1:]):
            if name not in s.tensors:
                raise RecipeError(f"{where}: tensor {name!r} is in {labels[0]} but not in {label}; shapes cannot merge")
        plans: list[TensorPlan] = [s.copy(name) for s in srcs]
        target = apply_renames(step.rename, name)
        if _merge_plans(where, name, plans, labels) == "identical":
            _add(work, target, plans[0], where, origin)
            continue
        t = positions.get(name, 0.0)
        params = _evaluated(step_settings, name, t, where, "parameters.")
        per_source = [_evaluated(settings, name, t, where, f"sources[{i}].") for i, settings in enumerate(source_settings)]
        numel = plans[0].numel
        for i, sp in enumerate(per_source):
            merges.check_density(step.op, numel, sp, f"{where}: sources[{i}] on {name!r}")
        base_plan = plans[0] if bases else None
        children = plans[1:] if bases else plans
        merged = MergePlan(step.op, base_plan, children, per_source, params, step.seed or 0, target,
                           step.dtype or plans[0].dtype)
        _add(work, target, merged, where, origin)
