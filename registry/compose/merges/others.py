"""The methods anchored on a base element by element or tensor by tensor: ``model_stock``,
``nearswap``, ``arcee_fusion``, ``ram`` and ``ramplus_tl``."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .numerics import exp, log, row_sums, sequential_sum, tree_norm, tree_sum

__all__ = ["model_stock", "nearswap", "arcee_fusion_importance", "arcee_fusion", "ram", "ramplus_tl"]


def model_stock(base: np.ndarray, xs: Sequence[np.ndarray], filter_wise: bool) -> np.ndarray:
    """mergekit's Model Stock: interpolate the average towards the base by the mean pairwise cosine
    of the task vectors (per tensor, or per row with filter_wise)."""
    shape = base.shape
    ws: list[np.ndarray]
    dot: Callable[..., Any]
    norm: Callable[..., Any]
    if filter_wise:
        w0 = base.reshape(1, -1) if base.ndim < 2 else base
        ws = [x.reshape(w0.shape) for x in xs]
        dot = row_sums
        norm = lambda v: np.sqrt(row_sums(v * v))  # noqa: E731
    else:
        w0, ws = base.reshape(-1), [x.reshape(-1) for x in xs]
        dot = tree_sum
        norm = tree_norm
    offsets = [w - w0 for w in ws]
    cosines = []
    for i in range(len(offsets)):
        for j in range(i + 1, len(offsets)):
            product = norm(offsets[i]) * norm(offsets[j])
            cosines.append(np.clip(dot(offsets[i] * offsets[j]) / np.maximum(product, 1e-6), -1.0, 1.0))
    cos_theta = sequential_sum(cosines) / len(cosines)
    count = len(ws)
    denominator = 1 + (count - 1) * cos_theta
    singular = np.abs(denominator) < 1e-6
    t = np.where(singular, 0.0, (count * cos_theta) / np.where(singular, 1.0, denominator))
    w_avg = sequential_sum(ws) / count
    return (t * w_avg + (1 - t) * w0).reshape(shape)


def nearswap(base: np.ndarray, x: np.ndarray, t: float) -> np.ndarray:
    """mergekit's NearSwap: take the other model where it is within t of the base, blend beyond."""
    absdiff = np.abs(base - x)
    weight = np.clip(t / np.maximum(absdiff, 1e-6), 0.0, 1.0)
    return weight * x + (1 - weight) * base


def _softmax_rows(x: np.ndarray) -> np.ndarray:
    shifted = x - np.max(x, axis=-1, keepdims=True)
    e = exp(shifted)
    return e / row_sums(e)


def arcee_fusion_importance(base: np.ndarray, x: np.ndarray) -> np.ndarray:
    """|x - base| times the KL divergence of the rows' softmaxes (mergekit's importance)."""
    eps = 1e-8
    p = _softmax_rows(x) + eps
    q = _softmax_rows(base) + eps
    kl = row_sums(p * log(p / q))
    return np.abs(x - base) * kl


def arcee_fusion(base: np.ndarray, x: np.ndarray) -> np.ndarray:
    """mergekit's Arcee Fusion: keep the other model's change where its importance reaches
    median + 1.5 IQR. Quantiles are exact (mergekit samples 10**6 elements of larger tensors at
    random; Elements sorts them all, so the threshold is reproducible)."""
    scores = arcee_fusion_importance(base, x)
    ordered = np.sort(scores.reshape(-1), kind="stable")
    last = ordered.size - 1

    def quantile(q: float) -> float:
        return float(ordered[int(q * last)])

    threshold = quantile(0.5) + 1.5 * (quantile(0.75) - quantile(0.25))
    mask = (scores >= threshold).astype(np.float64)
    return base + (x - base) * mask


def _ram_vectors(base: np.ndarray, xs: Sequence[np.ndarray], epsilon: float):
    tvs = [(x - base).reshape(-1) for x in xs]
    nonzero = [np.abs(tv) > epsilon for tv in tvs]
    counts = np.zeros(base.size, dtype=np.int64)
    for nz in nonzero:
        counts = counts + nz
    return tvs, nonzero, counts, counts > 1, counts == 1


def ram(base: np.ndarray, xs: Sequence[np.ndarray], epsilon: float) -> np.ndarray:
    """mergekit's RAM: unique changes kept whole, overlapping ones averaged over their contributors."""
    tvs, nonzero, counts, overlap, unique = _ram_vectors(base, xs, epsilon)
    divisor = np.maximum(counts, 1).astype(np.float64)
    parts = []
    for tv, nz in zip(tvs, nonzero):
        z = tv * nz
        parts.append(z * unique + z * overlap / divisor)
    return base + sequential_sum(parts).reshape(base.shape)


def ramplus_tl(base: np.ndarray, xs: Sequence[np.ndarray], r: float, alpha: float, epsilon: float) -> np.ndarray:
    """mergekit's RAM+ (tensor-local): unique changes scaled up by the model's shared/unique ratio."""
    tvs, nonzero, counts, overlap, unique = _ram_vectors(base, xs, epsilon)
    divisor = np.maximum(counts, 1).astype(np.float64)
    parts = []
    for tv, nz in zip(tvs, nonzero):
        # mergekit divides integer counts by a float clamp, which torch promotes to float32, so
        # rho and lambda are float32 values there; they are here too (numpy float32 scalars are IEEE)
        f32 = np.float32
        shared = f32(np.count_nonzero(nz & overlap))
        only = max(f32(np.count_nonzero(nz & unique)), f32(epsilon))
        rho = min(max(shared / only, f32(0.0)), f32(alpha))
        lam = float(f32(f32(1.0) + f32(r) * rho))
        z = tv * nz
        parts.append(z * unique * lam + z * overlap / divisor)
    return base + sequential_sum(parts).reshape(base.shape)


