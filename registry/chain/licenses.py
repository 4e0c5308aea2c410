"""Licence term sets and the derivative rules, mirrored off-chain.

A term set is an SPDX identifier (or ``LicenseRef-`` name) plus the flags a machine can check::

    COMMERCIAL_USE = 1   commercial use is allowed
    DERIVATIVES    = 2   derivatives are allowed
    SHARE_ALIKE    = 4   derivatives must be under the same terms
    ATTRIBUTION    = 8   attribution is required (informative: parent links are the attribution)

The registry refuses a child record whose licence breaks a parent's terms, unless both have the same
publisher (a publisher is not bound by the terms of its own records):

    parent without DERIVATIVES                     -> DerivativesNotAllowed
    parent without COMMERCIAL_USE, child with it   -> CommercialUseNotAllowed
    parent with SHARE_ALIKE, child's terms differ  -> ShareAlikeRequired

:func:`check_derivative` applies the same rules in Python so a client can refuse before sending
anything; it raises the same exceptions the chain's errors decode into.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from .errors import make_error

__all__ = [
    "COMMERCIAL_USE",
    "DERIVATIVES",
    "SHARE_ALIKE",
    "ATTRIBUTION",
    "ALL_FLAGS",
    "LicenseTerms",
    "BUILTIN_LICENSES",
    "builtin_flags_word",
    "check_derivative",
    "describe_flags",
]

COMMERCIAL_USE = 1
DERIVATIVES = 2
SHARE_ALIKE = 4
ATTRIBUTION = 8
ALL_FLAGS = COMMERCIAL_USE | DERIVATIVES | SHARE_ALIKE | ATTRIBUTION

_FLAG_NAMES = ((COMMERCIAL_USE, "commercial-use"), (DERIVATIVES, "derivatives"), (SHARE_ALIKE, "share-alike"), (ATTRIBUTION, "attribution"))


@dataclass(frozen=True)
class LicenseTerms:
    """One licence term set of the registry.

    Attributes:
        license_id: its id on the registry (1, 2, ...); 0 for terms not (yet) registered.
        spdx_id: the SPDX identifier or ``LicenseRef-`` name.
        flags: a combination of COMMERCIAL_USE, DERIVATIVES, SHARE_ALIKE, ATTRIBUTION.
    """

    license_id: int
    spdx_id: str
    flags: int

    @property
    def commercial_use(self) -> bool:
        return bool(self.flags & COMMERCIAL_USE)

    @property
    def derivatives(self) -> bool:
        return bool(self.flags & DERIVATIVES)

    @property
    def share_alike(self) -> bool:
        return bool(self.flags & SHARE_ALIKE)

    @property
    def attribution(self) -> bool:
        return bool(self.flags & ATTRIBUTION)

    def to_json(self) -> dict:
        return {
            "license_id": self.license_id,
            "spdx_id": self.spdx_id,
            "flags": self.flags,
            "commercial_use": self.commercial_use,
            "derivatives": self.derivatives,
            "share_alike": self.share_alike,
            "attribution": self.attribution,
        }


def describe_flags(flags: int) -> str:
    """``"commercial-use derivatives attribution"``-style text for flags (``"none"`` for 0)."""
    return " ".join(name for bit, name in _FLAG_NAMES if flags & bit) or "none"


_C, _D, _S, _A = COMMERCIAL_USE, DERIVATIVES, SHARE_ALIKE, ATTRIBUTION

#: The term sets every registry has from deployment, ids 1 to 14, in this order.
BUILTIN_LICENSES: tuple[LicenseTerms, ...] = tuple(
    LicenseTerms(i, spdx, flags)
    for i, (spdx, flags) in enumerate(
        [
            ("CC0-1.0", _C | _D),
            ("MIT", _C | _D | _A),
            ("Apache-2.0", _C | _D | _A),
            ("BSD-3-Clause", _C | _D | _A),
            ("CC-BY-4.0", _C | _D | _A),
            ("CC-BY-SA-4.0", _C | _D | _S | _A),
            ("CC-BY-NC-4.0", _D | _A),
            ("CC-BY-NC-SA-4.0", _D | _S | _A),
            ("CC-BY-ND-4.0", _C | _A),
            ("GPL-3.0-only", _C | _D | _S | _A),
            ("AGPL-3.0-only", _C | _D | _S | _A),
            # Use restrictions must travel with derivatives: modelled as share-alike.
            ("OpenRAIL-M", _C | _D | _S | _A),
            # A Llama-style community licence: commercial use (under its user cap), derivatives that
            # keep the licence and its acceptable-use policy, attribution ("Built with ...").
            ("LicenseRef-Llama-Community", _C | _D | _S | _A),
            # All rights reserved: nothing is granted to others.
            ("LicenseRef-Proprietary", 0),
        ],
        start=1,
    )
)


def builtin_flags_word() -> int:
    """The contract's ``_BUILTIN_FLAGS`` constant: byte ``i`` holds the flags of built-in licence ``i``."""
    word = 0
    for terms in BUILTIN_LICENSES:
        word |= terms.flags << (8 * terms.license_id)
    return word


def check_derivative(
    publisher: str,
    child_license: LicenseTerms,
    parents: Iterable[tuple[str, str, LicenseTerms]],
    license_names: Mapping[int, str] | None = None,
) -> None:
    """Raise the licence error the registry would raise for this child, or return.

    Args:
        publisher: the child's publisher (address); parents it published itself are not checked.
        child_license: the child's term set (with its registry id).
        parents: ``(parent record id as 0x hex, parent publisher, parent term set)`` for each parent,
            in the order the registry checks them (ascending id).
        license_names: optional id -> SPDX id map used in messages.

    Raises:
        DerivativesNotAllowedError, CommercialUseNotAllowedError, ShareAlikeRequiredError.
    """
    namer = (lambda i: license_names.get(i)) if license_names else None
    for parent_id, parent_publisher, parent_license in parents:
        if parent_publisher.lower() == publisher.lower():
            continue
        values = {"parentId": parent_id, "parentLicenseId": parent_license.license_id}
        if not parent_license.derivatives:
            raise make_error("DerivativesNotAllowed", values, namer)
        values["childLicenseId"] = child_license.license_id
        if not parent_license.commercial_use and child_license.commercial_use:
            raise make_error("CommercialUseNotAllowed", values, namer)
        if parent_license.share_alike and parent_license.license_id != child_license.license_id:
            raise make_error("ShareAlikeRequired", values, namer)
