"""The `split` and `assemble-local` commands: output, --json, exit codes, one-line errors."""

from __future__ import annotations

import json

import pytest

from registry.cli import main
from registry.formats.content_id import content_id
from tests.compose_support import MODEL, leftovers, reassembly_recipe

ORIGINAL_ID = str(content_id(MODEL / "model.safetensors"))


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ELEMENTS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ELEMENTS_NO_PROGRESS", "1")


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmd") / "minilm"
    assert main(["split", str(MODEL), "--out", str(out)]) == 0
    return out


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_split_prints_elements_and_json(tmp_path, capsys):
    code, out, _ = run(capsys, "split", MODEL, "--out", tmp_path / "s")
    assert code == 0 and "into 19 elements" in out and ORIGINAL_ID in out and "encoder.layer.5" in out
    code, out, _ = run(capsys, "split", MODEL / "model.safetensors", "--out", tmp_path / "j", "--by", "module", "--json")
    data = json.loads(out)
    assert code == 0 and data["content_id"] == ORIGINAL_ID
    assert [e["name"] for e in data["elements"]] == ["embeddings", "encoder", "pooler"]


def test_split_with_rules(tmp_path, capsys):
    code, out, _ = run(capsys, "split", MODEL / "model.safetensors", "--out", tmp_path / "r", "--json",
                       "--rule", r"encoder\.layer\.(\d+)\.=block_\1", "--rule", ".*=rest")
    assert code == 0 and [e["name"] for e in json.loads(out)["elements"]] == [f"block_{i}" for i in range(6)] + ["rest"]


def test_assemble_local_rebuilds_the_model(split_dir, tmp_path, capsys):
    code, out, err = run(capsys, "assemble-local", split_dir / "recipe.json", "--elements", split_dir, "-o", tmp_path / "m")
    assert code == 0, err
    assert f"content id {ORIGINAL_ID} (matches the recipe)" in out
    assert str(content_id(tmp_path / "m")) == ORIGINAL_ID
    code, out, _ = run(capsys, "assemble-local", split_dir / "recipe.json", "--elements", split_dir, "-o", tmp_path / "s",
                       "--max-shard-size", "30MB", "--json")
    data = json.loads(out)
    assert code == 0 and data["content_id"] == ORIGINAL_ID and data["weight_files"][0] == "model.safetensors.index.json"


def test_assemble_local_dry_run_predicts_without_writing(split_dir, tmp_path, capsys):
    code, out, _ = run(capsys, "assemble-local", split_dir / "recipe.json", "--elements", split_dir, "--dry-run", "--json")
    data = json.loads(out)
    assert code == 0 and data["content_id"] == ORIGINAL_ID and len(data["tensors"]) == 104
    assert data["tensors"][0]["from"] == "embeddings:embeddings.LayerNorm.bias"


def _write(tmp_path, doc) -> str:
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(doc))
    return str(path)


def _bad_missing_input(work, tmp_path):
    (work / "elements/pooler.safetensors").unlink()
    return work / "recipe.json", "input 'pooler'"


def _bad_tensor(work, tmp_path):
    doc = reassembly_recipe(work)
    doc["steps"][0]["select"] = ["embeddings.no_such_tensor"]
    return _write(tmp_path, doc), "tensor 'embeddings.no_such_tensor' matches no tensor"


def _bad_shapes(work, tmp_path):
    doc = reassembly_recipe(work)
    doc.pop("output")
    doc["steps"] = [{"op": "linear", "sources": [{"from": "pooler", "weight": 1}, {"from": "encoder.layer.0", "weight": 1}],
                     "rename": [{"prefix": "pooler.", "to": "p."}]}]
    doc["inputs"] = {k: doc["inputs"][k] for k in ("pooler", "encoder.layer.0")}
    doc.pop("files")
    return _write(tmp_path, doc), "is in input 'pooler' but not in input 'encoder.layer.0'; shapes cannot merge"


def _bad_cast(work, tmp_path):
    doc = reassembly_recipe(work)
    doc.pop("output")
    doc["steps"].append({"op": "cast", "dtype": "BF16", "select": ["embeddings.position_ids"]})
    return _write(tmp_path, doc), "cannot cast 'embeddings.position_ids' from I64 to BF16"


def _bad_escape(work, tmp_path):
    doc = reassembly_recipe(work)
    doc["files"][0]["path"] = "../../escape.md"
    return _write(tmp_path, doc), "escapes its directory"


