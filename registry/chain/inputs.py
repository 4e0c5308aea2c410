"""What a publisher sends to the registry, as values: a claim to publish (:class:`RecordInput`, checked
as the contract will check it), commit-reveal commitments (:func:`commitment_of`, :class:`Commitment`),
publishes and commitments signed for a relayer (:class:`SignedPublish`, :class:`SignedCommit`) and
the EIP-712 typed data they are signed over. Pure: nothing here talks to a chain; the
:class:`~registry.chain.registry.Registry` sends them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ..digest import ContentId, RecordId, parse_bytes32, parse_content_id, parse_record_id
from ..errors import InputError
from .abi import checksum_address as to_checksum_address
from .abi import encode as abi_encode
from .abi import keccak
from .cids import join_cid, split_cid
from .reader import COMMITMENT_EXPIRY, RECORD_TYPE, Kind, record_id_of

__all__ = [
    "MAX_PARENTS",
    "PUBLISH_TYPE",
    "PUBLISH_TYPEHASH",
    "COMMIT_TYPE",
    "COMMIT_TYPEHASH",
    "COMMITMENT_KEPT",
    "EIP712_NAME",
    "EIP712_VERSION",
    "EIP712_DOMAIN_FIELDS",
    "RecordInput",
    "commitment_of",
    "kept_commitment",
    "Commitment",
    "SignedCommit",
    "SignedPublish",
    "publish_typed_data",
    "commit_typed_data",
]

MAX_PARENTS = 127
PUBLISH_TYPE = "Publish(Record record,uint256 nonce,uint256 deadline)" + RECORD_TYPE
PUBLISH_TYPEHASH = keccak(PUBLISH_TYPE.encode())
COMMIT_TYPE = "Commit(bytes32 commitment,uint256 nonce,uint256 deadline)"
COMMIT_TYPEHASH = keccak(COMMIT_TYPE.encode())
#: The bits of a commitment the contract keeps: the first 160 (the rest of its word holds its block).
COMMITMENT_KEPT = ((1 << 160) - 1) << 96
EIP712_NAME = "ElementRegistry"
EIP712_VERSION = "1"
EIP712_DOMAIN_FIELDS = (
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
)


@dataclass(frozen=True)
class RecordInput:
    """A claim to publish.

    Args:
        content_id: the content id (32 bytes or ``0x`` hex).
        cid: where the bytes (or the recipe) live: a CID string, its binary form or a ``CID``.
        license_id: the licence term set's id (see :meth:`Registry.license_by_spdx`).
        kind: a :class:`Kind` (or another small integer).
        parents: parent record ids; sorted ascending here, as the contract requires.

    Raises:
        InputError: malformed ids or CID, duplicate parents, more than MAX_PARENTS (127) parents, bad kind.
    """

    content_id: ContentId
    cid: str
    license_id: int
    kind: int = Kind.ELEMENT
    parents: tuple[RecordId, ...] = ()
    cid_codec: int = field(init=False)
    cid_digest: bytes = field(init=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "content_id", parse_content_id(self.content_id))
        codec, digest = split_cid(self.cid)
        set_(self, "cid_codec", codec)
        set_(self, "cid_digest", digest)
        set_(self, "cid", join_cid(codec, digest))
        if not isinstance(self.license_id, int) or not 0 <= self.license_id < 2**32:
            raise InputError(f"licence id {self.license_id!r} is not a uint32; look it up with Registry.license_by_spdx")
        if not isinstance(self.kind, int) or not 0 <= self.kind < 256:
            raise InputError(f"kind {self.kind!r} is not in 0..255 (see registry.chain.Kind)")
        set_(self, "kind", Kind.of(self.kind))
        parents = sorted(parse_record_id(p, "parent record id") for p in self.parents)
        for a, b in zip(parents, parents[1:]):
            if a == b:
                raise InputError(f"parent {a} is listed twice; list each parent once")
        if len(parents) > MAX_PARENTS:
            raise InputError(
                f"a record may have at most {MAX_PARENTS} parents, this one has {len(parents)}; publish an "
                "intermediate composition that groups some of them"
            )
        set_(self, "parents", tuple(parents))

    def as_abi(self) -> tuple[bytes, int, bytes, int, int, list[bytes]]:
        """The ``RecordInput`` tuple in the contract's field order."""
        return (self.content_id, self.cid_codec, self.cid_digest, self.license_id, int(self.kind), list(self.parents))

    def record_id(self, publisher: str) -> RecordId:
        """The id this claim gets when ``publisher`` publishes it."""
        return record_id_of(publisher, self)


