"""The numeric rules of derived tensors: dtype conversion, linear merge, task arithmetic, LoRA.

Every machine must get the same bits, so the rules are fixed (``docs/recipes.md``, "Numerics"):

- inputs are widened exactly to float64 (F32, F16 and BF16 values are all float64 values);
- arithmetic is done in float64, one IEEE operation at a time, in recipe order (no fused
  multiply-add, no BLAS: a matrix product is a sum of outer products in rank order), so each
  output element depends only on its own inputs and never on block size or thread count;
- the float64 result is rounded once to the output dtype, round to nearest, ties to even.
  F32 is numpy's IEEE conversion; F16 and BF16 are done with integer bit operations after an
  exact round-to-odd step to F32 (rounding to odd at 24 bits, then to nearest-even at 11 or 8
  bits, equals a single correct rounding of the float64 value).

All kernels work on row blocks so memory stays bounded by a block, not a tensor.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import InputError

__all__ = [
    "FLOAT_DTYPES",
    "CASTABLE_DTYPES",
    "storage_dtype",
    "to_float64",
    "from_float64",
    "round_to_odd_f32",
    "bf16_bits_from_f32",
    "linear_block",
    "task_arithmetic_block",
    "lora_block",
    "lora_scale",
    "normalized_weights",
]

#: Floating dtypes a derived tensor can read.
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
#: Dtypes a derived tensor or a cast can produce.
CASTABLE_DTYPES = ("F32", "F16", "BF16")

_STORAGE = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "u1",
    "F8_E4M3": "u1", "F8_E5M2": "u1", "F8_E8M0": "u1", "F8_E4M3FNUZ": "u1", "F8_E5M2FNUZ": "u1",
    "C64": "<c8",
}


def storage_dtype(dtype: str) -> np.dtype:
    """The numpy dtype that holds a safetensors dtype's raw little-endian elements (BF16 as u16)."""
    try:
        return np.dtype(_STORAGE[dtype])
    except KeyError:
        raise InputError(f"dtype {dtype} has no fixed-size element numpy can read") from None


def to_float64(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Widen raw elements of a float dtype to float64 (always exact)."""
    if dtype == "BF16":
        return (raw.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    if dtype in ("F64", "F32", "F16"):
        return raw.astype(np.float64)
    raise InputError(f"dtype {dtype} is not a floating-point dtype this version computes with (F64, F32, F16, BF16)")


def round_to_odd_f32(x: np.ndarray) -> np.ndarray:
    """float64 -> float32 rounded to odd: truncate toward zero, set the last bit if inexact.

    Rounding to odd at 24 bits and then to nearest-even at p <= 22 bits gives the correctly
    rounded p-bit result (no double-rounding error), which is how F16 and BF16 are produced.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        nearest = x.astype(np.float32)
    back = nearest.astype(np.float64)
    bits = nearest.view(np.uint32).copy()
    inexact = (back != x) & np.isfinite(x)
    # RNE went away from zero (or overflowed to inf): step one ulp back toward zero.
    away = inexact & (np.abs(back) > np.abs(x))
    bits[away] -= np.uint32(1)
    bits[inexact] |= np.uint32(1)
    return bits.view(np.float32)


def bf16_bits_from_f32(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits, round to nearest, ties to even; NaN stays a quiet NaN."""
    u = x.view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    quiet = (u >> 16) | 0x40
    return np.where(nan, quiet, rounded).astype(np.uint16)


def from_float64(x: np.ndarray, dtype: str) -> np.ndarray:
    """Round float64 values once to ``dtype`` (nearest, ties to even); raw little-endian elements."""
    if dtype == "F64":
        return x.astype("<f8", copy=False)
    if dtype == "F32":
        with np.errstate(over="ignore"):
            return x.astype("<f4")
    if dtype == "F16":
        with np.errstate(over="ignore"):
            return round_to_odd_f32(x).astype("<f2")
    if dtype == "BF16":
        return bf16_bits_from_f32(round_to_odd_f32(x))
    raise InputError(f"cannot produce dtype {dtype}; derived tensors and casts produce {', '.join(CASTABLE_DTYPES)}")


def normalized_weights(weights: Sequence[float], normalize: bool) -> list[float]:
    """The weights a linear merge uses: as given, or divided by their float64 sum (in order)."""
    weights = [float(w) for w in weights]
    if not normalize:
        return weights
    total = 0.0
    for w in weights:
        total += w
    if total == 0.0:
        raise InputError("normalize needs weights that do not sum to 0")
    return [w / total for w in weights]


def linear_block(blocks: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """sum_i w_i * x_i in float64, left to right: acc = w0*x0, then acc = acc + wi*xi."""
    acc = blocks[0] * weights[0]
    for block, weight in zip(blocks[1:], weights[1:]):
        acc = acc + block * weight
    return acc


def task_arithmetic_block(base: np.ndarray, blocks: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """base + sum_i w_i * (x_i - base) in float64, left to right."""
    acc = base
    for block, weight in zip(blocks, weights):
        acc = acc + (block - base) * weight
    return acc


def lora_scale(lora_alpha: float, r: int, use_rslora: bool) -> float:
    """PEFT's scaling: lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA (float64)."""
    return float(lora_alpha) / (math.sqrt(r) if use_rslora else float(r))


def lora_block(base: np.ndarray, lora_a: np.ndarray, lora_b: np.ndarray, scale: float, rows: slice,
               fan_in_fan_out: bool) -> np.ndarray:
    """Rows ``rows`` of W + scale * (B @ A) (or its transpose with fan_in_fan_out), in float64.

    ``base`` is the float64 block of W's rows; ``lora_a`` (r, in) and ``lora_b`` (out, r) are whole
    float64 matrices. The product is the sum over k = 0..r-1 of outer products, accumulated in
    that order, then scaled once and added once.
    """
    rank = lora_a.shape[0]
    if fan_in_fan_out:  # W is stored (in, out): row i of W is column i of (B @ A)
        left, right = lora_a[:, rows].T, lora_b.T  # (rows, r), (r, out)
    else:
        left, right = lora_b[rows, :], lora_a  # (rows, r), (r, in)
    product = left[:, 0:1] * right[0:1, :]
    for k in range(1, rank):
        product = product + left[:, k:k + 1] * right[k:k + 1, :]
    return base + product * scale
