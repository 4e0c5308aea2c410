"""``nuslerp``, ``multislerp`` and ``karcher`` computed chunk by chunk from the inputs as stored,
with the bits of :mod:`.spherical`'s whole-tensor functions.

Each needs a few scalars about whole tensors (norms, dot products; per row for a row-wise
nuslerp): they are fixed-tree sums rebuilt from aligned chunks (:class:`.chunked.StoredInputs`),
each pass recomputing its element-wise terms from the stored inputs, so no float64 copy of a whole
tensor is held. The rest is element-wise, one chunk at a time, with the whole path's IEEE
operations in its order.

- ``nuslerp`` flattened (the default, and every 1-D tensor): two passes of sums, then the output.
  Per row (``nuslerp_flatten: false``): groups of whole rows, each computed as the whole path
  computes its rows. Row-wise (``nuslerp_row_wise``, the rows are the columns of the tensor seen
  as (shape[0], rest)): one pass over groups of columns finds each column's coefficients, a second
  writes the output in C order with them.
- ``multislerp``: four passes of sums (the norms, the weighted mean's norm, each unit's dot
  product with the mean, the tangent's norm), then the output.
- ``karcher``: the iteration's state ``u`` is a whole float64 tensor in the whole path; here each
  chunk of ``u`` is recomputed from the stored inputs by replaying the iterations so far with
  their scalars (dot products, norms, recorded as found): an iteration costs three passes, each
  replaying the steps so far. Most merges stop within :data:`REPLAYED_STEPS` steps and hold no
  more than a chunk; a longer one holds ``u`` whole (one float64 tensor, written chunk by chunk)
  every :data:`REPLAYED_STEPS` steps and replays from there, so time stays linear in max_iter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from .chunked import StoredInputs, Widen, row_spans
from .numerics import MergeValueError, acos, cos, row_sums, sequential_sum, sin, tree_sum
from .spherical import nuslerp, nuslerp_coefficients, nuslerp_combine

__all__ = ["nuslerp_chunks", "multislerp_chunks", "karcher_chunks", "REPLAYED_STEPS"]

#: karcher replays at most this many iterations per chunk; past them its iterate is held whole
#: (one float64 tensor) and replays start from there, so time stays linear in max_iter
REPLAYED_STEPS = 4


def nuslerp_chunks(t: float, base: np.ndarray | None, xs: Sequence[np.ndarray], widen: Sequence[Widen | None],
                   row_wise: bool, flatten: bool, chunk: int) -> Iterator[np.ndarray]:
    """:func:`.spherical.nuslerp` of two sources (their task vectors when there is a base, plus
    the base), chunk by chunk, same bits."""
    inputs = StoredInputs(base, xs, widen, chunk)

    def vectors(start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        x0, x1 = inputs.sources(start, stop)
        if not inputs.has_base:
            return x0, x1, None
        b = inputs.base(start, stop)
        return x0 - b, x1 - b, b

    def finish(b: np.ndarray | None, out: np.ndarray) -> np.ndarray:
        return out if b is None else b + out

    shape = inputs.shape
    if flatten or len(shape) < 2:
        squares = inputs.sums(lambda start, stop: [v * v for v in vectors(start, stop)[:2]])
        d0, d1 = max(math.sqrt(squares[0]), 1e-7), max(math.sqrt(squares[1]), 1e-7)

        def products(start: int, stop: int) -> list[np.ndarray]:
            a, b, _ = vectors(start, stop)
            return [(a / d0) * (b / d1)]

        coefficients = nuslerp_coefficients(t, inputs.sums(products)[0])
        for start, stop in inputs.spans:
            a, b, base_part = vectors(start, stop)
            yield finish(base_part, nuslerp_combine(t, coefficients, a, b))
        return
    if not row_wise:
        row_len = shape[-1]
        for start, stop in row_spans(inputs.n // row_len, row_len, chunk):
            a, b, base_part = vectors(start, stop)
            out = nuslerp(t, a.reshape(-1, row_len), b.reshape(-1, row_len), False, False)
            yield finish(base_part, out.reshape(-1))
        return
    yield from _nuslerp_columns(t, inputs, vectors, finish)


def _nuslerp_columns(t: float, inputs: StoredInputs, vectors, finish) -> Iterator[np.ndarray]:
    """Row-wise nuslerp: each column of the (shape[0], rest) view is one slerp."""
    height = inputs.shape[0]
    width = inputs.n // height
    lerp = np.zeros(width, dtype=bool)
    c0, c1, c2 = np.zeros(width), np.zeros(width), np.ones(width)
    for first, last in row_spans(width, height, inputs.chunk):  # spans of columns, counted in elements
        first, last = first // height, last // height
        a, b = (inputs.source_columns(i, first, last) for i in (0, 1))
        if inputs.has_base:
            base_columns = inputs.base_columns(first, last)
            a, b = a - base_columns, b - base_columns
        ua = a / np.maximum(np.sqrt(row_sums(a * a)), 1e-7)
        ub = b / np.maximum(np.sqrt(row_sums(b * b)), 1e-7)
        dots = row_sums(ua * ub)[:, 0]
        for column, dot in zip(range(first, last), dots):
            coefficients = nuslerp_coefficients(t, float(dot))
            if coefficients is None:
                lerp[column] = True
            else:
                c0[column], c1[column], c2[column] = coefficients
    for start, stop in row_spans(height, width, inputs.chunk):
        a, b, base_part = vectors(start, stop)
        a, b = a.reshape(-1, width), b.reshape(-1, width)
        out = np.where(lerp, (1 - t) * a + t * b, (c0 * a + c1 * b) / c2)
        yield finish(base_part, out.reshape(-1))


def multislerp_chunks(xs: Sequence[np.ndarray], weights: Sequence[float], base: np.ndarray | None,
                      normalize_weights: bool, eps: float, widen: Sequence[Widen | None],
                      chunk: int) -> Iterator[np.ndarray]:
    """:func:`.spherical.multislerp`, chunk by chunk, same bits."""
    inputs = StoredInputs(base, xs, widen, chunk)
    w = [float(v) for v in weights]
    if normalize_weights:
        total = tree_sum(np.array(w))
        w = [v / total for v in w]

    def vectors(start: int, stop: int) -> tuple[list[np.ndarray], np.ndarray | None]:
        sources = inputs.sources(start, stop)
        if not inputs.has_base:
            return sources, None
        b = inputs.base(start, stop)
        return [x - b for x in sources], b

    norms = [math.sqrt(s) for s in inputs.sums(lambda start, stop: [x * x for x in vectors(start, stop)[0]])]

    def units(start: int, stop: int) -> list[np.ndarray]:
        return [x / (n + eps) for x, n in zip(vectors(start, stop)[0], norms)]

    def weighted_mean(us: list[np.ndarray]) -> np.ndarray:
        return sequential_sum([u * wi for u, wi in zip(us, w)])

    def mean_squares(start: int, stop: int) -> list[np.ndarray]:
        mean = weighted_mean(units(start, stop))
        return [mean * mean]

    mean_norm = math.sqrt(inputs.sums(mean_squares)[0])
    if mean_norm < eps:
        if len(xs) != 2:
            raise MergeValueError("multislerp: the weighted sum of the unit tensors is zero (antipodal inputs); change the weights")
        for start, stop in inputs.spans:
            vs, b = vectors(start, stop)
            res = vs[0] * w[0] + vs[1] * w[1]
            yield res + b if b is not None else res
        return

    def mean_products(start: int, stop: int) -> list[np.ndarray]:
        us = units(start, stop)
        mean = weighted_mean(us) / mean_norm
        return [u * mean for u in us]

    dots = inputs.sums(mean_products)

    def tangent(us: list[np.ndarray], mean: np.ndarray) -> np.ndarray:
        tangents = [u - dot * mean for u, dot in zip(us, dots)]
        return sequential_sum([tv * wi for tv, wi in zip(tangents, w)])

    def tangent_squares(start: int, stop: int) -> list[np.ndarray]:
        us = units(start, stop)
        tv = tangent(us, weighted_mean(us) / mean_norm)
        return [tv * tv]

    tangent_norm = math.sqrt(inputs.sums(tangent_squares)[0]) + eps
    along, across = cos(tangent_norm), sin(tangent_norm) / tangent_norm
    avg_norm = math.fsum(n * wi for n, wi in zip(norms, w))
    for start, stop in inputs.spans:
        us = units(start, stop)
        mean = weighted_mean(us) / mean_norm
        result = (mean * along + tangent(us, mean) * across) * avg_norm
        b = inputs.base(start, stop) if inputs.has_base else None
        yield result + b if b is not None else result


@dataclass
class _Step:
    """One Karcher iteration's scalars: (unit index, dot, weight·θ/sin θ) per term, the tangent's
    norm, and the norm u was divided by (None when it was not)."""

    terms: list[tuple[int, float, float]]
    tangent_norm: float = 0.0
    u_norm: float | None = None


def karcher_chunks(xs: Sequence[np.ndarray], max_iter: int, tol: float, widen: Sequence[Widen | None],
                   chunk: int) -> Iterator[np.ndarray]:
    """:func:`.spherical.karcher`, chunk by chunk, same bits (the iterate replayed per chunk)."""
    inputs = StoredInputs(None, xs, [None, *widen[1:]], chunk)
    alphas = [1.0 / len(xs)] * len(xs)
    norms = [math.sqrt(s) for s in inputs.sums(lambda start, stop: [x * x for x in inputs.sources(start, stop)])]
    valid = [i for i, n in enumerate(norms) if n > tol]
    if not valid:
        for start, stop in inputs.spans:
            yield np.zeros(stop - start)
        return
    alpha_sum = 0.0
    for i in valid:
        alpha_sum += alphas[i]
    a = [alphas[i] / alpha_sum for i in valid]

    def units(start: int, stop: int) -> list[np.ndarray]:
        sources = inputs.sources(start, stop)
        return [np.zeros_like(sources[i]) if norms[i] == 0.0 else sources[i] / norms[i] for i in valid]

    def mean(us: list[np.ndarray]) -> np.ndarray:
        u = np.zeros_like(us[0])
        for ai, ui in zip(a, us):
            u = u + ai * ui
        return u

    norm_u = math.sqrt(inputs.sums(lambda start, stop: [(m := mean(units(start, stop))) * m])[0])
    steps: list[_Step] = []

    def tangent(u: np.ndarray, us: list[np.ndarray], step: _Step) -> np.ndarray:
        T = np.zeros_like(u)
        for index, dot, factor in step.terms:
            T = T + factor * (us[index] - dot * u)
        return T

    def moved(u: np.ndarray, T: np.ndarray, step: _Step) -> np.ndarray:
        return cos(step.tangent_norm) * u + sin(step.tangent_norm) * (T / step.tangent_norm)

    held: list[np.ndarray] = []  # u as of the last checkpoint (none yet: u from the units)

    def iterate(start: int, stop: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """The chunk of u after the recorded steps, and the chunk's units."""
        us = units(start, stop)
        if held:
            u = held[0][start:stop]
        else:
            u = us[0].copy() if norm_u < tol else mean(us) / norm_u
        for step in steps:
            u = moved(u, tangent(u, us, step), step)
            if step.u_norm is not None:
                u = u / step.u_norm
        return u, us

    for _ in range(max_iter):
        if len(steps) == REPLAYED_STEPS:  # a checkpoint: u held whole, replays start from it
            u_whole = held[0] if held else np.empty(inputs.n)
            for start, stop in inputs.spans:
                u_whole[start:stop] = iterate(start, stop)[0]  # a span reads only its own elements
            held[:] = [u_whole]
            steps.clear()

        def products(start: int, stop: int) -> list[np.ndarray]:
            u, us = iterate(start, stop)
            return [u * ui for ui in us]

        step = _Step([])
        for index, total in enumerate(inputs.sums(products)):
            dot = min(max(total, -1.0), 1.0)
            theta = acos(dot)
            if theta < tol:
                continue
            step.terms.append((index, dot, a[index] * (theta / sin(theta))))

        def tangent_squares(start: int, stop: int) -> list[np.ndarray]:
            u, us = iterate(start, stop)
            T = tangent(u, us, step)
            return [T * T]

        step.tangent_norm = math.sqrt(inputs.sums(tangent_squares)[0])
        if step.tangent_norm < tol:
            break

        def moved_squares(start: int, stop: int) -> list[np.ndarray]:
            u, us = iterate(start, stop)
            v = moved(u, tangent(u, us, step), step)
            return [v * v]

        u_norm = math.sqrt(inputs.sums(moved_squares)[0])
        step.u_norm = u_norm if u_norm > tol else None
        steps.append(step)
    s = 0.0
    for ai, n in zip(alphas, norms):
        s += ai * n
    for start, stop in inputs.spans:
        yield s * iterate(start, stop)[0]
