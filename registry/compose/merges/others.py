"""The methods anchored on a base element by element or tensor by tensor: ``model_stock``,
``nearswap``, ``arcee_fusion``, ``ram`` and ``ramplus_tl``."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .numerics import exp, log, row_sums, sequential_sum, tree_norm, tree_sum

__all__ = ["model_stock", "model_stock_pairs", "model_stock_t", "model_stock_combine", "nearswap", "arcee_fusion_kl", "arcee_fusion_importance",
           "arcee_fusion", "ram_vectors", "ram_counts", "ramplus_lambdas", "ram_combine", "ram", "ramplus_tl"]


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
    norms = [norm(offset) for offset in offsets]
    dots = {(i, j): dot(offsets[i] * offsets[j]) for i, j in model_stock_pairs(len(offsets))}
    t = model_stock_t(norms, dots)
    return model_stock_combine(t, w0, ws).reshape(shape)


def model_stock_pairs(count: int) -> list[tuple[int, int]]:
    """The pairs (i, j), i < j, of task vectors whose cosines Model Stock averages, in its order."""
    return [(i, j) for i in range(count) for j in range(i + 1, count)]


def model_stock_t(norms: Sequence[Any], dots: dict[tuple[int, int], Any]) -> Any:
    """Model Stock's interpolation factor from the task vectors' norms and pairwise dot products
    (floats, or per-row arrays with filter_wise)."""
    cosines = []
    for i, j in model_stock_pairs(len(norms)):
        product = norms[i] * norms[j]
        cosines.append(np.clip(dots[i, j] / np.maximum(product, 1e-6), -1.0, 1.0))
    cos_theta = sequential_sum(cosines) / len(cosines)
    count = len(norms)
    denominator = 1 + (count - 1) * cos_theta
    singular = np.abs(denominator) < 1e-6
    return np.where(singular, 0.0, (count * cos_theta) / np.where(singular, 1.0, denominator))


def model_stock_combine(t: Any, w0: np.ndarray, ws: Sequence[np.ndarray]) -> np.ndarray:
    """The element-wise end of Model Stock: t times the average plus (1 - t) times the base."""
    return t * (sequential_sum(ws) / len(ws)) + (1 - t) * w0


def nearswap(base: np.ndarray, x: np.ndarray, t: float) -> np.ndarray:
    """mergekit's NearSwap: take the other model where it is within t of the base, blend beyond."""
    absdiff = np.abs(base - x)
    weight = np.clip(t / np.maximum(absdiff, 1e-6), 0.0, 1.0)
    return weight * x + (1 - weight) * base


def _softmax_rows(x: np.ndarray) -> np.ndarray:
    shifted = x - np.max(x, axis=-1, keepdims=True)
    e = exp(shifted)
    return e / row_sums(e)


def arcee_fusion_kl(base: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The KL divergence of each row's softmaxes (shape x.shape[:-1] + (1,)), the per-row factor
    of mergekit's importance."""
    eps = 1e-8
    p = _softmax_rows(x) + eps
    q = _softmax_rows(base) + eps
    return row_sums(p * log(p / q))


def arcee_fusion_importance(base: np.ndarray, x: np.ndarray) -> np.ndarray:
    """|x - base| times the KL divergence of the rows' softmaxes (mergekit's importance)."""
    return np.abs(x - base) * arcee_fusion_kl(base, x)


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


def ram_vectors(base: np.ndarray, xs: Sequence[np.ndarray], epsilon: float):
    """RAM's task vectors (flat), where each is non-zero, how many are per element, overlap, unique
    (element-wise: any slice of the tensors gives that slice)."""
    tvs = [(x - base).reshape(-1) for x in xs]
    nonzero = [np.abs(tv) > epsilon for tv in tvs]
    counts = np.zeros(base.size, dtype=np.int64)
    for nz in nonzero:
        counts = counts + nz
    return tvs, nonzero, counts, counts > 1, counts == 1


def ram_counts(nonzero: Sequence[np.ndarray], overlap: np.ndarray, unique: np.ndarray) -> list[tuple[int, int]]:
    """Per source, how many of its changes are shared and how many its own (RAM+'s ratio; counts
    of any slices add up to the whole tensor's)."""
    return [(int(np.count_nonzero(nz & overlap)), int(np.count_nonzero(nz & unique))) for nz in nonzero]


def ramplus_lambdas(counts: Sequence[tuple[int, int]], r: float, alpha: float, epsilon: float) -> list[float]:
    """RAM+'s scale of each source's unique changes from its (shared, own) counts."""
    lams = []
    for shared_count, only_count in counts:
        # mergekit divides integer counts by a float clamp, which torch promotes to float32, so
        # rho and lambda are float32 values there; they are here too (numpy float32 scalars are IEEE)
        f32 = np.float32
        shared = f32(shared_count)
        only = max(f32(only_count), f32(epsilon))
        rho = min(max(shared / only, f32(0.0)), f32(alpha))
        lams.append(float(f32(f32(1.0) + f32(r) * rho)))
    return lams


def ram_combine(base: np.ndarray, vectors: tuple, lams: Sequence[float] | None) -> np.ndarray:
    """The element-wise end of RAM (``lams`` None) and RAM+ from :func:`ram_vectors` of any slice."""
    tvs, nonzero, counts, overlap, unique = vectors
    divisor = np.maximum(counts, 1).astype(np.float64)
    parts = []
    for index, (tv, nz) in enumerate(zip(tvs, nonzero)):
        z = tv * nz
        own = z * unique if lams is None else z * unique * lams[index]
        parts.append(own + z * overlap / divisor)
    return base + sequential_sum(parts).reshape(base.shape)


def ram(base: np.ndarray, xs: Sequence[np.ndarray], epsilon: float) -> np.ndarray:
    """mergekit's RAM: unique changes kept whole, overlapping ones averaged over their contributors."""
    return ram_combine(base, ram_vectors(base, xs, epsilon), None)


def ramplus_tl(base: np.ndarray, xs: Sequence[np.ndarray], r: float, alpha: float, epsilon: float) -> np.ndarray:
    """mergekit's RAM+ (tensor-local): unique changes scaled up by the model's shared/unique ratio."""
    vectors = ram_vectors(base, xs, epsilon)
    lams = ramplus_lambdas(ram_counts(vectors[1], vectors[3], vectors[4]), r, alpha, epsilon)
    return ram_combine(base, vectors, lams)


