"""The numerics of mergekit's merge methods, re-derivable to the bit (``docs/recipes.md``, "Merge methods").

The rules of :mod:`registry.compose.ops` hold here too: inputs widened exactly to float64, every
element-wise step one IEEE float64 operation in a stated order (numpy's +, -, *, /, sqrt are
correctly rounded and never fused), one rounding to the output dtype at the end. Methods that
look at a whole tensor (norms, angles, ranks) add three rules so that no result depends on the
machine, the thread count or the block size:

- **reductions have one fixed order**: a sum over a tensor (a norm, a dot product, a mean) adds
  its float64 terms in a fixed pairwise tree of IEEE additions (:func:`tree_sum`), over the
  whole tensor, so it does not depend on blocks, shards, threads or the machine;
- **transcendentals are ours**: the few scalar ``acos``/``sin``/``cos`` of the spherical methods
  are computed with ``decimal`` at 40 digits and rounded once to float64, and the element-wise
  ``exp``/``log`` of ``arcee_fusion`` are fixed polynomials of IEEE operations (libm and numpy's
  SIMD loops differ between machines; these do not);
- **orders are total**: a sort by magnitude is stable, so ties go to the lower element index;
- **randomness is a counter stream**: DARE and DELLA keep element *j* of source *i* of output
  tensor *name* when ``u < p``, where ``u`` is the top 53 bits of the little-endian u64 at byte
  ``8j`` of the BLAKE3 XOF keyed by ``BLAKE3("elements.merge.rng/v1\\0" + [seed, name, i])``
  (:func:`uniforms`): element *j*'s draw depends on nothing else, so shards, blocks and threads
  cannot change it.

Each method is a function of whole float64 tensors (shape preserved) and returns the float64
result; :mod:`registry.compose.plan` rounds it.
"""

from __future__ import annotations

import decimal
import math
from typing import Any, Mapping, Sequence

import numpy as np
from blake3 import blake3

from ..errors import InputError
from ..formats.content_id import canonical_json
from ..formats.recipe import RecipeError

__all__ = [
    "MergeValueError",
    "tree_sum",
    "tree_norm",
    "acos",
    "sin",
    "cos",
    "exp",
    "log",
    "uniforms",
    "rng_key",
    "run_method",
    "cos_array",
    "random_block",
    "check_density",
    "della_probabilities",
]

_CHUNK = 1 << 20


class MergeValueError(InputError):
    """A merge cannot be computed from these tensor values (found only when the data is read)."""


# --------------------------------------------------------------------------------------------
# exact reductions


def _tree(values: np.ndarray) -> np.ndarray:
    """Pairwise sums along the last axis in a fixed tree: at each level element 2k is added to
    element 2k+1 (a +0.0 appended to an odd level), until one is left. Every addition is one IEEE
    operation of numpy's element-wise add, so the result is the same on every machine."""
    level = np.asarray(values, dtype=np.float64)
    if level.shape[-1] == 0:
        return np.zeros(level.shape[:-1] + (1,))
    while level.shape[-1] > 1:
        if level.shape[-1] % 2:
            level = np.concatenate([level, np.zeros(level.shape[:-1] + (1,))], axis=-1)
        level = level[..., 0::2] + level[..., 1::2]
    return level


def tree_sum(x: np.ndarray) -> float:
    """The sum of a whole float64 tensor (flattened, C order) in the fixed pairwise tree of
    :func:`_tree`: independent of machine, blocks, shards and threads (a tensor is always summed
    whole), within log2(n) roundings of the exact sum. Infinities and NaN propagate as in IEEE."""
    return float(_tree(np.asarray(x, dtype=np.float64).reshape(-1))[0])


def tree_norm(x: np.ndarray) -> float:
    """sqrt(tree_sum(x*x)): each square rounded once, summed in the fixed tree, sqrt correctly rounded."""
    return math.sqrt(tree_sum(x * x))


def _row_sums(x: np.ndarray) -> np.ndarray:
    """Fixed-tree sums along the last axis (shape x.shape[:-1] + (1,); a scalar for 0-d)."""
    if x.ndim == 0:
        return x.reshape(())
    return _tree(x)


# --------------------------------------------------------------------------------------------
# scalar transcendentals: decimal at 40 digits, rounded once to float64

_CTX = decimal.Context(prec=40)


def _d(x: float) -> decimal.Decimal:
    return decimal.Decimal(x)  # exact: every float64 is a finite decimal


