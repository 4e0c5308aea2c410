"""Tensor plans: how one output tensor is produced, lazily, block by block.

A plan knows its output dtype, shape and (for copied tensors) digest before any data is read; its
data is produced block by block only when the engine writes it: a copy (:class:`CopyPlan`, read
straight from its element), a cast, a linear combination, task arithmetic, a LoRA merge, a
mergekit merge method, a random initialisation, or a checked tensor of a composition input
(:class:`CheckedPlan`). :class:`Plan` is a recipe's output as these plans; the recipe's steps are
turned into one by :func:`registry.compose.plan.plan_tensors`.

A tensor taken from a composition input (:mod:`registry.compose.nested`) is planned as the plan
that composition has for it: a copy of one of its elements stays a :class:`CopyPlan` of that
element (read straight from it), a derived tensor becomes a :class:`CheckedPlan` that checks the
digest the composition's output table states as the data streams.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from ..digest import Bytes32, blake3_hasher
from ..errors import IntegrityError
from ..formats.content_id import TensorEntry, tensor_set_content_id
from ..formats.safetensors import tensor_nbytes
from .readers import TensorElement

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
    "PromptGatePlan",
    "RandomPlan",
    "CheckedPlan",
    "CompositionIntegrityError",
    "Plan",
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
    digest: Bytes32 | None = None

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
    whole, as stored (the methods look at whole tensors: norms, angles, ranks), and every method
    computes its float64 result chunk by chunk from them (:func:`.merges.streams`), rounded once
    and handed out in blocks. Memory: the inputs as stored and a few float64 chunks."""

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

        if merges.streams(self.method, self.base is not None) and self.numel:
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
        """A method of :data:`.merges.STREAMED_METHODS` from the inputs in their own dtype, chunk by
        chunk (:mod:`.merges.streamed`): memory is the inputs as stored, not float64 copies."""
        from . import merges, ops
        import numpy as np
        base = read_whole(self.base).reshape(self.shape) if self.base is not None else None
        raws = [read_whole(p).reshape(self.shape) for p in self.children]
        plans = [self.base] + list(self.children)
        widen = [None if p is None else (lambda raw, dtype=p.dtype: ops.to_float64(raw, dtype)) for p in plans]
        chunks = merges.stream_chunks(self.method, base, raws, widen, self.source_params, self.params,
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
    experts: tuple[tuple[Any, Any], ...]
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
            hasher.update(pending.data.cast("B"))
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

    def copy_table(self) -> list[TensorEntry] | None:
        """The output's tensor table when every tensor is a copy (digests known without data), else None."""
        table = []
        for name, plan in self.tensors.items():
            if plan.digest is None:
                return None
            table.append(TensorEntry(name, plan.dtype, tuple(plan.shape), plan.digest, plan.nbytes))
        return table

    def predicted_content_id(self) -> str | None:
        """The output content id when every tensor is a copy (no data needed), else None."""
        table = self.copy_table()
        return None if table is None else str(tensor_set_content_id(table))
