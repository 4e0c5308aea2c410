"""Multihash functions: the ones Kubo 0.42 accepts, each from a maintained library.

A multihash is ``varint(code) varint(length) digest``. Kubo 0.42 verifies a block only when its
hash function is both *registered* in go-multihash v0.2.3 (it can compute it) and *allowed* by
boxo's ``verifcid.DefaultAllowlist`` (it does not call it insecure), with a digest of 20..128
bytes (identity: 0..128). Elements accepts exactly that set, so every block it stores can also
be put into Kubo, and refuses the rest with the reason Kubo would give:

    code             name                  library                        digest
    0x00             identity              (the bytes themselves)         = the block, ≤ 128
    0x11             sha1                  hashlib                        20 (collision-broken;
                                                                           Kubo keeps it for git)
    0x12 / 0x13      sha2-256 / sha2-512   hashlib                        32 / 64
    0x56             dbl-sha2-256          hashlib (sha256 twice)         32
    0x17 0x16 0x15 0x14  sha3-224..512     hashlib                        28 / 32 / 48 / 64
    0x19             shake-256             hashlib                        64
    0x1b / 0x1d      keccak-256 / -512     pycryptodome Crypto.Hash.keccak 32 / 64
    0x1e             blake3                blake3 (XOF: any length)       32 by default
    0xb214..0xb240   blake2b-160..512      hashlib (digest_size=n)        20..64
    0xb260           blake2s-256           hashlib                        32

Refused (Kubo refuses them too): blake2b-8..152 (digests under 20 bytes); keccak-224/384 and
blake2s-8..248 (go-multihash names them but registers no hasher); md5, shake-128, murmur3
(not on the allowlist); sha2-224/384/512-224/512-256 (not names ``ipfs add --hash`` knows, not
on the allowlist). ``tests/test_storage_multihash.py`` checks every row against a real Kubo.

Why pycryptodome for keccak: hashlib's ``sha3_*`` is FIPS-202 SHA-3 (other padding), and
``eth-hash`` (through web3) exposes keccak-256 only; pycryptodome's ``Crypto.Hash.keccak`` gives
the raw Keccak of every size, is maintained, and is already installed as a dependency of
eth-account.

A digest may be shorter than the function's output (a truncated multihash, which go-multihash
verifies by truncating); blake3 is an extendable-output function, so a longer one is read from
its output stream, as go-multihash does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Protocol

from .errors import CIDError

__all__ = [
    "HashFunction",
    "Hasher",
    "IDENTITY",
    "SHA2_256",
    "SHA2_512",
    "BLAKE3",
    "MAX_DIGEST",
    "MIN_DIGEST",
    "MAX_IDENTITY",
    "FUNCTIONS",
    "NAMES",
    "name_of",
    "get",
    "by_name",
    "check",
    "digest",
    "kubo_add_names",
    "describe_accepted",
]

IDENTITY = 0x00
SHA2_256 = 0x12
SHA2_512 = 0x13
BLAKE3 = 0x1E

#: boxo verifcid's limits (Kubo refuses other lengths): a short digest matches too many blocks.
MIN_DIGEST = 20
MAX_DIGEST = 128
#: Identity "hashes" inline the block in the CID.
MAX_IDENTITY = 128

_BLAKE2B_MIN, _BLAKE2B_MAX = 0xB201, 0xB240
_BLAKE2S_MIN, _BLAKE2S_MAX = 0xB241, 0xB260


class Hasher(Protocol):
    """What :meth:`HashFunction.new` returns: hashlib's interface, ``digest(length)`` for any length."""

    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def digest(self, length: int) -> bytes: ...


class _Fixed:
    """A fixed-output hashlib-style object; ``digest(n)`` is the first ``n`` bytes."""

    __slots__ = ("_h",)

    def __init__(self, h) -> None:
        self._h = h

    def update(self, data) -> None:
        self._h.update(data)

    def digest(self, length: int) -> bytes:
        return self._h.digest()[:length]


class _Shake:
    __slots__ = ("_h",)

    def __init__(self) -> None:
        self._h = hashlib.shake_256()

    def update(self, data) -> None:
        self._h.update(data)

    def digest(self, length: int) -> bytes:
        return self._h.digest(length)


class _DoubleSha256:
    __slots__ = ("_h",)

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def update(self, data) -> None:
        self._h.update(data)

    def digest(self, length: int) -> bytes:
        return hashlib.sha256(self._h.digest()).digest()[:length]


class _Blake3:
    __slots__ = ("_h",)

    def __init__(self) -> None:
        import blake3

        self._h = blake3.blake3()

    def update(self, data) -> None:
        self._h.update(data)

    def digest(self, length: int) -> bytes:
        return self._h.digest(length=length)


