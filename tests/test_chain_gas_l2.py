"""The committed OP-stack snapshot (gas-snapshot-l2.json) is current, covers every measured
transaction, agrees with the in-process EVM, and its fees follow from its own figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_abi import decode

from registry.chain import connect
from scripts import gas_snapshot, gas_snapshot_l2
from scripts.op_fees import OpFeeParams, calldata_gas, fjord_estimated_size

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = json.loads((ROOT / "gas-snapshot-l2.json").read_text())
OPERATIONS = COMMITTED["operations"]
PRICES = OpFeeParams(**COMMITTED["reference prices (assumed)"])


@pytest.fixture(scope="module")
def in_process():
    """The scenario on the in-process EVM: its chain, gas and transaction hashes."""
    chain = connect("memory")
    gas, txs = gas_snapshot.run_scenario(chain)
    return chain, gas, txs


def test_the_l2_gas_snapshot_is_current(anvil_binary):
    fresh = gas_snapshot_l2.measure_l2()
    assert gas_snapshot_l2.render(fresh) == (ROOT / "gas-snapshot-l2.json").read_text(), "stale: run scripts/gas_snapshot_l2.py"


@pytest.mark.slow  # the gas snapshot's scenario run again on py-evm (the module's in_process world)
def test_every_transaction_of_the_gas_snapshot_is_in_the_l2_snapshot(in_process):
    _, _, txs = in_process
    assert set(txs) | {f"{case}, per record" for case in gas_snapshot_l2.PER_RECORD} == set(OPERATIONS)


@pytest.mark.slow  # the gas snapshot's scenario run again on py-evm and on anvil --optimism
def test_anvil_in_optimism_mode_charges_the_execution_of_the_in_process_evm_calldata_apart(in_process):
    # The accounts differ (py-evm's and anvil's dev keys), so do record ids and signatures, and with
    # them how many calldata bytes are zero; everything else costs the same, except that a
    # signature whose v is 27 skips the check that v is 28 (one branch, the same for every one).
    chain, gas, txs = in_process
    branch = set()
    for case, tx_hash in txs.items():
        calldata = bytes(chain.w3.eth.get_transaction(tx_hash)["input"])
        l2 = OPERATIONS[case]
        l2_calldata_gas = 4 * l2["calldata zero bytes"] + 16 * l2["calldata non-zero bytes"]
        assert l2["calldata bytes"] == len(calldata), case
        difference = (gas[case] - calldata_gas(calldata)) - (l2["execution gas"] - l2_calldata_gas)
        if "Signed" in case and difference:
            branch.add(difference if calldata[-32] == 28 else -difference)  # v: the signature is the last word but one
        else:
            assert difference == 0, case
    assert len(branch) <= 1 and all(0 < d < 100 for d in branch), branch


def test_the_batch_and_the_leaf_cost_what_the_l1_snapshot_says_on_the_same_inputs():
    l1 = json.loads((ROOT / "gas-snapshot.json").read_text())
    for case in ("publish leaf", "publishBatch of 50", "revealCommitment of 50", "deploy (CREATE2)", "addLicense"):
        assert OPERATIONS[case]["execution gas"] == l1[case], case


def test_each_fee_follows_from_the_figures_beside_it():
    for case, row in OPERATIONS.items():
        if case.endswith(", per record"):
            continue
        estimated = fjord_estimated_size(row["fastlz bytes"])
        assert row["l1 gas (fjord estimate)"] == estimated * 16 // 10**6, case
        assert row["l1 data fee (wei)"] == estimated * PRICES.scaled() // 10**12, case
        assert row["l2 execution fee (wei)"] == row["execution gas"] * PRICES.l2_gas_price, case
        assert row["total fee (wei)"] == row["l1 data fee (wei)"] + row["l2 execution fee (wei)"], case
        assert row["calldata zero bytes"] + row["calldata non-zero bytes"] == row["calldata bytes"], case
        assert row["fastlz bytes"] <= row["signed transaction bytes"] + row["signed transaction bytes"] // 32 + 1, case


def test_a_record_of_a_batch_is_the_batch_divided_by_its_size():
    for case, size in gas_snapshot_l2.PER_RECORD.items():
        whole, each = OPERATIONS[case], OPERATIONS[f"{case}, per record"]
        assert each == {name: value // size for name, value in whole.items()}


def test_a_record_of_a_batch_compresses_to_less_than_half_of_a_publish_of_one():
    each, leaf = OPERATIONS["publishBatch of 50, per record"], OPERATIONS["publish leaf"]
    assert each["fastlz bytes"] < leaf["fastlz bytes"] / 2
    assert each["l1 data fee (wei)"] < leaf["l1 data fee (wei)"]


def test_the_packed_layout_carries_every_field_of_every_record():
    records = [
        (bytes([i + 1]) * 32, 0x55, bytes([i + 101]) * 32, 7 + i, i % 4, tuple(bytes([j + 1]) * 32 for j in range(i)))
        for i in range(3)
    ]
    packed = gas_snapshot_l2.pack_records(records)
    assert len(packed) == sum(71 + 32 * len(r[5]) for r in records)
    unpacked, at = [], 0
    for _ in records:
        content_id, digest = packed[at:at + 32], packed[at + 32:at + 64]
        codec, license_id = packed[at + 64], int.from_bytes(packed[at + 65:at + 69], "big")
        kind, count = packed[at + 69], packed[at + 70]
        parents = tuple(packed[at + 71 + 32 * j:at + 103 + 32 * j] for j in range(count))
        unpacked.append((content_id, codec, digest, license_id, kind, parents))
        at += 71 + 32 * count
    assert unpacked == records


def test_packed_calldata_re_encodes_a_batch_as_one_bytes_argument():
    from eth_abi import encode

    record = (bytes([1]) * 32, 0x70, bytes([2]) * 32, 3, 1, (bytes([4]) * 32,))
    batch = bytes(4) + encode([f"{gas_snapshot_l2._RECORD}[]"], [[record, record]])
    single = bytes(4) + encode([gas_snapshot_l2._RECORD], [record])
    for calldata, count in ((batch, 2), (single, 1)):
        packed = gas_snapshot_l2.packed_calldata(calldata)
        [payload] = decode(["bytes"], packed[4:])
        assert payload == gas_snapshot_l2.pack_records([record] * count)


def test_the_contract_docs_carry_the_l2_figures():
    docs = (ROOT / "docs" / "contract.md").read_text()
    for case in ("publish leaf", "publishBatch of 50, per record", "yank"):
        row = OPERATIONS[case]
        for name in ("calldata bytes", "fastlz bytes", "l1 data fee (wei)"):
            assert f"{row[name]:,}" in docs, f"docs/contract.md lacks {case} {name} = {row[name]:,}: update its L2 table"
