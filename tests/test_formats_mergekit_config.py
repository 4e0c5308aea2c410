"""mergekit configs as they are (registry/formats/mergekit_config.py): converted to recipes,
every supported field carried over, every other refused by name; the converted recipe builds
what mergekit builds (the oracle test runs mergekit's methods on the same inputs)."""

from __future__ import annotations

import json

import pytest
import yaml

from registry.formats.mergekit_config import recipe_from_mergekit
from registry.formats.recipe import RecipeError, parse_recipe

A, B, C = ("0x" + c * 64 for c in "abc")
MODELS = {
    "org/base": {"content_id": A, "record": "0x" + "01" * 32},
    "org/math": {"content_id": B, "record": "0x" + "02" * 32},
    "org/code": {"kind": "composition", "content_id": C, "record": "0x" + "03" * 32},
}

TIES = """
models:
  - model: org/base
  - model: org/math
    parameters: {density: [1, 0.7, 0.1], weight: 1.0}
  - model: org/code
    parameters:
      density: 0.5
      weight: [{filter: mlp, value: 0.5}, {value: 0}]
merge_method: ties
base_model: org/base
parameters: {normalize: true, int8_mask: true}
dtype: bfloat16
"""


def test_a_ties_config_with_gradients_and_filters_becomes_the_same_merge_step():
    doc = recipe_from_mergekit(yaml.safe_load(TIES), MODELS)
    recipe = parse_recipe(doc)
    step = json.loads(recipe.canonical_json())["steps"][0]
    assert step == {
        "op": "ties", "base": ["m0"], "template": "model.layers.{n}.", "dtype": "BF16",
        "parameters": {"int8_mask": True},  # normalize: true is ties' default, omitted
        "sources": [{"from": ["m1"], "density": [1.0, 0.7, 0.1], "weight": 1.0},
                    {"from": ["m2"], "density": 0.5, "weight": [{"filter": "mlp", "value": 0.5}, {"value": 0.0}]}],
    }
    assert recipe.inputs["m2"].kind == "composition" and recipe.inputs["m0"].record == "0x" + "01" * 32


def test_slerp_linear_and_passthrough_configs_convert():
    slerp = recipe_from_mergekit({"merge_method": "slerp", "base_model": "org/base", "models": [{"model": "org/base"}, {"model": "org/math"}],
                                  "parameters": {"t": [{"filter": "self_attn", "value": [0, 0.5, 1]}, {"value": 0.5}]}}, MODELS)
    assert slerp["steps"][0]["op"] == "slerp" and slerp["steps"][0]["template"] == "model.layers.{n}."
    linear = recipe_from_mergekit({"merge_method": "linear", "models": [{"model": "org/base", "parameters": {"weight": 1}},
                                                                       {"model": "org/math", "parameters": {"weight": 3}}]}, MODELS)
    assert linear["steps"] == [{"op": "linear", "normalize": True, "sources": [{"from": "m0", "weight": 1}, {"from": "m1", "weight": 3}]}]
    stacked = recipe_from_mergekit({"merge_method": "passthrough", "dtype": "float16", "slices": [
        {"sources": [{"model": "org/base", "layer_range": [0, 4]}]},
        {"sources": [{"model": "org/math", "layer_range": [2, 6]}]}]}, MODELS)
    assert stacked["steps"] == [
        {"op": "take", "from": "m0", "exclude": ["model.layers.*"]},
        {"op": "stack", "template": "model.layers.{n}.", "slices": [{"from": "m0", "layer_range": [0, 4]}, {"from": "m1", "layer_range": [2, 6]}]},
        {"op": "cast", "dtype": "F16"},
    ]


