"""Commit-reveal publishing from several real processes with one key at once
(registry.publish.commit_reveal's per-key lock): a publisher has one commitment at a time on chain,
so without the lock each process's commitment replaces another's between its commit and its
reveal. Every process is a real ``python -m registry publish`` against a real anvil, sharing one
``$ELEMENTS_HOME`` (where the salts and the lock live), with overlapping files so that some records
are wanted by two processes at once. The same lock keeps a plain publish and a relay to one
sending process per account (else two race on the nonce and send the same claims twice)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
from eth_account import Account

from registry.publish.commit_reveal import CommitReveal, lock_path, publisher_lock
from registry.chain.errors import ChainError
from tests.cli_support import ROOT, clean_env, elements
from tests.publish_support import MODEL, funded_account

FILES = sorted(p for p in MODEL.iterdir() if p.suffix == ".json")
PROCESSES = 3


@pytest.mark.slow  # many processes at once
def test_processes_publishing_with_one_key_at_once_each_reveal_their_own_commitment_and_nothing_twice(anvil, anvil_registry, tmp_path):
    account = funded_account(anvil_registry.chain)
    env = clean_env(tmp_path / "home", ELEMENTS_PRIVATE_KEY="0x" + account.key.hex())
    # process i publishes files i and i+1: each file but the ends is wanted by two processes
    wanted = [FILES[i:i + 2] for i in range(PROCESSES)]
    runs = [
        subprocess.Popen([sys.executable, "-m", "registry", "--json", "--rpc-url", anvil.url, "publish", *map(str, files),
                          "--license", "MIT", "--commit-reveal"],
                         env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for files in wanted
    ]
    outcomes = [run.communicate(timeout=600) for run in runs]
    for run, (stdout, stderr) in zip(runs, outcomes):
        assert run.returncode == 0, stdout + stderr
    reports = [json.loads(stdout) for stdout, _ in outcomes]

    published: dict[str, int] = {}
    for report in reports:
        commits = {t["block"] for t in report["transactions"] if t["kind"] == "commit"}
        reveals = [t for t in report["transactions"] if t["kind"] == "reveal"]
        assert {t["priority_block"] for t in reveals} <= commits  # each revealed its own commitment
        assert [t["kind"] for t in report["transactions"]] in ([], ["commit", "reveal"])
        for record in report["records"]:
            assert record["status"] in ("published", "present")
            if record["status"] == "published":
                published[record["record_id"]] = published.get(record["record_id"], 0) + 1
    ids = {r["record_id"] for report in reports for r in report["records"]}
    assert len(ids) == PROCESSES + 1 and set(published) == ids and set(published.values()) == {1}  # all published, none twice
    for record in anvil_registry.records([bytes.fromhex(i[2:]) for i in sorted(ids)]):
        assert record.publisher == account.address and record.priority_block < record.block_number
    assert list((tmp_path / "home" / "commitments").iterdir()) == []  # every salt and the lock removed once revealed


def run_at_once(commands: list[list[str]], env: dict[str, str]) -> list[dict]:
    """``python -m registry --json COMMAND`` for every command at once; their JSON reports (each must succeed)."""
    runs = [subprocess.Popen([sys.executable, "-m", "registry", "--json", *command], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for command in commands]
    outcomes = [run.communicate(timeout=600) for run in runs]
    for run, (stdout, stderr) in zip(runs, outcomes):
        assert run.returncode == 0, stdout + stderr  # no nonce error, no lock timeout
    return [json.loads(stdout) for stdout, _ in outcomes]


def test_two_plain_publishes_from_one_key_at_once_send_the_claims_once_and_both_finish(anvil, anvil_registry, tmp_path):
    account = funded_account(anvil_registry.chain)
    env = clean_env(tmp_path / "home", ELEMENTS_PRIVATE_KEY="0x" + account.key.hex())
    publish = ["--rpc-url", anvil.url, "publish", *map(str, FILES[:2]), "--license", "MIT", "--no-commit-reveal"]
    reports = run_at_once([publish, publish], env)
    # The second to take the lock plans after the first has sent: it finds every claim there.
    assert sorted(len(r["transactions"]) for r in reports) == [0, 1]
    assert sorted(sorted(record["status"] for record in r["records"]) for r in reports) == [["present"] * 2, ["published"] * 2]
    assert anvil_registry.chain.w3.eth.get_transaction_count(account.address) == 1  # one transaction in all
    assert list((tmp_path / "home" / "commitments").iterdir()) == []  # the lock removed as it was let go


def test_two_relays_of_one_signed_file_from_one_relayer_at_once_both_finish_and_send_it_once(anvil, anvil_registry, tmp_path):
    relayer, publisher, signed = funded_account(anvil_registry.chain), funded_account(anvil_registry.chain, ether=0), tmp_path / "signed.json"
    done = elements(tmp_path / "signer", "--rpc-url", anvil.url, "publish", *map(str, FILES[2:4]), "--license", "MIT", "--sign-only", signed,
                    ELEMENTS_PRIVATE_KEY="0x" + publisher.key.hex())
    assert done.returncode == 0, done.stderr
    env = clean_env(tmp_path / "relayer", ELEMENTS_PRIVATE_KEY="0x" + relayer.key.hex())
    relay = ["--rpc-url", anvil.url, "relay", str(signed)]
    reports = run_at_once([relay, relay], env)
    # The second to take the lock checks the claims after the first has sent them: there already.
    assert sorted(sorted(record["status"] for record in r["records"]) for r in reports) == [["present"] * 2, ["published"] * 2]
    assert sorted(len(r["transactions"]) for r in reports) == [0, 2]  # one publishSigned a claim, each sent once
    assert anvil_registry.chain.w3.eth.get_transaction_count(relayer.address) == 2


def test_a_publisher_lock_held_past_the_timeout_is_a_one_line_error_and_a_killed_holder_frees_it(anvil_registry, tmp_path):
    registry = anvil_registry.with_account(funded_account(anvil_registry.chain))
    options = CommitReveal(tmp_path / "commitments", timeout=0.2, poll=0.05)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path / "commitments"), str(anvil_registry.chain.chain_id), anvil_registry.address,
         registry.account.address],
        env=clean_env(), cwd=ROOT, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(ChainError, match="another elements process has been publishing with .* run the same command again"):
            with publisher_lock(registry, options):
                pass
    finally:
        holder.kill()  # a crash: no clean-up runs, the kernel releases the lock
        holder.communicate(timeout=60)
    lock = lock_path(options.state_dir, registry, registry.account.address)
    assert lock.exists()  # left by the killed holder, unlocked
    with publisher_lock(registry, options):
        assert lock.exists()
    assert list(options.state_dir.iterdir()) == []  # removed by the holder as it let go


def test_a_publisher_lock_is_reentrant_in_its_thread_and_keeps_another_thread_out(anvil_registry, tmp_path):
    registry = anvil_registry.with_account(Account.create())
    options = CommitReveal(tmp_path / "commitments", timeout=0.2, poll=0.05)
    lock = lock_path(options.state_dir, registry, registry.account.address)
    refused: list[ChainError] = []

    def other_thread() -> None:
        try:
            with publisher_lock(registry, options):
                pass
        except ChainError as exc:
            refused.append(exc)

    with publisher_lock(registry, options):
        with publisher_lock(registry, options):  # a command's lock around a commit-reveal publish's own
            assert lock.exists()
        assert lock.exists()  # still held: the inner exit let nothing go
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert len(refused) == 1 and "another elements process has been publishing" in str(refused[0])
    assert list(options.state_dir.iterdir()) == []
    other_thread()  # free again once let go
    assert len(refused) == 1


# A process that takes a publisher's lock (of a registry named by chain id and address), says so,
# and holds it until its stdin closes.
HOLD_LOCK = """
import sys
from types import SimpleNamespace
from registry.publish.commit_reveal import CommitReveal, lock_path, publisher_lock
state_dir, chain_id, address, publisher = sys.argv[1:]
registry = SimpleNamespace(chain=SimpleNamespace(chain_id=int(chain_id)), address=address, account=SimpleNamespace(address=publisher))
with publisher_lock(registry, CommitReveal(state_dir)):
    print("locked", flush=True)
    sys.stdin.read()
"""

