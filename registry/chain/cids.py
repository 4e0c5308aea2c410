"""CIDs as the registry stores them: a codec byte and a sha2-256 digest.

A record keeps the CID in two fields so the exact CID can be rebuilt::

    cid_codec   0      a CIDv0 (always dag-pb)      str: base58btc "Qm..."
                0x55   a CIDv1, codec raw           str: "b" + base32 lower
                0x70   a CIDv1, codec dag-pb        str: "b" + base32 lower
    cid_digest  the 32-byte sha2-256 digest of the multihash

Parsing and printing are the storage layer's (:class:`registry.storage.cid.CID`); this module only
maps a CID to and from the two record fields, refusing what the registry does not record.
"""

from __future__ import annotations

from typing import Any

from ..digest import to_hex
from ..errors import InputError
from ..storage.cid import CID, DAG_PB, RAW, SHA2_256

__all__ = ["CIDV0", "RAW", "DAG_PB", "split_cid", "join_cid"]

CIDV0 = 0


def split_cid(cid: Any) -> tuple[int, bytes]:
    """Split a CID into ``(cid_codec, digest)`` as the registry stores it.

    Args:
        cid: a CID string (``Qm...``, ``b...``, ``z...``, ``f...``), its binary form, or a ``CID``.

    Raises:
        InputError: not a sha2-256 CIDv0/CIDv1 with codec raw or dag-pb.
    """
    if isinstance(cid, (bytes, bytearray, memoryview)):
        shown = to_hex(bytes(cid)[:64]) + ("…" if len(cid) > 64 else "")
    else:
        cid = str(cid).strip()
        shown = repr(cid) if len(cid) <= 120 else repr(cid[:100]) + f"… ({len(cid):,} characters)"  # a message never echoes a hostile input whole
    try:
        parsed = CID.parse(cid)
    except ValueError as exc:
        raise InputError(f"{shown} is not a CID ({exc}); pass the CID printed by `elements cid FILE`") from None
    if parsed.hash_code != SHA2_256 or len(parsed.digest) != 32 or parsed.codec not in (RAW, DAG_PB):
        raise InputError(
            f"CID {shown} is not one the registry records: it takes sha2-256 CIDs, v0 or v1 with codec raw or "
            "dag-pb (what `elements cid` and Kubo produce by default)"
        )
    return (CIDV0 if parsed.version == 0 else parsed.codec), parsed.digest


def join_cid(cid_codec: int, digest: bytes) -> str:
    """Rebuild the CID string (as Kubo prints it) from a codec byte and a sha2-256 digest."""
    digest = bytes(digest)
    if len(digest) != 32:
        raise InputError(f"a sha2-256 digest has 32 bytes, not {len(digest)}")
    if cid_codec == CIDV0:
        return str(CID.from_sha256(digest, codec=DAG_PB, version=0))
    if cid_codec in (RAW, DAG_PB):
        return str(CID.from_sha256(digest, codec=cid_codec, version=1))
    raise InputError(f"CID codec 0x{cid_codec:02x} is not one the registry records (0, 0x55 or 0x70)")
