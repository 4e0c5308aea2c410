"""Errors of the chain layer, and the decoding of the registry's custom errors into them.

Every class derives from a root in :mod:`registry.errors` (and so from a built-in)::

    ChainError(RuntimeError)
    ├── RegistryRevertError                    a custom error of the registry contract, decoded
    │   ├── InvalidRecordError            ZeroContentId, ZeroCidDigest, UnsupportedCidCodec,
    │   │                                 TooManyParents, ParentsNotAscending
    │   ├── UnknownParentError            UnknownParent
    │   ├── UnknownLicenseError           UnknownLicense
    │   ├── LicenseViolationError              a licence rule (also raised by the off-chain check)
    │   │   ├── DerivativesNotAllowedError
    │   │   ├── CommercialUseNotAllowedError   CommercialUseNotAllowed, InheritedCommercialUseNotAllowed
    │   │   └── ShareAlikeRequiredError        ShareAlikeRequired, InheritedShareAlikeRequired
    │   ├── UnknownRecordError            UnknownRecord
    │   ├── NotPublisherError             NotPublisher
    │   ├── SignatureError                ExpiredSignature, InvalidAccountNonce, InvalidSignature,
    │   │                                 InvalidSigner
    │   ├── CommitmentError               UnknownCommitment, CommitmentNotRelayable,
    │   │                                 CommitmentTooRecent, CommitmentExpired, RecordExists
    │   └── InvalidLicenseError           InvalidLicenseIdentifier, InvalidLicenseFlags
    ├── TransactionFailedError                 reverted or ran out of gas without a known reason
    │   └── InsufficientFundsError        the sender cannot pay for gas
    ├── LogQueryRefusedError                   a node refused a log query (capped range): split it and ask again
    ├── WrongChainError                   the RPC serves another chain than expected
    └── NoRegistryError                   no (or another) contract at the registry address
    ServiceError(ConnectionError)
    ├── RpcUnavailableError               the JSON-RPC endpoint cannot be reached (or missed its deadline)
    │   └── RpcResponseError              an answer broke a limit (size, nesting) or is not JSON-RPC
    └── RpcMismatchError                  cross-checked endpoints answered a read differently
    ConfigError(ValueError)
    ├── UnknownNetworkError               not 'memory', not a URL, not a configured network
    └── AccountError                      a malformed key, an unreadable keystore, no key at all
    NotFoundError(LookupError)
    └── RecordNotFoundError               a record or licence the caller asked for does not exist

:func:`decode_revert` turns revert data (selector + ABI-encoded values) into the matching
exception; its message names the problem and what to do.
"""

from __future__ import annotations

from typing import Any, Callable

from ..digest import to_hex
from ..errors import ChainError, ConfigError, NotFoundError, ServiceError
from .abi import checksum_address as to_checksum_address
from .abi import decode as abi_decode
from .abi import keccak

__all__ = [
    "RegistryRevertError",
    "InvalidRecordError",
    "UnknownParentError",
    "UnknownLicenseError",
    "LicenseViolationError",
    "DerivativesNotAllowedError",
    "CommercialUseNotAllowedError",
    "ShareAlikeRequiredError",
    "UnknownRecordError",
    "NotPublisherError",
    "SignatureError",
    "CommitmentError",
    "InvalidLicenseError",
    "TransactionFailedError",
    "InsufficientFundsError",
    "WrongChainError",
    "NoRegistryError",
    "RpcUnavailableError",
    "RpcResponseError",
    "RpcMismatchError",
    "LogQueryRefusedError",
    "UnknownNetworkError",
    "AccountError",
    "RecordNotFoundError",
    "ERRORS",
    "decode_revert",
]


