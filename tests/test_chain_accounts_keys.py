"""A private key checked before eth-account sees it (registry.chain.accounts.private_key_bytes):
the same one-line errors, and publish-model refuses a bad key before it splits anything."""

from __future__ import annotations

import pytest

from registry.chain.accounts import SECP256K1_ORDER, account_from_key, private_key_bytes
from registry.chain.errors import AccountError
from tests.cli_support import elements, one_line_error
from tests.publish_support import MODEL

KEY = "0x" + "4c" * 32
BAD_KEYS = ["0x12", "0x" + "zz" * 32, "0x" + "00" * 32, "0x" + "ff" * 32, "0x" + "4c" * 33, f"0x{SECP256K1_ORDER:064x}"]


def test_the_order_of_secp256k1_is_the_one_eth_account_refuses_keys_at():
    assert account_from_key(f"0x{SECP256K1_ORDER - 1:064x}").address.startswith("0x")
    with pytest.raises(AccountError):
        account_from_key(f"0x{SECP256K1_ORDER:064x}")


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_a_malformed_key_gets_the_same_one_line_error_from_the_check_and_from_loading_the_account(bad):
    with pytest.raises(AccountError) as checked:
        private_key_bytes(bad)
    with pytest.raises(AccountError) as loaded:
        account_from_key(bad)
    assert str(checked.value) == str(loaded.value)
    assert bad[2:10] not in str(checked.value)


def test_a_well_formed_key_gives_its_32_bytes_with_or_without_0x():
    assert private_key_bytes(KEY) == private_key_bytes(KEY[2:]) == bytes.fromhex(KEY[2:])


@pytest.mark.parametrize("bad", ["0x1234", "0x" + "ff" * 32])
def test_publish_model_with_a_malformed_key_fails_in_one_line_before_any_block_is_written(anvil, anvil_registry, tmp_path, bad):
    home = tmp_path / "home"
    line = one_line_error(elements(home, "--rpc-url", anvil.url, "publish-model", MODEL, "--license", "Apache-2.0",
                                   ELEMENTS_PRIVATE_KEY=bad))
    assert "ELEMENTS_PRIVATE_KEY is not" in line
    assert not any(p.is_file() for p in home.rglob("*") if "blocks" in p.parts)
