"""mergekit's merge methods in Elements (registry/compose/merges/, planned by compose/plan.py):
randomness that reproduces on any shard layout, block size and thread; per-layer gradients and
tensor filters; the exact scalar functions; bad values refused before anything is written.
(The comparison with mergekit itself is tests/test_compose_merges_oracle.py.)"""

from __future__ import annotations

import json
import math
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from blake3 import blake3

from registry.compose import merges, tensor_plans
from registry.compose.engine import assemble
from registry.compose.sources import LocalElementSource
from registry.errors import InputError
from registry.formats.recipe import RecipeError, parse_recipe
from tests.compose_support import leftovers, read_tensors, write_element

LAYERS = 3


def _model(rng: np.random.Generator, base: dict | None = None, scale: float = 0.05) -> dict[str, np.ndarray]:
    if base is None:
        tensors = {f"model.layers.{i}.{m}.weight": rng.standard_normal((32, 48)).astype(np.float32)
                   for i in range(LAYERS) for m in ("self_attn", "mlp")}
        tensors["model.embed.weight"] = rng.standard_normal((20, 48)).astype(np.float32)
        tensors["model.position_ids"] = np.arange(7, dtype=np.int64)
        return tensors
    out = {n: (v + rng.standard_normal(v.shape) * scale).astype(np.float32) for n, v in base.items() if v.dtype == np.float32}
    out["model.position_ids"] = base["model.position_ids"]
    return out


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    rng = np.random.default_rng(5)
    arrays = {"base": _model(rng)}
    for name in ("m1", "m2", "m3"):
        arrays[name] = _model(rng, arrays["base"])
    inputs = {n: {"content_id": write_element(root, f"{n}.safetensors", a), "path": f"{n}.safetensors"} for n, a in arrays.items()}
    return root, inputs, arrays


def _doc(zoo, op: str, step: dict) -> dict:
    _, inputs, _ = zoo
    used = {step.get("base")} | {s["from"] for s in step["sources"]}
    return {"format": "elements.recipe/v1", "inputs": {k: v for k, v in inputs.items() if k in used},
            "steps": [{"op": op, **step}]}


def _assemble(zoo, doc: dict, out: Path, **options):
    root = zoo[0]
    return assemble(parse_recipe(doc), LocalElementSource(root), out, force=True, **options)


DARE = {"base": "base", "sources": [{"from": "m1", "weight": 0.7, "density": 0.4}, {"from": "m2", "weight": 0.5, "density": 0.6}],
        "seed": 42}


# ------------------------------------------------------------------------------ randomness


def test_the_stream_is_the_documented_blake3_xof_keyed_by_seed_tensor_and_source():
    key = blake3(b"elements.merge.rng/v1\x00" + json.dumps([9, "w", 2], separators=(",", ":")).encode()).digest()
    raw = blake3(key=key).digest(length=8 * 5)
    expected = [(struct.unpack_from("<Q", raw, 8 * j)[0] >> 11) * 2.0**-53 for j in range(5)]
    assert merges.uniforms(9, "w", 2, 0, 5).tolist() == expected


def test_a_stream_read_from_any_offset_gives_the_same_draws():
    whole = merges.uniforms(1, "model.layers.0.mlp.weight", 0, 0, 5000)
    pieces = np.concatenate([merges.uniforms(1, "model.layers.0.mlp.weight", 0, start, 1000) for start in range(0, 5000, 1000)])
    assert np.array_equal(whole, pieces)
    assert np.array_equal(merges.uniforms(1, "model.layers.0.mlp.weight", 0, 1234, 1), whole[1234:1235])
    others = [merges.uniforms(2, "model.layers.0.mlp.weight", 0, 0, 5000), merges.uniforms(1, "model.layers.1.mlp.weight", 0, 0, 5000),
              merges.uniforms(1, "model.layers.0.mlp.weight", 1, 0, 5000)]
    assert all(not np.array_equal(whole, other) for other in others)
    assert 0.0 <= whole.min() and whole.max() < 1.0


