"""The oracle: every mergekit merge method, run by mergekit itself (the installed PyPI package, on
CPU torch) and by Elements on the same small models, compared bit for bit in F32.

mergekit is given the F32 inputs widened to float64, so both sides compute in float64 and round
once to F32; where the two follow the same sequence of IEEE operations the bits are identical.
Where they cannot (mergekit sums with torch's reduction order where Elements sums exactly,
libm's acos/sin against Elements' correctly rounded ones, mergekit's float32 work dtype for the
DARE/DELLA masks on CPU) the difference is bounded in F32 units in the last place (ulps), and the
bound is the one stated in docs/recipes.md ("Merge methods", oracle column).

DARE and DELLA draw at random: mergekit's torch.bernoulli is replaced, for the test, by the
Elements counter stream (same keep rule, u < p), so everything but the draw itself is compared.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from registry.compose import merges
from registry.compose.engine import assemble
from registry.compose.sources import LocalElementSource
from registry.formats.recipe import parse_recipe
from tests.compose_support import read_tensors, write_element

# torch and mergekit, bound by _torch_and_mergekit when the file's first test runs.
torch = mergekit_methods = PerNonBase = TensorGroup = mergekit_slerp = mergekit_sparsify = None


@pytest.fixture(scope="module", autouse=True)
def _torch_and_mergekit():
    """Imported when this file runs, not when it is collected: every xdist worker collects every
    file, and torch alone takes seconds to import, which the worker that never runs these tests
    (tests/conftest.py's SHARED_IMPORTS sends them all to one) would pay for nothing."""
    global torch, mergekit_methods, PerNonBase, TensorGroup, mergekit_slerp, mergekit_sparsify
    torch = pytest.importorskip("torch", reason="torch is installed by scripts/setup.sh test (the [test] extra)")
    pytest.importorskip("mergekit", reason="mergekit is installed by scripts/setup.sh test (the [test] extra)")
    from mergekit.merge_methods import registry as mergekit_methods
    from mergekit.merge_methods.base import PerNonBase, TensorGroup
    from mergekit.merge_methods.slerp import slerp as mergekit_slerp
    import mergekit.sparsify as mergekit_sparsify

NAME = "model.layers.0.mlp.weight"
SHAPE = (24, 40)
MODELS = ("base", "m1", "m2", "m3")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Four related F32 models (a base and three fine-tunes of it) written as elements."""
    root = tmp_path_factory.mktemp("oracle")
    rng = np.random.default_rng(13)
    base = rng.standard_normal(SHAPE).astype(np.float32)
    arrays = {"base": base}
    for i, name in enumerate(MODELS[1:]):
        arrays[name] = (base + rng.standard_normal(SHAPE) * (0.05 + 0.02 * i)).astype(np.float32)
    inputs = {name: {"content_id": write_element(root, f"{name}.safetensors", {NAME: arrays[name]}),
                     "path": f"{name}.safetensors"} for name in MODELS}
    return root, inputs, arrays


def _elements(models, op: str, step: dict) -> np.ndarray:
    root, inputs, _ = models
    used = {step.get("base")} | {s["from"] for s in step["sources"]}
    doc = {"format": "elements.recipe/v1", "inputs": {k: v for k, v in inputs.items() if k in used},
           "steps": [{"op": op, **step}]}
    out = root / f"out-{op}-{abs(hash(repr(step)))}"
    assemble(parse_recipe(doc), LocalElementSource(root), out, force=True)
    dtype, raw = read_tensors(out)[NAME]
    assert dtype == "F32"
    return raw


def _mergekit(models, op: str, base: str | None, others: list[str], per_source: dict | None = None, **params) -> np.ndarray:
    _, _, arrays = models
    names = ([base] if base else []) + others
    tensors = [torch.from_numpy(arrays[n].astype(np.float64)) for n in names]
    group = TensorGroup.from_tensors(tensors, ids=names, base_index=0 if base else None)
    for key, values in (per_source or {}).items():
        params[key] = PerNonBase(list(zip(others, values)))
    out = mergekit_methods.get(op).merge_group(group, **params)
    return out.to(torch.float64).numpy().astype(np.float32)


def _ulps(a: np.ndarray, b: np.ndarray) -> int:
    """The largest distance in F32 units in the last place (ordered integer representation)."""
    def ordered(x):
        i = x.view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)
    return int(np.max(np.abs(ordered(a) - ordered(b))))


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.tobytes() == b.tobytes()


@pytest.fixture
def elements_draws_in_mergekit(monkeypatch):
    """torch.bernoulli inside mergekit.sparsify replaced by the Elements stream for (seed, NAME,
    source index): sources are sparsified in order, so the n-th call is source n."""
    calls = itertools.count()

    def bernoulli(probs, *args, **kwargs):
        index = next(calls)
        u = merges.uniforms(0, NAME, index, 0, probs.numel()).reshape(tuple(probs.shape))
        return torch.from_numpy((u < probs.to(torch.float64).numpy()).astype(np.float64)).to(probs.dtype)

    monkeypatch.setattr(mergekit_sparsify.torch, "bernoulli", bernoulli)
    return calls


TWO = [{"from": "m1", "weight": 1.0, "density": 0.5}, {"from": "m2", "weight": 0.6, "density": 0.7}]
GTA_BITS = {
    "ties": {},
    "breadcrumbs": {"gamma": [0.02, 0.05]},
    "breadcrumbs_ties": {"gamma": [0.02, 0.05]},
}


@pytest.mark.parametrize("op", sorted(GTA_BITS))
@pytest.mark.parametrize("normalize", [False, True])
def test_ties_and_breadcrumbs_give_mergekits_bits(models, op, normalize):
    gamma = GTA_BITS[op].get("gamma")
    sources = [dict(s, **({"gamma": g} if gamma else {})) for s, g in zip(TWO, gamma or [None, None])]
    ours = _elements(models, op, {"base": "base", "sources": sources, "parameters": {"normalize": normalize, "lambda": 0.9}})
    per_source = {"weight": [1.0, 0.6], "density": [0.5, 0.7], **({"gamma": gamma} if gamma else {})}
    theirs = _mergekit(models, op, "base", ["m1", "m2"], per_source, int8_mask=False, normalize=normalize,
                       rescale=False, **{"lambda": 0.9})
    assert _same_bits(ours, theirs), f"{op}: {_ulps(ours, theirs)} ulp apart"


@pytest.mark.parametrize("op", ["dare_linear", "dare_ties", "della", "della_linear"])
def test_dare_and_della_match_mergekit_given_the_same_draws(models, op, elements_draws_in_mergekit):
    sources = [dict(s, **({"epsilon": 0.1} if op.startswith("della") else {})) for s in TWO]
    ours = _elements(models, op, {"base": "base", "sources": sources, "seed": 0})
    per_source = {"weight": [1.0, 0.6], "density": [0.5, 0.7], **({"epsilon": [0.1, 0.1]} if op.startswith("della") else {})}
    defaults = {"della": (True, True), "della_linear": (False, True), "dare_ties": (False, True), "dare_linear": (False, True)}[op]
    theirs = _mergekit(models, op, "base", ["m1", "m2"], per_source, int8_mask=False, normalize=defaults[0],
                       rescale=defaults[1], **{"lambda": 1.0})
    assert next(elements_draws_in_mergekit) == 2  # mergekit drew once per source, from our stream
    # mergekit masks and rescales in float32 on CPU (its work dtype: the task vector is rounded to
    # float32 and the L1 rescale factor is a float32 ratio of float32 sums), Elements in float64:
    # the difference is a float32 relative error of the task vector (measured 1.0e-6 of it)
    assert _task_vector_error(models, ours, theirs) <= 2.0**-18


def _task_vector_error(models, ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |ours - theirs| relative to the largest task vector element."""
    _, _, arrays = models
    scale = max(float(np.max(np.abs(arrays[n].astype(np.float64) - arrays["base"]))) for n in ("m1", "m2"))
    return float(np.max(np.abs(ours.astype(np.float64) - theirs.astype(np.float64)))) / scale


def test_dare_without_rescale_differs_from_mergekit_only_by_its_float32_task_vector(models, elements_draws_in_mergekit):
    ours = _elements(models, "dare_linear", {"base": "base", "sources": TWO, "parameters": {"rescale": False}})
    theirs = _mergekit(models, "dare_linear", "base", ["m1", "m2"], {"weight": [1.0, 0.6], "density": [0.5, 0.7]},
                       int8_mask=False, normalize=False, rescale=False, **{"lambda": 1.0})
    # the one float32 rounding of each kept task-vector element, then the output's own rounding
    assert _task_vector_error(models, ours, theirs) <= 2.0**-23
    assert not _same_bits(ours, _elements(models, "dare_linear", {"base": "base", "sources": TWO, "seed": 1,
                                                                  "parameters": {"rescale": False}}))


@pytest.mark.parametrize("t", [0.0, 0.3, 0.5, 1.0])
def test_slerp_matches_mergekit_within_one_ulp(models, t):
    _, _, arrays = models
    ours = _elements(models, "slerp", {"base": "base", "sources": [{"from": "m1"}], "parameters": {"t": t}})
    v0, v1 = (torch.from_numpy(arrays[n].astype(np.float64))[None] for n in ("base", "m1"))
    theirs = mergekit_slerp(torch.tensor([t], dtype=torch.float64), v0, v1)[0].numpy().astype(np.float32)
    # torch's norm and dot sum in another order than Elements' exact sums, and libm's acos/sin are
    # not correctly rounded: the float64 coefficients differ in their last bits
    assert _ulps(ours, theirs) <= 1


@pytest.mark.parametrize("flatten,row_wise", [(True, False), (False, False), (False, True)])
@pytest.mark.parametrize("with_base", [False, True])
def test_nuslerp_matches_mergekit_within_one_ulp(models, flatten, row_wise, with_base):
    step = {"sources": [{"from": "m1", "weight": 0.7}, {"from": "m2", "weight": 0.4}],
            "parameters": {"nuslerp_flatten": flatten, "nuslerp_row_wise": row_wise}}
    if with_base:
        step["base"] = "base"
    ours = _elements(models, "nuslerp", step)
    theirs = _mergekit(models, "nuslerp", "base" if with_base else None, ["m1", "m2"], {"weight": [0.7, 0.4]},
                       nuslerp_flatten=flatten, nuslerp_row_wise=row_wise)
    assert _ulps(ours, theirs) <= 1


@pytest.mark.parametrize("with_base", [False, True])
def test_multislerp_matches_mergekit_within_two_ulps(models, with_base):
    step = {"sources": [{"from": "m1", "weight": 0.5}, {"from": "m2", "weight": 0.3}, {"from": "m3", "weight": 0.2}]}
    if with_base:
        step["base"] = "base"
    ours = _elements(models, "multislerp", step)
    theirs = _mergekit(models, "multislerp", "base" if with_base else None, ["m1", "m2", "m3"], {"weight": [0.5, 0.3, 0.2]})
    assert _ulps(ours, theirs) <= 2


def test_karcher_matches_mergekit_within_two_ulps(models):
    ours = _elements(models, "karcher", {"sources": [{"from": "m1"}, {"from": "m2"}, {"from": "m3"}],
                                         "parameters": {"max_iter": 20, "tol": 1e-9}})
    theirs = _mergekit(models, "karcher", None, ["m1", "m2", "m3"], max_iter=20, tol=1e-9)
    assert _ulps(ours, theirs) <= 2


@pytest.mark.parametrize("filter_wise", [False, True])
def test_model_stock_matches_mergekit_within_one_ulp(models, filter_wise):
    ours = _elements(models, "model_stock", {"base": "base", "sources": [{"from": "m1"}, {"from": "m2"}, {"from": "m3"}],
                                             "parameters": {"filter_wise": filter_wise}})
    theirs = _mergekit(models, "model_stock", "base", ["m1", "m2", "m3"], filter_wise=filter_wise)
    assert _ulps(ours, theirs) <= 1


@pytest.mark.parametrize("select_topk", [1.0, 0.4])
def test_sce_matches_mergekit_within_one_ulp(models, select_topk):
    ours = _elements(models, "sce", {"base": "base", "sources": [{"from": "m1"}, {"from": "m2"}, {"from": "m3"}],
                                     "parameters": {"select_topk": select_topk}})
    theirs = _mergekit(models, "sce", "base", ["m1", "m2", "m3"], int8_mask=False, select_topk=select_topk)
    assert _ulps(ours, theirs) <= 1


@pytest.mark.parametrize("t", [0.01, 0.05, 1.0])
def test_nearswap_gives_mergekits_bits(models, t):
    ours = _elements(models, "nearswap", {"base": "base", "sources": [{"from": "m1"}], "parameters": {"t": t}})
    theirs = _mergekit(models, "nearswap", "base", ["m1"], t=t)
    assert _same_bits(ours, theirs)


def test_arcee_fusion_gives_mergekits_bits(models):
    # below 10**6 elements mergekit sorts every score, as Elements always does
    ours = _elements(models, "arcee_fusion", {"base": "base", "sources": [{"from": "m1"}]})
    theirs = _mergekit(models, "arcee_fusion", "base", ["m1"])
    assert _same_bits(ours, theirs)
    _, _, arrays = models
    assert not _same_bits(ours, arrays["m1"]) and not _same_bits(ours, arrays["base"])  # a real selection


@pytest.mark.parametrize("op,params", [("ram", {"epsilon": 0.05}), ("ramplus_tl", {"epsilon": 0.05, "r": 0.3, "alpha": 0.5})])
def test_ram_methods_give_mergekits_bits(models, op, params):
    ours = _elements(models, op, {"base": "base", "sources": [{"from": "m1"}, {"from": "m2"}], "parameters": params})
    theirs = _mergekit(models, op, "base", ["m1", "m2"], **params)
    assert _same_bits(ours, theirs)


def test_every_mergekit_method_has_an_elements_op():
    from registry.formats.recipe import MERGE_METHODS

    theirs = set(mergekit_methods._METHODS)
    ours = set(MERGE_METHODS) | {"linear", "task_arithmetic", "passthrough"}  # passthrough is take/stack
    assert theirs <= ours, sorted(theirs - ours)


def test_gradients_and_filters_give_mergekits_evaluate_setting():
    from mergekit.config import ConditionalParameter, evaluate_setting

    from registry.formats.recipe import evaluate_parameter

    rng = np.random.default_rng(2)
    names = ["model.layers.4.self_attn.q_proj.weight", "model.layers.4.mlp.up_proj.weight", "lm_head.weight"]
    for _ in range(200):
        gradient = rng.uniform(-1, 1, int(rng.integers(1, 7))).tolist()
        t = float(rng.integers(0, 31)) / 30
        conditionals = [{"filter": "self_attn", "value": gradient}, {"filter": "mlp", "value": gradient[0]}, {"value": gradient[-1]}]
        theirs_conditionals = [ConditionalParameter(**c) for c in conditionals]
        for name in names:
            assert evaluate_parameter(gradient, name, t) == evaluate_setting(name, gradient, t, validate=float)
            assert evaluate_parameter(conditionals, name, t) == evaluate_setting(name, theirs_conditionals, t, validate=float)


@pytest.mark.parametrize("normalize", [False, True])
def test_linear_matches_mergekit(models, normalize):
    from mergekit.merge_methods.base import TensorBatch

    root, inputs, arrays = models
    doc = {"format": "elements.recipe/v1", "inputs": {k: inputs[k] for k in ("m1", "m2", "m3")},
           "steps": [{"op": "linear", "normalize": normalize,
                      "sources": [{"from": "m1", "weight": 0.5}, {"from": "m2", "weight": 0.3}, {"from": "m3", "weight": 0.4}]}]}
    out = root / f"out-linear-{normalize}"
    assemble(parse_recipe(doc), LocalElementSource(root), out, force=True)
    ours = read_tensors(out)[NAME][1]
    batch = TensorBatch(tensors=tuple(torch.from_numpy(arrays[n].astype(np.float64))[None] for n in ("m1", "m2", "m3")))
    weight = torch.tensor([[0.5, 0.3, 0.4]], dtype=torch.float64)
    theirs = mergekit_methods.get("linear").implementation(batch, weight=weight, normalize=normalize)[0].numpy().astype(np.float32)
    assert _ulps(ours, theirs) <= LINEAR_ULPS[normalize]


def test_task_arithmetic_matches_mergekit(models):
    root, inputs, arrays = models
    doc = {"format": "elements.recipe/v1", "inputs": {k: inputs[k] for k in ("base", "m1", "m2")},
           "steps": [{"op": "task_arithmetic", "base": "base", "sources": [{"from": "m1", "weight": 0.7}, {"from": "m2", "weight": -0.2}]}]}
    out = root / "out-task-arithmetic"
    assemble(parse_recipe(doc), LocalElementSource(root), out, force=True)
    ours = read_tensors(out)[NAME][1]
    theirs = _mergekit(models, "task_arithmetic", "base", ["m1", "m2"], {"weight": [0.7, -0.2]}, int8_mask=False,
                       normalize=False, rescale=False, **{"lambda": 1.0})
    assert _ulps(ours, theirs) <= TASK_ARITHMETIC_ULPS


# mergekit's linear accumulates with torch.addcmul_ (which may fuse the multiply-add) and, with
# normalize, divides the sum where Elements divides the weights first: one float64 rounding apart
LINEAR_ULPS = {False: 1, True: 1}
# mergekit sums the weighted task vectors then adds the base; Elements adds each to the running sum
TASK_ARITHMETIC_ULPS = 1


@pytest.mark.parametrize("shape", [(37,), (6, 11), (3, 4, 5)])
def test_della_keep_probabilities_are_mergekits_for_any_rank(monkeypatch, shape):
    seen = []

    def bernoulli(probs, *args, **kwargs):
        seen.append(probs.to(torch.float64).numpy().copy())
        return torch.ones_like(probs)

    monkeypatch.setattr(mergekit_sparsify.torch, "bernoulli", bernoulli)
    delta = np.random.default_rng(len(shape)).standard_normal(shape)
    mergekit_sparsify.della_magprune(torch.from_numpy(delta), density=0.4, epsilon=0.15)
    [theirs] = seen
    # mergekit ranks in float32 on CPU; the float64 probabilities agree to float32 precision
    assert np.allclose(merges.della_probabilities(delta, 0.4, 0.15), theirs.reshape(shape), rtol=2.0**-22, atol=0)


def test_ties_with_equal_magnitudes_keeps_as_many_of_each_magnitude_as_mergekit():
    """Among equal magnitudes torch's argsort picks in no specified order; Elements keeps the lower
    indices (tests/test_compose_merges_streamed.py). Both keep the same number of each magnitude."""
    rng = np.random.default_rng(21)
    for _ in range(20):
        n = int(rng.integers(10, 3000))
        values = rng.choice(np.array([0.0, 0.5, -0.5, 0.25, -0.25, 1.0]), size=n)
        density = float(rng.uniform(0.05, 0.95))
        theirs = mergekit_sparsify.magnitude(torch.from_numpy(values.copy()), density).numpy()
        ours = merges.sparsify("ties", values, {"density": density}, False, (0, NAME, 0))
        assert np.count_nonzero(ours) == np.count_nonzero(theirs)
        for magnitude in (0.25, 0.5, 1.0):
            assert np.count_nonzero(np.abs(ours) == magnitude) == np.count_nonzero(np.abs(theirs) == magnitude)
