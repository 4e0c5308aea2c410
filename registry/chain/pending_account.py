"""A private key checked at once, its eth-account account loaded in a background thread.

Importing eth-account (with eth-keyfile, eth-keys, eth-utils' pydantic models, pycryptodome's AES)
costs about half a second on a quiet core, more under load, and a command that publishes a model
needs the account only when it makes its claims and signs, after the model is split, hashed and
its blocks written. ``publish-model`` therefore asks :func:`registry.chain.session.open_registry`
for a :class:`PendingAccount`: everything that can be wrong with ``ELEMENTS_PRIVATE_KEY`` (its
length, its hex, zero or above the secp256k1 order: the same one-line errors, raised before any
work) is checked here without eth-account, and the account itself is built in a daemon thread
while the main thread splits the model (hashing and file I/O release the GIL). The first use of
an attribute (``.address``, ``.sign_transaction``) waits for the thread and passes the call on to
the eth-account ``LocalAccount``; signing stays eth-account's.

Only a hex private key is deferred: a keystore's password is checked by decrypting it, which a user
expects to fail before a long split, so keystores load as before (:mod:`registry.chain.accounts`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

from .errors import AccountError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

__all__ = ["SECP256K1_ORDER", "PendingAccount", "private_key_bytes"]

#: The order n of secp256k1's group: a private key is an integer in [1, n - 1].
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def private_key_bytes(private_key: str, source: str = "ELEMENTS_PRIVATE_KEY") -> bytes:
    """The 32 bytes of a hex private key (``0x`` optional), checked as eth-account would check it.

    Raises:
        AccountError: not 32 bytes of hex, or zero or above the curve order (the key is not echoed).
    """
    text = private_key.strip()
    body = text[2:] if text[:2].lower() == "0x" else text
    if len(body) != 64:
        raise AccountError(f"{source} is not a private key: expected 0x + 64 hex digits, got {len(body)} characters")
    try:
        key = bytes.fromhex(body)
    except ValueError:
        raise AccountError(f"{source} is not a private key: it holds non-hex characters") from None
    if not 0 < int.from_bytes(key, "big") < SECP256K1_ORDER:
        raise AccountError(f"{source} is not a valid secp256k1 private key (zero or above the curve order)")
    return key


class PendingAccount:
    """An eth-account ``LocalAccount`` being built by ``load`` in a daemon thread.

    Attribute access waits for it (:meth:`resolve`) and reads the account's attribute; what
    ``load`` raised is raised there, in the thread that uses the account. The key is never shown:
    the default ``repr`` names the object only.
    """

    def __init__(self, load: Callable[[], "LocalAccount"]) -> None:
        self._load = load
        self._account: "LocalAccount | None" = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="elements-account", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._account = self._load()
        except BaseException as exc:  # handed to the thread that uses the account
            self._error = exc

    def resolve(self) -> "LocalAccount":
        """The account, once the thread has built it (waiting for it if need be)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._account is None:  # pragma: no cover - _run sets one or the other
            raise AccountError("the account could not be loaded; check ELEMENTS_PRIVATE_KEY")
        return self._account

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # this object's own (not yet set) fields, copy and pickle probes
            raise AttributeError(name)
        return getattr(self.resolve(), name)