class RegistryRevertError(ChainError):
    """The registry contract refused a call with one of its custom errors.

    Attributes:
        error: the Solidity error name, e.g. ``"UnknownParent"``.
        values: the error's arguments by name (ids as ``0x`` hex strings, addresses checksummed).
    """

    def __init__(self, message: str, error: str = "", values: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.values = dict(values or {})


class InvalidRecordError(RegistryRevertError):
    """The record input is malformed (zero ids, codec, too many or unordered parents)."""


class UnknownParentError(RegistryRevertError):
    """A parent record does not exist on this chain."""


class UnknownLicenseError(RegistryRevertError):
    """No licence term set has the given id."""


class LicenseViolationError(RegistryRevertError):
    """Publishing would break a parent's licence terms.

    Attributes:
        parent_id: the parent record whose terms are broken (``0x`` hex).
        rule: ``"derivatives"``, ``"non-commercial"`` or ``"share-alike"``.
    """

    rule = ""

    @property
    def parent_id(self) -> str:
        return str(self.values.get("parentId", ""))


class DerivativesNotAllowedError(LicenseViolationError):
    """The parent's licence does not allow derivatives."""

    rule = "derivatives"


class CommercialUseNotAllowedError(LicenseViolationError):
    """The parent is non-commercial (or, for a parent of the same publisher, inherited a non-commercial
    restriction from another publisher) and the child's licence allows commercial use."""

    rule = "non-commercial"


class ShareAlikeRequiredError(LicenseViolationError):
    """The parent is share-alike (or, for a parent of the same publisher, inherited a share-alike
    restriction from another publisher) and the child is not under the same terms."""

    rule = "share-alike"


class UnknownRecordError(RegistryRevertError):
    """The record does not exist."""


class NotPublisherError(RegistryRevertError):
    """Only the record's publisher may do this."""


class SignatureError(RegistryRevertError):
    """A signed publish was refused (expired, replayed, malformed or signed by someone else)."""


class CommitmentError(RegistryRevertError):
    """A reveal was refused: no matching commitment, too early, too late, not the publisher's to
    reveal, or a record it names exists already."""


class InvalidLicenseError(RegistryRevertError):
    """A licence term set is malformed."""


class TransactionFailedError(ChainError):
    """A transaction reverted or ran out of gas without a reason this client knows."""


class InsufficientFundsError(TransactionFailedError):
    """The sending account cannot pay for the transaction's gas."""


class WrongChainError(ChainError):
    """The RPC endpoint serves another chain than the one expected."""


class NoRegistryError(ChainError):
    """There is no Elements registry (of this version) at the address."""


class RpcUnavailableError(ServiceError):
    """The JSON-RPC endpoint cannot be reached or does not answer JSON-RPC."""


class RpcResponseError(RpcUnavailableError):
    """A JSON-RPC answer broke a limit (bytes, nesting, batch shape) or is not JSON-RPC at all."""


class RpcMismatchError(ServiceError):
    """Several endpoints of one chain answered the same read differently (one of them is wrong)."""


class LogQueryRefusedError(ChainError):
    """A node refused an ``eth_getLogs`` query (a capped block range or result count): ask for less."""


class UnknownNetworkError(ConfigError):
    """The network is neither 'memory', an http(s) URL, nor a configured network name."""


class AccountError(ConfigError):
    """No usable key: malformed, unreadable keystore, wrong password, or none configured."""


class RecordNotFoundError(NotFoundError):
    """A record or licence term set asked for by id does not exist."""


# ---------------------------------------------------------------------------------------------
# decoding

#: ``licence id -> SPDX id``, ``None`` when the licence is unknown (the message then shows the id alone).
LicenseNamer = Callable[[int], str | None]
#: The one-line message of a decoded error, from its values (and a licence namer).
MessageBuilder = Callable[[dict[str, Any], LicenseNamer | None], str]


def _lic(namer: LicenseNamer | None, license_id: int) -> str:
    name = None
    if namer is not None:
        try:
            name = namer(license_id)
        except Exception:  # naming is a courtesy; never let it hide the real error
            name = None
    return f"{name} (licence {license_id})" if name else f"licence {license_id}"


def _msg_zero_content(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return "the content id is zero; compute it with `elements id PATH`"


def _msg_zero_cid(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return "the CID digest is zero; pass the CID the content was stored under"


def _msg_codec(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return (f"CID codec 0x{v['cidCodec']:02x} is not supported; use a sha2-256 CIDv0, or a CIDv1 "
            "with codec raw (0x55) or dag-pb (0x70)")


def _msg_unknown_license(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return (f"no licence term set has id {v['licenseId']}; list them with `elements licenses` or add "
            "one with Registry.add_license")


def _msg_too_many(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return (f"a record may have at most {v['max']} parents, this one has {v['count']}; publish an "
            "intermediate composition that groups some of them")


def _msg_not_ascending(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return (f"parent {v['index']} ({v['parentId']}) is out of order or repeated; parents must be "
            "sorted ascending without duplicates (RecordInput sorts them for you)")


def _msg_unknown_parent(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return (f"parent record {v['parentId']} does not exist on this chain; publish the parent first "
            "(or in the same batch, before the child)")


def _msg_nd(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return (f"parent record {v['parentId']} is under {_lic(n, v['parentLicenseId'])}, which does not "
            "allow derivatives; drop that parent, or publish from the parent's publisher account")


def _msg_nc(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return (f"parent record {v['parentId']} is under non-commercial {_lic(n, v['parentLicenseId'])} "
            f"and the child's {_lic(n, v['childLicenseId'])} allows commercial use; choose a "
            "non-commercial licence for the child")


def _msg_sa(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return (f"parent record {v['parentId']} is under share-alike {_lic(n, v['parentLicenseId'])}; "
            f"publish the child under the same licence, not {_lic(n, v['childLicenseId'])}")


def _msg_inherited_nc(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return (f"parent record {v['parentId']}, by the same publisher, inherits a non-commercial restriction from "
            f"another publisher's record in its ancestry, and the child's {_lic(n, v['childLicenseId'])} allows "
            "commercial use; a publisher is exempt only from its own terms: choose a non-commercial licence for the child")


def _msg_inherited_sa(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return (f"parent record {v['parentId']}, by the same publisher, inherits a share-alike restriction from another "
            f"publisher's record in its ancestry; a publisher is exempt only from its own terms: publish the child "
            f"under {_lic(n, v['parentLicenseId'])}, not {_lic(n, v['childLicenseId'])}")


def _msg_unknown_record(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return f"record {v['recordId']} does not exist on this chain; check the id and the network"


def _msg_not_publisher(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return (f"record {v['recordId']} was published by {v['publisher']}, not by {v['caller']}; only "
            "its publisher can yank it (use that account's key)")


def _msg_expired(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return f"the signature expired at timestamp {v['deadline']}; ask the publisher to sign again"


def _msg_nonce(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return (f"the signed nonce is not the next nonce of {v['publisher']} (now {v['currentNonce']}): "
            "the signature was already used or is out of order; sign again with the current nonce")


def _msg_bad_sig(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return "the signature is malformed (need 65 bytes r, s, v with low s and v 27/28); sign again"


def _msg_signer(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return (f"the signature was made by {v['signer']}, not by the publisher {v['publisher']}; sign "
            "with the publisher's key")


def _msg_unknown_commitment(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return (f"no commitment of {v['publisher']} matches these records and salt (none was made, a newer one "
            "replaced it, or the records differ from what was committed); publish again to commit anew")


def _msg_not_relayable(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return (f"the commitment of {v['publisher']} was made by the publisher itself, so only the publisher can "
            "reveal it; reveal from that account")


def _msg_too_recent(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return (f"the commitment was made in block {v['commitBlock']}, the block of this reveal; wait for a later block "
            "and run the same command again")


def _msg_expired_commitment(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return (f"the commitment made in block {v['commitBlock']} expired after block {v['lastBlock']}; publish again "
            "to commit anew")


def _msg_record_exists(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return (f"record {v['recordId']} exists already, and a commitment publishes only new records; publish again "
            "(only what is missing is committed)")


def _msg_license_id(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return (f"licence identifier {v['spdxId']!r} is invalid; use an SPDX id or a LicenseRef-name of "
            "1 to 128 printable ASCII characters")


def _msg_license_flags(v: dict[str, Any], n: LicenseNamer | None) -> str:
    return f"licence flags 0x{v['flags']:02x} use undefined bits; combine only 1, 2, 4 and 8"


# name -> (types, argument names, exception class, message builder)
ERRORS: dict[str, tuple[tuple[str, ...], tuple[str, ...], type[RegistryRevertError], MessageBuilder]] = {
    "ZeroContentId": ((), (), InvalidRecordError, _msg_zero_content),
    "ZeroCidDigest": ((), (), InvalidRecordError, _msg_zero_cid),
    "UnsupportedCidCodec": (("uint8",), ("cidCodec",), InvalidRecordError, _msg_codec),
    "UnknownLicense": (("uint32",), ("licenseId",), UnknownLicenseError, _msg_unknown_license),
    "TooManyParents": (("uint256", "uint256"), ("count", "max"), InvalidRecordError, _msg_too_many),
    "ParentsNotAscending": (("uint256", "bytes32"), ("index", "parentId"), InvalidRecordError, _msg_not_ascending),
    "UnknownParent": (("bytes32",), ("parentId",), UnknownParentError, _msg_unknown_parent),
    "DerivativesNotAllowed": (("bytes32", "uint32"), ("parentId", "parentLicenseId"), DerivativesNotAllowedError, _msg_nd),
    "CommercialUseNotAllowed": (
        ("bytes32", "uint32", "uint32"),
        ("parentId", "parentLicenseId", "childLicenseId"),
        CommercialUseNotAllowedError,
        _msg_nc,
    ),
    "ShareAlikeRequired": (
        ("bytes32", "uint32", "uint32"),
        ("parentId", "parentLicenseId", "childLicenseId"),
        ShareAlikeRequiredError,
        _msg_sa,
    ),
    "InheritedCommercialUseNotAllowed": (
        ("bytes32", "uint32", "uint32"),
        ("parentId", "parentLicenseId", "childLicenseId"),
        CommercialUseNotAllowedError,
        _msg_inherited_nc,
    ),
    "InheritedShareAlikeRequired": (
        ("bytes32", "uint32", "uint32"),
        ("parentId", "parentLicenseId", "childLicenseId"),
        ShareAlikeRequiredError,
        _msg_inherited_sa,
    ),
    "UnknownRecord": (("bytes32",), ("recordId",), UnknownRecordError, _msg_unknown_record),
    "NotPublisher": (("bytes32", "address", "address"), ("recordId", "publisher", "caller"), NotPublisherError, _msg_not_publisher),
    "ExpiredSignature": (("uint256",), ("deadline",), SignatureError, _msg_expired),
    "InvalidAccountNonce": (("address", "uint256"), ("publisher", "currentNonce"), SignatureError, _msg_nonce),
    "InvalidSignature": ((), (), SignatureError, _msg_bad_sig),
    "InvalidSigner": (("address", "address"), ("signer", "publisher"), SignatureError, _msg_signer),
    "UnknownCommitment": (("address", "bytes32"), ("publisher", "commitment"), CommitmentError, _msg_unknown_commitment),
    "CommitmentNotRelayable": (("address",), ("publisher",), CommitmentError, _msg_not_relayable),
    "CommitmentTooRecent": (("uint256",), ("commitBlock",), CommitmentError, _msg_too_recent),
    "CommitmentExpired": (("uint256", "uint256"), ("commitBlock", "lastBlock"), CommitmentError, _msg_expired_commitment),
    "RecordExists": (("bytes32",), ("recordId",), CommitmentError, _msg_record_exists),
    "InvalidLicenseIdentifier": (("string",), ("spdxId",), InvalidLicenseError, _msg_license_id),
    "InvalidLicenseFlags": (("uint8",), ("flags",), InvalidLicenseError, _msg_license_flags),
}


def selector(name: str) -> bytes:
    """The 4-byte selector of a registry error by name."""
    types, _, _, _ = ERRORS[name]
    return keccak(f"{name}({','.join(types)})".encode())[:4]


_BY_SELECTOR = {selector(name): name for name in ERRORS}

# Solidity's built-in Error(string) and Panic(uint256).
_ERROR_STRING = keccak(b"Error(string)")[:4]
_PANIC = keccak(b"Panic(uint256)")[:4]


def _normalise(kind: str, value: Any) -> Any:
    if kind == "bytes32":
        return to_hex(value)
    if kind == "address":
        return to_checksum_address(value)
    return value


def make_error(name: str, values: dict[str, Any], namer: LicenseNamer | None = None) -> RegistryRevertError:
    """Build the exception for a registry error from its argument values (also used off-chain)."""
    _, _, cls, message = ERRORS[name]
    return cls(message(values, namer), error=name, values=values)


def decode_revert(data: bytes | str | None, namer: LicenseNamer | None = None) -> ChainError:
    """Decode revert data into an exception (a :class:`RegistryRevertError` for the registry's errors).

    Args:
        data: the revert data (``0x`` hex or bytes): a 4-byte selector then ABI-encoded values.
        namer: optional ``licence id -> SPDX id`` lookup used to name licences in messages.
    """
    if isinstance(data, str):  # from a node's error object: anything
        try:
            data = bytes.fromhex(data.removeprefix("0x"))
        except ValueError:
            return TransactionFailedError(f"the transaction reverted, with revert data that is not hex ({data[:80]!r}); check the node")
    data = bytes(data or b"")
    head, body = data[:4], data[4:]
    name = _BY_SELECTOR.get(head)
    if name is not None:
        types, names, _, _ = ERRORS[name]
        try:
            decoded = abi_decode(list(types), body) if types else ()
        except Exception:
            return TransactionFailedError(f"the registry reverted with a malformed {name} error ({data.hex()})")
        values = {n: _normalise(t, v) for n, t, v in zip(names, types, decoded)}
        return make_error(name, values, namer)
    if head == _ERROR_STRING:
        try:
            (reason,) = abi_decode(["string"], body)
        except Exception:
            reason = body.hex()
        return TransactionFailedError(f"the transaction reverted: {reason}")
    if head == _PANIC:
        try:
            (code,) = abi_decode(["uint256"], body)
        except Exception:
            code = -1
        return TransactionFailedError(f"the transaction hit a Solidity panic (code 0x{code:02x}); this is a bug, report it")
    if not data:
        return TransactionFailedError("the transaction reverted without a reason (out of gas, or not the registry?)")
    return TransactionFailedError(f"the transaction reverted with unknown error data 0x{data.hex()}")
