"""Block hints (registry.records.hints): the ranges a level's log queries are cut into, and a
resolver whose hints come from the attribution index, lie, or belong to another chain: the graph
it returns is the same every time, only the log queries differ."""

from __future__ import annotations

import json

import numpy as np

from registry.chain.inputs import RecordInput
from registry.chain.registry import Kind
from registry.provenance.index import ElementIndex, open_hints, indexed_records
from registry.publish.claims import element_claim
from registry.publish.prepare import prepare_element
from registry.publish.send import publish_claims
from registry.records.hints import MAX_HINTED_RANGES, hinted_ranges
from registry.records.resolve import Resolver
from registry.storage.blockstore import BlockStore
from registry.storage.fetch import Sources
from tests.publish_support import CountingProvider, registry_for


# -- the ranges ---------------------------------------------------------------------------------


def test_adjacent_blocks_share_one_range_and_distant_ones_get_their_own():
    ranges = hinted_ranges({b"a": [10], b"b": [11], b"c": [500]})
    assert ranges == [(10, 11, [b"a", b"b"]), (500, 500, [b"c"])]


def test_a_content_id_claimed_in_several_blocks_is_asked_in_each_of_their_ranges():
    ranges = hinted_ranges({b"x": [3, 900], b"y": [900]})
    assert ranges == [(3, 3, [b"x"]), (900, 900, [b"x", b"y"])]


def test_too_many_blocks_are_merged_across_the_smallest_gaps():
    blocks = {bytes([i]): [i * 10 + (5 if i % 2 else 0)] for i in range(60)}
    ranges = hinted_ranges(blocks, most=8)
    assert len(ranges) == 8
    assert sorted(k for _, _, ids in ranges for k in ids) == sorted(blocks)  # every id still asked for
    for low, high, ids in ranges:
        assert all(low <= blocks[k][0] <= high for k in ids)


def test_merging_stops_at_the_nodes_range_cap():
    blocks = {bytes([i]): [i * 1_000] for i in range(MAX_HINTED_RANGES + 6)}
    ranges = hinted_ranges(blocks, max_span=500)
    assert len(ranges) == len(blocks) and all(high - low + 1 <= 500 for low, high, _ in ranges)


def test_no_known_blocks_give_no_ranges():
    assert hinted_ranges({}) == [] and hinted_ranges({b"a": []}) == []


# -- the resolver with hints, on anvil ------------------------------------------------------------


def _small(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng().bytes(64))
    return path


def _publish(registry, store, tmp_path):
    """Leaves A, B, C in separate blocks, then M <- A, B and T <- M, C: depth 2."""
    publisher = registry.account.address
    claims = {}
    for name in ["A", "B", "C"]:
        claims[name] = element_claim(prepare_element(_small(tmp_path, name), store), publisher, 2)
        publish_claims(registry, [claims[name]])
    claims["M"] = element_claim(prepare_element(_small(tmp_path, "M"), store), publisher, 2, [claims["A"].record_id, claims["B"].record_id])
    claims["T"] = element_claim(prepare_element(_small(tmp_path, "T"), store), publisher, 2, [claims["M"].record_id, claims["C"].record_id])
    publish_claims(registry, [claims["M"]])
    publish_claims(registry, [claims["T"]])
    return claims


class _Hints:
    """Hints written by hand: what an index that lies, or is of another chain, would say."""

    def __init__(self, last_block, last_hash, blocks):
        self.last_block, self.last_hash, self.blocks = last_block, last_hash, blocks

    def record_blocks(self, ids):
        return {i: self.blocks[i] for i in ids if i in self.blocks}

    def claim_blocks(self, content_ids):
        return {}

    def records_with_cid(self, codec, digest):
        return []


