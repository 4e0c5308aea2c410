"""Bulk reads of the registry's events (registry.chain.scan): the same records, fields and order as
the checked reader, priority blocks from storage, and a lying node's storage or logs refused."""

from __future__ import annotations

import os

import pytest

from registry.chain.cids import RAW, join_cid
from registry.chain.connection import connect
from registry.chain.reader import RECORD_PUBLISHED_TOPIC
from registry.chain.inputs import RecordInput, commitment_of
from registry.chain.registry import Kind, Registry
from registry.chain.scan import decode_raw_log, scan_records
from registry.errors import IntegrityError
from tests.publish_support import registry_for
from tests.rpc_support import RECORDS_SELECTOR, Lie, RpcProxy


@pytest.fixture(scope="module")
def published(anvil, anvil_registry):
    """A fresh publisher's 30 records over 15 blocks (compositions among them) and one revealed
    from a commitment (its priority block before its block)."""
    registry = registry_for("anvil", anvil_registry)
    mit = registry.license_by_spdx("MIT").license_id
    start = registry.chain.block_number() + 1
    leaves = [RecordInput(os.urandom(32), join_cid(RAW, os.urandom(32)), mit, Kind.ELEMENT) for _ in range(20)]
    ids = registry.publish_batch(leaves, chunk=2)
    tops = [RecordInput(os.urandom(32), join_cid(RAW, os.urandom(32)), mit, Kind.COMPOSITION, tuple(ids[i : i + 3])) for i in range(0, 20, 2)]
    ids += registry.publish_batch(tops, chunk=2)
    salt = os.urandom(32)
    hidden = RecordInput(os.urandom(32), join_cid(RAW, os.urandom(32)), mit, Kind.FILE)
    registry.commit(commitment_of(registry.account.address, salt, [hidden.record_id(registry.account.address)]))
    registry.publish_batch([RecordInput(os.urandom(32), join_cid(RAW, os.urandom(32)), mit, Kind.ADAPTER)])  # a block between
    ids += registry.reveal(salt, [hidden])
    return registry, start, registry.chain.block_number()


def test_a_scan_gives_the_checked_readers_records_in_publication_order(published):
    registry, start, end = published
    checked = registry.records_between(start, end)
    scanned = scan_records(registry.reader, start, end)
    assert len(scanned) == len(checked) >= 31
    for fast, slow in zip(scanned, checked):
        assert (fast.record_id, fast.content_id, fast.publisher, fast.cid_codec, fast.cid_digest, fast.license_id, fast.kind,
                fast.parents, fast.block_number, fast.log_index, fast.priority_block) == (
            slow.record_id, slow.content_id, slow.publisher, slow.cid_codec, slow.cid_digest, slow.license_id, int(slow.kind),
            tuple(slow.parents), slow.block_number, slow.log_index, slow.priority_block)
    assert any(r.priority_block < r.block_number for r in scanned)  # the revealed one


def test_the_in_process_chain_is_scanned_through_the_checked_reader(memory_registry):
    registry = memory_registry.with_account(memory_registry.chain.dev_accounts[0])
    [rid] = registry.publish_batch([RecordInput(os.urandom(32), join_cid(RAW, os.urandom(32)), 2, Kind.ELEMENT)])
    assert [r.record_id for r in scan_records(registry.reader, registry.deploy_block, registry.chain.block_number())][-1] == rid


class StoragePriorityLie(Lie):
    """Answers records(ids) with every priority block after the record's own block."""

    def answer(self, call, answer, upstream):
        params = call.get("params") or [{}]
        if call.get("method") == "eth_call" and str(params[0].get("data", "")).startswith(RECORDS_SELECTOR) and "result" in answer:
            body = answer["result"][2:]
            words = [body[i : i + 64] for i in range(0, len(body), 64)]
            for n in range(2, len(words), 9):
                words[n + 8] = f"{int(words[n + 2], 16) + 1:064x}"  # priority dates from after publication
            answer = {**answer, "result": "0x" + "".join(words)}
        return answer


class TruncatedLogData(Lie):
    def answer(self, call, answer, upstream):
        if call.get("method") == "eth_getLogs" and isinstance(answer.get("result"), list):
            answer = {**answer, "result": [{**log, "data": log["data"][:-64]} for log in answer["result"]]}
        return answer


@pytest.mark.parametrize("lie, message", [(StoragePriorityLie(), "storage and event disagree"), (TruncatedLogData(), "malformed")])
def test_a_node_lying_about_storage_or_logs_is_refused(anvil, published, lie, message):
    registry, start, end = published
    with RpcProxy(anvil.url, lie) as proxy:
        lying = Registry(connect(proxy.url), registry.address, None, registry.deploy_block)
        with pytest.raises(IntegrityError, match=message):
            scan_records(lying.reader, start, end)


