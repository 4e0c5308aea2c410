"""Publishing element files (registry.publish.prepare, claims, plan, send, signed) with the real all-MiniLM-L6-v2, on the
in-process chain and on a real anvil."""

from __future__ import annotations

import json

import pytest
from eth_account import Account

from tests.publish_support import MODEL, funded_account, raw_tensors, registry_for, write_raw_safetensors
from registry.chain.errors import (
    CommercialUseNotAllowedError,
    DerivativesNotAllowedError,
    InsufficientFundsError,
    UnknownParentError,
)
from registry.chain.registry import Kind
from registry.formats.content_id import Manifest, content_id, file_content_id
from registry.publish.claims import UnknownLicenseNameError, element_claim
from registry.publish.prepare import prepare_element
from registry.publish.send import publish_claims, publish_elements
from registry.publish.signed import load_signed, relay_signed, sign_claims, write_signed
from registry.records.resolve import Resolver
from registry.formats.safetensors import SafetensorsError
from registry.formats.split import split_model
from registry.errors import InputError, UnsafeFileError
from registry.storage.blockstore import BlockStore
from registry.storage.fetch import Sources


@pytest.fixture(scope="module")
def minilm_split(tmp_path_factory):
    """all-MiniLM-L6-v2 split by layer: 8 tensor elements and 11 files."""
    return split_model(MODEL, tmp_path_factory.mktemp("split") / "minilm")


@pytest.fixture
def registry(chain_backend, request):
    anvil_registry = request.getfixturevalue("anvil_registry") if chain_backend == "anvil" else None
    memory_registry = request.getfixturevalue("memory_registry") if chain_backend == "memory" else None
    return registry_for(chain_backend, anvil_registry, memory_registry)


@pytest.fixture
def store(tmp_path):
    return BlockStore(tmp_path / "blocks")


def element_paths(split):
    return [split.out_dir / e.path for e in split.elements]


def test_publish_stores_manifests_and_data_and_claims_every_element(registry, store, minilm_split, tmp_path):
    report = publish_elements(registry, element_paths(minilm_split), store, license="Apache-2.0")

    assert len(report.published) == len(minilm_split.elements) == 19
    assert len(report.transactions) == 1 and report.transactions[0].created == 19
    records = registry.records([r.claim.record_id for r in report.results])
    for result, record, element in zip(report.results, records, minilm_split.elements):
        assert record is not None and record.publisher == registry.account.address
        assert "0x" + record.content_id.hex() == element.content_id
        assert record.kind == (Kind.ELEMENT if element.kind == "tensors" else Kind.FILE)
        assert record.license_id == 3  # Apache-2.0
        # The record's CID is the canonical manifest's; the manifest names the data's CID.
        manifest_bytes = b"".join(store.cat(record.cid))
        manifest = Manifest.from_json(manifest_bytes, require_canonical=True)
        assert manifest.content_id == record.content_id
        assert manifest.data["cid"] == result.claim.data_cid
        # Fetched back from the store, the element verifies against its content id.
        fetched = tmp_path / ("fetched-" + manifest.data["name"])
        store.export_file(manifest.data["cid"], fetched)
        assert fetched.read_bytes() == (minilm_split.out_dir / element.path).read_bytes()
        derived = content_id(fetched) if element.kind == "tensors" else file_content_id(fetched)
        assert derived == record.content_id


def test_a_rerun_publishes_nothing_new_and_reports_what_is_there(registry, store, minilm_split):
    paths = element_paths(minilm_split)[:5]
    first = publish_elements(registry, paths, store, license="MIT")
    again = publish_elements(registry, paths, store, license="MIT")

    assert len(first.published) == 5
    assert again.published == [] and len(again.present) == 5 and again.transactions == []
    assert [r.claim.record_id for r in again.results] == [r.claim.record_id for r in first.results]