class _Watch(CountingProvider):
    """Counts round trips and keeps the block range of every eth_getLogs sent."""

    def __init__(self, chain):
        super().__init__(chain)
        self.ranges: list[tuple[str, str]] = []
        provider = chain.provider
        post = provider._post

        def watched(data, *args, **kwargs):
            body = json.loads(data)
            for call in body if isinstance(body, list) else [body]:
                if call["method"] == "eth_getLogs":
                    self.ranges.append((call["params"][0]["fromBlock"], call["params"][0]["toBlock"]))
            return post(data, *args, **kwargs)

        provider._post = watched


def test_an_index_synced_narrows_every_log_query_and_the_graph_and_round_trips_stay_the_same(anvil_registry, tmp_path):
    registry = registry_for("anvil", anvil_registry)
    store = BlockStore(tmp_path / "blocks")
    claims = _publish(registry, store, tmp_path)
    index = ElementIndex(registry, None, tmp_path / "index.sqlite")
    index.sync()
    plain = Resolver(registry, Sources(store)).graph("0x" + claims["T"].record_id.hex())
    blocks = {n.record.block_number for n in plain}

    watch = _Watch(registry.chain)
    hinted = Resolver(registry, Sources(store), hints=index.hints()).graph("0x" + claims["T"].record_id.hex())
    assert {n.record_id: (n.depth, n.record) for n in hinted} == {n.record_id: (n.depth, n.record) for n in plain}
    assert hinted.round_trips == plain.round_trips == watch.count == 3
    last = index.hints().last_block
    # The records' own blocks (neighbours share a range), and one range from the index's last
    # block on (for newer claims); never the whole registry.
    assert hex(claims_block(registry, claims["A"])) in {low for low, _ in watch.ranges}
    for low, high in watch.ranges:
        if high == "latest":
            assert low == hex(last)
        else:
            assert int(low, 16) in blocks and int(high, 16) in blocks and int(high, 16) - int(low, 16) <= 2
    index.close()


def claims_block(registry, claim):
    return registry.record(claim.record_id).block_number


def test_a_hint_that_names_the_wrong_block_costs_round_trips_not_the_record(anvil_registry, tmp_path):
    registry = registry_for("anvil", anvil_registry)
    store = BlockStore(tmp_path / "blocks")
    claims = _publish(registry, store, tmp_path)
    head = registry.chain.block_number()
    wrong = {claims[n].record_id: 1 for n in claims}  # every record "in block 1"
    hints = _Hints(head, registry.chain.block_hash(head), wrong)

    graph = Resolver(registry, Sources(store), hints=hints).graph("0x" + claims["T"].record_id.hex())
    assert {n.record_id for n in graph} == {c.record_id for c in claims.values()}
    assert graph.depth == 2 and graph.round_trips > 3  # read again through the exact blocks


def test_hints_of_another_chain_are_dropped_and_the_whole_range_is_read(anvil_registry, tmp_path):
    registry = registry_for("anvil", anvil_registry)
    store = BlockStore(tmp_path / "blocks")
    claims = _publish(registry, store, tmp_path)
    head = registry.chain.block_number()
    hints = _Hints(head, bytes(32), {claims[n].record_id: 1 for n in claims})  # a last block the chain does not have

    resolver = Resolver(registry, Sources(store), hints=hints)
    graph = resolver.graph("0x" + claims["T"].record_id.hex())
    assert {n.record_id for n in graph} == {c.record_id for c in claims.values()}
    assert resolver.hints is None


def test_claims_published_after_the_index_are_found_by_the_range_after_its_last_block(anvil_registry, tmp_path):
    registry = registry_for("anvil", anvil_registry)
    store = BlockStore(tmp_path / "blocks")
    claims = _publish(registry, store, tmp_path)
    index = ElementIndex(registry, None, tmp_path / "index.sqlite")
    index.sync()
    other = registry_for("anvil", anvil_registry)
    a = registry.record(claims["A"].record_id)
    later = RecordInput(a.content_id, a.cid, a.license_id, Kind.ELEMENT)
    other.publish_batch([later])

    found = Resolver(registry, Sources(store), hints=index.hints()).claims(a.content_id)
    assert [r.publisher for r in found] == [registry.account.address, other.account.address]
    by_cid = Resolver(registry, Sources(store), hints=index.hints()).lookup(a.cid)
    assert {r.record_id for r in by_cid} == {a.record_id, later.record_id(other.account.address)}
    index.close()


