"""The account that signs: from ELEMENTS_PRIVATE_KEY or an encrypted keystore, never a CLI argument.

Where a key comes from, first match wins:

1. ``ELEMENTS_PRIVATE_KEY`` (``Settings.private_key``): a hex private key, for CI and devnets;
2. ``--keystore`` / ``ELEMENTS_KEYSTORE`` (``Settings.keystore``): a path to an eth-account
   (Web3 Secret Storage) keystore file, or the name of one in ``$ELEMENTS_HOME/keystores/``;
   its password comes from ``ELEMENTS_KEYSTORE_PASSWORD`` or, on a terminal, a prompt;
3. on the in-process chain and on a devnet, the chain's first funded dev account.

Keys are never printed, logged or put in exception messages. A hex key gives a
:class:`~registry.chain.keysign.KeyAccount`, which signs the registry's transactions without
importing eth-account (issue 12: that import was an eighth of ``publish-model``); eth-account is
imported when a keystore is read or written, or when such an account is asked for anything else.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..files import atomic_write
from ..limits import (
    CONFIG_BYTES,
    PBKDF2_ITERATIONS,
    SCRYPT_MEMORY_BYTES,
    SCRYPT_WORK_BYTES,
    Limit,
    LimitExceededError,
    NotJSONError,
    load_json_file,
)
from .errors import AccountError
from .eth_account_import import load_eth_account
from .keysign import KeyAccount

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from ..config import Settings
    from .network import Chain

__all__ = ["account_from_key", "account_from_keystore", "create_keystore", "keystore_path", "load_account"]


def account_from_key(private_key: str, source: str = "ELEMENTS_PRIVATE_KEY") -> LocalAccount:
    """An account from a hex private key (``0x`` optional).

    Raises:
        AccountError: not 32 bytes of hex, or not a valid secp256k1 key (the key is not echoed).
    """
    text = private_key.strip()
    body = text[2:] if text[:2].lower() == "0x" else text
    if len(body) != 64:
        raise AccountError(f"{source} is not a private key: expected 0x + 64 hex digits, got {len(body)} characters")
    try:
        key = bytes.fromhex(body)
    except ValueError:
        raise AccountError(f"{source} is not a private key: it holds non-hex characters") from None
    try:
        account = KeyAccount(key)
    except ValueError:
        raise AccountError(f"{source} is not a valid secp256k1 private key (zero or above the curve order)") from None
    # Typed as what it stands for: it has LocalAccount's address, key and sign_transaction, and
    # hands every other attribute to a LocalAccount of the same key.
    return cast("LocalAccount", account)


def _eth_account() -> Any:
    """eth-account's ``Account`` (without py_ecc's BLS tables, see eth_account_import), imported
    by the keystore functions only."""
    return load_eth_account().Account


def keystore_path(keystore: str, home: Path | None = None) -> Path:
    """Resolve a keystore: an existing path, else ``home/keystores/<name>[.json]``."""
    path = Path(keystore).expanduser()
    if path.exists() or home is None:
        return path
    for candidate in (home / "keystores" / keystore, home / "keystores" / f"{keystore}.json"):
        if candidate.exists():
            return candidate
    return path


def account_from_keystore(keystore: str, password: str | None, home: Path | None = None, prompt: bool = True) -> LocalAccount:
    """Decrypt a keystore file.

    Args:
        keystore: a path, or a name in ``home/keystores/``.
        password: the password; when ``None`` and stdin is a terminal, it is asked for.

    Raises:
        AccountError: the file is missing or not a keystore, no password, or a wrong password.
    """
    path = keystore_path(keystore, home)
    try:
        encrypted = load_json_file(path, CONFIG_BYTES, f"keystore {path}")
    except LimitExceededError as exc:
        raise AccountError(str(exc)) from None
    except FileNotFoundError:
        where = f" or {home / 'keystores'}" if home else ""
        raise AccountError(
            f"keystore {keystore!r} not found (looked for the path{where}); check --keystore / ELEMENTS_KEYSTORE "
            f"(`elements keys list` shows the keystores, `elements keys new {keystore}` creates one)"
        ) from None
    except (OSError, NotJSONError) as exc:
        raise AccountError(f"keystore {path} is not readable JSON ({exc}); point --keystore at an eth-account keystore") from None
    _check_kdf(encrypted, path)
    if password is None:
        if prompt and sys.stdin.isatty():
            import getpass

            password = getpass.getpass(f"password for {path.name}: ")
        else:
            raise AccountError(f"keystore {path} needs a password: set ELEMENTS_KEYSTORE_PASSWORD (or run on a terminal)")
    try:
        key = _eth_account().decrypt(encrypted, password)
    except ValueError:
        raise AccountError(f"wrong password for keystore {path} (or a corrupt file)") from None
    except Exception as exc:
        raise AccountError(f"keystore {path} is not an eth-account keystore ({type(exc).__name__})") from None
    account: LocalAccount = _eth_account().from_key(key)  # eth-account's Account is untyped
    return account


def _check_kdf(encrypted: object, path: Path) -> None:
    """Refuse key-derivation parameters that would take more memory or time than any real
    keystore asks for, before the password is even read (a keystore is a file anyone can hand you)."""
    crypto = encrypted.get("crypto", encrypted.get("Crypto")) if isinstance(encrypted, dict) else None
    params = crypto.get("kdfparams") if isinstance(crypto, dict) else None
    if not isinstance(params, dict) or not isinstance(crypto, dict):
        return  # not a keystore at all: eth-account says so below
    kdf = crypto.get("kdf")

    def number(name: str) -> int:
        value = params.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise AccountError(f"keystore {path} has {kdf} parameter {name} = {str(value)[:20]!r}, not a positive integer")
        return value

    def refuse(limit: Limit, what: str, value: int) -> None:
        limit.check(value, f"the {what} of keystore {path}", AccountError)

    dklen = number("dklen")
    if not 32 <= dklen <= 64:
        raise AccountError(f"keystore {path} derives a {dklen}-byte key; eth-account keystores derive 32 bytes")
    if kdf == "scrypt":
        n, r, p = number("n"), number("r"), number("p")
        if n < 2 or n & (n - 1):
            raise AccountError(f"keystore {path} has scrypt n = {n}, not a power of two")
        refuse(SCRYPT_MEMORY_BYTES, "scrypt memory (128 x n x r)", 128 * n * r)
        refuse(SCRYPT_WORK_BYTES, "scrypt work (128 x n x r x p)", 128 * n * r * p)
    elif kdf == "pbkdf2":
        refuse(PBKDF2_ITERATIONS, "pbkdf2 iterations", number("c"))


def create_keystore(home: Path, name: str, password: str, private_key: str | None = None) -> tuple[Path, LocalAccount]:
    """Write a new encrypted keystore ``home/keystores/<name>.json`` (a fresh key unless one is given).

    Raises:
        AccountError: the keystore exists already, or the key is malformed.
    """
    account = account_from_key(private_key, "the private key") if private_key else _eth_account().create()
    directory = Path(home) / "keystores"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    exists = AccountError(f"keystore {path} exists already; choose another name")
    if path.exists():
        raise exists
    # Written whole under a name of its own, then linked to its name (atomic_write's exclusive
    # mode): a link never replaces a file, so of two runs creating the same name at once one
    # gets it and the other an error.
    document = json.dumps(_eth_account().encrypt(account.key, password)).encode()
    try:
        atomic_write(path, document, exclusive=True, mode=0o600)
    except FileExistsError:
        raise exists from None
    return path, account


def load_account(settings: "Settings", chain: "Chain | None" = None, prompt: bool = True) -> LocalAccount | None:
    """The account for this run (see the module docstring), or ``None`` if none is configured.

    Raises:
        AccountError: a key or keystore is configured but unusable.
    """
    if settings.private_key:
        return account_from_key(settings.private_key)
    if settings.keystore:
        return account_from_keystore(settings.keystore, settings.keystore_password, settings.home, prompt)
    if chain is not None and chain.dev_accounts:
        return chain.dev_accounts[0]
    return None
