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

from registry.chain.licenses import INHERITS_NON_COMMERCIAL
from registry.chain.registry import Kind, Registry
from registry.chain.inputs import RecordInput
from registry.formats.recipe import parse_recipe
from registry.formats.content_id import content_id
from registry.publish.prepare import store_document
from registry.publish.send import publish_elements
from registry.formats.split import split_model
from registry.errors import InputError, NotFoundError
from registry.provenance.verify import VerifyOptions, read_model, verify_model
from registry.storage.blockstore import BlockStore
from registry.storage.fetch import Sources
from registry.storage.unixfs import add_file
from tests.chain_worlds import fresh_binding, rolled_back
from tests.compose_support import copy_model_sharded
from tests.provenance_support import (
    QUERY3,
    MODEL,
    WEIGHTS,
    changed_weights,
    compose,
    lora_adapter,
    lora_doc,
    publish_files,
    publish_real_model,
    read_tensors,
    recipe_doc,
    rewrite,
    shapes_of,
    three_layer_doc,
)

@pytest.fixture(scope="module")
def store(real_model_module):
    return real_model_module[1]


@pytest.fixture(scope="module")
def world(real_model_module):
    """A chain where dev account 0 ran publish-model on the real model."""
    registry, _, published = real_model_module
    return registry, published


@pytest.fixture
def fresh(world):
    """The chain of ``world`` for a test that publishes more or yanks: a fresh binding of its
    registry, and the chain rolled back to just after publish-model when the test ends."""
    registry, published = world
    with rolled_back(registry.chain):
        yield fresh_binding(registry), published


def verify(registry, store, path, **options):
    return verify_model(path, registry.with_account(None), Sources(store), VerifyOptions(**options))


def changed_copy(tmp_path: Path, edit) -> Path:
    return changed_weights(tmp_path / "model.safetensors", edit)


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
    assert {str(a.record_id) for a in lic.attribution} == {published.composition, *published.records.values()}


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
    later = compose(second, store, published.recipe)
    report = verify(registry, store, WEIGHTS)
    assert [c.record_id for c in report.claims] == [published.composition, later]
    assert [c.record.publisher for c in report.claims] == [published.publisher, second.account.address]
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
    later = compose(registry.with_account(registry.chain.dev_accounts[1]), store, published.recipe)
    registry.yank(published.composition)
    report = verify(registry, store, WEIGHTS)
    assert report.exit_code == 0 and report.accepted.record_id == later
    assert report.claims[0].yanked


def test_effective_license_is_the_most_restrictive_across_publishers(fresh, store, tmp_path):
    registry, published = fresh
    split = split_model(MODEL, tmp_path / "split")
    pooler = next(e for e in split.elements if e.name == "pooler")
    other = registry.with_account(registry.chain.dev_accounts[1])
    [nc_pooler] = publish_files(other, store, [split.out_dir / pooler.path], license="CC-BY-NC-4.0")
    doc = recipe_doc(published)
    doc["inputs"]["pooler"]["record"] = nc_pooler
    composer = registry.with_account(registry.chain.dev_accounts[2])
    composition = compose(composer, store, doc, license="CC-BY-NC-4.0")  # an NC parent keeps it non-commercial

    report = verify(registry, store, WEIGHTS, trust=(composer.account.address,))
    assert report.exit_code == 0 and report.accepted.record_id == composition
    lic = report.effective_license
    assert not lic.commercial_use and lic.derivatives and lic.no_commercial_use == (composition, nc_pooler)
    assert lic.expression == "CC-BY-NC-4.0 AND Apache-2.0"
    assert {a.publisher for a in lic.attribution} == {a.address for a in registry.chain.dev_accounts[:3]}
    assert report.accepted.nodes[nc_pooler].license.spdx_id == "CC-BY-NC-4.0"


def test_a_publisher_relicensing_their_own_non_commercial_element_frees_their_composition(fresh, store, tmp_path):
    # The publisher of the model re-publishes its pooler under CC-BY-NC-4.0, then composes the model
    # from it under Apache-2.0: their own work, theirs to re-license (docs/contract.md), so the
    # composition's Apache-2.0 terms govern and the model may be used commercially.
    registry, published = fresh
    pooler = next(e for e in split_model(MODEL, tmp_path / "split").elements if e.name == "pooler")
    [nc_pooler] = publish_files(registry, store, [tmp_path / "split" / pooler.path], license="CC-BY-NC-4.0")
    doc = recipe_doc(published)
    doc["inputs"]["pooler"]["record"] = nc_pooler
    relicensed = compose(registry, store, doc, license="Apache-2.0")

    report = verify(registry, store, WEIGHTS, claim=relicensed)
    assert report.exit_code == 0 and report.accepted.record_id == relicensed
    lic = report.effective_license
    assert lic.commercial_use and lic.no_commercial_use == () and lic.expression == "Apache-2.0"
    assert lic.relicensed == (nc_pooler,) and nc_pooler in report.accepted.nodes


