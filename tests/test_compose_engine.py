"""Assembly from split elements on the real model: exact reassembly, sharding, a three-layer
variant, fine-tune deltas, determinism, provenance, and every bad input (nothing written)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

from registry.compose.delta import make_delta
from registry.compose.engine import PROVENANCE_NAME, OutputExistsError, OutputMismatchError, assemble, inspect_recipe, parse_size
from registry.formats.recipe import RecipeError, load_recipe, parse_recipe, with_record_ids
from registry.compose.sources import ElementIntegrityError, ElementNotFoundError, LocalElementSource
from registry.formats.content_id import content_id, directory_ids, file_content_id
from registry.formats.checkpoint import read_checkpoint
from registry.formats.safetensors_writer import write_safetensors
from registry.errors import InputError, IntegrityError, NotFoundError
from tests.compose_support import MODEL, f32, leftovers, read_tensors, reassembly_recipe, three_layer_variant, write_element

ORIGINAL_ID = str(content_id(MODEL / "model.safetensors"))


def three_layer_recipe(split_dir) -> dict:
    return three_layer_variant(reassembly_recipe(split_dir))


# ------------------------------------------------------------------------------ reassembly


def test_split_then_assemble_gives_back_the_original_model(split_dir, tmp_path, original):
    out = tmp_path / "model"
    result = assemble(split_dir / "recipe.json", LocalElementSource(split_dir), out)
    assert result.content_id == ORIGINAL_ID == str(content_id(out))
    assert result.weight_files == ["model.safetensors"]
    rebuilt = read_tensors(out / "model.safetensors")
    assert rebuilt.keys() == original.keys()
    for name, (dtype, array) in original.items():
        assert rebuilt[name][0] == dtype and rebuilt[name][1].tobytes() == array.tobytes(), name
    theirs, ours = directory_ids(MODEL), directory_ids(out)
    assert {p: i for p, i in ours.files.items() if p != PROVENANCE_NAME} == theirs.files
    for relative in theirs.files:
        assert (out / relative).read_bytes() == (MODEL / relative).read_bytes()
    assert leftovers(tmp_path, "model") == []


def test_assembly_is_bit_identical_on_every_run(split_dir, tmp_path):
    source = LocalElementSource(split_dir)
    assemble(split_dir / "recipe.json", source, tmp_path / "a")
    assemble(split_dir / "recipe.json", source, tmp_path / "b")
    names = sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(tmp_path / "b").as_posix() for p in (tmp_path / "b").rglob("*") if p.is_file())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_sharded_output_has_an_index_and_the_same_content_id(split_dir, tmp_path, original):
    out = tmp_path / "sharded"
    result = assemble(split_dir / "recipe.json", LocalElementSource(split_dir), out, max_shard_size=parse_size("20MB"))
    shards = [f for f in result.weight_files if f != "model.safetensors.index.json"]
    assert result.weight_files[0] == "model.safetensors.index.json" and len(shards) >= 4
    assert shards == [f"model-{i:05d}-of-{len(shards):05d}.safetensors" for i in range(1, len(shards) + 1)]
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == sum(a.nbytes for _, a in original.values())
    assert set(index["weight_map"]) == set(original)
    checkpoint = read_checkpoint(out)  # strict: the index and the shards agree
    assert len(checkpoint.shards) == len(shards)
    for shard in checkpoint.shards[:-1]:
        assert shard.data_size <= 20_000_000 or len(shard.tensors) == 1
    assert str(content_id(out)) == ORIGINAL_ID
    loaded = {}
    for shard in shards:
        loaded.update(safetensors.numpy.load_file(str(out / shard)))
    assert all(loaded[n].tobytes() == a.tobytes() for n, (_, a) in original.items())


def test_provenance_names_the_recipe_its_inputs_and_the_output(split_dir, tmp_path):
    recipe = load_recipe(split_dir / "recipe.json")
    out = tmp_path / "model"
    assemble(recipe, LocalElementSource(split_dir), out, provenance={"chain_id": 31337, "registry": "0x" + "12" * 20})
    document = json.loads((out / PROVENANCE_NAME).read_text())
    assert document["format"] == "elements.provenance/v1"
    assert document["content_id"] == ORIGINAL_ID
    assert document["recipe"]["content_id"] == recipe.content_id()
    assert parse_recipe(document["recipe"]["document"]).canonical_json() == recipe.canonical_json()
    assert document["inputs"]["encoder.layer.3"] == {"kind": "tensors", "content_id": recipe.inputs["encoder.layer.3"].content_id}
    assert document["weights"]["files"] == ["model.safetensors"] and document["chain_id"] == 31337
    assert document["files"]["config.json"] == str(file_content_id(MODEL / "config.json"))


def test_a_recipe_pinned_to_record_ids_assembles_by_content_id_lookup(split_dir, tmp_path):
    recipe = load_recipe(split_dir / "recipe.json")
    pinned = with_record_ids(recipe, {name: "0x" + f"{i:064x}" for i, name in enumerate(recipe.inputs)})
    result = assemble(pinned, LocalElementSource(split_dir), tmp_path / "model")
    assert result.content_id == ORIGINAL_ID


class _PathLike:
    """An os.PathLike that is not a pathlib.Path (an os.DirEntry, a library's own path type)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return str(self.path)


def test_a_recipe_named_by_any_path_like_is_read_from_that_path(split_dir, tmp_path):
    source = LocalElementSource(split_dir)
    result = assemble(_PathLike(split_dir / "recipe.json"), source, tmp_path / "model")
    assert result.content_id == ORIGINAL_ID
    assert inspect_recipe(_PathLike(split_dir / "recipe.json"), source)["content_id"] == ORIGINAL_ID


def test_inspect_predicts_the_content_id_of_a_copy_only_recipe_without_writing(split_dir, tmp_path):
    report = inspect_recipe(split_dir / "recipe.json", LocalElementSource(split_dir))
    assert report["content_id"] == ORIGINAL_ID and report["tensor_count"] == 104
    assert report["largest_tensor"] == 30522 * 384 * 4


# ------------------------------------------------------------------------------ variants


def test_three_layer_variant_assembles_and_loads(split_dir, tmp_path, original):
    out = tmp_path / "small"
    result = assemble(parse_recipe(three_layer_recipe(split_dir)), LocalElementSource(split_dir), out)
    tensors = read_tensors(out / "model.safetensors")
    layers = sorted({n.split(".")[2] for n in tensors if n.startswith("encoder.layer.")})
    assert layers == ["0", "1", "2"] and len(tensors) == 8 + 3 * 16
    for new, old in [(0, 0), (1, 2), (2, 5)]:
        for suffix in ["attention.self.query.weight", "output.LayerNorm.bias"]:
            assert tensors[f"encoder.layer.{new}.{suffix}"][1].tobytes() == original[f"encoder.layer.{old}.{suffix}"][1].tobytes()
    config = json.loads((out / "config.json").read_text())
    assert config["num_hidden_layers"] == 3 and config["hidden_size"] == 384
    assert result.files["config.json"] == str(file_content_id(out / "config.json"))
    loaded = safetensors.numpy.load_file(str(out / "model.safetensors"))
    assert loaded["encoder.layer.2.output.dense.weight"].shape == (384, 1536) and len(loaded) == 56


def test_three_layer_config_parses_with_transformers(split_dir, tmp_path):
    transformers = pytest.importorskip("transformers", reason="transformers not installed (optional extra): AutoConfig not checked")
    out = tmp_path / "small"
    assemble(parse_recipe(three_layer_recipe(split_dir)), LocalElementSource(split_dir), out)
    parsed = transformers.AutoConfig.from_pretrained(str(out))
    assert parsed.num_hidden_layers == 3 and parsed.model_type == "bert" and parsed.hidden_size == 384


def test_the_three_layer_example_in_the_docs_assembles(split_dir, tmp_path):
    text = (Path(__file__).resolve().parent.parent / "docs/recipes.md").read_text()
    example = text.split("```yaml\nformat: elements.recipe/v1\nname: minilm-3-layers\n", 1)[1].split("```", 1)[0]
    recipe = load_recipe("format: elements.recipe/v1\nname: minilm-3-layers\n" + example)
    result = assemble(recipe, LocalElementSource(split_dir), tmp_path / "doc")
    direct = assemble(parse_recipe(three_layer_recipe(split_dir)), LocalElementSource(split_dir), tmp_path / "test")
    assert result.content_id == direct.content_id and set(result.files) == {"config.json", "tokenizer.json"}


def test_a_patch_that_keeps_a_value_keeps_the_original_config_bytes(split_dir, tmp_path):
    doc = reassembly_recipe(split_dir)
    doc["files"] = [dict(f, patch={"num_hidden_layers": 6}) if f["path"] == "config.json" else f for f in doc["files"]]
    assemble(parse_recipe(doc), LocalElementSource(split_dir), tmp_path / "out")  # output.files still match
    assert (tmp_path / "out/config.json").read_bytes() == (MODEL / "config.json").read_bytes()


def _embed(model_dir, sentences):
    torch = pytest.importorskip("torch", reason="torch not installed (optional extra): model run skipped")
    transformers = pytest.importorskip("transformers", reason="transformers not installed: model run skipped")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    model = transformers.AutoModel.from_pretrained(str(model_dir))
    model.eval()
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).last_hidden_state


