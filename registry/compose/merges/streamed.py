"""``ties``, ``dare_ties``, ``dare_linear``, ``slerp`` and ``nearswap`` computed chunk by chunk
from the inputs as stored, and :func:`stream_chunks`, which also dispatches to the other streamed
methods (:mod:`.streamed_spherical`: nuslerp, multislerp, karcher; :mod:`.streamed_anchored`:
model_stock, ram, ramplus_tl, sce).

The whole-tensor path (:func:`.run_method`) holds every input and several working copies in
float64; these methods need at most a few scalars about whole tensors, so they stream. For the
sparsifying ones:

- which elements are the top k by magnitude (``ties``): a radix selection
  (:func:`.sparsification.top_k_threshold`, four passes over the chunks, a histogram per 16-bit digit)
  gives the threshold key and how many keys equal to it are kept (the first ones in index order,
  as a stable sort would), never a sort;
- the L1 norms of mergekit's rescale: each :data:`CHUNK` (a power of two, aligned) is summed in
  the fixed tree and the chunk sums in the same tree (:func:`.numerics.tree_sum_of_chunks`), which
  is :func:`.numerics.tree_sum` of the whole.

``slerp`` needs the two norms and the dot product of the unit tensors (the same chunked tree
sums, two passes) and ``nearswap`` nothing (it is element-wise).

Everything else is element-wise (:func:`.consensus.combine`), and DARE's draws are a counter
stream, so each output chunk is computed from the same chunk of the inputs, with the same IEEE
operations in the same order as the whole-tensor path: the bits are identical. Memory: the inputs
in their own dtype plus a few float64 chunks.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from .chunked import Widen
from .consensus import combine
from .numerics import tree_sum, tree_sum_of_chunks
from .others import nearswap
from .randomness import uniforms
from .spherical import SLERP_EPS, slerp_coefficients, slerp_combine
from .streamed_anchored import arcee_fusion_chunks, model_stock_chunks, ram_chunks, sce_chunks
from .streamed_spherical import karcher_chunks, multislerp_chunks, nuslerp_chunks
from .sparsification import (SPARSIFY_METHODS, ascending_magnitude_keys, della_probabilities, magnitude_keys, rescale_factor, top_k_mask,
                             top_k_threshold)

__all__ = ["STREAMED_METHODS", "CHUNK", "gta_chunks", "slerp_chunks", "nearswap_chunks", "streams", "stream_chunks"]

STREAMED_METHODS = frozenset({"ties", "dare_ties", "dare_linear", "breadcrumbs", "breadcrumbs_ties", "della", "della_linear", "slerp", "nearswap", "nuslerp", "multislerp", "karcher",
                              "model_stock", "ram", "ramplus_tl", "sce", "arcee_fusion"})
_STREAMED_WITHOUT_BASE = frozenset({"nuslerp", "multislerp", "karcher"})
CHUNK = 1 << 20



def gta_chunks(method: str, base: np.ndarray, xs: Sequence[np.ndarray], widen: Sequence[Widen],
               source_params: Sequence[Mapping[str, Any]], params: Mapping[str, Any], seed: int,
               name: str) -> Iterator[np.ndarray]:
    """The float64 result of ``method`` in C order, :data:`CHUNK` elements at a time, identical to
    :func:`.consensus.gta` on the whole tensors. ``base`` and ``xs`` are raw elements of their own
    dtype; ``widen[0]`` widens the base's, ``widen[1 + i]`` source i's, exactly to float64."""
    flat_base = base.reshape(-1)
    flat_xs = [x.reshape(-1) for x in xs]
    n = flat_base.size
    spans = [(start, min(start + CHUNK, n)) for start in range(0, n, CHUNK)]
    kind = SPARSIFY_METHODS[method][0]

    def delta(i: int, start: int, stop: int) -> np.ndarray:
        return widen[1 + i](flat_xs[i][start:stop]) - widen[0](flat_base[start:stop])

    def masks(i: int, rule: tuple[Any, ...]) -> Iterator[np.ndarray | None]:
        """Source i's keep mask chunk by chunk (None: the task vector is kept whole)."""
        seen = [0, 0]
        probabilities = _DellaProbabilities(lambda start, stop: delta(i, start, stop), base.shape, n, *rule[1:]) \
            if rule[0] == "della" else None
        for start, stop in spans:
            if rule[0] in ("all", "zero"):
                yield None
            elif rule[0] == "topk":
                mask, seen[0] = top_k_mask(magnitude_keys(delta(i, start, stop)), rule[1], seen[0])
                yield mask
            elif rule[0] == "band":
                keys = ascending_magnitude_keys(delta(i, start, stop))
                keep = np.zeros(stop - start)
                if rule[2] is not None:
                    keep, seen[1] = top_k_mask(keys, rule[2], seen[1])
                if rule[1] is not None:
                    below, seen[0] = top_k_mask(keys, rule[1], seen[0])
                    keep = keep - below
                yield keep
            elif probabilities is not None:
                yield (uniforms(seed, name, i, start, stop - start) < probabilities(start, stop)).astype(np.float64)
            else:
                yield (uniforms(seed, name, i, start, stop - start) < rule[1]).astype(np.float64)

    rules: list[tuple[Any, ...]] = []
    factors: list[float | None] = []
    for i, p in enumerate(source_params):
        density = p["density"]
        if density >= 1:
            rules.append(("all",))
        elif kind in ("magnitude", "della_magprune") and density <= 0:
            rules.append(("zero",))
        elif kind == "magnitude":
            k = max(1, int(density * n))
            def keys(i: int = i) -> Iterator[np.ndarray]:
                return (magnitude_keys(delta(i, start, stop)) for start, stop in spans)

            rules.append(("topk", top_k_threshold(keys, k)))
        elif kind == "magnitude_outliers":
            target, top = int(density * n), int(p["gamma"] * n)
            bottom = max(0, n - target - top)
            def ascending(i: int = i) -> Iterator[np.ndarray]:
                return (ascending_magnitude_keys(delta(i, start, stop)) for start, stop in spans)

            # the kept band of the stable ascending order: its first bottom + target minus its first bottom
            rules.append(("band", top_k_threshold(ascending, bottom) if bottom else None,
                          top_k_threshold(ascending, bottom + target) if bottom + target else None))
        elif kind == "della_magprune":
            rules.append(("della", density, p["epsilon"]))
        else:
            rules.append(("random", density))
        factor = None
        if params["rescale"] and rules[-1][0] not in ("all", "zero"):
            before, after = [], []
            for (start, stop), mask in zip(spans, masks(i, rules[-1])):
                d = delta(i, start, stop)
                before.append(tree_sum(np.abs(d)))
                after.append(tree_sum(np.abs(d * mask)))
            last = spans[-1][1] - spans[-1][0]
            factor = rescale_factor(tree_sum_of_chunks(before, last, CHUNK), tree_sum_of_chunks(after, last, CHUNK))
        factors.append(factor)

    weights = [p["weight"] for p in source_params]
    streams = [masks(i, rule) for i, rule in enumerate(rules)]
    for start, stop in spans:
        deltas = []
        for i, (rule, factor) in enumerate(zip(rules, factors)):
            mask = next(streams[i])
            if rule[0] == "zero":
                deltas.append(np.zeros(stop - start))
                continue
            d = delta(i, start, stop)
            if mask is not None:
                d = d * mask
                if factor is not None:
                    d = d * factor
            deltas.append(d)
        yield combine(method, widen[0](flat_base[start:stop]), deltas, weights, params)


