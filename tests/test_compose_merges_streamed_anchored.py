"""model_stock, ram, ramplus_tl and sce computed chunk by chunk (registry/compose/merges/streamed_anchored.py):
the same bits as the whole-tensor path on tensors of many chunks, with NaN, infinities, signed zeros
and equal values at the chunk boundaries, and sce's top-k the whole path's stable-sort choice."""

from __future__ import annotations

import numpy as np
import pytest

from registry.compose import merges
from registry.compose.merges import sparsification, streamed
from tests.merge_stream_support import SHAPES, SMALL_CHUNK, related, same_bits

SPECIALS = [("F32", "none"), ("F32", "zeros"), ("F32", "nonfinite"), ("BF16", "nonfinite")]


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(streamed, "CHUNK", SMALL_CHUNK)


def _assert_streams_the_whole_paths_bits(method, raws, widen, params, count=3):
    base = widen[0](raws[0])
    xs = [w(r) for w, r in zip(widen[1:], raws[1:])]
    sp = [{}] * count
    with np.errstate(all="ignore"):
        whole = merges.run_method(method, base, xs, sp, params, 0, "t")
        chunks = list(merges.stream_chunks(method, raws[0], raws[1:], widen, sp, params, 0, "t"))
    assert same_bits(chunks, whole)
    return np.concatenate(chunks)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("filter_wise", [False, True])
@pytest.mark.parametrize("dtype,special", SPECIALS)
def test_streamed_model_stock_gives_the_whole_tensor_paths_bits(shape, filter_wise, dtype, special):
    raws, widen = related(np.random.default_rng(21), shape, 3, dtype, special)
    _assert_streams_the_whole_paths_bits("model_stock", raws, widen, {"filter_wise": filter_wise})


def test_streamed_model_stock_of_two_sources_and_of_identical_sources_keeps_the_whole_paths_bits():
    raws, widen = related(np.random.default_rng(22), (40, 33), 2)
    _assert_streams_the_whole_paths_bits("model_stock", raws, widen, {"filter_wise": False}, count=2)
    same = [raws[0], raws[1], raws[1], raws[1]]  # cos 1: t = 1, the average
    _assert_streams_the_whole_paths_bits("model_stock", same, widen * 2, {"filter_wise": False})


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("method,params", [("ram", {"epsilon": 0.05}), ("ramplus_tl", {"epsilon": 0.05, "r": 0.3, "alpha": 0.5}),
                                           ("ramplus_tl", {"epsilon": 1e-5, "r": 0.1, "alpha": 0.2})])
@pytest.mark.parametrize("dtype,special", SPECIALS)
def test_streamed_ram_and_ramplus_give_the_whole_tensor_paths_bits(shape, method, params, dtype, special):
    raws, widen = related(np.random.default_rng(23), shape, 3, dtype, special)
    _assert_streams_the_whole_paths_bits(method, raws, widen, params)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("select_topk", [1.0, 0.4, 0.0, 0.004])
@pytest.mark.parametrize("dtype,special", SPECIALS)
def test_streamed_sce_gives_the_whole_tensor_paths_bits(shape, select_topk, dtype, special):
    raws, widen = related(np.random.default_rng(24), shape, 3, dtype, special)
    _assert_streams_the_whole_paths_bits("sce", raws, widen, {"select_topk": select_topk})


@pytest.mark.parametrize("gather", [1 << 23, 0])
def test_streamed_sce_selects_among_equal_variances_as_the_stable_sort_does(monkeypatch, gather):
    monkeypatch.setattr(sparsification, "GATHER_KEYS", gather)  # 0: every radix pass, no gathering
    rng = np.random.default_rng(25)
    base = rng.standard_normal(500).astype(np.float32)
    offsets = rng.choice(np.array([0.0, 0.25, -0.25, 0.5], dtype=np.float32), size=(3, 500))
    raws = [base] + [(base + o).astype(np.float32) for o in offsets]
    from registry.compose import ops
    widen = [lambda r: ops.to_float64(r, "F32")] * 4
    for select_topk in (0.1, 0.37, 0.5, 0.9):
        out = _assert_streams_the_whole_paths_bits("sce", raws, widen, {"select_topk": select_topk})
        assert not np.array_equal(out, base.astype(np.float64))


@pytest.mark.parametrize("shape", SHAPES + [(300, 1), (1,)])
@pytest.mark.parametrize("dtype,special", SPECIALS)
@pytest.mark.parametrize("gather", [1 << 23, 40, 0])
def test_streamed_arcee_fusion_gives_the_whole_tensor_paths_bits(monkeypatch, shape, dtype, special, gather):
    monkeypatch.setattr(sparsification, "GATHER_KEYS", gather)
    raws, widen = related(np.random.default_rng(26), shape, 1, dtype, "none" if shape == (1,) else special)
    out = _assert_streams_the_whole_paths_bits("arcee_fusion", raws, widen, {}, count=1)
    if special == "none" and len(shape) == 2 and shape[1] > 1:  # a real selection: some changes kept, some not
        changed = out != widen[0](raws[0]).reshape(-1)
        assert changed.any() and not changed.all()


def test_value_keys_order_values_as_numpys_sort_and_decode_to_them():
    from registry.compose.merges import streamed_anchored
    rng = np.random.default_rng(27)
    values = rng.choice(np.array([0.0, -0.0, 1.5, -1.5, 1e-310, -1e-310, np.inf, -np.inf, np.nan, -np.nan, 7.0]), size=400)
    values[::3] = rng.standard_normal(134)
    keys = streamed_anchored.value_keys(values)
    ordered = np.sort(values, kind="stable")
    by_key = values[np.argsort(keys, kind="stable")]
    assert np.array_equal(ordered, by_key, equal_nan=True)  # equal as values: ±0 together, NaN last
    for key, value in zip(keys, values):
        decoded = streamed_anchored.key_value(int(key))
        assert decoded == value or (np.isnan(decoded) and np.isnan(value))
