"""Verifying models built on compositions (registry.provenance.verify through
registry.compose.nested), on the real all-MiniLM-L6-v2 and the in-process chain: Carol's F16
model on Bob's three-layer variant of Alice's model verifies with the tree Carol -> Bob ->
Alice's elements and the licence of the whole ancestry; copies are traced to Alice's manifests
without data; a changed weight is attributed to Alice's element; a hostile nested composition
invalidates the claim built on it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from registry.compose.chain_source import assemble_composition
from registry.compose.tensor_plans import CompositionIntegrityError
from registry.records.documents import Documents
from registry.provenance.index import ElementIndex
from registry.provenance.report import render
from registry.provenance.verify import VerifyOptions, verify_model
from tests.nested_support import (
    CAROL_LICENSE,
    carol_doc,
    compose_as,
    hostile_variant_doc,
    publish_raw_composition,
)
from tests.provenance_support import read_tensors, rewrite, shapes_of
from tests.publish_support import funded_account

QUERY = "encoder.layer.{}.attention.self.query.weight"


@pytest.fixture(scope="module")
def story(nested_story):
    """The nested story as just published (tests/chain_worlds.py: published once per worker)."""
    return nested_story


@pytest.fixture(scope="module")
def carol_dir(story, tmp_path_factory):
    out = tmp_path_factory.mktemp("carol") / "carol"
    assemble_composition(story.resolver(), story.carol_model.record, out)
    return out


def verify(story, path, home: Path | None = None, **options):
    return verify_model(path, story.base, story.sources, VerifyOptions(**options), home=home)


def rendered(report) -> str:
    buffer = io.StringIO()
    render(report, Console(file=buffer, width=400, color_system=None))
    return buffer.getvalue()


def test_carols_model_verifies_with_a_tree_from_carol_through_bob_to_alices_elements(story, carol_dir, tmp_path):
    report = verify(story, carol_dir, tmp_path / "home")
    assert (report.verdict, report.exit_code) == ("verified", 0), report.reasons
    claim = report.accepted
    assert claim.record_id == story.carol_model.record and claim.kind == "composition"
    carol, bob = story.carol_model.record, story.bob_variant.record
    root = claim.nodes[carol]
    assert root.children == [bob]
    assert claim.nodes[bob].name == "bob" and claim.nodes[bob].role == "input" and claim.nodes[bob].kind == "composition"
    alice = story.published.records
    bob_inputs = {name for name in story.bob_variant.recipe.inputs}
    assert set(claim.nodes[bob].children) == {alice[name] for name in bob_inputs}
    assert claim.nodes[alice["encoder.layer.5"]].name == "encoder.layer.5"
    assert alice["encoder.layer.3"] not in claim.nodes  # Bob left it out: not Carol's ancestor
    text = rendered(report)
    lines = text.splitlines()
    carol_line = next(i for i, line in enumerate(lines) if "carol-layers-0-2-f16 composition" in line)
    bob_line = next(i for i, line in enumerate(lines) if "bob composition" in line)
    layer_line = next(i for i, line in enumerate(lines) if "encoder.layer.5 element" in line)
    assert carol_line < bob_line < layer_line
    assert lines[layer_line].index("encoder.layer.5") > lines[bob_line].index("bob")  # nested one level deeper
    # The tensors: every float one recomputed through Bob's recipe from Alice's data, the I64 one a copy.
    statuses = {t.name: t.status for t in claim.tensors}
    assert statuses.pop("embeddings.position_ids") == "match" and set(statuses.values()) == {"recomputed"}
    query = next(t for t in claim.tensors if t.name == QUERY.format(1))
    assert [(s.record_id, s.tensor, s.input) for s in query.sources] == [
        (alice["encoder.layer.5"], QUERY.format(5), "bob/encoder.layer.5")]
    assert {f.path: f.status for f in claim.files}["tokenizer.json"] == "match"


def test_the_effective_licence_covers_alice_bob_and_carol(story, carol_dir):
    licence = verify(story, carol_dir).effective_license
    assert set(licence.licenses) == {"Apache-2.0", "CC-BY-SA-4.0"} and licence.expression == "CC-BY-SA-4.0 AND Apache-2.0"
    assert licence.share_alike == ("CC-BY-SA-4.0",) and licence.commercial_use and licence.derivatives
    by = {a.publisher for a in licence.attribution}
    assert by == {story.alice.account.address, story.bob.account.address, story.carol.account.address}
    assert story.bob_variant.record in {str(a.record_id) for a in licence.attribution}


def test_copied_tensors_through_bob_are_traced_to_alices_manifests_without_downloading_data(story, tmp_path):
    copy = compose_as(story.carol, story.store, carol_doc(story.bob_variant, layers=(1, 2), dtype=None), CAROL_LICENSE)
    out = tmp_path / "copy"
    assemble_composition(story.resolver(), copy.record, out)
    home = tmp_path / "home"
    report = verify(story, out / "model.safetensors", home)
    assert report.verdict == "verified" and report.accepted.record_id == copy.record
    assert not (home / "cache" / "data").exists()  # every tensor checked against a manifest digest
    assert {t.status for t in report.accepted.tensors} == {"match"}
    query = next(t for t in report.accepted.tensors if t.name == QUERY.format(0))  # Carol's 0 = Bob's 1 = Alice's 2
    [source] = query.sources
    assert (source.record_id, source.tensor, source.input, source.publisher) == (
        story.published.records["encoder.layer.2"], QUERY.format(2), "bob/encoder.layer.2", story.alice.account.address)


def test_one_changed_weight_in_carols_model_is_attributed_to_alices_element(story, carol_dir, tmp_path):
    tensors, shapes = read_tensors(carol_dir / "model.safetensors"), shapes_of(carol_dir / "model.safetensors")
    name = QUERY.format(1)
    dtype, raw = tensors[name]
    raw = raw.copy()
    raw[10] ^= 0x01
    tensors[name] = (dtype, raw)
    path = rewrite(tmp_path / "model.safetensors", tensors, shapes, {"format": "pt"})
    report = verify(story, path)
    assert (report.verdict, report.exit_code) == ("unknown", 1)
    attribution = report.attribution
    assert attribution.reference.record_id == story.carol_model.record  # the closest composition
    changed = [t for t in attribution.tensors if t.status != "match"]
    assert [t.name for t in changed] == [name] and changed[0].status == "differs"
    [source] = changed[0].sources
    assert source.record_id == story.published.records["encoder.layer.5"] and source.tensor == QUERY.format(5)
    assert source.publisher == story.alice.account.address
    assert "cast(bob/encoder.layer.5:" + QUERY.format(5) in changed[0].message
    assert f"{name} differs from its recomputation" in rendered(report)


def test_a_claim_on_a_nested_composition_that_does_not_build_its_claim_is_invalid(story, carol_dir):
    mallory = story.base.with_account(funded_account(story.base.chain))
    forged = publish_raw_composition(mallory, story.store, hostile_variant_doc(story), story.bob_variant.content_id)
    document = {**carol_doc(story.bob_variant), "name": "carol-copycat",
                "inputs": {"bob": {"kind": "composition", "content_id": story.bob_variant.content_id, "record": forged}}}
    table = story.carol_model.recipe.output
    claim = publish_raw_composition(mallory, story.store, {**document, "output": table.to_dict()}, story.carol_model.content_id)
    report = verify(story, carol_dir)
    assert report.verdict == "verified" and report.accepted.record_id == story.carol_model.record  # Carol's is earlier
    copycat = next(c for c in report.claims if c.record_id == claim)
    assert copycat.status == "invalid"
    assert any(f"composition input 'bob' (record {forged}) does not build the content id it claims" in p for p in copycat.problems)
    named = verify(story, carol_dir, claim=claim)
    assert named.verdict == "mismatch" and named.exit_code == 1


def test_the_attribution_index_knows_the_output_tables_of_nested_compositions(story, carol_dir):
    documents = Documents(story.sources)
    index = ElementIndex(story.base, documents, None)
    try:
        index.update()
        digest = read_tensors_entry(carol_dir, QUERY.format(1))
        hits = index.by_digest([digest])[digest]
        assert {(h.role, "0x" + h.record_id.hex()) for h in hits} >= {("output", story.carol_model.record)}
        assert index.closest_compositions(_entries(carol_dir))[0] == bytes.fromhex(story.carol_model.record[2:])
    finally:
        index.close()
        documents.close()


def read_tensors_entry(directory: Path, name: str) -> bytes:
    return next(bytes(e.digest) for e in _entries(directory) if e.name == name)


def _entries(directory: Path):
    from registry.formats.content_id import manifest_of

    return manifest_of(directory / "model.safetensors").entries


def dave_doc(carol_input: dict) -> dict:
    return {"format": "elements.recipe/v1", "name": "dave", "inputs": {"carol": carol_input},
            "steps": [{"op": "take", "from": "carol", "exclude": ["encoder.layer.1.*"]}]}


def test_a_model_three_compositions_deep_verifies_with_derived_tensors_recomputed_through_them(story, tmp_path):
    dave = story.base.with_account(funded_account(story.base.chain))
    composed = compose_as(dave, story.store, dave_doc({"kind": "composition", "content_id": story.carol_model.content_id,
                                                       "record": story.carol_model.record}), CAROL_LICENSE)
    out = tmp_path / "dave"
    assemble_composition(story.resolver(), composed.record, out)
    report = verify(story, out / "model.safetensors")
    assert report.verdict == "verified", report.reasons
    nodes = report.accepted.nodes
    path = [composed.record, story.carol_model.record, story.bob_variant.record, story.published.records["encoder.layer.0"]]
    assert all(child in nodes[parent].children for parent, child in zip(path, path[1:]))
    assert [nodes[r].name for r in path[1:]] == ["carol", "bob", "encoder.layer.0"]
    statuses = {t.name: t.status for t in report.accepted.tensors}
    assert statuses.pop("embeddings.position_ids") == "match" and set(statuses.values()) == {"recomputed"}
    query = next(t for t in report.accepted.tensors if t.name == QUERY.format(0))
    assert "tensor 'encoder.layer.0.attention.self.query.weight' of composition input 'carol'" in query.how
    assert [s.input for s in query.sources] == ["carol/bob/encoder.layer.0"]


def test_a_nested_table_that_lies_about_a_derived_tensor_is_refused_by_assemble_and_invalid_in_verify(story, tmp_path):
    from dataclasses import replace

    from registry.digest import parse_bytes32
    from registry.formats.content_id import Manifest, TensorEntry

    mallory = story.base.with_account(funded_account(story.base.chain))
    honest = story.carol_model.recipe
    query, key = QUERY.format(0), QUERY.format(0).replace("query", "key")
    digests = {t.name: t.digest for t in honest.output.tensors}
    rows = tuple(replace(t, digest=digests[key] if t.name == query else digests[query] if t.name == key else t.digest)
                 for t in honest.output.tensors)
    forged_id = str(Manifest.for_tensors(TensorEntry(t.name, t.dtype, t.shape, parse_bytes32(t.digest), 0) for t in rows).content_id)
    forged = publish_raw_composition(mallory, story.store, honest.with_output(replace(honest.output, tensors=rows, content_id=forged_id)),
                                     forged_id)
    # Dave's honest model, and Mallory's claim of it over the forged composition.
    dave = story.base.with_account(funded_account(story.base.chain))
    composed = compose_as(dave, story.store, dave_doc({"kind": "composition", "content_id": story.carol_model.content_id,
                                                       "record": story.carol_model.record}), CAROL_LICENSE)
    copycat_doc = {**dave_doc({"kind": "composition", "content_id": forged_id, "record": forged}),
                   "output": composed.recipe.output.to_dict()}
    copycat = publish_raw_composition(mallory, story.store, copycat_doc, composed.content_id)
    out = tmp_path / "dave"
    assemble_composition(story.resolver(), composed.record, out)
    report = verify(story, out / "model.safetensors", claim=copycat)
    assert (report.verdict, report.exit_code) == ("mismatch", 1)
    [check] = report.claims
    assert check.status == "invalid"
    assert any(f"tensor '{query}' of composition input 'carol' (record {forged}) is 0x" in p and "does not build what it claims" in p
               for p in check.problems), check.problems
    with pytest.raises(CompositionIntegrityError, match=f"composition input 'carol' \\(record {forged}\\) does not build the content id"):
        assemble_composition(story.resolver(), copycat, tmp_path / "copycat")
    assert not (tmp_path / "copycat").exists()