class _DellaProbabilities:
    """DELLA's keep probabilities of any span, spans asked in order: ranks are taken along axis 1,
    within one slab ``delta[j]`` (a row of a matrix; the whole of a 1-D tensor), so the whole slabs
    around a span (about a chunk of them) are ranked as the whole path ranks them, and kept for
    the spans that follow."""

    def __init__(self, delta: Callable[[int, int], np.ndarray], shape: tuple[int, ...], n: int, density: float,
                 epsilon: float):
        self.delta, self.n, self.density, self.epsilon = delta, n, density, epsilon
        self.slab_shape = tuple(shape[1:]) if len(shape) >= 2 else (n,)
        self.slab = math.prod(self.slab_shape)
        self.held: tuple[int, int, np.ndarray] = (0, 0, np.zeros(0))

    def __call__(self, start: int, stop: int) -> np.ndarray:
        first, last, probs = self.held
        if start < first or stop > last:
            first = start // self.slab * self.slab
            last = min(self.n, max(-(-stop // self.slab), first // self.slab + max(1, CHUNK // self.slab)) * self.slab)
            values = self.delta(first, last).reshape((-1,) + self.slab_shape)
            probs = della_probabilities(values, self.density, self.epsilon).reshape(-1)
            self.held = (first, last, probs)
        return probs[start - first:stop - first]


def _spans(n: int) -> list[tuple[int, int]]:
    return [(start, min(start + CHUNK, n)) for start in range(0, n, CHUNK)]


def slerp_chunks(t: float, base: np.ndarray, x: np.ndarray, widen: Sequence[Widen]) -> Iterator[np.ndarray]:
    """:func:`.spherical.slerp_vectors` of the base and one source, chunk by chunk, same bits."""
    flat_base, flat_x = base.reshape(-1), x.reshape(-1)
    spans = _spans(flat_base.size)
    last = spans[-1][1] - spans[-1][0]

    def pair(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        return widen[0](flat_base[start:stop]), widen[1](flat_x[start:stop])

    squares0, squares1 = [], []
    for start, stop in spans:
        v0, v1 = pair(start, stop)
        squares0.append(tree_sum(v0 * v0))
        squares1.append(tree_sum(v1 * v1))
    n0 = math.sqrt(tree_sum_of_chunks(squares0, last, CHUNK))
    n1 = math.sqrt(tree_sum_of_chunks(squares1, last, CHUNK))
    d0 = n0 if n0 > SLERP_EPS else 1.0
    d1 = n1 if n1 > SLERP_EPS else 1.0
    products = []
    for start, stop in spans:
        v0, v1 = pair(start, stop)
        products.append(tree_sum((v0 / d0) * (v1 / d1)))
    dot = min(max(tree_sum_of_chunks(products, last, CHUNK), -1.0), 1.0)
    coefficients = slerp_coefficients(t, dot)
    for start, stop in spans:
        v0, v1 = pair(start, stop)
        yield slerp_combine(t, coefficients, v0, v1)


def nearswap_chunks(t: float, base: np.ndarray, x: np.ndarray, widen: Sequence[Widen]) -> Iterator[np.ndarray]:
    """:func:`.others.nearswap`, chunk by chunk (it is element-wise)."""
    flat_base, flat_x = base.reshape(-1), x.reshape(-1)
    for start, stop in _spans(flat_base.size):
        yield nearswap(widen[0](flat_base[start:stop]), widen[1](flat_x[start:stop]), t)


def streams(method: str, has_base: bool) -> bool:
    """Whether ``method`` is computed chunk by chunk (those that need a base only with one: without,
    the whole-tensor path refuses the step)."""
    return method in STREAMED_METHODS and (has_base or method in _STREAMED_WITHOUT_BASE)


def stream_chunks(method: str, base: np.ndarray | None, xs: Sequence[np.ndarray], widen: Sequence[Widen | None],
                  source_params: Sequence[Mapping[str, Any]], params: Mapping[str, Any], seed: int,
                  name: str) -> Iterator[np.ndarray]:
    """The float64 result of a method of :data:`STREAMED_METHODS` (see :func:`streams`), :data:`CHUNK`
    elements at a time (rows at a time for the per-row methods). ``widen[0]`` is None without a base."""
    if method == "nuslerp":
        w0, w1 = source_params[0]["weight"], source_params[1]["weight"]
        total = w0 + w1
        t = 0.5 if abs(total) < 1e-6 else w1 / total
        return nuslerp_chunks(t, base, xs, widen, params["nuslerp_row_wise"], params["nuslerp_flatten"], CHUNK)
    if method == "multislerp":
        return multislerp_chunks(xs, [p["weight"] for p in source_params], base, params["normalize_weights"],
                                 params["eps"], widen, CHUNK)
    if method == "karcher":
        return karcher_chunks(xs, int(params["max_iter"]), params["tol"], widen, CHUNK)
    assert base is not None
    if method == "model_stock":
        return model_stock_chunks(base, xs, params["filter_wise"], widen, CHUNK)
    if method == "ram":
        return ram_chunks(base, xs, params["epsilon"], None, widen, CHUNK)
    if method == "ramplus_tl":
        return ram_chunks(base, xs, params["epsilon"], (params["r"], params["alpha"]), widen, CHUNK)
    if method == "sce":
        return sce_chunks(base, xs, params["select_topk"], widen, CHUNK)
    if method == "arcee_fusion":
        return arcee_fusion_chunks(base, xs[0], widen, CHUNK)
    full = [w for w in widen if w is not None]
    if method == "slerp":
        return slerp_chunks(params["t"], base, xs[0], full)
    if method == "nearswap":
        return nearswap_chunks(params["t"], base, xs[0], full)
    return gta_chunks(method, base, xs, full, source_params, params, seed, name)
