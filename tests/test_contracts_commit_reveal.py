"""Commit-reveal priority on the registry (issue 16): commitments, reveals, priority blocks.

Runs on the in-process EVM and on anvil (``registry_on``); the same-block and front-running cases
need transactions ordered inside one block, so they run on an anvil of their own with automine off.
A hypothesis state machine holds the commitment rules (single use, only the publisher or, when
signed, anyone; never in the commitment's block; expiry after 255 blocks) against a model.
"""

from __future__ import annotations

import os

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from registry.chain import (
    COMMITMENT_EXPIRY,
    CommitmentError,
    Kind,
    RecordInput,
    Registry,
    SignatureError,
    claim_order,
    commitment_of,
)
from registry.chain.cids import join_cid
from registry.chain.devnet import Anvil

CID = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
MIT, NC = 2, 7


def record(content: bytes | None = None, license_id: int = MIT, parents=()) -> RecordInput:
    return RecordInput(content or os.urandom(32), CID, license_id, Kind.ELEMENT, tuple(parents))


def salt() -> bytes:
    return os.urandom(12) + bytes(20)


def mine(chain, blocks: int = 1) -> None:
    if chain.is_memory:
        chain.w3.testing.mine(blocks)
    else:
        chain.w3.provider.make_request("anvil_mine", [hex(blocks)])


def commit(reg: Registry, secret: bytes, records: list[RecordInput]) -> int:
    return reg.commit(commitment_of(reg.account.address, secret, [r.record_id(reg.account.address) for r in records]))


def people(reg: Registry):
    return tuple(reg.with_account(a) for a in reg.chain.dev_accounts[1:4])


# ---------------------------------------------------------------------------------------------
# on both chains


def test_a_revealed_record_carries_its_commitments_block_as_its_priority_block(registry_on):
    alice, _, _ = people(registry_on)
    secret, batch = salt(), [record(), record()]
    batch.append(record(parents=[batch[0].record_id(alice.account.address)]))  # a parent earlier in the reveal
    committed_at = commit(alice, secret, batch)
    on_chain = alice.commitment(alice.account.address)
    assert on_chain.block_number == committed_at and not on_chain.relayable
    assert on_chain.holds(commitment_of(alice.account.address, secret, [r.record_id(alice.account.address) for r in batch]))
    mine(alice.chain)
    ids = alice.reveal(secret, batch)
    for got in alice.records(ids):
        assert got.priority_block == committed_at < got.block_number
        assert got.to_json()["priority_block"] == committed_at
    direct = alice.publish(record())
    assert alice.record(direct).priority_block == alice.record(direct).block_number  # published directly


def test_one_record_is_revealed_through_the_single_record_entry_point(registry_on):
    alice, _, _ = people(registry_on)
    secret, leaf = salt(), record()
    committed_at = commit(alice, secret, [leaf])
    mine(alice.chain)
    [rid] = alice.reveal(secret, [leaf])
    sent = alice.chain.w3.eth.get_transaction(alice.last_receipt["transactionHash"])
    assert bytes(sent["input"])[:4] == keccak(text="revealOne(bytes32,(bytes32,uint8,bytes32,uint32,uint8,bytes32[]))")[:4]
    assert alice.record(rid).priority_block == committed_at


def test_a_commitment_is_used_once(registry_on):
    alice, _, _ = people(registry_on)
    secret, batch = salt(), [record(), record()]
    commit(alice, secret, batch)
    mine(alice.chain)
    alice.reveal(secret, batch)
    for again in (batch, batch[:1]):  # the records exist: nothing of the commitment can be revealed again
        with pytest.raises(CommitmentError) as info:
            alice.reveal(secret, again)
        assert info.value.error == "RecordExists"