def test_the_cli_reads_hints_only_from_an_index_that_exists_and_filters_through_it(anvil_registry, tmp_path):
    registry = registry_for("anvil", anvil_registry)
    store = BlockStore(tmp_path / "blocks")
    claims = _publish(registry, store, tmp_path)
    home = tmp_path / "home"
    assert open_hints(registry, home) is None  # no index: nothing created either
    assert not (home / "cache").exists()

    resolver = Resolver(registry, Sources(store))
    mine = indexed_records(registry, home, resolver, publisher=registry.account.address)
    assert [r.record_id for r in mine] == [claims[n].record_id for n in ["A", "B", "C", "M", "T"]]
    assert indexed_records(registry, home, resolver, publisher=registry.account.address, kind=int(Kind.COMPOSITION)) == []
    hints = open_hints(registry, home)
    assert hints is not None and hints.record_blocks([claims["T"].record_id])[claims["T"].record_id] == claims_block(registry, claims["T"])
    hints.close()


def test_a_listing_from_a_tampered_index_keeps_only_what_the_chain_says(anvil_registry, tmp_path):
    import sqlite3

    from registry.provenance.index import index_path

    registry = registry_for("anvil", anvil_registry)
    store = BlockStore(tmp_path / "blocks")
    claims = _publish(registry, store, tmp_path)
    other = registry_for("anvil", anvil_registry)
    theirs = RecordInput(bytes(range(32)), registry.record(claims["A"].record_id).cid, 2, Kind.ELEMENT)
    other.publish_batch([theirs])
    home = tmp_path / "home"
    resolver = Resolver(registry, Sources(store))
    assert len(indexed_records(registry, home, resolver, publisher=registry.account.address)) == 5
    forger = sqlite3.connect(index_path(home, registry.chain.chain_id, registry.address))
    forger.execute("UPDATE records SET publisher = ?, kind = 1 WHERE record_id = ?",
                   (registry.account.address, theirs.record_id(other.account.address)))
    forger.commit()
    forger.close()
    mine = indexed_records(registry, home, resolver, publisher=registry.account.address)
    assert [r.record_id for r in mine] == [claims[n].record_id for n in ["A", "B", "C", "M", "T"]]
    assert indexed_records(registry, home, resolver, publisher=registry.account.address, kind=int(Kind.COMPOSITION)) == []


def test_hints_are_checked_also_on_a_node_that_does_not_batch(anvil, anvil_registry, tmp_path):
    from registry.chain.connection import connect
    from registry.chain.registry import Registry
    from tests.publish_support import DroppingProxy

    registry = registry_for("anvil", anvil_registry)
    store = BlockStore(tmp_path / "blocks")
    claims = _publish(registry, store, tmp_path)
    head = registry.chain.block_number()

    def no_batches(methods, answer):
        # A node without batch support answers a batch with one error object.
        if isinstance(json.loads(answer), list):
            return json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "batch requests are not supported"}}).encode()
        return answer

    proxy = DroppingProxy(anvil.url, "none", 0, rewrite=no_batches)
    try:
        plain = Registry(connect(proxy.url), registry.address, None, registry.deploy_block)
        # The right last block; another hash there; a block the chain does not have yet.
        for last, last_hash, kept in ((head, registry.chain.block_hash(head), True), (head, bytes(32), False), (head + 10_000, bytes(32), False)):
            resolver = Resolver(plain, Sources(store), hints=_Hints(last, last_hash, {}))
            graph = resolver.graph("0x" + claims["T"].record_id.hex(), documents=False)
            assert {n.record_id for n in graph} == {c.record_id for c in claims.values()}
            assert (resolver.hints is not None) == kept
    finally:
        proxy.close()


