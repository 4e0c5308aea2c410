"""Content identifiers (CIDs): version 0 and 1, multihash, multibase, unsigned varints.

A CID names a block by the hash of its bytes and says how to read it (its codec)::

    CIDv0  = multihash(sha2-256)                                 str: base58btc, "Qm..."
    CIDv1  = varint(1) varint(codec) multihash                   str: "b" + base32 lower
    multihash = varint(hash code) varint(digest length) digest

Codecs named here: ``RAW`` (0x55, file bytes as they are), ``DAG_PB`` (0x70, UnixFS nodes),
``DAG_CBOR`` and ``DAG_JSON`` (whose links :mod:`.codecs` follows); any other codec is carried as
is. Hash functions are those of :mod:`.multihash` (every one Kubo 0.42 accepts); a CIDv0 is
always dag-pb sha2-256. Parsing accepts the multibase prefixes ``b``/``B`` (base32),
``z`` (base58btc), ``f``/``F`` (base16) and bare CIDv0 strings; :meth:`CID.__str__` writes
what Kubo writes (base58btc for v0, base32 lower for v1).
"""

from __future__ import annotations

import base64
import binascii
from typing import Union

from ..limits import CID_CHARS
from . import multihash as mh
from .errors import BlockIntegrityError, CIDError

__all__ = [
    "CID",
    "RAW",
    "DAG_PB",
    "DAG_CBOR",
    "DAG_JSON",
    "SHA2_256",
    "SHA2_512",
    "IDENTITY",
    "BLAKE3",
    "encode_varint",
    "decode_varint",
    "read_varint",
    "base58btc_encode",
    "base58btc_decode",
]

RAW = 0x55
DAG_PB = 0x70
DAG_CBOR = 0x71
DAG_JSON = 0x0129
IDENTITY = mh.IDENTITY
SHA2_256 = mh.SHA2_256
SHA2_512 = mh.SHA2_512
BLAKE3 = mh.BLAKE3

CODEC_NAMES = {RAW: "raw", DAG_PB: "dag-pb", DAG_CBOR: "dag-cbor", DAG_JSON: "dag-json"}

# ---------------------------------------------------------------------------------------------
# unsigned varints (multiformats/unsigned-varint: at most 9 bytes, minimal encoding)