def test_an_input_of_another_publisher_keeps_its_non_commercial_terms_under_a_permissive_composition(fresh, store, tmp_path):
    # Licence laundering: Mallory's Apache-2.0 composition takes Alice's non-commercial pooler as an
    # input without naming it as a parent on chain (so the contract never saw the link). Alice's
    # terms still reach the model.
    registry, published = fresh
    pooler = next(e for e in split_model(MODEL, tmp_path / "split").elements if e.name == "pooler")
    alice, mallory = (registry.with_account(a) for a in registry.chain.dev_accounts[1:3])
    [alice_pooler] = publish_files(alice, store, [tmp_path / "split" / pooler.path], license="CC-BY-NC-4.0")
    doc = recipe_doc(published)
    doc["inputs"]["pooler"]["record"] = alice_pooler
    recipe = parse_recipe(doc)
    cid = store_document(recipe.canonical_json(), store)
    declared = tuple(sorted({ref.record for name, ref in recipe.inputs.items() if name != "pooler"}))
    [laundered] = mallory.publish_batch([RecordInput(str(content_id(WEIGHTS)), str(cid), 3, Kind.COMPOSITION, declared)])

    report = verify(registry, store, WEIGHTS, claim="0x" + laundered.hex())
    check = next(c for c in report.claims if c.record_id == "0x" + laundered.hex())
    lic = check.effective_license
    assert not lic.commercial_use and lic.no_commercial_use == (alice_pooler,) and lic.relicensed == ()
    assert "CC-BY-NC-4.0" in lic.licenses


def test_a_restriction_carried_through_the_publishers_own_input_is_a_licence_violation(fresh, store, tmp_path):
    # Alice's non-commercial pooler; Mallory's non-commercial copy of it (allowed: it stays
    # non-commercial); then Mallory's Apache-2.0 composition that takes her copy as an input without
    # naming it as a parent on chain (so the contract never saw that link). The exemption covers only
    # Mallory's own terms: the restriction her copy inherited from Alice binds the composition.
    registry, published = fresh
    pooler = next(e for e in split_model(MODEL, tmp_path / "split").elements if e.name == "pooler")
    pooler_file = tmp_path / "split" / pooler.path
    alice, mallory = (registry.with_account(a) for a in registry.chain.dev_accounts[1:3])
    [alice_pooler] = publish_files(alice, store, [pooler_file], license="CC-BY-NC-4.0")
    copy = publish_elements(mallory, [pooler_file], store, license="CC-BY-NC-4.0", parents=[alice_pooler]).results[0]
    mallory_pooler = "0x" + copy.claim.record_id.hex()
    assert registry.record(mallory_pooler).inherited == INHERITS_NON_COMMERCIAL
    doc = recipe_doc(published)
    doc["inputs"]["pooler"]["record"] = mallory_pooler
    recipe = parse_recipe(doc)
    cid = store_document(recipe.canonical_json(), store)
    declared = tuple(sorted({ref.record for name, ref in recipe.inputs.items() if name != "pooler"}))
    [laundered] = mallory.publish_batch([RecordInput(str(content_id(WEIGHTS)), str(cid), 3, Kind.COMPOSITION, declared)])

    report = verify(registry, store, WEIGHTS, trust=(mallory.account.address,))
    check = next(c for c in report.claims if c.record_id == "0x" + laundered.hex())
    assert any("inherits a non-commercial restriction" in p and mallory_pooler in p for p in check.license_violations)
    assert report.verdict == "license-violation" and report.exit_code == 1


def publish_raw_composition(registry: Registry, store: BlockStore, recipe, content_id: str) -> str:
    """A hostile publisher: a composition record sent without the client's checks."""
    cid = store_document(recipe.canonical_json(), store)
    parents = tuple(sorted({ref.record for ref in recipe.inputs.values()}))
    [rid] = registry.publish_batch([RecordInput(content_id, str(cid), 3, Kind.COMPOSITION, parents)])
    return "0x" + rid.hex()


def test_a_composition_whose_steps_do_not_build_its_claim_is_refused(fresh, store):
    registry, published = fresh
    doc = recipe_doc(published)
    doc["steps"] = [s for s in doc["steps"] if s["from"] != ["pooler"]]  # drops the pooler, keeps the output table
    doc["inputs"].pop("pooler")
    liar = parse_recipe(doc)
    forger = registry.with_account(registry.chain.dev_accounts[3])
    forged = publish_raw_composition(forger, store, liar, str(content_id(WEIGHTS)))
    report = verify(registry, store, WEIGHTS)
    assert report.exit_code == 0 and report.accepted.record_id == published.composition
    lie = next(c for c in report.claims if c.record_id == forged)
    assert lie.status == "invalid" and any("inconsistent" in p for p in lie.problems)
    with_trust = verify(registry, store, WEIGHTS, trust=(forger.account.address,))
    assert with_trust.exit_code == 1 and with_trust.verdict == "untrusted"
    assert any(forged in reason and "(invalid)" in reason for reason in with_trust.reasons)