def _bad_yaml(work, tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("format: elements.recipe/v1\ninputs: [unclosed\n")
    return str(path), "neither JSON nor YAML"


def _bad_missing_recipe(work, tmp_path):
    return str(tmp_path / "nope.yaml"), "cannot read recipe"


@pytest.mark.parametrize("case", [_bad_missing_input, _bad_tensor, _bad_shapes, _bad_cast, _bad_escape, _bad_yaml, _bad_missing_recipe])
def test_assemble_local_bad_input_is_one_line_exit_2_nothing_written(case, work, tmp_path, capsys):
    recipe, message = case(work, tmp_path)
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "assemble-local", recipe, "--elements", work, "-o", out)
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith("elements: error: ") and message in err, err
    assert not out.exists() and leftovers(tmp_path, "out") == []
    code, stdout, _ = run(capsys, "assemble-local", recipe, "--elements", work, "-o", out, "--json")
    data = json.loads(stdout)
    assert code == 2 and data["ok"] is False and data["exit_code"] == 2 and message in data["message"]


def test_assemble_local_refuses_an_existing_output_unless_forced(split_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = run(capsys, "assemble-local", split_dir / "recipe.json", "--elements", split_dir, "-o", out)
    assert code == 2 and "exists; choose another -o or pass --force" in err and list(out.iterdir()) == []
    code, _, err = run(capsys, "assemble-local", split_dir / "recipe.json", "--elements", split_dir, "-o", out, "--force")
    assert code == 0, err


def test_split_bad_input_is_one_line_exit_2(tmp_path, capsys):
    bogus = tmp_path / "x.safetensors"
    bogus.write_bytes(b"\xff" * 16)
    code, _, err = run(capsys, "split", bogus, "--out", tmp_path / "o")
    assert code == 2 and err.count("\n") == 1 and "elements: error:" in err
    code, _, err = run(capsys, "split", MODEL / "model.safetensors", "--out", tmp_path / "o", "--rule", "pooler=p")
    assert code == 2 and "match no --rule" in err
    assert not (tmp_path / "o").exists() and leftovers(tmp_path, "o") == []


def test_assemble_local_needs_an_elements_directory(split_dir, tmp_path, capsys):
    code, _, err = run(capsys, "assemble-local", split_dir / "recipe.json", "--elements", tmp_path / "none", "-o", tmp_path / "o")
    assert code == 2 and "elements directory" in err and "does not exist" in err


def test_assemble_local_saves_the_recipe_pinned_to_its_output(split_dir, tmp_path, capsys):
    doc = reassembly_recipe(split_dir)
    doc.pop("output")
    doc["steps"].append({"op": "cast", "dtype": "F16", "select": ["pooler.*"]})
    recipe = tmp_path / "cast.json"
    recipe.write_text(json.dumps(doc))
    code, _, err = run(capsys, "assemble-local", recipe, "--elements", split_dir, "-o", tmp_path / "a", "--save-recipe", tmp_path / "pinned.json")
    assert code == 0, err
    pinned = json.loads((tmp_path / "pinned.json").read_text())
    assert pinned["output"]["content_id"] == str(content_id(tmp_path / "a"))
    assert {t["name"]: t["dtype"] for t in pinned["output"]["tensors"]}["pooler.dense.weight"] == "F16"
    code, _, err = run(capsys, "assemble-local", tmp_path / "pinned.json", "--elements", split_dir, "-o", tmp_path / "b")
    assert code == 0, err


@pytest.mark.parametrize("where", ["the-output-directory", "an-existing-directory", "the-recipe-itself"])
def test_a_save_recipe_path_that_cannot_take_the_recipe_is_refused_before_anything_is_assembled(split_dir, tmp_path, capsys, where):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("# my notes\n" + json.dumps(reassembly_recipe(split_dir)))
    out = tmp_path / "out"
    (tmp_path / "dir").mkdir()
    target = {"the-output-directory": out, "an-existing-directory": tmp_path / "dir", "the-recipe-itself": recipe}[where]
    code, _, err = run(capsys, "assemble-local", recipe, "--elements", split_dir, "-o", out, "--save-recipe", target)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--save-recipe" in err and ".incomplete" not in err, err
    assert not out.exists() and recipe.read_text().startswith("# my notes\n")
