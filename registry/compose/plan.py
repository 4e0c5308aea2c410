"""Planning: run a recipe's steps over manifests only, giving one lazy plan per output tensor.

Every bad-input case that can be found without reading tensor data is found here, before a byte
is written: a missing input, a selection that matches nothing, a layer that is not there, a name
produced twice, shapes that cannot merge, dtypes that cannot cast, a LoRA pair that does not fit
its target. A plan knows its output dtype, shape and (for copied tensors) digest; its data is
produced block by block only when the engine writes it.

A tensor taken from a composition input (:mod:`registry.compose.nested`) is planned as the plan
that composition has for it: a copy of one of its elements stays a :class:`CopyPlan` of that
element (read straight from it), a derived tensor becomes a :class:`CheckedPlan` that checks the
digest the composition's output table states as the data streams.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import fnmatch
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Mapping

from ..digest import Bytes32, blake3_hasher
from ..formats.content_id import TensorEntry, tensor_set_content_id
from ..formats.safetensors import tensor_nbytes
from ..errors import IntegrityError
from ..limits import MODEL_JSON_BYTES, PLAN_WORK, TENSORS, LimitExceeded, NotJSON, loads_json
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

if TYPE_CHECKING:  # numpy loads only where tensors are computed (a plain copy verifies without it)
    import numpy as np

__all__ = [
    "TensorPlan",
    "CopyPlan",
    "CastPlan",
    "LinearPlan",
    "TaskArithmeticPlan",
    "LoraPlan",
    "MergePlan",
    "RandomPlan",
    "CheckedPlan",
    "CompositionIntegrityError",
    "Plan",
    "plan_tensors",
    "copy_of",
    "read_whole",
    "block_elems",
    "DERIVED_BLOCK_ELEMS",
]

#: Elements per block for derived tensors: each float64 working array is at most 8 MiB.
DERIVED_BLOCK_ELEMS = 1 << 20


class CompositionIntegrityError(IntegrityError):
    """A composition used as an input does not build what its record (and recipe) claim."""


class TensorPlan(ABC):
    """How one output tensor is produced. ``digest`` is known in advance for copies only."""

    dtype: str
    shape: tuple[int, ...]
    digest: bytes | None = None

    @property
    def nbytes(self) -> int:
        return tensor_nbytes(self.dtype, self.shape)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def row_aligned(self) -> bool:
        """True when blocks must hold whole rows (a LoRA merge somewhere in the tree)."""
        return False

    @abstractmethod
    def blocks(self, block_elems: int) -> Iterator[np.ndarray]:
        """Flat raw-element arrays of ``block_elems`` elements (the last may be shorter)."""

    @abstractmethod
    def inputs(self) -> set[str]:
        """Names of the recipe inputs this tensor reads."""

    @abstractmethod
    def describe(self) -> str:
        """A short human description (for errors and reports)."""


@dataclass(eq=False)
class CopyPlan(TensorPlan):
    """A tensor copied bit for bit from an input element (possibly under another name)."""

    element: TensorElement
    name: str

    def __post_init__(self) -> None:
        entry = self.element.entries[self.name]
        self.dtype, self.shape, self.digest = entry.dtype, entry.shape, entry.digest

    def blocks(self, block_elems: int) -> Iterator[np.ndarray]:
        return self.element.blocks(self.name, block_elems)

    def inputs(self) -> set[str]:
        return {self.element.ref.name}

    def describe(self) -> str:
        return f"{self.element.ref.name}:{self.name}"


def _float_blocks(plan: TensorPlan, block_elems: int) -> Iterator[np.ndarray]:
    from . import ops
    for block in plan.blocks(block_elems):
        yield ops.to_float64(block, plan.dtype)


@dataclass(eq=False)
class CastPlan(TensorPlan):
    child: TensorPlan
    dtype: str

    def __post_init__(self) -> None:
        self.shape = self.child.shape

    @property
    def row_aligned(self) -> bool:
        return self.child.row_aligned

    def blocks(self, block_elems: int) -> Iterator[np.ndarray]:
        from . import ops
        for block in _float_blocks(self.child, block_elems):
            yield ops.from_float64(block, self.dtype)

    def inputs(self) -> set[str]:
        return self.child.inputs()

    def describe(self) -> str:
        return f"cast({self.child.describe()}, {self.dtype})"


@dataclass(eq=False)
class LinearPlan(TensorPlan):
    children: list[TensorPlan]
    weights: list[float]
    dtype: str

    def __post_init__(self) -> None:
        self.shape = self.children[0].shape

    def blocks(self, block_elems: int) -> Iterator[np.ndarray]:
        from . import ops
        streams = [_float_blocks(child, block_elems) for child in self.children]
        for parts in zip(*streams):
            yield ops.from_float64(ops.linear_block(parts, self.weights), self.dtype)

    def inputs(self) -> set[str]:
        return set().union(*(c.inputs() for c in self.children))

    def describe(self) -> str:
        return "linear(" + ", ".join(f"{w}*{c.describe()}" for c, w in zip(self.children, self.weights)) + ")"


@dataclass(eq=False)
class TaskArithmeticPlan(TensorPlan):
    base: TensorPlan
    children: list[TensorPlan]
    weights: list[float]
    dtype: str

    def __post_init__(self) -> None:
        self.shape = self.base.shape

    def blocks(self, block_elems: int) -> Iterator[np.ndarray]:
        from . import ops
        base = _float_blocks(self.base, block_elems)
        streams = [_float_blocks(child, block_elems) for child in self.children]
        for base_block, *parts in zip(base, *streams):
            yield ops.from_float64(ops.task_arithmetic_block(base_block, parts, self.weights), self.dtype)

    def inputs(self) -> set[str]:
        return self.base.inputs().union(*(c.inputs() for c in self.children))

    def describe(self) -> str:
        return f"task_arithmetic({self.base.describe()}, " + ", ".join(f"{w}*{c.describe()}" for c, w in zip(self.children, self.weights)) + ")"


@dataclass(eq=False)
class LoraPlan(TensorPlan):
    base: TensorPlan
    lora_a: TensorPlan
    lora_b: TensorPlan
    scale: float
    fan_in_fan_out: bool
    dtype: str

    def __post_init__(self) -> None:
        self.shape = self.base.shape

    @property
    def row_aligned(self) -> bool:
        return True

    def blocks(self, block_elems: int) -> Iterator[np.ndarray]:
        from . import ops
        row_len = self.shape[1]
        if block_elems % row_len:  # pragma: no cover - the engine always asks for whole rows
            raise AssertionError("LoRA blocks must hold whole rows")
        a = ops.to_float64(read_whole(self.lora_a), self.lora_a.dtype)
        b = ops.to_float64(read_whole(self.lora_b), self.lora_b.dtype)
        row = 0
        for block in _float_blocks(self.base, block_elems):
            rows = block.size // row_len
            merged = ops.lora_block(block.reshape(rows, row_len), a, b, self.scale, slice(row, row + rows), self.fan_in_fan_out)
            row += rows
            yield ops.from_float64(merged.reshape(-1), self.dtype)
        assert row == self.shape[0]

    def inputs(self) -> set[str]:
        return self.base.inputs() | self.lora_a.inputs() | self.lora_b.inputs()

    def describe(self) -> str:
        return f"lora({self.base.describe()}, {self.lora_a.describe()}, {self.lora_b.describe()}, scale={self.scale})"



@dataclass(eq=False)
class MergePlan(TensorPlan):
    """A tensor of a mergekit merge method (:mod:`registry.compose.merges`): the inputs are read
    whole (the methods look at whole tensors: norms, angles, ranks), the float64 result is rounded
    once and handed out in blocks. Memory: the inputs and a few float64 copies of one tensor."""

    method: str
    base: TensorPlan | None
    children: list[TensorPlan]
    source_params: list[dict]
    params: dict
    seed: int
    name: str
    dtype: str

    def __post_init__(self) -> None:
        self.shape = (self.base or self.children[0]).shape

    def blocks(self, block_elems: int) -> Iterator[np.ndarray]:
        from . import merges
        import numpy as np
        from . import ops
        def whole(plan: TensorPlan) -> np.ndarray:
            return ops.to_float64(read_whole(plan), plan.dtype).reshape(self.shape)

        if self.method in merges.STREAMED_METHODS and self.base is not None and self.numel:
            yield from self._streamed(block_elems)
            return

        base = whole(self.base) if self.base is not None else None
        xs = [whole(child) for child in self.children]
        try:
            with np.errstate(all="ignore"):
                result = merges.run_method(self.method, base, xs, self.source_params, self.params, self.seed, self.name)
        except merges.MergeValueError as exc:
            raise merges.MergeValueError(f"{self.method} of tensor {self.name!r}: {exc}") from None
        flat = ops.from_float64(np.ascontiguousarray(result, dtype=np.float64).reshape(-1), self.dtype)
        for start in range(0, max(flat.size, 1), block_elems):
            yield flat[start:start + block_elems]

    def _streamed(self, block_elems: int) -> Iterator[np.ndarray]:
        """ties/dare/slerp/nearswap from the inputs in their own dtype, chunk by chunk (:mod:`.merges.streamed`):
        memory is the inputs as stored, not float64 copies."""
        from . import merges, ops
        import numpy as np
        plans = [self.base] + list(self.children)
        raws = [read_whole(p) for p in plans]
        widen = [lambda raw, dtype=p.dtype: ops.to_float64(raw, dtype) for p in plans]
        chunks = merges.stream_chunks(self.method, raws[0], raws[1:], widen, self.source_params, self.params,
                                      self.seed, self.name)
        pending: list[np.ndarray] = []
        held = 0
        while True:
            try:
                with np.errstate(all="ignore"):  # around the arithmetic only, never across a yield
                    chunk = next(chunks, None)
                    if chunk is not None:
                        pending.append(ops.from_float64(chunk, self.dtype))
            except merges.MergeValueError as exc:
                raise merges.MergeValueError(f"{self.method} of tensor {self.name!r}: {exc}") from None
            if chunk is None:
                break
            held += chunk.size
            while held >= block_elems:
                flat = np.concatenate(pending) if len(pending) > 1 else pending[0]
                yield flat[:block_elems]
                pending, held = [flat[block_elems:]], flat.size - block_elems
        if held:
            yield np.concatenate(pending)

    def inputs(self) -> set[str]:
        own = self.base.inputs() if self.base is not None else set()
        return own.union(*(c.inputs() for c in self.children))

    def describe(self) -> str:
        parts = ([f"base={self.base.describe()}"] if self.base is not None else []) + [c.describe() for c in self.children]
        return f"{self.method}(" + ", ".join(parts) + ")"


@dataclass(eq=False)
class PromptGatePlan(TensorPlan):
    """A router from prompts' token embeddings (:mod:`.merges.gates`): the embedding is read in
    its dtype, only the prompts' rows are widened. Memory: the embedding and the router."""

    embedding: TensorPlan
    experts: tuple
    shape: tuple[int, ...]
    dtype: str

    def blocks(self, block_elems: int) -> Iterator[np.ndarray]:
        from . import merges, ops
        table = read_whole(self.embedding)
        dtype = self.embedding.dtype
        rows = merges.prompt_gate_rows(lambda ids: ops.to_float64(table[ids], dtype), self.experts)
        flat = ops.from_float64(rows.reshape(-1), self.dtype)
        for start in range(0, flat.size, block_elems):
            yield flat[start:start + block_elems]

    def inputs(self) -> set[str]:
        return self.embedding.inputs()

    def describe(self) -> str:
        return f"prompt_gate({self.embedding.describe()}, {len(self.experts)} experts)"


