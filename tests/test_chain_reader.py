"""The one reader of records (registry.chain.reader): used by the registry bindings and the resolver
alike, over plain JSON-RPC. A node that lies in the ABI of its answers (a huge array length, a
truncated records() answer, an event whose parents array claims more ids than it holds, a field
changed after the fact) is refused with one IntegrityError naming the endpoint, whichever reader asked."""

from __future__ import annotations

import os

import pytest

from registry.chain.connection import connect
from registry.chain.reader import (
    RECORD_PUBLISHED_TOPIC,
    ChainReader,
    RecordState,
    decode_event,
    decode_states,
    make_record,
    record_id_of,
)
from registry.chain.registry import Kind, Registry
from registry.chain.inputs import RecordInput
from registry.errors import IntegrityError
from registry.records.resolve import Resolver
from tests.rpc_support import RewriteLogData, RewriteRecords, RpcProxy

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
WORD = 32


def word(value: int) -> bytes:
    return value.to_bytes(WORD, "big")


@pytest.fixture(scope="module")
def published(anvil, anvil_registry):
    """A record with two parents on the session's anvil (fresh content: the chain is shared)."""
    chain = anvil.connect()
    registry = Registry.attach(chain).with_account(chain.dev_accounts[5])
    parents = [registry.publish(RecordInput(os.urandom(32), CID, 2, Kind.ELEMENT)) for _ in range(2)]
    child = registry.publish(RecordInput(os.urandom(32), CID, 2, Kind.COMPOSITION, tuple(parents)))
    return anvil, child, parents


def over(proxy: RpcProxy) -> Registry:
    return Registry.attach(connect(proxy.url))


def test_the_registry_and_the_resolver_read_the_same_record_through_the_one_reader(published):
    node, child, parents = published
    registry = Registry.attach(connect(node.url))
    record = registry.record(child)
    assert Resolver(registry).record(child) == record
    assert record.parents == tuple(sorted(parents)) and record_id_of(record.publisher, record) == child
    assert ChainReader(registry.chain, registry.address, registry.deploy_block).records([child]) == [record]


@pytest.mark.parametrize("rewrite, reason", [
    (lambda data: data[:WORD] + word(2**255) + data[2 * WORD:], "records()"),            # a huge array length
    (lambda data: data[:-WORD], "records()"),                                              # truncated by a word
    (lambda data: word(2**64) + data[WORD:], "records()"),                                 # an offset out of range
])
def test_a_records_answer_with_malformed_abi_is_refused_by_both_readers(published, rewrite, reason):
    node, child, _ = published
    with RpcProxy(node.url, RewriteRecords(rewrite)) as liar:
        registry = over(liar)
        for read in (lambda: registry.records([child]), lambda: Resolver(registry).graph([child], documents=False)):
            with pytest.raises(IntegrityError) as info:
                read()
            assert reason in str(info.value) and liar.url in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("rewrite", [
    lambda data: data[: 5 * WORD] + word(2**200) + data[6 * WORD:],     # parents: a huge length
    lambda data: data[:4 * WORD] + word(2**64) + data[5 * WORD:],        # parents: an offset out of range
    lambda data: data[: len(data) - WORD],                               # one parent short of its length
])
def test_an_event_whose_parents_array_lies_about_its_size_is_refused_by_both_readers(published, rewrite):
    node, child, _ = published
    with RpcProxy(node.url, RewriteLogData(rewrite)) as liar:
        registry = over(liar)
        for read in (lambda: registry.records([child]), lambda: Resolver(registry).graph([child], documents=False)):
            with pytest.raises(IntegrityError) as info:
                read()
            assert "malformed RecordPublished event" in str(info.value) and liar.url in str(info.value)


def test_an_event_field_changed_after_the_fact_does_not_hash_to_its_id(published):
    node, child, _ = published
    with RpcProxy(node.url, RewriteLogData(lambda data: word(_uint(data, 0)) + os.urandom(WORD) + data[2 * WORD:])) as liar:
        with pytest.raises(IntegrityError) as info:
            over(liar).records([child])
    assert "does not hash to its id" in str(info.value)


def _uint(data: bytes, index: int) -> int:
    return int.from_bytes(data[index * WORD : (index + 1) * WORD], "big")


# -- the decoders alone ---------------------------------------------------------------------------


def _log(data: bytes, rid: bytes = b"\x01" * 32, address: bytes = b"\xaa" * 20, **extra) -> dict:
    return {"topics": ["0x" + RECORD_PUBLISHED_TOPIC.hex(), "0x" + rid.hex(), "0x" + (b"\x02" * 32).hex(),
                       "0x" + (bytes(12) + b"\x03" * 20).hex()],
            "address": "0x" + address.hex(), "data": "0x" + data.hex(), "blockNumber": "0x5", "logIndex": "0x0",
            "transactionHash": "0x" + (b"\x04" * 32).hex(), **extra}


def _event_data(parents: int) -> bytes:
    return word(0x55) + b"\x06" * 32 + word(2) + word(0) + word(160) + word(parents) + b"\x07" * 32 * parents


def test_decoding_a_well_formed_event_and_joining_it_to_storage():
    event = decode_event(_log(_event_data(1)), b"\xaa" * 20, "node")
    assert event is not None and event.parents == (b"\x07" * 32,) and event.block_number == 5
    rid = record_id_of(event.publisher, event)
    event = event._replace(record_id=rid)
    state = RecordState(event.publisher, 2, 5, 0, 0x55, 1, False, 0, 5)
    assert make_record(rid, state, event, "node").publisher.lower() == "0x" + "03" * 20
    with pytest.raises(IntegrityError, match="storage and event disagree"):
        make_record(rid, state._replace(parent_count=2), event, "node")


def test_logs_of_another_contract_or_event_are_skipped_and_malformed_ones_refused():
    assert decode_event(_log(_event_data(0), address=b"\xbb" * 20), b"\xaa" * 20, "node") is None
    assert decode_event(_log(_event_data(0), removed=True), b"\xaa" * 20, "node") is None
    for bad in (_log(_event_data(0), blockNumber="0xzz"), _log(_event_data(0), transactionHash="0x12"),
                {**_log(_event_data(0)), "topics": ["0x12"]}, {**_log(_event_data(0)), "data": 7}):
        with pytest.raises(IntegrityError):
            decode_event(bad, b"\xaa" * 20, "node")
    with pytest.raises(IntegrityError, match="parents"):
        decode_event(_log(_event_data(128)), b"\xaa" * 20, "node")  # more than the registry's 127


def test_a_records_answer_of_the_wrong_size_or_with_wide_fields_is_refused():
    row = word(0x33) + word(2) + word(5) + word(0) + word(0x55) + word(0) + word(0) + word(0) + word(5)
    assert decode_states(word(32) + word(1) + row, 1, "node")[0].license_id == 2
    with pytest.raises(IntegrityError, match="for 2 ids"):
        decode_states(word(32) + word(1) + row, 2, "node")
    wide = word(0x33) + word(2**32) + row[2 * WORD:]  # a licence id wider than uint32
    with pytest.raises(IntegrityError, match="wider than 32 bits"):
        decode_states(word(32) + word(1) + wide, 1, "node")