def test_a_reveal_must_name_exactly_the_committed_records_with_the_salt(registry_on):
    alice, _, _ = people(registry_on)
    secret, batch = salt(), [record(), record()]
    commit(alice, secret, batch)
    mine(alice.chain)
    for wrong_salt, wrong_records in ((salt(), batch), (secret, batch[::-1]), (secret, [*batch, record()]), (secret, batch[:1])):
        with pytest.raises(CommitmentError) as info:
            alice.reveal(wrong_salt, wrong_records)
        assert info.value.error == "UnknownCommitment"
    alice.reveal(secret, batch)


def test_no_other_account_can_reveal_a_publishers_commitment(registry_on):
    alice, mallory, _ = people(registry_on)
    secret, batch = salt(), [record()]
    commit(alice, secret, batch)
    mine(alice.chain)
    with pytest.raises(CommitmentError) as own_slot:  # as her own: her commitment slot has no such thing
        mallory.reveal(secret, batch)
    assert own_slot.value.error == "UnknownCommitment"
    with pytest.raises(CommitmentError) as for_alice:  # on Alice's behalf: a direct commitment is hers alone
        mallory.reveal_for(alice.account.address, secret, batch)
    assert for_alice.value.error == "CommitmentNotRelayable"
    assert alice.exists([batch[0].record_id(alice.account.address)]) == [False]
    alice.reveal(secret, batch)


def test_a_new_commitment_replaces_the_previous_one(registry_on):
    alice, _, _ = people(registry_on)
    first, second = [record()], [record()]
    s1, s2 = salt(), salt()
    commit(alice, s1, first)
    commit(alice, s2, second)
    mine(alice.chain)
    with pytest.raises(CommitmentError) as info:
        alice.reveal(s1, first)
    assert info.value.error == "UnknownCommitment"
    alice.reveal(s2, second)


def test_a_commitment_expires_after_255_blocks(registry_on):
    alice, _, _ = people(registry_on)
    assert alice.contract.functions.COMMITMENT_EXPIRY().call() == COMMITMENT_EXPIRY == 255
    secret, late = salt(), [record()]
    committed_at = commit(alice, secret, late)
    mine(alice.chain, COMMITMENT_EXPIRY)  # the reveal's block would be committed_at + 256
    with pytest.raises(CommitmentError) as info:
        alice.reveal(secret, late)
    assert info.value.error == "CommitmentExpired" and info.value.values == {"commitBlock": committed_at, "lastBlock": committed_at + 255}
    assert alice.commitment(alice.account.address).expired(alice.chain.block_number())
    secret, in_time = salt(), [record()]
    committed_at = commit(alice, secret, in_time)
    mine(alice.chain, COMMITMENT_EXPIRY - 1)  # revealed exactly 255 blocks after: the last block allowed
    [rid] = alice.reveal(secret, in_time)
    got = alice.record(rid)
    assert got.block_number - got.priority_block == 255 and got.priority_block == committed_at


def test_a_signed_commitment_is_sent_and_revealed_by_a_relayer(registry_on):
    alice, _, relayer = people(registry_on)
    secret, batch = salt(), [record(), record()]
    commitment = commitment_of(alice.account.address, secret, [r.record_id(alice.account.address) for r in batch])
    nonce = alice.nonce(alice.account.address)
    signed = alice.sign_commit(commitment, deadline=2**40)
    committed_at = relayer.commit_signed(signed)
    assert alice.nonce(alice.account.address) == nonce + 1  # the nonce is shared with publishSigned
    assert alice.commitment(alice.account.address).relayable
    with pytest.raises(SignatureError):  # the same signature cannot commit twice
        relayer.commit_signed(signed)
    mine(alice.chain)
    ids = relayer.reveal_for(alice.account.address, secret, batch)
    assert [(r.publisher, r.priority_block) for r in alice.records(ids)] == [(alice.account.address, committed_at)] * 2


