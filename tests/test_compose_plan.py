"""Derived tensors end to end on the real model: LoRA merges, linear merges, task arithmetic and
dtype casts, each against a reference computed here, plus the LoRA and merge bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from registry.compose.engine import assemble
from registry.formats.recipe import RecipeError, parse_recipe
from registry.compose.sources import LocalElementSource
from tests.compose_support import (
    f32,
    leftovers,
    read_tensors,
    reassembly_recipe,
    reference_bits,
    write_element,
    write_file_element,
)

RANK, ALPHA = 4, 8
TARGETS = ("query", "value")


def _adapter(rng) -> dict[str, np.ndarray]:
    tensors = {}
    for layer in range(6):
        for module in TARGETS:
            key = f"base_model.model.encoder.layer.{layer}.attention.self.{module}"
            tensors[key + ".lora_A.weight"] = (rng.standard_normal((RANK, 384)) * 0.05).astype(np.float32)
            tensors[key + ".lora_B.weight"] = (rng.standard_normal((384, RANK)) * 0.05).astype(np.float32)
    return tensors


PEFT_CONFIG = {
    "peft_type": "LORA", "task_type": "FEATURE_EXTRACTION", "base_model_name_or_path": "sentence-transformers/all-MiniLM-L6-v2",
    "r": RANK, "lora_alpha": ALPHA, "lora_dropout": 0.1, "bias": "none", "fan_in_fan_out": False, "use_rslora": False,
    "target_modules": list(TARGETS), "inference_mode": True, "modules_to_save": None, "rank_pattern": {}, "alpha_pattern": {},
}


def _with_lora(work, adapter, lora_step) -> dict:
    doc = reassembly_recipe(work)
    doc.pop("output")
    doc["inputs"]["adapter"] = {"content_id": write_element(work, "elements/adapter.safetensors", adapter),
                                "path": "elements/adapter.safetensors"}
    if "config" in lora_step:
        cid = write_file_element(work, "files/adapter_config.json", json.dumps(PEFT_CONFIG).encode())
        doc["inputs"]["adapter_config"] = {"content_id": cid, "path": "files/adapter_config.json"}
    doc["steps"].append({"op": "lora", "adapter": "adapter", **lora_step})
    return doc


def _lora_reference(w: np.ndarray, a: np.ndarray, b: np.ndarray, scale: float, transpose: bool) -> np.ndarray:
    delta = b.astype(np.float64) @ a.astype(np.float64)
    return (w.astype(np.float64) + scale * (delta.T if transpose else delta)).astype(np.float32)


def _within_one_rounding(got: np.ndarray, reference: np.ndarray) -> None:
    # Exact float64 arithmetic rounded once agrees with the reference except where the two float64
    # sums straddle a float32 rounding boundary: then they differ by one float32 ulp at most.
    diff = np.abs(got.astype(np.float64) - reference.astype(np.float64))
    assert np.all(diff <= np.spacing(np.abs(reference)).astype(np.float64))
    assert np.mean(got == reference) > 0.999


def test_a_peft_lora_adapter_merges_into_query_and_value_like_a_float64_reference(work, tmp_path, original):
    adapter = _adapter(np.random.default_rng(5))
    recipe = parse_recipe(_with_lora(work, adapter, {"config": "adapter_config"}))
    first = assemble(recipe, LocalElementSource(work), tmp_path / "a")
    second = assemble(recipe, LocalElementSource(work), tmp_path / "b")
    assert (tmp_path / "a/model.safetensors").read_bytes() == (tmp_path / "b/model.safetensors").read_bytes()
    assert first.content_id == second.content_id
    merged = read_tensors(tmp_path / "a/model.safetensors")
    for layer in range(6):
        for module in ("query", "value", "key"):
            name = f"encoder.layer.{layer}.attention.self.{module}.weight"
            got = f32(merged[name])
            if module == "key":  # not a target: untouched
                assert got.tobytes() == f32(original[name]).tobytes()
                continue
            key = f"base_model.model.encoder.layer.{layer}.attention.self.{module}"
            reference = _lora_reference(f32(original[name]), adapter[key + ".lora_A.weight"], adapter[key + ".lora_B.weight"],
                                        ALPHA / RANK, False)
            assert not np.array_equal(got, f32(original[name]))
            _within_one_rounding(got, reference)
    assert merged["encoder.layer.0.attention.self.query.bias"][1].tobytes() == original["encoder.layer.0.attention.self.query.bias"][1].tobytes()


def test_lora_params_in_the_recipe_with_rslora_fan_in_fan_out_and_patterns(work, tmp_path, original):
    adapter = _adapter(np.random.default_rng(6))
    params = {"r": RANK, "lora_alpha": ALPHA, "use_rslora": True, "fan_in_fan_out": True,
              "target_modules": "encoder\\.layer\\.\\d+\\.attention\\.self\\.(query|value)", "alpha_pattern": {"value": 32}}
    recipe = parse_recipe(_with_lora(work, adapter, {"params": params, "dtype": "F32"}))
    assemble(recipe, LocalElementSource(work), tmp_path / "out")
    merged = read_tensors(tmp_path / "out/model.safetensors")
    for module, alpha in (("query", ALPHA), ("value", 32)):
        name = f"encoder.layer.3.attention.self.{module}.weight"
        key = f"base_model.model.encoder.layer.3.attention.self.{module}"
        reference = _lora_reference(f32(original[name]), adapter[key + ".lora_A.weight"], adapter[key + ".lora_B.weight"],
                                    alpha / np.sqrt(RANK), True)
        _within_one_rounding(f32(merged[name]), reference)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t.pop("base_model.model.encoder.layer.2.attention.self.value.lora_B.weight"),
         "no lora_B weight for module 'encoder.layer.2.attention.self.value'"),
        (lambda t: t.__setitem__("base_model.model.encoder.layer.0.attention.self.query.lora_A.weight",
                                 np.zeros((RANK, 383), dtype=np.float32)),
         "shapes cannot merge: 'encoder.layer.0.attention.self.query.weight' is \\[384, 384\\] but the LoRA update for it is \\[384, 383\\]"),
        (lambda t: t.__setitem__("base_model.model.encoder.layer.0.attention.self.key.lora_A.weight", np.zeros((RANK, 384), dtype=np.float32))
         or t.__setitem__("base_model.model.encoder.layer.0.attention.self.key.lora_B.weight", np.zeros((384, RANK), dtype=np.float32)),
         "weights for 'encoder.layer.0.attention.self.key', which its target_modules do not name"),
        (lambda t: t.__setitem__("base_model.model.pooler.dense.lora_A.bias", np.zeros(3, dtype=np.float32)),
         "not a lora_A/lora_B weight"),
        (lambda t: t.__setitem__("base_model.model.encoder.layer.0.attention.self.query.lora_B.weight", np.zeros((384, 8), dtype=np.float32)),
         "LoRA shapes for 'encoder.layer.0.attention.self.query' do not fit"),
    ],
)
def test_lora_bad_inputs_are_refused_before_writing(work, tmp_path, mutate, message):
    adapter = _adapter(np.random.default_rng(7))
    mutate(adapter)
    recipe = parse_recipe(_with_lora(work, adapter, {"config": "adapter_config"}))
    with pytest.raises(RecipeError, match=message):
        assemble(recipe, LocalElementSource(work), tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path, "out") == []


def test_lora_target_missing_from_the_composition_is_refused(work, tmp_path):
    doc = _with_lora(work, _adapter(np.random.default_rng(8)), {"config": "adapter_config",
                                                                  "rename": [{"prefix": "encoder.", "to": "bert.encoder."}]})
    with pytest.raises(RecipeError, match="LoRA target 'bert.encoder.layer.0.attention.self.query.weight' is not in the composition"):
        assemble(parse_recipe(doc), LocalElementSource(work), tmp_path / "out")


# ------------------------------------------------------------------------------ merges


def _variant(work, original, layer: int, seed: int, label: str) -> tuple[str, dict[str, np.ndarray]]:
    """A fine-tuned copy of one layer (every float tensor perturbed) as a new element."""
    rng = np.random.default_rng(seed)
    prefix = f"encoder.layer.{layer}."
    tensors = {}
    for name, (dtype, array) in original.items():
        if name.startswith(prefix):
            values = array.view(np.float32)
            tensors[name] = (values + rng.standard_normal(values.shape).astype(np.float32) * np.float32(0.01)).astype(np.float32)
    relative = f"elements/{label}.safetensors"
    return write_element(work, relative, tensors), tensors


def _recipe(inputs: dict, steps: list) -> dict:
    return {"format": "elements.recipe/v1", "inputs": inputs, "steps": steps}


def test_linear_merge_matches_numpy_float64_reference_bit_for_bit(work, tmp_path, original):
    cid, other = _variant(work, original, 1, 21, "other1")
    inputs = {"layer1": reassembly_recipe(work)["inputs"]["encoder.layer.1"], "other1": {"content_id": cid, "path": "elements/other1.safetensors"}}
    doc = _recipe(inputs, [{"op": "linear", "sources": [{"from": "layer1", "weight": 2}, {"from": "other1", "weight": 6}], "normalize": True}])
    result = assemble(parse_recipe(doc), LocalElementSource(work), tmp_path / "out")
    merged = read_tensors(tmp_path / "out/model.safetensors")
    assert len(merged) == 16 and result.content_id
    for name, values in other.items():
        expected = (f32(original[name]).astype(np.float64) * 0.25 + values.astype(np.float64) * 0.75).astype(np.float32)
        assert f32(merged[name]).tobytes() == expected.tobytes(), name


def test_linear_merge_to_bf16_rounds_once_from_float64(work, tmp_path, original):
    cid, other = _variant(work, original, 1, 22, "other1")
    inputs = {"layer1": reassembly_recipe(work)["inputs"]["encoder.layer.1"], "other1": {"content_id": cid, "path": "elements/other1.safetensors"}}
    doc = _recipe(inputs, [{"op": "linear", "select": ["*.attention.self.query.weight"], "dtype": "BF16",
                            "sources": [{"from": "layer1", "weight": 0.3}, {"from": "other1", "weight": 0.7}]}])
    assemble(parse_recipe(doc), LocalElementSource(work), tmp_path / "out")
    name = "encoder.layer.1.attention.self.query.weight"
    dtype, got = read_tensors(tmp_path / "out/model.safetensors")[name]
    exact = f32(original[name]).astype(np.float64) * 0.3 + other[name].astype(np.float64) * 0.7
    sample = np.random.default_rng(0).choice(exact.size, 3000, replace=False)
    assert dtype == "BF16"
    assert [int(v) for v in got.reshape(-1)[sample]] == [reference_bits(float(exact.reshape(-1)[i]), "BF16") for i in sample]


def test_task_arithmetic_matches_numpy_float64_reference_bit_for_bit(work, tmp_path, original):
    cid1, ft1 = _variant(work, original, 2, 31, "ft1")
    cid2, ft2 = _variant(work, original, 2, 32, "ft2")
    inputs = {"base": reassembly_recipe(work)["inputs"]["encoder.layer.2"],
              "ft1": {"content_id": cid1, "path": "elements/ft1.safetensors"},
              "ft2": {"content_id": cid2, "path": "elements/ft2.safetensors"}}
    doc = _recipe(inputs, [{"op": "task_arithmetic", "base": "base",
                            "sources": [{"from": "ft1", "weight": 0.5}, {"from": "ft2", "weight": -0.25}]}])
    assemble(parse_recipe(doc), LocalElementSource(work), tmp_path / "out")
    merged = read_tensors(tmp_path / "out/model.safetensors")
    for name in ft1:
        b = f32(original[name]).astype(np.float64)
        expected = ((b + (ft1[name].astype(np.float64) - b) * 0.5) + (ft2[name].astype(np.float64) - b) * -0.25).astype(np.float32)
        assert f32(merged[name]).tobytes() == expected.tobytes(), name


def test_merging_integer_tensors_copies_them_when_identical_and_refuses_otherwise(work, tmp_path, original):
    embeddings = {n: a for n, a in original.items() if n.startswith("embeddings.")}
    changed = dict(embeddings)
    changed["embeddings.LayerNorm.weight"] = ("F32", f32(embeddings["embeddings.LayerNorm.weight"]) * np.float32(2))
    cid = write_element(work, "elements/emb2.safetensors", changed)
    inputs = {"emb": reassembly_recipe(work)["inputs"]["embeddings"], "emb2": {"content_id": cid, "path": "elements/emb2.safetensors"}}
    doc = _recipe(inputs, [{"op": "linear", "sources": [{"from": "emb", "weight": 0.5}, {"from": "emb2", "weight": 0.5}]}])
    assemble(parse_recipe(doc), LocalElementSource(work), tmp_path / "out")
    merged = read_tensors(tmp_path / "out/model.safetensors")
    assert merged["embeddings.position_ids"][1].tobytes() == original["embeddings.position_ids"][1].tobytes()
    expected = (f32(embeddings["embeddings.LayerNorm.weight"]).astype(np.float64) * 0.5
                + f32(changed["embeddings.LayerNorm.weight"]).astype(np.float64) * 0.5).astype(np.float32)
    assert f32(merged["embeddings.LayerNorm.weight"]).tobytes() == expected.tobytes()
    changed["embeddings.position_ids"] = ("I64", embeddings["embeddings.position_ids"][1][:, ::-1].copy())
    cid = write_element(work, "elements/emb3.safetensors", changed)
    inputs["emb2"] = {"content_id": cid, "path": "elements/emb3.safetensors"}
    with pytest.raises(RecipeError, match="cannot merge 'embeddings.position_ids': I64 is not a float dtype and the sources differ"):
        assemble(parse_recipe(_recipe(inputs, doc["steps"])), LocalElementSource(work), tmp_path / "out2")


# ------------------------------------------------------------------------------ casts


@pytest.mark.parametrize("dtype", ["BF16", "F16"])
def test_casting_the_whole_model_rounds_float_tensors_and_keeps_integers(work, tmp_path, original, dtype):
    doc = reassembly_recipe(work)
    doc.pop("output")
    doc["steps"].append({"op": "cast", "dtype": dtype})
    result = assemble(parse_recipe(doc), LocalElementSource(work), tmp_path / "out")
    cast = read_tensors(tmp_path / "out/model.safetensors")
    assert cast["embeddings.position_ids"][0] == "I64"
    assert {d for n, (d, _) in cast.items() if n != "embeddings.position_ids"} == {dtype}
    assert result.total_bytes == (90_856_960 - 4096) // 2 + 4096
    name = "encoder.layer.0.intermediate.dense.weight"
    source = f32(original[name]).reshape(-1)
    got = cast[name][1].reshape(-1).view(np.uint16)
    sample = np.random.default_rng(1).choice(source.size, 3000, replace=False)
    assert [int(got[i]) for i in sample] == [reference_bits(float(source[i]), dtype) for i in sample]
    if dtype == "F16":
        assert got.tobytes() == source.astype(np.float16).tobytes()
    try:
        import torch
    except ImportError:  # the full-tensor torch comparison is optional; the exact reference above is not
        return
    if dtype == "BF16":
        reference = torch.from_numpy(source.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        assert got.tobytes() == reference.tobytes()


def test_casting_back_to_f32_widens_exactly(work, tmp_path):
    doc = reassembly_recipe(work)
    doc.pop("output")
    doc["steps"] += [{"op": "cast", "dtype": "BF16"}, {"op": "cast", "dtype": "F32", "select": ["pooler.*"]}]
    assemble(parse_recipe(doc), LocalElementSource(work), tmp_path / "out")
    cast = read_tensors(tmp_path / "out/model.safetensors")
    dtype, widened = cast["pooler.dense.weight"]
    assert dtype == "F32" and cast["pooler.dense.bias"][0] == "F32" and cast["encoder.layer.0.output.dense.bias"][0] == "BF16"
    assert np.all((widened.view(np.uint32) & 0xFFFF) == 0)
