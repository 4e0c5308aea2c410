"""Errors of the storage layer, each under a root from :mod:`registry.errors`::

    InputError(ValueError)
    ├── CIDError                 a CID string or bytes that cannot be parsed
    ├── DAGError                 a block that is not the dag-pb / UnixFS node it must be
    └── CARError                 a CAR stream that is malformed or truncated
    NotFoundError(LookupError)
    ├── BlockNotFoundError            a block absent from the store or source asked (``.cid``)
    └── IncompleteDAGError            a DAG with blocks missing (``.root``, ``.missing``)
    IntegrityError(ValueError)
    └── BlockIntegrityError      bytes that do not hash to their CID (``.cid``)
    ServiceError(ConnectionError)
    ├── KuboError                a Kubo RPC API that is down, refuses or answers garbage
    ├── GatewayError             a trustless gateway that is down, refuses or answers garbage
    ├── PinServiceError          a pinning service that is down, refuses or answers garbage
    │   ├── PinServiceAuthError  ... that refuses the access token (HTTP 401 / 403)
    │   └── PinFailedError            ... that reports a pin failed, or left it queued too long
    └── FetchLimitError          a source that stalls, trickles, overstays its deadline or sends
        │                        more than the content asked for can need
        ├── KuboLimitError       ... when the source is Kubo (also a KuboError)
        └── GatewayLimitError    ... when the source is a gateway (also a GatewayError)

Every message is one line naming the problem and the fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from ..errors import InputError, IntegrityError, NotFoundError, ServiceError

if TYPE_CHECKING:  # pragma: no cover
    from .cid import CID

__all__ = [
    "CIDError",
    "DAGError",
    "CARError",
    "BlockNotFoundError",
    "IncompleteDAGError",
    "BlockIntegrityError",
    "KuboError",
    "GatewayError",
    "PinServiceError",
    "PinServiceAuthError",
    "PinFailedError",
    "FetchLimitError",
    "KuboLimitError",
    "GatewayLimitError",
]


class CIDError(InputError):
    """A CID that cannot be parsed or is not supported."""


class DAGError(InputError):
    """A block that does not decode as the dag-pb / UnixFS node its position requires."""


class CARError(InputError):
    """A CAR stream that is malformed, truncated or holds the wrong blocks."""


class BlockNotFoundError(NotFoundError):
    """A block is absent where it was looked for."""

    def __init__(self, cid: "CID", where: str = "the local block store", hint: str = "") -> None:
        self.cid = cid
        self.where = where
        hint = hint or "fetch it with --ipfs-api or --gateway, or import a CAR that holds it"
        super().__init__(f"block {cid} is not in {where}; {hint}")


class IncompleteDAGError(NotFoundError):
    """A DAG whose blocks are not all present."""

    def __init__(self, root: "CID", missing: Sequence["CID"], where: str = "the local block store") -> None:
        self.root = root
        self.missing = list(missing)
        shown = ", ".join(str(c) for c in self.missing[:3])
        more = f" and {len(self.missing) - 3} more" if len(self.missing) > 3 else ""
        super().__init__(
            f"DAG {root} is incomplete in {where}: {len(self.missing)} block(s) missing ({shown}{more}); "
            "fetch it with --ipfs-api or --gateway, or import a CAR that holds it"
        )


class BlockIntegrityError(IntegrityError):
    """Bytes that do not hash to the CID they were addressed by."""

    def __init__(self, cid: "CID", where: str, detail: str = "") -> None:
        self.cid = cid
        self.where = where
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"block {cid} from {where} does not match its CID{extra}; the source is corrupt or lying, "
            "fetch it again from another source"
        )


class KuboError(ServiceError):
    """A Kubo node that is unreachable, refuses a call or answers something that is not Kubo's API."""


class GatewayError(ServiceError):
    """A trustless gateway that is unreachable, refuses a request or answers garbage."""


class PinServiceError(ServiceError):
    """A pinning service (IPFS Pinning Service API) that is unreachable, refuses or answers garbage."""


class PinServiceAuthError(PinServiceError):
    """A pinning service that refuses the access token."""


class PinFailedError(PinServiceError):
    """A pin the service reports ``failed``, or keeps ``queued`` / ``pinning`` past the wait allowed."""


class FetchLimitError(ServiceError):
    """A source abandoned for what it costs: too slow, too long, or more bytes than the content can need."""


class KuboLimitError(FetchLimitError, KuboError):
    """A Kubo node abandoned for what it costs."""


class GatewayLimitError(FetchLimitError, GatewayError):
    """A gateway abandoned for what it costs."""