def test_the_whole_model_published_as_one_element_verifies_as_an_element_claim(memory_registry, store):
    registry = memory_registry
    [rid] = publish_files(registry, store, [WEIGHTS])
    report = verify(registry, store, WEIGHTS)
    assert report.exit_code == 0 and report.accepted.kind == "element" and report.accepted.record_id == rid
    assert report.accepted.counts() == {"match": 104}


# ------------------------------------------------------------------------------ variants


def test_the_three_layer_variant_verifies_as_its_composition(fresh, store, tmp_path):
    registry, published = fresh
    out = tmp_path / "small"
    composition = compose(registry, store, three_layer_doc(published), out=out)
    report = verify(registry, store, out)
    assert report.exit_code == 0 and report.accepted.record_id == composition
    tensors = {t.name: t for t in report.accepted.tensors}
    assert len(tensors) == 6 + 2 + 3 * 16 and all(t.status == "match" for t in tensors.values())
    moved = tensors["encoder.layer.2.attention.self.query.weight"].sources[0]
    assert (moved.input, moved.tensor) == ("encoder.layer.5", "encoder.layer.5.attention.self.query.weight")
    config = next(f for f in report.files if f.path == "config.json")
    assert config.status == "match" and config.expected != published.recipe.inputs["config.json"].content_id  # patched


def test_the_full_model_checked_against_the_three_layer_composition_reports_the_difference(fresh, store):
    registry, published = fresh
    composition = compose(registry, store, three_layer_doc(published))
    report = verify(registry, store, WEIGHTS, claim=composition)
    assert report.exit_code == 1 and report.verdict == "mismatch"
    assert report.attribution.reference.record_id == composition
    statuses = {t.name: t.status for t in report.claims[0].tensors}
    assert statuses["encoder.layer.5.attention.self.query.weight"] == "extra"
    assert statuses["encoder.layer.1.attention.self.query.weight"] == "differs"  # layer 2 of the original is layer 1 here
    with pytest.raises(NotFoundError, match="neither a record nor"):
        verify(registry, store, WEIGHTS, claim="0x" + "ab" * 32)


def publish_lora(registry: Registry, store: BlockStore, published, tmp_path: Path) -> tuple[str, Path]:
    adapter = lora_adapter(tmp_path / "adapter.safetensors")
    [adapter_record] = publish_files(registry, store, [adapter], kind="adapter")
    out = tmp_path / "merged"
    composition = compose(registry, store, lora_doc(published, str(content_id(adapter)), adapter_record), out=out)
    return composition, out


def test_a_lora_merged_model_verifies_by_recomputing_the_merged_tensors(fresh, store, tmp_path):
    registry, published = fresh
    composition, out = publish_lora(registry, store, published, tmp_path)
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


def test_a_composition_whose_element_data_is_gone_is_undecided(memory_registry, tmp_path):
    registry = memory_registry
    own = BlockStore(tmp_path / "blocks")
    published = publish_real_model(registry, own)
    _, out = publish_lora(registry, own, published, tmp_path)
    data_cid = str(add_file(tmp_path / "adapter.safetensors"))
    assert own.delete(data_cid)  # the adapter's data is gone from every source
    report = verify_model(out, registry.with_account(None), Sources(own))
    assert report.exit_code == 2 and report.verdict == "unavailable"
    assert "cannot be fetched" in report.reasons[0] and data_cid in report.reasons[0]


def test_bad_paths_are_input_errors(world, store, tmp_path):
    registry, _ = world
    with pytest.raises(InputError, match="no such file"):
        verify(registry, store, tmp_path / "nothing")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(InputError):
        verify(registry, store, tmp_path / "notes.txt")


def test_copied_tensors_are_checked_from_manifests_without_any_element_data(world, store, tmp_path):
    registry, published = world
    documents_only = BlockStore(tmp_path / "documents")
    reader = registry.with_account(None)
    for record in reader.records([published.composition, *published.records.values()]):
        documents_only.put(record.cid, store.get(record.cid))  # manifests and the recipe: one block each
    report = verify_model(WEIGHTS, reader, Sources(documents_only))
    assert report.exit_code == 0 and report.accepted.counts() == {"match": 104}


