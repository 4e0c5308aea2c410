"""Keystores for the tests that need one to exist or to sign with, not to test how one is made.

``create_keystore`` and ``elements keys new`` encrypt with eth-account's default scrypt (n = 2**18:
256 MiB and about a second, once to write and again for every read). A test about something else
writes its keystore here: the same Web3 Secret Storage v3 document, with scrypt n = 2**14, which
eth-account and Elements read like any other (a keystore's parameters are in the file). The tests
of making a keystore, and tests/test_chain_accounts.py's round trip, keep the default parameters.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

__all__ = ["SCRYPT_N", "write_keystore"]

#: Real scrypt, sixteen times lighter than the default (2 MiB, a few milliseconds).
SCRYPT_N = 2**14


def write_keystore(home: Path, name: str, password: str, private_key: str | None = None) -> tuple[Path, LocalAccount]:
    """``home/keystores/<name>.json`` (mode 0600, like ``create_keystore``'s), for a fresh key unless one is given."""
    account = Account.from_key(private_key) if private_key else Account.create()
    directory = Path(home) / "keystores"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    document = json.dumps(Account.encrypt(account.key, password, kdf="scrypt", iterations=SCRYPT_N))
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(document)
    return path, account
