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
from tests.provenance_support import WEIGHTS, compose, three_layer_doc

QUERY3 = "encoder.layer.3.attention.self.query.weight"


@pytest.fixture(scope="module")
def store(real_model_module):
    return real_model_module[1]


@pytest.fixture(scope="module")
def published(real_model_module):
    """One chain where account 0 ran publish-model, for the module."""
    registry, _, model = real_model_module
    return registry, model


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

    lie = DropEarliestLog()
    with RpcProxy(anvil.url) as honest, RpcProxy(anvil.url) as honest2, RpcProxy(anvil.url, lie) as drops:
        every = len(anvil_registry.all_records())
        # One endpoint, trusted: its omissions (one per log query the sync asked) are indexed.
        assert index_over(drops).update()["records"] == every - lie.dropped and lie.dropped >= 1
        rebuilt = index_over(honest, honest2).update()
        assert rebuilt["new"] == rebuilt["records"] == every  # read again through both, the hidden record is back
        assert index_over(honest).update()["new"] == 0  # one of the endpoints that read it all: reused


def test_claims_are_ranked_by_priority_block_so_a_revealed_claim_comes_before_a_later_direct_one(world, store):
    from registry.chain.inputs import commitment_of
    from tests.publish_support import funded_account

    registry, published = world
    element = registry.record(published.records["encoder.layer.3"])
    copy = RecordInput(element.content_id, element.cid, element.license_id, Kind.ELEMENT)
    early = fresh_binding(registry, funded_account(registry.chain))  # commits first, reveals last
    late = fresh_binding(registry, funded_account(registry.chain))  # publishes directly in between
    salt = os.urandom(32)
    early.commit(commitment_of(early.account.address, salt, [copy.record_id(early.account.address)]))
    [late_id] = late.publish_batch([copy])
    [early_id] = early.reveal(salt, [copy])
    revealed = registry.record(early_id)
    assert revealed.priority_block < registry.record(late_id).block_number < revealed.block_number

    index = open_index(registry, store)
    index.update()
    digest = next(bytes(e.digest) for e in tensor_entries(WEIGHTS) if e.name == QUERY3)
    elements = [h for h in index.by_digest([digest])[digest] if h.role == "element"]
    assert [h.record_id for h in elements] == [element.record_id, early_id, late_id]
    assert elements[1].priority_block == revealed.priority_block


def test_an_index_of_the_previous_format_is_dropped_and_rebuilt_with_the_new_columns(world, store, tmp_path):
    import sqlite3

    registry, published = world
    path = tmp_path / "index.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE records (record_id BLOB PRIMARY KEY, publisher TEXT NOT NULL, content_id BLOB NOT NULL, kind INTEGER NOT NULL,"
        " block INTEGER NOT NULL, log_index INTEGER NOT NULL, cid TEXT NOT NULL, role TEXT, status TEXT NOT NULL DEFAULT 'pending', error TEXT);"
        "INSERT INTO meta VALUES ('format', 'elements.provenance-index/1'), ('last_block', '999');"
    )
    old.commit()
    old.close()
    index = open_index(registry, store, path)
    state = index.update()
    assert state["records"] == state["indexed"] == len(published.records) + 1
    composition = bytes.fromhex(published.composition[2:])
    assert len(index.children(composition)) == 0
    assert set(index.children(bytes.fromhex(published.records["pooler"][2:]))) == {composition}


def test_a_sync_reads_only_the_blocks_after_the_last_indexed_one(world, store, tmp_path):
    registry, published = world
    index = open_index(registry, store)
    first = index.sync()
    assert first["from_block"] == registry.deploy_block and first["new"] == len(published.records) + 1
    registry.publish_batch([RecordInput(os.urandom(32), "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am", 2, Kind.ELEMENT)])
    second = index.sync()
    assert second["from_block"] == first["to_block"] + 1 and second["new"] == 1
    assert index.sync()["new"] == 0
    assert index.state()["pending"] == len(published.records) + 2  # a sync fetches no document