def test_dry_run_estimates_gas_and_cost_and_stores_and_sends_nothing(registry, store, minilm_split):
    paths = element_paths(minilm_split)
    before = registry.chain.block_number()
    plan = publish_elements(registry, paths, store, license="Apache-2.0", dry_run=True)

    assert registry.chain.block_number() == before
    assert not any(store.root.rglob("*")) if store.root.exists() else True
    assert {r.status for r in plan.results} == {"planned"}
    assert plan.estimate.gas > 19 * 21_000 // 19 and plan.estimate.transactions == 1
    assert plan.estimate.cost > 0 and plan.estimate.max_cost >= plan.estimate.cost
    sent = publish_elements(registry, paths, store, license="Apache-2.0")
    assert [r.claim.record_id for r in sent.results] == [r.claim.record_id for r in plan.results]
    assert abs(sent.transactions[0].gas_used - plan.estimate.gas) < plan.estimate.gas * 0.2


def test_reserialized_element_keeps_its_content_id_and_every_claim_is_found(registry, store, minilm_split, tmp_path):
    layer = minilm_split.out_dir / "elements" / "encoder.layer.3.safetensors"
    tensors = raw_tensors(layer)
    # Another tensor order, other metadata, extra header padding: other bytes, the same content.
    shuffled = tmp_path / "layer3-reordered.safetensors"
    write_raw_safetensors(shuffled, [(n, *tensors[n]) for n in sorted(tensors, reverse=True)], {"format": "pt", "note": "re-saved"}, pad=64)
    assert shuffled.read_bytes() != layer.read_bytes()
    assert content_id(shuffled) == content_id(layer)

    first = publish_elements(registry, [layer], store, license="Apache-2.0")
    other = registry.with_account(funded_account(registry.chain))
    second = publish_elements(other, [shuffled], store, license="Apache-2.0")

    claims = Resolver(registry).claims(content_id(layer))
    ids = [c.record_id for c in claims]
    assert first.results[0].claim.record_id in ids and second.results[0].claim.record_id in ids
    assert ids.index(first.results[0].claim.record_id) < ids.index(second.results[0].claim.record_id)  # earliest first
    assert first.results[0].claim.record.cid != second.results[0].claim.record.cid  # other bytes, other manifest


def test_a_licence_that_breaks_a_parent_is_refused_before_anything_is_sent(registry, store, minilm_split):
    [base] = publish_elements(registry, [element_paths(minilm_split)[1]], store, license="CC-BY-NC-4.0").results
    child_account = funded_account(registry.chain)
    child = registry.with_account(child_account)
    block, nonce = registry.chain.block_number(), registry.chain.w3.eth.get_transaction_count(child_account.address)

    with pytest.raises(CommercialUseNotAllowedError) as info:
        publish_elements(child, [element_paths(minilm_split)[2]], store, license="Apache-2.0",
                         parents=["0x" + base.claim.record_id.hex()], resolver=Resolver(child))
    assert info.value.parent_id == "0x" + base.claim.record_id.hex()
    assert info.value.rule == "non-commercial"
    assert "0x" + base.claim.record_id.hex() in str(info.value) and "CC-BY-NC-4.0" in str(info.value)
    assert registry.chain.block_number() == block
    assert registry.chain.w3.eth.get_transaction_count(child_account.address) == nonce


def test_a_no_derivatives_parent_is_named(registry, store, minilm_split):
    [base] = publish_elements(registry, [element_paths(minilm_split)[1]], store, license="CC-BY-ND-4.0").results
    child = registry.with_account(funded_account(registry.chain))
    with pytest.raises(DerivativesNotAllowedError) as info:
        publish_elements(child, [element_paths(minilm_split)[4]], store, license="CC-BY-ND-4.0", parents=[base.claim.record_id])
    assert info.value.rule == "derivatives" and "0x" + base.claim.record_id.hex() in str(info.value)


def test_an_unknown_parent_is_refused(registry, store, minilm_split):
    with pytest.raises(UnknownParentError) as info:
        publish_elements(registry, [element_paths(minilm_split)[0]], store, license="MIT", parents=["0x" + "ab" * 32])
    assert info.value.values["parentId"] == "0x" + "ab" * 32


def test_an_unknown_licence_lists_the_known_ones_and_how_to_add_one(registry, store, minilm_split):
    with pytest.raises(UnknownLicenseNameError) as info:
        publish_elements(registry, [element_paths(minilm_split)[0]], store, license="WTFPL")
    message = str(info.value)
    assert "'WTFPL' is not registered" in message and "Apache-2.0" in message and "elements add-license WTFPL" in message


