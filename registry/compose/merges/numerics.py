"""The shared numerics of the merge methods: exact reductions and machine-independent transcendentals.

- :func:`tree_sum` / :func:`tree_norm` / :func:`row_sums` add float64 terms in one fixed pairwise
  tree of IEEE additions, so a norm or a dot product does not depend on blocks, shards, threads
  or the machine;
- :func:`acos`, :func:`sin`, :func:`cos` of a scalar are computed in 48-digit ``decimal`` and
  rounded once (correctly rounded);
- :func:`exp`, :func:`log`, :func:`cos_array` element-wise are fixed polynomials of IEEE
  operations (libm and numpy's SIMD loops differ between machines; these do not);
- :func:`sequential_sum` adds whole tensors left to right, one IEEE addition per element.
"""

from __future__ import annotations

import decimal
import math
from typing import Sequence

import numpy as np

from ...errors import InputError

__all__ = ["MergeValueError", "tree_sum", "tree_norm", "tree_sum_of_chunks", "row_sums", "sequential_sum", "acos", "sin", "cos", "exp",
           "log", "cos_array"]


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


def tree_sum_of_chunks(partials: Sequence[float], last_size: int, chunk: int) -> float:
    """:func:`tree_sum` of a whole tensor from the tree sums of its consecutive ``chunk``-element
    pieces (``chunk`` a power of two; the last piece has ``last_size`` elements). Inside aligned
    power-of-two pieces the whole tree adds exactly what each piece's tree adds; above, a short
    last piece's sum is paired with the tree's +0.0 padding once the piece is down to one term,
    which changes only a -0.0 (to +0.0), so that addition is made here too."""
    parts = [float(p) for p in partials]
    if len(parts) > 1 and last_size <= chunk // 2:
        parts[-1] = parts[-1] + 0.0
    return float(_tree(np.array(parts, dtype=np.float64))[0]) if parts else 0.0


def row_sums(x: np.ndarray) -> np.ndarray:
    """Fixed-tree sums along the last axis (shape x.shape[:-1] + (1,); a scalar for 0-d)."""
    if x.ndim == 0:
        return x.reshape(())
    return _tree(x)


def sequential_sum(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """arrays[0] + arrays[1] + … left to right, one IEEE addition per element at each step."""
    acc = arrays[0]
    for a in arrays[1:]:
        acc = acc + a
    return acc


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