def test_a_log_of_another_contract_or_event_is_skipped_and_a_malformed_one_refused():
    address = "0x" + "11" * 20
    topics = ["0x" + RECORD_PUBLISHED_TOPIC.hex(), "0x" + "aa" * 32, "0x" + "bb" * 32, "0x" + "00" * 12 + "cc" * 20]
    data = "0x" + "".join(f"{v:064x}" for v in (0x55, 1, 2, 0, 160, 0))
    log = {"address": address, "topics": topics, "data": data, "blockNumber": "0x5", "logIndex": "0x0"}
    decoded = decode_raw_log(log, address, "node")
    assert decoded is not None and decoded[2] == "cc" * 20 and decoded[8:] == (5, 0)
    assert decode_raw_log({**log, "address": "0x" + "22" * 20}, address, "node") is None
    assert decode_raw_log({**log, "topics": ["0x" + "00" * 32, *topics[1:]]}, address, "node") is None
    for broken in ({**log, "topics": "nope"}, {**log, "blockNumber": None}, {**log, "data": data[:-2]},
                   {**log, "topics": [*topics[:3], "0x" + "ff" * 32]}):
        with pytest.raises(IntegrityError):
            decode_raw_log(broken, address, "node")


@pytest.mark.parametrize("word, text", [
    (0, "-" + "0" * 62 + "1"),  # a negative codec, which int(..., 16) reads as -1
    (5, "+" + "0" * 63),  # a parent count with a sign
    (2, "0" * 62 + "_1"),  # a licence with an underscore, which int(..., 16) reads as 1
    (1, "0" * 62 + " 1"),  # a digest with a space, which bytes.fromhex skips
], ids=["negative-codec", "signed-count", "underscore-licence", "spaced-digest"])
def test_an_event_word_that_is_not_plain_hex_digits_is_refused(word, text):
    address = "0x" + "11" * 20
    topics = ["0x" + RECORD_PUBLISHED_TOPIC.hex(), "0x" + "aa" * 32, "0x" + "bb" * 32, "0x" + "00" * 12 + "cc" * 20]
    words = [f"{v:064x}" for v in (0x55, 1, 2, 0, 160, 0)]
    words[word] = text
    log = {"address": address, "topics": topics, "data": "0x" + "".join(words), "blockNumber": "0x5", "logIndex": "0x0"}
    with pytest.raises(IntegrityError):
        decode_raw_log(log, address, "node")


class ForgedEvents(Lie):
    """Answers every log query with 257 forged ``RecordPublished`` events (one more than one
    ``records(ids)`` call reads, so storage is read in a JSON-RPC batch) and every ``records``
    call with storage that agrees with them, except for ``garble``'s rewrite of its hex."""

    COUNT = 257

    def __init__(self, publisher_hex: str, garble) -> None:
        self.publisher_hex, self.garble = publisher_hex, garble

    def answer(self, call, answer, upstream):
        params = call.get("params") or [{}]
        if call.get("method") == "eth_getLogs":
            query = params[0]
            data = "0x" + "".join(f"{v:064x}" for v in (0x55, 1, 2, 0, 160, 0))
            logs = [{"address": query["address"], "blockNumber": query["fromBlock"], "logIndex": hex(n), "data": data,
                     "topics": ["0x" + RECORD_PUBLISHED_TOPIC.hex(), f"0x{n + 1:064x}", "0x" + "bb" * 32, "0x" + "00" * 12 + self.publisher_hex]}
                    for n in range(self.COUNT)]
            self.block = int(query["fromBlock"], 16)
            return {**answer, "result": logs}
        if call.get("method") == "eth_call" and str(params[0].get("data", "")).startswith(RECORDS_SELECTOR):
            count = (len(params[0]["data"]) - 2 - 8 - 128) // 64
            row = "00" * 12 + self.publisher_hex + f"{0:064x}" + f"{self.block:064x}" + f"{0:064x}" * 5 + f"{self.block:064x}"
            return {"jsonrpc": "2.0", "id": call["id"], "result": self.garble("0x" + f"{32:064x}{count:064x}" + row * count)}
        return answer


@pytest.mark.parametrize("publisher_hex, garble", [
    ("cc" * 20, lambda result: result[:300] + "zz" + result[302:]),  # storage (a block number) that is not hex
    ("zz" * 20, lambda result: result),  # a publisher topic that is not hex, storage agreeing with it
], ids=["storage-not-hex", "publisher-not-hex"])
def test_a_node_answering_events_or_batched_storage_that_are_not_hex_is_refused(anvil, published, publisher_hex, garble):
    registry, start, end = published
    with RpcProxy(anvil.url, ForgedEvents(publisher_hex, garble)) as proxy:
        lying = Registry(connect(proxy.url), registry.address, None, registry.deploy_block)
        with pytest.raises(IntegrityError, match="malformed"):
            scan_records(lying.reader, start, start)
