"""``elements convert-mergekit`` (registry/cli/mergekit_cmd.py): a mergekit YAML written as the
equivalent elements.recipe/v1, which assembles to the same bits as the YAML given directly;
unsupported fields refused by name, nothing half-written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from registry.cli import main
from tests.compose_support import read_tensors, write_element

CONFIGS = {
    "ties": "merge_method: ties\nbase_model: org/base\nmodels:\n  - model: org/base\n"
            "  - model: org/math\n    parameters: {weight: 1.0, density: [0.3, 0.9]}\n"
            "  - model: org/code\n    parameters: {weight: 0.5, density: 0.5}\nparameters: {rescale: true}\ndtype: bfloat16\n",
    "sliced dare_ties": "merge_method: dare_ties\nbase_model: org/base\nparameters: {weight: 0.7, density: 0.6}\nslices:\n"
                        "  - sources: [{model: org/base, layer_range: [0, 2]}, {model: org/math, layer_range: [0, 2]}]\n"
                        "  - sources: [{model: org/base, layer_range: [1, 3]}, {model: org/math, layer_range: [1, 3]}]\n",
}


@pytest.fixture
def world(tmp_path):
    rng = np.random.default_rng(4)
    base = {f"model.layers.{i}.{m}.weight": rng.standard_normal((6, 8)).astype(np.float32) for i in range(3) for m in ("mlp", "attn")}
    base["model.embed_tokens.weight"] = rng.standard_normal((5, 8)).astype(np.float32)
    models = {"org/base": base}
    for name in ("org/math", "org/code"):
        models[name] = {n: (v + rng.standard_normal(v.shape) * 0.1).astype(np.float32) for n, v in base.items()}
    mapping = {name: {"content_id": write_element(tmp_path, f"{name[4:]}.safetensors", tensors), "path": f"{name[4:]}.safetensors"}
               for name, tensors in models.items()}
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(mapping))
    return tmp_path


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_a_converted_recipe_assembles_to_the_bits_of_the_yaml_given_directly(world, kind, capsys):
    (world / "merge.yml").write_text(CONFIGS[kind])
    models = str(world / "models.yaml")
    assert main(["--json", "convert-mergekit", str(world / "merge.yml"), "--mergekit-models", models, "-o", str(world / "recipe.json")]) == 0
    out, err = capsys.readouterr()
    converted = json.loads(out)  # the whole of stdout is one JSON document
    assert err == "" and converted["path"] == str(world / "recipe.json")
    document = json.loads((world / "recipe.json").read_text())
    assert document["format"] == "elements.recipe/v1" and converted["steps"] == len(document["steps"])
    assert main(["--json", "assemble-local", str(world / "recipe.json"), "--elements", str(world), "-o", str(world / "a")]) == 0
    from_recipe = json.loads(capsys.readouterr().out)
    assert main(["--json", "assemble-local", str(world / "merge.yml"), "--elements", str(world), "--mergekit-models", models,
                 "-o", str(world / "b")]) == 0
    from_yaml = json.loads(capsys.readouterr().out)
    assert from_recipe["content_id"] == from_yaml["content_id"]
    assert read_tensors(world / "a").keys() == read_tensors(world / "b").keys()
    for name, (dtype, raw) in read_tensors(world / "a").items():
        assert read_tensors(world / "b")[name][1].tobytes() == raw.tobytes(), name


def test_an_unsupported_field_is_refused_by_name_and_nothing_is_written(world, capsys):
    (world / "bad.yml").write_text("merge_method: ties\nbase_model: org/base\nmodels: [{model: org/math}]\ntokenizer_source: union\n")
    code = main(["convert-mergekit", str(world / "bad.yml"), "--mergekit-models", str(world / "models.yaml"), "-o", str(world / "out.json")])
    err = capsys.readouterr().err
    assert code == 2 and "tokenizer_source is not supported" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (world / "out.json").exists() and not list(world.glob("*incomplete*"))


def test_an_existing_recipe_is_replaced_only_with_force(world, capsys):
    (world / "merge.yml").write_text(CONFIGS["ties"])
    (world / "recipe.json").write_text("keep me")
    args = ["convert-mergekit", str(world / "merge.yml"), "--mergekit-models", str(world / "models.yaml"), "-o", str(world / "recipe.json")]
    assert main(args) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert (world / "recipe.json").read_text() == "keep me"
    assert main([*args, "--force"]) == 0
    assert json.loads((world / "recipe.json").read_text())["steps"][0]["op"] == "ties"
