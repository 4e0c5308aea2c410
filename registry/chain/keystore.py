"""Managing encrypted keystores under ``$ELEMENTS_HOME/keystores/`` (``elements keys ...``).

Layout::

    $ELEMENTS_HOME/keystores/
    ├── alice.json        an eth-account (Web3 Secret Storage v3, scrypt) keystore, mode 0600
    └── ci-relayer.json

A keystore is used for signing with ``--keystore NAME`` / ``ELEMENTS_KEYSTORE=NAME`` (see
:mod:`registry.chain.accounts`); its password comes from ``ELEMENTS_KEYSTORE_PASSWORD`` or a
terminal prompt. Listing reads only the address each file stores in the clear, never the key.
Private keys are never taken from a command-line argument, printed, or put in a message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..limits import CONFIG_BYTES, load_json_file
from .abi import checksum_address
from .accounts import account_from_keystore, create_keystore
from .errors import AccountError

__all__ = ["KeyInfo", "keystore_dir", "list_keys", "new_key", "import_key", "check_key_name"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class KeyInfo:
    """One keystore: its name (file stem), the account's address and the file."""

    name: str
    address: str
    path: Path

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "address": self.address, "path": str(self.path)}


def keystore_dir(home: Path) -> Path:
    """``home/keystores`` (not created)."""
    return Path(home) / "keystores"


def check_key_name(name: str) -> str:
    """A keystore name: 1-64 of letters, digits, ``_ . -``, starting with a letter or digit.

    Raises:
        AccountError: anything else (a name is also a file name).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.endswith(".json"):
        raise AccountError(
            f"keystore name {name!r} is not valid: use 1-64 letters, digits, '_', '.', '-' (e.g. 'alice'), without '.json'"
        )
    return name


def _address_of(path: Path) -> str | None:
    try:
        document = load_json_file(path, CONFIG_BYTES)
        return checksum_address("0x" + str(document["address"]).removeprefix("0x"))
    except Exception:
        return None


def list_keys(home: Path) -> list[KeyInfo]:
    """Every keystore in ``home/keystores`` with its address, sorted by name (unreadable files skipped)."""
    directory = keystore_dir(home)
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*.json")):
        address = _address_of(path)
        if address is not None:
            out.append(KeyInfo(path.stem, address, path))
    return out


def _require_password(password: str | None) -> str:
    if not password:
        raise AccountError("a keystore needs a non-empty password: set ELEMENTS_KEYSTORE_PASSWORD or run on a terminal")
    return password


def new_key(home: Path, name: str, password: str) -> KeyInfo:
    """Create a fresh random key in ``home/keystores/<name>.json``, encrypted with ``password``.

    Raises:
        AccountError: a bad name, an empty password, or the keystore exists already.
    """
    path, account = create_keystore(Path(home), check_key_name(name), _require_password(password))
    return KeyInfo(name, account.address, path)


def import_key(home: Path, name: str, password: str, private_key: str) -> KeyInfo:
    """Encrypt an existing private key (hex) into ``home/keystores/<name>.json``.

    Raises:
        AccountError: a bad name, an empty password, a malformed key, or the keystore exists
            already; an account that already has a keystore here (the message names it).
    """
    check_key_name(name)
    _require_password(password)
    from .accounts import account_from_key

    account = account_from_key(private_key, "the private key")
    for existing in list_keys(home):
        if existing.address == account.address:
            raise AccountError(f"account {account.address} already has keystore {existing.name!r} ({existing.path}); use it")
    path, account = create_keystore(Path(home), name, password, private_key)
    # Read it back: a keystore that cannot be decrypted must never be left behind.
    if account_from_keystore(str(path), password, prompt=False).address != account.address:  # pragma: no cover
        path.unlink()
        raise AccountError("the keystore written does not decrypt to the imported key; nothing was kept")
    return KeyInfo(name, account.address, path)
