"""Spherical methods: ``slerp``, ``nuslerp``, ``multislerp`` and ``karcher`` (the Riemannian mean).

Angles and norms use :mod:`.numerics`' fixed-tree reductions and correctly rounded scalar
``acos``/``sin``/``cos``, so the result does not depend on the machine.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .numerics import MergeValueError, acos, cos, sequential_sum, sin, tree_norm, tree_sum

__all__ = ["SLERP_DOT_THRESHOLD", "SLERP_EPS", "slerp_coefficients", "slerp_combine", "slerp_vectors", "nuslerp", "nuslerp_coefficients", "nuslerp_combine", "multislerp", "karcher"]


SLERP_DOT_THRESHOLD = 0.9995
SLERP_EPS = 1e-8


def slerp_coefficients(t: float, dot: float, dot_threshold: float = SLERP_DOT_THRESHOLD) -> tuple[float, float] | None:
    """SLERP's two coefficients for the clamped dot product of the unit tensors, or None for a
    plain lerp (nearly colinear tensors), as mergekit decides."""
    if abs(dot) > dot_threshold:
        return None
    theta = acos(dot)
    sin_theta = sin(theta)
    return sin((1 - t) * theta) / sin_theta, sin(t * theta) / sin_theta


def slerp_combine(t: float, coefficients: tuple[float, float] | None, v0: np.ndarray, v1: np.ndarray) -> np.ndarray:
    """The element-wise end of SLERP (any slice of the tensors)."""
    if coefficients is None:
        return (1 - t) * v0 + t * v1
    return coefficients[0] * v0 + coefficients[1] * v1


def slerp_vectors(t: float, v0: np.ndarray, v1: np.ndarray, dot_threshold: float = SLERP_DOT_THRESHOLD,
                  eps: float = SLERP_EPS) -> np.ndarray:
    """mergekit's slerp over whole tensors (lerp when nearly colinear)."""
    n0, n1 = tree_norm(v0), tree_norm(v1)
    u0 = v0 / (n0 if n0 > eps else 1.0)
    u1 = v1 / (n1 if n1 > eps else 1.0)
    dot = min(max(tree_sum(u0 * u1), -1.0), 1.0)
    return slerp_combine(t, slerp_coefficients(t, dot, dot_threshold), v0, v1)


def nuslerp(t: float, v0: np.ndarray, v1: np.ndarray, row_wise: bool, flatten: bool, eps: float = 1e-8) -> np.ndarray:
    """mergekit's nuslerp: one slerp over the flattened tensors, or one per row/column."""
    shape = v0.shape
    if flatten or v0.ndim < 2:
        a, b = v0.reshape(1, -1), v1.reshape(1, -1)
        back = lambda r: r.reshape(shape)  # noqa: E731
    elif row_wise:
        a, b = np.moveaxis(v0, 0, -1), np.moveaxis(v1, 0, -1)
        back = lambda r: np.moveaxis(r, -1, 0)  # noqa: E731
    else:
        a, b = v0, v1
        back = lambda r: r  # noqa: E731
    a2, b2 = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    out = np.empty_like(a2)
    for i in range(a2.shape[0]):
        x, y = a2[i], b2[i]
        ux = x / max(tree_norm(x), 1e-7)
        uy = y / max(tree_norm(y), 1e-7)
        out[i] = nuslerp_combine(t, nuslerp_coefficients(t, tree_sum(ux * uy), eps), x, y)
    return back(out.reshape(a.shape))


def nuslerp_coefficients(t: float, dot: float, eps: float = 1e-8) -> tuple[float, float, float] | None:
    """nuslerp's sin((1-t)θ), sin(tθ), sin θ for the dot product of two unit rows (clamped here),
    or None for a plain lerp (nearly colinear rows), as mergekit decides."""
    cos_theta = min(max(dot, -1.0), 1.0)
    if (1 - cos_theta * cos_theta) <= eps * eps:
        return None
    theta = acos(cos_theta)
    return sin((1 - t) * theta), sin(t * theta), sin(theta)


def nuslerp_combine(t: float, coefficients: tuple[float, float, float] | None, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The element-wise end of nuslerp for one row (any slice of it)."""
    if coefficients is None:
        return (1 - t) * x + t * y
    return (coefficients[0] * x + coefficients[1] * y) / coefficients[2]


def multislerp(xs: Sequence[np.ndarray], weights: Sequence[float], base: np.ndarray | None,
               normalize_weights: bool, eps: float) -> np.ndarray:
    """mergekit's multislerp: barycentric interpolation on the hypersphere (tangent space at the
    normalized weighted mean of the unit vectors)."""
    if base is not None:
        xs = [x - base for x in xs]
    w = [float(v) for v in weights]
    if normalize_weights:
        total = tree_sum(np.array(w))
        w = [v / total for v in w]
    norms = [tree_norm(x) for x in xs]
    units = [x / (n + eps) for x, n in zip(xs, norms)]
    mean = sequential_sum([u * wi for u, wi in zip(units, w)])
    mean_norm = tree_norm(mean)
    if mean_norm < eps:
        if len(xs) == 2:
            res = xs[0] * w[0] + xs[1] * w[1]
            return res + base if base is not None else res
        raise MergeValueError("multislerp: the weighted sum of the unit tensors is zero (antipodal inputs); change the weights")
    mean = mean / mean_norm
    tangents = [u - tree_sum(u * mean) * mean for u in units]
    tangent = sequential_sum([tv * wi for tv, wi in zip(tangents, w)])
    tangent_norm = tree_norm(tangent) + eps
    result = mean * cos(tangent_norm) + tangent * (sin(tangent_norm) / tangent_norm)
    avg_norm = math.fsum(n * wi for n, wi in zip(norms, w))
    result = result * avg_norm
    return result + base if base is not None else result


def karcher(xs: Sequence[np.ndarray], max_iter: int, tol: float) -> np.ndarray:
    """mergekit's Karcher (Riemannian) mean of the unit tensors, scaled by the mean norm."""
    alphas = [1.0 / len(xs)] * len(xs)
    norms, units = [], []
    for x in xs:
        n = tree_norm(x)
        norms.append(n)
        units.append(np.zeros_like(x) if n == 0.0 else x / n)
    valid = [i for i, n in enumerate(norms) if n > tol]
    if not valid:
        return np.zeros_like(xs[0])
    alpha_sum = 0.0
    for i in valid:
        alpha_sum += alphas[i]
    a = [alphas[i] / alpha_sum for i in valid]
    us = [units[i] for i in valid]
    u = np.zeros_like(us[0])
    for ai, ui in zip(a, us):
        u = u + ai * ui
    norm_u = tree_norm(u)
    u = us[0].copy() if norm_u < tol else u / norm_u
    for _ in range(max_iter):
        T = np.zeros_like(u)
        for ai, ui in zip(a, us):
            dot = min(max(tree_sum(u * ui), -1.0), 1.0)
            theta = acos(dot)
            if theta < tol:
                continue
            T = T + ai * (theta / sin(theta)) * (ui - dot * u)
        norm_T = tree_norm(T)
        if norm_T < tol:
            break
        u = cos(norm_T) * u + sin(norm_T) * (T / norm_T)
        u_norm = tree_norm(u)
        if u_norm > tol:
            u = u / u_norm
    s = 0.0
    for ai, n in zip(alphas, norms):
        s += ai * n
    return s * u


