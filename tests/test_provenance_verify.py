"""Verification on the real all-MiniLM-L6-v2, published as elements and compositions on the
in-process chain: the original and rewritten copies verify, every kind of change is reported by
name, several publishers and the trust set, yanked ancestry, licences, the three-layer variant
and a LoRA-merged model verified as their compositions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

from registry.chain.network import connect
from registry.chain.registry import Kind, RecordInput, Registry
from registry.compose.recipe import parse_recipe, with_record_ids
from registry.elements.content_id import content_id
from registry.elements.split import split_model
from registry.errors import InputError, NotFoundError
from registry.provenance.verify import VerifyOptions, read_model, verify_model
from registry.storage.blockstore import BlockStore
from registry.storage.fetch import Sources
from tests.compose_support import copy_model_sharded, write_element
from tests.provenance_support import (
    APACHE,
    MODEL,
    pinned,
    publish_composition,
    publish_elements,
    publish_model,
    read_tensors,
    rewrite,
    shapes_of,
    store_element,
)

WEIGHTS = MODEL / "model.safetensors"
QUERY3 = "encoder.layer.3.attention.self.query.weight"
CC_BY_NC = 7


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("verify") / "split"
    split_model(MODEL, out)
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return BlockStore(tmp_path_factory.mktemp("blocks"))


@pytest.fixture(scope="module")
def world(split_dir, store):
    """A chain where dev account 0 published the model (elements, files, one composition)."""
    chain = connect("memory")
    registry = Registry.deploy(chain, chain.dev_accounts[0])
    published = publish_model(registry, store, split_dir)
    return registry, published


@pytest.fixture
def fresh(split_dir, store):
    """A chain of its own (for tests that publish more or yank), with the model published by account 0."""
    chain = connect("memory")
    registry = Registry.deploy(chain, chain.dev_accounts[0])
    published = publish_model(registry, store, split_dir)
    return registry, published


def verify(registry, store, path, **options):
    return verify_model(path, registry.with_account(None), Sources(store), VerifyOptions(**options))


def changed_copy(tmp_path: Path, edit) -> Path:
    """The original weights with ``edit(tensors, shapes)`` applied, written by our writer."""
    tensors, shapes = read_tensors(WEIGHTS), shapes_of(WEIGHTS)
    edit(tensors, shapes)
    return rewrite(tmp_path / "model.safetensors", tensors, shapes, {"format": "pt"})


# ------------------------------------------------------------------------------ the original


def test_the_original_file_verifies_as_its_composition(world, store):
    registry, published = world
    report = verify(registry, store, WEIGHTS)
    assert report.exit_code == 0 and report.verdict == "verified"
    claim = report.accepted
    assert claim.record_id == published.composition and claim.kind == "composition"
    assert claim.counts() == {"match": 104}
    source = next(t for t in claim.tensors if t.name == QUERY3).sources[0]
    assert (source.input, source.record_id, source.tensor) == ("encoder.layer.3", published.records["encoder.layer.3"], QUERY3)
    assert len(claim.nodes) == 1 + len(published.records)  # the claim and every input record
    assert report.attribution is None


def test_the_original_directory_checks_every_file_against_the_recipe(world, store):
    registry, published = world
    report = verify(registry, store, MODEL)
    assert report.exit_code == 0
    files = {f.path: f for f in report.files}
    assert set(files) == set(read_model(MODEL).files)
    assert all(f.status == "match" for f in files.values())
    assert files["config.json"].record_id == published.records["config.json"]
    assert files["config.json"].claims[0]["record_id"] == published.records["config.json"]  # found in the same call


def test_effective_license_lists_every_ancestor_to_attribute(world, store):
    registry, published = world
    lic = verify(registry, store, WEIGHTS).effective_license
    assert lic.expression == "Apache-2.0" and lic.commercial_use and lic.derivatives and not lic.share_alike
    assert {a.record_id for a in lic.attribution} == {published.composition, *published.records.values()}


def test_the_report_is_json_data(world, store):
    registry, _ = world
    data = json.loads(json.dumps(verify(registry, store, MODEL).to_json()))
    assert data["format"] == "elements.verify/v1" and data["verified"] is True and data["exit_code"] == 0
    assert data["model"]["content_id"] == str(content_id(WEIGHTS))
    claim = data["claims"][0]
    assert claim["status"] == "verified" and claim["first"] is True and claim["tensor_counts"] == {"match": 104}
    assert claim["ancestry"]["records"][claim["record_id"]]["role"] == "claim"
    assert data["effective_license"]["expression"] == "Apache-2.0"


# ------------------------------------------------------------------------------ other writers


def test_the_same_tensors_saved_by_another_writer_verify(world, store, tmp_path):
    registry, _ = world
    arrays = safetensors.numpy.load_file(str(WEIGHTS))
    reordered = {name: arrays[name] for name in sorted(arrays, reverse=True)}
    path = tmp_path / "other.safetensors"
    safetensors.numpy.save_file(reordered, str(path), metadata={"format": "np", "written_by": "safetensors.numpy"})
    assert path.read_bytes() != WEIGHTS.read_bytes()
    assert verify(registry, store, path).exit_code == 0


def test_our_writer_in_reverse_order_with_other_metadata_verifies(world, store, tmp_path):
    registry, _ = world
    tensors, shapes = read_tensors(WEIGHTS), shapes_of(WEIGHTS)
    path = rewrite(tmp_path / "reversed.safetensors", tensors, shapes, {"note": "re-saved"}, reverse=True)
    assert verify(registry, store, path).exit_code == 0


def test_a_sharded_copy_verifies_with_its_files(world, store, tmp_path):
    registry, _ = world
    directory = copy_model_sharded(tmp_path / "sharded", shards=3)
    report = verify(registry, store, directory)
    assert report.exit_code == 0 and len(report.model.weight_files) == 4  # index + 3 shards
    assert all(f.status == "match" for f in report.files)


# ------------------------------------------------------------------------------ changes, by name


def test_one_changed_weight_names_the_tensor_and_the_element_it_should_match(world, store, tmp_path):
    registry, published = world

    def flip(tensors, shapes):
        dtype, raw = tensors[QUERY3]
        raw = raw.copy()
        raw[7] ^= 0x01  # one bit of one float
        tensors[QUERY3] = (dtype, raw)

    report = verify(registry, store, changed_copy(tmp_path, flip))
    assert report.exit_code == 1 and report.verdict == "unknown"
    attribution = report.attribution
    assert attribution.reference.record_id == published.composition
    assert attribution.counts() == {"match": 103, "differs": 1}
    [changed] = [t for t in attribution.tensors if t.status == "differs"]
    element = published.recipe.inputs["encoder.layer.3"]
    assert changed.name == QUERY3
    assert changed.sources[0].record_id == published.records["encoder.layer.3"]
    assert changed.message == (f"{QUERY3} differs from element {element.content_id} (encoder.layer.3) "
                               f"by publisher {published.publisher}")


def test_an_extra_tensor_is_reported_as_extra(world, store, tmp_path):
    registry, _ = world

    def add(tensors, shapes):
        tensors["classifier.weight"] = ("F32", np.arange(8, dtype=np.float32).view(np.uint8))
        shapes["classifier.weight"] = (2, 4)

    attribution = verify(registry, store, changed_copy(tmp_path, add)).attribution
    assert attribution.counts() == {"match": 104, "extra": 1}
    [extra] = [t for t in attribution.tensors if t.status == "extra"]
    assert extra.name == "classifier.weight" and "not in composition" in extra.message


def test_a_missing_tensor_is_reported_with_the_element_it_comes_from(world, store, tmp_path):
    registry, published = world
    attribution = verify(registry, store, changed_copy(tmp_path, lambda t, s: t.pop("pooler.dense.bias"))).attribution
    assert attribution.counts() == {"match": 103, "missing": 1}
    [missing] = attribution.missing
    assert missing.name == "pooler.dense.bias" and missing.sources[0].record_id == published.records["pooler"]


def test_a_renamed_tensor_is_reported_with_its_original_name(world, store, tmp_path):
    registry, published = world

    def rename(tensors, shapes):
        tensors["pooler.dense.b"] = tensors.pop("pooler.dense.bias")
        shapes["pooler.dense.b"] = shapes.pop("pooler.dense.bias")

    attribution = verify(registry, store, changed_copy(tmp_path, rename)).attribution
    assert attribution.counts() == {"match": 103, "renamed": 1} and attribution.missing == []
    [renamed] = [t for t in attribution.tensors if t.status == "renamed"]
    assert (renamed.name, renamed.renamed_from) == ("pooler.dense.b", "pooler.dense.bias")
    assert renamed.sources[0].record_id == published.records["pooler"]


def test_a_changed_config_file_fails_the_directory_and_is_named(world, store, tmp_path):
    registry, published = world
    directory = shutil.copytree(MODEL, tmp_path / "model")
    config = json.loads((directory / "config.json").read_text())
    config["hidden_dropout_prob"] = 0.5
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    report = verify(registry, store, directory)
    assert report.exit_code == 1 and report.verdict == "mismatch"
    [bad] = [f for f in report.files if f.status == "differs"]
    assert bad.path == "config.json" and bad.input == "config.json" and bad.record_id == published.records["config.json"]
    assert any("config.json differs from file element" in reason for reason in report.reasons)


def test_an_unpublished_model_is_unknown_tensor_by_tensor(world, store, tmp_path):
    registry, _ = world
    path = tmp_path / "random.safetensors"
    safetensors.numpy.save_file({"w": np.ones((3, 3), dtype=np.float32)}, str(path))
    report = verify(registry, store, path)
    assert report.exit_code == 1 and report.verdict == "unknown"
    assert [t.status for t in report.attribution.tensors] == ["unknown"]


# ------------------------------------------------------------------------------ publishers and trust


def test_claims_by_two_publishers_are_shown_earliest_first_and_trust_decides(fresh, store):
    registry, published = fresh
    second = registry.with_account(registry.chain.dev_accounts[1])
    later = publish_composition(second, store, published.recipe)
    report = verify(registry, store, WEIGHTS)
    assert [c.record_id for c in report.claims] == [published.composition, later]
    assert report.claims[0].first and not report.claims[1].first
    assert report.claims[0].record.block_number < report.claims[1].record.block_number
    assert report.accepted.record_id == published.composition and report.exit_code == 0

    trusted_later = verify(registry, store, WEIGHTS, trust=(second.account.address.lower(),))
    assert trusted_later.exit_code == 0 and trusted_later.accepted.record_id == later
    assert [c.trusted for c in trusted_later.claims] == [False, True]

    stranger = registry.chain.dev_accounts[2].address
    untrusted = verify(registry, store, WEIGHTS, trust=(stranger,))
    assert untrusted.exit_code == 1 and untrusted.verdict == "untrusted" and untrusted.accepted is None
    assert all(c.status == "verified" and c.trusted is False for c in untrusted.claims)


def test_a_bad_trust_address_is_an_input_error(world, store):
    registry, _ = world
    with pytest.raises(InputError, match="not an address"):
        verify(registry, store, WEIGHTS, trust=("alice",))


# ------------------------------------------------------------------------------ yanks and licences


def test_a_yanked_element_in_the_ancestry_fails_unless_allowed(fresh, store):
    registry, published = fresh
    assert registry.yank(published.records["encoder.layer.2"])
    report = verify(registry, store, WEIGHTS)
    assert report.exit_code == 1 and report.verdict == "yanked"
    claim = report.claims[0]
    assert claim.status == "verified" and claim.yanked_ancestors == [published.records["encoder.layer.2"]]
    assert "encoder.layer.2" in report.reasons[0] and "yanked" in report.reasons[0]

    allowed = verify(registry, store, WEIGHTS, allow_yanked=True)
    assert allowed.exit_code == 0 and allowed.accepted.yanked_ancestors == [published.records["encoder.layer.2"]]


def test_a_yanked_claim_does_not_verify_but_a_later_one_does(fresh, store):
    registry, published = fresh
    later = publish_composition(registry.with_account(registry.chain.dev_accounts[1]), store, published.recipe)
    registry.yank(published.composition)
    report = verify(registry, store, WEIGHTS)
    assert report.exit_code == 0 and report.accepted.record_id == later
    assert report.claims[0].yanked


def test_effective_license_is_the_most_restrictive_across_publishers(split_dir, store, tmp_path):
    chain = connect("memory")
    registry = Registry.deploy(chain, chain.dev_accounts[0])
    doc = json.loads((split_dir / "recipe.json").read_text())
    records = publish_elements(registry, store, split_dir, doc, APACHE, only={n for n in doc["inputs"] if n != "pooler"})
    other = registry.with_account(chain.dev_accounts[1])
    records |= publish_elements(other, store, split_dir, doc, CC_BY_NC, only={"pooler"})
    composer = registry.with_account(chain.dev_accounts[2])
    recipe = with_record_ids(parse_recipe(doc), records)
    publish_composition(composer, store, recipe, CC_BY_NC)  # NC parents keep the composition NC

    lic = verify(registry, store, WEIGHTS).effective_license
    assert not lic.commercial_use and lic.derivatives
    assert lic.no_commercial_use and records["pooler"] in lic.no_commercial_use
    assert set(lic.licenses) == {"CC-BY-NC-4.0", "Apache-2.0"} and lic.expression in ("CC-BY-NC-4.0 AND Apache-2.0", "Apache-2.0 AND CC-BY-NC-4.0")
    assert {a.publisher for a in lic.attribution} == {a.address for a in chain.dev_accounts[:3]}


def test_a_composition_whose_steps_do_not_build_its_claim_is_refused(fresh, store, split_dir):
    registry, published = fresh
    doc = json.loads((split_dir / "recipe.json").read_text())
    doc["steps"] = [s for s in doc["steps"] if s["from"] != ["pooler"]]  # drops the pooler, keeps the output table
    doc["inputs"].pop("pooler")
    records = {k: v for k, v in published.records.items() if k != "pooler"}
    liar = with_record_ids(parse_recipe(doc), records)
    forged = publish_composition(registry.with_account(registry.chain.dev_accounts[3]), store, liar)
    report = verify(registry, store, WEIGHTS)
    assert report.exit_code == 0 and report.accepted.record_id == published.composition
    lie = next(c for c in report.claims if c.record_id == forged)
    assert lie.status == "invalid" and any("inconsistent" in p for p in lie.problems)
    with_trust = verify(registry, store, WEIGHTS, trust=(registry.chain.dev_accounts[3].address,))
    assert with_trust.exit_code == 1 and with_trust.verdict == "untrusted"
    assert any(forged in reason and "(invalid)" in reason for reason in with_trust.reasons)


def test_the_whole_model_published_as_one_element_verifies_as_an_element_claim(store, tmp_path):
    chain = connect("memory")
    registry = Registry.deploy(chain, chain.dev_accounts[0])
    manifest, cid = store_element(store, WEIGHTS, "tensors")
    [rid] = registry.publish_batch([RecordInput(manifest.content_id, cid, APACHE, Kind.ELEMENT)])
    report = verify(registry, store, WEIGHTS)
    assert report.exit_code == 0 and report.accepted.kind == "element" and report.accepted.record_id == "0x" + rid.hex()
    assert report.accepted.counts() == {"match": 104}


# ------------------------------------------------------------------------------ variants


def three_layer_doc(split_dir: Path) -> dict:
    base = json.loads((split_dir / "recipe.json").read_text())
    keep = {n: i for n, i in base["inputs"].items() if not n.startswith("encoder.layer.") or n[-1] in "025"}
    return {
        "format": "elements.recipe/v1",
        "name": "minilm-3-layers",
        "inputs": keep,
        "steps": [
            {"op": "take", "from": ["embeddings", "pooler"]},
            {"op": "stack", "template": "encoder.layer.{n}.", "slices": [
                {"from": "encoder.layer.0", "layers": [0]},
                {"from": "encoder.layer.2", "layers": [2]},
                {"from": "encoder.layer.5", "layers": [5]},
            ]},
        ],
        "files": [dict(f, patch={"num_hidden_layers": 3}) if f["path"] == "config.json" else f for f in base["files"]],
    }


def test_the_three_layer_variant_verifies_as_its_composition(fresh, store, split_dir, tmp_path):
    registry, published = fresh
    doc = three_layer_doc(split_dir)
    recipe, out = pinned(doc, {k: v for k, v in published.records.items() if k in doc["inputs"]}, split_dir, tmp_path / "small")
    composition = publish_composition(registry, store, recipe)
    report = verify(registry, store, out)
    assert report.exit_code == 0 and report.accepted.record_id == composition
    tensors = {t.name: t for t in report.accepted.tensors}
    assert len(tensors) == 6 + 2 + 3 * 16 and all(t.status == "match" for t in tensors.values())
    moved = tensors["encoder.layer.2.attention.self.query.weight"].sources[0]
    assert (moved.input, moved.tensor) == ("encoder.layer.5", "encoder.layer.5.attention.self.query.weight")
    config = next(f for f in report.files if f.path == "config.json")
    assert config.status == "match" and config.expected != published.recipe.inputs["config.json"].content_id  # patched


def test_the_full_model_checked_against_the_three_layer_composition_reports_the_difference(fresh, store, split_dir, tmp_path):
    registry, published = fresh
    doc = three_layer_doc(split_dir)
    recipe, _ = pinned(doc, {k: v for k, v in published.records.items() if k in doc["inputs"]}, split_dir, tmp_path / "small")
    composition = publish_composition(registry, store, recipe)
    report = verify(registry, store, WEIGHTS, claim=composition)
    assert report.exit_code == 1 and report.verdict == "mismatch"
    assert report.attribution.reference.record_id == composition
    statuses = {t.name: t.status for t in report.claims[0].tensors}
    assert statuses["encoder.layer.5.attention.self.query.weight"] == "extra"
    assert statuses["encoder.layer.1.attention.self.query.weight"] == "differs"  # layer 2 of the original is layer 1 here
    with pytest.raises(NotFoundError, match="neither a record nor"):
        verify(registry, store, WEIGHTS, claim="0x" + "ab" * 32)


def lora_adapter(split_dir: Path, rank: int = 4) -> str:
    """A PEFT-style adapter for query/value of layers 0 and 1, written as an element."""
    rng = np.random.default_rng(7)
    tensors = {}
    for layer in (0, 1):
        for module in ("query", "value"):
            prefix = f"base_model.model.encoder.layer.{layer}.attention.self.{module}"
            tensors[f"{prefix}.lora_A.weight"] = (rng.standard_normal((rank, 384)) * 0.02).astype(np.float32)
            tensors[f"{prefix}.lora_B.weight"] = (rng.standard_normal((384, rank)) * 0.02).astype(np.float32)
    return write_element(split_dir, "elements/adapter.safetensors", tensors)


def test_a_lora_merged_model_verifies_by_recomputing_the_merged_tensors(fresh, store, split_dir, tmp_path):
    registry, published = fresh
    adapter_id = lora_adapter(split_dir)
    manifest, cid = store_element(store, split_dir / "elements/adapter.safetensors", "tensors")
    [adapter_record] = registry.publish_batch([RecordInput(adapter_id, cid, APACHE, Kind.ADAPTER)])
    doc = json.loads((split_dir / "recipe.json").read_text())
    doc["inputs"]["adapter"] = {"content_id": adapter_id, "path": "elements/adapter.safetensors"}
    doc["steps"].append({"op": "lora", "adapter": "adapter", "params": {"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]}})
    doc.pop("output")
    records = dict(published.records, adapter="0x" + adapter_record.hex())
    recipe, out = pinned(doc, records, split_dir, tmp_path / "merged")
    composition = publish_composition(registry, store, recipe)

    report = verify(registry, store, out)
    assert report.exit_code == 0 and report.accepted.record_id == composition
    assert report.accepted.counts() == {"match": 100, "recomputed": 4}
    merged = next(t for t in report.accepted.tensors if t.name == "encoder.layer.0.attention.self.value.weight")
    assert merged.how.startswith("lora(") and {s.input for s in merged.sources} == {"adapter", "encoder.layer.0"}

    # The same merge with one merged weight nudged: recomputation catches it and names the inputs.
    tensors, shapes = read_tensors(out / "model.safetensors"), shapes_of(out / "model.safetensors")
    dtype, raw = tensors["encoder.layer.1.attention.self.query.weight"]
    raw = raw.copy()
    raw[0] ^= 0x01
    tensors["encoder.layer.1.attention.self.query.weight"] = (dtype, raw)
    nudged = rewrite(tmp_path / "nudged.safetensors", tensors, shapes)
    bad = verify(registry, store, nudged, claim=composition)
    assert bad.exit_code == 1
    [differs] = [t for t in bad.claims[0].tensors if t.status == "differs"]
    assert differs.name == "encoder.layer.1.attention.self.query.weight"
    assert "recomputation lora(" in differs.message and "(adapter)" in differs.message


def test_a_composition_whose_element_data_is_gone_is_undecided(split_dir, tmp_path):
    chain = connect("memory")
    registry = Registry.deploy(chain, chain.dev_accounts[0])
    own = BlockStore(tmp_path / "blocks")
    published = publish_model(registry, own, split_dir)
    adapter_id = lora_adapter(split_dir)
    manifest, cid = store_element(own, split_dir / "elements/adapter.safetensors", "tensors")
    [adapter_record] = registry.publish_batch([RecordInput(adapter_id, cid, APACHE, Kind.ADAPTER)])
    doc = json.loads((split_dir / "recipe.json").read_text())
    doc["inputs"]["adapter"] = {"content_id": adapter_id, "path": "elements/adapter.safetensors"}
    doc["steps"].append({"op": "lora", "adapter": "adapter", "params": {"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]}})
    doc.pop("output")
    recipe, out = pinned(doc, dict(published.records, adapter="0x" + adapter_record.hex()), split_dir, tmp_path / "merged")
    publish_composition(registry, own, recipe)
    assert own.delete(manifest.data["cid"])  # the adapter's data is gone from every source
    report = verify_model(out, registry.with_account(None), Sources(own))
    assert report.exit_code == 2 and report.verdict == "unavailable"
    assert "cannot be fetched" in report.reasons[0] and manifest.data["cid"] in report.reasons[0]


def test_bad_paths_are_input_errors(world, store, tmp_path):
    registry, _ = world
    with pytest.raises(InputError, match="no such file"):
        verify(registry, store, tmp_path / "nothing")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(InputError):
        verify(registry, store, tmp_path / "notes.txt")