def _pi() -> decimal.Decimal:
    return 4 * _atan(decimal.Decimal(1))


def _atan(x: decimal.Decimal) -> decimal.Decimal:
    with decimal.localcontext(_CTX) as ctx:
        ctx.prec = 48
        if x < 0:
            return -_atan(-x)
        halvings = 0
        while x > decimal.Decimal("0.1"):  # atan(x) = 2 atan(x / (1 + sqrt(1 + x^2)))
            x = x / (1 + (1 + x * x).sqrt())
            halvings += 1
        term, total, k, x2 = x, x, 1, x * x
        while True:
            term = -term * x2
            k += 2
            step = term / k
            if abs(step) < decimal.Decimal(10) ** -50:
                break
            total += step
        return total * (2 ** halvings)


def _sin_d(x: decimal.Decimal) -> decimal.Decimal:
    with decimal.localcontext(_CTX) as ctx:
        ctx.prec = 48
        two_pi = 2 * _PI
        x = x % two_pi
        term, total, n = x, x, 1
        while True:
            term = -term * x * x / ((n + 1) * (n + 2))
            n += 2
            if abs(term) < decimal.Decimal(10) ** -50:
                break
            total += term
        return total


_PI = _pi()


def _round(x: decimal.Decimal) -> float:
    return float(x)  # Decimal -> float is correctly rounded


def _finite(x: float, what: str) -> None:
    if not math.isfinite(x):
        raise MergeValueError(f"{what} of {x}: the tensors hold an infinity or NaN; a spherical merge needs finite values")


def acos(x: float) -> float:
    """acos of a float64 in [-1, 1], to float64 (40-digit decimal, rounded once)."""
    _finite(x, "acos")
    if not -1.0 <= x <= 1.0:
        raise MergeValueError(f"acos of {x} is undefined")
    d = _d(x)
    with decimal.localcontext(_CTX) as ctx:
        ctx.prec = 48
        if d == 1:
            return 0.0
        if d == -1:
            return _round(_PI)
        return _round(2 * _atan(((1 - d) / (1 + d)).sqrt()))


def sin(x: float) -> float:
    """sin of a finite float64, to float64 (40-digit decimal, rounded once)."""
    _finite(x, "sin")
    return _round(_sin_d(_d(x)))


def cos(x: float) -> float:
    """cos of a finite float64, to float64 (40-digit decimal, rounded once)."""
    _finite(x, "cos")
    with decimal.localcontext(_CTX) as ctx:
        ctx.prec = 48
        return _round(_sin_d(_d(x) + _PI / 2))


# --------------------------------------------------------------------------------------------
# element-wise exp and log from IEEE operations only

_LN2_HI = 6.93147180369123816490e-01  # ln 2 with the low 32 bits zero: k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_EXP_COEFFS = [1.0 / math.factorial(n) for n in range(14, -1, -1)]


def exp(x: np.ndarray) -> np.ndarray:
    """e**x element-wise (Cody-Waite reduction, degree-14 Taylor polynomial in Horner form, ldexp).

    Within 2 ulp of the true value for |x| < 700; deterministic on every machine (+, *, rint and
    ldexp only). Below -745 the result is 0, above 709.78 infinity.
    """
    x = np.asarray(x, dtype=np.float64)
    clipped = np.where(np.isnan(x), 0.0, np.clip(x, -746.0, 710.0))
    k = np.rint(clipped * _INV_LN2)
    r = (clipped - k * _LN2_HI) - k * _LN2_LO
    p = np.full_like(r, _EXP_COEFFS[0])
    for c in _EXP_COEFFS[1:]:
        p = p * r + c
    with np.errstate(over="ignore", under="ignore"):
        # ldexp in two steps so 2**k never overflows on its own before the product does
        half = np.floor(k / 2)
        out = np.ldexp(np.ldexp(p, half.astype(np.int64)), (k - half).astype(np.int64))
    out = np.where(np.isnan(x), x, out)
    return out


def log(x: np.ndarray) -> np.ndarray:
    """ln x element-wise for x > 0 (frexp, the atanh series of (m-1)/(m+1), IEEE ops only)."""
    x = np.asarray(x, dtype=np.float64)
    m, e = np.frexp(x)
    small = m < math.sqrt(0.5)
    m = np.where(small, m * 2.0, m)
    e = (e - small).astype(np.float64)
    f = m - 1.0
    s = f / (2.0 + f)
    s2 = s * s
    series = np.full_like(s, 1.0 / 27)
    for n in range(25, 0, -2):
        series = series * s2 + 1.0 / n
    return e * _LN2_HI + (e * _LN2_LO + 2.0 * s * series)