def _yanked_by_scan(registry, publisher):
    return [r.record_id for r in registry.records_by(publisher) if r.yanked]


def test_a_listing_of_yanked_records_from_the_index_equals_the_event_scan_also_after_a_later_yank(anvil_registry, tmp_path):
    registry = registry_for("anvil", anvil_registry)
    store = BlockStore(tmp_path / "blocks")
    claims = _publish(registry, store, tmp_path)
    home = tmp_path / "home"
    resolver = Resolver(registry, Sources(store))
    me = registry.account.address
    assert registry.yank(claims["B"].record_id)
    yanked = indexed_records(registry, home, resolver, publisher=me, yanked=True)  # the first sync: yanks from storage
    assert [r.record_id for r in yanked] == _yanked_by_scan(registry, me) == [claims["B"].record_id]
    assert registry.yank(claims["M"].record_id)  # after the last sync: the next one reads its event
    yanked = indexed_records(registry, home, resolver, publisher=me, yanked=True)
    assert [r.record_id for r in yanked] == _yanked_by_scan(registry, me) == [claims["B"].record_id, claims["M"].record_id]
    live = indexed_records(registry, home, resolver, publisher=me, yanked=False)
    assert [r.record_id for r in live] == [claims[n].record_id for n in ["A", "C", "T"]]
    assert all(r.yanked for r in yanked) and not any(r.yanked for r in live)


class _ForgedYank:
    """A node that adds a RecordYanked log of a live record to every answer about yanks."""

    def __init__(self, record_id, address):
        self.record_id, self.address = record_id, address

    def call(self, call, upstream):
        return call

    def answer(self, call, answer, upstream):
        from registry.chain.reader import RECORD_YANKED_TOPIC

        topics = ((call.get("params") or [{}])[0] or {}).get("topics") or [] if call.get("method") == "eth_getLogs" else []
        if topics and str(topics[0]).lower() == "0x" + RECORD_YANKED_TOPIC.hex() and isinstance(answer.get("result"), list):
            forged = {"address": self.address.lower(), "topics": ["0x" + RECORD_YANKED_TOPIC.hex(), "0x" + self.record_id.hex(), "0x" + "00" * 32],
                      "data": "0x", "blockNumber": call["params"][0]["toBlock"], "logIndex": "0x3e7", "removed": False}
            answer = {**answer, "result": [*answer["result"], forged]}
        return answer


def test_a_yank_a_node_forged_reaches_the_index_but_neither_the_yanked_nor_the_live_listing(anvil, anvil_registry, tmp_path):
    from registry.chain.connection import connect
    from registry.chain.registry import Registry
    from tests.rpc_support import RpcProxy

    registry = registry_for("anvil", anvil_registry)
    store = BlockStore(tmp_path / "blocks")
    claims = _publish(registry, store, tmp_path)
    home = tmp_path / "home"
    me = registry.account.address
    with RpcProxy(anvil.url, _ForgedYank(claims["A"].record_id, registry.address)) as proxy:
        lying = Registry(connect(proxy.url), registry.address, None, registry.deploy_block)
        resolver = Resolver(lying, Sources(store))
        assert indexed_records(lying, home, resolver, publisher=me, yanked=True) == []  # first sync: storage says live
        assert registry.yank(claims["C"].record_id)
        # The next sync reads the yank events: the forged one marks A in the index, the chain's storage does not.
        yanked = indexed_records(lying, home, resolver, publisher=me, yanked=True)
        assert [r.record_id for r in yanked] == [claims["C"].record_id]
        index = ElementIndex(lying, None, next((home / "cache" / "provenance").glob("index-*.sqlite")))
        try:
            assert set(index.select(publisher=me, yanked=True)) == {claims["A"].record_id, claims["C"].record_id}
        finally:
            index.close()
        live = indexed_records(lying, home, resolver, publisher=me, yanked=False)
        assert [r.record_id for r in live] == [claims[n].record_id for n in ["A", "B", "M", "T"]]
