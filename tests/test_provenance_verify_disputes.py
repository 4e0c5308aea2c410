"""Copies under looser terms, on the in-process chain with the real all-MiniLM-L6-v2: Alice
publishes the model under CC-BY-NC-4.0, Mallory republishes the same content under MIT. Verify
refuses Mallory's claim (naming Alice's earlier one) unless the dispute is accepted, and then
applies Alice's terms; the effective licence, the BOM, the graph, the assembled
`elements-provenance.json` and tensor attribution all carry the earlier claim. Equal or stricter
later claims and a publisher re-claiming its own content are not disputed."""

from __future__ import annotations

import json

import pytest

from registry.compose.chain_source import assemble_composition
from registry.records.resolve import Resolver
from registry.errors import InputError
from registry.provenance.verify import Verifier, VerifyOptions, verify_model
from registry.storage.blockstore import BlockStore
from registry.storage.fetch import Sources
from tests.provenance_support import (
    QUERY3,
    MODEL,
    WEIGHTS,
    changed_weights,
    new_registry,
    compose,
    publish_files,
    publish_real_model,
    three_layer_doc,
)

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return BlockStore(tmp_path_factory.mktemp("blocks"))


@pytest.fixture(scope="module")
def copied(store):
    """Alice (dev account 0) runs publish-model under CC-BY-NC-4.0, then Mallory (account 1) under MIT."""
    alice = new_registry()
    mallory = alice.with_account(alice.chain.dev_accounts[1])
    return alice, publish_real_model(alice, store, "CC-BY-NC-4.0"), mallory, publish_real_model(mallory, store, "MIT")


def verify(registry, store, path, **options):
    return verify_model(path, registry.with_account(None), Sources(store), VerifyOptions(**options))


# ------------------------------------------------------------------------------ verify


def test_trusting_the_copier_fails_with_the_earlier_claim_named(copied, store):
    alice, a, mallory, m = copied
    report = verify(alice, store, WEIGHTS, trust=(m.publisher,))
    assert report.exit_code == 1 and report.verdict == "disputed" and report.accepted is None
    earlier = alice.records([a.composition])[0]
    reason = report.reasons[0]
    assert reason.startswith(f"claim {m.composition} by {m.publisher}: record {m.composition}")
    assert f"{a.publisher} claimed the same content earlier under stricter terms (record {a.composition}, " \
           f"block {earlier.block_number}, CC-BY-NC-4.0; MIT lifts non-commercial)" in reason
    assert f"--accept-disputed {a.composition}" in reason and "19 more disputed record(s)" in reason
    copy = next(c for c in report.claims if c.record_id == m.composition)
    assert copy.status == "verified" and copy.trusted
    assert {d.record_id: d.earlier_id for d in copy.disputes} == {
        m.composition: a.composition, **{m.records[name]: a.records[name] for name in a.records}}
    assert all(not d.accepted for d in copy.disputes)
    assert copy.effective_license.expression == "MIT AND CC-BY-NC-4.0" and not copy.effective_license.commercial_use


def test_accepting_every_dispute_verifies_with_alices_stricter_terms(copied, store):
    alice, a, mallory, m = copied
    report = verify(alice, store, WEIGHTS, trust=(m.publisher,), accept_disputed=("all",))
    assert report.exit_code == 0 and report.accepted.record_id == m.composition
    lic = report.effective_license
    assert not lic.commercial_use and lic.derivatives and lic.expression == "MIT AND CC-BY-NC-4.0"
    assert set(lic.earlier_claims) == {a.composition, *a.records.values()}
    assert set(lic.no_commercial_use) == set(lic.earlier_claims)
    assert {x.publisher for x in lic.attribution} == {a.publisher, m.publisher}
    assert "commercial use NOT allowed" in lic.summary()
    assert any(r.startswith("accepted although 20 records of its ancestry") and "(--accept-disputed)" in r
               for r in report.reasons)
    assert all(d.accepted_by == "option" for d in report.disputes) and len(report.disputes) == 20


def test_accepting_one_earlier_claim_leaves_the_others_disputed(copied, store):
    alice, a, mallory, m = copied
    report = verify(alice, store, WEIGHTS, trust=(m.publisher,), accept_disputed=(a.composition,))
    assert report.verdict == "disputed" and report.exit_code == 1
    copy = next(c for c in report.claims if c.record_id == m.composition)
    assert [d.record_id for d in copy.disputes if d.accepted] == [m.composition]
    every = verify(alice, store, WEIGHTS, trust=(m.publisher,), accept_disputed=(a.composition, *a.records.values()))
    assert every.exit_code == 0 and every.accepted.record_id == m.composition


