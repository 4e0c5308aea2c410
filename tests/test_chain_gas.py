"""The committed gas snapshot is current, covers every public function, and meets the goals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from registry.chain import MAX_PARENTS, Kind, RecordInput
from registry.chain.deploy import artifact
from scripts import gas_snapshot

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = json.loads((ROOT / "gas-snapshot.json").read_text())


@pytest.mark.slow  # every operation of the snapshot run again on py-evm (1,000-parent records included)
def test_the_gas_snapshot_is_current():
    fresh = gas_snapshot.measure("memory")
    assert gas_snapshot.render(fresh) == (ROOT / "gas-snapshot.json").read_text(), "stale: run scripts/gas_snapshot.py"


def test_every_state_changing_function_is_in_the_snapshot():
    writes = {i["name"] for i in artifact()["abi"] if i["type"] == "function" and i["stateMutability"] == "nonpayable"}
    assert writes == {"publish", "publishBatch", "publishSigned", "yank", "addLicense",
                      "commitRecordIds", "commitSigned", "revealOne", "revealCommitment", "revealCommitmentFor"}
    for name in writes:
        assert any(key.startswith(name) for key in COMMITTED), name
    for count in (1, 4, MAX_PARENTS):
        assert f"publish with {count} parent{'s' if count > 1 else ''}" in COMMITTED


def test_the_gas_goals_are_met():
    for name, goal in gas_snapshot.GOALS.items():
        assert COMMITTED[name] <= goal, f"{name}: {COMMITTED[name]} > {goal}"
    # every parent link, not only the average, stays under the per-link goal
    assert COMMITTED["publish with 1 parent"] - COMMITTED["publish leaf"] <= 23_000
    assert COMMITTED["publishBatch of 50"] <= 50 * 45_000


def test_anvil_charges_the_same_gas_as_the_in_process_evm(anvil_registry):
    chain = anvil_registry.chain
    fresh = Account.create()  # a publisher with no records, so the leaf below is new on the shared chain
    chain.transact(chain.dev_accounts[0], {"to": fresh.address, "value": 10**18}, gas=21_000)
    reg = anvil_registry.with_account(fresh)
    mit = reg.license_by_spdx("MIT").license_id
    reg.publish(RecordInput(gas_snapshot._content("leaf"), gas_snapshot.CID, mit, Kind.ELEMENT))
    assert reg.last_receipt["gasUsed"] == COMMITTED["publish leaf"]


def test_the_contract_docs_carry_the_current_figures():
    docs = (ROOT / "docs" / "contract.md").read_text()
    for name, gas in COMMITTED.items():
        assert f"{gas:,}" in docs, f"docs/contract.md lacks {name} = {gas:,}: update its gas table"
