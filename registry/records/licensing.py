"""The effective licence of a model: the most restrictive terms of every record in its ancestry
whose terms still bind it.

Every record in the ancestry (the claim itself, its recipe's inputs, their parents, and so on)
contributes its term set (``registry.chain.licenses``), unless its own publisher re-licensed it:

- **re-licensing** (the contract's ancestry rule, docs/contract.md): a publisher may re-license
  their own work in a record of theirs, and past that record its terms govern. So an ancestor X
  binds the claim only when some path of parent links (recipe inputs included) from the claim to X
  passes through no other record of X's publisher; the claim itself always binds. A record whose
  every path passes through a later record of its own publisher adds no restriction and no licence
  to the expression (it is still attributed); ``relicensed`` lists those that had a restriction to
  lift. Another publisher's record never lifts one: a child cannot drop its parent's
  non-commercial or share-alike terms by claiming a permissive licence (laundering); the
  parent's terms still reach the claim and apply.

Of the records that bind:

- commercial use is allowed only if **every** term set allows it;
- derivatives may be made only if **every** term set allows them;
- share-alike: a derivative must keep the terms of **every** share-alike ancestor (listed);
- attribution: every ancestor whose terms require it is listed (record, publisher, content).

A term set the chain does not know (a record naming an unknown licence id) counts as granting
nothing. The SPDX expression is the distinct licences joined with ``AND`` (all of them apply).

A **disputed** record of the ancestry (content another publisher claimed earlier under stricter
terms, :mod:`registry.records.disputes`) is most likely a copy of that earlier claim: the
earlier claim's terms are combined with the rest by the same rules (``earlier=``), always (no
re-licensing by the copier lifts them), and listed in ``earlier_claims``.

Before a child is published, :func:`check_license_against_ancestors` applies the registry's own rule
(:func:`registry.chain.licenses.check_derivative`) to it against a whole resolved ancestry, and names
the ancestor a restriction comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..chain.abi import checksum_address as to_checksum_address
from ..chain.errors import LicenseViolationError, make_error
from ..chain.licenses import LicenseTerms, ParentTerms, check_derivative, describe_flags, inherited_restrictions
from ..chain.registry import Record
from ..digest import ContentId, RecordId, parse_record_id, to_hex
from ..errors import IntegrityError
from .graph import Graph

__all__ = ["Attribution", "EffectiveLicense", "check_license_against_ancestors", "effective_license"]


@dataclass(frozen=True)
class Attribution:
    """One ancestor that must be attributed."""

    record_id: RecordId
    publisher: str
    content_id: ContentId
    spdx_id: str
    name: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"record_id": to_hex(self.record_id), "publisher": self.publisher, "content_id": to_hex(self.content_id),
                "spdx_id": self.spdx_id, "name": self.name}


@dataclass(frozen=True)
class EffectiveLicense:
    """The combined terms of an ancestry (see the module docstring for the rules)."""

    licenses: tuple[str, ...]
    commercial_use: bool
    derivatives: bool
    share_alike: tuple[str, ...]
    attribution: tuple[Attribution, ...]
    no_commercial_use: tuple[str, ...] = ()
    no_derivatives: tuple[str, ...] = ()
    unknown_terms: tuple[str, ...] = ()
    earlier_claims: tuple[str, ...] = ()
    relicensed: tuple[str, ...] = ()

    @property
    def expression(self) -> str:
        """An SPDX expression: every licence of the ancestry applies."""
        if not self.licenses:
            return "NOASSERTION"
        if len(self.licenses) == 1:
            return self.licenses[0]
        return " AND ".join(self.licenses)

    def summary(self) -> str:
        parts = [
            "commercial use " + ("allowed" if self.commercial_use else "NOT allowed"),
            "derivatives " + ("allowed" if self.derivatives else "NOT allowed"),
        ]
        if self.share_alike:
            parts.append("share-alike: derivatives keep " + ", ".join(self.share_alike))
        parts.append(f"attribution: {len(self.attribution)} ancestor(s)" if self.attribution else "no attribution required")
        if self.earlier_claims:
            parts.append(f"includes the terms of {len(self.earlier_claims)} earlier claim(s) disputing its records")
        if self.relicensed:
            parts.append(f"{len(self.relicensed)} record(s) re-licensed by their own publisher")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "expression": self.expression,
            "licenses": list(self.licenses),
            "commercial_use": self.commercial_use,
            "derivatives": self.derivatives,
            "share_alike": list(self.share_alike),
            "attribution": [a.to_json() for a in self.attribution],
            "no_commercial_use": list(self.no_commercial_use),
            "no_derivatives": list(self.no_derivatives),
            "unknown_terms": list(self.unknown_terms),
            "earlier_claims": list(self.earlier_claims),
            "relicensed": list(self.relicensed),
        }


def effective_license(ancestry: Iterable[tuple[Record, LicenseTerms | None, str | None]],
                      earlier: Iterable[tuple[Record, LicenseTerms | None, str | None]] = (),
                      *, claim: bytes | None = None,
                      parents: Mapping[bytes, Iterable[bytes]] | None = None) -> EffectiveLicense:
    """Combine the terms of ``(record, its term set or None, a display name)`` items.

    ``claim``: the record id the ancestry is of; with it, an ancestor its own publisher re-licensed
    downstream does not bind (see the module docstring). Without it every record binds.
    ``parents``: record id -> the ids of its parents in the ancestry, recipe inputs included
    (default: each record's parents on chain). ``earlier``: the earlier claims that dispute records
    of the ancestry, in the same form; their terms apply too. Each record counts once however often
    it appears.
    """
    earlier = list(earlier)
    ancestry = list(ancestry)
    binding = None if claim is None else _binding(ancestry, bytes(claim), parents)
    seen: set[bytes] = set()
    licenses: list[str] = []
    share_alike: list[str] = []
    attribution: list[Attribution] = []
    no_commercial: list[str] = []
    no_derivatives: list[str] = []
    unknown: list[str] = []
    relicensed: list[str] = []
    commercial = derivatives = True
    for index, (record, terms, name) in enumerate([*ancestry, *earlier]):
        if record.record_id in seen:
            continue
        seen.add(record.record_id)
        rid = to_hex(record.record_id)
        if binding is not None and index < len(ancestry) and record.record_id not in binding:
            # Re-licensed by its own publisher: its restrictions are lifted and its licence no longer
            # applies; it is still credited (attribution is never lifted, and names its publisher).
            if terms is None or not (terms.commercial_use and terms.derivatives and not terms.share_alike):
                relicensed.append(rid)
            if terms is not None and terms.attribution:
                attribution.append(Attribution(record.record_id, record.publisher, record.content_id, terms.spdx_id, name))
            continue
        if terms is None:
            unknown.append(rid)
            commercial = derivatives = False
            no_commercial.append(rid)
            no_derivatives.append(rid)
            continue
        if terms.spdx_id not in licenses:
            licenses.append(terms.spdx_id)
        if not terms.commercial_use:
            commercial = False
            no_commercial.append(rid)
        if not terms.derivatives:
            derivatives = False
            no_derivatives.append(rid)
        if terms.share_alike and terms.spdx_id not in share_alike:
            share_alike.append(terms.spdx_id)
        if terms.attribution:
            attribution.append(Attribution(record.record_id, record.publisher, record.content_id, terms.spdx_id, name))
    return EffectiveLicense(
        licenses=tuple(licenses),
        commercial_use=commercial,
        derivatives=derivatives,
        share_alike=tuple(share_alike),
        attribution=tuple(attribution),
        no_commercial_use=tuple(no_commercial),
        no_derivatives=tuple(no_derivatives),
        unknown_terms=tuple(unknown),
        earlier_claims=tuple(dict.fromkeys(to_hex(record.record_id) for record, _, _ in earlier)),
        relicensed=tuple(relicensed),
    )


def _binding(ancestry: list[tuple[Record, LicenseTerms | None, str | None]], claim: bytes,
             parents: Mapping[bytes, Iterable[bytes]] | None) -> set[bytes]:
    """The ids of the ancestry's records whose terms bind ``claim``: the claim, and each record X
    reached from it by a path on which no record before X is of X's publisher. One walk per
    publisher of the ancestry, each stopping at that publisher's records: O(publishers x links)."""
    records = {bytes(record.record_id): record for record, _, _ in ancestry}
    if claim not in records:
        return set(records)  # no claim to walk from: nothing can be shown re-licensed
    links = {rid: [bytes(p) for p in (parents[rid] if parents is not None and rid in parents else record.parents)]
             for rid, record in records.items()}
    binding = {claim}
    for publisher in {record.publisher.lower() for record in records.values()}:
        reached, frontier = {claim}, [claim]
        while frontier:
            rid = frontier.pop()
            if records[rid].publisher.lower() == publisher:
                binding.add(rid)  # reached through no other record of this publisher
                continue  # past it, its terms govern their work (the claim included: its own ancestors are re-licensed)
            for parent in links[rid]:
                if parent in records and parent not in reached:
                    reached.add(parent)
                    frontier.append(parent)
    return binding


def check_license_against_ancestors(publisher: str, child: LicenseTerms, graph: Graph, parents: Iterable[Any]) -> None:
    """Refuse, before anything is sent, a child whose licence breaks an ancestor's terms.

    The decision is the registry's own rule (:func:`registry.chain.licenses.check_derivative`): what
    every record of the graph inherits from other publishers is computed bottom-up, then the child
    is checked against its parents, in ascending id as the contract does. A restriction reaching the
    child through one of the publisher's own records is explained by the ancestor it comes from.

    Raises:
        DerivativesNotAllowedError, CommercialUseNotAllowedError, ShareAlikeRequiredError: the
        message names the ancestor, its publisher, its licence, the path to it and the rule.
        IntegrityError: a record of the ancestry names a licence the registry does not list.
    """
    publisher = to_checksum_address(publisher)
    parent_ids = sorted({parse_record_id(p, "parent record id") for p in parents})
    for pid in parent_ids:
        if pid not in graph.nodes:
            raise make_error("UnknownParent", {"parentId": str(pid)})
    names: dict[int, str] = {}
    terms: dict[RecordId, LicenseTerms] = {}
    for rid, node in graph.nodes.items():
        if node.license is None:
            raise IntegrityError(f"ancestor {to_hex(rid)} has licence {node.record.license_id}, which the registry does not list")
        terms[rid] = node.license
        names[node.license.license_id] = node.license.spdx_id
    names[child.license_id] = child.spdx_id
    carried = inherited_restrictions({rid: (n.record.publisher, terms[rid], n.record.parents) for rid, n in graph.nodes.items()})
    entries: list[ParentTerms] = [(pid, graph.nodes[pid].record.publisher, terms[pid], carried[pid]) for pid in parent_ids]
    try:
        check_derivative(publisher, child, entries, names)
    except LicenseViolationError as error:
        if error.error.startswith("Inherited"):
            _explain_inherited(error, publisher, child, graph, parse_record_id(error.parent_id, "id"), names)
        raise


def _explain_inherited(error: LicenseViolationError, publisher: str, child: LicenseTerms, graph: Graph, start: RecordId,
                       names: dict[int, str]) -> None:
    """Name, in ``error``, the record of another publisher that a restriction inherited through the
    publisher's own record ``start`` comes from: the nearest one whose terms it breaks and that binds
    the child (a path reaches it through no other record of its own publisher)."""
    share_alike = error.rule == "share-alike"

    def breaks(terms: LicenseTerms) -> bool:
        if share_alike:
            return terms.share_alike and terms.license_id != child.license_id
        return not terms.commercial_use and child.commercial_use

    found: list[tuple[list[RecordId], LicenseTerms]] = []  # a path to a record whose terms bind the child, and those terms
    for owner in {n.record.publisher for n in graph.nodes.values()} - {publisher}:
        frontier: list[list[RecordId]] = [[start]]
        seen: set[RecordId] = set()
        while frontier:
            following: list[list[RecordId]] = []
            for path in frontier:
                rid = path[-1]
                if rid in seen or rid not in graph.nodes:
                    continue
                seen.add(rid)
                node = graph.nodes[rid]
                if node.record.publisher == owner:
                    if node.license is not None and breaks(node.license):
                        found.append((path, node.license))
                    continue  # past it, the owner's own re-licensing governs
                following.extend(path + [p] for p in sorted(node.record.parents))
            frontier = following
    if not found:
        return
    path, terms = min(found, key=lambda f: (len(f[0]), f[0][-1]))
    node = graph.nodes[path[-1]]
    via = " -> ".join(to_hex(p)[:12] + "…" for p in path[:-1])
    explanation = (f"which is share-alike: publish under {terms.spdx_id}, not {child.spdx_id}" if share_alike else
                   f"which is non-commercial, and {child.spdx_id} allows commercial use: choose a non-commercial licence")
    error.args = (
        f"ancestor record {to_hex(path[-1])} (published by {node.record.publisher}, reached through {via}) is under "
        f"{terms.spdx_id} (licence {terms.license_id}: {describe_flags(terms.flags)}), {explanation}",
    )
    error.values.update({"parentId": to_hex(path[-1]), "parentLicenseId": terms.license_id, "ancestorPath": [to_hex(p) for p in path]})