def encode_varint(value: int) -> bytes:
    """The unsigned LEB128 varint of a non-negative integer."""
    if value < 0:
        raise ValueError("varints are unsigned")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(buf: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Decode a varint at ``offset``; returns ``(value, next offset)``.

    Raises:
        ValueError: truncated, over 9 bytes or not minimally encoded.
    """
    if 0 <= offset < len(buf) and buf[offset] < 0x80:  # one byte: tags, codecs, lengths under 128
        return buf[offset], offset + 1
    value = 0
    shift = 0
    for i in range(offset, min(len(buf), offset + 9)):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and i > offset:
                raise ValueError("varint is not minimally encoded")
            return value, i + 1
        shift += 7
    if len(buf) - offset >= 9:
        raise ValueError("varint is longer than 9 bytes")
    raise ValueError("varint is truncated")


def read_varint(stream) -> int | None:
    """Read one varint from a binary stream; ``None`` at a clean end of stream."""
    value = 0
    shift = 0
    for i in range(9):
        byte = stream.read(1)
        if not byte:
            if i == 0:
                return None
            raise ValueError("varint is truncated")
        b = byte[0]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            if b == 0 and i > 0:
                raise ValueError("varint is not minimally encoded")
            return value
        shift += 7
    raise ValueError("varint is longer than 9 bytes")


# ---------------------------------------------------------------------------------------------
# base58btc (the bitcoin alphabet)

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


def base58btc_encode(data: bytes) -> str:
    zeros = len(data) - len(data.lstrip(b"\0"))
    number = int.from_bytes(data, "big")
    out = []
    while number:
        number, rem = divmod(number, 58)
        out.append(_B58_ALPHABET[rem])
    return "1" * zeros + "".join(reversed(out))


def base58btc_decode(text: str) -> bytes:
    number = 0
    for char in text:
        try:
            number = number * 58 + _B58_INDEX[char]
        except KeyError:
            raise ValueError(f"{char!r} is not a base58btc character") from None
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def _base32_decode(text: str) -> bytes:
    text = text.upper()
    return base64.b32decode(text + "=" * (-len(text) % 8))


# ---------------------------------------------------------------------------------------------


class CID:
    """An immutable CID. Equal CIDs have equal version, codec and multihash.

    Build one with :meth:`parse` (from text or bytes), :meth:`of` (hash a block) or the
    constructor ``CID(version, codec, multihash)``.
    """

    __slots__ = ("_version", "_codec", "_multihash", "_hash_code", "_digest", "_bytes")

    def __init__(self, version: int, codec: int, multihash: bytes) -> None:
        multihash = bytes(multihash)
        try:
            hash_code, pos = decode_varint(multihash)
            length, pos = decode_varint(multihash, pos)
        except ValueError as exc:
            raise CIDError(f"malformed multihash ({exc}); the CID is corrupt") from None
        if len(multihash) - pos != length:
            raise CIDError(
                f"multihash says {length} digest bytes but holds {len(multihash) - pos}; the CID is corrupt"
            )
        mh.check(hash_code, length)
        if version == 0:
            if codec != DAG_PB or hash_code != SHA2_256 or length != 32:
                raise CIDError("a CIDv0 must be dag-pb with a 32-byte sha2-256 multihash")
            raw = multihash
        elif version == 1:
            raw = encode_varint(1) + encode_varint(codec) + multihash
        else:
            raise CIDError(f"CID version {version} is not supported (only 0 and 1 exist)")
        self._version = version
        self._codec = codec
        self._multihash = multihash
        self._hash_code = hash_code
        self._digest = multihash[pos:]
        self._bytes = raw

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def of(cls, data: bytes | memoryview, codec: int = RAW, version: int = 1, hash_code: int = SHA2_256) -> "CID":
        """The CID of a block: hash ``data`` with the function's default length and wrap the digest.

        Raises:
            CIDError: an unknown or refused hash function, or an identity block over 128 bytes.
        """
        digest = mh.digest(hash_code, data)
        return cls(version, codec, encode_varint(hash_code) + encode_varint(len(digest)) + digest)

    @classmethod
    def from_sha256(cls, digest: bytes, codec: int = RAW, version: int = 1) -> "CID":
        """A CID from an already computed sha2-256 digest."""
        return cls(version, codec, b"\x12\x20" + digest)

    @classmethod
    def parse(cls, value: Union[str, bytes, bytearray, memoryview, "CID"]) -> "CID":
        """Parse a CID from its string form or its binary form.

        Raises:
            CIDError: the value is not a valid CID.
        """
        if isinstance(value, CID):
            return value
        if isinstance(value, str):
            return cls._parse_str(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return cls._parse_bytes(bytes(value))
        raise CIDError(f"cannot read a CID from a {type(value).__name__}")

    @classmethod
    def _parse_str(cls, text: str) -> "CID":
        text = text.strip()
        if len(text) > CID_CHARS:  # before decoding it, and never echoed whole
            raise CID_CHARS.exceeded(f"the CID {text[:24]!r}…", len(text), CIDError)
        if text.startswith("/ipfs/"):
            text = text[len("/ipfs/"):]
        if not text:
            raise CIDError("empty CID; give a CID such as bafy... or Qm...")
        if len(text) == 46 and text.startswith("Qm"):
            try:
                raw = base58btc_decode(text)
            except ValueError as exc:
                raise CIDError(f"{text!r} is not a CID ({exc})") from None
            return cls._parse_bytes(raw, text)
        prefix, body = text[0], text[1:]
        try:
            if prefix in "bB":
                raw = _base32_decode(body)
            elif prefix == "z":
                raw = base58btc_decode(body)
            elif prefix in "fF":
                raw = bytes.fromhex(body)
            else:
                raise CIDError(
                    f"{text!r} is not a CID: unknown multibase prefix {prefix!r} (expected b..., z..., f... or Qm...)"
                )
        except (ValueError, binascii.Error) as exc:
            if isinstance(exc, CIDError):
                raise
            raise CIDError(f"{text!r} is not a CID (bad {prefix!r} multibase encoding)") from None
        if raw[:1] == b"\x12":
            raise CIDError(f"{text!r} is a multibase CIDv0, which does not exist; use its Qm... form")
        return cls._parse_bytes(raw, text)

    @classmethod
    def _parse_bytes(cls, raw: bytes, shown: str | None = None) -> "CID":
        name = repr(shown) if shown is not None else f"0x{raw[:40].hex()}"
        if len(raw) == 34 and raw[:2] == b"\x12\x20":
            return cls(0, DAG_PB, raw)
        try:
            version, pos = decode_varint(raw)
            if version != 1:
                raise CIDError(f"{name} is not a CID (version {version}; only 0 and 1 exist)")
            codec, pos = decode_varint(raw, pos)
        except ValueError as exc:
            raise CIDError(f"{name} is not a CID ({exc})") from None
        return cls(1, codec, raw[pos:])

    @classmethod
    def read_from(cls, buf: bytes | memoryview, offset: int = 0) -> tuple["CID", int]:
        """Read a binary CID that is followed by other data (as in CAR sections)."""
        try:
            if len(buf) - offset >= 2 and buf[offset] == 0x12 and buf[offset + 1] == 0x20:
                end = offset + 34
                if end > len(buf):
                    raise ValueError("truncated CIDv0")
                return cls(0, DAG_PB, bytes(buf[offset:end])), end
            version, pos = decode_varint(buf, offset)
            if version != 1:
                raise ValueError(f"version {version}")
            codec, pos = decode_varint(buf, pos)
            mh_start = pos
            _, pos = decode_varint(buf, pos)
            length, pos = decode_varint(buf, pos)
            end = pos + length
            if end > len(buf):
                raise ValueError("truncated multihash")
            return cls(1, codec, bytes(buf[mh_start:end])), end
        except ValueError as exc:
            raise CIDError(f"malformed binary CID ({exc})") from None

    # -- properties ---------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    @property
    def codec(self) -> int:
        return self._codec

    @property
    def multihash(self) -> bytes:
        return self._multihash

    @property
    def hash_code(self) -> int:
        return self._hash_code

    @property
    def digest(self) -> bytes:
        return self._digest

    @property
    def codec_name(self) -> str:
        return CODEC_NAMES.get(self._codec, hex(self._codec))

    @property
    def hash_name(self) -> str:
        return mh.name_of(self._hash_code)

    def to_v1(self) -> "CID":
        return self if self._version == 1 else CID(1, self._codec, self._multihash)

    def to_v0(self) -> "CID":
        """The CIDv0 of a dag-pb sha2-256 CID. Raises CIDError for anything else."""
        return self if self._version == 0 else CID(0, self._codec, self._multihash)

    # -- verification -------------------------------------------------------------------------

    def matches(self, data: bytes | bytearray | memoryview) -> bool:
        """Whether ``data`` hashes to this CID's multihash.

        Raises:
            CIDError: the hash function is unknown or refused (no answer can be given).
        """
        if self._hash_code == IDENTITY:
            return bytes(data) == self._digest
        return mh.digest(self._hash_code, data, len(self._digest)) == self._digest

    def check(self, data: bytes | bytearray | memoryview, where: str = "the source") -> None:
        """Raise :class:`BlockIntegrityError` unless ``data`` is this CID's block."""
        if not self.matches(data):
            raise BlockIntegrityError(self, where, f"{len(data)} bytes")

    # -- encodings ----------------------------------------------------------------------------

    def __bytes__(self) -> bytes:
        return self._bytes

    def __str__(self) -> str:
        if self._version == 0:
            return base58btc_encode(self._bytes)
        return "b" + base64.b32encode(self._bytes).decode("ascii").rstrip("=").lower()

    def __repr__(self) -> str:
        return f"CID({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CID):
            return NotImplemented
        return self._bytes == other._bytes

    def __lt__(self, other: "CID") -> bool:
        return self._bytes < other._bytes

    def __hash__(self) -> int:
        return hash(self._bytes)

    def to_json(self) -> str:
        return str(self)