def test_dare_gives_one_content_id_for_any_shard_size_block_size_and_thread(zoo, tmp_path, monkeypatch):
    doc = _doc(zoo, "dare_ties", DARE)
    single = _assemble(zoo, doc, tmp_path / "single")
    sharded = _assemble(zoo, doc, tmp_path / "sharded", max_shard_size=10_000)
    assert len(list((tmp_path / "sharded").glob("model-*.safetensors"))) > 3
    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = list(pool.map(lambda i: _assemble(zoo, doc, tmp_path / f"thread{i}", max_shard_size=[10**9, 20_000, 7_000][i]),
                                 range(3)))
    monkeypatch.setattr(tensor_plans, "DERIVED_BLOCK_ELEMS", 100)
    small_blocks = _assemble(zoo, doc, tmp_path / "blocks")
    ids = {single.content_id, sharded.content_id, small_blocks.content_id, *(r.content_id for r in threaded)}
    assert len(ids) == 1
    reseeded = _assemble(zoo, _doc(zoo, "dare_ties", dict(DARE, seed=43)), tmp_path / "reseeded")
    assert reseeded.content_id != single.content_id


def test_dare_keeps_each_element_with_its_own_draw(zoo, tmp_path):
    _, _, arrays = zoo
    _assemble(zoo, _doc(zoo, "dare_linear", dict(DARE, parameters={"rescale": False})), tmp_path / "out")
    out = read_tensors(tmp_path / "out")
    name = "model.layers.1.mlp.weight"
    base, m1, m2 = (arrays[k][name].astype(np.float64) for k in ("base", "m1", "m2"))
    keep1 = merges.uniforms(42, name, 0, 0, base.size).reshape(base.shape) < 0.4
    keep2 = merges.uniforms(42, name, 1, 0, base.size).reshape(base.shape) < 0.6
    expected = (base + ((m1 - base) * keep1 * 0.7 + (m2 - base) * keep2 * 0.5)).astype(np.float32)
    assert np.array_equal(out[name][1], expected)
    assert abs(keep1.mean() - 0.4) < 0.05 and abs(keep2.mean() - 0.6) < 0.05
    assert np.array_equal(out["model.position_ids"][1], arrays["base"]["model.position_ids"])  # identical integers: copied


# ------------------------------------------------------------------------------ gradients and filters


def test_a_slerp_gradient_runs_over_the_layers_and_filters_pick_per_tensor_values(zoo, tmp_path):
    _, _, arrays = zoo
    step = {"base": "base", "sources": [{"from": "m1"}], "template": "model.layers.{n}.",
            "parameters": {"t": [{"filter": "self_attn", "value": [0, 1]}, {"value": 0.3}]}}
    _assemble(zoo, _doc(zoo, "slerp", step), tmp_path / "out")
    out = read_tensors(tmp_path / "out")

    def expected(name: str, t: float) -> np.ndarray:
        base, other = (arrays[k][name].astype(np.float64) for k in ("base", "m1"))
        return merges.slerp_vectors(t, base, other).astype(np.float32)

    # t = 0 at the first layer and 1 at the last: the endpoints come back bit for bit
    assert np.array_equal(out["model.layers.0.self_attn.weight"][1], arrays["base"]["model.layers.0.self_attn.weight"])
    assert np.array_equal(out["model.layers.2.self_attn.weight"][1], arrays["m1"]["model.layers.2.self_attn.weight"])
    assert np.array_equal(out["model.layers.1.self_attn.weight"][1], expected("model.layers.1.self_attn.weight", 0.5))
    for name in ("model.layers.0.mlp.weight", "model.layers.2.mlp.weight", "model.embed.weight"):
        assert np.array_equal(out[name][1], expected(name, 0.3))
    assert not np.array_equal(out["model.layers.1.self_attn.weight"][1], expected("model.layers.1.self_attn.weight", 0.3))


def test_a_per_source_density_gradient_changes_how_much_each_layer_keeps(zoo, tmp_path):
    _, _, arrays = zoo
    step = {"base": "base", "template": "model.layers.{n}.", "select": ["model.layers.*"],
            "sources": [{"from": "m1", "weight": 1.0, "density": [0.2, 0.9]}]}
    _assemble(zoo, _doc(zoo, "ties", step), tmp_path / "out")
    out = read_tensors(tmp_path / "out")
    kept = [np.mean(out[f"model.layers.{i}.mlp.weight"][1] != arrays["base"][f"model.layers.{i}.mlp.weight"]) for i in range(LAYERS)]
    assert [round(k, 2) for k in kept] == [0.2, 0.55, 0.9]


# ------------------------------------------------------------------------------ bad values


