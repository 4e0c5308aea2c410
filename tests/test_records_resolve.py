"""Resolving hashes and record graphs (registry.records.resolve): round trips per level, claims in
order, documents checked, lying nodes and lying documents refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from registry.chain.connection import connect
from registry.chain.registry import Kind, Registry
from registry.chain.inputs import RecordInput
from registry.formats.content_id import Manifest
from registry.publish.claims import element_claim
from registry.publish.prepare import prepare_element, store_document
from registry.publish.send import publish_claims
from registry.records.documents import DocumentError
from registry.records.resolve import HashNotFoundError, Resolver, parse_hash
from registry.errors import InputError, IntegrityError, NotFoundError
from registry.storage.blockstore import BlockStore
from registry.storage.fetch import Sources
from tests.publish_support import CountingProvider, DroppingProxy, funded_account, random_tensors, registry_for, write_raw_safetensors


@pytest.fixture
def registry(chain_backend, request):
    anvil_registry = request.getfixturevalue("anvil_registry") if chain_backend == "anvil" else None
    memory_registry = request.getfixturevalue("memory_registry") if chain_backend == "memory" else None
    return registry_for(chain_backend, anvil_registry, memory_registry)


@pytest.fixture
def store(tmp_path):
    return BlockStore(tmp_path / "blocks")


def small_file(tmp_path, name: str):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng().bytes(64))
    return path


def publish_graph(registry, store, tmp_path):
    """leaves L1..L6; M1 <- L1..L3, M2 <- L3..L6; T <- M1, M2, L6; R <- T: depth 3, 10 records."""
    publisher = registry.account.address
    prep = {n: prepare_element(small_file(tmp_path, n), store) for n in ["L1", "L2", "L3", "L4", "L5", "L6", "M1", "M2", "T", "R"]}
    claims = {}
    for name in ["L1", "L2", "L3", "L4", "L5", "L6"]:
        claims[name] = element_claim(prep[name], publisher, 2)
    parents = {"M1": ["L1", "L2", "L3"], "M2": ["L3", "L4", "L5", "L6"], "T": ["M1", "M2", "L6"], "R": ["T"]}
    for name, names in parents.items():
        claims[name] = element_claim(prep[name], publisher, 2, [claims[p].record_id for p in names])
    publish_claims(registry, list(claims.values()), batch_size=3)  # several blocks
    return claims


def test_a_graph_is_read_in_depth_plus_one_round_trips_on_anvil(anvil_registry, tmp_path):
    registry = registry_for("anvil", anvil_registry)
    store = BlockStore(tmp_path / "blocks")
    claims = publish_graph(registry, store, tmp_path)
    counter = CountingProvider(registry.chain)
    resolver = Resolver(registry, Sources(store))

    graph = resolver.graph("0x" + claims["R"].record_id.hex())
    assert len(graph) == 10 and graph.depth == 3
    assert graph.round_trips == counter.count == 4  # one batched request per level
    assert all(len(methods) >= 2 for methods in counter.methods)  # records() and eth_getLogs together
    assert {n.record.record_id for n in graph} == {c.record_id for c in claims.values()}
    assert graph[claims["L3"].record_id].depth == 3 and graph[claims["L6"].record_id].depth == 2  # the nearest path counts
    assert all(isinstance(n.document, Manifest) and n.license.spdx_id == "MIT" for n in graph)

    counter.reset()
    by_content = Resolver(registry, Sources(store)).graph("0x" + claims["R"].record.content_id.hex(), documents=False)
    assert by_content.roots == [claims["R"].record_id] and len(by_content) == 10
    assert by_content.round_trips == counter.count == 4


def test_the_in_process_chain_resolves_the_same_graph(memory_registry, tmp_path):
    registry = registry_for("memory", memory_registry=memory_registry)
    store = BlockStore(tmp_path / "blocks")
    claims = publish_graph(registry, store, tmp_path)
    graph = Resolver(registry, Sources(store)).graph("0x" + claims["R"].record_id.hex())
    assert len(graph) == 10 and graph.depth == 3
    assert {n.record.record_id for n in graph.ancestors(claims["M1"].record_id)} == {claims[n].record_id for n in ["L1", "L2", "L3"]}
    assert len(graph.ancestors(claims["R"].record_id)) == 9
    records = registry.records([c.record_id for c in claims.values()])
    assert [graph[r.record_id].record for r in records] == records  # the same as the registry's own reads


def test_every_claim_of_a_content_id_is_returned_earliest_first(registry, store, tmp_path):
    path = small_file(tmp_path, "shared.json")
    prepared = prepare_element(path, store)
    accounts = [registry] + [registry.with_account(funded_account(registry.chain)) for _ in range(2)]
    ids = []
    for reg in reversed(accounts):
        [result] = publish_claims(reg, [element_claim(prepared, reg.account.address, 2)]).results
        ids.append(result.claim.record_id)
    resolver = Resolver(registry, Sources(store))
    assert [r.record_id for r in resolver.claims(prepared.content_id)] == ids
    graph = resolver.graph("0x" + prepared.content_id.hex())
    assert graph.roots == ids and graph.root.record.record_id == ids[0]
    # A CID names the records whose document it is.
    assert {r.record_id for r in resolver.lookup(str(prepared.cid))} == set(ids)


def test_unknown_and_malformed_hashes_are_told_apart(registry):
    resolver = Resolver(registry)
    with pytest.raises(HashNotFoundError, match="no record and no claim"):
        resolver.graph("0x" + "12" * 32)
    with pytest.raises(InputError, match="is not a hash"):
        resolver.graph("not-a-hash")
    assert parse_hash("0x" + "ab" * 32)[0] == "id"
    assert parse_hash("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")[0] == "cid"


def test_a_manifest_that_states_another_content_id_is_refused(registry, store, tmp_path):
    rng = np.random.default_rng(1)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    write_raw_safetensors(a, random_tensors(rng, ["w"]), None)
    write_raw_safetensors(b, random_tensors(rng, ["w"]), None)
    honest = prepare_element(b, store)
    # A claim of a's content whose CID points at b's (valid) manifest.
    lie = RecordInput(prepare_element(a, store).content_id, str(honest.cid), 2, Kind.ELEMENT)
    registry.publish(lie)
    rid = lie.record_id(registry.account.address)
    resolver = Resolver(registry, Sources(store))
    with pytest.raises(DocumentError, match="but its manifest"):
        resolver.graph([rid])
    lenient = resolver.graph([rid], strict=False)
    assert lenient.root.document is None and lenient.root.document_failed


def test_a_composition_whose_recipe_builds_other_weights_is_refused(registry, store, tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "x.safetensors"
    write_raw_safetensors(path, random_tensors(rng, ["w"]), None)
    element = prepare_element(path, store)
    [leaf] = publish_claims(registry, [element_claim(element, registry.account.address, 2)]).results
    recipe = {
        "format": "elements.recipe/v1",
        "inputs": {"x": {"content_id": "0x" + element.content_id.hex(), "record": "0x" + leaf.claim.record_id.hex(), "kind": "tensors"}},
        "output": {"content_id": "0x" + element.content_id.hex()},
        "steps": [{"from": ["x"], "op": "take"}],
    }
    from registry.formats.recipe import load_recipe

    cid = store_document(load_recipe(recipe).canonical_json(), store)
    wrong = RecordInput(b"\7" * 32, str(cid), 2, Kind.COMPOSITION, [leaf.claim.record_id])
    registry.publish(wrong)
    with pytest.raises(DocumentError, match="but its recipe builds"):
        Resolver(registry, Sources(store)).graph([wrong.record_id(registry.account.address)])


def test_a_document_no_source_has_is_reported(registry, store, tmp_path):
    element = prepare_element(small_file(tmp_path, "gone.txt"), None)  # CIDs only: nothing stored
    [result] = publish_claims(registry, [element_claim(element, registry.account.address, 2)]).results
    resolver = Resolver(registry, Sources(store))
    with pytest.raises(NotFoundError, match="configure --ipfs-api or --gateway"):
        resolver.graph([result.claim.record_id])
    graph = resolver.graph([result.claim.record_id], strict=False)
    assert graph.root.document is None and not graph.root.document_failed and "not in" in graph.root.document_error


def test_a_node_that_alters_event_data_is_caught(anvil, anvil_registry, tmp_path):
    registry = registry_for("anvil", anvil_registry)
    store = BlockStore(tmp_path / "blocks")
    [result] = publish_claims(registry, [element_claim(prepare_element(small_file(tmp_path, "e.txt"), store), registry.account.address, 2)]).results

    def lie(methods, answer):
        if "eth_getLogs" not in methods:
            return answer
        document = json.loads(answer)
        for item in document if isinstance(document, list) else [document]:
            for log in item.get("result") or []:
                if isinstance(log, dict) and "data" in log:
                    data = bytearray.fromhex(log["data"][2:])
                    data[95] ^= 1  # the licence id: the claim would read as another licence
                    log["data"] = "0x" + data.hex()
        return json.dumps(document).encode()

    proxy = DroppingProxy(anvil.url, "none", 0, rewrite=lie)
    try:
        lying = Registry(connect(proxy.url), registry.address, None, registry.deploy_block)
        with pytest.raises(IntegrityError, match="does not hash to its id"):
            Resolver(lying).graph([result.claim.record_id], documents=False)
    finally:
        proxy.close()


def test_a_node_that_caps_log_ranges_is_read_through_exact_blocks(anvil, anvil_registry, tmp_path):
    registry = registry_for("anvil", anvil_registry)
    store = BlockStore(tmp_path / "blocks")
    claims = publish_graph(registry, store, tmp_path)

    def cap(methods, answer):
        # Like public RPCs: a log query from the deployment block to "latest" is refused.
        document = json.loads(answer)
        if isinstance(document, list):
            for item in document:
                if isinstance(item.get("result"), list) and item["result"] and isinstance(item["result"][0], dict) and "topics" in item["result"][0]:
                    item.pop("result")
                    item["error"] = {"code": -32005, "message": "query exceeds max block range 1000"}
        return json.dumps(document).encode()

    proxy = DroppingProxy(anvil.url, "none", 0, rewrite=cap)
    try:
        capped = Registry(connect(proxy.url), registry.address, None, registry.deploy_block)
        graph = Resolver(capped, Sources(store)).graph("0x" + claims["R"].record_id.hex())
    finally:
        proxy.close()
    assert {n.record.record_id for n in graph} == {c.record_id for c in claims.values()}
    assert all(isinstance(n.document, Manifest) for n in graph)
    assert graph.round_trips > 4  # the fallback costs calls, not correctness


@pytest.mark.parametrize("head", ["0xzz", "0x+1", "0x 1"])
def test_a_node_whose_batched_head_is_not_hex_still_resolves_the_graph(anvil, anvil_registry, tmp_path, head):
    registry = registry_for("anvil", anvil_registry)
    store = BlockStore(tmp_path / "blocks")
    [result] = publish_claims(registry, [element_claim(prepare_element(small_file(tmp_path, "e.txt"), store), registry.account.address, 2)]).results

    def garble_head(methods, answer):
        document = json.loads(answer)
        if isinstance(document, list):
            for method, item in zip(methods, document):
                if method == "eth_blockNumber":
                    item["result"] = head
        return json.dumps(document).encode()

    proxy = DroppingProxy(anvil.url, "none", 0, rewrite=garble_head)
    try:
        lying = Registry(connect(proxy.url), registry.address, None, registry.deploy_block)
        graph = Resolver(lying).graph([result.claim.record_id], documents=False)
    finally:
        proxy.close()
    assert [n.record.record_id for n in graph] == [result.claim.record_id]