def test_what_builds_on_a_record_comes_from_the_index_and_a_forged_row_is_dropped(world, store, tmp_path):
    import sqlite3

    from registry.provenance.index import builds_on

    registry, published = world
    pooler = bytes.fromhex(published.records["pooler"][2:])
    composition = bytes.fromhex(published.composition[2:])
    home = tmp_path / "home"
    assert [r.record_id for r in builds_on(registry, home, pooler)] == [composition]
    # A tampered cache (the memory chain's index is in memory; this one is on disk) cannot add a child.
    on_disk = ElementIndex(registry, None, tmp_path / "forged.sqlite")
    on_disk.sync()
    other = bytes.fromhex(published.records["encoder.layer.3"][2:])
    forger = sqlite3.connect(tmp_path / "forged.sqlite")
    forger.execute("INSERT INTO parents (parent_id, record_id) VALUES (?, ?)", (pooler, other))
    forger.commit()
    forger.close()
    assert set(on_disk.children(pooler)) == {composition, other}
    assert [r.record_id for r in on_disk.builds_on(pooler)] == [composition]
    on_disk.close()


def test_a_yank_after_the_last_sync_is_seen_by_the_next_sync_from_its_event(world, store):
    registry, published = world
    index = open_index(registry, store)
    index.sync()
    pooler = bytes.fromhex(published.records["pooler"][2:])
    assert index.select(yanked=True) == []
    assert registry.yank(pooler)
    assert index.select(yanked=True) == []  # the index knows only what it synced
    second = index.sync()
    assert second["new"] == 0
    assert index.select(yanked=True) == [pooler]
    live = index.select(yanked=False)
    assert pooler not in live and len(live) == len(published.records)  # the others and the composition


def test_a_first_sync_reads_yanks_from_storage_with_each_record(world, store):
    registry, published = world
    pooler = bytes.fromhex(published.records["pooler"][2:])
    assert registry.yank(pooler)
    index = open_index(registry, store)
    index.sync()
    assert index.select(yanked=True) == [pooler]


def test_a_name_the_index_knows_narrows_the_selection_and_an_unknown_one_never_hides_a_record(world, store):
    registry, published = world
    index = open_index(registry, store)
    index.sync()
    every = index.select()
    assert index.select(name="pooler") == every  # no document read yet: every record may match
    pooler, composition = bytes.fromhex(published.records["pooler"][2:]), bytes.fromhex(published.composition[2:])
    index.remember_names({pooler: "The Pooler", composition: None})
    chosen = index.select(name="POOLER")
    assert pooler in chosen and composition not in chosen and len(chosen) == len(every) - 1
    assert pooler not in index.select(name="encoder")
    index.update()  # reads every document: every name is known now, so none is selected blindly
    assert index.select(name="no document is called this") == []
    assert index.select(name="pooler") == [pooler]


def test_a_sync_pauses_the_cyclic_collector_and_restores_it_also_when_the_node_lies(anvil, anvil_registry, tmp_path):
    import gc

    from registry.errors import IntegrityError
    from tests.rpc_support import Lie, RpcProxy

    class TruncatedLogs(Lie):
        def answer(self, call, answer, upstream):
            if call.get("method") == "eth_getLogs" and isinstance(answer.get("result"), list):
                answer = {**answer, "result": [{**log, "data": log["data"][:-64]} for log in answer["result"]]}
            return answer

    writer = anvil_registry.with_account(anvil_registry.chain.dev_accounts[0])
    writer.publish(RecordInput(os.urandom(32), "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am", 2, Kind.ELEMENT))
    honest = ElementIndex(anvil_registry, None, tmp_path / "honest.sqlite")
    assert honest.sync()["new"] >= 1 and gc.isenabled()
    honest.close()
    with RpcProxy(anvil.url, TruncatedLogs()) as proxy:
        lying = ElementIndex(Registry(connect(proxy.url), anvil_registry.address, None, anvil_registry.deploy_block), None,
                             tmp_path / "lying.sqlite")
        with pytest.raises(IntegrityError, match="malformed"):
            lying.sync()
        assert gc.isenabled()
        assert lying.state()["records"] == 0  # nothing half-written: the transaction was rolled back
        lying.close()
    gc.disable()
    try:
        again = ElementIndex(anvil_registry, None, tmp_path / "again.sqlite")
        again.sync()
        again.close()
        assert not gc.isenabled()  # a caller's own choice is left as it was
    finally:
        gc.enable()