def commitment_of(publisher: str, salt: bytes, record_ids: Sequence[bytes]) -> bytes:
    """The commitment to records (the contract's ``commitmentOf``): keccak256 of
    ``abi.encode(publisher, salt, keccak256(ids packed))``, the ids in the order they are revealed."""
    ids_hash = keccak(b"".join(parse_record_id(r) for r in record_ids))
    return keccak(abi_encode(["address", "bytes32", "bytes32"], [to_checksum_address(publisher), parse_bytes32(salt, "salt"), ids_hash]))


def kept_commitment(commitment: bytes) -> bytes:
    """A commitment as sent: the bits the contract keeps, the last 12 bytes zero (cheaper calldata)."""
    return (int.from_bytes(parse_bytes32(commitment, "commitment"), "big") & COMMITMENT_KEPT).to_bytes(32, "big")


@dataclass(frozen=True)
class Commitment:
    """A publisher's current commitment on chain.

    Attributes:
        commitment: its first 160 bits, as the contract keeps them (the last 12 bytes are zero).
        block_number: the block it was made in: the priority block of the records revealed from it.
        relayable: signed by the publisher and sent by someone else, so anyone may reveal it.
    """

    commitment: bytes
    block_number: int
    relayable: bool

    def holds(self, commitment: bytes) -> bool:
        """Whether this is ``commitment`` (compared on the bits the contract keeps)."""
        return int.from_bytes(commitment, "big") & COMMITMENT_KEPT == int.from_bytes(self.commitment, "big")

    def expired(self, latest_block: int) -> bool:
        """Whether a reveal mined in the block after ``latest_block`` would come too late."""
        return latest_block + 1 - self.block_number > COMMITMENT_EXPIRY


@dataclass(frozen=True)
class SignedCommit:
    """A commitment signed by its publisher (EIP-712), ready for any account to send."""

    commitment: bytes
    publisher: str
    nonce: int
    deadline: int
    signature: bytes


@dataclass(frozen=True)
class SignedPublish:
    """A publish signed by its publisher (EIP-712), ready for any account to send."""

    input: RecordInput
    publisher: str
    nonce: int
    deadline: int
    signature: bytes
    record_id: RecordId


def publish_typed_data(record: RecordInput, publisher: str, nonce: int, deadline: int, chain_id: int,
                       registry_address: str) -> dict[str, Any]:
    """The EIP-712 message of a signed publish (what a wallet shows and signs) for the registry at
    ``registry_address`` on chain ``chain_id``."""
    return {
        "types": {
            "EIP712Domain": list(EIP712_DOMAIN_FIELDS),
            "Publish": [
                {"name": "record", "type": "Record"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
            "Record": [
                {"name": "publisher", "type": "address"},
                {"name": "contentId", "type": "bytes32"},
                {"name": "cidCodec", "type": "uint8"},
                {"name": "cidDigest", "type": "bytes32"},
                {"name": "licenseId", "type": "uint32"},
                {"name": "kind", "type": "uint8"},
                {"name": "parents", "type": "bytes32[]"},
            ],
        },
        "primaryType": "Publish",
        "domain": {
            "name": EIP712_NAME,
            "version": EIP712_VERSION,
            "chainId": chain_id,
            "verifyingContract": registry_address,
        },
        "message": {
            "record": {
                "publisher": to_checksum_address(publisher),
                "contentId": record.content_id,
                "cidCodec": record.cid_codec,
                "cidDigest": record.cid_digest,
                "licenseId": record.license_id,
                "kind": int(record.kind),
                "parents": list(record.parents),
            },
            "nonce": nonce,
            "deadline": deadline,
        },
    }


def commit_typed_data(commitment: bytes, nonce: int, deadline: int, chain_id: int, registry_address: str) -> dict[str, Any]:
    """The EIP-712 message of a signed commitment for the registry at ``registry_address`` on chain ``chain_id``."""
    return {
        "types": {
            "EIP712Domain": list(EIP712_DOMAIN_FIELDS),
            "Commit": [
                {"name": "commitment", "type": "bytes32"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Commit",
        "domain": {"name": EIP712_NAME, "version": EIP712_VERSION, "chainId": chain_id, "verifyingContract": registry_address},
        "message": {"commitment": parse_bytes32(commitment, "commitment"), "nonce": nonce, "deadline": deadline},
    }
