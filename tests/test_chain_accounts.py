"""Keys come from ELEMENTS_PRIVATE_KEY or an encrypted keystore, never echoed; dev accounts on local chains."""

from __future__ import annotations

import multiprocessing
import os
import stat
import threading

import pytest

from registry.chain import connect
from registry.chain.accounts import account_from_key, account_from_keystore, create_keystore, load_account
from registry.chain.errors import AccountError
from registry.config import Settings
from tests.keystore_support import write_keystore

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
    path, ks_account = write_keystore(tmp_path, "alice", "pw")
    s = settings(tmp_path, ELEMENTS_PRIVATE_KEY=KEY, ELEMENTS_KEYSTORE=str(path), ELEMENTS_KEYSTORE_PASSWORD="pw")
    assert load_account(s).address == account_from_key(KEY).address != ks_account.address


def test_a_keystore_round_trips_by_name_and_by_path_and_is_private(tmp_path):
    # create_keystore's own parameters (eth-account's default scrypt): the other tests here write
    # lighter keystores (tests/keystore_support.py) where the key derivation is not what they test.
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
    write_keystore(tmp_path, "alice", "pw")
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


def _create(home: str, name: str, key: str, results) -> None:
    try:
        path, account = create_keystore(home, name, "pw", key)
        results.put(("created", account.address))
    except AccountError as exc:
        results.put(("refused", str(exc)))


@pytest.mark.slow  # many processes at once
def test_keystores_created_with_one_name_at_once_never_clobber_each_other(tmp_path):
    context = multiprocessing.get_context("fork")
    for round in range(2):  # every creation takes a second of scrypt: each round is a wide window
        home = tmp_path / f"home-{round}"
        keys = ["0x" + f"{round + 1:02x}{n + 1:02x}" * 16 for n in range(4)]
        results = context.Queue()
        workers = [context.Process(target=_create, args=(str(home), "shared", k, results)) for k in keys[:2]]
        workers += [threading.Thread(target=_create, args=(str(home), "shared", k, results)) for k in keys[2:]]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=300)
        outcomes = [results.get(timeout=60) for _ in workers]
        created = [address for kind, address in outcomes if kind == "created"]
        refused = [message for kind, message in outcomes if kind == "refused"]
        assert len(created) == 1 and len(refused) == len(workers) - 1, outcomes
        assert all("exists already; choose another name" in message for message in refused)
        keystore = home / "keystores" / "shared.json"
        assert account_from_keystore(str(keystore), "pw", prompt=False).address == created[0]
        assert os.listdir(home / "keystores") == ["shared.json"]  # no temporaries left
