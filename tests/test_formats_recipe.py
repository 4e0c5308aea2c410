"""The recipe format: strict parsing, normalization, canonical JSON, YAML input, record ids."""

from __future__ import annotations

import json

import pytest

from registry.formats import recipe as recipe_module
from registry.formats.recipe import (
    FORMAT,
    Linear,
    Lora,
    RecipeError,
    Stack,
    canonical_json,
    check_publishable,
    load_recipe,
    parse_recipe,
    with_record_ids,
)
from registry.formats.content_id import bytes_content_id
from registry.errors import InputError

A = "0x" + "aa" * 32
B = "0x" + "bb" * 32
C = "0x" + "cc" * 32
R1 = "0x" + "01" * 32
R2 = "0x" + "02" * 32
R3 = "0x" + "03" * 32


def doc(**overrides):
    base = {
        "format": FORMAT,
        "inputs": {
            "base": {"content_id": A, "path": "elements/base.safetensors"},
            "other": {"content_id": B, "path": "elements/other.safetensors"},
            "config": {"content_id": C, "path": "files/config.json"},
        },
        "steps": [
            {"op": "take", "from": "base", "exclude": ["encoder.layer.*"]},
            {"op": "stack", "template": "encoder.layer.{n}.", "slices": [
                {"from": "base", "layers": [0, 1, 2, 3]},
                {"from": "other", "layer_range": [2, 6]},
            ]},
        ],
        "files": [{"path": "config.json", "from": "config", "patch": {"num_hidden_layers": 8}}],
    }
    base.update(overrides)
    return base


YAML = f"""
format: {FORMAT}
inputs:
  base:   {{content_id: "{A}", path: elements/base.safetensors}}
  other:  {{content_id: "{B}", path: elements/other.safetensors}}
  config: {{content_id: "{C}", path: files/config.json}}
steps:
  - op: take
    from: base
    exclude: ["encoder.layer.*"]
  - op: stack
    template: "encoder.layer.{{n}}."
    slices:
      - from: base
        layers: [0, 1, 2, 3]
      - from: [other]
        layer_range: [2, 6]
files:
  - path: config.json
    from: config
    patch: {{num_hidden_layers: 8}}
"""


def test_yaml_and_json_give_the_same_canonical_recipe():
    from_json = load_recipe(json.dumps(doc()))
    from_yaml = load_recipe(YAML)
    assert from_json.canonical_json() == from_yaml.canonical_json()
    assert from_json.content_id() == str(bytes_content_id(from_json.canonical_json()))


def test_canonical_json_is_sorted_compact_utf8():
    text = canonical_json({"b": [1, 2.5], "a": "é", "c": {"z": True, "y": None}})
    assert text == '{"a":"é","b":[1,2.5],"c":{"y":null,"z":true}}'.encode("utf-8")
    with pytest.raises(RecipeError, match="finite"):
        canonical_json({"w": float("nan")})


def test_normalization_makes_equivalent_recipes_hash_the_same():
    first = parse_recipe(doc())
    spelled = doc()
    spelled["steps"][1]["slices"][0] = {"from": ["base"], "layer_range": [0, 4]}
    spelled["steps"][1]["slices"][1] = {"from": "other", "layers": [2, 3, 4, 5]}
    second = parse_recipe(spelled)
    assert first.canonical_json() == second.canonical_json()
    stack = first.to_dict()["steps"][1]
    assert stack["slices"] == [{"from": ["base"], "layer_range": [0, 4]}, {"from": ["other"], "layer_range": [2, 6]}]
    # integer and float weights, and a YAML-1.1 numeric string, are the same weight
    merge = {"op": "linear", "sources": [{"from": "base", "weight": 1}, {"from": "other", "weight": "1e-3"}]}
    one = parse_recipe(doc(steps=[merge]))
    merge2 = {"op": "linear", "sources": [{"from": "base", "weight": 1.0}, {"from": "other", "weight": 0.001}]}
    assert one.canonical_json() == parse_recipe(doc(steps=[merge2])).canonical_json()


def test_input_kinds_are_inferred_from_use_and_written_out():
    parsed = parse_recipe(doc())
    assert parsed.inputs["base"].kind == "tensors" and parsed.inputs["config"].kind == "file"
    assert parsed.to_dict()["inputs"]["config"] == {"kind": "file", "content_id": C, "path": "files/config.json"}


