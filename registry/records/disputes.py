"""Priority and disputes: which claim of a content came first, and which later claims look like
copies of it under looser terms.

Anyone may claim any content, so several records can claim the same content id. They are
ordered by **priority**: :func:`priority_key` = (``priority_block``, block, log index), earliest
first. ``Record.priority_block`` is the block a claim's priority dates from (today the block it
was published in; with commit-reveal, the block of its commitment).

**Stricter** (:func:`stricter_terms`, the one definition every command uses). Term set ``A`` is
stricter than term set ``B`` when ``B`` lifts at least one restriction of ``A``:

===================  ===================================================================
``non-commercial``   ``A`` does not allow commercial use, ``B`` does
``no-derivatives``   ``A`` does not allow derivatives, ``B`` does
``share-alike``      ``A`` is share-alike and ``B`` is another term set (derivatives of
                     ``A`` must keep ``A``'s terms: the registry compares licence ids)
``attribution``      ``A`` requires attribution, ``B`` does not
===================  ===================================================================

Equal flags (MIT and Apache-2.0) are not stricter either way; neither are term sets that only
differ in what ``B`` withholds (``B`` non-commercial where ``A`` is not). A term set the
registry does not know counts as granting nothing and requiring nothing: as ``A`` it is lifted
by any ``B`` that grants commercial use or derivatives; as ``B`` it lifts nothing.

**Disputed** (:func:`find_disputes`). A claim ``C`` by publisher ``Q`` is disputed by another
publisher ``P`` when ``P`` claimed the same content before ``Q`` first did (a publisher's claims
keep the priority of its first one), and every claim of ``P`` with priority over ``C`` is
stricter than ``C``; the dispute names ``P``'s earliest claim and the restrictions ``C`` lifts.
Why: identical content claimed later by someone else is most likely a copy, and a copy does not
shed its terms by being claimed again. A publisher re-claiming its own content is never disputed
(it may re-license its own work), and ``P``'s own earlier claim under terms at least as loose as
``C``'s means ``P`` offered it so: no dispute from ``P``. A yanked earlier claim still disputes
(a yank is a warning, not a withdrawal of priority).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..chain.licenses import LicenseTerms
from ..chain.registry import Record, claim_order
from ..digest import ContentId, RecordId, to_hex

__all__ = [
    "MAX_DISPUTES_PER_CLAIM",
    "RESTRICTIONS",
    "Dispute",
    "block_text",
    "earliest_first",
    "find_disputes",
    "priority_key",
    "stricter_terms",
]

#: The restrictions a later claim can lift, in the order they are reported.
RESTRICTIONS = ("non-commercial", "no-derivatives", "share-alike", "attribution")
#: Earlier claimants named per disputed claim (earliest first): one is enough to dispute it, a
#: few show who else holds it; a flood of claims cannot grow a report without bound.
MAX_DISPUTES_PER_CLAIM = 16


#: The order of claims, earliest first: priority block, then block and log index (ties); the
#: chain layer's :func:`registry.chain.registry.claim_order`, named here for the dispute rule.
priority_key = claim_order


def earliest_first(records: Iterable[Record]) -> list[Record]:
    """``records`` by priority, earliest first (see :func:`priority_key`)."""
    return sorted(records, key=priority_key)


def block_text(record: Record) -> str:
    """``block N``, or ``priority block P (block N)`` when the claim's priority is older than its block."""
    if record.priority_block != record.block_number:
        return f"priority block {record.priority_block} (block {record.block_number})"
    return f"block {record.block_number}"


def stricter_terms(earlier: LicenseTerms | None, later: LicenseTerms | None) -> tuple[str, ...]:
    """The restrictions of ``earlier`` that ``later`` lifts (names from :data:`RESTRICTIONS`).

    Non-empty exactly when ``earlier`` is stricter than ``later`` (the rule is in the module
    docstring and docs/provenance.md). ``None`` is a term set the registry does not know.
    """
    if later is None:
        return ()  # unknown terms grant nothing: nothing to lift
    lifted = []
    earlier_commercial = earlier is not None and earlier.commercial_use
    earlier_derivatives = earlier is not None and earlier.derivatives
    if later.commercial_use and not earlier_commercial:
        lifted.append("non-commercial")
    if later.derivatives and not earlier_derivatives:
        lifted.append("no-derivatives")
    if earlier is not None and earlier.share_alike and earlier.license_id != later.license_id:
        lifted.append("share-alike")
    if earlier is not None and earlier.attribution and not later.attribution:
        lifted.append("attribution")
    return tuple(lifted)


def _spdx(terms: LicenseTerms | None, record: Record) -> str:
    return terms.spdx_id if terms is not None else f"unknown licence {record.license_id}"


