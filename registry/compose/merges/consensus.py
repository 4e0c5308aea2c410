"""Sign-consensus methods: generalized task arithmetic (``ties``, ``dare_*``, ``breadcrumbs*``,
``della*``: sparsify each task vector, then sum with or without TIES' sign election) and ``sce``."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from .numerics import sequential_sum, tree_sum
from .sparsification import SPARSIFY_METHODS, sparsify

__all__ = ["sign_consensus", "gta", "combine", "sce"]


def sign_consensus(weighted: Sequence[np.ndarray]) -> list[np.ndarray]:
    """TIES' sign election: per element, 1.0 where a task vector's sign is the sign of the sum (0 counts as +)."""
    majority = np.where(sequential_sum(weighted) >= 0, 1.0, -1.0)
    return [(np.sign(wd) == majority).astype(np.float64) for wd in weighted]


def gta(method: str, base: np.ndarray, xs: Sequence[np.ndarray], sp: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any], seed: int, name: str) -> np.ndarray:
    """Generalized task arithmetic (ties, dare_*, breadcrumbs*, della*), as mergekit's GTATask."""
    deltas = []
    for index, (x, p) in enumerate(zip(xs, sp)):
        deltas.append(sparsify(method, x - base, p, params["rescale"], (seed, name, index)))
    return combine(method, base, deltas, [p["weight"] for p in sp], params)


def combine(method: str, base: np.ndarray, deltas: Sequence[np.ndarray], weights: Sequence[float],
            params: Mapping[str, Any]) -> np.ndarray:
    """The element-wise rest of generalized task arithmetic after sparsification: weight, elect
    signs (TIES' consensus for the ``*_ties``/``ties``/``della`` methods), sum, normalize, scale by
    lambda, add to the base. Works on any slice of the tensors (nothing here looks across elements)."""
    consensus = SPARSIFY_METHODS[method][1]
    weighted = [d * w for d, w in zip(deltas, weights)]
    if consensus:
        masks = sign_consensus(weighted)
        mixed = sequential_sum([wd * m for wd, m in zip(weighted, masks)])
        divisor: Any = sequential_sum([m * w for m, w in zip(masks, weights)])
        divisor = np.where(divisor == 0, 1.0, divisor)
    else:
        mixed = sequential_sum(weighted)
        total = 0.0
        for w in weights:
            total += w
        divisor = 1.0 if abs(total) < 1e-8 else total
    if params["normalize"]:
        mixed = mixed / divisor
    if params["lambda"] != 1:
        mixed = mixed * params["lambda"]
    return base + mixed


def sce(base: np.ndarray, xs: Sequence[np.ndarray], select_topk: float) -> np.ndarray:
    """mergekit's SCE: select by cross-model variance, calculate weights from squared magnitude,
    erase by sign consensus."""
    tvs = [x - base for x in xs]
    n = len(tvs)
    if select_topk < 1:
        if select_topk <= 0:
            mask = np.zeros_like(base)
        else:
            mean = sequential_sum(tvs) / n
            var = sequential_sum([(tv - mean) * (tv - mean) for tv in tvs]) / n
            k = int(int(np.count_nonzero(var)) * select_topk)
            mask = np.zeros(base.size)
            if k:
                order = np.argsort(-np.abs(var).reshape(-1), kind="stable")
                mask[order[:k]] = 1.0
            mask = mask.reshape(base.shape)
        tvs = [tv * mask for tv in tvs]
    erase = sign_consensus(tvs)
    weights = [tree_sum(tv * tv) / tv.size for tv in tvs]
    weight_sum = math.fsum(weights)
    weights = [1.0 / n] * n if abs(weight_sum) < 1e-6 else [w / weight_sum for w in weights]
    erased = [m * w for m, w in zip(erase, weights)]
    merged = sequential_sum([tv * ew for tv, ew in zip(tvs, erased)])
    return base + merged / np.maximum(sequential_sum(erased), 1e-6)


