"""Commit-reveal publishing from the client (registry.publish.commit_reveal): the records carry
their commitment's block as priority block, one commitment covers a whole publish-model, and a
publish interrupted between commit and reveal resumes from the salt it kept (or replaces an
expired commitment). The interruptions are real: a proxy that cuts the JSON-RPC connection after
the node acted on a transaction, in front of a real anvil."""

from __future__ import annotations

import json

import threading
import time

import pytest

from registry.chain import COMMITMENT_EXPIRY, Registry, connect
from registry.chain.errors import RpcUnavailableError
from registry.chain.connection import anvil_dev_accounts
from registry.publish.model import publish_model
from registry.publish.commit_reveal import CommitReveal, load_pending, pending_path, publish_committed, wait_until_mined
from registry.publish.send import publish_elements
from registry.publish.signed import SignedCommitment, load_signed, relay_signed, sign_elements, write_signed
from registry.formats.split import split_model
from registry.errors import InputError
from registry.storage.blockstore import BlockStore
from tests.publish_support import MODEL, DroppingProxy, funded_account


@pytest.fixture(scope="module")
def element_files(tmp_path_factory):
    split = split_model(MODEL, tmp_path_factory.mktemp("split") / "minilm")
    return [split.out_dir / e.path for e in split.elements]


def test_published_records_carry_the_commitments_block_and_the_salt_is_cleaned_up(memory_registry, element_files, tmp_path):
    registry = memory_registry
    seen = []
    options = CommitReveal(tmp_path / "commitments", wait_progress=lambda done, total: seen.append((done, total)))
    report = publish_elements(registry, element_files[:3], BlockStore(tmp_path / "blocks"), license="MIT", commit_reveal=options)
    commit, reveal = report.transactions
    assert (commit.kind, reveal.kind) == ("commit", "reveal") and (commit.records, reveal.records) == (0, 3)
    assert reveal.priority_block == commit.block < reveal.block
    for record in registry.records([r.claim.record_id for r in report.results]):
        assert record.priority_block == commit.block
    assert seen and seen[-1] == (1, 1)  # waited for the block after the commitment
    assert not pending_path(options.state_dir, registry, registry.account.address).exists()
    assert report.to_json()["transactions"][1]["priority_block"] == commit.block


def test_one_commitment_covers_a_whole_publish_model_within_a_tenth_more_gas(memory_registry, tmp_path):
    registry = memory_registry
    # anvil's first dev account, as docs/publishing.md measures it (the same calldata as there)
    publisher = anvil_dev_accounts(1)[0]
    registry.chain.transact(registry.chain.dev_accounts[0], {"to": publisher.address, "value": 10**20}, gas=21_000)
    alice = registry.with_account(publisher)
    report = publish_model(alice, BlockStore(tmp_path / "blocks"), MODEL, license="Apache-2.0", batch_size=8,
                           commit_reveal=CommitReveal(tmp_path / "commitments"))
    commit, reveal = report.publish.transactions  # one commitment, one reveal, whatever the batch size
    assert reveal.records == 20
    assert {r.priority_block for r in registry.records([c.record_id for c in report.elements])} == {commit.block}
    total = commit.gas_used + reveal.gas_used
    assert total <= 1.1 * 641_555, total  # the goal: within 10% of publish-model without commit-reveal


def test_a_dry_run_estimates_the_commitment_too_and_sends_nothing(memory_registry, element_files, tmp_path):
    registry = memory_registry
    options = CommitReveal(tmp_path / "commitments")
    direct = publish_elements(registry, element_files[:2], None, license="MIT", dry_run=True)
    committed = publish_elements(registry, element_files[:2], None, license="MIT", dry_run=True, commit_reveal=options)
    assert committed.estimate.transactions == 2 * direct.estimate.transactions
    assert committed.estimate.gas > direct.estimate.gas + 21_000
    assert committed.transactions == [] and not options.state_dir.exists()
    assert registry.commitment(registry.account.address) is None


