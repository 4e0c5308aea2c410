"""Keys come from ELEMENTS_PRIVATE_KEY or an encrypted keystore, never echoed; dev accounts on local chains."""

from __future__ import annotations

import os
import stat

import pytest

from registry.chain import connect
from registry.chain.accounts import account_from_key, account_from_keystore, create_keystore, load_account
from registry.chain.errors import AccountError
from registry.config import Settings

KEY = "0x" + "4c" * 32


def settings(tmp_path, **env) -> Settings:
    return Settings.resolve({"home": str(tmp_path)}, environ=env)


def test_a_hex_key_loads_with_or_without_0x():
    assert account_from_key(KEY).address == account_from_key(KEY[2:]).address


@pytest.mark.parametrize("bad", ["0x12", "0x" + "zz" * 32, "0x" + "00" * 32, "0x" + "ff" * 32, "0x" + "4c" * 33])
def test_a_malformed_key_is_refused_without_echoing_it(bad):
    with pytest.raises(AccountError) as info:
        account_from_key(bad)
    assert bad[2:10] not in str(info.value)
    assert "ELEMENTS_PRIVATE_KEY" in str(info.value)


def test_the_environment_key_wins_over_a_keystore(tmp_path):
    path, ks_account = create_keystore(tmp_path, "alice", "pw")
    s = settings(tmp_path, ELEMENTS_PRIVATE_KEY=KEY, ELEMENTS_KEYSTORE=str(path), ELEMENTS_KEYSTORE_PASSWORD="pw")
    assert load_account(s).address == account_from_key(KEY).address != ks_account.address


def test_a_keystore_round_trips_by_name_and_by_path_and_is_private(tmp_path):
    path, account = create_keystore(tmp_path, "alice", "correct horse", KEY)
    assert path == tmp_path / "keystores" / "alice.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert KEY[2:] not in path.read_text()
    by_name = load_account(settings(tmp_path, ELEMENTS_KEYSTORE="alice", ELEMENTS_KEYSTORE_PASSWORD="correct horse"))
    by_path = account_from_keystore(str(path), "correct horse")
    assert by_name.address == by_path.address == account.address == account_from_key(KEY).address
    with pytest.raises(AccountError):
        create_keystore(tmp_path, "alice", "other")


def test_keystore_failures_say_what_to_do(tmp_path):
    create_keystore(tmp_path, "alice", "pw")
    with pytest.raises(AccountError) as info:
        account_from_keystore("alice", "wrong", tmp_path)
    assert "wrong password" in str(info.value)
    with pytest.raises(AccountError) as info:
        account_from_keystore("bob", "pw", tmp_path)
    assert "not found" in str(info.value)
    with pytest.raises(AccountError) as info:
        account_from_keystore("alice", None, tmp_path, prompt=False)
    assert "ELEMENTS_KEYSTORE_PASSWORD" in str(info.value)
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(AccountError):
        account_from_keystore(str(tmp_path / "junk.json"), "pw")


def test_local_chains_fall_back_to_their_dev_accounts_and_others_to_none(tmp_path, anvil):
    s = settings(tmp_path)
    memory = connect("memory")
    assert load_account(s, memory).address == memory.dev_accounts[0].address
    assert load_account(s, anvil.connect()).address == anvil.accounts[0].address
    assert load_account(s, connect(anvil.url)) is None  # a plain URL: no dev accounts assumed
    assert load_account(s) is None