def test_stack_template_yields_prefix_and_layer_regex():
    stack = parse_recipe(doc()).steps[1]
    assert isinstance(stack, Stack)
    assert stack.prefix(7) == "encoder.layer.7."
    assert stack.layer_regex().match("encoder.layer.12.attention").group(1) == "12"
    assert stack.layer_regex().match("encoder.layer.01.x") is None


def test_with_record_ids_pins_every_input_and_drops_paths():
    parsed = parse_recipe(doc())
    assert not parsed.publishable
    pinned = with_record_ids(parsed, {"base": R1, B: R2, "config": R3.upper().replace("0X", "0x")})
    assert pinned.publishable
    assert pinned.to_dict()["inputs"]["other"] == {"kind": "tensors", "content_id": B, "record": R2}
    assert all(ref.path is None for ref in pinned.inputs.values())
    assert parse_recipe(pinned.to_dict()).canonical_json() == pinned.canonical_json()
    with pytest.raises(RecipeError, match="no record id for input\\(s\\) config, other"):
        with_record_ids(parsed, {"base": R1})
    check_publishable(pinned)
    with pytest.raises(RecipeError, match="input\\(s\\) base, config, other have no record id"):
        check_publishable(parsed)


def test_a_publishable_recipe_needs_only_record_and_content_ids():
    published = doc()
    published["inputs"] = {
        "base": {"record": R1, "content_id": A},
        "other": {"record": R2, "content_id": B},
        "config": {"record": R3, "content_id": C, "kind": "file"},
    }
    assert parse_recipe(published).publishable


def test_lora_params_and_peft_config_are_read():
    step = {"op": "lora", "adapter": "other", "params": {"r": 8, "lora_alpha": 16, "target_modules": ["value", "query"]}}
    parsed = parse_recipe(doc(steps=[{"op": "take", "from": "base"}, step]))
    lora = parsed.steps[1]
    assert isinstance(lora, Lora) and lora.params.r == 8 and lora.params.target_modules == ("query", "value")
    peft = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "use_rslora": True, "fan_in_fan_out": False,
            "target_modules": ["query"], "task_type": None, "lora_dropout": 0.1, "bias": "none"}
    params = recipe_module.LoraParams.from_peft_config(peft, "cfg")
    assert (params.r, params.lora_alpha, params.use_rslora) == (4, 8.0, True)
    with pytest.raises(RecipeError, match="DoRA"):
        recipe_module.LoraParams.from_peft_config({**peft, "use_dora": True}, "cfg")
    with pytest.raises(RecipeError, match="bias"):
        recipe_module.LoraParams.from_peft_config({**peft, "bias": "all"}, "cfg")


def test_linear_normalize_and_dtype_are_kept():
    merge = {"op": "linear", "sources": [{"from": "base", "weight": 2}, {"from": "other", "weight": 1}],
             "normalize": True, "dtype": "BF16", "match": "attention"}
    step = parse_recipe(doc(steps=[merge])).steps[0]
    assert isinstance(step, Linear) and step.normalize and step.dtype == "BF16" and step.selection.match == "attention"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format": "elements.recipe/v2"}, "reads 'elements.recipe/v1'"),
        ({"steps": [{"op": "take", "from": "missing"}]}, "names input 'missing', which recipe.inputs does not define"),
        ({"steps": [{"op": "take", "from": "base", "selct": ["x"]}]}, "unknown key\\(s\\) selct"),
        ({"steps": [{"op": "blend", "from": "base"}]}, "op 'blend' is unknown"),
        ({"steps": [{"op": "cast", "dtype": "I8"}]}, "must be one of F32, F16, BF16"),
        ({"steps": [{"op": "stack", "template": "layer.", "slices": [{"from": "base", "layers": [0]}]}]}, "exactly once"),
        ({"steps": [{"op": "stack", "template": "l.{n}.", "slices": [{"from": "base", "layer_range": [3, 3]}]}]}, "is empty"),
        ({"steps": [{"op": "take", "from": "base", "match": "("}]}, "not a valid regular expression"),
        ({"steps": [{"op": "take", "from": "config"}]}, "used both as tensors and as a file"),
        ({"files": [{"path": "../evil.json", "from": "config"}]}, "escapes its directory"),
        ({"files": [{"path": "/etc/passwd", "from": "config"}]}, "relative path"),
        ({"files": [{"path": "model.safetensors", "from": "config"}]}, "reserved"),
        ({"files": [{"path": "a", "from": "config"}, {"path": "a/b", "from": "config"}]}, "both a file and a directory"),
        ({"steps": []}, "steps is empty"),
        ({"inputs": {"base": {"content_id": "0x12"}}}, "64 hex digits"),
        ({"inputs": {"base": {"content_id": A}}, "steps": [{"op": "take", "from": "base"}], "files": []}, "needs 'record'"),
    ],
)
def test_malformed_recipes_are_refused_with_the_reason(change, message):
    with pytest.raises(RecipeError, match=message) as info:
        parse_recipe(doc(**change))
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