def test_three_layer_variant_runs_in_transformers(split_dir, tmp_path):
    out = tmp_path / "small"
    assemble(parse_recipe(three_layer_recipe(split_dir)), LocalElementSource(split_dir), out)
    hidden = _embed(out, ["Elements are Lego for model weights.", "A second sentence."])
    assert tuple(hidden.shape[::2]) == (2, 384) and bool(hidden.isfinite().all())


def test_full_reassembly_gives_the_original_embeddings(split_dir, tmp_path):
    out = tmp_path / "model"
    assemble(split_dir / "recipe.json", LocalElementSource(split_dir), out)
    sentences = ["The quick brown fox.", "Verify down to the tensor."]
    torch = pytest.importorskip("torch", reason="torch not installed (optional extra): embeddings not compared")
    assert torch.equal(_embed(out, sentences), _embed(MODEL, sentences))


def test_a_fine_tune_delta_holds_only_the_changed_tensors_and_overrides_exactly(work, tmp_path, original):
    tuned = {n: (d, a.copy()) for n, (d, a) in original.items()}
    rng = np.random.default_rng(11)
    for name in ["encoder.layer.3.attention.self.query.weight", "pooler.dense.bias"]:
        values = f32(tuned[name])
        values += rng.standard_normal(values.shape).astype(np.float32) * np.float32(1e-3)
    tuned_path = tmp_path / "tuned.safetensors"
    write_safetensors(tuned_path, [(n, d, a.shape, a) for n, (d, a) in tuned.items()])
    base = load_recipe(work / "recipe.json")
    recipe, delta = make_delta(base, tuned_path, work, name="delta")
    assert [e.name for e in delta.entries] == ["encoder.layer.3.attention.self.query.weight", "pooler.dense.bias"]
    assert (work / "elements/delta.safetensors").stat().st_size < 384 * 384 * 4 + 384 * 4 + 1024
    assert recipe.output.content_id == str(content_id(tuned_path)) != ORIGINAL_ID
    result = assemble(recipe, LocalElementSource(work), tmp_path / "tuned-model")
    assert result.content_id == recipe.output.content_id
    rebuilt = read_tensors(tmp_path / "tuned-model/model.safetensors")
    assert all(rebuilt[n][1].tobytes() == a.tobytes() for n, (_, a) in tuned.items())
    with pytest.raises(RecipeError, match="identical to the base"):
        make_delta(base, MODEL / "model.safetensors", work, name="nothing")