def test_an_impossible_della_window_is_refused_before_writing(zoo, tmp_path):
    step = {"base": "base", "sources": [{"from": "m1", "weight": 1.0, "density": 0.1, "epsilon": 0.2}]}
    with pytest.raises(RecipeError, match=r"density 0.1 ± epsilon 0.2 must stay inside \(0, 1\); lower epsilon"):
        _assemble(zoo, _doc(zoo, "della", step), tmp_path / "out")
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path, "out")


def test_a_filter_list_that_misses_a_tensor_is_refused_by_name(zoo, tmp_path):
    step = {"base": "base", "sources": [{"from": "m1"}], "parameters": {"t": [{"filter": "self_attn", "value": 0.5}]}}
    with pytest.raises(RecipeError, match=r"no \{filter, value\} of parameters.t matches tensor 'model.embed.weight'"):
        _assemble(zoo, _doc(zoo, "slerp", step), tmp_path / "out")


def test_an_infinite_weight_in_a_spherical_merge_is_a_one_line_error_and_nothing_is_written(tmp_path):
    a = {"w": np.ones((4, 4), dtype=np.float32)}
    b = {"w": np.full((4, 4), np.inf, dtype=np.float32)}
    inputs = {n: {"content_id": write_element(tmp_path, f"{n}.safetensors", t), "path": f"{n}.safetensors"} for n, t in (("a", a), ("b", b))}
    doc = {"format": "elements.recipe/v1", "inputs": inputs,
           "steps": [{"op": "nuslerp", "sources": [{"from": "a", "weight": 1}, {"from": "b", "weight": 1}],
                      "parameters": {"nuslerp_flatten": True}}]}
    with pytest.raises(InputError, match="infinity or NaN"):
        assemble(parse_recipe(doc), LocalElementSource(tmp_path), tmp_path / "out")
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path, "out")


# ------------------------------------------------------------------------------ exact scalar functions


def test_acos_sin_and_cos_are_correctly_rounded():
    mpmath = pytest.importorskip("mpmath", reason="mpmath comes with torch in the [test] extra")
    mpmath.mp.prec = 200
    rng = np.random.default_rng(3)
    for x in rng.uniform(-1, 1, 400).tolist() + [-1.0, 0.0, 1.0, 0.9995, -0.9995]:
        assert merges.acos(x) == float(mpmath.acos(mpmath.mpf(x)))
    for x in rng.uniform(-4, 4, 400).tolist() + [0.0, math.pi, 1e-300]:
        assert merges.sin(x) == float(mpmath.sin(mpmath.mpf(x)))
        assert merges.cos(x) == float(mpmath.cos(mpmath.mpf(x)))


def test_exp_and_log_are_within_two_ulps_everywhere_they_are_used():
    mpmath = pytest.importorskip("mpmath", reason="mpmath comes with torch in the [test] extra")
    mpmath.mp.prec = 200
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.uniform(-700, 0, 2000), rng.uniform(-1, 1, 2000), [0.0, -1e-300, -745.0]])
    got = merges.exp(x)
    want = np.array([float(mpmath.exp(mpmath.mpf(v))) for v in x.tolist()])
    assert np.all(np.abs(got - want) <= 2 * np.spacing(want))
    y = np.concatenate([np.exp(rng.uniform(-700, 700, 2000)), rng.uniform(0.5, 2, 2000), [1.0, 2.0, 5e-324]])
    got = merges.log(y)
    want = np.array([float(mpmath.log(mpmath.mpf(v))) for v in y.tolist()])
    assert np.all(np.abs(got - want) <= 2 * np.spacing(np.abs(want)) + (want == 0) * 0)


def test_sums_follow_the_documented_pairwise_tree():
    rng = np.random.default_rng(6)
    for n in (1, 2, 3, 7, 1000, 4097):
        x = rng.standard_normal(n) * np.exp(rng.uniform(-30, 30, n))
        level = list(x)
        while len(level) > 1:  # the tree of docs/recipes.md, one Python float addition at a time
            if len(level) % 2:
                level.append(0.0)
            level = [level[i] + level[i + 1] for i in range(0, len(level), 2)]
        assert merges.tree_sum(x) == level[0]
        assert merges.tree_sum(x.reshape(1, -1)) == level[0]  # the flattened tensor, whatever its shape
        assert abs(merges.tree_sum(x) - math.fsum(x.tolist())) <= 64 * np.spacing(np.abs(x).sum())
    assert merges.tree_sum(np.array([1e308, 1e308])) == math.inf
    assert math.isnan(merges.tree_sum(np.array([math.inf, -math.inf])))
