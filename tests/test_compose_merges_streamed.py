"""ties and dare computed chunk by chunk (registry/compose/merges/streamed.py) and the radix
selection of the top k magnitudes (merges/sparsify.py): the same elements as a stable sort, ties
between equal magnitudes to the lower index, and the same bits as the whole-tensor path."""

from __future__ import annotations

import numpy as np
import pytest

from registry.compose import merges, ops
from registry.compose.merges import sparsification, streamed

#: gathering after the first digit (the usual path), after a later one, or never (four radix passes)
GATHER = [1 << 23, 40, 0]


def _stable_top_k(values: np.ndarray, k: int) -> np.ndarray:
    """The reference: mergekit's rule as a stable descending sort by magnitude."""
    order = np.argsort(-np.abs(values), kind="stable")
    mask = np.zeros(values.size)
    mask[order[:k]] = 1.0
    return mask


def _tied(rng: np.random.Generator, n: int) -> np.ndarray:
    """Values drawn from few magnitudes of both signs, with zeros, infinities and NaN among them."""
    values = rng.choice(np.array([0.0, -0.0, 0.5, -0.5, 1.25, -1.25, 3.0, 1e-300, np.inf, -np.inf, np.nan]), size=n)
    distinct = rng.random(n) < 0.3
    values[distinct] = rng.standard_normal(int(np.count_nonzero(distinct)))
    return values