def test_claims_are_ordered_by_priority_block(registry_on):
    alice, mallory, _ = people(registry_on)
    content = os.urandom(32)
    secret = salt()
    commit(alice, secret, [record(content)])
    mine(registry_on.chain)
    mallory.publish(record(content, NC))  # published directly, after Alice's commitment
    alice.reveal(secret, [record(content)])
    claims = registry_on.claims(content)
    assert [c.publisher for c in claims] == [alice.account.address, mallory.account.address]
    assert claims == sorted(claims, key=claim_order)
    assert claims[0].block_number > claims[1].block_number  # published later, earlier priority


# ---------------------------------------------------------------------------------------------
# ordering inside a block: an anvil with automine off


@pytest.fixture(scope="module")
def manual_anvil(anvil_binary, tmp_path_factory):
    node = Anvil(binary=anvil_binary, log=tmp_path_factory.mktemp("anvil-manual") / "anvil.log").start()
    try:
        chain = node.connect()
        registry = Registry.deploy(chain, chain.dev_accounts[0])
        chain.w3.provider.make_request("evm_setAutomine", [False])
        yield registry
    finally:
        node.stop()


def send(reg: Registry, function: str, args: list, tip_gwei: int = 1) -> bytes:
    """Sign and send a registry call without waiting (the block is mined by the test)."""
    account, w3 = reg.account, reg.chain.w3
    base_fee = int(w3.eth.get_block("latest")["baseFeePerGas"])
    tx = {
        "from": account.address, "to": reg.address, "data": reg.contract.encode_abi(function, args=args), "value": 0,
        "chainId": reg.chain.chain_id, "nonce": w3.eth.get_transaction_count(account.address, "pending"), "gas": 400_000,
        "maxPriorityFeePerGas": tip_gwei * 10**9, "maxFeePerGas": 2 * base_fee + tip_gwei * 10**9,
    }
    return bytes(w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction))


def mine_block(reg: Registry) -> dict:
    reg.chain.w3.provider.make_request("evm_mine", [])
    return reg.chain.w3.eth.get_block("latest")


def pending_registry_calls(reg: Registry) -> list[tuple[str, dict]]:
    """What a mempool watcher sees: the pending calls to the registry, decoded."""
    pending = reg.chain.w3.eth.get_block("pending", full_transactions=True)["transactions"]
    calls = []
    for tx in pending:
        if tx["to"] and tx["to"].lower() == reg.address.lower():
            function, args = reg.contract.decode_function_input(tx["input"])
            calls.append((function.fn_name, args))
    return calls


def test_a_reveal_in_the_commitments_own_block_is_refused(manual_anvil):
    reg = manual_anvil
    alice = reg.with_account(reg.chain.dev_accounts[5])
    secret, leaf = salt(), record()
    commitment = commitment_of(alice.account.address, secret, [leaf.record_id(alice.account.address)])
    first = send(alice, "commitRecordIds", [commitment])
    second = send(alice, "revealOne", [secret, leaf.as_abi()])
    block = mine_block(reg)
    receipts = [reg.chain.w3.eth.get_transaction_receipt(h) for h in (first, second)]
    assert [r["blockNumber"] for r in receipts] == [block["number"]] * 2
    assert [r["status"] for r in receipts] == [1, 0]
    with pytest.raises(CommitmentError) as info:  # replayed at that block: the reason
        reg.chain.call({"from": alice.account.address, "to": reg.address,
                        "data": reg.contract.encode_abi("revealOne", args=[secret, leaf.as_abi()])}, None, block["number"])
    assert info.value.error == "CommitmentTooRecent" and info.value.values == {"commitBlock": block["number"]}
    assert alice.exists([leaf.record_id(alice.account.address)]) == [False]


