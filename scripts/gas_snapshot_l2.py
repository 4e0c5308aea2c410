#!/usr/bin/env python3
"""Measure the registry on an OP-stack chain (anvil --optimism) and write gas-snapshot-l2.json.

The scenario is scripts/gas_snapshot.py's, run on a fresh ``anvil --optimism``. For every
transaction it records the execution gas (the receipt's ``gasUsed``, which
``tests/test_chain_gas_l2.py`` checks equals gas-snapshot.json's), the calldata (bytes, zero and
non-zero), the signed transaction's size, its FastLZ size, and the L1 data fee under the OP Stack's
Fjord cost function at the reference prices of scripts/op_fees.py (anvil does not compute that fee:
see there). Batches are also given per record. Everything is a pure function of the pinned anvil,
the contract and the fixed inputs, so the file is exact and the test regenerates it.

It also measures what a tighter record layout would save, without deploying one: the same leaf
and batch of 50 re-encoded as packed bytes (``contentId | cidDigest | cidCodec | licenseId(4) |
kind | parentCount | parents``, 71 bytes a record without parents, against 256 in the ABI's
layout), sent as ``publishPacked(bytes)``, re-signed with the same nonce, gas and fees.

Usage::

    scripts/gas_snapshot_l2.py            # measure and write gas-snapshot-l2.json
    scripts/gas_snapshot_l2.py --check    # exit 1 if gas-snapshot-l2.json is stale
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eth_abi import decode, encode  # noqa: E402
from eth_utils import keccak  # noqa: E402

from registry.chain.devnet import Anvil  # noqa: E402
from registry.chain.network import Chain  # noqa: E402
from scripts.gas_snapshot import BATCH, run_scenario, write_or_check  # noqa: E402
from scripts.op_fees import REFERENCE_L2, L1Data, OpFeeParams, calldata_gas, l1_data  # noqa: E402

SNAPSHOT = ROOT / "gas-snapshot-l2.json"
_RECORD = "(bytes32,uint8,bytes32,uint32,uint8,bytes32[])"
_PACKED_SELECTOR = keccak(text="publishPacked(bytes)")[:4]
# The per-record rows: a batch's figures divided by its size.
PER_RECORD = {"publishBatch of 50": BATCH, "revealCommitment of 50": BATCH}


class OptimismAnvil(Anvil):
    """Anvil with its OP-stack features on (``--optimism``)."""

    def command(self) -> list[str]:
        return [*super().command(), "--optimism"]


def raw_transaction(chain: Chain, tx_hash: bytes) -> tuple[bytes, dict]:
    """The signed bytes (EIP-2718) of a mined transaction and its fields."""
    raw = bytes(chain.w3.eth.get_raw_transaction(tx_hash))
    return raw, dict(chain.w3.eth.get_transaction(tx_hash))


def row(data: L1Data, gas: int, params: OpFeeParams, divide: int = 1) -> dict[str, int]:
    """One operation's figures (divided by ``divide`` for a per-record row)."""
    l1_fee = data.l1_fee(params)
    l2_fee = gas * params.l2_gas_price
    figures = {
        "execution gas": gas,
        "calldata bytes": data.calldata_bytes,
        "calldata zero bytes": data.calldata_zero_bytes,
        "calldata non-zero bytes": data.calldata_nonzero_bytes,
        "signed transaction bytes": data.signed_bytes,
        "fastlz bytes": data.fastlz_bytes,
        "l1 gas (fjord estimate)": data.l1_gas(),
        "l1 data fee (wei)": l1_fee,
        "l2 execution fee (wei)": l2_fee,
        "total fee (wei)": l1_fee + l2_fee,
    }
    return {name: value // divide for name, value in figures.items()}


def pack_records(records: list[tuple]) -> bytes:
    """Records (decoded ABI tuples) in the packed layout this script measures."""
    out = bytearray()
    for content_id, codec, digest, license_id, kind, parents in records:
        out += content_id + digest + bytes([codec]) + license_id.to_bytes(4, "big") + bytes([kind, len(parents)])
        out += b"".join(parents)
    return bytes(out)


def packed_calldata(calldata: bytes) -> bytes:
    """``publish``'s or ``publishBatch``'s calldata re-encoded as ``publishPacked(bytes)``."""
    args = calldata[4:]
    try:
        [records] = decode([f"{_RECORD}[]"], args)
    except Exception:
        records = list(decode([_RECORD], args))
    return _PACKED_SELECTOR + encode(["bytes"], [pack_records(list(records))])


def resigned(chain: Chain, fields: dict, calldata: bytes) -> bytes:
    """The transaction ``fields`` describe, carrying ``calldata`` instead, signed by its sender."""
    [account] = [a for a in chain.dev_accounts if a.address == fields["from"]]
    tx = {
        "type": 2, "chainId": fields["chainId"], "nonce": fields["nonce"], "gas": fields["gas"], "to": fields["to"],
        "value": fields["value"], "maxFeePerGas": fields["maxFeePerGas"],
        "maxPriorityFeePerGas": fields["maxPriorityFeePerGas"], "data": calldata, "accessList": [],
    }
    return bytes(account.sign_transaction(tx).raw_transaction)


def measure_l2(params: OpFeeParams = REFERENCE_L2) -> dict[str, Any]:
    """Run the scenario on a fresh ``anvil --optimism`` and return the snapshot's content."""
    with tempfile.TemporaryDirectory(prefix="elements-gas-l2-") as tmp, OptimismAnvil(log=Path(tmp) / "anvil.log") as node:
        chain = node.connect()
        gas, txs = run_scenario(chain)
        operations: dict[str, dict[str, int]] = {}
        packed: dict[str, dict[str, int]] = {}
        for case, tx_hash in txs.items():
            raw, fields = raw_transaction(chain, tx_hash)
            calldata = bytes(fields["input"])
            data = l1_data(raw, calldata)
            operations[case] = row(data, gas[case], params)
            if case in PER_RECORD:
                operations[f"{case}, per record"] = row(data, gas[case], params, PER_RECORD[case])
            if case in ("publish leaf", "publishBatch of 50"):
                packed_data = packed_calldata(calldata)
                smaller = l1_data(resigned(chain, fields, packed_data), packed_data)
                divide = PER_RECORD.get(case, 1)
                figures = row(smaller, 0, params, divide)
                packed[case if divide == 1 else f"{case}, per record"] = {
                    "calldata bytes": figures["calldata bytes"],
                    "calldata zero bytes": figures["calldata zero bytes"],
                    "fastlz bytes": figures["fastlz bytes"],
                    "l1 data fee (wei)": figures["l1 data fee (wei)"],
                    "l1 data fee saved (wei)": operations[case]["l1 data fee (wei)"] // divide - figures["l1 data fee (wei)"],
                    "calldata gas saved on Ethereum": (calldata_gas(calldata) - calldata_gas(packed_data)) // divide,
                }
    return {
        "chain": "anvil 1.5.1 --optimism, a fresh chain; execution gas from receipts",
        "l1 fee model": "OP Stack Fjord: max(100, -42.5856 + 0.8365 * fastlz(signed tx)) bytes "
                        "* (16 * l1BaseFee * baseFeeScalar + blobBaseFee * blobBaseFeeScalar) / 1e6",
        "reference prices (assumed)": params.to_json(),
        "operations": dict(sorted(operations.items())),
        "packed record layout (measured, not deployed)": packed,
    }


def render(snapshot: dict[str, Any]) -> str:
    return json.dumps(snapshot, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if gas-snapshot-l2.json differs from a fresh measurement")
    args = parser.parse_args(argv)
    return write_or_check(SNAPSHOT, render(measure_l2()), args.check, "gas_snapshot_l2")


if __name__ == "__main__":
    sys.exit(main())