def test_an_acceptance_that_names_no_earlier_claim_is_reported_and_a_bad_one_refused(copied, store):
    alice, a, mallory, m = copied
    report = verify(alice, store, WEIGHTS, accept_disputed=(m.composition,))  # the copy, not the earlier claim
    assert report.exit_code == 0 and report.accepted.record_id == a.composition
    assert any(f"--accept-disputed {m.composition} names no earlier claim" in r for r in report.reasons)
    with pytest.raises(InputError, match="neither a record id"):
        verify(alice, store, WEIGHTS, accept_disputed=("alice",))


def test_trusting_the_earlier_publisher_accepts_its_disputes(copied, store):
    alice, a, mallory, m = copied
    report = verify(alice, store, WEIGHTS, trust=(m.publisher, a.publisher), claim=m.composition)
    assert report.exit_code == 0 and report.accepted.record_id == m.composition
    assert {d.accepted_by for d in report.accepted.disputes} == {"trust"}
    assert all(d.earlier_trusted for d in report.accepted.disputes)
    assert not report.effective_license.commercial_use
    assert any("(its publisher is trusted)" in r for r in report.reasons)


def test_without_a_trust_set_the_earlier_claim_is_accepted_and_the_copy_is_marked(copied, store):
    alice, a, mallory, m = copied
    report = verify(alice, store, WEIGHTS)
    assert report.exit_code == 0 and report.accepted.record_id == a.composition and report.accepted.disputes == []
    assert report.effective_license.expression == "CC-BY-NC-4.0"
    data = json.loads(json.dumps(report.to_json()))
    original, copy = data["claims"]
    assert (original["record_id"], original["disputed"], original["disputes"]) == (a.composition, False, [])
    assert copy["disputed"] is True and len(copy["disputes"]) == 20
    own = next(d for d in copy["disputes"] if d["record_id"] == m.composition)
    assert own["earlier"]["record_id"] == a.composition and own["earlier"]["publisher"] == a.publisher
    assert own["earlier"]["license"]["spdx_id"] == "CC-BY-NC-4.0" and own["restrictions_lifted"] == ["non-commercial"]
    assert own["accepted"] is False and own["earlier"]["priority_block"] == own["earlier"]["block"]
    node = copy["ancestry"]["records"][m.records["encoder.layer.3"]]
    assert node["disputes"][0]["earlier"]["record_id"] == a.records["encoder.layer.3"]
    assert node["disputes"][0]["name"] == "encoder.layer.3"
    assert data["policy"]["accept_disputed"] == [] and data["disputes"] == []


def test_the_report_json_lists_the_disputes_of_a_refused_claim(copied, store):
    alice, a, mallory, m = copied
    data = verify(alice, store, WEIGHTS, trust=(m.publisher,), accept_disputed=("all",)).to_json()
    assert data["policy"]["accept_disputed"] == ["all"]
    assert len(data["disputes"]) == 20 and all(d["accepted_by"] == "option" for d in data["disputes"])
    assert set(data["effective_license"]["earlier_claims"]) == {a.composition, *a.records.values()}


# ------------------------------------------------------------------------------ the BOM


@pytest.mark.slow  # CycloneDX's strict validation of the real model's BOM: an Earley parse per IRI, about a second each here
def test_the_bom_records_the_earlier_claims_and_their_terms(copied, store):
    # Imported here: the BOM module loads CycloneDX's validator, whose jsonschema builds its URI
    # grammars on import (seconds), which every xdist worker would pay when it collects this file.
    from registry.provenance.bom import bom_json

    alice, a, mallory, m = copied
    document = json.loads(bom_json(verify(alice, store, WEIGHTS, trust=(m.publisher,), accept_disputed=("all",))))
    components = {c["bom-ref"]: c for c in document["components"]}
    props = lambda c: {p["name"]: p["value"] for p in c.get("properties", [])}  # noqa: E731
    earlier = components[f"record:{a.composition}"]
    assert props(earlier)["elements:role"] == "earlier-claim" and props(earlier)["elements:disputes"] == m.composition
    assert earlier["publisher"] == a.publisher and earlier["licenses"] == [{"expression": "CC-BY-NC-4.0"}]
    layer = components[f"record:{m.records['encoder.layer.3']}"]
    assert props(layer)["elements:disputed_by"] == a.records["encoder.layer.3"]
    assert props(layer)["elements:dispute_accepted"] == "true"
    model = document["metadata"]["component"]
    assert model["licenses"] == [{"expression": "MIT AND CC-BY-NC-4.0"}]
    assert props(model)["elements:disputed"] == "true" and props(model)["elements:commercial_use"] == "false"
    assert set(props(model)["elements:earlier_claims"].split(", ")) == {a.composition, *a.records.values()}
    forked = [x for x in model["pedigree"]["ancestors"] if props(x).get("elements:role") == "earlier-claim"]
    assert [props(x)["elements:record_id"] for x in forked] == [a.composition]