@dataclass(frozen=True)
class Dispute:
    """A claim of content that another publisher claimed earlier under stricter terms.

    Attributes:
        record: the disputed (later) claim.
        terms: its term set (``None``: unknown to the registry).
        earlier: the other publisher's earliest claim of the same content.
        earlier_terms: that claim's term set.
        restrictions: the restrictions of ``earlier_terms`` that ``terms`` lifts.
    """

    record: Record
    terms: LicenseTerms | None
    earlier: Record
    earlier_terms: LicenseTerms | None
    restrictions: tuple[str, ...]

    @property
    def record_id(self) -> str:
        return to_hex(self.record.record_id)

    @property
    def earlier_id(self) -> str:
        return to_hex(self.earlier.record_id)

    def earlier_text(self) -> str:
        """``record 0x… by 0x…, block N, CC-BY-NC-4.0`` (the claim the dispute names)."""
        yanked = ", yanked" if self.earlier.yanked else ""
        return (f"record {self.earlier_id} by {self.earlier.publisher}, {block_text(self.earlier)}{yanked}, "
                f"{_spdx(self.earlier_terms, self.earlier)}")

    def message(self, name: str | None = None) -> str:
        """One line: the disputed record, the earlier claim it names, and what the later terms lift."""
        label = f" ({name})" if name else ""
        later = _spdx(self.terms, self.record)
        yanked = ", yanked" if self.earlier.yanked else ""
        return (f"record {self.record_id}{label} by {self.record.publisher} under {later} is disputed: "
                f"{self.earlier.publisher} claimed the same content earlier under stricter terms (record {self.earlier_id}, "
                f"{block_text(self.earlier)}{yanked}, {_spdx(self.earlier_terms, self.earlier)}; {later} lifts "
                f"{', '.join(self.restrictions)})")

    def to_json(self) -> dict[str, Any]:
        earlier = self.earlier
        return {
            "record_id": self.record_id,
            "publisher": self.record.publisher,
            "content_id": to_hex(self.record.content_id),
            "license": self.terms.spdx_id if self.terms is not None else None,
            "earlier": {
                "record_id": self.earlier_id,
                "publisher": earlier.publisher,
                "block": earlier.block_number,
                "priority_block": earlier.priority_block,
                "yanked": earlier.yanked,
                "license": self.earlier_terms.to_json() if self.earlier_terms is not None else None,
            },
            "restrictions_lifted": list(self.restrictions),
        }


def find_disputes(claims: Iterable[Record], terms_of: Callable[[int], LicenseTerms | None],
                  *, limit: int = MAX_DISPUTES_PER_CLAIM) -> dict[RecordId, list[Dispute]]:
    """Every disputed claim among ``claims`` (give every claim of each content id concerned).

    Returns ``{record id: [Dispute, ...]}`` for the disputed records only, each list earliest
    first and at most ``limit`` long. ``terms_of(licence id)`` gives a record's term set.
    """
    by_content: dict[ContentId, dict[RecordId, Record]] = {}
    for record in claims:
        by_content.setdefault(record.content_id, {}).setdefault(record.record_id, record)
    terms_cache: dict[int, LicenseTerms | None] = {}

    def terms(license_id: int) -> LicenseTerms | None:
        if license_id not in terms_cache:
            terms_cache[license_id] = terms_of(license_id)
        return terms_cache[license_id]

    # Whether every term set of a group is stricter than a licence: asked once per pair.
    disputing: dict[tuple[frozenset[int], int], bool] = {}
    out: dict[RecordId, list[Dispute]] = {}
    for records in by_content.values():
        # Publishers grouped by the licence ids they claimed this content under so far (one
        # check per group and claim, not per publisher): ids -> {publisher: earliest claim}.
        groups: dict[frozenset[int], dict[str, Record]] = {}
        offered: dict[str, frozenset[int]] = {}
        arrival: dict[str, int] = {}  # publisher -> position of its first claim
        for position, claim in enumerate(earliest_first(records.values())):
            me = claim.publisher.lower()
            mine = arrival.setdefault(me, position)
            later = terms(claim.license_id)
            found: list[Record] = []
            for ids, members in groups.items():
                key = (ids, claim.license_id)
                if key not in disputing:
                    disputing[key] = all(stricter_terms(terms(i), later) for i in ids)
                if disputing[key]:
                    found += [first for publisher, first in members.items() if arrival[publisher] < mine]
            if found:
                out[claim.record_id] = [
                    Dispute(claim, later, first, terms(first.license_id), stricter_terms(terms(first.license_id), later))
                    for first in earliest_first(found)[:limit]
                ]
            before = offered.get(me, frozenset())
            first = groups[before].pop(me) if me in offered else claim
            if before in groups and not groups[before]:
                del groups[before]
            now = before | {claim.license_id}
            offered[me] = now
            groups.setdefault(now, {})[me] = first
    return out
