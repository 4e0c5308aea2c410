"""The attribution index: built from registry events and the documents they point to, queried by
digest and by name, updated incrementally, persisted, rebuilt when the chain is another one, and
tolerant of documents that cannot be fetched (retried) or are invalid (skipped)."""

from __future__ import annotations

import os

import pytest

from registry.chain.connection import connect
from registry.chain.registry import Kind, Registry
from registry.chain.inputs import RecordInput
from registry.formats.content_id import tensor_entries
from registry.publish.prepare import store_document
from registry.records.documents import Documents
from registry.provenance.index import ElementIndex, index_path
from registry.storage.blockstore import BlockStore
from registry.storage.fetch import Sources
from registry.storage.unixfs import add_file
from tests.chain_worlds import fresh_binding, rolled_back
from tests.provenance_support import WEIGHTS, compose, publish_real_model, three_layer_doc

QUERY3 = "encoder.layer.3.attention.self.query.weight"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return BlockStore(tmp_path_factory.mktemp("blocks"))


@pytest.fixture(scope="module")
def published(store):
    """One chain where account 0 ran publish-model, for the module."""
    chain = connect("memory")
    registry = Registry.deploy(chain, chain.dev_accounts[0])
    return registry, publish_real_model(registry, store)


@pytest.fixture
def world(published):
    """That chain as it was after publish-model (rolled back after the test), a fresh registry binding."""
    registry, model = published
    with rolled_back(registry.chain):
        yield fresh_binding(registry), model


def open_index(registry, store, path=None) -> ElementIndex:
    return ElementIndex(registry.with_account(None), Documents(Sources(store)), path)


def test_update_indexes_every_record_and_its_tensor_table(world, store):
    registry, published = world
    index = open_index(registry, store)
    state = index.update()
    records = len(published.records) + 1
    assert (state["new"], state["records"], state["indexed"], state["pending"]) == (records, records, records, 0)
    assert state["tensors"] == 2 * 104  # each element's table once, and the composition's output table
    digests = {e.name: bytes(e.digest) for e in tensor_entries(WEIGHTS)}
    hits = index.by_digest([digests[QUERY3]])[digests[QUERY3]]
    assert {(h.role, "0x" + h.record_id.hex()) for h in hits} == {
        ("element", published.records["encoder.layer.3"]), ("output", published.composition)}
    named = index.by_name([QUERY3])[QUERY3]
    assert {h.name for h in named} == {QUERY3}
    assert index.tensors_of([bytes.fromhex(published.records["pooler"][2:])])[bytes.fromhex(published.records["pooler"][2:])][0].name.startswith("pooler.")


def test_update_is_incremental_and_the_closest_composition_wins(world, store, tmp_path):
    registry, published = world
    index = open_index(registry, store)
    index.update()
    small = compose(registry, store, three_layer_doc(published), out=tmp_path / "small")
    again = index.update()
    assert again["new"] == 1 and again["fetched"] == 1
    assert index.update()["new"] == 0
    full = tensor_entries(WEIGHTS)
    assert "0x" + index.closest_compositions(full)[0].hex() == published.composition
    three = tensor_entries(tmp_path / "small")
    assert "0x" + index.closest_compositions(three)[0].hex() == small


def test_the_index_persists_on_disk_and_is_rebuilt_for_another_chain(world, store, tmp_path):
    registry, published = world
    path = index_path(tmp_path, registry.chain.chain_id, registry.address)
    first = open_index(registry, store, path)
    assert first.update()["fetched"] == len(published.records) + 1
    first.close()
    reopened = open_index(registry, store, path)
    state = reopened.update()
    assert (state["new"], state["fetched"], state["indexed"]) == (0, 0, len(published.records) + 1)
    reopened.close()

    chain = connect("memory")  # the same chain id and registry address, another history
    other = Registry.deploy(chain, chain.dev_accounts[0])
    rebuilt = open_index(other, store, path).update()
    assert rebuilt["records"] == 0 and rebuilt["tensors"] == 0


def test_unfetchable_documents_stay_pending_and_invalid_ones_are_skipped(memory_registry, store, tmp_path):
    registry = memory_registry
    own = BlockStore(tmp_path / "blocks")
    absent = add_file(b'{"format": "elements.manifest/v1"}' + os.urandom(8))  # never stored
    junk = store_document(b"not json at all", own)
    registry.publish_batch([RecordInput(os.urandom(32), str(absent), 3, Kind.ELEMENT),
                            RecordInput(os.urandom(32), str(junk), 3, Kind.ELEMENT)])
    index = open_index(registry, own)
    state = index.update()
    assert (state["records"], state["pending"], state["invalid"], state["indexed"]) == (2, 1, 1, 0)
    assert index.update()["pending"] == 1  # retried, still missing


def test_an_index_read_through_fewer_endpoints_than_this_run_cross_checks_is_rebuilt(anvil, anvil_registry, tmp_path):
    from tests.rpc_support import DropEarliestLog, RpcProxy

    writer = anvil_registry.with_account(anvil_registry.chain.dev_accounts[0])
    for _ in range(2):
        writer.publish(RecordInput(os.urandom(32), "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am", 2, Kind.ELEMENT))
    store = BlockStore(tmp_path / "blocks")
    path = tmp_path / "index.sqlite"

    def index_over(*proxies) -> ElementIndex:
        chain = connect([p.url for p in proxies])
        return ElementIndex(Registry(chain, anvil_registry.address, deploy_block=anvil_registry.deploy_block), Documents(Sources(store)), path)

    with RpcProxy(anvil.url) as honest, RpcProxy(anvil.url) as honest2, RpcProxy(anvil.url, DropEarliestLog()) as drops:
        every = len(anvil_registry.all_records())
        assert index_over(drops).update()["records"] == every - 1  # one endpoint, trusted: its omission is indexed
        rebuilt = index_over(honest, honest2).update()
        assert rebuilt["new"] == rebuilt["records"] == every  # read again through both, the hidden record is back
        assert index_over(honest).update()["new"] == 0  # one of the endpoints that read it all: reused
