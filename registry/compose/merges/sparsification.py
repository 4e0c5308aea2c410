"""Sparsification of task vectors (mergekit.sparsify): magnitude top-k (``ties``), magnitude with
outliers cut (``breadcrumbs``), random drops (``dare``) and DELLA's rank-scaled drops.

Orders are total (ties between equal magnitudes go to the lower element index) and the random
drops come from :mod:`.randomness`, so every machine keeps the same elements.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ...formats.recipe import RecipeError
from .numerics import tree_sum
from .randomness import uniforms

__all__ = ["SPARSIFY_METHODS", "check_density", "sparsify", "della_probabilities", "magnitude_keys", "ascending_magnitude_keys", "top_k_threshold", "top_k_thresholds",
           "top_k_mask", "rescale_factor", "GATHER_KEYS"]

#: method -> (sparsification, sign consensus or None) of mergekit's generalized task arithmetic
SPARSIFY_METHODS = {
    "ties": ("magnitude", "sum"), "dare_ties": ("random", "sum"), "dare_linear": ("random", None),
    "breadcrumbs": ("magnitude_outliers", None), "breadcrumbs_ties": ("magnitude_outliers", "sum"),
    "della": ("della_magprune", "sum"), "della_linear": ("della_magprune", None),
}


def check_density(method: str, numel: int, source_params: Mapping[str, Any], where: str) -> None:
    """Refuse, at planning, a density that would keep no element or an impossible DELLA window."""
    density = source_params.get("density", 1.0)
    if method not in SPARSIFY_METHODS or density >= 1:
        return
    kind = SPARSIFY_METHODS[method][0]
    if kind == "della_magprune" and density > 0:
        eps = source_params["epsilon"]
        if density + eps >= 1 or density - eps <= 0:
            raise RecipeError(f"{where}: density {density} ± epsilon {eps} must stay inside (0, 1); lower epsilon")


def rescale_factor(before: float, after: float) -> float | None:
    """mergekit's L1 rescale of a sparsified task vector: before / after, or None (no rescale)
    when either L1 norm is below 1e-7."""
    if before < 1e-7 or after < 1e-7:
        return None
    return before / after


def _rescaled(tensor: np.ndarray, mask: np.ndarray, rescale: bool) -> np.ndarray:
    masked = tensor * mask
    if not rescale:
        return masked
    factor = rescale_factor(tree_sum(np.abs(tensor)), tree_sum(np.abs(masked)))
    return masked if factor is None else masked * factor


def magnitude_keys(delta: np.ndarray) -> np.ndarray:
    """uint64 keys ordered as mergekit's ``argsort(-|delta|)`` ranks: larger magnitude, larger key
    (the bits of a non-negative float64 order as its value; +1 so that NaN, which numpy sorts after
    everything, gets 0 below every number)."""
    magnitude = np.abs(np.asarray(delta, dtype=np.float64).reshape(-1))
    keys = magnitude.view(np.uint64) + np.uint64(1)
    keys[np.isnan(magnitude)] = 0
    return keys


def ascending_magnitude_keys(delta: np.ndarray) -> np.ndarray:
    """uint64 keys ordered as a stable ascending sort of ``|delta|`` ranks in reverse: a smaller
    magnitude, a larger key, NaN (which numpy sorts after every number) 0; so the top k of these
    keys (ties to the lower index) are the first k of that sort."""
    magnitude = np.abs(np.asarray(delta, dtype=np.float64).reshape(-1))
    keys = ~magnitude.view(np.uint64)
    keys[np.isnan(magnitude)] = 0
    return keys


_DIGIT_BITS = 16
_DIGITS = 1 << _DIGIT_BITS


#: at most this many keys are gathered to finish a selection in memory (64 MiB of uint64)
GATHER_KEYS = 1 << 23


def top_k_threshold(key_chunks: Callable[[], Iterable[np.ndarray]], k: int) -> tuple[int, int]:
    """The top ``k`` keys (1 <= k <= their count) by a radix selection, never a sort: returns
    ``(v, equal)`` such that the top k are every key above ``v`` and the first ``equal`` keys equal
    to ``v`` in index order, the same set as a stable descending sort's first k (ties to the lower
    index). ``key_chunks()`` yields the keys in index order, chunk by chunk; each pass histograms
    one 16-bit digit of the keys that share the digits found so far, and as soon as those are at
    most :data:`GATHER_KEYS` one more pass gathers them and ``np.partition`` finishes (usually two
    passes in all). Memory: one chunk, a 65,536-bin histogram, the gathered keys."""
    return top_k_thresholds(key_chunks, [k])[0]


def top_k_thresholds(key_chunks: Callable[[], Iterable[np.ndarray]], ks: Sequence[int]) -> list[tuple[int, int]]:
    """:func:`top_k_threshold` for several k at once, sharing the passes over the keys (each pass
    serves every selection not yet finished)."""
    # per selection: [prefix, remaining, shift, gathering, result]
    states: list[list[Any]] = [[0, k, 64 - _DIGIT_BITS, False, None] for k in ks]
    while any(state[4] is None for state in states):
        active = [state for state in states if state[4] is None]
        histograms = [np.zeros(_DIGITS, dtype=np.int64) for _ in active]
        gathered: list[list[np.ndarray]] = [[] for _ in active]
        for keys in key_chunks():
            for state, histogram, found in zip(active, histograms, gathered):
                prefix, _, shift, gathering, _ = state
                if gathering:
                    found.append(keys[(keys >> np.uint64(shift)) == np.uint64(prefix)])
                    continue
                sharing = keys
                if shift + _DIGIT_BITS < 64:
                    sharing = keys[(keys >> np.uint64(shift + _DIGIT_BITS)) == np.uint64(prefix)]
                digits = ((sharing >> np.uint64(shift)) & np.uint64(_DIGITS - 1)).astype(np.intp)
                histogram += np.bincount(digits, minlength=_DIGITS)
        for state, histogram, found in zip(active, histograms, gathered):
            prefix, remaining, shift, gathering, _ = state
            if gathering:
                state[4] = _finish_in_memory(np.concatenate(found), remaining)
                continue
            at_or_above = np.cumsum(histogram[::-1])  # [j]: keys whose digit is >= DIGITS-1-j
            j = int(np.searchsorted(at_or_above, remaining))
            digit = _DIGITS - 1 - j
            state[1] = remaining - int(at_or_above[j] - histogram[digit])
            state[0] = (prefix << _DIGIT_BITS) | digit
            if shift and histogram[digit] <= GATHER_KEYS:
                state[3] = True  # the next pass gathers the keys sharing these top bits
            elif shift:
                state[2] = shift - _DIGIT_BITS
            else:
                state[4] = (state[0], state[1])
    return [state[4] for state in states]


def _finish_in_memory(gathered: np.ndarray, remaining: int) -> tuple[int, int]:
    """The ``remaining``-th largest of the gathered keys (those sharing the top bits found), and
    how many keys equal to it are kept (the ``equal`` of :func:`top_k_threshold`)."""
    position = gathered.size - remaining
    v = np.partition(gathered, position)[position]
    return int(v), remaining - int(np.count_nonzero(gathered > v))


def top_k_mask(keys: np.ndarray, threshold: tuple[int, int], equal_seen: int) -> tuple[np.ndarray, int]:
    """The keep mask (1.0/0.0) of one chunk of keys for :func:`top_k_threshold`'s ``(v, equal)``,
    given how many keys equal to v came before the chunk; returns the mask and the new count."""
    v, equal = threshold
    value = np.uint64(v)
    keep = keys > value
    same = keys == value
    if equal > equal_seen:
        keep |= same & (np.cumsum(same) <= equal - equal_seen)
    return keep.astype(np.float64), equal_seen + int(np.count_nonzero(same))


def _magnitude(delta: np.ndarray, density: float, rescale: bool) -> np.ndarray:
    if density <= 0 or delta.size == 0:
        return np.zeros_like(delta)
    k = max(1, int(density * delta.size))
    keys = magnitude_keys(delta)
    mask, _ = top_k_mask(keys, top_k_threshold(lambda: (keys,), k), 0)
    return _rescaled(delta, mask.reshape(delta.shape), rescale)


def _magnitude_outliers(delta: np.ndarray, density: float, gamma: float, rescale: bool) -> np.ndarray:
    n = delta.size
    target, n_top = int(density * n), int(gamma * n)
    n_bot = max(0, n - target - n_top)
    order = np.argsort(np.abs(delta).reshape(-1), kind="stable")
    mask = np.zeros(n)
    mask[order[n_bot:n_bot + target]] = 1.0
    return _rescaled(delta, mask.reshape(delta.shape), rescale)


def _bernoulli(delta: np.ndarray, density: float, rescale: bool, key: tuple[int, str, int]) -> np.ndarray:
    u = uniforms(*key, 0, delta.size).reshape(delta.shape)
    return _rescaled(delta, (u < density).astype(np.float64), rescale)


def della_probabilities(delta: np.ndarray, density: float, epsilon: float) -> np.ndarray:
    """DELLA's keep probabilities, ranked along axis 1 as mergekit does (a 1-D tensor is one row):
    (density - eps) + 2 eps (rank - 1) / (n - 1), rank 1 the smallest magnitude (stable: ties to the
    lower index)."""
    rows = delta.reshape(1, -1) if delta.ndim < 2 else delta
    cols = rows.shape[1]
    order = np.argsort(np.abs(rows), axis=1, kind="stable")
    ranks = np.empty_like(order)
    positions = np.arange(cols).reshape((1, cols) + (1,) * (rows.ndim - 2))
    np.put_along_axis(ranks, order, np.broadcast_to(positions, order.shape), axis=1)
    rank_norm = ranks.astype(np.float64) / (cols - 1) if cols > 1 else np.zeros(rows.shape)
    probs = (density - epsilon) + rank_norm * 2 * epsilon
    return probs.reshape(delta.shape)


def _della(delta: np.ndarray, density: float, epsilon: float, rescale: bool, key: tuple[int, str, int]) -> np.ndarray:
    if density <= 0:
        return np.zeros_like(delta)
    probs = della_probabilities(delta, density, epsilon)
    u = uniforms(*key, 0, delta.size).reshape(delta.shape)
    return _rescaled(delta, (u < probs).astype(np.float64), rescale)


def sparsify(method: str, delta: np.ndarray, params: Mapping[str, Any], rescale: bool,
             key: tuple[int, str, int]) -> np.ndarray:
    """One task vector after a GTA method's sparsification (unchanged at density >= 1)."""
    kind = SPARSIFY_METHODS[method][0]
    density = params["density"]
    if density >= 1:
        return delta
    if kind == "magnitude":
        return _magnitude(delta, density, rescale)
    if kind == "random":
        return _bernoulli(delta, density, rescale, key)
    if kind == "magnitude_outliers":
        return _magnitude_outliers(delta, density, params["gamma"], rescale)
    return _della(delta, density, params["epsilon"], rescale, key)

