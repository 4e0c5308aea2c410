#!/usr/bin/env python3
"""Measure the gas of every public function of the registry and write gas-snapshot.json.

Gas is measured on the in-process EVM (py-evm, Prague rules) with fixed inputs, so the numbers
are exact and reproducible; ``tests/test_chain_gas.py`` fails when the committed snapshot differs
from a fresh measurement or misses a goal. Every figure is the ``gasUsed`` of a whole transaction,
the 21,000 base included. Parent links are measured with parents published by another account
(the licence checks run, the dearer path). scripts/gas_snapshot_l2.py runs the same scenario on an
OP-stack chain and adds calldata and the L1 data fee (gas-snapshot-l2.json).

Usage::

    scripts/gas_snapshot.py            # measure and write gas-snapshot.json
    scripts/gas_snapshot.py --check    # exit 1 if gas-snapshot.json is stale
    scripts/gas_snapshot.py --rpc-url http://127.0.0.1:8545   # measure on another chain (print only)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eth_utils import keccak  # noqa: E402

from registry.files import atomic_write  # noqa: E402
from registry.chain import MAX_PARENTS, Kind, RecordInput, Registry, commitment_of, connect  # noqa: E402
from registry.chain.cids import join_cid  # noqa: E402
from registry.chain.network import Chain  # noqa: E402

SNAPSHOT = ROOT / "gas-snapshot.json"
CID = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"  # sha256("hello\n"), raw leaves
BATCH = 50
GOALS = {
    "publish leaf": 52_000,
    "publishBatch of 50, per record": 31_000,
    "parent link, each (max parents)": 23_000,
    "inherited restrictions, extra over a plain derivative": 25_000,
    "commit-reveal leaf, total": 80_000,
}


def _content(label: str) -> bytes:
    return keccak(text=f"elements gas snapshot: {label}")


def _cid(label: str) -> str:
    """A raw-leaves CIDv1 of its own for a record of a batch."""
    return join_cid(0x55, hashlib.sha256(f"elements gas snapshot: {label}".encode()).digest())


def measure(rpc_url: str = "memory") -> dict[str, int]:
    """Run the fixed scenario on a fresh registry and return ``{case: gas}``."""
    gas, _ = run_scenario(connect(rpc_url, dev_accounts=rpc_url != "memory"))
    return gas


def run_scenario(chain: Chain) -> tuple[dict[str, int], dict[str, bytes]]:
    """Run the fixed scenario on a fresh registry on ``chain``: ``({case: gas}, {case: hash of
    the transaction measured})``; the derived cases (per record, per link, totals) have no hash."""
    alice, bob, relayer = chain.dev_accounts[:3]
    deployer = Registry.deploy(chain, alice)
    gas: dict[str, int] = {}
    txs: dict[str, bytes] = {}
    # The deployment transaction (CREATE2 through the canonical deployer).
    block = chain.w3.eth.get_block(deployer.deploy_block, full_transactions=True)
    deploy_tx = [t for t in block["transactions"] if t["to"] and t["to"].lower() == "0x4e59b44847b379578588920ca78fbf26c0b4956c"]
    if deploy_tx:
        gas["deploy (CREATE2)"] = chain.w3.eth.get_transaction_receipt(deploy_tx[0]["hash"])["gasUsed"]
        txs["deploy (CREATE2)"] = bytes(deploy_tx[0]["hash"])
    reg = deployer.with_account(alice)
    by_bob = deployer.with_account(bob)
    mit = reg.license_by_spdx("MIT").license_id

    def took(case: str, receipt: dict | None) -> None:
        assert receipt is not None
        gas[case] = int(receipt["gasUsed"])
        txs[case] = bytes(receipt["transactionHash"])

    leaf = RecordInput(_content("leaf"), CID, mit, Kind.ELEMENT)
    reg.publish(leaf)
    took("publish leaf", reg.last_receipt)
    reg.publish(leaf)
    took("publish again (idempotent retry)", reg.last_receipt)

    # Parents from another publisher, so every link runs the licence checks.
    parents = by_bob.publish_batch([RecordInput(_content(f"parent {i}"), CID, mit, Kind.ELEMENT) for i in range(MAX_PARENTS)])
    for count in (1, 4, MAX_PARENTS):
        child = RecordInput(_content(f"child of {count}"), CID, mit, Kind.COMPOSITION, parents=parents[:count])
        reg.publish(child)
        took(f"publish with {count} parent{'s' if count > 1 else ''}", reg.last_receipt)
    gas["parent link, each (max parents)"] = (gas[f"publish with {MAX_PARENTS} parents"] - gas["publish leaf"]) // MAX_PARENTS

    # Derivatives of the publisher's own records: a plain one (the parent inherits nothing, so no
    # rule applies), and one whose parent inherited restrictions from another publisher (Bob's
    # non-commercial, share-alike original through Alice's derivative of it): those are checked
    # against the child's licence and carried on.
    reg.publish(RecordInput(_content("child of own leaf"), CID, mit, Kind.COMPOSITION, parents=[reg.record_id(leaf)]))
    took("publish with 1 own parent", reg.last_receipt)
    nc_sa = reg.license_by_spdx("CC-BY-NC-SA-4.0").license_id
    [original] = by_bob.publish_batch([RecordInput(_content("restricted original"), CID, nc_sa, Kind.ELEMENT)])
    carrier = reg.publish(RecordInput(_content("own derivative"), CID, nc_sa, Kind.ELEMENT, parents=[original]))
    reg.publish(RecordInput(_content("child of own derivative"), CID, nc_sa, Kind.COMPOSITION, parents=[carrier]))
    took("publish with 1 own parent carrying inherited restrictions", reg.last_receipt)
    gas["inherited restrictions, extra over a plain derivative"] = (
        gas["publish with 1 own parent carrying inherited restrictions"] - gas["publish with 1 own parent"]
    )

    # Each record of a batch has its own CID, as a model's elements do: one CID repeated 50 times
    # would let the OP Stack's compressed-size estimate (scripts/op_fees.py) find it 49 times.
    batch = [RecordInput(_content(f"batch {i}"), _cid(f"batch {i}"), mit, Kind.ELEMENT) for i in range(BATCH)]
    reg.publish_batch(batch)
    took("publishBatch of 50", reg.last_receipt)
    gas["publishBatch of 50, per record"] = gas["publishBatch of 50"] // BATCH

    relayed = reg.with_account(relayer)
    for label in ("first signature of a publisher", "next signature"):
        record = RecordInput(_content(f"signed {label}"), CID, mit, Kind.ELEMENT)
        signed = reg.sign_publish(record, alice, deadline=2**40)
        relayed.publish_signed(signed)
        took(f"publishSigned, {label}", relayed.last_receipt)

    # Commit-reveal: a publisher's first commitment writes a fresh slot, later ones rewrite it. The
    # salt is what the client draws: 12 random bytes, zero-padded (zero bytes are cheaper calldata).
    salt = _content("salt")[:12] + bytes(20)
    for label, content in (("first commitment of a publisher", "committed leaf 1"), ("next commitment", "committed leaf 2")):
        record = RecordInput(_content(content), CID, mit, Kind.ELEMENT)
        reg.commit(commitment_of(alice.address, salt, [reg.record_id(record)]))
        took(f"commitRecordIds, {label}", reg.last_receipt)
        _next_block(chain)
        reg.reveal(salt, [record])
        took(f"revealOne, leaf after the {label}", reg.last_receipt)
    gas["commit-reveal leaf, total"] = gas["commitRecordIds, next commitment"] + gas["revealOne, leaf after the next commitment"]
    committed = [RecordInput(_content(f"committed batch {i}"), _cid(f"committed batch {i}"), mit, Kind.ELEMENT) for i in range(BATCH)]
    reg.commit(commitment_of(alice.address, salt, [reg.record_id(r) for r in committed]))
    _next_block(chain)
    reg.reveal(salt, committed)
    took("revealCommitment of 50", reg.last_receipt)
    gas["revealCommitment of 50, per record"] = gas["revealCommitment of 50"] // BATCH
    # Relayed: the publisher signs the commitment, a relayer sends it and reveals.
    relayed_record = RecordInput(_content("relayed committed leaf"), CID, mit, Kind.ELEMENT)
    signed_commit = reg.sign_commit(commitment_of(alice.address, salt, [reg.record_id(relayed_record)]), alice, deadline=2**40)
    relayed.commit_signed(signed_commit)
    took("commitSigned", relayed.last_receipt)
    _next_block(chain)
    relayed.reveal_for(alice.address, salt, [relayed_record])
    took("revealCommitmentFor, one record", relayed.last_receipt)

    reg.yank(reg.record_id(leaf))
    took("yank", reg.last_receipt)
    reg.add_license("LicenseRef-Elements-Gas-Snapshot", 3)
    took("addLicense", reg.last_receipt)
    return gas, txs


def _next_block(chain) -> None:
    """A reveal must come in a later block than its commitment: mine an empty one where blocks come
    only with transactions (anvil estimates at the latest block, py-evm at the pending one)."""
    if chain.is_memory:
        chain.w3.testing.mine()
    else:
        chain.w3.provider.make_request("evm_mine", [])


def render(gas: dict[str, int]) -> str:
    return json.dumps(dict(sorted(gas.items())), indent=2) + "\n"


def write_or_check(snapshot: Path, text: str, check: bool, script: str) -> int:
    """The end of a snapshot script (``script``: this one, gas_snapshot_l2): with ``check``, exit
    status 0 when ``snapshot`` holds ``text`` and 1, naming the script to run, when it is stale;
    otherwise write ``text`` to it and print it."""
    if check:
        current = snapshot.read_text() if snapshot.exists() else ""
        if current != text:
            print(f"{script}: {snapshot.name} is stale; run scripts/{script}.py", file=sys.stderr)
            return 1
        print(f"{script}: {snapshot.name} is current")
        return 0
    atomic_write(snapshot, text)
    sys.stdout.write(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if gas-snapshot.json differs from a fresh measurement")
    parser.add_argument("--rpc-url", default="memory", help="measure on this chain (only 'memory' writes the snapshot)")
    args = parser.parse_args(argv)
    gas = measure(args.rpc_url)
    text = render(gas)
    if args.rpc_url != "memory":
        sys.stdout.write(text)
        return 0
    status = write_or_check(SNAPSHOT, text, args.check, "gas_snapshot")
    if not args.check:
        for name, goal in GOALS.items():
            print(f"goal {name}: {gas[name]:,} <= {goal:,} {'ok' if gas[name] <= goal else 'MISSED'}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
