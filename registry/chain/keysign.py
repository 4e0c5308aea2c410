"""An account from a hex private key that signs the registry's transactions without importing eth-account.

Why (issue 12): ``publish-model`` signs one or two EIP-1559 transactions, but importing
eth-account to do it costs 0.25 to 0.3 s of a quiet core before the first block can be written
(eth-keys, eth-utils and its pydantic models, eth-keyfile, rlp), about an eighth of the whole
command; eth-keys and rlp alone import eth-utils, so they save nothing. What signing needs is
small: Keccak-256 (:func:`registry.chain.abi.keccak`, pycryptodome's compiled code), RLP of nine
fields, and one secp256k1 ECDSA signature. This module does exactly what eth-account does with
eth-keys' own pure-Python backend (the one it uses when coincurve is not installed):
RFC 6979 nonces with HMAC-SHA256 over the key and the hash reduced mod n, the low-``s`` form of
EIP-2 with the y parity flipped to match. ``tests/test_chain_keysign.py`` checks the signed bytes
against eth-account's for many random keys, nonces, fees and calldata.

:class:`KeyAccount` signs by hand only the shape the registry sends (a type-2 transaction with
``to``, no access list, integers in range, calldata as bytes); any other transaction, a message,
typed data, a keystore export, goes to eth-account's ``LocalAccount`` for the same key, imported
then. Like eth-keys' pure-Python backend, the arithmetic here is not constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass
from typing import Any

from .abi import checksum_address, is_address, keccak

__all__ = ["SECP256K1_ORDER", "KeyAccount", "SignedTransaction", "public_key", "rlp_encode", "sign_hash"]

#: The field prime p and the group order n of secp256k1, and its generator G.
_P = 2**256 - 2**32 - 977
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_G = (0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
      0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8, 1)
_UINT256 = 2**256


# ----------------------------------------------------------------------------------------------
# secp256k1 (Jacobian coordinates; a point with y = 0 is the identity, as on a curve of odd order)


def _double(point: tuple[int, int, int]) -> tuple[int, int, int]:
    x, y, z = point
    if not y:
        return 0, 0, 0
    ysq = y * y % _P
    s = 4 * x * ysq % _P
    m = 3 * x * x % _P
    nx = (m * m - 2 * s) % _P
    return nx, (m * (s - nx) - 8 * ysq * ysq) % _P, 2 * y * z % _P


def _add(p: tuple[int, int, int], q: tuple[int, int, int]) -> tuple[int, int, int]:
    x1, y1, z1 = p
    x2, y2, z2 = q
    if not y1:
        return q
    if not y2:
        return p
    z1s, z2s = z1 * z1 % _P, z2 * z2 % _P
    u1, u2 = x1 * z2s % _P, x2 * z1s % _P
    s1, s2 = y1 * z2s * z2 % _P, y2 * z1s * z1 % _P
    if u1 == u2:
        return _double(p) if s1 == s2 else (0, 0, 1)
    h, r = u2 - u1, s2 - s1
    h2 = h * h % _P
    h3 = h * h2 % _P
    u1h2 = u1 * h2 % _P
    nx = (r * r - h3 - 2 * u1h2) % _P
    return nx, (r * (u1h2 - nx) - s1 * h3) % _P, h * z1 * z2 % _P


def _multiply(k: int) -> tuple[int, int]:
    """k·G in affine coordinates (1 <= k < n, so never the identity)."""
    acc = (0, 0, 1)
    for bit in bin(k)[2:]:
        acc = _double(acc)
        if bit == "1":
            acc = _add(acc, _G)
    x, y, z = acc
    zi = pow(z, -1, _P)
    zi2 = zi * zi % _P
    return x * zi2 % _P, y * zi2 * zi % _P


def public_key(secret: int) -> bytes:
    """The 64-byte uncompressed public key (x ‖ y) of a private key 1 <= ``secret`` < n."""
    x, y = _multiply(secret)
    return x.to_bytes(32, "big") + y.to_bytes(32, "big")


def _nonce(digest: bytes, key: bytes) -> int:
    """RFC 6979's first candidate k (HMAC-SHA256), as eth-keys computes it: ``digest`` is the
    hash already reduced mod n, 32 bytes."""
    v, k = b"\x01" * 32, b"\x00" * 32
    k = hmac.new(k, v + b"\x00" + key + digest, hashlib.sha256).digest()
    v = hmac.new(k, v, hashlib.sha256).digest()
    k = hmac.new(k, v + b"\x01" + key + digest, hashlib.sha256).digest()
    v = hmac.new(k, v, hashlib.sha256).digest()
    return int.from_bytes(hmac.new(k, v, hashlib.sha256).digest(), "big")


def sign_hash(message_hash: bytes, key: bytes) -> tuple[int, int, int]:
    """The ECDSA signature (y parity, r, s) of a 32-byte hash with a 32-byte private key, ``s`` in
    its low form (EIP-2), bit for bit as eth-keys' ``ecdsa_raw_sign``."""
    z = int.from_bytes(message_hash, "big")
    k = _nonce((z % SECP256K1_ORDER).to_bytes(32, "big"), key)
    r, y = _multiply(k)
    s = pow(k, -1, SECP256K1_ORDER) * (z + r * int.from_bytes(key, "big")) % SECP256K1_ORDER
    high = s * 2 >= SECP256K1_ORDER
    return (y & 1) ^ high, r, SECP256K1_ORDER - s if high else s


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
