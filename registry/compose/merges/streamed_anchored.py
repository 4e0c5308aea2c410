"""``model_stock``, ``ram``, ``ramplus_tl`` and ``sce`` computed chunk by chunk from the inputs as
stored, with the bits of the whole-tensor functions (:mod:`.others`, :mod:`.consensus`).

- ``ram`` is element-wise; ``ramplus_tl`` needs each source's counts of shared and own changes
  (integers: chunk counts add up exactly), one pass before the output.
- ``model_stock``: the task vectors' norms and pairwise dot products are fixed-tree sums rebuilt
  from aligned chunks (one pass), then the output. With ``filter_wise`` (per row, the last axis)
  groups of whole rows are computed as the whole path computes its rows (a 1-D tensor is one row,
  held in float64: its per-row arithmetic can give a NaN of the other sign than the flat sums).
- ``arcee_fusion``: the importance scores are computed per group of whole rows (their softmaxes
  are per row); the three exact quantiles are three radix selections over the scores' values
  (sharing their passes: usually two, the scores recomputed for each, and the output), the rest element-wise.
- ``sce``: the variance top-k is the radix selection of ``ties`` over the variance's magnitudes
  (the same elements as the whole path's stable sort: ties to the lower index, NaN last), the
  weights are fixed-tree sums of the masked task vectors, the rest element-wise.
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np

from .chunked import StoredInputs, Widen, row_spans
from .consensus import sign_consensus
from .numerics import sequential_sum
from .others import (arcee_fusion_kl, model_stock, model_stock_combine, model_stock_pairs, model_stock_t, ram_combine, ram_counts,
                     ram_vectors, ramplus_lambdas)
from .sparsification import magnitude_keys, top_k_mask, top_k_threshold, top_k_thresholds

__all__ = ["model_stock_chunks", "ram_chunks", "sce_chunks", "arcee_fusion_chunks", "value_keys", "key_value"]


def model_stock_chunks(base: np.ndarray, xs: Sequence[np.ndarray], filter_wise: bool, widen: Sequence[Widen | None],
                       chunk: int) -> Iterator[np.ndarray]:
    """:func:`.others.model_stock`, chunk by chunk, same bits."""
    inputs = StoredInputs(base, xs, widen, chunk)
    shape = inputs.shape
    if filter_wise:  # a 1-D tensor is one row, computed whole (the flat sums differ in a NaN's sign)
        row_len = shape[-1] if shape else 1
        for start, stop in row_spans(inputs.n // row_len, row_len, chunk):
            rows = inputs.base(start, stop).reshape(-1, row_len)
            sources = [x.reshape(-1, row_len) for x in inputs.sources(start, stop)]
            yield model_stock(rows, sources, True).reshape(-1)
        return
    pairs = model_stock_pairs(len(xs))

    def terms(start: int, stop: int) -> list[np.ndarray]:
        w0 = inputs.base(start, stop)
        offsets = [w - w0 for w in inputs.sources(start, stop)]
        return [o * o for o in offsets] + [offsets[i] * offsets[j] for i, j in pairs]

    sums = inputs.sums(terms)
    norms = [math.sqrt(s) for s in sums[:len(xs)]]
    t = model_stock_t(norms, dict(zip(pairs, sums[len(xs):])))
    for start, stop in inputs.spans:
        yield model_stock_combine(t, inputs.base(start, stop), inputs.sources(start, stop))


def ram_chunks(base: np.ndarray, xs: Sequence[np.ndarray], epsilon: float, plus: tuple[float, float] | None,
               widen: Sequence[Widen | None], chunk: int) -> Iterator[np.ndarray]:
    """:func:`.others.ram` (``plus`` None) or :func:`.others.ramplus_tl` (``plus`` = (r, alpha)),
    chunk by chunk, same bits."""
    inputs = StoredInputs(base, xs, widen, chunk)
    lams = None
    if plus is not None:
        counts = [(0, 0)] * len(xs)
        for start, stop in inputs.spans:
            vectors = ram_vectors(inputs.base(start, stop), inputs.sources(start, stop), epsilon)
            counts = [(s0 + s1, o0 + o1) for (s0, o0), (s1, o1) in zip(counts, ram_counts(vectors[1], vectors[3], vectors[4]))]
        lams = ramplus_lambdas(counts, plus[0], plus[1], epsilon)
    for start, stop in inputs.spans:
        b = inputs.base(start, stop)
        yield ram_combine(b, ram_vectors(b, inputs.sources(start, stop), epsilon), lams)


def sce_chunks(base: np.ndarray, xs: Sequence[np.ndarray], select_topk: float, widen: Sequence[Widen | None],
               chunk: int) -> Iterator[np.ndarray]:
    """:func:`.consensus.sce`, chunk by chunk, same bits."""
    inputs = StoredInputs(base, xs, widen, chunk)
    n = len(xs)

    def task_vectors(start: int, stop: int) -> tuple[np.ndarray, list[np.ndarray]]:
        b = inputs.base(start, stop)
        return b, [x - b for x in inputs.sources(start, stop)]

    def variance(tvs: list[np.ndarray]) -> np.ndarray:
        mean = sequential_sum(tvs) / n
        return sequential_sum([(tv - mean) * (tv - mean) for tv in tvs]) / n

    threshold: tuple[int, int] | None = None  # None: keep nothing (with select_topk < 1)
    if 0 < select_topk < 1:
        nonzero = sum(int(np.count_nonzero(variance(task_vectors(start, stop)[1]))) for start, stop in inputs.spans)
        k = int(nonzero * select_topk)
        if k:
            def keys() -> Iterator[np.ndarray]:
                return (magnitude_keys(variance(task_vectors(start, stop)[1])) for start, stop in inputs.spans)

            threshold = top_k_threshold(keys, k)

    def masked() -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
        """The base and the (selected) task vectors, chunk by chunk."""
        seen = 0
        for start, stop in inputs.spans:
            b, tvs = task_vectors(start, stop)
            if select_topk < 1:
                if threshold is None:
                    mask = np.zeros(stop - start)
                else:
                    mask, seen = top_k_mask(magnitude_keys(variance(tvs)), threshold, seen)
                tvs = [tv * mask for tv in tvs]
            yield b, tvs

    chunks = masked()
    totals = inputs.sums(lambda start, stop: [tv * tv for tv in next(chunks)[1]])
    weights = [total / inputs.n for total in totals]
    weight_sum = math.fsum(weights)
    weights = [1.0 / n] * n if abs(weight_sum) < 1e-6 else [w / weight_sum for w in weights]
    for b, tvs in masked():
        erased = [m * w for m, w in zip(sign_consensus(tvs), weights)]
        merged = sequential_sum([tv * ew for tv, ew in zip(tvs, erased)])
        yield b + merged / np.maximum(sequential_sum(erased), 1e-6)


_TOP = np.uint64(1 << 63)


def value_keys(values: np.ndarray) -> np.ndarray:
    """uint64 keys in the order of ``np.sort`` of float64 values: a larger value, a larger key;
    every NaN the largest (numpy sorts NaN last), -0.0 the key of +0.0 (numpy keeps them together)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1) + 0.0  # -0.0 + 0.0 is +0.0
    bits = v.view(np.uint64)
    keys = np.where(bits >> np.uint64(63) == 1, ~bits, bits | _TOP)
    keys[np.isnan(v)] = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
    return keys