@pytest.mark.parametrize("chain_backend", ["memory"])
def test_files_that_are_not_safetensors_are_refused(registry, store, tmp_path):
    garbage = tmp_path / "broken.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(SafetensorsError):
        publish_elements(registry, [garbage], store, license="MIT")
    pickle = tmp_path / "pytorch_model.bin"
    pickle.write_bytes(b"\x80\x04not to be read")
    with pytest.raises(UnsafeFileError, match="never reads"):
        publish_elements(registry, [pickle], store, license="MIT")
    config = tmp_path / "config.json"
    config.write_text("{}")
    with pytest.raises(InputError, match="use --kind file"):
        prepare_element(config, None, kind="adapter")



def test_a_manifest_split_derived_is_used_as_given_and_gives_the_same_element(minilm_split):
    for element in (minilm_split.elements[0], minilm_split.elements[-1]):  # a tensors and a file element
        path = minilm_split.out_dir / element.path
        computed = prepare_element(path, None, name="x")
        given = prepare_element(path, None, name="x", manifest=element.manifest)
        assert given.manifest == computed.manifest and given.cid == computed.cid


def test_a_given_manifest_of_the_other_kind_is_refused(minilm_split):
    tensors = next(e for e in minilm_split.elements if e.kind == "tensors")
    a_file = next(e for e in minilm_split.elements if e.kind == "file")
    with pytest.raises(InputError, match="manifest given is of kind file"):
        prepare_element(minilm_split.out_dir / tensors.path, None, manifest=a_file.manifest)

def test_an_account_without_funds_is_refused_before_sending(registry, store, minilm_split):
    poor = registry.with_account(Account.create())
    with pytest.raises(InsufficientFundsError, match="fund it"):
        publish_elements(poor, element_paths(minilm_split)[:2], store, license="MIT")
    assert poor.exists([element_claim(prepare_element(p, None), poor.account.address, 2).record_id
                        for p in element_paths(minilm_split)[:2]]) == [False, False]


def test_signed_claims_are_relayed_by_another_account_and_the_signer_publishes(registry, store, minilm_split, tmp_path):
    signer = registry.with_account(Account.create())
    prepared = [prepare_element(p, store) for p in element_paths(minilm_split)[8:11]]
    claims = [element_claim(p, signer.account.address, 2) for p in prepared]
    signed = sign_claims(signer, claims)  # the signer needs no ether
    path = write_signed(tmp_path / "signed.json", signer, signed)
    document = load_signed(path)
    assert json.loads(path.read_text())["publisher"] == signer.account.address

    report = relay_signed(registry, document)  # the registry's account pays
    assert len(report.published) == 3 and report.publisher == signer.account.address
    for record in registry.records([c.record_id for c in claims]):
        assert record.publisher == signer.account.address
    again = relay_signed(registry, document)
    assert again.published == [] and len(again.present) == 3

    tampered = json.loads(path.read_text())
    tampered["records"][0]["license_id"] = 3
    with pytest.raises(InputError, match="record id the file states|signature was made by"):
        relay_signed(registry, tampered)


def test_claims_already_sent_by_someone_else_are_reported_present(registry, store, minilm_split):
    prepared = prepare_element(element_paths(minilm_split)[0], store)
    claim = element_claim(prepared, registry.account.address, 2)
    registry.publish(claim.record)  # sent directly, as a crashed earlier run might have
    report = publish_claims(registry, [claim])
    assert [r.status for r in report.results] == ["present"] and report.transactions == []


def test_publishing_into_kubo_pins_data_and_manifest(memory_registry, kubo_node, tmp_path, minilm_split):
    registry = registry_for("memory", memory_registry=memory_registry)
    store = BlockStore(tmp_path / "blocks")
    kubo = kubo_node.client()
    with Sources(store, kubo_node.api_url) as sources:
        report = publish_elements(registry, element_paths(minilm_split)[7:9], store, license="MIT", sources=sources)
    for result in report.results:
        assert kubo.is_pinned(result.claim.record.cid) and kubo.is_pinned(result.claim.data_cid)
    assert set(report.pinned) == {c for r in report.results for c in r.claim.pins}
