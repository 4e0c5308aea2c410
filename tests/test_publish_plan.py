"""Planning a publish on an OP-stack L2 (registry.publish.plan): the dry run's cost and the balance
check count the L1 data fee of the signed transactions, and an Isthmus chain's operator fee. On a
real ``anvil --optimism`` configured as an OP-stack network (``--l1-fee``: anvil has no
GasPriceOracle), or behind a loopback proxy that plays the oracle (anvil has no Isthmus mode), from
the command line; and on a chain without the oracle, which a process looks for once."""

from __future__ import annotations

import json

import pytest

from registry.chain.abi import selector
from registry.chain.l1fee import GAS_PRICE_ORACLE, L1FeeParams, forget_missing_oracles, l1_fee
from registry.chain.registry import Registry
from scripts.gas_snapshot_l2 import OptimismAnvil
from tests.cli_support import elements, one_line_error
from tests.publish_support import MODEL, funded_account
from tests.rpc_support import OpStackOracle, RpcProxy

FILES = sorted(p for p in MODEL.iterdir() if p.suffix == ".json")
OP_MAINNET = "1000000000,100000000,5227,1014213"
# An L1 base fee a million times OP Mainnet's reference: the L1 fee then outweighs the execution.
DEAR_L1 = "1000000000000000,100000000,5227,1014213"


@pytest.fixture(scope="module")
def op_registry(anvil_binary, tmp_path_factory):
    """The registry on a fresh ``anvil --optimism`` of this module's own."""
    with OptimismAnvil(binary=anvil_binary, log=tmp_path_factory.mktemp("op-anvil") / "anvil.log") as node:
        chain = node.connect()
        yield node, Registry.deploy(chain, chain.dev_accounts[0]).with_account(None)


def add_network(home, name: str, url: str, *extra: str) -> None:
    done = elements(home, "config", "network", "add", name, "--rpc-url", url, "--chain-id", "31337", "--no-commit-reveal", *extra)
    assert done.returncode == 0, done.stderr


def test_a_dry_run_on_an_op_stack_network_counts_the_l1_data_fee_of_what_it_then_sends(op_registry, tmp_path):
    node, registry = op_registry
    key = "0x" + funded_account(registry.chain).key.hex()
    add_network(tmp_path, "op", node.url, "--l1-fee", OP_MAINNET)
    add_network(tmp_path, "plain", node.url)
    dry = elements(tmp_path, "--json", "--network", "op", "publish", FILES[0], FILES[1], "--license", "MIT", "--dry-run",
                   ELEMENTS_PRIVATE_KEY=key)
    assert dry.returncode == 0, dry.stderr
    estimate = json.loads(dry.stdout)["estimate"]
    plain = json.loads(elements(tmp_path, "--json", "--network", "plain", "publish", FILES[0], FILES[1], "--license", "MIT",
                                "--dry-run", ELEMENTS_PRIVATE_KEY=key).stdout)["estimate"]
    assert "l1_fee_wei" not in plain  # a chain without the oracle or the figures has no L1 fee
    assert estimate["l1_fee_params"] == {"l1_base_fee": 10**9, "blob_base_fee": 10**8, "base_fee_scalar": 5227,
                                         "blob_base_fee_scalar": 1_014_213, "fjord": True}
    assert estimate["l1_fee_wei"] > 0
    assert estimate["cost_wei"] == plain["cost_wei"] + estimate["l1_fee_wei"]
    assert estimate["max_cost_wei"] == plain["max_cost_wei"] + 2 * estimate["l1_fee_wei"]
    human = elements(tmp_path, "--network", "op", "publish", FILES[0], FILES[1], "--license", "MIT", "--dry-run", ELEMENTS_PRIVATE_KEY=key)
    assert "of which the L1 data fee ~" in human.stdout

    # What the chain is then sent: the same transaction, so the same fee, signature bytes apart.
    sent = elements(tmp_path, "--json", "--network", "op", "publish", FILES[0], FILES[1], "--license", "MIT", ELEMENTS_PRIVATE_KEY=key)
    assert sent.returncode == 0, sent.stderr
    [tx] = json.loads(sent.stdout)["transactions"]
    raw = bytes(registry.chain.w3.eth.get_raw_transaction(tx["hash"]))
    actual = l1_fee(raw, L1FeeParams(10**9, 10**8, 5227, 1_014_213))
    assert abs(estimate["l1_fee_wei"] - actual) <= actual // 50, (estimate["l1_fee_wei"], actual)