def test_take_with_selection_and_renames(work, tmp_path):
    base = reassembly_recipe(work)
    doc = {
        "format": "elements.recipe/v1",
        "inputs": {"encoder.layer.1": base["inputs"]["encoder.layer.1"]},
        "steps": [{"op": "take", "from": "encoder.layer.1", "select": ["*.attention.self.*"], "match": r"LayerNorm\.weight$",
                   "exclude": ["*.bias"],
                   "rename": [{"prefix": "encoder.layer.1.", "to": "block."}, {"regex": r"attention\.self\.(\w+)", "to": r"attn.\1"}]}],
    }
    result = assemble(parse_recipe(doc), LocalElementSource(work), tmp_path / "out")
    assert [e.name for e in result.tensors] == [
        "block.attention.output.LayerNorm.weight", "block.attn.key.weight", "block.attn.query.weight",
        "block.attn.value.weight", "block.output.LayerNorm.weight",
    ]


# ------------------------------------------------------------------------------ bad input


def _recipe_with(split_dir, **changes) -> dict:
    doc = copy.deepcopy(reassembly_recipe(split_dir))
    doc.update(changes)
    return doc


def _assert_refused(doc_or_recipe, work, tmp_path, error, message, **kwargs):
    out = tmp_path / "out"
    recipe = doc_or_recipe if not isinstance(doc_or_recipe, dict) else None
    with pytest.raises(error, match=message) as info:
        if recipe is None:
            recipe = parse_recipe(doc_or_recipe)
        assemble(recipe, LocalElementSource(work), out, **kwargs)
    assert "\n" not in str(info.value)
    assert not out.exists() and leftovers(tmp_path, "out") == []
    return info.value