class _Keccak:
    __slots__ = ("_h",)

    def __init__(self, bits: int) -> None:
        from Crypto.Hash import keccak

        self._h = keccak.new(digest_bits=bits)

    def update(self, data) -> None:
        # pycryptodome takes bytes-like objects, memoryviews of mmaps included.
        self._h.update(data)

    def digest(self, length: int) -> bytes:
        return self._h.digest()[:length]


class _Identity:
    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def update(self, data) -> None:
        self._parts.append(bytes(data))

    def digest(self, length: int) -> bytes:
        return b"".join(self._parts)[:length]


@dataclass(frozen=True)
class HashFunction:
    """One multihash function.

    Attributes:
        code: the multicodec code.
        name: its multicodec name (what ``ipfs add --hash`` takes).
        size: the digest length written by default (``ipfs add``); 0 for identity.
        library: where the implementation comes from (``""`` for refused functions).
        refusal: why Kubo 0.42 refuses it (``""`` when it is accepted).
        xof: an extendable-output function (a digest may be longer than ``size``).
        factory: makes a streaming hasher; ``None`` for refused functions, which nothing hashes with.
    """

    code: int
    name: str
    size: int
    library: str
    refusal: str = ""
    xof: bool = False
    factory: Callable[[], Hasher] | None = None

    @property
    def accepted(self) -> bool:
        return not self.refusal

    def new(self) -> Hasher:
        """A fresh streaming hasher (``update`` then ``digest(length)``)."""
        if self.factory is None:
            raise CIDError(self.refused_message())
        return self.factory()

    def refused_message(self) -> str:
        return (
            f"hash function {self.name} is not accepted: {self.refusal} (Kubo 0.42 refuses it too); "
            f"use {_SUGGESTED}"
        )


def _fixed(constructor: Callable[[], object]) -> Callable[[], Hasher]:
    return lambda: _Fixed(constructor())


def _table() -> dict[int, HashFunction]:
    unregistered = "go-multihash registers no hasher for it"
    insecure = "boxo's allowlist calls it potentially insecure"
    functions = [
        HashFunction(IDENTITY, "identity", 0, "none (the block inline)", factory=_Identity),
        HashFunction(0x11, "sha1", 20, "hashlib", factory=_fixed(hashlib.sha1)),
        HashFunction(SHA2_256, "sha2-256", 32, "hashlib", factory=_fixed(hashlib.sha256)),
        HashFunction(SHA2_512, "sha2-512", 64, "hashlib", factory=_fixed(hashlib.sha512)),
        HashFunction(0x56, "dbl-sha2-256", 32, "hashlib", factory=_DoubleSha256),
        HashFunction(0x17, "sha3-224", 28, "hashlib", factory=_fixed(hashlib.sha3_224)),
        HashFunction(0x16, "sha3-256", 32, "hashlib", factory=_fixed(hashlib.sha3_256)),
        HashFunction(0x15, "sha3-384", 48, "hashlib", factory=_fixed(hashlib.sha3_384)),
        HashFunction(0x14, "sha3-512", 64, "hashlib", factory=_fixed(hashlib.sha3_512)),
        HashFunction(0x19, "shake-256", 64, "hashlib", factory=_Shake),
        HashFunction(0x1B, "keccak-256", 32, "pycryptodome", factory=lambda: _Keccak(256)),
        HashFunction(0x1D, "keccak-512", 64, "pycryptodome", factory=lambda: _Keccak(512)),
        HashFunction(BLAKE3, "blake3", 32, "blake3", xof=True, factory=_Blake3),
        HashFunction(0x1A, "keccak-224", 28, "", refusal=unregistered),
        HashFunction(0x1C, "keccak-384", 48, "", refusal=unregistered),
        HashFunction(0x18, "shake-128", 32, "", refusal=insecure),
        HashFunction(0xD5, "md5", 16, "", refusal=insecure),
        HashFunction(0x22, "murmur3-x64-64", 8, "", refusal=insecure),
        HashFunction(0x1013, "sha2-224", 28, "", refusal=insecure),
        HashFunction(0x20, "sha2-384", 48, "", refusal=insecure),
        HashFunction(0x1014, "sha2-512-224", 28, "", refusal=insecure),
        HashFunction(0x1015, "sha2-512-256", 32, "", refusal=insecure),
        HashFunction(0x1012, "sha2-256-trunc254-padded", 32, "", refusal=unregistered),
    ]
    for code in range(_BLAKE2B_MIN, _BLAKE2B_MAX + 1):
        size = code - _BLAKE2B_MIN + 1
        # A default argument pins each size (a closure would see the loop's last value).
        factory = lambda size=size: _Fixed(hashlib.blake2b(digest_size=size))  # noqa: E731
        refusal = "" if size >= MIN_DIGEST else f"its {size}-byte digest is under the {MIN_DIGEST}-byte minimum"
        library = "" if refusal else "hashlib"
        functions.append(HashFunction(code, f"blake2b-{size * 8}", size, library, refusal=refusal, factory=factory))
    for code in range(_BLAKE2S_MIN, _BLAKE2S_MAX + 1):
        size = code - _BLAKE2S_MIN + 1
        factory = lambda size=size: _Fixed(hashlib.blake2s(digest_size=size))  # noqa: E731
        refusal = "" if size == 32 else unregistered
        library = "" if refusal else "hashlib"
        functions.append(HashFunction(code, f"blake2s-{size * 8}", size, library, refusal=refusal, factory=factory))
    # Refused functions keep no factory: nothing ever hashes with them.
    return {f.code: (f if f.accepted else HashFunction(f.code, f.name, f.size, f.library, f.refusal)) for f in functions}