def test_input_path_that_escapes_is_refused():
    bad = doc()
    bad["inputs"]["base"]["path"] = "../../outside.safetensors"
    with pytest.raises(RecipeError, match="escapes"):
        parse_recipe(bad)


def test_an_unused_input_is_refused():
    extra = doc()
    extra["inputs"]["spare"] = {"content_id": A, "path": "x"}
    with pytest.raises(RecipeError, match="'spare' is not used"):
        parse_recipe(extra)


def test_load_recipe_reports_unreadable_and_non_recipe_text(tmp_path):
    with pytest.raises(RecipeError, match="cannot read recipe"):
        load_recipe(tmp_path / "absent.yaml")
    with pytest.raises(RecipeError, match="neither JSON nor YAML"):
        load_recipe("a: [1,\n b")
    with pytest.raises(RecipeError, match="must be an object"):
        load_recipe("- 1\n- 2\n")


def test_output_table_round_trips_and_sorts():
    output = {"content_id": A, "tensors": [
        {"name": "b", "dtype": "F32", "shape": [2], "digest": B, "size": 8},
        {"name": "a", "dtype": "F16", "shape": [], "digest": C},
    ], "files": [{"path": "config.json", "content_id": C}], "metadata": {"format": "pt"}}
    parsed = parse_recipe(doc(output=output))
    assert [t.name for t in parsed.output.tensors] == ["a", "b"]
    assert parsed.to_dict()["output"] == {
        "content_id": A,
        "tensors": [{"name": "a", "dtype": "F16", "shape": [], "digest": C}, {"name": "b", "dtype": "F32", "shape": [2], "digest": B}],
        "files": [{"path": "config.json", "content_id": C}],
    }


def test_every_public_name_of_the_compose_modules_exists():
    import importlib

    for module_name in ["registry.formats.recipe", "registry.compose.ops", "registry.compose.sources",
                        "registry.compose.plan", "registry.compose.tensor_plans", "registry.compose.engine", "registry.compose.delta",
                        "registry.compose.merges"]:
        module = importlib.import_module(module_name)
        assert module.__all__, module_name
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert missing == [], f"{module_name}: {missing}"
    split = importlib.import_module("registry.formats.split")
    assert [name for name in split.__all__ if not hasattr(split, name)] == []


# ------------------------------------------------------------------------------ merge methods


def merge_doc(step):
    return doc(steps=[{"op": "take", "from": "base"}, step], files=[])


def merge_inputs():
    d = doc(files=[])
    d["inputs"].pop("config")
    return d


def parse_merge(step):
    d = merge_inputs()
    d["steps"] = [step]
    return parse_recipe(d)


TIES = {"op": "ties", "base": "base", "sources": [{"from": "other", "weight": 0.5, "density": 0.5}]}


def test_a_merge_step_is_normalized_with_defaults_omitted_and_round_trips():
    step = dict(TIES, parameters={"normalize": True, "lambda": "1.0e0", "int8_mask": False}, template="model.layers.{n}.",
                sources=[{"from": "other", "weight": [0, 1], "density": [{"filter": "mlp", "value": 0.3}, {"value": 0.7}]}])
    recipe = parse_merge(step)
    canonical = json.loads(recipe.canonical_json())["steps"][0]
    assert canonical == {"op": "ties", "base": ["base"], "template": "model.layers.{n}.",
                         "sources": [{"from": ["other"], "weight": [0.0, 1.0],
                                      "density": [{"filter": "mlp", "value": 0.3}, {"value": 0.7}]}]}
    assert parse_recipe(json.loads(recipe.canonical_json())).canonical_json() == recipe.canonical_json()


def test_a_random_merge_always_writes_its_seed_and_others_refuse_one():
    dare = parse_merge(dict(TIES, op="dare_ties"))
    assert json.loads(dare.canonical_json())["steps"][0]["seed"] == 0
    with pytest.raises(RecipeError, match=r"steps\[0\].seed is only for the methods that drop at random \(dare_ties"):
        parse_merge(dict(TIES, seed=3))