@dataclass(eq=False)
class RandomPlan(TensorPlan):
    """A tensor drawn from the counter stream (a router initialisation): element j depends only on
    (seed, name, j), so it streams block by block and verify re-derives it."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    distribution: str
    scale: float
    seed: int

    def blocks(self, block_elems: int) -> Iterator[np.ndarray]:
        from . import merges
        from . import ops
        for start in range(0, self.numel, block_elems):
            count = min(block_elems, self.numel - start)
            values = merges.random_block(self.distribution, self.scale, self.seed, self.name, start, count)
            yield ops.from_float64(values, self.dtype)

    def inputs(self) -> set[str]:
        return set()

    def describe(self) -> str:
        return f"random_init({self.distribution}, scale={self.scale}, seed={self.seed})"


@dataclass(eq=False)
class CheckedPlan(TensorPlan):
    """A derived tensor of a composition input: its data is the composition's own plan for it,
    and its digest must be the one the composition's output table states. The digest is checked
    as the blocks stream, before the last block is handed out (like an element's tensor), so a
    composition that does not build its table never completes a tensor downstream."""

    child: TensorPlan
    expected: Bytes32
    label: str

    def __post_init__(self) -> None:
        self.dtype, self.shape, self.digest = self.child.dtype, self.child.shape, self.expected

    @property
    def row_aligned(self) -> bool:
        return self.child.row_aligned

    def blocks(self, block_elems: int) -> Iterator[np.ndarray]:
        import numpy as np
        hasher = blake3_hasher(self.nbytes)
        pending = None
        for block in self.child.blocks(block_elems):
            if pending is not None:
                yield pending
            pending = np.array(block, copy=True, order="C")  # a child may reuse its buffer
            hasher.update(memoryview(pending).cast("B"))
        actual = hasher.digest()
        if bytes(actual) != bytes(self.expected):
            raise CompositionIntegrityError(
                f"{self.label} is 0x{bytes(actual).hex()} when built from its recipe, but the composition's output table "
                f"says {self.expected}; the composition does not build what it claims, do not build on it"
            )
        if pending is not None:
            yield pending

    def inputs(self) -> set[str]:
        return self.child.inputs()

    def describe(self) -> str:
        return f"{self.label}={self.child.describe()}"


def copy_of(element: TensorElement, name: str) -> TensorPlan:
    """The plan of tensor ``name`` of an input: a :class:`CopyPlan`, or, for a composition input,
    the composition's own plan for it (see the module docstring)."""
    nested = getattr(element, "tensor_plan", None)
    return nested(name) if nested is not None else CopyPlan(element, name)


def block_elems(plan: TensorPlan) -> int:
    """Elements per block when a derived tensor is streamed: :data:`DERIVED_BLOCK_ELEMS`, rounded
    down to whole rows (at least one) when the plan needs them."""
    if plan.row_aligned:
        row = math.prod(plan.shape[1:]) or 1
        return max(1, DERIVED_BLOCK_ELEMS // row) * row
    return DERIVED_BLOCK_ELEMS


def read_whole(plan: TensorPlan) -> np.ndarray:
    """A whole tensor as raw elements of its dtype (a copy, verified), shaped. Memory: one tensor."""
    import numpy as np
    if isinstance(plan, CopyPlan):
        return plan.element.read_all(plan.name)
    parts = list(plan.blocks(max(plan.numel, 1)))
    flat = np.concatenate(parts) if len(parts) != 1 else np.array(parts[0], copy=True)
    return flat.reshape(plan.shape)


@dataclass
class Plan:
    """The output of a recipe as lazy tensor plans (insertion order = step order)."""

    tensors: dict[str, TensorPlan]

    @property
    def total_bytes(self) -> int:
        return sum(plan.nbytes for plan in self.tensors.values())

    @property
    def largest_tensor(self) -> int:
        return max((plan.nbytes for plan in self.tensors.values()), default=0)

    def predicted_content_id(self) -> str | None:
        """The output content id when every tensor is a copy (no data needed), else None."""
        if any(plan.digest is None for plan in self.tensors.values()):
            return None
        return str(tensor_set_content_id(
            TensorEntry(name, plan.dtype, plan.shape, plan.digest, plan.nbytes) for name, plan in self.tensors.items()
        ))


# --------------------------------------------------------------------------------------------
# planning


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
        except LimitExceeded as exc:
            raise exc.limit.exceeded(exc.what, exc.value, RecipeLimitError) from None
        except NotJSON as exc:
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
