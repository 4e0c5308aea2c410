"""CIDs as the registry stores them: a codec byte and a sha2-256 digest.

A record keeps the CID in two fields so the exact CID can be rebuilt::

    cid_codec   0      a CIDv0 (always dag-pb)      str: base58btc "Qm..."
                0x55   a CIDv1, codec raw           str: "b" + base32 lower
                0x70   a CIDv1, codec dag-pb        str: "b" + base32 lower
    cid_digest  the 32-byte sha2-256 digest of the multihash

Only what the registry accepts is handled here: sha2-256 multihashes, codecs raw and dag-pb.
(The storage layer's :class:`registry.storage.cid.CID` is the general implementation; this module
accepts its instances, via ``str()``.)
"""

from __future__ import annotations

import base64
from typing import Any

from ..errors import InputError

__all__ = ["CIDV0", "RAW", "DAG_PB", "split_cid", "join_cid"]

CIDV0 = 0
RAW = 0x55
DAG_PB = 0x70
_SHA2_256 = 0x12
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, rem = divmod(number, 58)
        out = _B58[rem] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        index = _B58.find(char)
        if index < 0:
            raise ValueError(f"{char!r} is not a base58btc character")
        number = number * 58 + index
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def _parse_binary(raw: bytes, shown: str) -> tuple[int, bytes]:
    if len(raw) == 34 and raw[0] == _SHA2_256 and raw[1] == 32:
        return CIDV0, raw[2:]
    if len(raw) == 36 and raw[0] == 1 and raw[1] in (RAW, DAG_PB) and raw[2] == _SHA2_256 and raw[3] == 32:
        return raw[1], raw[4:]
    raise InputError(
        f"CID {shown} is not one the registry records: it takes sha2-256 CIDs, v0 or v1 with codec raw or "
        "dag-pb (what `elements cid` and Kubo produce by default)"
    )


def split_cid(cid: Any) -> tuple[int, bytes]:
    """Split a CID into ``(cid_codec, digest)`` as the registry stores it.

    Args:
        cid: a CID string (``Qm...``, ``b...``, ``z...``, ``f...``), its binary form, or any object
            whose ``str()`` is a CID string (such as the storage layer's ``CID``).

    Raises:
        InputError: not a sha2-256 CIDv0/CIDv1 with codec raw or dag-pb.
    """
    if isinstance(cid, (bytes, bytearray, memoryview)):
        raw = bytes(cid)
        return _parse_binary(raw, "0x" + raw.hex())
    text = str(cid).strip()
    try:
        if text.startswith("Qm") and len(text) == 46:
            raw = _b58decode(text)
        elif text[:1] in ("b", "B"):
            body = text[1:].upper()
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
        elif text[:1] == "z":
            raw = _b58decode(text[1:])
        elif text[:1] in ("f", "F"):
            raw = bytes.fromhex(text[1:])
        else:
            raise ValueError("unknown multibase prefix")
    except (ValueError, base64.binascii.Error) as exc:
        raise InputError(f"{text!r} is not a CID ({exc}); pass the CID printed by `elements cid FILE`") from None
    return _parse_binary(raw, repr(text))


def join_cid(cid_codec: int, digest: bytes) -> str:
    """Rebuild the CID string (as Kubo prints it) from a codec byte and a sha2-256 digest."""
    digest = bytes(digest)
    if len(digest) != 32:
        raise InputError(f"a sha2-256 digest has 32 bytes, not {len(digest)}")
    multihash = bytes((_SHA2_256, 32)) + digest
    if cid_codec == CIDV0:
        return _b58encode(multihash)
    if cid_codec in (RAW, DAG_PB):
        body = base64.b32encode(bytes((1, cid_codec)) + multihash).decode().lower().rstrip("=")
        return "b" + body
    raise InputError(f"CID codec 0x{cid_codec:02x} is not one the registry records (0, 0x55 or 0x70)")
