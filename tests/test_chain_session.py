"""From settings to a bound registry: memory, named networks, keys, and an account that cannot pay."""

from __future__ import annotations

import json
import os

import pytest
from eth_account import Account

from registry.chain import InsufficientFundsError, RecordInput, open_registry, registry_address
from registry.chain.errors import AccountError, NoRegistryError, WrongChainError
from registry.config import Settings

CID = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"


def resolve(tmp_path, flags=None, **env) -> Settings:
    return Settings.resolve({"home": str(tmp_path), **(flags or {})}, environ=env)


def test_memory_deploys_at_once_and_signs_with_the_first_dev_account(tmp_path):
    reg = open_registry(resolve(tmp_path))
    assert reg.address == registry_address()
    assert reg.account.address == reg.chain.dev_accounts[0].address
    rid = reg.publish(RecordInput(os.urandom(32), CID, 2))
    assert reg.record(rid).publisher == reg.account.address


def test_a_configured_key_is_funded_on_the_throw_away_chain(tmp_path):
    key = Account.create()
    reg = open_registry(resolve(tmp_path, ELEMENTS_PRIVATE_KEY=key.key.hex()))
    assert reg.account.address == key.address
    rid = reg.publish(RecordInput(os.urandom(32), CID, 2))
    assert reg.record(rid).publisher == key.address
    with pytest.raises(NoRegistryError):
        open_registry(resolve(tmp_path, {"registry": "0x" + "11" * 20}))


def test_an_account_without_ether_is_told_to_fund_itself(registry_on):
    poor = registry_on.with_account(Account.create())
    with pytest.raises(InsufficientFundsError) as info:
        poor.publish(RecordInput(os.urandom(32), CID, 2))
    assert poor.account.address in str(info.value) and "fund it" in str(info.value)


def test_a_named_network_checks_its_chain_id_and_finds_the_registry(tmp_path, anvil, anvil_registry):
    networks = {
        "dev": {"rpc_url": anvil.url, "chain_id": 31337, "registry": anvil_registry.address, "dev_accounts": True},
        "bad": {"rpc_url": anvil.url, "chain_id": 1},
        "plain": {"rpc_url": anvil.url},
    }
    (tmp_path / "config.json").write_text(json.dumps({"networks": networks}))
    reg = open_registry(resolve(tmp_path, ELEMENTS_NETWORK="dev"))
    assert reg.address == anvil_registry.address and reg.account.address == anvil.accounts[0].address
    with pytest.raises(WrongChainError):
        open_registry(resolve(tmp_path, ELEMENTS_NETWORK="bad"))
    plain = open_registry(resolve(tmp_path, ELEMENTS_NETWORK="plain"))
    assert plain.account is None  # no key configured, and not declared a devnet
    assert plain.license_count() >= 14  # reads work without a key
    with pytest.raises(AccountError) as info:
        open_registry(resolve(tmp_path, ELEMENTS_NETWORK="plain"), write=True)
    assert "ELEMENTS_PRIVATE_KEY" in str(info.value)
    with pytest.raises(AccountError):
        plain.publish(RecordInput(os.urandom(32), CID, 2))


@pytest.mark.parametrize("address", ["nan", "0x", "0x" + "g" * 40, "memory"])
def test_a_registry_address_that_is_not_an_address_is_a_config_error_on_the_throw_away_chain(tmp_path, address):
    from registry.errors import ConfigError

    settings = Settings.resolve({"home": str(tmp_path), "rpc_url": "memory", "registry": address}, environ={})
    with pytest.raises(ConfigError, match="not an address"):
        open_registry(settings)