@pytest.mark.parametrize("config,message", [
    ({"merge_method": "ties", "models": [{"model": "org/math"}], "base_model": "org/base", "tokenizer_source": "union"},
     r"tokenizer_source is not supported"),
    ({"merge_method": "ties", "models": [{"model": "org/math"}], "base_model": "org/base", "lora_merge_cache": "x"},
     r"field\(s\) lora_merge_cache that Elements does not know"),
    ({"merge_method": "ties", "models": [{"model": "org/other", "parameters": {"weight": 1}}], "base_model": "org/base"},
     r"names model 'org/other', which the model map does not"),
    ({"merge_method": "ties", "models": [{"model": "org/math", "parameters": {"weight": 1, "densty": 0.5}}], "base_model": "org/base"},
     r"unknown parameter 'densty' for ties"),
    ({"merge_method": "slerp", "base_model": "org/base", "slices": [{"sources": [
        {"model": "org/base", "layer_range": [0, 2]}, {"model": "org/math", "layer_range": [1, 3]}]}]},
     r"slices\[0\]: sources with different layer_range are not supported"),
    ({"merge_method": "slerp", "base_model": "org/base", "slices": [{"residual_weight": 0.5, "sources": [
        {"model": "org/base", "layer_range": [0, 2]}, {"model": "org/math", "layer_range": [0, 2]}]}]},
     r"slices\[0\] has field\(s\) residual_weight that Elements does not support"),
    ({"merge_method": "slerp", "base_model": "org/base", "parameters": {"t": 0.5}, "slices": [{"sources": [
        {"model": "org/code", "layer_range": [0, 2]}, {"model": "org/math", "layer_range": [0, 2]}]}]},
     r"slices\[0\] does not list base_model 'org/base'"),
    ({"merge_method": "slerp", "base_model": "org/base", "parameters": {"t": 0.5}, "slices": [
        {"sources": [{"model": "org/base", "layer_range": [0, 2]}, {"model": "org/math", "layer_range": [0, 2]}]},
        {"sources": [{"model": "org/base", "layer_range": [2, 4]}, {"model": "org/code", "layer_range": [2, 4]}]}]},
     r"the first and last slices must merge the same models"),
    ({"merge_method": "frankenmerge", "models": [{"model": "org/math"}]}, r"'frankenmerge' is not a mergekit method"),
    ({"merge_method": "task_arithmetic", "base_model": "org/base", "models": [{"model": "org/math", "parameters": {"weight": 1}}],
      "parameters": {"lambda": 0.5}}, r"lambda are not supported by Elements' task_arithmetic"),
    ({"merge_method": "ties", "models": [{"model": "org/math", "parameters": {"weight": 1}}], "base_model": "org/base", "dtype": "int8"},
     r"dtype 'int8' is not one of"),
])
def test_an_unsupported_field_or_value_is_refused_by_name(config, message):
    with pytest.raises(RecipeError, match=message):
        recipe_from_mergekit(config, MODELS)


