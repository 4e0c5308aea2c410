"""Inputs for the streamed-merge tests: F32/BF16 tensors larger than one (patched) chunk, with
NaN, infinities, signed zeros, equal values and zeros at chunk boundaries where asked."""

from __future__ import annotations

import numpy as np

from registry.compose import ops

#: the chunk the tests patch in: tensors of a few hundred elements span many chunks
SMALL_CHUNK = 64

#: shapes: 2-D with a short last chunk, 3-D, 1-D of exactly two chunks, 1-D one past a chunk,
#: rows longer than a chunk
SHAPES = [(40, 33), (7, 5, 9), (128,), (65,), (3, 200)]


def related(rng: np.random.Generator, shape: tuple[int, ...], count: int, dtype: str = "F32",
            special: str = "none") -> tuple[list[np.ndarray], list]:
    """A base and ``count`` fine-tunes of it as raw arrays of ``dtype``, and their widen functions.

    ``special``: "zeros" puts ±0 (in base and task vectors) and equal values around every chunk
    boundary; "nonfinite" adds a NaN and infinities of both signs as well."""
    base = rng.standard_normal(shape).astype(np.float32)
    xs = [(base + rng.standard_normal(shape).astype(np.float32) * np.float32(0.05)).astype(np.float32) for _ in range(count)]
    if special != "none":
        flat_base = base.reshape(-1)
        flat_xs = [x.reshape(-1) for x in xs]
        n = flat_base.size
        for edge in range(0, n + 1, SMALL_CHUNK):
            around = [i for i in (edge - 2, edge - 1, edge, edge + 1) if 0 <= i < n]
            flat_base[around] = np.float32(-0.0)
            flat_xs[0][around] = np.float32(0.0)  # task vector +0 - (-0) = +0
            if count > 1:
                flat_xs[1][around] = np.float32(-0.0)  # task vector -0 - (-0) = +0, a zero product
        flat_base[1::17] = np.float32(0.0)
        if count > 1:
            flat_xs[1][1::17] = np.float32(-0.0)  # task vector -0 - (+0) = -0
            flat_xs[1][2::9] = flat_xs[0][2::9]  # equal values across sources
        flat_xs[0][::5] = flat_base[::5]  # unchanged elements: task-vector zeros
        if special == "nonfinite":
            flat_xs[0][n // 3] = np.float32(np.nan)
            flat_xs[-1][n // 2] = np.float32(np.inf)
            flat_base[(2 * n) // 3] = np.float32(-np.inf)
    raws = [base] + xs
    if dtype == "BF16":
        raws = [(a.view(np.uint32) >> 16).astype(np.uint16) for a in raws]
    return raws, [lambda r, d=dtype: ops.to_float64(r, d)] * len(raws)


def same_bits(chunks: list[np.ndarray], whole: np.ndarray) -> bool:
    """The concatenated chunks hold the whole result's float64 bits; a NaN must be a NaN at the
    same place, its sign bit aside: where two NaNs of opposite sign meet in one addition or
    multiplication, numpy's SIMD loop returns one or the other by the array's length and the
    element's place in it (numpy 2.4, AVX-512: the second operand's in the last ``len % 8``
    elements of an array longer than 8, else the first's), so the whole-tensor path's NaN signs
    already depend on the tensor's length, and a chunk's on the chunk's."""
    got = np.concatenate(chunks)
    expected = np.ascontiguousarray(whole, dtype=np.float64).reshape(-1)
    nan = np.isnan(expected)
    if not np.array_equal(np.isnan(got), nan):
        return False
    return got[~nan].tobytes() == expected[~nan].tobytes()