def test_mallory_front_running_alices_reveal_lands_first_but_alice_keeps_priority(manual_anvil):
    reg = manual_anvil
    alice, mallory = (reg.with_account(a) for a in reg.chain.dev_accounts[6:8])
    content, secret = os.urandom(32), salt()
    model = record(content, MIT)
    send(alice, "commitRecordIds", [commitment_of(alice.account.address, secret, [model.record_id(alice.account.address)])])
    committed_at = mine_block(reg)["number"]
    assert pending_registry_calls(reg) == []  # the commitment showed nothing of the content

    alice_reveal = send(alice, "revealOne", [secret, model.as_abi()], tip_gwei=1)
    # Mallory reads Alice's reveal in the mempool, copies the content id and CID, and claims them
    # herself under stricter terms with a far higher tip, so her transaction is mined first.
    [(function, args)] = pending_registry_calls(reg)
    assert function == "revealOne"
    seen = args["input"]
    copy = RecordInput(seen["contentId"], join_cid(seen["cidCodec"], seen["cidDigest"]), NC, Kind.ELEMENT)
    assert copy.content_id == content
    mallory_copy = send(mallory, "publish", [copy.as_abi()], tip_gwei=50)
    block = mine_block(reg)

    receipts = {name: reg.chain.w3.eth.get_transaction_receipt(h) for name, h in (("alice", alice_reveal), ("mallory", mallory_copy))}
    assert all(r["status"] == 1 and r["blockNumber"] == block["number"] for r in receipts.values())
    assert receipts["mallory"]["transactionIndex"] < receipts["alice"]["transactionIndex"]  # Mallory landed first
    claims = reg.claims(content)
    assert [c.publisher for c in claims] == [alice.account.address, mallory.account.address]  # earliest first
    alice_claim, mallory_claim = claims
    assert alice_claim.priority_block == committed_at < mallory_claim.priority_block == block["number"]
    assert mallory_claim.log_index < alice_claim.log_index  # published first, yet later in priority


def test_without_a_commitment_the_front_runner_takes_priority(manual_anvil):
    # The threat itself: a direct publish seen in the mempool is copied and lands first.
    reg = manual_anvil
    alice, mallory = (reg.with_account(a) for a in reg.chain.dev_accounts[8:10])
    content = os.urandom(32)
    send(alice, "publish", [record(content, MIT).as_abi()], tip_gwei=1)
    [(_, args)] = pending_registry_calls(reg)
    seen = args["input"]
    send(mallory, "publish", [RecordInput(seen["contentId"], join_cid(seen["cidCodec"], seen["cidDigest"]), NC, Kind.ELEMENT).as_abi()],
         tip_gwei=50)
    mine_block(reg)
    assert [c.publisher for c in reg.claims(content)] == [mallory.account.address, alice.account.address]


# ---------------------------------------------------------------------------------------------
# the rules of commitments, against a model


