"""What is sent to the registry (registry.chain.inputs), as values: claims checked before they are
sent, commitments as the contract keeps them, and the EIP-712 messages a publisher signs."""

from __future__ import annotations

import pytest

from registry.chain.inputs import (
    COMMITMENT_KEPT,
    MAX_PARENTS,
    Commitment,
    RecordInput,
    commit_typed_data,
    commitment_of,
    kept_commitment,
    publish_typed_data,
)
from registry.chain.reader import Kind, record_id_of
from registry.errors import InputError

CID_RAW = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
PUBLISHER = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def test_a_claim_refuses_a_content_id_of_64_characters_holding_spaces():
    # The chain's own parser read "ab ab ab…" (64 characters, two spaces) as a 31-byte content id,
    # which then failed inside web3's encoder; the one parser of ids refuses it with one line.
    with pytest.raises(InputError, match="is not a content id"):
        RecordInput("ab ab " + "ab" * 29, CID_RAW, 1)


def test_a_claim_sorts_its_parents_and_refuses_a_parent_listed_twice():
    a, b = bytes([1]) * 32, bytes([2]) * 32
    assert RecordInput(bytes(32), CID_RAW, 1, Kind.COMPOSITION, (b, a)).parents == (a, b)
    with pytest.raises(InputError, match="listed twice"):
        RecordInput(bytes(32), CID_RAW, 1, Kind.COMPOSITION, (a, "0x" + a.hex()))


def test_a_claim_refuses_more_parents_than_the_contract_takes():
    parents = [i.to_bytes(32, "big") for i in range(1, MAX_PARENTS + 2)]
    with pytest.raises(InputError, match=f"at most {MAX_PARENTS} parents"):
        RecordInput(bytes(32), CID_RAW, 1, Kind.COMPOSITION, tuple(parents))


def test_a_claims_record_id_is_the_publishers_record_id_of_it():
    claim = RecordInput("0x" + "ab" * 32, CID_RAW, 1)
    assert claim.record_id(PUBLISHER) == record_id_of(PUBLISHER, claim)


def test_a_commitment_is_sent_with_only_the_bits_the_contract_keeps():
    commitment = commitment_of(PUBLISHER, b"\x07" * 32, [b"\x01" * 32])
    kept = kept_commitment(commitment)
    assert kept[:20] == commitment[:20] and kept[20:] == bytes(12)
    assert int.from_bytes(kept, "big") == int.from_bytes(commitment, "big") & COMMITMENT_KEPT
    assert Commitment(kept, 5, False).holds(commitment)


def test_the_signed_messages_name_the_registry_the_chain_and_every_field_of_the_claim():
    claim = RecordInput("0x" + "ab" * 32, CID_RAW, 3, Kind.ADAPTER, (b"\x01" * 32,))
    message = publish_typed_data(claim, PUBLISHER.lower(), 4, 99, 31337, REGISTRY)
    assert message["domain"]["chainId"] == 31337 and message["domain"]["verifyingContract"] == REGISTRY
    assert message["message"]["record"] == {
        "publisher": PUBLISHER, "contentId": claim.content_id, "cidCodec": claim.cid_codec, "cidDigest": claim.cid_digest,
        "licenseId": 3, "kind": int(Kind.ADAPTER), "parents": [b"\x01" * 32],
    }
    commit = commit_typed_data("0x" + "cd" * 32, 1, 2, 31337, REGISTRY)
    assert commit["message"] == {"commitment": bytes.fromhex("cd" * 32), "nonce": 1, "deadline": 2}
    with pytest.raises(InputError, match="is not a commitment"):
        commit_typed_data("0x12", 1, 2, 31337, REGISTRY)