def test_refuses_a_recipe_naming_a_missing_element(work, tmp_path):
    (work / "elements/pooler.safetensors").unlink()
    error = _assert_refused(reassembly_recipe(work), work, tmp_path, ElementNotFoundError, "input 'pooler'.*does not exist")
    assert isinstance(error, NotFoundError) and error.exit_code == 2


def test_refuses_a_record_only_input_the_directory_lacks(work, tmp_path):
    doc = reassembly_recipe(work)
    doc["inputs"]["pooler"] = {"kind": "tensors", "content_id": "0x" + "ab" * 32, "record": "0x" + "01" * 32}
    _assert_refused(doc, work, tmp_path, ElementNotFoundError, "is not in")


def test_refuses_a_tensor_that_does_not_exist(work, tmp_path):
    doc = _recipe_with(work, output=None)
    doc["steps"][-1] = {"op": "take", "from": ["pooler"], "select": ["pooler.dense.weights"]}
    _assert_refused(doc, work, tmp_path, RecipeError, "tensor 'pooler.dense.weights' matches no tensor of input 'pooler'")


def test_refuses_a_layer_the_source_does_not_have(work, tmp_path):
    doc = three_layer_recipe(work)
    doc["steps"][1]["slices"][2]["layers"] = [6]
    _assert_refused(doc, work, tmp_path, RecipeError, "layer 6 is not in input 'encoder.layer.5' \\(it has layers 5-5\\)")


def test_refuses_shapes_that_cannot_merge(work, tmp_path, original):
    wrong = {"pooler.dense.weight": np.zeros((384, 383), dtype=np.float32), "pooler.dense.bias": f32(original["pooler.dense.bias"])}
    cid = write_element(work, "elements/odd.safetensors", wrong)
    doc = {"format": "elements.recipe/v1",
           "inputs": {"pooler": reassembly_recipe(work)["inputs"]["pooler"], "odd": {"content_id": cid, "path": "elements/odd.safetensors"}},
           "steps": [{"op": "linear", "sources": [{"from": "pooler", "weight": 0.5}, {"from": "odd", "weight": 0.5}]}]}
    _assert_refused(doc, work, tmp_path, RecipeError, "shapes cannot merge: 'pooler.dense.weight' is \\[384, 384\\] in input 'pooler' and \\[384, 383\\]")


def test_refuses_dtypes_that_cannot_cast(work, tmp_path):
    doc = _recipe_with(work, output=None)
    doc["steps"].append({"op": "cast", "dtype": "F16", "select": ["embeddings.*"]})
    _assert_refused(doc, work, tmp_path, RecipeError, "cannot cast 'embeddings.position_ids' from I64 to F16")