@pytest.mark.parametrize("gather", GATHER)
@pytest.mark.parametrize("n", [1, 2, 7, 100, 1000])
def test_the_radix_selection_keeps_what_a_stable_sort_keeps_when_magnitudes_tie(monkeypatch, n, gather):
    monkeypatch.setattr(sparsification, "GATHER_KEYS", gather)
    rng = np.random.default_rng(n)
    for trial in range(20):
        values = _tied(rng, n) if trial % 2 else rng.standard_normal(n)
        for k in sorted({1, max(1, n // 3), max(1, n // 2), n}):
            keys = merges.magnitude_keys(values)
            mask, _ = merges.top_k_mask(keys, merges.top_k_threshold(lambda: (keys,), k), 0)
            assert np.array_equal(mask, _stable_top_k(values, k)), (trial, k)
            assert int(mask.sum()) == k


@pytest.mark.parametrize("gather", GATHER)
def test_the_radix_selection_gives_the_same_set_from_chunks_of_any_size(monkeypatch, gather):
    monkeypatch.setattr(sparsification, "GATHER_KEYS", gather)
    rng = np.random.default_rng(3)
    values = _tied(rng, 999)
    keys = merges.magnitude_keys(values)
    for k in (1, 250, 500, 998):
        expected = _stable_top_k(values, k)
        for size in (1, 7, 64, 500):
            chunks = [keys[s:s + size] for s in range(0, keys.size, size)]
            threshold = merges.top_k_threshold(lambda: iter(chunks), k)
            seen, parts = 0, []
            for chunk in chunks:
                mask, seen = merges.top_k_mask(chunk, threshold, seen)
                parts.append(mask)
            assert np.array_equal(np.concatenate(parts), expected), (k, size)


def _inputs(rng: np.random.Generator, dtype: str, tied: bool):
    shape = (40, 33)
    base = rng.standard_normal(shape).astype(np.float32)
    xs = [(base + rng.standard_normal(shape) * 0.05).astype(np.float32) for _ in range(3)]
    if tied:  # whole rows equal to the base and shared offsets: many equal magnitudes and zeros
        xs[0][::3] = base[::3]
        xs[1] = (base + np.float32(0.125) * np.sign(rng.standard_normal(shape))).astype(np.float32)
    if dtype == "BF16":
        raw = [(a.view(np.uint32) >> 16).astype(np.uint16) for a in [base] + xs]
    else:
        raw = [base] + xs
    return raw, [lambda r, d=dtype: ops.to_float64(r, d)] * 4


@pytest.mark.parametrize("method", ["dare_linear", "dare_ties", "ties"])
@pytest.mark.parametrize("rescale", [False, True])
@pytest.mark.parametrize("dtype", ["F32", "BF16"])
@pytest.mark.parametrize("tied", [False, True])
def test_streamed_ties_and_dare_give_the_whole_tensor_paths_bits(monkeypatch, method, rescale, dtype, tied):
    monkeypatch.setattr(streamed, "CHUNK", 64)  # many chunks, the last one short
    monkeypatch.setattr(sparsification, "GATHER_KEYS", 0)  # the streamed path's four passes
    rng = np.random.default_rng(11)
    raw, widen = _inputs(rng, dtype, tied)
    sp = [{"weight": 1.0, "density": 0.4}, {"weight": -0.7, "density": 0.0}, {"weight": 0.5, "density": 1.0}]
    if method == "ties":
        sp[1]["density"] = 0.25
    params = {"rescale": rescale, "normalize": method != "dare_linear", "lambda": 0.9}
    whole = merges.gta(method, widen[0](raw[0]), [w(r) for w, r in zip(widen[1:], raw[1:])], sp, params, 4, "t")
    chunks = list(streamed.gta_chunks(method, raw[0], raw[1:], widen, sp, params, 4, "t"))
    assert [c.size for c in chunks[:-1]] == [64] * (len(chunks) - 1)
    assert np.concatenate(chunks).tobytes() == whole.reshape(-1).tobytes()


def test_a_ties_merge_with_zero_density_keeps_nothing_of_that_source():
    rng = np.random.default_rng(2)
    raw, widen = _inputs(rng, "F32", False)
    sp = [{"weight": 1.0, "density": 0.0}]
    params = {"rescale": False, "normalize": True, "lambda": 1.0}
    out = np.concatenate(list(streamed.gta_chunks("ties", raw[0], raw[1:2], widen, sp, params, 0, "t")))
    assert np.array_equal(out, raw[0].reshape(-1).astype(np.float64))


@pytest.mark.parametrize("n", [1, 63, 64, 65, 96, 97, 128, 129, 200, 1000])
def test_a_sum_from_chunk_sums_is_the_whole_tensors_tree_sum_with_signed_zeros(n):
    rng = np.random.default_rng(n)
    cases = [rng.standard_normal(n), np.full(n, -0.0), np.where(rng.random(n) < 0.5, -0.0, rng.standard_normal(n)),
             np.concatenate([np.full(n - 1, -0.0), [np.inf]]) if n > 1 else np.array([np.nan])]
    for values in cases:
        parts = [merges.tree_sum(values[s:s + 64]) for s in range(0, n, 64)]
        got = merges.tree_sum_of_chunks(parts, n - 64 * (len(parts) - 1), 64)
        expected = merges.tree_sum(values)
        assert np.array([got]).tobytes() == np.array([expected]).tobytes() or (np.isnan(got) and np.isnan(expected))


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("case", ["random", "colinear", "zero", "tied"])
def test_streamed_slerp_and_nearswap_give_the_whole_tensor_paths_bits(monkeypatch, t, case):
    monkeypatch.setattr(streamed, "CHUNK", 64)
    rng = np.random.default_rng(5)
    raw, widen = _inputs(rng, "F32", case == "tied")
    base, x = raw[0], raw[1]
    if case == "colinear":
        x = (base * np.float32(1.5)).astype(np.float32)
    elif case == "zero":
        base = np.zeros_like(base)
    b64, x64 = widen[0](base), widen[1](x)
    whole = merges.slerp_vectors(t, b64, x64)
    assert np.concatenate(list(streamed.slerp_chunks(t, base, x, widen))).tobytes() == whole.reshape(-1).tobytes()
    whole = merges.nearswap(b64, x64, t + 0.01)
    assert np.concatenate(list(streamed.nearswap_chunks(t + 0.01, base, x, widen))).tobytes() == whole.reshape(-1).tobytes()


def test_a_streamed_slerp_of_an_infinity_is_a_one_line_error_naming_the_tensor(tmp_path):
    from registry.compose.engine import assemble
    from registry.compose.sources import LocalElementSource
    from registry.formats.recipe import parse_recipe
    from tests.compose_support import write_element

    a = np.ones((4, 4), dtype=np.float32)
    b = a.copy()
    b[1, 2] = np.inf
    inputs = {n: {"content_id": write_element(tmp_path, f"{n}.safetensors", {"w": v}), "path": f"{n}.safetensors"}
              for n, v in (("a", a), ("b", b))}
    doc = {"format": "elements.recipe/v1", "inputs": inputs,
           "steps": [{"op": "slerp", "base": "a", "sources": [{"from": "b"}], "parameters": {"t": 0.5}}]}
    with pytest.raises(merges.MergeValueError, match=r"slerp of tensor 'w': .*infinity or NaN"):
        assemble(parse_recipe(doc), LocalElementSource(tmp_path), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("method", ["breadcrumbs", "breadcrumbs_ties", "della", "della_linear"])
@pytest.mark.parametrize("shape", [(40, 33), (7, 5, 9), (1000,), (65,), (300, 1), (3, 200)])
@pytest.mark.parametrize("special", ["none", "zeros", "nonfinite"])
@pytest.mark.parametrize("gather", [1 << 23, 0])
def test_streamed_breadcrumbs_and_della_give_the_whole_tensor_paths_bits(monkeypatch, method, shape, special, gather):
    from tests.merge_stream_support import SMALL_CHUNK, related, same_bits
    monkeypatch.setattr(streamed, "CHUNK", SMALL_CHUNK)  # many chunks; a 1-D DELLA row spans them all
    monkeypatch.setattr(sparsification, "GATHER_KEYS", gather)
    raws, widen = related(np.random.default_rng(17), shape, 3, "F32", special)
    base, xs = widen[0](raws[0]), [w(r) for w, r in zip(widen[1:], raws[1:])]
    for densities in ([0.4, 0.0, 1.0], [0.3, 0.7, 0.05]):
        sp = [{"weight": w, "density": d, "gamma": g, "epsilon": e}
              for w, d, g, e in zip((1.0, -0.7, 0.5), densities, (0.05, 0.3, 0.0), (0.02, 0.04, 0.01))]
        for rescale in (False, True):
            params = {"rescale": rescale, "normalize": True, "lambda": 0.9}
            with np.errstate(all="ignore"):
                whole = merges.run_method(method, base, xs, sp, params, 4, "t")
                chunks = list(merges.stream_chunks(method, raws[0], raws[1:], widen, sp, params, 4, "t"))
            assert same_bits(chunks, whole), (densities, rescale)


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1000])
def test_ascending_magnitude_keys_select_what_a_stable_ascending_sort_puts_first(n):
    rng = np.random.default_rng(n)
    values = _tied(rng, n)
    keys = sparsification.ascending_magnitude_keys(values)
    order = np.argsort(np.abs(values), kind="stable")
    for k in sorted({1, max(1, n // 3), n}):
        mask, _ = merges.top_k_mask(keys, merges.top_k_threshold(lambda: (keys,), k), 0)
        expected = np.zeros(n)
        expected[order[:k]] = 1.0
        assert np.array_equal(mask, expected), k


@pytest.mark.parametrize("gather", GATHER)
def test_several_radix_selections_sharing_their_passes_keep_what_stable_sorts_keep(monkeypatch, gather):
    monkeypatch.setattr(sparsification, "GATHER_KEYS", gather)
    rng = np.random.default_rng(19)
    values = _tied(rng, 999)
    keys = merges.magnitude_keys(values)
    chunks = [keys[s:s + 64] for s in range(0, keys.size, 64)]
    ks = [999, 1, 500, 250, 500, 998]
    for k, threshold in zip(ks, sparsification.top_k_thresholds(lambda: iter(chunks), ks)):
        mask, _ = merges.top_k_mask(keys, threshold, 0)
        assert np.array_equal(mask, _stable_top_k(values, k)), k
