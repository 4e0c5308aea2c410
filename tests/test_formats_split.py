"""Splitting models into elements: grouping rules, the real model, sharded input, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from registry.formats.recipe import load_recipe
from registry.formats.content_id import Manifest, content_id, file_content_id, tensor_entries
from registry.formats.safetensors import SafetensorsError, read_header
from registry.formats.safetensors_writer import write_safetensors
from registry.formats.split import (
    SplitError,
    group_by_layer,
    group_by_module,
    group_by_rules,
    parse_rule,
    split_model,
)
from tests.compose_support import MODEL, copy_model_sharded, leftovers

BERT_GROUPS = ["embeddings"] + [f"encoder.layer.{i}" for i in range(6)] + ["pooler"]
MODEL_FILES = sorted([
    "1_Pooling/config.json", "README.md", "config.json", "config_sentence_transformers.json", "data_config.json",
    "modules.json", "sentence_bert_config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
    "vocab.txt",
])


def test_layer_grouping_recognizes_bert():
    names = ["embeddings.word_embeddings.weight", "embeddings.LayerNorm.bias", "encoder.layer.0.attention.self.query.weight",
             "encoder.layer.11.output.dense.bias", "encoder.layer.2.intermediate.dense.weight", "pooler.dense.weight"]
    groups = group_by_layer(names)
    assert list(groups) == ["embeddings", "encoder.layer.0", "encoder.layer.2", "encoder.layer.11", "pooler"]
    prefixed = group_by_layer(["bert." + n for n in names] + ["cls.predictions.bias"])
    assert list(prefixed) == ["bert.embeddings", "bert.encoder.layer.0", "bert.encoder.layer.2", "bert.encoder.layer.11",
                              "bert.pooler", "cls"]


def test_layer_grouping_recognizes_llama_mistral_qwen():
    names = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.up_proj.weight",
             "model.layers.10.input_layernorm.weight", "model.norm.weight", "lm_head.weight"]
    assert group_by_layer(names) == {
        "lm_head": ["lm_head.weight"],
        "model.embed_tokens": ["model.embed_tokens.weight"],
        "model.layers.0": ["model.layers.0.mlp.up_proj.weight", "model.layers.0.self_attn.q_proj.weight"],
        "model.layers.10": ["model.layers.10.input_layernorm.weight"],
        "model.norm": ["model.norm.weight"],
    }


@pytest.mark.parametrize("prefix", ["", "transformer."])
def test_layer_grouping_recognizes_gpt2_with_or_without_prefix(prefix):
    names = [prefix + n for n in ["wte.weight", "wpe.weight", "h.0.attn.c_attn.weight", "h.0.ln_1.bias", "h.1.mlp.c_fc.weight", "ln_f.weight"]]
    assert list(group_by_layer(names)) == [prefix + g for g in ["h.0", "h.1", "ln_f", "wpe", "wte"]]


def test_layer_grouping_falls_back_to_top_level_modules():
    names = ["conv1.weight", "conv1.bias", "fc.weight", "logit_scale"]
    assert group_by_layer(names) == group_by_module(names) == {
        "conv1": ["conv1.bias", "conv1.weight"], "fc": ["fc.weight"], "logit_scale": ["logit_scale"],
    }


def test_rules_group_by_first_matching_regex_with_backreferences():
    rules = [parse_rule(r"encoder\.layer\.(\d+)\.=block_\1"), parse_rule(".*=rest")]
    groups = group_by_rules(["encoder.layer.3.x", "encoder.layer.3.y", "embeddings.z"], rules)
    assert groups == {"block_3": ["encoder.layer.3.x", "encoder.layer.3.y"], "rest": ["embeddings.z"]}
    with pytest.raises(SplitError, match="1 tensor\\(s\\) match no --rule \\(e.g. 'embeddings.z'\\)"):
        group_by_rules(["encoder.layer.3.x", "embeddings.z"], rules[:1])
    with pytest.raises(SplitError, match="must be REGEX=NAME"):
        parse_rule("no-separator")
    with pytest.raises(SplitError, match="not a valid regular expression"):
        parse_rule("(=x")


def test_split_of_the_real_model_gives_one_element_per_layer_and_per_file(split_dir):
    recipe = json.loads((split_dir / "recipe.json").read_text())
    tensor_inputs = [n for n, i in recipe["inputs"].items() if i["kind"] == "tensors"]
    assert sorted(tensor_inputs) == sorted(BERT_GROUPS)
    assert sorted(s["path"] for s in recipe["files"]) == MODEL_FILES
    layer0 = Manifest.from_json((split_dir / "elements/encoder.layer.0.safetensors.manifest.json").read_bytes(),
                                require_canonical=True)
    assert len(layer0.entries) == 16 and all(e.name.startswith("encoder.layer.0.") for e in layer0.entries)
    embeddings = read_header(split_dir / "elements/embeddings.safetensors")
    assert "embeddings.position_ids" in embeddings.tensors and embeddings.tensors["embeddings.position_ids"].dtype == "I64"
    # the recipe is a valid elements.recipe/v1 document that pins the original model
    parsed = load_recipe(split_dir / "recipe.json")
    assert parsed.output.content_id == str(content_id(MODEL / "model.safetensors"))
    assert len(parsed.output.tensors) == 104


def test_every_split_element_holds_the_original_bytes(split_dir):
    original = {e.name: e for e in tensor_entries(MODEL / "model.safetensors")}
    seen = {}
    for path in sorted((split_dir / "elements").glob("*.safetensors")):
        manifest = Manifest.from_json((path.parent / (path.name + ".manifest.json")).read_bytes())
        assert manifest.content_id == content_id(path)
        for entry in tensor_entries(path):
            assert entry.name not in seen
            seen[entry.name] = entry
    assert seen == original
    for relative in MODEL_FILES:
        assert (split_dir / "files" / relative).read_bytes() == (MODEL / relative).read_bytes()
        stated = Manifest.from_json((split_dir / "files" / (relative + ".manifest.json")).read_bytes())
        assert stated.kind == "file" and stated.content_id == file_content_id(MODEL / relative)


def test_a_sharded_copy_splits_into_the_same_elements(split_dir, tmp_path):
    sharded = copy_model_sharded(tmp_path / "sharded", shards=3)
    assert len(list(sharded.glob("model-*.safetensors"))) == 3
    out = split_model(sharded, tmp_path / "split")
    assert out.content_id == str(content_id(MODEL / "model.safetensors"))
    for path in sorted((split_dir / "elements").iterdir()):
        assert (tmp_path / "split/elements" / path.name).read_bytes() == path.read_bytes()
    original = json.loads((split_dir / "recipe.json").read_text())
    again = json.loads((tmp_path / "split/recipe.json").read_text())
    original.pop("name"), again.pop("name")
    assert again == original


def test_a_single_safetensors_file_splits_without_files(tmp_path):
    result = split_model(MODEL / "model.safetensors", tmp_path / "out", by="module")
    assert [e.name for e in result.elements] == ["embeddings", "encoder", "pooler"]
    assert "files" not in result.recipe


def test_custom_rules_and_one_element_splits(tmp_path):
    result = split_model(MODEL / "model.safetensors", tmp_path / "rules",
                         rules=[r"encoder\.layer\.([0-2])\.=low", r"encoder\.=high", ".*=other"])
    assert [(e.name, e.tensor_count) for e in result.elements] == [("high", 48), ("low", 48), ("other", 8)]
    whole = split_model(MODEL / "model.safetensors", tmp_path / "none", by="none")
    assert [(e.name, e.content_id) for e in whole.elements] == [("weights", whole.content_id)]


def test_split_refuses_an_existing_output_and_leaves_it_alone(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SplitError, match="exists; choose another --out or pass --force"):
        split_model(MODEL / "model.safetensors", out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    split_model(MODEL / "model.safetensors", out, by="none", force=True)
    assert not (out / "keep.txt").exists() and (out / "recipe.json").exists()
    assert leftovers(tmp_path, "out") == []


def test_split_refuses_to_replace_the_model_it_splits(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    write_safetensors(model / "model.safetensors", {"a.weight": np.ones(3, dtype=np.float32)})
    with pytest.raises(SplitError, match="holds the model"):
        split_model(model, model, force=True)
    with pytest.raises(SplitError, match="holds the model"):
        split_model(model / "model.safetensors", tmp_path, force=True)
    assert (model / "model.safetensors").is_file()


def test_split_refuses_a_file_that_is_not_safetensors_and_writes_nothing(tmp_path):
    bogus = tmp_path / "model.safetensors"
    bogus.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(SafetensorsError):
        split_model(bogus, tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path, "out") == []


def test_split_skips_pickled_weights_and_hidden_files(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    write_safetensors(model / "model.safetensors", {"a.weight": np.ones(3, dtype=np.float32)})
    (model / "pytorch_model.bin").write_bytes(b"pickle, never read")
    (model / ".hidden").write_text("x")
    (model / "config.json").write_text("{}")
    result = split_model(model, tmp_path / "out")
    assert result.skipped == ["pytorch_model.bin"]
    assert [e.name for e in result.elements] == ["a", "config.json"]


SPLIT_RSS = """
import json, os, resource, struct, sys
from pathlib import Path
from registry.formats.split import split_model
d = Path(sys.argv[1])
n, nbytes = 8, 32 << 20
header = {f"layers.{i}.w": {"dtype": "BF16", "shape": [nbytes // 2 // 4096, 4096], "data_offsets": [i * nbytes, (i + 1) * nbytes]}
          for i in range(n)}
raw = json.dumps(header).encode()
raw += b" " * (-len(raw) % 8)
with open(d / "m.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(raw)) + raw)
    for i in range(n):
        f.write(bytes([i]) * nbytes)
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
split_model(d / "m.safetensors", d / "out")
print(json.dumps({"before": start * 1024, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def test_splitting_a_checkpoint_holds_about_one_tensor_in_memory_not_the_checkpoint(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-c", SPLIT_RSS, str(tmp_path)], capture_output=True, text=True,
                            cwd=root, env={**__import__("os").environ, "PYTHONPATH": str(root)}, timeout=600)
    assert result.returncode == 0, result.stderr
    rss = json.loads(result.stdout)
    # 256 MiB of tensors, 32 MiB each: the split's own growth stays under a tensor and 100 MiB
    # (it grew by the whole checkpoint while pages it had written from stayed mapped in).
    assert rss["peak"] - rss["before"] < (32 << 20) + (100 << 20), rss


@pytest.mark.parametrize("by", ["layer", "module"])
def test_a_planned_split_has_split_models_recipe_and_streams_the_bytes_split_model_writes(by, tmp_path):
    from registry.formats.checkpoint import open_tensors
    from registry.formats.element_stream import ElementStream
    from registry.formats.split import plan_split
    from registry.storage.unixfs import add_file
    from tests.publish_support import MODEL

    written = split_model(MODEL, tmp_path / "split", by=by)
    plan = plan_split(MODEL, by=by)
    assert plan.recipe == written.recipe and plan.content_id == written.content_id
    assert [(e.name, e.kind, e.path, e.content_id) for e in plan.elements] == [
        (e.name, e.kind, e.path, e.content_id) for e in written.elements]
    with open_tensors(plan.checkpoint) as views:
        for planned, element in zip(plan.elements, written.elements):
            stream = ElementStream(planned, views)
            assert stream.size == element.size
            assert add_file(stream) == add_file(written.out_dir / element.path)  # the same bytes, so the same CID


def test_a_model_file_that_changes_while_it_is_streamed_is_refused(tmp_path):
    from registry.formats.element_stream import ElementStream
    from registry.formats.split import SplitError, plan_split

    model = tmp_path / "model"
    model.mkdir()
    write_safetensors(model / "model.safetensors", {"w": np.zeros((2, 2), dtype=np.float32)})
    (model / "config.json").write_text('{"a": 1}\n')
    plan = plan_split(model)
    (model / "config.json").write_text('{"a": 2}\n')
    [config] = [e for e in plan.elements if e.kind == "file"]
    stream = ElementStream(config)
    with pytest.raises(SplitError, match="changed while it was being published"):
        while stream.read(4):
            pass


def stream_layout(layout, read_size: int | None = None):
    """Every tensor group of ``layout`` streamed as publish-model streams it: (CIDs by group, digests)."""
    from registry.formats.checkpoint import open_tensors
    from registry.formats.element_stream import ElementStream
    from registry.storage.unixfs import add_file

    digests: dict = {}
    cids = {}
    with open_tensors(layout.checkpoint) as views:
        for group in layout.groups:
            stream = ElementStream(group, views, digests=digests)
            if read_size is None:
                cids[group.name] = add_file(stream)
            else:
                chunks = []
                while chunk := stream.read(read_size):
                    chunks.append(bytes(chunk))
                cids[group.name] = add_file(b"".join(chunks))
            assert stream.read(1) == b""
    return cids, digests


def planned_from(layout, digests):
    from registry.formats.content_id import TensorEntry

    infos = layout.checkpoint.tensors
    return layout.plan({n: TensorEntry(n, i.dtype, i.shape, digests[n], i.size) for n, i in infos.items()})


@pytest.mark.parametrize("by", ["layer", "module"])
def test_a_layout_streamed_with_digests_plans_what_plan_split_plans_from_the_same_bytes(by):
    from registry.formats.checkpoint import open_tensors
    from registry.formats.element_stream import ElementStream
    from registry.formats.split import plan_layout, plan_split
    from registry.storage.unixfs import add_file

    layout = plan_layout(MODEL, by=by)
    cids, digests = stream_layout(layout)
    planned = planned_from(layout, digests)
    hashed = plan_split(MODEL, by=by)
    assert planned.recipe == hashed.recipe and planned.content_id == hashed.content_id
    assert [(e.name, e.kind, e.path, e.content_id) for e in planned.elements] == [
        (e.name, e.kind, e.path, e.content_id) for e in hashed.elements]
    with open_tensors(hashed.checkpoint) as views:
        for element in hashed.elements:
            if element.kind == "tensors":
                assert cids[element.name] == add_file(ElementStream(element, views))


def test_tensors_streamed_in_reads_of_any_size_give_the_same_digests_and_bytes(tmp_path):
    from registry.formats.split import plan_layout, plan_split

    model = tmp_path / "model"
    model.mkdir()
    rng = np.random.default_rng(7)
    # an empty tensor sorts last in its group: it passes on the stream's last read, after the last byte
    write_safetensors(model / "model.safetensors", {"layers.0.a": rng.random((33, 7), dtype=np.float32),
                                                    "layers.0.b": rng.random(5, dtype=np.float32),
                                                    "layers.0.z": np.zeros((0, 3), dtype=np.float32),
                                                    "layers.1.a": rng.random(300, dtype=np.float32)})
    layout = plan_layout(model)
    whole, digests = stream_layout(layout)
    for read_size in (1, 7, 4096):
        assert stream_layout(layout, read_size) == (whole, digests)
    assert planned_from(layout, digests).content_id == plan_split(model).content_id == str(content_id(model))


def test_a_layout_is_not_planned_without_every_digest_nor_streamed_without_somewhere_to_put_them():
    from registry.formats.content_id import TensorEntry
    from registry.formats.checkpoint import open_tensors
    from registry.formats.element_stream import ElementStream
    from registry.formats.split import plan_layout

    layout = plan_layout(MODEL)
    _, digests = stream_layout(layout)
    infos = layout.checkpoint.tensors
    table = {n: TensorEntry(n, i.dtype, i.shape, digests[n], i.size) for n, i in infos.items()}
    table.pop(sorted(table)[3])
    with pytest.raises(SplitError, match="no digest for tensor"):
        layout.plan(table)
    with open_tensors(layout.checkpoint) as views, pytest.raises(SplitError, match="pass digests"):
        ElementStream(layout.groups[0], views)


def test_a_model_whose_header_metadata_would_make_an_unreadable_recipe_is_refused_with_nothing_written(tmp_path):
    import numpy as np

    model = tmp_path / "model.safetensors"
    write_safetensors(model, [("layers.0.w", "F32", (1,), np.ones(1, dtype=np.float32))], metadata={"notes": "x" * (17 * 1024 * 1024)})
    with pytest.raises(SplitError, match="DOCUMENT_BYTES"):
        split_model(model, tmp_path / "out")
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_a_split_into_more_elements_than_a_recipe_may_have_inputs_is_refused_before_writing_any(tmp_path):
    import numpy as np

    model = tmp_path / "model.safetensors"
    write_safetensors(model, [(f"t{i}.w", "F32", (0,), np.zeros(0, dtype=np.float32)) for i in range(4097)])
    with pytest.raises(SplitError, match="RECIPE_INPUTS"):
        split_model(model, tmp_path / "out", by="module")
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


@pytest.mark.parametrize("name", ["a:b.json", "a\\b.txt", "tab\tx.txt", "line\nx.txt"])
def test_a_model_file_whose_name_no_recipe_can_carry_is_refused_before_writing_anything(tmp_path, name):
    import numpy as np

    model = tmp_path / "model"
    model.mkdir()
    write_safetensors(model / "model.safetensors", [("layers.0.w", "F32", (1,), np.ones(1, dtype=np.float32))])
    (model / name).write_text("{}")
    with pytest.raises(SplitError, match="rename it"):
        split_model(model, tmp_path / "out")
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