# ------------------------------------------------------------------------------ resolve and assemble


def test_the_graph_of_the_copy_carries_every_dispute_and_the_original_none(copied, store):
    alice, a, mallory, m = copied
    resolver = Resolver(alice.with_account(None), Sources(store))
    graph = resolver.graph(m.composition)
    graph.add_disputes(resolver.disputes(graph.records()))
    data = graph.to_json()
    assert len(data["disputes"]) == 20
    assert {d["name"] for d in data["disputes"]} == {None, *a.records}  # the root has no input name
    root = next(r for r in data["records"] if r["record_id"] == m.composition)
    assert root["disputes"][0]["earlier"]["record_id"] == a.composition and root["priority_block"] == root["block_number"]
    original = resolver.graph(a.composition)
    original.add_disputes(resolver.disputes(original.records()))
    assert original.disputes == []


def test_assemble_writes_the_earlier_claims_into_the_provenance_file(copied, store, tmp_path):
    alice, a, mallory, m = copied
    resolver = Resolver(alice.with_account(None), Sources(store))
    outcome = assemble_composition(resolver, m.composition, tmp_path / "out")
    provenance = json.loads((tmp_path / "out" / "elements-provenance.json").read_text())
    assert provenance["record"] == m.composition and provenance["license"] == "MIT" and provenance["disputed"] is True
    by_record = {d["record_id"]: d for d in provenance["disputes"]}
    assert set(by_record) == {m.composition, *m.records.values()}
    layer = by_record[m.records["encoder.layer.3"]]
    assert layer["name"] == "encoder.layer.3" and layer["earlier"]["record_id"] == a.records["encoder.layer.3"]
    assert layer["earlier"]["publisher"] == a.publisher and layer["earlier"]["license"]["spdx_id"] == "CC-BY-NC-4.0"
    assert outcome.to_json()["disputes"] == provenance["disputes"]
    clean = assemble_composition(resolver, a.composition, tmp_path / "original")
    assert json.loads((tmp_path / "original" / "elements-provenance.json").read_text())["disputes"] == []
    assert clean.disputes == []


# ------------------------------------------------------------------------------ elements in compositions


def test_a_new_composition_of_copied_elements_is_disputed_element_by_element(copied, store, tmp_path):
    alice, a, mallory, m = copied
    out = tmp_path / "small"
    composition = compose(mallory, store, three_layer_doc(m), license="MIT", out=out)
    report = verify(alice, store, out, trust=(m.publisher,))
    assert report.verdict == "disputed" and report.exit_code == 1
    [claim] = report.claims
    assert claim.record_id == composition and claim.nodes[composition].disputes == []  # the composition itself is new
    disputed = {d.name: d for d in claim.disputes}
    assert {"encoder.layer.0", "encoder.layer.2", "encoder.layer.5", "embeddings", "config.json"} <= set(disputed)
    assert "encoder.layer.1" not in disputed  # not an input of the variant
    layer = disputed["encoder.layer.2"]
    assert (layer.record_id, layer.earlier_id) == (m.records["encoder.layer.2"], a.records["encoder.layer.2"])
    assert any(f"record {rid}" in report.reasons[0] for rid in m.records.values()) and a.publisher in report.reasons[0]

    accepted = verify(alice, store, out, trust=(m.publisher,), accept_disputed=("all",))
    assert accepted.exit_code == 0 and not accepted.effective_license.commercial_use
    assert set(accepted.effective_license.earlier_claims) == {d.earlier_id for d in claim.disputes}


