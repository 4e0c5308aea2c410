"""CREATE2 deployment: the canonical deployer, idempotence, the deployments file, finding it."""

from __future__ import annotations

import json

import pytest
from eth_account import Account

from registry.chain import Registry, connect
from registry.chain.deploy import (
    CREATE2_DEPLOYER,
    CREATE2_DEPLOYER_SIGNER,
    CREATE2_DEPLOYER_TX,
    artifact,
    deploy_registry,
    ensure_create2_deployer,
    find_registry,
    is_registry,
    load_deployments,
    registry_address,
)
from registry.chain.devnet import Anvil
from registry.chain.errors import NoRegistryError
from registry.errors import ConfigError

DEPLOYER_RUNTIME = bytes.fromhex(
    "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe03601600081602082378035828234f580151560395781"
    "82fd5b8082525050506014600cf3"
)


def test_the_presigned_transaction_is_the_published_one():
    assert Account.recover_transaction(CREATE2_DEPLOYER_TX) == CREATE2_DEPLOYER_SIGNER


def test_the_in_process_chain_gets_the_canonical_deployer_from_its_presigned_transaction():
    chain = connect("memory")
    assert chain.code_at(CREATE2_DEPLOYER) == b""
    assert ensure_create2_deployer(chain, chain.dev_accounts[0]) is True
    assert chain.code_at(CREATE2_DEPLOYER) == DEPLOYER_RUNTIME
    assert ensure_create2_deployer(chain, chain.dev_accounts[0]) is False


def test_anvil_has_the_deployer_built_in(anvil):
    assert anvil.connect().code_at(CREATE2_DEPLOYER) == DEPLOYER_RUNTIME


def test_the_registry_lands_at_the_same_address_on_every_chain(anvil_registry):
    chain = connect("memory")
    deployed = deploy_registry(chain, chain.dev_accounts[0])
    assert deployed.address == registry_address() == anvil_registry.address == artifact()["create2"]["address"]
    assert is_registry(chain, deployed.address)


def test_deploying_again_sends_nothing_and_returns_the_same_registry():
    chain = connect("memory")
    first = deploy_registry(chain, chain.dev_accounts[0])
    assert first.created and first.transaction
    height = chain.block_number()
    again = deploy_registry(chain, chain.dev_accounts[1])
    assert not again.created and again.transaction is None
    assert (again.address, again.block) == (first.address, first.block)
    assert chain.block_number() == height


def test_a_deployment_is_recorded_per_chain_id_and_found_again(anvil_binary, tmp_path):
    home = tmp_path / "home"
    with Anvil(binary=anvil_binary, log=tmp_path / "anvil.log") as node:
        chain = node.connect()
        deployment = deploy_registry(chain, chain.dev_accounts[0], home)
        data = load_deployments(home)
        entry = data[str(chain.chain_id)]["ElementRegistry"]
        assert entry["address"] == deployment.address
        assert entry["block"] == deployment.block
        assert entry["transaction"] == deployment.transaction
        assert entry["rpcUrl"] == node.url
        assert not list(home.glob("*.incomplete"))
        found = find_registry(chain, home=home)
        assert (found.address, found.block) == (deployment.address, deployment.block)
        # without the file, the CREATE2 address is found, and its creation block is searched for
        assert find_registry(chain).block == deployment.block
        again = deploy_registry(chain, chain.dev_accounts[0], home)
        assert not again.created
        assert load_deployments(home)[str(chain.chain_id)]["ElementRegistry"]["transaction"] == deployment.transaction


def test_the_creation_block_of_a_registry_given_by_address_is_searched_once_then_read_from_the_home(anvil_binary, tmp_path):
    home = tmp_path / "home"
    with Anvil(binary=anvil_binary, log=tmp_path / "anvil.log") as node:
        chain = node.connect()
        deployment = deploy_registry(chain, chain.dev_accounts[0])  # recorded nowhere
        assert find_registry(chain, deployment.address, home).block == deployment.block
        entry = load_deployments(home)[str(chain.chain_id)]["ElementRegistry"]
        assert (entry["address"], entry["block"]) == (deployment.address, deployment.block)
        calls = []
        code_at = chain.code_at
        chain.code_at = lambda address, block="latest": calls.append(block) or code_at(address, block)
        assert find_registry(chain, deployment.address.lower(), home).block == deployment.block
        assert calls and all(block == "latest" for block in calls)  # no eth_getCode at old blocks: no search
        # A file naming another registry for this chain is neither used for this one nor replaced.
        other = {str(chain.chain_id): {"ElementRegistry": {"address": "0x" + "11" * 20, "block": 99}}}
        (home / "deployments.json").write_text(json.dumps(other))
        assert find_registry(chain, deployment.address, home).block == deployment.block
        assert json.loads((home / "deployments.json").read_text()) == other


def test_the_in_process_chain_records_nothing(tmp_path):
    chain = connect("memory")
    deploy_registry(chain, chain.dev_accounts[0], tmp_path)
    assert not (tmp_path / "deployments.json").exists()


def test_a_chain_without_the_registry_says_to_deploy_it():
    chain = connect("memory")
    with pytest.raises(NoRegistryError) as info:
        Registry.attach(chain)
    assert "elements deploy" in str(info.value) and registry_address() in str(info.value)


def test_another_contract_at_the_address_is_not_taken_for_the_registry():
    chain = connect("memory")
    ensure_create2_deployer(chain, chain.dev_accounts[0])
    with pytest.raises(NoRegistryError) as info:
        Registry.attach(chain, CREATE2_DEPLOYER)
    assert "not this version" in str(info.value)
    with pytest.raises(NoRegistryError):
        Registry.attach(chain, chain.dev_accounts[3].address)  # an account, no code


def test_a_malformed_registry_address_or_deployments_file_is_a_config_error(tmp_path):
    chain = connect("memory")
    with pytest.raises(ConfigError):
        find_registry(chain, "0x1234")
    (tmp_path / "deployments.json").write_text("{not json")
    with pytest.raises(ConfigError) as info:
        find_registry(chain, home=tmp_path)
    assert "deployments.json" in str(info.value)
    (tmp_path / "deployments.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ConfigError):
        load_deployments(tmp_path)


@pytest.mark.parametrize("entry", [
    ["ElementRegistry"],  # the chain's entry is not an object
    {"ElementRegistry": {"address": "0x" + "11" * 20, "block": "abc"}},
    {"ElementRegistry": {"address": "0x" + "11" * 20, "block": [1]}},
    {"ElementRegistry": {"address": "0x" + "11" * 20, "block": None}},
    {"ElementRegistry": {"address": "0x" + "11" * 20, "block": {"a": 1}}},
    {"ElementRegistry": {"address": "0x" + "11" * 20, "block": -5}},
], ids=["chain-entry-list", "block-word", "block-list", "block-null", "block-object", "block-negative"])
def test_a_tampered_deployments_entry_for_the_chain_is_a_config_error_naming_the_file(tmp_path, entry):
    chain = connect("memory")
    (tmp_path / "deployments.json").write_text(json.dumps({str(chain.chain_id): entry}))
    with pytest.raises(ConfigError, match="deployments.json"):
        find_registry(chain, home=tmp_path)
