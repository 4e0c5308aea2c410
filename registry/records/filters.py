"""Which records a listing keeps: the filters of ``elements ls``, as one pure predicate.

A :class:`RecordFilter` holds the terms a person searches by (publisher, kind, licence, usable
commercially, parent, yanked or live, a name in the document); :meth:`RecordFilter.matches`
decides for one record from what the chain says of it, its licence term set and, only when a name
is asked for, the name its document gives (:func:`document_name`). Reading the chain and fetching
documents stay with the caller, so the rules here are tested without either.

"Usable commercially" follows the registry's licence rule (:mod:`registry.chain.licenses`): the
record's own terms allow commercial use **and** it inherits no non-commercial restriction from
another publisher's record in its ancestry. A record whose term set is unknown grants nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..digest import RecordId
from ..chain.licenses import INHERITS_NON_COMMERCIAL, LicenseTerms
from ..chain.registry import Record

__all__ = ["RecordFilter", "document_name", "usable_commercially"]


def usable_commercially(record: Record, terms: LicenseTerms | None) -> bool:
    """Whether the record may be used commercially: its terms allow it and its ancestry does not forbid it."""
    return terms is not None and terms.commercial_use and not record.inherited & INHERITS_NON_COMMERCIAL


def document_name(document: Any) -> str | None:
    """The name a record's document gives: the manifest's ``metadata.name`` or the recipe's ``name``."""
    metadata = getattr(document, "metadata", None)
    if isinstance(metadata, dict):
        name = metadata.get("name")
    else:
        name = getattr(document, "name", None)
    return name if isinstance(name, str) and name else None


@dataclass(frozen=True)
class RecordFilter:
    """The terms of a search; a field left ``None`` (or ``False``) does not filter.

    Attributes:
        publisher: a checksummed address.
        kind: a :class:`registry.chain.reader.Kind` value.
        license_ids: the registry licence ids the licence may have (an SPDX id can name several
            term sets on a registry, one per flag combination).
        commercial: only records usable commercially (:func:`usable_commercially`).
        parent: a record id (32 bytes) the record must list among its parents.
        yanked: ``True`` only yanked records, ``False`` only live ones.
        name: text the document's name must contain (compared case-insensitively).
    """

    publisher: str | None = None
    kind: int | None = None
    license_ids: frozenset[int] | None = None
    commercial: bool = False
    parent: RecordId | None = None
    yanked: bool | None = None
    name: str | None = None

    @property
    def needs_document(self) -> bool:
        """Whether deciding needs the record's document (fetching it is the costly part)."""
        return self.name is not None

    def matches_chain(self, record: Record, terms: LicenseTerms | None) -> bool:
        """Every term the chain alone decides (all but the name)."""
        if self.publisher is not None and record.publisher.lower() != self.publisher.lower():
            return False
        if self.kind is not None and int(record.kind) != int(self.kind):
            return False
        if self.license_ids is not None and record.license_id not in self.license_ids:
            return False
        if self.commercial and not usable_commercially(record, terms):
            return False
        if self.parent is not None and self.parent not in record.parents:
            return False
        if self.yanked is not None and bool(record.yanked) != self.yanked:
            return False
        return True

    def matches(self, record: Record, terms: LicenseTerms | None, document_name: str | None = None) -> bool:
        """Whether the record is kept; ``document_name`` is the name its document gives (None: none)."""
        if not self.matches_chain(record, terms):
            return False
        if self.name is not None:
            return document_name is not None and self.name.casefold() in document_name.casefold()
        return True