def test_refuses_an_existing_output_directory_unless_forced(work, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(OutputExistsError, match="exists; choose another -o or pass --force"):
        assemble(work / "recipe.json", LocalElementSource(work), out)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assemble(work / "recipe.json", LocalElementSource(work), out, force=True)
    assert not (out / "mine.txt").exists() and str(content_id(out)) == ORIGINAL_ID
    assert leftovers(tmp_path, "out") == []


def test_refuses_to_replace_the_directory_that_holds_its_inputs(work, tmp_path):
    with pytest.raises(InputError, match="holds input"):
        assemble(work / "recipe.json", LocalElementSource(work), work, force=True)
    with pytest.raises(InputError, match="holds input"):
        assemble(work / "recipe.json", LocalElementSource(work), work / "elements", force=True)
    assert (work / "elements/pooler.safetensors").is_file() and leftovers(work, "elements") == []


def test_refuses_paths_that_escape(work, tmp_path):
    doc = reassembly_recipe(work)
    doc["files"][0]["path"] = "../escaped.json"
    with pytest.raises(RecipeError, match="escapes its directory"):
        parse_recipe(doc)
    doc = reassembly_recipe(work)
    doc["inputs"]["config.json"]["path"] = "files/../../outside.json"
    with pytest.raises(RecipeError, match="escapes"):
        parse_recipe(doc)
    (tmp_path / "outside.safetensors").write_bytes(b"")
    os.symlink(tmp_path / "outside.safetensors", work / "elements/link.safetensors")
    doc = reassembly_recipe(work)
    doc["inputs"]["pooler"]["path"] = "elements/link.safetensors"
    _assert_refused(doc, work, tmp_path, RecipeError, "escapes the elements directory")


def test_refuses_a_corrupted_element_and_writes_nothing(work, tmp_path):
    path = work / "elements/encoder.layer.4.safetensors"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01
    path.write_bytes(bytes(data))
    error = _assert_refused(reassembly_recipe(work), work, tmp_path, ElementIntegrityError,
                            "tensor 'encoder.layer.4.output.dense.weight' .* does not match its digest")
    assert isinstance(error, IntegrityError)


def test_a_corrupt_byte_deep_inside_a_copied_tensor_is_refused_though_nothing_reads_the_output_back(work, tmp_path):
    # Copies are hashed from the output as they are written, 16 MiB steps behind the kernel copy:
    # the word embeddings (46.9 MB) span three steps, and a byte changed in the second must fail it.
    from registry.compose import writer
    from registry.formats.safetensors import read_header

    path = work / "elements/embeddings.safetensors"
    info = read_header(path).tensors["embeddings.word_embeddings.weight"]
    assert info.size > 2 * writer._VERIFY_STEP
    data = bytearray(path.read_bytes())
    data[info.start + writer._VERIFY_STEP + 12345] ^= 0x40
    path.write_bytes(bytes(data))
    error = _assert_refused(reassembly_recipe(work), work, tmp_path, ElementIntegrityError,
                            "tensor 'embeddings.word_embeddings.weight' .* does not match its digest")
    assert isinstance(error, IntegrityError)


def test_tensors_hashed_in_steps_far_smaller_than_themselves_give_the_original_content_id(work, tmp_path, monkeypatch):
    from registry.compose import writer

    monkeypatch.setattr(writer, "_VERIFY_STEP", 4096 + 7)  # steps that straddle every leaf and page
    result = assemble(work / "recipe.json", LocalElementSource(work), tmp_path / "out")
    assert result.content_id == ORIGINAL_ID == str(content_id(tmp_path / "out"))


def test_refuses_an_element_whose_manifest_was_swapped(work, tmp_path):
    (work / "elements/pooler.safetensors.manifest.json").write_bytes(
        (work / "elements/encoder.layer.0.safetensors.manifest.json").read_bytes())
    _assert_refused(reassembly_recipe(work), work, tmp_path, ElementIntegrityError, "the recipe pins")


def test_refuses_an_output_that_differs_from_the_expected_content_id(work, tmp_path):
    doc = reassembly_recipe(work)
    doc["output"]["content_id"] = "0x" + "00" * 32
    _assert_refused(doc, work, tmp_path, OutputMismatchError, "give content id .* but it expects 0x0000")
    doc = reassembly_recipe(work)
    doc["output"]["tensors"][0]["shape"] = [1, 513]
    _assert_refused(doc, work, tmp_path, OutputMismatchError, "the recipe's table says F32\\[1, 513\\]")


def test_refuses_an_output_file_that_differs_from_the_expected(work, tmp_path):
    doc = reassembly_recipe(work)
    doc["files"] = [dict(f, patch={"num_hidden_layers": 5}) if f["path"] == "config.json" else f for f in doc["files"]]
    _assert_refused(doc, work, tmp_path, OutputMismatchError, "output file\\(s\\) config.json differ")


def test_refuses_a_tensor_produced_twice_and_an_override_of_nothing(work, tmp_path):
    doc = _recipe_with(work, output=None)
    doc["steps"].append({"op": "take", "from": ["pooler"]})
    _assert_refused(doc, work, tmp_path, RecipeError, "'pooler.dense.bias' is already produced by steps\\[7\\]")
    doc = _recipe_with(work, output=None)
    doc["steps"] = [s for s in doc["steps"] if s["from"] != ["pooler"]] + [{"op": "override", "from": ["pooler"]}]
    _assert_refused(doc, work, tmp_path, RecipeError, "override tensor 'pooler.dense.bias' is not in the composition")


def test_bad_sizes_are_input_errors():
    assert parse_size("5GB") == 5_000_000_000 and parse_size("64MiB") == 64 << 20 and parse_size("1000") == 1000
    with pytest.raises(InputError, match="not a size"):
        parse_size("lots")
