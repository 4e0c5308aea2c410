"""Licence term sets and the derivative rules, mirrored off-chain.

A term set is an SPDX identifier (or ``LicenseRef-`` name) plus the flags a machine can check::

    COMMERCIAL_USE = 1   commercial use is allowed
    DERIVATIVES    = 2   derivatives are allowed
    SHARE_ALIKE    = 4   derivatives must be under the same terms
    ATTRIBUTION    = 8   attribution is required (informative: parent links are the attribution)

The rule: a record respects every restriction of a record of *another* publisher anywhere in its
ancestry, unless that publisher re-licensed the work in a record of their own on the way (an
ancestor binds a record when some path of parent links from the record to it passes through no
other record of the ancestor's publisher). The registry computes it from the parents alone, as
:func:`check_derivative` does here: every record carries the restrictions it **inherits** from other
publishers (:data:`INHERITS_NON_COMMERCIAL`, :data:`INHERITS_SHARE_ALIKE`, stored on chain), and
for each parent, in ascending id order::

    parent of another publisher:
      without DERIVATIVES                         -> DerivativesNotAllowed
      without COMMERCIAL_USE, child with it       -> CommercialUseNotAllowed
      with SHARE_ALIKE, child's terms differ      -> ShareAlikeRequired
      the child inherits non-commercial / share-alike from the parent's own terms
    parent of the child's own publisher:
      inherits non-commercial, child commercial   -> InheritedCommercialUseNotAllowed
      inherits share-alike, child's terms differ  -> InheritedShareAlikeRequired
      the child inherits what the parent inherited

A record that inherits non-commercial is itself non-commercial, and one that inherits share-alike
is under exactly the term set that restriction requires, so the parent's own licence names what an
inherited restriction requires. The same function decides for the client's checks before sending
(:meth:`registry.chain.Registry.check_publish`, ``registry.records.resolve``) and for ``verify``
over a whole ancestry (:func:`inherited_restrictions`); it raises the exceptions the chain's errors
decode into.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable, Iterable, Mapping, Sequence, TypeVar

from ..digest import RecordId
from .errors import make_error

__all__ = [
    "COMMERCIAL_USE",
    "DERIVATIVES",
    "SHARE_ALIKE",
    "ATTRIBUTION",
    "ALL_FLAGS",
    "INHERITS_NON_COMMERCIAL",
    "INHERITS_SHARE_ALIKE",
    "LicenseTerms",
    "ParentTerms",
    "BUILTIN_LICENSES",
    "builtin_flags_word",
    "check_derivative",
    "derived_restrictions",
    "inherited_restrictions",
    "describe_flags",
    "describe_inherited",
]

COMMERCIAL_USE = 1
DERIVATIVES = 2
SHARE_ALIKE = 4
ATTRIBUTION = 8
ALL_FLAGS = COMMERCIAL_USE | DERIVATIVES | SHARE_ALIKE | ATTRIBUTION

#: Inherited restriction: the record (and so every derivative of it) may not allow commercial use.
INHERITS_NON_COMMERCIAL = 1
#: Inherited restriction: every derivative of the record must keep the record's term set.
INHERITS_SHARE_ALIKE = 2

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

    def to_json(self) -> dict[str, Any]:
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


def describe_inherited(inherited: int) -> list[str]:
    """The names of inherited restrictions: ``["non-commercial", "share-alike"]`` or a part of it."""
    return [name for bit, name in ((INHERITS_NON_COMMERCIAL, "non-commercial"), (INHERITS_SHARE_ALIKE, "share-alike")) if inherited & bit]


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


#: (parent record id (or the text an error shows for it), parent publisher, parent term set[, what
#: the parent inherited])
ParentTerms = tuple[RecordId | str, str, LicenseTerms] | tuple[RecordId | str, str, LicenseTerms, int]


def _parent(entry: ParentTerms) -> tuple[RecordId | str, str, LicenseTerms, int]:
    parent_id, parent_publisher, parent_license = entry[0], entry[1], entry[2]
    return parent_id, parent_publisher, parent_license, int(entry[3]) if len(entry) > 3 else 0


def _through(publisher: str, parent_publisher: str, parent_license: LicenseTerms, parent_inherited: int) -> int:
    """What a child of ``publisher`` inherits through one parent (no check)."""
    if parent_publisher.lower() == publisher.lower():
        return parent_inherited
    restrictions = 0 if parent_license.commercial_use else INHERITS_NON_COMMERCIAL
    return restrictions | (INHERITS_SHARE_ALIKE if parent_license.share_alike else 0)


def derived_restrictions(publisher: str, parents: Iterable[ParentTerms]) -> int:
    """The restrictions a child of ``publisher`` inherits from ``parents`` (see :func:`check_derivative`),
    without checking the child against them."""
    inherited = 0
    for entry in parents:
        _, parent_publisher, parent_license, parent_inherited = _parent(entry)
        inherited |= _through(publisher, parent_publisher, parent_license, parent_inherited)
    return inherited


def check_derivative(
    publisher: str,
    child_license: LicenseTerms,
    parents: Iterable[ParentTerms],
    license_names: Mapping[int, str] | None = None,
) -> int:
    """Raise the licence error the registry would raise for this child; else return what it inherits.

    Args:
        publisher: the child's publisher (address).
        child_license: the child's term set (with its registry id).
        parents: ``(parent record id, parent publisher, parent term set, what the parent
            inherited)`` for each parent, in the order the registry checks them (ascending id); the
            last item may be left out for a parent that inherits nothing.
        license_names: optional id -> SPDX id map used in messages.

    Returns:
        the restrictions the child inherits (:data:`INHERITS_NON_COMMERCIAL` | :data:`INHERITS_SHARE_ALIKE`).

    Raises:
        DerivativesNotAllowedError, CommercialUseNotAllowedError, ShareAlikeRequiredError (the
        ``Inherited...`` errors are of the last two classes).
    """
    namer = (lambda i: license_names.get(i)) if license_names else None
    inherited = 0
    for entry in parents:
        parent_id, parent_publisher, parent_license, parent_inherited = _parent(entry)
        values = {"parentId": str(parent_id), "parentLicenseId": parent_license.license_id}
        own = parent_publisher.lower() == publisher.lower()
        if not own and not parent_license.derivatives:
            raise make_error("DerivativesNotAllowed", values, namer)
        values["childLicenseId"] = child_license.license_id
        carried = _through(publisher, parent_publisher, parent_license, parent_inherited)
        prefix = "Inherited" if own else ""
        if carried & INHERITS_NON_COMMERCIAL and child_license.commercial_use:
            raise make_error(prefix + "CommercialUseNotAllowed", values, namer)
        if carried & INHERITS_SHARE_ALIKE and parent_license.license_id != child_license.license_id:
            raise make_error(prefix + "ShareAlikeRequired", values, namer)
        inherited |= carried
    return inherited


Key = TypeVar("Key", bound=Hashable)


def inherited_restrictions(graph: Mapping[Key, tuple[str, LicenseTerms | None, Sequence[Key]]]) -> dict[Key, int]:
    """What every record of an ancestry inherits, computed bottom-up with the registry's rule.

    Args:
        graph: ``record -> (publisher, term set or None, parent records)``. Parents outside the
            graph (missing, not loaded) and parents with an unknown term set contribute nothing
            (the caller reports them); a cycle (possible only through documents, never on chain)
            is cut where it closes.

    Returns:
        ``record -> inherited restrictions`` for every record of ``graph``, as the chain would
        store them (records that break a rule get what they would carry if accepted).
    """
    done: dict[Key, int] = {}
    on_path: set[Key] = set()
    for start in graph:
        if start in done:
            continue
        stack: list[tuple[Key, int]] = [(start, 0)]
        on_path.add(start)
        while stack:  # iterative depth-first: an ancestry may be deeper than Python's recursion
            key, index = stack[-1]
            parents = graph[key][2]
            if index < len(parents):
                stack[-1] = (key, index + 1)
                parent = parents[index]
                if parent in graph and parent not in done and parent not in on_path:
                    on_path.add(parent)
                    stack.append((parent, 0))
                continue
            stack.pop()
            on_path.discard(key)
            publisher = graph[key][0]
            done[key] = derived_restrictions(
                publisher,
                [("", graph[p][0], terms, done[p]) for p in parents if p in done and (terms := graph[p][1]) is not None],
            )
    return done
