"""scripts/costs.py: the real model published on anvil --optimism, priced; the README's tables
are what it renders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts import costs
from scripts.op_fees import REFERENCE_L2

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def published(anvil_binary):
    return costs.publish_the_model()


def test_the_readme_costs_tables_are_current(published):
    text = costs.render(published, json.loads(costs.L2_SNAPSHOT.read_text()))
    readme = (ROOT / "README.md").read_text()
    assert costs.readme_with(text, readme) == readme, "stale: run scripts/costs.py --write-readme"


def test_the_model_is_published_in_batches_whose_figures_add_up(published):
    assert published.records > 1
    assert len(published.transactions) == -(-published.records // 50)  # publish-model's batches of 50
    for gas, data in published.transactions:
        assert data.calldata_bytes < data.signed_bytes
        assert gas > 21_000 + 16 * data.calldata_nonzero_bytes + 4 * data.calldata_zero_bytes
    assert published.gas == sum(gas for gas, _ in published.transactions)


def test_the_l2_total_is_execution_at_the_l2_price_plus_each_transactions_l1_fee(published):
    text = costs.render(published, json.loads(costs.L2_SNAPSHOT.read_text()))
    l1 = sum(data.l1_fee(REFERENCE_L2) for _, data in published.transactions)
    total = published.gas * REFERENCE_L2.l2_gas_price + l1
    assert "| OP-stack L2 |" in text
    assert costs._eth(total) in text.split("| OP-stack L2 |")[1].splitlines()[0]


def test_prices_are_written_without_exponents():
    assert costs._significant(0.0000404, 2) == "0.000040"
    assert costs._significant(1.9231, 2) == "1.9"
    assert costs._significant(1234.5, 2) == "1,234"
    assert costs._eth(641_097 * 10**9) == "0.000641 ETH"


def test_the_tables_replace_only_what_lies_between_the_markers():
    readme = f"intro\n{costs.BEGIN}\nold\n{costs.END}\noutro\n"
    assert costs.readme_with("new\n", readme) == f"intro\n{costs.BEGIN}\nnew\n{costs.END}\noutro\n"


def test_a_readme_without_the_markers_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="markers"):
        costs.readme_with("new\n", "no markers here\n")


def test_writing_the_readme_at_other_prices_is_refused(capsys):
    assert costs.main(["--write-readme", "--l2-gas-price-gwei", "0.5"]) == 2
    assert "default prices" in capsys.readouterr().err