_PIO2_HI = 1.57079632673412561417e00  # pi/2 with the low 33 bits zero: k * _PIO2_HI is exact for small k
_PIO2_LO = 6.07710050650619224932e-11
_SIN_COEFFS = [(-1) ** n / math.factorial(2 * n + 1) for n in range(9, -1, -1)]
_COS_COEFFS = [(-1) ** n / math.factorial(2 * n) for n in range(9, -1, -1)]


def cos_array(x: np.ndarray) -> np.ndarray:
    """cos element-wise for |x| < 2**20 (quadrant reduction by pi/2 in two parts, Taylor
    polynomials on [-pi/4, pi/4], IEEE operations only; within 2 ulp, identical everywhere)."""
    x = np.asarray(x, dtype=np.float64)
    k = np.rint(x / (_PIO2_HI + _PIO2_LO))
    r = (x - k * _PIO2_HI) - k * _PIO2_LO
    r2 = r * r
    s = np.full_like(r, _SIN_COEFFS[0])
    for c in _SIN_COEFFS[1:]:
        s = s * r2 + c
    s = s * r
    c_ = np.full_like(r, _COS_COEFFS[0])
    for c in _COS_COEFFS[1:]:
        c_ = c_ * r2 + c
    quadrant = np.mod(k, 4).astype(np.int64)
    return np.choose(quadrant, [c_, -s, -c_, s])


def random_block(distribution: str, scale: float, seed: int, name: str, start: int, count: int) -> np.ndarray:
    """Elements ``start .. start+count-1`` of a random tensor: ``normal`` (Box-Muller from streams
    0 and 1: scale * sqrt(-2 ln(1 - u0)) * cos(2 pi u1)) or ``uniform`` (stream 0: scale * (2 u0 - 1))."""
    u0 = uniforms(seed, name, 0, start, count)
    if distribution == "uniform":
        return (u0 * 2 - 1) * scale
    u1 = uniforms(seed, name, 1, start, count)
    radius = np.sqrt(-2.0 * log(1.0 - u0))
    return radius * cos_array(u1 * (2 * math.pi)) * scale


# --------------------------------------------------------------------------------------------
# counter-based randomness


def rng_key(seed: int, tensor: str, source: int) -> bytes:
    """The 32-byte BLAKE3 key of one (seed, output tensor, source) stream."""
    return blake3(b"elements.merge.rng/v1\x00" + canonical_json([seed, tensor, source])).digest()