class CommitmentMachine(RuleBasedStateMachine):
    """Three publishers and a relayer commit, wait, and try reveals of every kind (their own, someone
    else's, with the wrong salt, too early, too late, twice); the model says which succeed. Runs on
    an anvil of its own (mining 255 blocks is one call there), rewound to a snapshot per example."""

    registry: Registry  # set by the fixture

    @initialize()
    def setup(self):
        chain = self.registry.chain
        self.snapshot = chain.w3.provider.make_request("evm_snapshot", [])["result"]
        self.accounts = chain.dev_accounts[1:4]
        self.relayer = self.registry.with_account(chain.dev_accounts[4])
        self.commitments: dict[str, dict] = {}  # publisher -> {"salt", "records", "block", "relayable"}
        self.published: dict[bytes, int] = {}  # record id -> priority block
        self.before = len(self.registry.all_records())

    def teardown(self):
        if hasattr(self, "snapshot"):
            chain = self.registry.chain
            chain.w3.provider.make_request("evm_revert", [self.snapshot])
            chain._nonces.clear()  # the node forgot the transactions sent since the snapshot

    def as_(self, who: int) -> Registry:
        return self.registry.with_account(self.accounts[who])

    @rule(who=st.integers(0, 2), count=st.integers(1, 3), signed=st.booleans())
    def commit(self, who, count, signed):
        reg = self.as_(who)
        publisher = reg.account.address
        secret, batch = salt(), [record() for _ in range(count)]
        commitment = commitment_of(publisher, secret, [r.record_id(publisher) for r in batch])
        if signed:
            block = self.relayer.commit_signed(reg.sign_commit(commitment, deadline=2**40))
        else:
            block = reg.commit(commitment)
        self.commitments[publisher] = {"salt": secret, "records": batch, "block": block, "relayable": signed}

    @rule(blocks=st.sampled_from([1, 2, 100, COMMITMENT_EXPIRY - 1, COMMITMENT_EXPIRY]))
    def wait(self, blocks):
        mine(self.registry.chain, blocks)

    @precondition(lambda self: self.commitments)
    @rule(who=st.integers(0, 2), owner=st.integers(0, 2), how=st.sampled_from(["own", "own", "for", "relayer"]),
          wrong_salt=st.sampled_from([False, False, False, True]))
    def reveal(self, who, owner, how, wrong_salt):
        publisher = sorted(self.commitments)[owner % len(self.commitments)]
        entry = self.commitments[publisher]
        secret = salt() if wrong_salt else entry["salt"]
        caller = self.relayer if how == "relayer" else self.as_(who)
        # anvil estimates at the latest block and mines the reveal in the next one.
        latest = self.registry.chain.block_number()
        age, age_mined = latest - entry["block"], latest + 1 - entry["block"]
        # The contract publishes the records, then checks the commitment (one pass): a record that
        # exists already is the first error (unless the reveal is in the commitment's block, where
        # the records are published as if directly and an existing one is skipped).
        revealer = caller.account.address if how == "own" else publisher
        ids = [r.record_id(revealer) for r in entry["records"]]
        if age and any(i in self.published for i in ids):
            expected = "RecordExists"
        elif how == "own" and caller.account.address != publisher or wrong_salt:
            expected = "UnknownCommitment"
        elif how != "own" and caller.account.address != publisher and not entry["relayable"]:
            expected = "CommitmentNotRelayable"
        elif age == 0:
            expected = "CommitmentTooRecent"
        elif age_mined > COMMITMENT_EXPIRY:
            expected = "CommitmentExpired"
        else:
            expected = None
        event(f"reveal: {expected or 'published'}")
        if how == "own":
            attempt = lambda: caller.reveal(secret, entry["records"])  # noqa: E731
        else:
            attempt = lambda: caller.reveal_for(publisher, secret, entry["records"])  # noqa: E731
        if expected is None:
            attempt()
            for rid in ids:
                self.published[rid] = entry["block"]
        else:
            with pytest.raises(CommitmentError) as info:
                attempt()
            assert info.value.error == expected

    @invariant()
    def every_revealed_record_dates_from_its_commitment_and_nothing_else_exists(self):
        if not hasattr(self, "published"):
            return
        if self.published:
            got = self.registry.records(list(self.published))
            for rid, rec in zip(self.published, got):
                assert rec.priority_block == self.published[rid]
                assert 1 <= rec.block_number - rec.priority_block <= COMMITMENT_EXPIRY
        # nothing revealed twice, nothing else created
        assert len(self.registry.all_records()) == self.before + len(self.published)


@pytest.fixture(scope="module")
def machine_anvil(anvil_binary, tmp_path_factory):
    node = Anvil(binary=anvil_binary, log=tmp_path_factory.mktemp("anvil-machine") / "anvil.log").start()
    try:
        chain = node.connect()
        yield Registry.deploy(chain, chain.dev_accounts[0])
    finally:
        node.stop()


@pytest.mark.slow  # a stateful run on anvil
def test_commitments_are_single_use_theirs_alone_never_same_block_and_expire(machine_anvil):
    from hypothesis.stateful import run_state_machine_as_test

    class OnAnvil(CommitmentMachine):
        registry = machine_anvil

    run_state_machine_as_test(
        OnAnvil, settings=settings(max_examples=25, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    )