def test_assemble_local_takes_a_mergekit_yaml_with_its_model_map(tmp_path, capsys):
    import numpy as np

    from registry.cli import main
    from registry.compose.engine import assemble
    from registry.compose.sources import LocalElementSource
    from tests.compose_support import write_element

    rng = np.random.default_rng(3)
    base = {f"model.layers.{i}.mlp.weight": rng.standard_normal((6, 8)).astype(np.float32) for i in range(3)}
    tuned = {n: (v + rng.standard_normal(v.shape) * 0.1).astype(np.float32) for n, v in base.items()}
    models = {"org/base": {"content_id": write_element(tmp_path, "base.safetensors", base), "path": "base.safetensors"},
              "org/math": {"content_id": write_element(tmp_path, "math.safetensors", tuned), "path": "math.safetensors"}}
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(models))
    (tmp_path / "ties.yaml").write_text(
        "merge_method: ties\nbase_model: org/base\nmodels:\n  - model: org/base\n"
        "  - model: org/math\n    parameters: {weight: 1.0, density: [0.3, 0.9]}\n")
    code = main(["--json", "assemble-local", str(tmp_path / "ties.yaml"), "--elements", str(tmp_path),
                 "--mergekit-models", str(tmp_path / "models.yaml"), "-o", str(tmp_path / "out")])
    assert code == 0
    reported = json.loads(capsys.readouterr().out)
    by_hand = parse_recipe({"format": "elements.recipe/v1",
                            "inputs": {"m0": models["org/base"], "m1": models["org/math"]},
                            "steps": [{"op": "ties", "base": "m0", "template": "model.layers.{n}.",
                                       "sources": [{"from": "m1", "weight": 1.0, "density": [0.3, 0.9]}]}]})
    expected = assemble(by_hand, LocalElementSource(tmp_path), tmp_path / "by-hand")
    assert reported["content_id"] == expected.content_id

    (tmp_path / "bad.yaml").write_text("merge_method: ties\nbase_model: org/base\nmodels: [{model: org/other}]\n")
    code = main(["assemble-local", str(tmp_path / "bad.yaml"), "--elements", str(tmp_path),
                 "--mergekit-models", str(tmp_path / "models.yaml"), "-o", str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert code == 2 and "names model 'org/other', which the model map does not" in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()


SLICED = """
merge_method: slerp
base_model: org/base
parameters: {t: 0.25}
slices:
  - sources:
      - {model: org/base, layer_range: [0, 2]}
      - {model: org/math, layer_range: [0, 2]}
    parameters:
      t: [{filter: mlp, value: [0.2, 0.8]}, {value: 0.5}]
  - sources:
      - {model: org/base, layer_range: [3, 4]}
      - {model: org/math, layer_range: [3, 4]}
  - sources:
      - {model: org/base, layer_range: [0, 1]}
      - {model: org/math, layer_range: [0, 1]}
    parameters:
      t: [{filter: mlp, value: [0.2, 0.8]}, {value: 0.5}]
"""


def test_sliced_merges_merge_each_slice_by_the_method_and_renumber_its_layers(tmp_path):
    """mergekit's slices with a method: output layer 0-1 is slerp of layers 0-1 with the slice's own
    parameters (a gradient's t over the slice's two layers: 0, then 1), layer 2 is layer 3 at the
    global t, layer 3 layer 0 again with the first slice's parameters (one layer: t = 1, as in
    mergekit); the embeddings (outside the layers) are merged
    across the first slice's models with its parameters at t = 0."""
    import numpy as np

    from registry.compose import merges
    from registry.compose.engine import assemble
    from registry.compose.sources import LocalElementSource
    from tests.compose_support import read_tensors, write_element

    rng = np.random.default_rng(8)
    base = {f"model.layers.{i}.{m}.weight": rng.standard_normal((6, 8)).astype(np.float32) for i in range(4) for m in ("mlp", "attn")}
    base["model.embed_tokens.weight"] = rng.standard_normal((10, 8)).astype(np.float32)
    tuned = {n: (v + rng.standard_normal(v.shape) * 0.3).astype(np.float32) for n, v in base.items()}
    models = {"org/base": {"content_id": write_element(tmp_path, "base.safetensors", base), "path": "base.safetensors"},
              "org/math": {"content_id": write_element(tmp_path, "math.safetensors", tuned), "path": "math.safetensors"}}
    recipe = parse_recipe(recipe_from_mergekit(yaml.safe_load(SLICED), models))
    assemble(recipe, LocalElementSource(tmp_path), tmp_path / "out")
    out = {name: raw for name, (dtype, raw) in read_tensors(tmp_path / "out").items()}

    def slerp(name: str, t: float) -> np.ndarray:
        return merges.slerp_vectors(t, base[name].astype(np.float64), tuned[name].astype(np.float64)).astype(np.float32)

    expected = {"model.embed_tokens.weight": slerp("model.embed_tokens.weight", 0.5)}
    for out_layer, (src, t_mlp, t_attn) in enumerate([(0, 0.2, 0.5), (1, 0.8, 0.5), (3, 0.25, 0.25), (0, 0.8, 0.5)]):
        expected[f"model.layers.{out_layer}.mlp.weight"] = slerp(f"model.layers.{src}.mlp.weight", t_mlp)
        expected[f"model.layers.{out_layer}.attn.weight"] = slerp(f"model.layers.{src}.attn.weight", t_attn)
    assert sorted(out) == sorted(expected)
    for name, value in expected.items():
        assert np.asarray(out[name]).tobytes() == value.tobytes(), name