def uniforms(seed: int, tensor: str, source: int, start: int, count: int) -> np.ndarray:
    """Uniform float64s in [0, 1) for elements ``start .. start+count-1`` of one stream.

    Element j's value is the top 53 bits of the little-endian u64 at byte 8j of the keyed XOF,
    times 2**-53: it depends on (seed, tensor, source, j) only.
    """
    hasher = blake3(key=rng_key(seed, tensor, source))
    out = np.empty(count, dtype=np.float64)
    for offset in range(0, count, _CHUNK):
        n = min(_CHUNK, count - offset)
        raw = np.frombuffer(hasher.digest(length=8 * n, seek=8 * (start + offset)), dtype="<u8")
        out[offset:offset + n] = (raw >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return out


# --------------------------------------------------------------------------------------------
# generalized task arithmetic

_SPARSIFY = {
    "ties": ("magnitude", "sum"), "dare_ties": ("random", "sum"), "dare_linear": ("random", None),
    "breadcrumbs": ("magnitude_outliers", None), "breadcrumbs_ties": ("magnitude_outliers", "sum"),
    "della": ("della_magprune", "sum"), "della_linear": ("della_magprune", None),
}


def check_density(method: str, numel: int, source_params: Mapping[str, Any], where: str) -> None:
    """Refuse, at planning, a density that would keep no element or an impossible DELLA window."""
    density = source_params.get("density", 1.0)
    if method not in _SPARSIFY or density >= 1:
        return
    kind = _SPARSIFY[method][0]
    if kind == "della_magprune" and density > 0:
        eps = source_params["epsilon"]
        if density + eps >= 1 or density - eps <= 0:
            raise RecipeError(f"{where}: density {density} ± epsilon {eps} must stay inside (0, 1); lower epsilon")


# --------------------------------------------------------------------------------------------
# sparsification (mergekit.sparsify)


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
    kind = _SPARSIFY[method][0]
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


# --------------------------------------------------------------------------------------------
# the methods


def _sum(arrays: Sequence[np.ndarray]) -> np.ndarray:
    acc = arrays[0]
    for a in arrays[1:]:
        acc = acc + a
    return acc


def _sign_mask(weighted: Sequence[np.ndarray]) -> list[np.ndarray]:
    majority = np.where(_sum(weighted) >= 0, 1.0, -1.0)
    return [(np.sign(wd) == majority).astype(np.float64) for wd in weighted]


def gta(method: str, base: np.ndarray, xs: Sequence[np.ndarray], sp: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any], seed: int, name: str) -> np.ndarray:
    """Generalized task arithmetic (ties, dare_*, breadcrumbs*, della*), as mergekit's GTATask."""
    consensus = _SPARSIFY[method][1]
    deltas = []
    for index, (x, p) in enumerate(zip(xs, sp)):
        deltas.append(sparsify(method, x - base, p, params["rescale"], (seed, name, index)))
    weights = [p["weight"] for p in sp]
    weighted = [d * w for d, w in zip(deltas, weights)]
    if consensus:
        masks = _sign_mask(weighted)
        mixed = _sum([wd * m for wd, m in zip(weighted, masks)])
        divisor = _sum([m * w for m, w in zip(masks, weights)])
        divisor = np.where(divisor == 0, 1.0, divisor)
    else:
        mixed = _sum(weighted)
        total = 0.0
        for w in weights:
            total += w
        divisor = 1.0 if abs(total) < 1e-8 else total
    if params["normalize"]:
        mixed = mixed / divisor
    if params["lambda"] != 1:
        mixed = mixed * params["lambda"]
    return base + mixed


def slerp_vectors(t: float, v0: np.ndarray, v1: np.ndarray, dot_threshold: float = 0.9995, eps: float = 1e-8) -> np.ndarray:
    """mergekit's slerp over whole tensors (lerp when nearly colinear)."""
    n0, n1 = tree_norm(v0), tree_norm(v1)
    u0 = v0 / (n0 if n0 > eps else 1.0)
    u1 = v1 / (n1 if n1 > eps else 1.0)
    dot = min(max(tree_sum(u0 * u1), -1.0), 1.0)
    if abs(dot) > dot_threshold:
        return (1 - t) * v0 + t * v1
    theta = acos(dot)
    sin_theta = sin(theta)
    coef_a = sin((1 - t) * theta) / sin_theta
    coef_b = sin(t * theta) / sin_theta
    return coef_a * v0 + coef_b * v1


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
        cos_theta = min(max(tree_sum(ux * uy), -1.0), 1.0)
        if (1 - cos_theta * cos_theta) <= eps * eps:
            out[i] = (1 - t) * x + t * y
        else:
            theta = acos(cos_theta)
            sin_theta = sin(theta)
            out[i] = (sin((1 - t) * theta) * x + sin(t * theta) * y) / sin_theta
    return back(out.reshape(a.shape))


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
    mean = _sum([u * wi for u, wi in zip(units, w)])
    mean_norm = tree_norm(mean)
    if mean_norm < eps:
        if len(xs) == 2:
            res = xs[0] * w[0] + xs[1] * w[1]
            return res + base if base is not None else res
        raise MergeValueError("multislerp: the weighted sum of the unit tensors is zero (antipodal inputs); change the weights")
    mean = mean / mean_norm
    tangents = [u - tree_sum(u * mean) * mean for u in units]
    tangent = _sum([tv * wi for tv, wi in zip(tangents, w)])
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


def sce(base: np.ndarray, xs: Sequence[np.ndarray], select_topk: float) -> np.ndarray:
    """mergekit's SCE: select by cross-model variance, calculate weights from squared magnitude,
    erase by sign consensus."""
    tvs = [x - base for x in xs]
    n = len(tvs)
    if select_topk < 1:
        if select_topk <= 0:
            mask = np.zeros_like(base)
        else:
            mean = _sum(tvs) / n
            var = _sum([(tv - mean) * (tv - mean) for tv in tvs]) / n
            k = int(int(np.count_nonzero(var)) * select_topk)
            mask = np.zeros(base.size)
            if k:
                order = np.argsort(-np.abs(var).reshape(-1), kind="stable")
                mask[order[:k]] = 1.0
            mask = mask.reshape(base.shape)
        tvs = [tv * mask for tv in tvs]
    erase = _sign_mask(tvs)
    weights = [tree_sum(tv * tv) / tv.size for tv in tvs]
    weight_sum = math.fsum(weights)
    weights = [1.0 / n] * n if abs(weight_sum) < 1e-6 else [w / weight_sum for w in weights]
    erased = [m * w for m, w in zip(erase, weights)]
    merged = _sum([tv * ew for tv, ew in zip(tvs, erased)])
    return base + merged / np.maximum(_sum(erased), 1e-6)