def test_a_publish_cut_off_after_its_commitment_resumes_by_revealing_it(anvil, anvil_registry, element_files, tmp_path):
    account = funded_account(anvil_registry.chain)
    proxy = DroppingProxy(anvil.url, "eth_sendRawTransaction", 1)  # the commitment reaches the node, the answer never comes
    try:
        through_proxy = Registry(connect(proxy.url, expected_chain_id=anvil_registry.chain.chain_id), anvil_registry.address, account,
                                 anvil_registry.deploy_block)
        store, options = BlockStore(tmp_path / "blocks"), CommitReveal(tmp_path / "commitments")
        with pytest.raises(RpcUnavailableError):
            publish_elements(through_proxy, element_files[:2], store, license="MIT", commit_reveal=options)
        pending = load_pending(options.state_dir, anvil_registry, account.address)
        # The node has the commitment; under load it may not have mined it yet when the cut comes.
        wait_until_mined(anvil_registry.chain, account.address, timeout=60)
        on_chain = anvil_registry.commitment(account.address)
        assert pending is not None and on_chain is not None and on_chain.holds(pending.commitment)

        proxy.restore()
        resumed = publish_elements(through_proxy, element_files[:2], store, license="MIT", commit_reveal=options)
        [reveal] = resumed.transactions  # no second commitment: the kept salt revealed the first
        assert reveal.kind == "reveal" and reveal.priority_block == on_chain.block_number
        assert len(resumed.published) == 2
        assert {r.priority_block for r in anvil_registry.records(list(pending.record_ids))} == {on_chain.block_number}
        assert load_pending(options.state_dir, anvil_registry, account.address) is None
    finally:
        proxy.close()


def test_a_resume_while_the_cut_off_commitment_is_still_unmined_waits_for_it_instead_of_committing_again(
        anvil, anvil_registry, element_files, tmp_path):
    account = funded_account(anvil_registry.chain)
    chain = anvil_registry.chain
    proxy = DroppingProxy(anvil.url, "eth_sendRawTransaction", 1)
    chain.request("evm_setAutomine", [False], "holding transactions unmined")
    try:
        through_proxy = Registry(connect(proxy.url, expected_chain_id=chain.chain_id), anvil_registry.address, account,
                                 anvil_registry.deploy_block)
        store, options = BlockStore(tmp_path / "blocks"), CommitReveal(tmp_path / "commitments")
        with pytest.raises(RpcUnavailableError):
            publish_elements(through_proxy, element_files[4:6], store, license="MIT", commit_reveal=options)
        assert chain.unmined(account.address) == 1 and anvil_registry.commitment(account.address) is None

        def mine_later():
            time.sleep(1.0)  # the resumed run is waiting by then (if it committed again, it would have sent it)
            chain.request("evm_setAutomine", [True], "mining again")
            chain.request("evm_mine", [], "mining the held commitment")

        miner = threading.Thread(target=mine_later)
        miner.start()
        proxy.restore()
        resumed = publish_elements(through_proxy, element_files[4:6], store, license="MIT", commit_reveal=options)
        miner.join()
        [reveal] = resumed.transactions  # the held commitment was waited for and revealed, not replaced
        assert reveal.kind == "reveal" and len(resumed.published) == 2
    finally:
        chain.request("evm_setAutomine", [True], "mining again")
        proxy.close()


def test_a_publish_cut_off_after_its_reveal_finds_everything_on_chain(anvil, anvil_registry, element_files, tmp_path):
    account = funded_account(anvil_registry.chain)
    proxy = DroppingProxy(anvil.url, "eth_sendRawTransaction", 2)  # the reveal reaches the node, the answer never comes
    try:
        through_proxy = Registry(connect(proxy.url, expected_chain_id=anvil_registry.chain.chain_id), anvil_registry.address, account,
                                 anvil_registry.deploy_block)
        store, options = BlockStore(tmp_path / "blocks"), CommitReveal(tmp_path / "commitments")
        with pytest.raises(RpcUnavailableError):
            publish_elements(through_proxy, element_files[2:4], store, license="MIT", commit_reveal=options)
        assert pending_path(options.state_dir, anvil_registry, account.address).exists()
        proxy.restore()
        again = publish_elements(through_proxy, element_files[2:4], store, license="MIT", commit_reveal=options)
        assert len(again.present) == 2 and again.transactions == []
        assert not pending_path(options.state_dir, anvil_registry, account.address).exists()  # the stale salt is gone
    finally:
        proxy.close()


