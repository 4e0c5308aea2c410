"""nuslerp, multislerp and karcher computed chunk by chunk (registry/compose/merges/streamed_spherical.py):
the same bits as the whole-tensor path on tensors of many chunks, signed zeros at the chunk
boundaries, per-row and per-column variants, and the same one-line error on a NaN or infinity."""

from __future__ import annotations

import numpy as np
import pytest

from registry.compose import merges
from registry.compose.merges import streamed
from tests.merge_stream_support import SHAPES, SMALL_CHUNK, related, same_bits


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(streamed, "CHUNK", SMALL_CHUNK)


def _both(method, raws, widen, with_base, sp, params):
    """(whole result or error message, streamed chunks or error message)."""
    base = widen[0](raws[0]) if with_base else None
    xs = [w(r) for w, r in zip(widen[1:], raws[1:])]
    try:
        with np.errstate(all="ignore"):
            whole = merges.run_method(method, base, xs, sp, params, 0, "t")
    except merges.MergeValueError as exc:
        whole = str(exc)
    try:
        with np.errstate(all="ignore"):
            chunks = list(merges.stream_chunks(method, raws[0] if with_base else None, raws[1:],
                                               [widen[0] if with_base else None, *widen[1:]], sp, params, 0, "t"))
    except merges.MergeValueError as exc:
        chunks = str(exc)
    return whole, chunks


def _assert_same(whole, chunks):
    if isinstance(whole, str):
        assert chunks == whole
    else:
        assert not isinstance(chunks, str), chunks
        assert same_bits(chunks, whole)


NUSLERP_MODES = [{"nuslerp_flatten": True, "nuslerp_row_wise": False}, {"nuslerp_flatten": False, "nuslerp_row_wise": False},
                 {"nuslerp_flatten": False, "nuslerp_row_wise": True}]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", NUSLERP_MODES, ids=["flatten", "per-row", "row-wise"])
@pytest.mark.parametrize("with_base", [False, True])
@pytest.mark.parametrize("dtype,special", [("F32", "none"), ("F32", "zeros"), ("BF16", "zeros")])
def test_streamed_nuslerp_gives_the_whole_tensor_paths_bits(shape, mode, with_base, dtype, special):
    raws, widen = related(np.random.default_rng(len(shape)), shape, 2, dtype, special)
    sp = [{"weight": 0.7}, {"weight": 0.4}]
    whole, chunks = _both("nuslerp", raws, widen, with_base, sp, mode)
    assert not isinstance(whole, str)
    _assert_same(whole, chunks)


@pytest.mark.parametrize("mode", NUSLERP_MODES, ids=["flatten", "per-row", "row-wise"])
def test_streamed_nuslerp_lerps_the_colinear_rows_and_slerps_the_others(mode):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((40, 33)).astype(np.float32)
    b = (a * np.float32(2)).astype(np.float32)
    b[::2, 1::2] = rng.standard_normal((20, 16)).astype(np.float32)  # some rows and columns stay colinear
    b[:, 0] = a[:, 0] * np.float32(3)
    from registry.compose import ops
    widen = [lambda r: ops.to_float64(r, "F32")] * 3
    whole, chunks = _both("nuslerp", [a, a, b], widen, False, [{"weight": 0.5}, {"weight": 0.5}], mode)
    _assert_same(whole, chunks)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_base", [False, True])
@pytest.mark.parametrize("normalize_weights", [True, False])
@pytest.mark.parametrize("special", ["none", "zeros"])
def test_streamed_multislerp_gives_the_whole_tensor_paths_bits(shape, with_base, normalize_weights, special):
    raws, widen = related(np.random.default_rng(7), shape, 3, "F32", special)
    sp = [{"weight": 0.5}, {"weight": 0.3}, {"weight": 0.2}]
    whole, chunks = _both("multislerp", raws, widen, with_base, sp, {"normalize_weights": normalize_weights, "eps": 1e-8})
    assert not isinstance(whole, str)
    _assert_same(whole, chunks)


@pytest.mark.parametrize("count", [2, 3])
def test_streamed_multislerp_of_antipodal_inputs_lerps_two_and_refuses_three_as_the_whole_path_does(count):
    from registry.compose import ops
    x = np.random.default_rng(8).standard_normal(300).astype(np.float32)
    raws = [np.zeros_like(x), x, -x] + ([x] if count == 3 else [])
    widen = [lambda r: ops.to_float64(r, "F32")] * len(raws)
    sp = [{"weight": 0.5}, {"weight": 0.5}] if count == 2 else [{"weight": 0.5}, {"weight": 1.0}, {"weight": 0.5}]
    whole, chunks = _both("multislerp", raws, widen, False, sp, {"normalize_weights": False, "eps": 1e-8})
    assert isinstance(whole, str) == (count == 3)
    _assert_same(whole, chunks)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("max_iter,tol", [(20, 1e-9), (3, 1e-5), (1, 1e-12)])
@pytest.mark.parametrize("special", ["none", "zeros"])
def test_streamed_karcher_gives_the_whole_tensor_paths_bits(shape, max_iter, tol, special):
    raws, widen = related(np.random.default_rng(9), shape, 3, "F32", special)
    whole, chunks = _both("karcher", raws, widen, False, [{}] * 3, {"max_iter": max_iter, "tol": tol})
    assert not isinstance(whole, str)
    _assert_same(whole, chunks)