def test_without_a_composition_tensors_are_attributed_to_the_elements(memory_registry, store, tmp_path):
    registry = memory_registry
    split = split_model(MODEL, tmp_path / "split")
    paths = [split.out_dir / e.path for e in split.elements if e.kind == "tensors"]
    records = dict(zip([p.name.removesuffix(".safetensors") for p in paths], publish_files(registry, store, paths)))

    def edit(tensors, shapes):
        tensors.pop("pooler.dense.bias")
        dtype, raw = tensors[QUERY3]
        tensors[QUERY3] = (dtype, raw[::-1].copy())

    report = verify(registry, store, changed_copy(tmp_path, edit))
    attribution = report.attribution
    assert report.exit_code == 1 and attribution.reference is None
    assert attribution.counts() == {"match": 102, "differs": 1, "missing": 1}
    [changed] = [t for t in attribution.tensors if t.status == "differs"]
    assert changed.name == QUERY3 and changed.sources[0].record_id == records["encoder.layer.3"]
    [missing] = attribution.missing
    assert missing.name == "pooler.dense.bias" and missing.sources[0].record_id == records["pooler"]


def test_a_corrupted_cached_element_file_is_fetched_again(fresh, store, tmp_path):
    from registry.provenance.verify import Verifier

    registry, published = fresh
    _, out = publish_lora(registry, store, published, tmp_path)
    data = tmp_path / "data"
    verifier = Verifier(registry.with_account(None), Sources(store), data_dir=data)
    try:
        assert verifier.verify(out).exit_code == 0
        adapter = min(data.iterdir(), key=lambda p: p.stat().st_size)  # beside the two base layers' data
        original = adapter.read_bytes()
        adapter.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))  # the last lora_B value
        again = Verifier(registry.with_account(None), Sources(store), data_dir=data)
        report = again.verify(out)
        again.close()
        assert report.exit_code == 0 and report.accepted.counts() == {"match": 100, "recomputed": 4}
        assert adapter.read_bytes() == original  # exported again from the verified blocks
    finally:
        verifier.close()


def test_a_corrupted_cached_config_is_fetched_again(fresh, store, tmp_path):
    from registry.provenance.verify import Verifier

    registry, published = fresh
    out = tmp_path / "small"
    compose(registry, store, three_layer_doc(published), out=out)
    data = tmp_path / "data"
    first = Verifier(registry.with_account(None), Sources(store), data_dir=data)
    assert first.verify(out).exit_code == 0
    first.close()
    [config] = list(data.iterdir())  # only the patched config.json needed its bytes
    config.write_bytes(config.read_bytes().replace(b"384", b"385"))
    again = Verifier(registry.with_account(None), Sources(store), data_dir=data)
    assert again.verify(out).exit_code == 0
    again.close()


@pytest.mark.slow  # recomputes a DARE-TIES merge of the real model's layers; the LoRA test above covers recomputed tensors in the fast lane
def test_a_dare_ties_merge_verifies_by_recomputing_its_random_drops(fresh, store, tmp_path):
    registry, published = fresh
    layer = {n: v for n, v in safetensors.numpy.load_file(str(WEIGHTS)).items() if n.startswith("encoder.layer.3.")}
    rng = np.random.default_rng(11)
    tuned = {n: (v + rng.standard_normal(v.shape) * 0.01).astype(v.dtype) for n, v in layer.items()}
    safetensors.numpy.save_file(tuned, str(tmp_path / "tuned.safetensors"), metadata={"format": "pt"})
    [tuned_record] = publish_files(registry, store, [tmp_path / "tuned.safetensors"])
    doc = recipe_doc(published)
    doc.pop("output", None)
    doc["name"] = "minilm-dare"
    others = [n for n, i in doc["inputs"].items() if i["kind"] == "tensors" and n != "encoder.layer.3"]
    doc["inputs"]["tuned"] = {"content_id": str(content_id(tmp_path / "tuned.safetensors")), "record": tuned_record, "kind": "tensors"}
    doc["steps"] = [
        {"op": "take", "from": others},
        {"op": "dare_ties", "base": "encoder.layer.3", "sources": [{"from": "tuned", "weight": 1.0, "density": 0.5}], "seed": 5},
    ]
    out = tmp_path / "merged"
    composition = compose(registry, store, doc, out=out)
    report = verify(registry, store, out)
    assert report.exit_code == 0 and report.accepted.record_id == composition
    assert report.accepted.counts() == {"match": 104 - len(layer), "recomputed": len(layer)}

    # Another seed's drops are another model: the recomputation names the tensor that differs.
    doc["steps"][1]["seed"] = 6
    other = tmp_path / "other-seed"
    compose(registry, store, doc, out=other)
    bad = verify(registry, store, other / "model.safetensors", claim=composition)
    assert bad.exit_code == 1
    differs = sorted(t.name for t in bad.claims[0].tensors if t.status == "differs")
    assert differs and all(name.startswith("encoder.layer.3.") for name in differs)
    assert all("recomputation dare_ties(" in t.message for t in bad.claims[0].tensors if t.status == "differs")
