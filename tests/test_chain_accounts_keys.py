"""A hex private key (registry.chain.accounts.account_from_key): a malformed one is refused in one
line that does not echo it, and publish-model refuses it before it splits anything."""

from __future__ import annotations

import pytest

from registry.chain.accounts import account_from_key
from registry.chain.errors import AccountError
from tests.cli_support import elements, one_line_error
from tests.publish_support import MODEL

KEY = "0x" + "4c" * 32
#: The order n of secp256k1's group: a private key is an integer in [1, n - 1].
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
BAD_KEYS = ["0x12", "0x" + "zz" * 32, "0x" + "00" * 32, "0x" + "ff" * 32, "0x" + "4c" * 33, f"0x{SECP256K1_ORDER:064x}"]


def test_the_order_of_secp256k1_is_the_one_eth_account_refuses_keys_at():
    assert account_from_key(f"0x{SECP256K1_ORDER - 1:064x}").address.startswith("0x")
    with pytest.raises(AccountError):
        account_from_key(f"0x{SECP256K1_ORDER:064x}")


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_a_malformed_key_is_refused_in_one_line_that_does_not_echo_it(bad):
    with pytest.raises(AccountError) as refused:
        account_from_key(bad)
    assert str(refused.value).startswith("ELEMENTS_PRIVATE_KEY is not") and "\n" not in str(refused.value)
    assert bad[2:10] not in str(refused.value)


def test_a_well_formed_key_gives_the_same_account_with_or_without_0x():
    assert account_from_key(KEY).address == account_from_key(KEY[2:]).address


@pytest.mark.parametrize("bad", ["0x1234", "0x" + "ff" * 32])
def test_publish_model_with_a_malformed_key_fails_in_one_line_before_any_block_is_written(anvil, anvil_registry, tmp_path, bad):
    home = tmp_path / "home"
    line = one_line_error(elements(home, "--rpc-url", anvil.url, "publish-model", MODEL, "--license", "Apache-2.0",
                                   ELEMENTS_PRIVATE_KEY=bad))
    assert "ELEMENTS_PRIVATE_KEY is not" in line
    assert not any(p.is_file() for p in home.rglob("*") if "blocks" in p.parts)