def test_streamed_karcher_replays_iterations_that_change_the_result():
    raws, widen = related(np.random.default_rng(10), (40, 33), 3)
    raws[1] = (raws[1] * np.float32(3)).astype(np.float32)  # unequal norms: the first mean is not the Karcher mean
    results = []
    for max_iter in (0, 1, 20):
        whole, chunks = _both("karcher", raws, widen, False, [{}] * 3, {"max_iter": max_iter, "tol": 1e-12})
        _assert_same(whole, chunks)
        results.append(np.concatenate(chunks))
    assert not np.array_equal(results[0], results[1]) and not np.array_equal(results[1], results[2])


def test_streamed_karcher_skips_zero_sources_and_gives_zeros_when_all_are_zero():
    raws, widen = related(np.random.default_rng(11), (300,), 3)
    raws[2] = np.zeros_like(raws[2])
    _assert_same(*_both("karcher", raws, widen, False, [{}] * 3, {"max_iter": 10, "tol": 1e-9}))
    zeros = [np.zeros_like(raws[0])] * 4
    whole, chunks = _both("karcher", zeros, widen, False, [{}] * 3, {"max_iter": 10, "tol": 1e-9})
    _assert_same(whole, chunks)
    assert not np.concatenate(chunks).any()


@pytest.mark.parametrize("method,params,count", [
    ("nuslerp", {"nuslerp_flatten": True, "nuslerp_row_wise": False}, 2),
    ("nuslerp", {"nuslerp_flatten": False, "nuslerp_row_wise": False}, 2),
    ("nuslerp", {"nuslerp_flatten": False, "nuslerp_row_wise": True}, 2),
    ("multislerp", {"normalize_weights": True, "eps": 1e-8}, 3),
    ("karcher", {"max_iter": 10, "tol": 1e-9}, 3),
])
def test_a_nan_or_infinity_stops_a_streamed_spherical_merge_with_the_whole_paths_error(method, params, count):
    raws, widen = related(np.random.default_rng(12), (40, 33), count, "F32", "nonfinite")
    sp = [{"weight": 0.6}, {"weight": 0.4}, {"weight": 0.2}][:count]
    whole, chunks = _both(method, raws, widen, False, sp, params)
    assert isinstance(whole, str) and "infinity or NaN" in whole
    assert chunks == whole


@pytest.mark.parametrize("op,params", [("karcher", {"max_iter": 10, "tol": 1e-9}),
                                       ("nuslerp", {"nuslerp_flatten": False, "nuslerp_row_wise": True}),
                                       ("multislerp", {})])
def test_the_engine_streams_a_merge_without_a_base_into_the_whole_paths_tensor(tmp_path, monkeypatch, op, params):
    from registry.compose import ops
    from registry.compose.engine import assemble
    from registry.compose.sources import LocalElementSource
    from registry.formats.recipe import parse_recipe
    from tests.compose_support import read_tensors, write_element

    count = 2 if op == "nuslerp" else 3
    raws, widen = related(np.random.default_rng(13), (40, 33), count)
    weights = (0.5, 0.3, 0.2)[:count]
    defaults = {"nuslerp_flatten": True, "nuslerp_row_wise": False, "normalize_weights": True, "eps": 1e-8}
    whole = merges.run_method(op, None, [w(r) for w, r in zip(widen[1:], raws[1:])], [{"weight": w} for w in weights],
                              {**defaults, **params}, 0, "w")
    names = [f"m{i}" for i in range(count)]
    inputs = {n: {"content_id": write_element(tmp_path, f"{n}.safetensors", {"w": raws[1 + i]}), "path": f"{n}.safetensors"}
              for i, n in enumerate(names)}
    sources = [{"from": n} if op == "karcher" else {"from": n, "weight": w} for n, w in zip(names, weights)]
    doc = {"format": "elements.recipe/v1", "inputs": inputs, "steps": [{"op": op, "sources": sources, "parameters": params}]}

    def whole_path(*args, **kwargs):
        raise AssertionError("the whole-tensor path ran")

    monkeypatch.setattr(merges, "run_method", whole_path)
    assemble(parse_recipe(doc), LocalElementSource(tmp_path), tmp_path / "out")
    dtype, raw = read_tensors(tmp_path / "out")["w"]
    assert dtype == "F32"
    assert raw.tobytes() == ops.from_float64(whole.reshape(-1), "F32").tobytes()


@pytest.mark.parametrize("replayed", [1, 2, 4])
def test_streamed_karcher_from_a_held_iterate_gives_the_whole_tensor_paths_bits(monkeypatch, replayed):
    from registry.compose.merges import streamed_spherical
    monkeypatch.setattr(streamed_spherical, "REPLAYED_STEPS", replayed)
    raws, widen = related(np.random.default_rng(14), (40, 33), 4, "F32", "zeros")
    raws[2] = (raws[2] * np.float32(5)).astype(np.float32)
    for max_iter in (1, replayed, replayed + 1, 3 * replayed + 2):
        _assert_same(*_both("karcher", raws, widen, False, [{}] * 4, {"max_iter": max_iter, "tol": 1e-14}))
