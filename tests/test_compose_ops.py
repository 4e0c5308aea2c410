"""The numeric rules of derived tensors, checked against independent exact references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from registry.compose import ops
from tests.compose_support import FLOAT16_TABLES, reference_bits
from registry.errors import InputError


def _hard_cases(dtype: str, rng: np.random.Generator) -> np.ndarray:
    """Midpoints between neighbours and float64 values one ulp either side of them: the cases a
    double rounding through float32 gets wrong."""
    values, _ = FLOAT16_TABLES[dtype]
    picks = rng.choice(len(values) - 1, size=3000, replace=False)
    mids = np.array([(values[i] + values[i + 1]) / 2 for i in picks])  # exact in float64
    cases = np.concatenate([mids, np.nextafter(mids, np.inf), np.nextafter(mids, 0), np.nextafter(mids, np.inf) * 1])
    # float64 values just above a midpoint but within float32's rounding of it
    above = mids * (1 + 2.0**-40)
    return np.concatenate([cases, above, -cases])


@pytest.mark.parametrize("dtype", ["BF16", "F16"])
def test_rounding_to_16_bit_floats_matches_exact_reference(dtype):
    rng = np.random.default_rng(7)
    randoms = np.concatenate([
        rng.standard_normal(4000),
        rng.standard_normal(2000) * 1e-6,
        rng.standard_normal(1000) * 6e4,
        np.exp(rng.uniform(-100, 100, 2000)),
        np.array([0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, 3.4e38, 3.3895313892515355e38, 1e-40, 5e-324,
                  2.0**-24, 2.0**-25, 2.0**-25 * 1.0000001, 2.0**-133, 2.0**-134]),
    ])
    x = np.concatenate([randoms, _hard_cases(dtype, rng)])
    got = ops.from_float64(x, dtype)
    got_bits = got.view(np.uint16) if dtype == "F16" else got
    expected = np.array([reference_bits(float(v), dtype) for v in x], dtype=np.uint16)
    bad = np.nonzero(got_bits != expected)[0]
    assert bad.size == 0, f"{dtype}: {x[bad[:5]]} -> {got_bits[bad[:5]]} expected {expected[bad[:5]]}"


def test_double_rounding_through_float32_would_differ_on_the_hard_cases():
    # Guards the test above: it contains values where f64 -> f32 -> bf16 is wrong.
    rng = np.random.default_rng(7)
    x = _hard_cases("BF16", rng)
    twice = ops.bf16_bits_from_f32(x.astype(np.float32))
    once = np.array([reference_bits(float(v), "BF16") for v in x], dtype=np.uint16)
    assert (twice != once).any()


def test_bf16_of_known_values():
    x = np.array([1.0, -2.0, 3.140625, 1.00390625, 1.01171875, np.inf, -np.inf, 0.0, -0.0])
    assert ops.from_float64(x, "BF16").tolist() == [0x3F80, 0xC000, 0x4049, 0x3F80, 0x3F82, 0x7F80, 0xFF80, 0, 0x8000]
    nan = ops.from_float64(np.array([np.nan]), "BF16")[0]
    assert (nan & 0x7F80) == 0x7F80 and (nan & 0x7F) != 0


def test_widening_is_exact_and_round_trips():
    rng = np.random.default_rng(1)
    f32 = rng.standard_normal(1000).astype(np.float32)
    assert np.array_equal(ops.to_float64(f32, "F32"), f32.astype(np.float64))
    bf16 = ops.from_float64(f32.astype(np.float64), "BF16")
    assert np.array_equal(ops.from_float64(ops.to_float64(bf16, "BF16"), "BF16"), bf16)
    f16 = ops.from_float64(f32.astype(np.float64), "F16")
    assert np.array_equal(ops.from_float64(ops.to_float64(f16, "F16"), "F16"), f16)
    assert np.array_equal(ops.from_float64(f32.astype(np.float64), "F32"), f32)


def test_integer_dtypes_are_not_computed_with():
    with pytest.raises(InputError, match="not a floating-point dtype"):
        ops.to_float64(np.zeros(3, dtype=np.int64), "I64")
    with pytest.raises(InputError, match="cannot produce dtype I8"):
        ops.from_float64(np.zeros(3), "I8")


def test_linear_and_task_arithmetic_follow_the_stated_order():
    rng = np.random.default_rng(2)
    a, b, c = (rng.standard_normal(257) for _ in range(3))
    assert np.array_equal(ops.linear_block([a, b, c], [0.5, 0.25, 0.25]), (a * 0.5 + b * 0.25) + c * 0.25)
    assert np.array_equal(ops.task_arithmetic_block(a, [b, c], [0.7, -0.3]), (a + (b - a) * 0.7) + (c - a) * -0.3)
    assert ops.normalized_weights([1, 3], True) == [0.25, 0.75]
    with pytest.raises(InputError):
        ops.normalized_weights([1, -1], True)


def test_linear_keeps_negative_zero():
    z = np.array([-0.0])
    assert math.copysign(1, ops.linear_block([z, z], [1.0, 1.0])[0]) == -1


def test_lora_block_equals_matrix_product_reference_and_is_block_independent():
    rng = np.random.default_rng(3)
    out_f, in_f, r = 40, 24, 4
    w = rng.standard_normal((out_f, in_f))
    a = rng.standard_normal((r, in_f))
    b = rng.standard_normal((out_f, r))
    whole = ops.lora_block(w, a, b, 0.5, slice(0, out_f), False)
    np.testing.assert_allclose(whole, w + 0.5 * (b @ a), rtol=1e-13, atol=1e-13)
    pieces = np.concatenate([ops.lora_block(w[i:i + 7], a, b, 0.5, slice(i, i + 7), False) for i in range(0, out_f, 7)])
    assert np.array_equal(pieces, whole)
    wt = w.T.copy()  # fan_in_fan_out stores W transposed
    transposed = ops.lora_block(wt, a, b, 0.5, slice(0, in_f), True)
    np.testing.assert_allclose(transposed, wt + 0.5 * (b @ a).T, rtol=1e-13, atol=1e-13)
    assert ops.lora_scale(16, 8, False) == 2.0 and ops.lora_scale(16, 4, True) == 8.0
