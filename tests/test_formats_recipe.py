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
                        "registry.compose.plan", "registry.compose.engine", "registry.compose.delta"]:
        module = importlib.import_module(module_name)
        assert module.__all__, module_name
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert missing == [], f"{module_name}: {missing}"
    split = importlib.import_module("registry.formats.split")
    assert [name for name in split.__all__ if not hasattr(split, name)] == []