def test_the_balance_check_refuses_a_key_that_covers_the_execution_but_not_the_l1_fee(op_registry, tmp_path):
    node, registry = op_registry
    add_network(tmp_path, "op", node.url, "--l1-fee", DEAR_L1)
    add_network(tmp_path, "plain", node.url)
    probe = "0x" + funded_account(registry.chain, ether=100).key.hex()
    estimate = json.loads(elements(tmp_path, "--json", "--network", "op", "publish", FILES[2], "--license", "MIT", "--dry-run",
                                   ELEMENTS_PRIVATE_KEY=probe).stdout)["estimate"]
    execution = estimate["max_cost_wei"] - 2 * estimate["l1_fee_wei"]
    assert estimate["l1_fee_wei"] > execution  # dear L1: most of the cost
    # enough for the execution and more, short of the L1 fee's worst case
    poor = funded_account(registry.chain, ether=0)
    registry.chain.transact(registry.chain.dev_accounts[0], {"to": poor.address, "value": execution + estimate["l1_fee_wei"]}, gas=21_000)
    key = "0x" + poor.key.hex()
    refused = elements(tmp_path, "--network", "op", "publish", FILES[2], "--license", "MIT", ELEMENTS_PRIVATE_KEY=key)
    assert "of L1 data fee" in one_line_error(refused) and "fund it and run the same command again" in refused.stderr
    assert registry.chain.unmined(poor.address) == 0 and registry.chain.w3.eth.get_transaction_count(poor.address) == 0
    accepted = elements(tmp_path, "--json", "--network", "plain", "publish", FILES[2], "--license", "MIT", "--dry-run",
                        ELEMENTS_PRIVATE_KEY=key)
    assert accepted.returncode == 0, accepted.stderr  # without the L1 fee the same balance would have passed


def test_planning_two_publishes_on_a_chain_without_the_oracle_looks_for_it_once(anvil, anvil_registry, tmp_path):
    forget_missing_oracles()  # whatever this process planned before
    key = "0x" + funded_account(anvil_registry.chain).key.hex()
    with RpcProxy(anvil.url) as proxy:
        for path in FILES[:2]:
            dry = elements(tmp_path, "--json", "--rpc-url", proxy.url, "publish", path, "--license", "MIT", "--dry-run", ELEMENTS_PRIVATE_KEY=key)
            assert dry.returncode == 0, dry.stderr
            assert "l1_fee_wei" not in json.loads(dry.stdout)["estimate"]
        oracle_calls = [c for c in proxy.seen if c["method"] == "eth_call" and c["params"][0]["to"].lower() == GAS_PRICE_ORACLE.lower()]
        assert [c["params"][0]["data"] for c in oracle_calls] == ["0x" + selector("isFjord()").hex()]


def test_a_dry_run_on_an_isthmus_chain_counts_its_operator_fee_on_the_gas_and_the_balance_check_on_the_gas_limit(op_registry, tmp_path):
    node, registry = op_registry
    key = "0x" + funded_account(registry.chain).key.hex()
    add_network(tmp_path, "plain", node.url)
    scalar, constant = 7_000, 3 * 10**12
    oracle = OpStackOracle({"isFjord": 1, "isEcotone": 1, "isIsthmus": 1, "l1BaseFee": 10**9, "blobBaseFee": 10**8,
                            "baseFeeScalar": 5227, "blobBaseFeeScalar": 1_014_213}, operator=(scalar, constant))
    with RpcProxy(node.url, oracle) as proxy:
        add_network(tmp_path, "isthmus", proxy.url)
        dry = elements(tmp_path, "--json", "--network", "isthmus", "publish", FILES[3], FILES[4], "--license", "MIT", "--dry-run",
                       ELEMENTS_PRIVATE_KEY=key)
        human = elements(tmp_path, "--network", "isthmus", "publish", FILES[3], FILES[4], "--license", "MIT", "--dry-run",
                         ELEMENTS_PRIVATE_KEY=key)
    assert dry.returncode == 0, dry.stderr
    assert "and the operator fee ~" in human.stdout
    estimate = json.loads(dry.stdout)["estimate"]
    plain = json.loads(elements(tmp_path, "--json", "--network", "plain", "publish", FILES[3], FILES[4], "--license", "MIT",
                                "--dry-run", ELEMENTS_PRIVATE_KEY=key).stdout)["estimate"]
    assert estimate["l1_fee_params"]["operator_fee_constant"] == constant
    assert estimate["l1_fee_params"]["operator_fee_per_million_gas"] == scalar
    gas, transactions = estimate["gas"], estimate["transactions"]
    assert estimate["operator_fee_wei"] == gas * scalar // 10**6 + transactions * constant
    assert estimate["cost_wei"] == plain["cost_wei"] + estimate["l1_fee_wei"] + estimate["operator_fee_wei"]
    gas_limit = int(gas * 1.2) + 10_000 * transactions
    assert estimate["max_cost_wei"] == plain["max_cost_wei"] + 2 * estimate["l1_fee_wei"] + gas_limit * scalar // 10**6 + transactions * constant