def model_stock(base: np.ndarray, xs: Sequence[np.ndarray], filter_wise: bool) -> np.ndarray:
    """mergekit's Model Stock: interpolate the average towards the base by the mean pairwise cosine
    of the task vectors (per tensor, or per row with filter_wise)."""
    shape = base.shape
    if filter_wise:
        w0 = base.reshape(1, -1) if base.ndim < 2 else base
        ws = [x.reshape(w0.shape) for x in xs]
        dot = _row_sums
        norm = lambda v: np.sqrt(_row_sums(v * v))  # noqa: E731
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
    cos_theta = _sum(cosines) / len(cosines)
    count = len(ws)
    denominator = 1 + (count - 1) * cos_theta
    singular = np.abs(denominator) < 1e-6
    t = np.where(singular, 0.0, (count * cos_theta) / np.where(singular, 1.0, denominator))
    w_avg = _sum(ws) / count
    return (t * w_avg + (1 - t) * w0).reshape(shape)


def nearswap(base: np.ndarray, x: np.ndarray, t: float) -> np.ndarray:
    """mergekit's NearSwap: take the other model where it is within t of the base, blend beyond."""
    absdiff = np.abs(base - x)
    weight = np.clip(t / np.maximum(absdiff, 1e-6), 0.0, 1.0)
    return weight * x + (1 - weight) * base


def _softmax_rows(x: np.ndarray) -> np.ndarray:
    shifted = x - np.max(x, axis=-1, keepdims=True)
    e = exp(shifted)
    return e / _row_sums(e)


def arcee_fusion_importance(base: np.ndarray, x: np.ndarray) -> np.ndarray:
    """|x - base| times the KL divergence of the rows' softmaxes (mergekit's importance)."""
    eps = 1e-8
    p = _softmax_rows(x) + eps
    q = _softmax_rows(base) + eps
    kl = _row_sums(p * log(p / q))
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
    return base + _sum(parts).reshape(base.shape)


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
    return base + _sum(parts).reshape(base.shape)


def run_method(method: str, base: np.ndarray | None, xs: Sequence[np.ndarray], source_params: Sequence[Mapping[str, Any]],
               params: Mapping[str, Any], seed: int, name: str) -> np.ndarray:
    """The float64 result of ``method`` on whole float64 tensors (``name`` keys the randomness)."""
    if method in _SPARSIFY:
        assert base is not None
        return gta(method, base, xs, source_params, params, seed, name)
    if method == "slerp":
        return slerp_vectors(params["t"], base, xs[0])
    if method == "nuslerp":
        w0, w1 = source_params[0]["weight"], source_params[1]["weight"]
        total = w0 + w1
        t = 0.5 if abs(total) < 1e-6 else w1 / total
        if base is not None:
            return base + nuslerp(t, xs[0] - base, xs[1] - base, params["nuslerp_row_wise"], params["nuslerp_flatten"])
        return nuslerp(t, xs[0], xs[1], params["nuslerp_row_wise"], params["nuslerp_flatten"])
    if method == "multislerp":
        return multislerp(xs, [p["weight"] for p in source_params], base, params["normalize_weights"], params["eps"])
    if method == "karcher":
        return karcher(xs, int(params["max_iter"]), params["tol"])
    if method == "sce":
        return sce(base, xs, params["select_topk"])
    if method == "model_stock":
        return model_stock(base, xs, params["filter_wise"])
    if method == "nearswap":
        return nearswap(base, xs[0], params["t"])
    if method == "arcee_fusion":
        return arcee_fusion(base, xs[0])
    if method == "ram":
        return ram(base, xs, params["epsilon"])
    if method == "ramplus_tl":
        return ramplus_tl(base, xs, params["r"], params["alpha"], params["epsilon"])
    raise InputError(f"unknown merge method {method!r}")  # pragma: no cover - the recipe parser admits no other

