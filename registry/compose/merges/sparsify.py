"""Sparsification of task vectors (mergekit.sparsify): magnitude top-k (``ties``), magnitude with
outliers cut (``breadcrumbs``), random drops (``dare``) and DELLA's rank-scaled drops.

Orders are total (ties between equal magnitudes go to the lower element index) and the random
drops come from :mod:`.randomness`, so every machine keeps the same elements.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ...formats.recipe import RecipeError
from .numerics import tree_sum
from .randomness import uniforms

__all__ = ["SPARSIFY_METHODS", "check_density", "sparsify", "della_probabilities"]

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


def _rescaled(tensor: np.ndarray, mask: np.ndarray, rescale: bool) -> np.ndarray:
    masked = tensor * mask
    if not rescale:
        return masked
    before = tree_sum(np.abs(tensor))
    after = tree_sum(np.abs(masked))
    if before < 1e-7 or after < 1e-7:
        return masked
    return masked * (before / after)


def _magnitude(delta: np.ndarray, density: float, rescale: bool) -> np.ndarray:
    if density <= 0 or delta.size == 0:
        return np.zeros_like(delta)
    k = max(1, int(density * delta.size))
    order = np.argsort(-np.abs(delta).reshape(-1), kind="stable")  # descending, ties to the lower index
    mask = np.zeros(delta.size)
    mask[order[:k]] = 1.0
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

