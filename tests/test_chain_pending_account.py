"""A private key checked at once and its eth-account account built in a background thread
(registry.chain.pending_account), as publish-model asks for it through open_registry(defer_key=True)."""

from __future__ import annotations

import pytest

from registry.chain.accounts import account_from_key
from registry.chain.errors import AccountError
from registry.chain.pending_account import SECP256K1_ORDER, PendingAccount, private_key_bytes
from registry.chain.session import open_registry
from registry.config import Settings
from tests.cli_support import DEV_ADDRESSES, DEV_KEYS, elements, one_line_error
from tests.publish_support import MODEL

KEY = "0x" + "4c" * 32
BAD_KEYS = ["0x12", "0x" + "zz" * 32, "0x" + "00" * 32, "0x" + "ff" * 32, "0x" + "4c" * 33, f"0x{SECP256K1_ORDER:064x}"]


def test_the_order_of_secp256k1_is_the_one_eth_account_refuses_keys_at():
    assert account_from_key(f"0x{SECP256K1_ORDER - 1:064x}").address.startswith("0x")
    with pytest.raises(AccountError):
        account_from_key(f"0x{SECP256K1_ORDER:064x}")


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_a_malformed_key_gets_the_same_one_line_error_with_or_without_eth_account(bad):
    with pytest.raises(AccountError) as checked:
        private_key_bytes(bad)
    with pytest.raises(AccountError) as loaded:
        account_from_key(bad)
    assert str(checked.value) == str(loaded.value)
    assert bad[2:10] not in str(checked.value)


def test_a_well_formed_key_gives_its_32_bytes_with_or_without_0x():
    assert private_key_bytes(KEY) == private_key_bytes(KEY[2:]) == bytes.fromhex(KEY[2:])


def test_a_pending_account_is_the_account_of_its_key_once_used():
    pending = PendingAccount(lambda: account_from_key(KEY))
    assert pending.address == account_from_key(KEY).address
    assert pending.resolve() is pending.resolve()
    assert KEY[2:] not in repr(pending)


def test_what_loading_the_account_raised_is_raised_where_the_account_is_used():
    def refuse():
        raise AccountError("the account could not be loaded")

    pending = PendingAccount(refuse)
    with pytest.raises(AccountError, match="could not be loaded"):
        _ = pending.address
    with pytest.raises(AttributeError):
        _ = pending._private  # its own fields are never passed on to the account


def test_a_deferred_key_on_anvil_binds_a_pending_account_of_that_key(anvil, anvil_registry, tmp_path):
    settings = Settings.resolve({"home": str(tmp_path)}, environ={"ELEMENTS_RPC_URL": anvil.url, "ELEMENTS_PRIVATE_KEY": DEV_KEYS[5]})
    registry = open_registry(settings, write=True, defer_key=True)
    assert isinstance(registry.account, PendingAccount)
    assert registry.account.address == DEV_ADDRESSES[5]


@pytest.mark.parametrize("bad", ["0x1234", "0x" + "ff" * 32])
def test_a_deferred_malformed_key_fails_when_the_registry_opens(anvil, anvil_registry, tmp_path, bad):
    settings = Settings.resolve({"home": str(tmp_path)}, environ={"ELEMENTS_RPC_URL": anvil.url, "ELEMENTS_PRIVATE_KEY": bad})
    with pytest.raises(AccountError, match="ELEMENTS_PRIVATE_KEY is not"):
        open_registry(settings, write=True, defer_key=True)


@pytest.mark.parametrize("bad", ["0x1234", "0x" + "ff" * 32])
def test_publish_model_with_a_malformed_key_fails_in_one_line_before_any_block_is_written(anvil, anvil_registry, tmp_path, bad):
    home = tmp_path / "home"
    line = one_line_error(elements(home, "--rpc-url", anvil.url, "publish-model", MODEL, "--license", "Apache-2.0",
                                   ELEMENTS_PRIVATE_KEY=bad))
    assert "ELEMENTS_PRIVATE_KEY is not" in line
    assert not any(p.is_file() for p in home.rglob("*") if "blocks" in p.parts)
