#!/usr/bin/env python3
"""What publishing costs: the real all-MiniLM-L6-v2 on an OP-stack L2 and on Sepolia.

Publishes the model as ``elements publish-model`` does (the same function, its default split and
batch size, licence Apache-2.0) on a fresh ``anvil --optimism``, reads back every transaction it
sent (receipt and signed bytes), and prices them at stated gas prices: on the L2, execution gas at
the L2 gas price plus the L1 data fee of each signed transaction (the OP Stack's Fjord cost
function, scripts/op_fees.py); on Sepolia (or Ethereum), the same execution gas at the L1 gas
price (calldata is part of the execution gas there). Per-operation figures come from
gas-snapshot-l2.json (scripts/gas_snapshot_l2.py).

The prices are assumptions, not quotes: each has an option, and the README's table (between the
``costs`` markers) is what this script renders at the defaults.

Usage::

    scripts/costs.py                  # print the tables (markdown)
    scripts/costs.py --write-readme   # put them into README.md
    scripts/costs.py --check          # exit 1 if README.md's tables are stale
    scripts/costs.py --l1-base-fee-gwei 5 --blob-base-fee-gwei 1 --l2-gas-price-gwei 0.01 --sepolia-gas-price-gwei 2
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry.chain.registry import Registry  # noqa: E402
from registry.files import atomic_write  # noqa: E402
from scripts.gas_snapshot_l2 import SNAPSHOT as L2_SNAPSHOT  # noqa: E402
from scripts.gas_snapshot_l2 import OptimismAnvil, raw_transaction  # noqa: E402
from scripts.op_fees import REFERENCE_L2, L1Data, OpFeeParams, l1_data  # noqa: E402

README = ROOT / "README.md"
BEGIN, END = "<!-- costs:begin -->", "<!-- costs:end -->"
LICENSE = "Apache-2.0"
GWEI = 10**9
# Stated assumptions (see the README): prices of 2026-11-30, chosen, not observed.
AS_OF = "2026-11-30"
SEPOLIA_GAS_PRICE = 1 * GWEI
ETH_USD = 3000
# The per-operation rows the README shows, from gas-snapshot-l2.json.
OPERATIONS = {
    "publish leaf": "publish, one element",
    "publishBatch of 50, per record": "each record of a batch of 50",
    "publish with 4 parents": "a composition of 4 parents",
    "parent link": "each further parent of a composition",
    "commit-reveal leaf": "commit-reveal, one element (two transactions)",
    "yank": "yank",
    "deploy (CREATE2)": "deploy the registry (once per chain)",
}


@dataclass(frozen=True)
class Prices:
    l2: OpFeeParams
    sepolia_gas_price: int
    eth_usd: float


DEFAULT_PRICES = Prices(REFERENCE_L2, SEPOLIA_GAS_PRICE, ETH_USD)


@dataclass(frozen=True)
class ModelPublish:
    """What publish-model sent for the model."""

    records: int
    transactions: list[tuple[int, L1Data]]  # (execution gas, L1 data) per transaction

    @property
    def gas(self) -> int:
        return sum(gas for gas, _ in self.transactions)


def publish_the_model() -> ModelPublish:
    """Publish all-MiniLM-L6-v2 with publish-model's defaults on a fresh anvil --optimism."""
    from registry.demo import model_dir
    from registry.publish.model import publish_model
    from registry.storage.blockstore import BlockStore
    from registry.storage.fetch import Sources

    with tempfile.TemporaryDirectory(prefix="elements-costs-") as tmp, OptimismAnvil(log=Path(tmp) / "anvil.log") as node:
        chain = node.connect()
        account = chain.dev_accounts[0]
        registry = Registry.deploy(chain, account, Path(tmp)).with_account(account)
        store = BlockStore(Path(tmp) / "blocks")
        report = publish_model(registry, store, model_dir(), license=LICENSE, sources=Sources(store), work_dir=Path(tmp) / "work")
        hashes = list(dict.fromkeys(r.transaction.hash for r in report.publish.results if r.transaction))
        transactions = []
        for tx_hash in hashes:
            raw, fields = raw_transaction(chain, bytes.fromhex(tx_hash.removeprefix("0x")))
            receipt = chain.w3.eth.get_transaction_receipt(tx_hash)
            transactions.append((int(receipt["gasUsed"]), l1_data(raw, bytes(fields["input"]))))
        return ModelPublish(len(report.publish.results), transactions)


