"""The inputs of a streamed merge: whole tensors kept as stored (their own dtype), widened to
float64 one span at a time, and whole-tensor sums rebuilt from the sums of aligned chunks.

A sum over a tensor is :func:`.numerics.tree_sum` of the whole: each aligned ``chunk``-element
span (a power of two) is summed in the fixed tree and the span sums are combined by
:func:`.numerics.tree_sum_of_chunks`, which gives the whole tree's bits. Element-wise work may use
any spans (rows, groups of rows); sums always use the aligned ones.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

import numpy as np

from .numerics import tree_sum, tree_sum_of_chunks

__all__ = ["Widen", "StoredInputs", "aligned_spans", "row_spans"]

Widen = Callable[[np.ndarray], np.ndarray]


def aligned_spans(n: int, chunk: int) -> list[tuple[int, int]]:
    """[start, stop) of consecutive ``chunk``-element pieces of n elements (the last may be short)."""
    return [(start, min(start + chunk, n)) for start in range(0, n, chunk)]


def row_spans(rows: int, row_len: int, chunk: int) -> Iterator[tuple[int, int]]:
    """Element spans of whole rows, about ``chunk`` elements each (one row when a row is longer)."""
    per = max(1, chunk // max(row_len, 1))
    for first in range(0, rows, per):
        yield first * row_len, min(first + per, rows) * row_len


class StoredInputs:
    """A merge's base (or None) and sources as stored, flat; ``widen[0]`` widens the base's raw
    elements exactly to float64 (None without a base), ``widen[1 + i]`` source i's."""

    def __init__(self, base: np.ndarray | None, xs: Sequence[np.ndarray], widen: Sequence[Widen | None], chunk: int):
        self.shape: tuple[int, ...] = tuple((base if base is not None else xs[0]).shape)
        self.n = math.prod(self.shape)
        self.chunk = chunk
        self.spans = aligned_spans(self.n, chunk)
        self._base = None if base is None else base.reshape(-1)
        self._xs = [x.reshape(-1) for x in xs]
        self._widen = list(widen)

    @property
    def has_base(self) -> bool:
        return self._base is not None

    def base(self, start: int, stop: int) -> np.ndarray:
        assert self._base is not None and self._widen[0] is not None
        return self._widen[0](self._base[start:stop])

    def sources(self, start: int, stop: int) -> list[np.ndarray]:
        return [self._widen_source(i)(x[start:stop]) for i, x in enumerate(self._xs)]

    def _widen_source(self, index: int) -> Widen:
        widen = self._widen[1 + index]
        assert widen is not None
        return widen

    def source_columns(self, index: int, first: int, last: int) -> np.ndarray:
        """Columns first..last-1 of source ``index`` seen as (shape[0], rest), widened, one row per column."""
        raw = self._xs[index].reshape(self.shape[0], -1)[:, first:last]
        return np.ascontiguousarray(self._widen_source(index)(raw).T)

    def base_columns(self, first: int, last: int) -> np.ndarray:
        assert self._base is not None and self._widen[0] is not None
        raw = self._base.reshape(self.shape[0], -1)[:, first:last]
        return np.ascontiguousarray(self._widen[0](raw).T)

    def sums(self, terms: Callable[[int, int], Sequence[np.ndarray]]) -> list[float]:
        """The whole-tensor :func:`.numerics.tree_sum` of each array ``terms(start, stop)`` returns
        for the aligned spans (the same number of arrays for every span)."""
        partials: list[list[float]] = []
        for start, stop in self.spans:
            values = terms(start, stop)
            if not partials:
                partials = [[] for _ in values]
            for bucket, value in zip(partials, values):
                bucket.append(tree_sum(value))
        last = self.spans[-1][1] - self.spans[-1][0]
        return [tree_sum_of_chunks(bucket, last, self.chunk) for bucket in partials]