def test_attribution_lists_every_claim_of_each_element_and_marks_the_copies(copied, store, tmp_path):
    alice, a, mallory, m = copied

    def flip(tensors, shapes):
        dtype, raw = tensors[QUERY3]
        raw = raw.copy()
        raw[7] ^= 0x01
        tensors[QUERY3] = (dtype, raw)

    report = verify(alice, store, changed_weights(tmp_path / "model.safetensors", flip))
    assert report.verdict == "unknown" and report.exit_code == 1
    key = next(t for t in report.attribution.tensors if t.name == "encoder.layer.3.attention.self.key.weight")
    by_record = {s.record_id: s for s in key.sources}
    assert {a.records["encoder.layer.3"], m.records["encoder.layer.3"]} <= set(by_record)
    assert by_record[a.records["encoder.layer.3"]].disputes == ()
    [dispute] = by_record[m.records["encoder.layer.3"]].disputes
    assert dispute.earlier_id == a.records["encoder.layer.3"]
    data = key.to_json()
    assert any(s["disputes"] and s["disputes"][0]["earlier"]["record_id"] == a.records["encoder.layer.3"] for s in data["sources"])


def test_attribution_without_the_index_still_lists_every_claim(copied, store, tmp_path):
    alice, a, mallory, m = copied
    path = changed_weights(tmp_path / "model.safetensors", lambda t, s: t.pop("pooler.dense.bias"))
    verifier = Verifier(alice.with_account(None), Sources(store))  # no attribution index opened
    try:
        report = verifier.verify(path, VerifyOptions(claim=a.composition))
    finally:
        verifier.close()
    assert report.attribution.reference.record_id == a.composition
    attributed = next(t for t in report.attribution.tensors if t.name == "pooler.dense.weight")
    sources = {s.record_id: s for s in attributed.sources}
    assert set(sources) == {a.records["pooler"], m.records["pooler"]}
    assert sources[m.records["pooler"]].disputes[0].earlier_id == a.records["pooler"]


# ------------------------------------------------------------------------------ the leaf, and what is not disputed


def test_the_whole_model_republished_as_one_leaf_is_disputed_by_the_earlier_composition(store):
    alice = new_registry()
    a = publish_real_model(alice, store, "CC-BY-NC-4.0")
    mallory = alice.with_account(alice.chain.dev_accounts[1])
    [leaf] = publish_files(mallory, store, [WEIGHTS], license="MIT")
    report = verify(alice, store, WEIGHTS, trust=(mallory.account.address,))
    assert report.exit_code == 1 and report.verdict == "disputed"
    copy = next(c for c in report.claims if c.record_id == leaf)
    assert copy.kind == "element" and copy.status == "verified"
    [dispute] = copy.disputes
    assert dispute.earlier_id == a.composition and dispute.dispute.earlier_terms.spdx_id == "CC-BY-NC-4.0"
    assert a.composition in report.reasons[0] and "CC-BY-NC-4.0" in report.reasons[0]


def test_later_claims_under_equal_or_stricter_terms_are_not_disputed(store):
    alice = new_registry()
    bob, carol = (alice.with_account(alice.chain.dev_accounts[i]) for i in (1, 2))
    [first] = publish_files(alice, store, [WEIGHTS], license="MIT")
    [equal] = publish_files(bob, store, [WEIGHTS], license="Apache-2.0")  # the same flags
    [stricter] = publish_files(carol, store, [WEIGHTS], license="CC-BY-NC-4.0")
    for who, rid in ((bob, equal), (carol, stricter), (alice, first)):
        report = verify(alice, store, WEIGHTS, trust=(who.account.address,))
        assert report.exit_code == 0 and report.accepted.record_id == rid
        assert all(c.disputes == [] for c in report.claims)
    assert not verify(alice, store, WEIGHTS, trust=(carol.account.address,)).effective_license.commercial_use


def test_a_publisher_re_claiming_its_own_content_under_looser_terms_is_not_disputed(store):
    alice = new_registry()
    [first] = publish_files(alice, store, [WEIGHTS], license="CC-BY-NC-4.0")
    [again] = publish_files(alice, store, [WEIGHTS], license="MIT")
    assert first != again
    report = verify(alice, store, WEIGHTS, claim=again, trust=(alice.account.address,))
    assert report.exit_code == 0 and report.accepted.record_id == again and report.accepted.disputes == []
    assert report.effective_license.commercial_use
    # Alice offered the content under MIT herself before Mallory's MIT claim: she has no dispute.
    mallory = alice.with_account(alice.chain.dev_accounts[1])
    [mirror] = publish_files(mallory, store, [MODEL / "model.safetensors"], license="MIT")
    mirrored = verify(alice, store, WEIGHTS, trust=(mallory.account.address,))
    assert mirrored.exit_code == 0 and mirrored.accepted.record_id == mirror and mirrored.accepted.disputes == []