#: Every function Elements knows by code, accepted or not (refused ones name the reason).
FUNCTIONS: dict[int, HashFunction] = _table()
#: Names (as ``ipfs add --hash`` takes them, plus Kubo's alias ``sha3`` = sha3-512) -> code.
NAMES: dict[str, int] = {f.name: f.code for f in FUNCTIONS.values()} | {"sha3": 0x14}


def name_of(code: int) -> str:
    """A code's multicodec name, or its hex when Elements does not know it."""
    function = FUNCTIONS.get(code)
    return function.name if function else hex(code)


def get(code: int) -> HashFunction:
    """The accepted hash function of a code.

    Raises:
        CIDError: unknown, or refused (the message says why and what to use).
    """
    function = FUNCTIONS.get(code)
    if function is None:
        raise CIDError(f"hash function {hex(code)} is unknown to Elements and Kubo 0.42; use {_SUGGESTED}")
    if not function.accepted:
        raise CIDError(function.refused_message())
    return function


def by_name(name: str) -> HashFunction:
    """The accepted hash function ``ipfs add --hash NAME`` would use (case-insensitive).

    Raises:
        CIDError: unknown or refused.
    """
    code = NAMES.get(name.strip().lower())
    if code is None:
        raise CIDError(f"unknown hash function {name!r}; use one of {describe_accepted()}")
    return get(code)


def check(code: int, length: int) -> None:
    """Refuse a multihash's shape that no block can match or Kubo would refuse.

    Unknown and refused codes pass here (a CID naming them can still be parsed and printed);
    they are refused when a block is hashed.

    Raises:
        CIDError: a digest length outside the limits or longer than the function makes.
    """
    if code == IDENTITY:
        if length > MAX_IDENTITY:
            raise CIDError(f"identity CID inlines {length} bytes, over the {MAX_IDENTITY}-byte limit")
        return
    if not MIN_DIGEST <= length <= MAX_DIGEST:
        raise CIDError(f"multihash digest of {length} bytes is outside {MIN_DIGEST}..{MAX_DIGEST}; the CID is unsafe")
    function = FUNCTIONS.get(code)
    if function is not None and function.accepted and not function.xof and length > function.size:
        raise CIDError(
            f"a {function.name} digest is {function.size} bytes, this multihash says {length}; the CID is corrupt"
        )


def digest(code: int, data: bytes | bytearray | memoryview, length: int | None = None) -> bytes:
    """The digest of ``data`` (``length`` bytes, default: the function's size).

    Raises:
        CIDError: an unknown or refused function.
    """
    function = get(code)
    if code == IDENTITY:
        return bytes(data)
    hasher = function.new()
    hasher.update(data)
    return hasher.digest(function.size if length is None else length)


def kubo_add_names() -> list[str]:
    """Every name ``ipfs add --hash`` accepts (Kubo 0.42), in table order."""
    return [f.name for f in FUNCTIONS.values() if f.accepted]


def describe_accepted() -> str:
    """The accepted names in one short line (the blake2b range folded)."""
    names = [n for n in kubo_add_names() if not n.startswith("blake2b-")]
    blake2b = [n for n in kubo_add_names() if n.startswith("blake2b-")]
    return ", ".join(names[:-1] + [f"{blake2b[0]}..{blake2b[-1]} (every 8 bits)", names[-1]])


_SUGGESTED = "sha2-256 (the default), sha2-512, sha3-256, blake2b-256, blake3 or keccak-256"