def test_an_expired_commitment_is_replaced_by_a_new_one(memory_registry, element_files, tmp_path):
    registry = memory_registry
    options = CommitReveal(tmp_path / "commitments")
    records = [publish_elements(registry, element_files[:1], None, license="MIT", dry_run=True).results[0].claim.record]
    old_block = registry.commit(b"\x01" * 32)  # something else committed, long ago
    registry.chain.w3.testing.mine(COMMITMENT_EXPIRY + 1)
    with pytest.raises(KeyboardInterrupt):  # a run stopped right after its commitment
        _stop_before_reveal(registry, records, options)
    first = registry.commitment(registry.account.address).block_number
    assert first > old_block
    registry.chain.w3.testing.mine(COMMITMENT_EXPIRY)  # it expires before the rerun
    committed = publish_committed(registry, records, options)
    assert committed.commit_receipt is not None and committed.commit_block > first  # replaced, not revealed late
    assert registry.records([records[0].record_id(registry.account.address)])[0].priority_block == committed.commit_block


def _stop_before_reveal(registry: Registry, records, options: CommitReveal) -> None:
    original = registry.reveal

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    registry.reveal = interrupted
    try:
        publish_committed(registry, records, options)
    finally:
        registry.reveal = original


def test_a_state_file_for_other_records_or_unreadable_is_replaced(memory_registry, element_files, tmp_path):
    registry = memory_registry
    options = CommitReveal(tmp_path / "commitments")
    path = pending_path(options.state_dir, registry, registry.account.address)
    path.parent.mkdir(parents=True)
    path.write_text("[" * 100_000)  # hostile or torn: counts as no commitment
    assert load_pending(options.state_dir, registry, registry.account.address) is None
    report = publish_elements(registry, element_files[:1], None, license="MIT", commit_reveal=options)
    assert [t.kind for t in report.transactions] == ["commit", "reveal"]
    assert not path.exists()

    # A run for other records was stopped after its commitment; this run's records get their own.
    others = [publish_elements(registry, element_files[1:2], None, license="MIT", dry_run=True).results[0].claim.record]
    with pytest.raises(KeyboardInterrupt):
        _stop_before_reveal(registry, others, options)
    stale = load_pending(options.state_dir, registry, registry.account.address)
    report = publish_elements(registry, element_files[2:3], None, license="MIT", commit_reveal=options)
    assert [t.kind for t in report.transactions] == ["commit", "reveal"]
    assert not registry.commitment(registry.account.address).holds(stale.commitment)


def test_a_signed_commitment_is_relayed_and_an_interrupted_relay_resumes(memory_registry, element_files, tmp_path):
    registry = memory_registry
    publisher, relayer = (registry.with_account(a) for a in registry.chain.dev_accounts[1:3])
    store = BlockStore(tmp_path / "blocks")
    claims, signed = sign_elements(publisher, element_files[:2], store, license="MIT", commit_reveal=True)
    assert isinstance(signed, SignedCommitment) and len(signed.claims) == 2
    path = write_signed(tmp_path / "signed.json", publisher, signed)
    document = load_signed(path)
    assert "signature" not in document["records"][0] and document["commitment"]["nonce"] == 0

    tampered = json.loads(path.read_text())
    tampered["records"] = tampered["records"][:1]
    with pytest.raises(InputError, match="do not hash to its signed commitment"):
        relay_signed(relayer, tampered)

    # A relay stopped after the commitment: the rerun reveals it (the nonce is used, the commitment live).
    relayer.commit_signed(signed.signed)
    report = relay_signed(relayer, document)
    [reveal] = report.transactions
    assert reveal.kind == "reveal" and len(report.published) == 2
    for record in registry.records([c.record_id for c in claims]):
        assert record.publisher == publisher.account.address and record.priority_block == reveal.priority_block
    again = relay_signed(relayer, document)
    assert again.transactions == [] and len(again.present) == 2
