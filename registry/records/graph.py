"""Record graphs, the result of resolution: a :class:`Graph` holds the records a hash named (its
roots) and every ancestor, each a :class:`ResolvedRecord` with its licence terms, its checked
document (manifest or recipe) and, once asked, its disputes; walks over it (parents, ancestors,
input names) and its JSON form. Built by :class:`registry.records.resolve.Resolver`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterator

from ..chain.licenses import LicenseTerms
from ..chain.reader import Kind, Record, kind_name
from ..digest import ContentId, RecordId, parse_record_id, to_hex
from ..formats.content_id import Manifest
from .disputes import Dispute, priority_key

__all__ = ["Graph", "ResolvedRecord"]


@dataclass(frozen=True)
class ResolvedRecord:
    """One record of a graph.

    Attributes:
        record: the claim as the chain holds it (checked against its id).
        license: its licence term set.
        document: the element :class:`Manifest` or the composition's ``Recipe``; ``None`` when
            documents were not asked for, or (non-strict) could not be fetched.
        depth: edges from the nearest root.
        document_error: why the document is missing or wrong (non-strict resolution only).
        disputes: earlier claims of its content by other publishers under stricter terms
            (:mod:`registry.records.disputes`; filled by :meth:`Graph.add_disputes`; ``None``:
            not checked).
    """

    record: Record
    license: LicenseTerms | None
    document: Any = None
    depth: int = 0
    document_error: str | None = None
    document_failed: bool = False
    disputes: tuple[Dispute, ...] | None = None

    @property
    def record_id(self) -> RecordId:
        return self.record.record_id

    @property
    def content_id(self) -> ContentId:
        return self.record.content_id

    @property
    def kind_name(self) -> str:
        return kind_name(self.record.kind)

    @property
    def is_composition(self) -> bool:
        return self.record.kind == Kind.COMPOSITION

    def to_json(self) -> dict[str, Any]:
        out = self.record.to_json()
        out["kind"] = self.kind_name
        out["priority_block"] = self.record.priority_block
        out["depth"] = self.depth
        out["license"] = self.license.to_json() if self.license else None
        doc = self.document
        if doc is None:
            out["document"] = None
        elif isinstance(doc, Manifest):
            out["document"] = {
                "type": "manifest",
                "kind": doc.kind,
                "data": doc.data,
                "name": doc.metadata.get("name"),
                "tensor_count": len(doc.entries),
                "tensor_bytes": doc.size if doc.kind == "tensors" else None,
            }
        else:
            out["document"] = {
                "type": "recipe",
                "name": getattr(doc, "name", None),
                "recipe_content_id": doc.content_id(),
                "inputs": {name: ref.record for name, ref in sorted(doc.inputs.items())},
                "steps": len(doc.steps),
                "files": [f.path for f in doc.files],
            }
        out["document_error"] = self.document_error
        out["disputes"] = None if self.disputes is None else [d.to_json() for d in self.disputes]
        return out


@dataclass
class Graph:
    """A record graph: the roots (what the hash named) and every ancestor.

    Attributes:
        query: the hash asked for.
        roots: the root record ids (one for a record id; every claim, earliest first, for a
            content id or CID).
        nodes: record id -> :class:`ResolvedRecord`.
        round_trips: RPC round trips the resolution took.
    """

    query: str
    roots: list[RecordId]
    nodes: dict[RecordId, ResolvedRecord]
    round_trips: int = 0
    chain_id: int = 0
    registry: str = ""

    def __iter__(self) -> Iterator[ResolvedRecord]:
        """Nodes by depth, then priority (earliest first)."""
        return iter(sorted(self.nodes.values(), key=lambda n: (n.depth, *priority_key(n.record))))

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self.nodes

    def __getitem__(self, record_id: Any) -> ResolvedRecord:
        return self.nodes[parse_record_id(record_id)]

    @property
    def root(self) -> ResolvedRecord:
        """The first root (the record asked for, or the earliest claim)."""
        return self.nodes[self.roots[0]]

    @property
    def depth(self) -> int:
        return max((n.depth for n in self.nodes.values()), default=0)

    def parents(self, record_id: Any) -> list[ResolvedRecord]:
        return [self.nodes[p] for p in self[record_id].record.parents]

    def records(self) -> list[Record]:
        return [n.record for n in self]

    def add_disputes(self, disputes: dict[RecordId, list[Dispute]]) -> None:
        """Note on each node the disputes of its record (from :meth:`Resolver.disputes`, which
        was asked about every node: a node it does not name is not disputed)."""
        for rid, node in list(self.nodes.items()):
            self.nodes[rid] = replace(node, disputes=tuple(disputes.get(rid, ())))

    @property
    def disputes(self) -> list[Dispute]:
        """Every dispute of the graph's records, roots first."""
        return [d for node in self for d in node.disputes or ()]

    def input_names(self) -> dict[RecordId, str]:
        """Each record's input name in the graph's recipes (the nearest composition's wins)."""
        names: dict[RecordId, str] = {}
        for node in self:
            if node.is_composition and node.document is not None:
                for name, ref in sorted(node.document.inputs.items()):
                    if ref.record:
                        names.setdefault(parse_record_id(ref.record), name)
        return names

    def disputes_json(self) -> list[dict[str, Any]]:
        """The disputes as data, each with the disputed record's input name."""
        names = self.input_names()
        return [{**d.to_json(), "name": names.get(d.record.record_id)} for d in self.disputes]

    def ancestors(self, record_id: Any) -> list[ResolvedRecord]:
        """Every ancestor of a record (not itself), nearest first."""
        start = parse_record_id(record_id)
        seen: set[RecordId] = {start}
        order: list[ResolvedRecord] = []
        frontier: list[RecordId] = [start]
        while frontier:
            following: list[RecordId] = []
            for rid in frontier:
                for parent in self.nodes[rid].record.parents:
                    if parent not in seen:
                        seen.add(parent)
                        order.append(self.nodes[parent])
                        following.append(parent)
            frontier = following
        return order

    def to_json(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "chain_id": self.chain_id,
            "registry": self.registry,
            "roots": [to_hex(r) for r in self.roots],
            "depth": self.depth,
            "round_trips": self.round_trips,
            "records": [n.to_json() for n in self],
            "disputes": self.disputes_json(),
        }