def _significant(value: float, digits: int) -> str:
    """``value`` in plain decimals with ``digits`` significant digits (no exponent)."""
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def _eth(wei: float) -> str:
    return f"{_significant(wei / 10**18, 3)} ETH"


def _usd(wei: float, prices: Prices) -> str:
    return f"${_significant(wei / 10**18 * prices.eth_usd, 2)}"


def _gwei(wei: int) -> str:
    return f"{wei / GWEI:g}"


def operation_rows(snapshot: dict) -> dict[str, dict[str, int]]:
    """The README's per-operation rows from the L2 snapshot (derived ones summed or divided)."""
    ops = snapshot["operations"]

    def combine(*names: str, minus: str | None = None, divide: int = 1) -> dict[str, int]:
        keys = ("execution gas", "calldata bytes", "calldata zero bytes", "fastlz bytes", "estimated_size")
        out = {k: sum(_field(ops[n], k) for n in names) - (_field(ops[minus], k) if minus else 0) for k in keys}
        return {k: v // divide for k, v in out.items()}

    rows = {name: combine(name) for name in ("publish leaf", "publishBatch of 50, per record", "publish with 4 parents", "yank", "deploy (CREATE2)")}
    rows["parent link"] = combine("publish with 127 parents", minus="publish leaf", divide=127)
    rows["commit-reveal leaf"] = combine("commitRecordIds, next commitment", "revealOne, leaf after the next commitment")
    return {key: rows[key] for key in OPERATIONS}


def _field(op: dict[str, int], key: str) -> int:
    if key == "estimated_size":  # bytes x 1e6, recovered from the L1 gas (16 an estimated byte)
        return op["l1 gas (fjord estimate)"] * 10**6 // 16
    return op[key]


def render(model: ModelPublish, snapshot: dict, prices: Prices = DEFAULT_PRICES) -> str:
    """The README's costs tables (markdown)."""
    l2 = prices.l2
    lines = [
        f"Prices (assumptions stated {AS_OF}, not quotes): on the OP-stack L2 an L2 gas price of "
        f"{_gwei(l2.l2_gas_price)} gwei, an L1 base fee of {_gwei(l2.l1_base_fee)} gwei, a blob base fee of "
        f"{_gwei(l2.blob_base_fee)} gwei and OP Mainnet's scalars (base fee {l2.base_fee_scalar:,}, blob base fee "
        f"{l2.blob_base_fee_scalar:,}); on Sepolia a gas price of {_gwei(prices.sepolia_gas_price)} gwei; "
        f"ETH at ${prices.eth_usd:,}. The L1 data fee is the OP Stack's Fjord formula applied to the signed "
        "transaction (anvil's optimism mode does not charge it; see docs/contract.md).",
        "",
        "| operation | execution gas | calldata bytes (zero) | FastLZ bytes | L2: L1 data fee | L2: execution fee | L2: total "
        f"| Sepolia at {_gwei(prices.sepolia_gas_price)} gwei |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, row in operation_rows(snapshot).items():
        l1_fee = row["estimated_size"] * l2.scaled() // 10**12
        l2_fee = row["execution gas"] * l2.l2_gas_price
        lines.append(
            f"| {OPERATIONS[key]} | {row['execution gas']:,} | {row['calldata bytes']:,} ({row['calldata zero bytes']:,}) | "
            f"{row['fastlz bytes']:,} | {_usd(l1_fee, prices)} | {_usd(l2_fee, prices)} | {_usd(l1_fee + l2_fee, prices)} | "
            f"{_eth(row['execution gas'] * prices.sepolia_gas_price)} |"
        )
    l1_fees = sum(data.l1_fee(l2) for _, data in model.transactions)
    l2_fees = model.gas * l2.l2_gas_price
    calldata = sum(data.calldata_bytes for _, data in model.transactions)
    zeros = sum(data.calldata_zero_bytes for _, data in model.transactions)
    fastlz = sum(data.fastlz_bytes for _, data in model.transactions)
    sepolia = model.gas * prices.sepolia_gas_price
    lines += [
        "",
        f"Publishing all-MiniLM-L6-v2 (`elements publish-model ./all-MiniLM-L6-v2 --license {LICENSE}`: "
        f"{model.records} records in {len(model.transactions)} transaction{'s' if len(model.transactions) != 1 else ''}, "
        f"{model.gas:,} gas, {calldata:,} bytes of calldata of which {zeros:,} zero, {fastlz:,} after FastLZ):",
        "",
        "| chain | execution | L1 data | total |",
        "|---|---:|---:|---:|",
        f"| OP-stack L2 | {_eth(l2_fees)} ({_usd(l2_fees, prices)}) | {_eth(l1_fees)} ({_usd(l1_fees, prices)}) | "
        f"{_eth(l2_fees + l1_fees)} ({_usd(l2_fees + l1_fees, prices)}) |",
        f"| Sepolia (test ether) | {_eth(sepolia)} | in the execution gas | {_eth(sepolia)} |",
        f"| Ethereum at the same {_gwei(prices.sepolia_gas_price)} gwei | {_eth(sepolia)} ({_usd(sepolia, prices)}) | "
        f"in the execution gas | {_eth(sepolia)} ({_usd(sepolia, prices)}) |",
    ]
    return "\n".join(lines) + "\n"


def readme_with(text: str, readme: str) -> str:
    """``readme`` with the block between the costs markers replaced by ``text``."""
    head, sep, rest = readme.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"README.md lacks the {BEGIN} ... {END} markers; add them where the tables go")
    return f"{head}{BEGIN}\n{text}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-readme", action="store_true", help="write the tables into README.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md's tables differ from a fresh run")
    parser.add_argument("--l1-base-fee-gwei", type=float, default=REFERENCE_L2.l1_base_fee / GWEI)
    parser.add_argument("--blob-base-fee-gwei", type=float, default=REFERENCE_L2.blob_base_fee / GWEI)
    parser.add_argument("--l2-gas-price-gwei", type=float, default=REFERENCE_L2.l2_gas_price / GWEI)
    parser.add_argument("--sepolia-gas-price-gwei", type=float, default=SEPOLIA_GAS_PRICE / GWEI)
    parser.add_argument("--eth-usd", type=float, default=ETH_USD)
    args = parser.parse_args(argv)
    l2 = replace(REFERENCE_L2, l1_base_fee=round(args.l1_base_fee_gwei * GWEI), blob_base_fee=round(args.blob_base_fee_gwei * GWEI),
                 l2_gas_price=round(args.l2_gas_price_gwei * GWEI))
    prices = Prices(l2, round(args.sepolia_gas_price_gwei * GWEI), args.eth_usd)
    if (args.write_readme or args.check) and prices != DEFAULT_PRICES:
        print("costs: the README's tables are at the default prices; drop the price options with --write-readme/--check", file=sys.stderr)
        return 2
    readme = README.read_text()
    if args.check or args.write_readme:
        try:
            readme_with("", readme)
        except ValueError as exc:
            print(f"costs: {exc}", file=sys.stderr)
            return 2
    text = render(publish_the_model(), json.loads(L2_SNAPSHOT.read_text()), prices)
    if args.check:
        if readme_with(text, readme) != readme:
            print("costs: README.md's costs tables are stale; run scripts/costs.py --write-readme", file=sys.stderr)
            return 1
        print("costs: README.md's costs tables are current")
        return 0
    if args.write_readme:
        atomic_write(README, readme_with(text, readme))
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