def key_value(key: int) -> float:
    """The float64 value of a :func:`value_keys` key (a NaN for the NaN key)."""
    k = np.uint64(key)
    bits = k ^ _TOP if k >= _TOP else ~k
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def arcee_fusion_chunks(base: np.ndarray, x: np.ndarray, widen: Sequence[Widen | None], chunk: int) -> Iterator[np.ndarray]:
    """:func:`.others.arcee_fusion`, rows at a time, same bits: the quantiles are the values at the
    same positions of the sorted scores (a zero's sign aside, which no comparison sees)."""
    inputs = StoredInputs(base, [x], widen, chunk)
    row_len = inputs.shape[-1] if inputs.shape else 1

    spans = list(row_spans(inputs.n // row_len, row_len, chunk))
    # the softmaxes' KL is one number per row: found once, then every pass's scores are |x - base| * kl
    kls = []
    for start, stop in spans:
        b = inputs.base(start, stop).reshape(-1, row_len)
        kls.append(arcee_fusion_kl(b, inputs.sources(start, stop)[0].reshape(-1, row_len)))

    def rows() -> Iterator[tuple[int, int, np.ndarray]]:
        for (start, stop), kl in zip(spans, kls):
            b = inputs.base(start, stop).reshape(-1, row_len)
            scores = np.abs(inputs.sources(start, stop)[0].reshape(-1, row_len) - b) * kl
            yield start, stop, scores.reshape(-1)

    last = inputs.n - 1
    # the value at ascending position p is the (n - p)-th largest; the three share their passes
    found = top_k_thresholds(lambda: (value_keys(scores) for _, _, scores in rows()),
                             [inputs.n - int(q * last) for q in (0.5, 0.75, 0.25)])
    median, upper, lower = (key_value(v) for v, _ in found)
    threshold = median + 1.5 * (upper - lower)
    for start, stop, scores in rows():
        b = inputs.base(start, stop)
        mask = (scores >= threshold).astype(np.float64)
        yield b + (inputs.sources(start, stop)[0] - b) * mask
