"""An account from a hex private key that signs the registry's transactions without importing eth-account.

Why (issue 12): ``publish-model`` signs one or two EIP-1559 transactions, but importing
eth-account to do it costs 0.25 to 0.3 s of a quiet core before the first block can be written
(eth-keys, eth-utils and its pydantic models, eth-keyfile, rlp), about an eighth of the whole
command; eth-keys and rlp alone import eth-utils, so they save nothing. What signing needs is
small: Keccak-256 (:func:`registry.chain.abi.keccak`, pycryptodome's compiled code), RLP of nine
fields, and one secp256k1 ECDSA signature, which libsecp256k1 makes through coincurve (the
backend eth-keys itself prefers; imported in about 15 ms): constant-time, RFC 6979 nonces, the
low-``s`` form of EIP-2, so the same signature eth-account gives. ``tests/test_chain_keysign.py``
checks the signed bytes against eth-account's for many random keys, nonces, fees and calldata.

:class:`KeyAccount` signs by hand only the shape the registry sends (a type-2 transaction with
``to``, no access list, integers in range, calldata as bytes); any other transaction, a message,
typed data, a keystore export, goes to eth-account's ``LocalAccount`` for the same key, imported
then.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from .abi import checksum_address, is_address, keccak

__all__ = ["SECP256K1_ORDER", "KeyAccount", "SignedTransaction", "public_key", "rlp_encode", "sign_hash"]

#: The group order n of secp256k1: a private key is an integer in [1, n - 1].
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_UINT256 = 2**256


# ----------------------------------------------------------------------------------------------
# secp256k1, by libsecp256k1 (coincurve): constant-time, RFC 6979 nonces, low s


def public_key(secret: int) -> bytes:
    """The 64-byte uncompressed public key (x ‖ y) of a private key 1 <= ``secret`` < n."""
    from coincurve import PublicKey

    return PublicKey.from_secret(secret.to_bytes(32, "big")).format(compressed=False)[1:]


def sign_hash(message_hash: bytes, key: bytes) -> tuple[int, int, int]:
    """The ECDSA signature (y parity, r, s) of a 32-byte hash with a 32-byte private key, ``s`` in
    its low form (EIP-2): libsecp256k1's recoverable signature with its RFC 6979 nonce, the
    signature eth-keys gives with either of its backends."""
    from coincurve import PrivateKey

    signature = PrivateKey(key).sign_recoverable(message_hash, hasher=None)
    return signature[64], int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big")


# ----------------------------------------------------------------------------------------------
# RLP and the EIP-1559 envelope


def rlp_encode(item: Any) -> bytes:
    """RLP of bytes, a non-negative int (big-endian, no leading zeros; 0 is empty) or a list of them."""
    if isinstance(item, list):
        body = b"".join(rlp_encode(x) for x in item)
        return _length(len(body), 0xC0) + body
    if isinstance(item, int):
        item = item.to_bytes((item.bit_length() + 7) // 8, "big")
    if len(item) == 1 and item[0] < 0x80:
        return bytes(item)
    return _length(len(item), 0x80) + bytes(item)


def _length(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes([offset + length])
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(size)]) + size


@dataclass(frozen=True)
class SignedTransaction:
    """A signed transaction, named as eth-account names it (``raw_transaction``, ``hash``, ``r``, ``s``, ``v``)."""

    raw_transaction: bytes
    hash: bytes
    r: int
    s: int
    v: int


_INTEGERS = ("chainId", "nonce", "maxPriorityFeePerGas", "maxFeePerGas", "gas", "value")
_FIELDS = frozenset((*_INTEGERS, "to", "data", "from", "type"))
_REQUIRED = frozenset(("chainId", "nonce", "maxPriorityFeePerGas", "maxFeePerGas", "gas", "to"))


class KeyAccount:
    """An account from a private key (32 bytes, 1 <= key < n): ``address``, ``key`` and
    ``sign_transaction`` for the registry's transactions by hand; every other attribute of
    eth-account's ``LocalAccount`` (``sign_message``, ``encrypt``, ...) from a ``LocalAccount`` of
    the same key, made on first use."""

    def __init__(self, key: bytes) -> None:
        secret = int.from_bytes(key, "big")
        if len(key) != 32 or not 0 < secret < SECP256K1_ORDER:
            raise ValueError("a private key is 32 bytes holding an integer in [1, n - 1]")
        self.key = bytes(key)
        self.address = checksum_address(keccak(public_key(secret))[12:])
        self._local: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the key
        return f"<KeyAccount {self.address}>"

    def sign_transaction(self, transaction: dict[str, Any]) -> Any:
        """The signed transaction: by hand for a type-2 transaction of the registry's shape,
        otherwise by eth-account (which also raises its own errors for what it refuses)."""
        if not self._plain(transaction):
            return self._eth_account().sign_transaction(transaction)
        fields = [transaction[name] for name in ("chainId", "nonce", "maxPriorityFeePerGas", "maxFeePerGas", "gas")]
        fields += [bytes.fromhex(transaction["to"][2:]), transaction.get("value", 0), bytes(transaction.get("data", b"")), []]
        unsigned = b"\x02" + rlp_encode(fields)
        parity, r, s = sign_hash(keccak(unsigned), self.key)
        raw = b"\x02" + rlp_encode([*fields, parity, r, s])
        return SignedTransaction(raw, keccak(raw), r, s, parity)

    def _plain(self, tx: dict[str, Any]) -> bool:
        """Whether ``tx`` is exactly what :meth:`sign_transaction` signs by hand."""
        if not _REQUIRED <= tx.keys() <= _FIELDS or tx.get("type", 2) not in (2, "0x2"):
            return False
        if tx.get("from", self.address) != self.address:
            return False  # eth-account says which account was asked for
        numbers = [tx.get(name, 0) for name in _INTEGERS]
        if not all(type(n) is int and 0 <= n < _UINT256 for n in numbers):
            return False
        if tx["maxPriorityFeePerGas"] > tx["maxFeePerGas"]:
            return False
        to = tx["to"]  # eth-account takes a checksummed address only
        return isinstance(to, str) and is_address(to) and checksum_address(to) == to and isinstance(tx.get("data", b""), (bytes, bytearray))

    def _eth_account(self) -> Any:
        with self._lock:
            if self._local is None:
                from .eth_account_import import load_eth_account

                self._local = load_eth_account().Account.from_key(self.key)
            return self._local

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_local", "_lock"):
            raise AttributeError(name)
        return getattr(self._eth_account(), name)