@pytest.mark.parametrize("step,message", [
    (dict(TIES, parameters={"lamda": 1}), r"steps\[0\].parameters has unknown parameter 'lamda' for ties \(it takes: density, int8_mask, lambda"),
    (dict(TIES, sources=[{"from": "other", "weight": 1, "dens": 0.5}]), r"steps\[0\].sources\[0\] has unknown parameter 'dens' for ties \(a source takes: density, weight\)"),
    (dict(TIES, sources=[{"from": "other", "weight": 1, "gamma": 0.1}]), r"unknown parameter 'gamma' for ties"),
    (dict(TIES, sources=[{"from": "other", "density": 0.5}]), r"steps\[0\].sources\[0\] needs 'weight'"),
    ({k: v for k, v in TIES.items() if k != "base"}, r"steps\[0\]: ties needs 'base'"),
    ({"op": "slerp", "base": "base", "sources": [{"from": "other"}]}, r"slerp needs parameters.t"),
    ({"op": "karcher", "base": "base", "sources": [{"from": "other"}]}, r"karcher takes no base"),
    ({"op": "model_stock", "base": "base", "sources": [{"from": "other"}]}, r"model_stock takes at least 2 source"),
    ({"op": "slerp", "base": "base", "sources": [{"from": "other"}], "parameters": {"t": [0, 1]}},
     r"t is a gradient over layers; set 'template'"),
    (dict(TIES, parameters={"normalize": "yes"}), r"parameters.normalize must be true or false"),
    (dict(TIES, parameters={"normalize": [0, 1]}), r"normalize cannot be a gradient"),
    ({"op": "karcher", "sources": [{"from": "base"}, {"from": "other"}], "parameters": {"max_iter": 10**6}}, r"max_iter is 1000000; at most 1000"),
    (dict(TIES, parameters={"lambda": float("nan")}), r"must be finite"),
    (dict(TIES, template="model.layers."), r"template must contain '\{n\}' exactly once"),
    (dict(TIES, sources=[{"from": "other", "weight": [{"filter": "x", "value": [{"value": 1}]}]}]), r"cannot hold another list"),
])
def test_a_bad_merge_step_is_refused_by_name(step, message):
    with pytest.raises(RecipeError, match=message):
        parse_merge(step)


def test_gradients_and_filters_evaluate_as_mergekit_documents():
    from registry.formats.recipe import evaluate_parameter

    assert evaluate_parameter([0.0, 1.0], "x", 0.25) == 0.25
    assert evaluate_parameter([0.0, 0.5, 1.0, 0.0], "x", 0.5) == 0.75
    assert evaluate_parameter([0.0, 1.0], "x", 1.0) == 1.0
    conditionals = [{"filter": "self_attn", "value": [0.0, 1.0]}, {"filter": "mlp", "value": 0.2}, {"value": 0.5}]
    assert evaluate_parameter(conditionals, "model.layers.3.self_attn.q_proj.weight", 0.5) == 0.5
    assert evaluate_parameter(conditionals, "model.layers.3.mlp.up_proj.weight", 0.5) == 0.2
    assert evaluate_parameter(conditionals, "lm_head.weight", 0.0) == 0.5
    assert evaluate_parameter([{"filter": "mlp", "value": 1.0}], "lm_head.weight", 0.0) is None


def test_a_random_init_step_is_normalized_and_its_bad_fields_refused():
    step = {"op": "random_init", "name": "model.layers.{n}.block_sparse_moe.gate.weight", "layer_range": [0, 4],
            "shape": [8, 64], "dtype": "BF16"}
    d = merge_inputs()
    d["steps"] = [{"op": "take", "from": ["base", "other"]}, step]
    recipe = parse_recipe(d)
    assert json.loads(recipe.canonical_json())["steps"][1] == dict(step, distribution="normal", seed=0)
    assert recipe.steps[1].names()[-1] == "model.layers.3.block_sparse_moe.gate.weight"
    for bad, message in [
        (dict(step, distribution="gumbel"), r"distribution must be 'normal'"),
        ({k: v for k, v in step.items() if k != "layer_range"}, r"holds \{n\}, so it needs layer_range"),
        (dict(step, shape=[8, 0]), r"shape must be >= 1"),
        (dict(step, shape=[1 << 20, 1 << 20]), r"more than 2\*\*34 elements"),
        (dict(step, dtype="I8"), r"dtype must be one of F32, F16, BF16"),
    ]:
        d["steps"] = [{"op": "take", "from": ["base", "other"]}, bad]
        with pytest.raises(RecipeError, match=message):
            parse_recipe(d)
