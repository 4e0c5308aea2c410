"""Resolving hashes to records and whole record graphs, with every document fetched and checked.

A hash is a **record id** (one claim), a **content id** (every claim of that content, earliest
first) or a **CID** (the records whose document it is). :meth:`Resolver.graph` returns the record
graph behind it: the records, every ancestor through their parents, each with its licence terms
and its document (the element manifest, or the composition's recipe)::

    resolver = Resolver(registry, Sources.from_settings(settings))
    graph = resolver.graph("0x…")                  # a record id or a content id
    for node in graph:                             # ResolvedRecord, roots first, then by depth
        node.record, node.license, node.document   # Record, LicenseTerms, Manifest | Recipe
    resolver.claims(content_id)                    # [Record], earliest first
    graph.add_disputes(resolver.disputes(graph.records()))   # later copies under looser terms

**Round trips.** The graph is read level by level; each level is ONE JSON-RPC batch request
(one HTTP round trip) holding the ``records(ids)`` view call and one ``eth_getLogs`` whose
record-id topic is the OR-list of the level's ids (plus, in the first batch, the claims of a
content id and the licence term sets). A graph whose longest path from the asked record to a
leaf has ``d`` edges costs ``d + 1`` round trips, whatever its width. The first batch also asks
for the head block; once the registry spans more blocks than the network's log range
(:mod:`registry.chain.logs`), each log query is sent as one query per range in the same batch (up
to eight ranges). A longer span, or a node that refuses a query as capped, makes the resolver fall
back for that level (and, after a refusal, for the rest of the graph) to :meth:`Registry.records`,
which asks for the exact blocks instead (two more calls per level), and to
:meth:`Registry.claims_of`, which walks the range within the caps.
The in-process chain has no batching; there every call is counted as one round trip.

**Never trust.** Every event is re-hashed into its record id (which commits to every field) and
compared with the storage word the view returns. Every document is fetched from the sources
(local block store, then Kubo, then gateways: each block checked against its CID) and checked:
a manifest must be canonical and state the record's content id (re-derived from its tensor
table), a recipe must be canonical, state the record's content id as its output and pin every
input to a parent record with that parent's content id.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..chain.abi import checksum_address as to_checksum_address
from ..chain.cids import split_cid
from ..chain.errors import ChainError, LicenseViolation, LogQueryRefused, RecordNotFoundError, make_error
from ..chain.logs import block_ranges
from ..chain.licenses import LicenseTerms, check_derivative, describe_flags, inherited_restrictions
from ..chain.reader import (
    RECORD_PUBLISHED_TOPIC,
    Kind,
    Record,
    RecordEvent,
    RecordState,
    decode_event,
    decode_licenses,
    decode_states,
    encode_topics,
    kind_name,
    licenses_call,
    make_record,
    records_call,
    to_bytes32,
)
from ..chain.registry import Registry
from ..digest import to_hex
from ..errors import ElementsError, InputError, IntegrityError, NotFoundError, ServiceError
from ..formats.content_id import Manifest
from .disputes import Dispute, earliest_first, find_disputes, priority_key
from .documents import DocumentError, fetch_document, load_document

__all__ = [
    "LICENSE_WINDOW",
    "ResolvedRecord",
    "Graph",
    "Resolver",
    "HashNotFound",
    "parse_hash",
    "check_license_against_ancestors",
]

#: Licence term sets read speculatively in the first batch (ids are dense from 1; 14 are built in).
LICENSE_WINDOW = 64
_IDS_PER_CALL = 256
_RANGES_PER_BATCH = 8  # log queries of one id list in one batch; a registry spanning more reads exact blocks
_EXACT = "exact blocks"  # a log call not sent: its records are read through the exact blocks
_TOO_MANY_RANGES = "the registry spans more log ranges than one batch holds"


class HashNotFound(NotFoundError):
    """No record, claim or document on this chain has the hash asked for."""


def parse_hash(text: str) -> tuple[str, bytes]:
    """Classify a hash: ``("id", 32 bytes)`` for a ``0x`` + 64 hex id (record or content id), or
    ``("cid", codec byte + digest)`` for a CID.

    Raises:
        InputError: neither.
    """
    value = str(text).strip()
    if value[:2].lower() == "0x" or (len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)):
        return "id", to_bytes32(value, "record id or content id")
    try:
        codec, digest = split_cid(value)
    except InputError:
        shown = repr(value) if len(value) <= 80 else repr(value[:70]) + "…"
        raise InputError(
            f"{shown} is not a hash: give a record id or a content id (0x + 64 hex) or a CID (bafy…, Qm…)"
        ) from None
    return "cid", bytes([codec]) + digest


# --------------------------------------------------------------------------------------------
# results


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
    def record_id(self) -> bytes:
        return self.record.record_id

    @property
    def content_id(self) -> bytes:
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
    roots: list[bytes]
    nodes: dict[bytes, ResolvedRecord]
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
        return self.nodes[to_bytes32(record_id, "record id")]

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

    def add_disputes(self, disputes: dict[bytes, list[Dispute]]) -> None:
        """Note on each node the disputes of its record (from :meth:`Resolver.disputes`, which
        was asked about every node: a node it does not name is not disputed)."""
        for rid, node in list(self.nodes.items()):
            self.nodes[rid] = replace(node, disputes=tuple(disputes.get(rid, ())))

    @property
    def disputes(self) -> list[Dispute]:
        """Every dispute of the graph's records, roots first."""
        return [d for node in self for d in node.disputes or ()]

    def input_names(self) -> dict[bytes, str]:
        """Each record's input name in the graph's recipes (the nearest composition's wins)."""
        names: dict[bytes, str] = {}
        for node in self:
            if node.is_composition and node.document is not None:
                for name, ref in sorted(node.document.inputs.items()):
                    if ref.record:
                        names.setdefault(to_bytes32(ref.record, "record id"), name)
        return names

    def disputes_json(self) -> list[dict[str, Any]]:
        """The disputes as data, each with the disputed record's input name."""
        names = self.input_names()
        return [{**d.to_json(), "name": names.get(d.record.record_id)} for d in self.disputes]

    def ancestors(self, record_id: Any) -> list[ResolvedRecord]:
        """Every ancestor of a record (not itself), nearest first."""
        start = to_bytes32(record_id, "record id")
        seen, order, frontier = {start}, [], [start]
        while frontier:
            following = []
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


# --------------------------------------------------------------------------------------------
# the resolver


@dataclass
class _Call:
    method: str
    params: list
    kind: str  # "states" | "logs" | "claims" | "licenses"
    ids: list = field(default_factory=list)


class Resolver:
    """Reads records, claims and record graphs from a registry, and their documents from sources.

    Args:
        registry: a :class:`Registry` (read-only is enough).
        sources: a :class:`registry.storage.fetch.Sources` for documents (``None``: chain only).
        recipe_parser: turns a recipe document (dict) into a Recipe (default: the compose layer's
            ``parse_recipe``, imported when first needed: recipes are specified there).
        workers: parallel document fetches when remote sources are configured.
    """

    def __init__(self, registry: Registry, sources=None, *, recipe_parser: Callable[[Any], Any] | None = None, workers: int = 4) -> None:
        self.registry = registry
        self.sources = sources
        self._recipe_parser = recipe_parser
        self.workers = workers
        self.round_trips = 0
        self._licenses: dict[int, LicenseTerms] = dict(registry._licenses)
        self._documents: dict[bytes, Any] = {}
        self._batching = not registry.chain.is_memory
        self._head: int | None = None  # the head block, learnt in the first batch (log ranges are cut by it)
        self._logs_capped = False  # a node refused a log query: read exact blocks from then on
        self._address_bytes = bytes.fromhex(registry.address[2:])

    # -- public API ---------------------------------------------------------------------------

    def claims(self, content_id: Any) -> list[Record]:
        """Every claim of a content id, earliest first (empty when none)."""
        cid = to_bytes32(content_id, "content id")
        records = self._run_levels([], claims_of=[cid], follow=False)[1]
        return earliest_first(r for r in records.values() if r.content_id == cid)

    def claims_of(self, content_ids: Iterable[Any]) -> dict[bytes, list[Record]]:
        """Every claim of several content ids, each list earliest first (an empty list for an id
        nothing claims): two round trips, the logs (one query per 256 ids) then the records'
        storage, every event re-hashed to its id."""
        ids = list(dict.fromkeys(to_bytes32(c, "content id") for c in content_ids))
        if not ids:
            return {}
        records = self._run_levels([], claims_of=ids, follow=False)[1]
        out: dict[bytes, list[Record]] = {cid: [] for cid in ids}
        for record in records.values():
            if record.content_id in out:
                out[record.content_id].append(record)
        return {cid: earliest_first(found) for cid, found in out.items()}

    def disputes(self, records: Iterable[Record]) -> dict[bytes, list[Dispute]]:
        """The disputes of ``records``: for each, the earlier claims of its content by other
        publishers under stricter terms (:func:`registry.records.disputes.find_disputes`).

        Reads every claim of their content ids (:meth:`claims_of`) and the licences they name.
        Returns ``{record id: [Dispute, ...]}`` for the disputed ones only.
        """
        wanted = {r.record_id: r for r in records}
        claims = self.claims_of(r.content_id for r in wanted.values())
        every = [r for found in claims.values() for r in found]
        unknown = {r.license_id for r in every} - set(self._licenses)
        if unknown:
            self._read_licenses(sorted(unknown))
        found = find_disputes([*every, *wanted.values()], self.license)
        return {rid: disputes for rid, disputes in found.items() if rid in wanted}

    def records(self, record_ids: Iterable[Any]) -> list[Record | None]:
        """Many records in one round trip (``None`` for an unknown id)."""
        ids = [to_bytes32(r, "record id") for r in record_ids]
        found = self._run_levels(ids, follow=False)[1]
        return [found.get(rid) for rid in ids]

    def record(self, record_id: Any) -> Record:
        """One record.

        Raises:
            RecordNotFoundError: no record has this id here.
        """
        (record,) = self.records([record_id])
        if record is None:
            raise RecordNotFoundError(
                f"no record {to_hex(to_bytes32(record_id))} on {self.registry.chain.name} at {self.registry.address}; "
                "check the id and the network (`elements ls` lists the records)"
            )
        return record

    def license(self, license_id: int) -> LicenseTerms | None:
        if license_id not in self._licenses:
            self._read_licenses([license_id])
        return self._licenses.get(license_id)

    def lookup(self, query: str | bytes) -> list[Record]:
        """The records a hash names: the record, or every claim of a content id, or the records
        whose document is a CID (a scan of every record's event), earliest first.

        Raises:
            HashNotFound: none.
        """
        roots, records, _ = self._roots(query, follow=False)
        return [records[r] for r in roots]

    def graph(
        self,
        query: str | bytes | Sequence[Any],
        *,
        documents: bool = True,
        strict: bool = True,
        yanked: bool = True,
    ) -> Graph:
        """The record graph behind a hash (or behind several record ids).

        Args:
            query: a record id, content id or CID (text), or a list of record ids.
            documents: fetch and check every record's document (manifest / recipe).
            strict: raise on a missing or wrong document; else note it on the node.
            yanked: keep yanked claims among the roots of a content id.

        Raises:
            HashNotFound, RecordNotFoundError: nothing has that hash / an id is unknown.
            IntegrityError: the chain's data does not hash to its ids, a parent is missing,
                or (strict) a document does not match its record.
            NotFoundError / ServiceError (strict): a document no source could provide.
        """
        start = self.round_trips
        roots, records, depth = self._roots(query, follow=True, yanked=yanked)
        licences = {r.license_id for r in records.values()}
        missing = [i for i in licences if i not in self._licenses]
        if missing:
            self._read_licenses(missing)
        nodes = {rid: ResolvedRecord(r, self._licenses.get(r.license_id), None, depth[rid]) for rid, r in records.items()}
        graph = Graph(
            query if isinstance(query, str) else ",".join(to_hex(to_bytes32(q)) for q in ([query] if isinstance(query, bytes) else query)),
            roots, nodes, 0, self.registry.chain.chain_id, self.registry.address,
        )
        if documents:
            self._attach_documents(graph, strict)
        graph.round_trips = self.round_trips - start
        return graph

    def document(self, record: Record) -> Any:
        """The checked document of one record (a Manifest, or a Recipe for a composition).

        Raises:
            DocumentError: it does not match the record; NotFoundError / ServiceError: no
            source has it.
        """
        if record.record_id in self._documents:
            return self._documents[record.record_id]
        if self.sources is None:
            raise NotFoundError(f"no sources to fetch the document {record.cid} of record {to_hex(record.record_id)} from")
        raw = fetch_document(self.sources, record.cid)
        document = self._check_document(record, raw)
        self._documents[record.record_id] = document
        return document

    # -- reading the chain --------------------------------------------------------------------

    def _roots(self, query, *, follow: bool, yanked: bool = True):
        if isinstance(query, (list, tuple)):
            ids = [to_bytes32(q, "record id") for q in query]
            if not ids:
                raise InputError("no record ids to resolve")
            depth, records = self._run_levels(ids, follow=follow)
            for rid in ids:
                if rid not in records:
                    raise RecordNotFoundError(
                        f"no record {to_hex(rid)} on {self.registry.chain.name} at {self.registry.address}; check the id and the network"
                    )
            return list(dict.fromkeys(ids)), records, depth
        if isinstance(query, (bytes, bytearray)):
            kind, value = "id", bytes(query)
        else:
            kind, value = parse_hash(query)
        if kind == "cid":
            matching = [r for r in self.registry.all_records() if bytes([r.cid_codec]) + r.cid_digest == value]
            self.round_trips += 2
            if not matching:
                raise HashNotFound(
                    f"no record on {self.registry.chain.name} has CID {query}; check the CID and the network "
                    "(`elements ls` lists the records)"
                )
            ids = [r.record_id for r in earliest_first(matching)]
            depth, records = self._run_levels(ids, follow=follow)
            return ids, records, depth
        depth, records, roots = self._run_levels([value], claims_of=[value], follow=follow, return_roots=True)
        if not roots:
            raise HashNotFound(
                f"no record and no claim has hash {to_hex(value)} on {self.registry.chain.name} at {self.registry.address}; "
                "check the hash and the network (`elements ls` lists the records; `elements id PATH` gives a file's content id)"
            )
        if not yanked and len(roots) > 1:
            live = [r for r in roots if not records[r].yanked]
            roots = live or roots
        return roots, records, depth

    def _run_levels(self, ids: list[bytes], *, claims_of: list[bytes] | None = None, follow: bool = True, return_roots: bool = False):
        """Read records level by level; returns ``(depth, records)`` (+ roots when asked).

        ``ids`` are read as records; ``claims_of`` adds every claim of these content ids as roots
        (the ids that turn out not to be records are then dropped). With ``follow`` the parents are
        read too, one level per round trip.
        """
        states: dict[bytes, RecordState | None] = {}
        logs: dict[bytes, RecordEvent] = {}
        done: dict[bytes, Record] = {}
        depth: dict[bytes, int] = {rid: 0 for rid in ids}
        need_state, need_log = list(dict.fromkeys(ids)), list(dict.fromkeys(ids))
        claim_roots: list[bytes] = []
        first = True
        licences_wanted: set[int] = set()
        while need_state or need_log or claims_of:
            calls: list[_Call] = []
            for start in range(0, len(need_state), _IDS_PER_CALL):
                part = need_state[start : start + _IDS_PER_CALL]
                calls.append(_Call("eth_call", [{"to": self.registry.address, "data": to_hex(records_call(part))}, "latest"], "states", part))
            for start in range(0, len(need_log), _IDS_PER_CALL):
                part = need_log[start : start + _IDS_PER_CALL]
                calls += [_Call(m, p, "logs", part) for m, p in self._log_calls([RECORD_PUBLISHED_TOPIC, part])]
            for start in range(0, len(claims_of or ()), _IDS_PER_CALL):
                part = claims_of[start : start + _IDS_PER_CALL]
                calls += [_Call(m, p, "claims", part) for m, p in self._log_calls([RECORD_PUBLISHED_TOPIC, None, part])]
            if first and self._batching and self._head is None:
                calls.append(_Call("eth_blockNumber", [], "head"))
            licence_ids = sorted(licences_wanted - set(self._licenses))
            if first and len(self._licenses) < 14:
                licence_ids = sorted(set(licence_ids) | set(range(1, LICENSE_WINDOW + 1)))
            if licence_ids:
                data = licenses_call(licence_ids)
                calls.append(_Call("eth_call", [{"to": self.registry.address, "data": to_hex(data)}, "latest"], "licenses", licence_ids))
            answers = iter(self._execute([c for c in calls if c.method != _EXACT]))
            results = [_Fallback(_TOO_MANY_RANGES) if c.method == _EXACT else next(answers)
                       for c in calls]
            first = False
            fallen: set[tuple[str, tuple]] = set()
            claims_of = None
            need_state, need_log = [], []
            fresh: list[bytes] = []
            for call, result in zip(calls, results):
                if call.kind == "states":
                    for rid, row in zip(call.ids, decode_states(self._bytes(result, "records()"), len(call.ids), self._where)):
                        states[rid] = row if row.exists else None
                elif call.kind == "head":
                    head = int(result, 16) if isinstance(result, str) and result[:2] == "0x" and 2 < len(result) <= 18 else None
                    self._head = head  # a malformed head only costs the range cut: log queries stay whole
                elif call.kind == "licenses":
                    rows = decode_licenses(self._bytes(result, "licenses()"), len(call.ids), self._where)
                    for license_id, (spdx_id, flags) in zip(call.ids, rows):
                        if spdx_id:
                            self._licenses[license_id] = LicenseTerms(license_id, spdx_id, flags)
                elif isinstance(result, _Fallback):
                    # The node refused the log query (a capped block range): read these records the
                    # slow way, through the exact blocks their storage names (once per id list).
                    if result.reason != _TOO_MANY_RANGES:
                        self._logs_capped = True
                    if (call.kind, tuple(call.ids)) in fallen:
                        continue
                    fallen.add((call.kind, tuple(call.ids)))
                    if call.kind == "claims":
                        for found in self.registry.claims_of(call.ids).values():
                            for record in found:
                                done[record.record_id] = record
                                claim_roots.append(record.record_id)
                                fresh.append(record.record_id)
                        self.round_trips += 2
                    else:
                        for rid, record in zip(call.ids, self.registry.records(call.ids)):
                            if record is not None:
                                done[rid] = record
                                fresh.append(rid)
                        self.round_trips += 2
                else:
                    if not isinstance(result, list):
                        raise IntegrityError(f"{self._where} answered eth_getLogs with {type(result).__name__}, not a list of logs")
                    for log in result:
                        event = decode_event(log, self._address_bytes, self._where)
                        if event is None:
                            continue
                        rid = event.record_id
                        if call.kind == "claims":
                            if event.content_id not in call.ids:
                                raise IntegrityError(f"{self.registry.chain.rpc_url} answered a claims query with a claim of another content id")
                            if rid not in claim_roots:
                                claim_roots.append(rid)
                        elif rid not in call.ids:
                            continue  # a node that answers more than asked: ignore the extra
                        if rid not in logs:
                            logs[rid] = event
                            fresh.append(rid)
            for rid in claim_roots:
                depth.setdefault(rid, 0)
                if rid not in states and rid not in done and rid not in need_state:
                    need_state.append(rid)
            for rid in fresh:
                record_or_event = done.get(rid) or logs[rid]
                parents, licence = record_or_event.parents, record_or_event.license_id
                licences_wanted.add(licence)
                if not follow:
                    continue
                for parent in parents:
                    if parent not in depth:
                        depth[parent] = depth[rid] + 1
                        need_state.append(parent)
                        need_log.append(parent)
        # Assemble and check every record whose state and event were read.
        out: dict[bytes, Record] = dict(done)
        for rid, event in logs.items():
            state = states.get(rid)
            if state is None:
                raise IntegrityError(
                    f"{self.registry.chain.rpc_url} returned an event for record {to_hex(rid)} that the registry's storage does not hold"
                )
            out[rid] = make_record(rid, state, event, self._where)
        for rid, state in states.items():
            if state is not None and rid not in out:
                raise ChainError(
                    f"{self.registry.chain.rpc_url} returned no RecordPublished event for record {to_hex(rid)} (block {state.block_number}); "
                    "the node may have pruned its logs (use an archive RPC)"
                )
        if follow:
            for rid, record in list(out.items()):
                for parent in record.parents:
                    if parent not in out:
                        raise IntegrityError(f"record {to_hex(rid)} names parent {to_hex(parent)}, which the registry does not hold")
        depth = {rid: d for rid, d in depth.items() if rid in out}
        if return_roots:
            if ids and ids[0] in out:
                roots = [ids[0]]
            else:
                roots = [r for r in claim_roots if r in out]
                roots.sort(key=lambda r: priority_key(out[r]))
            # Roots of a content-id query are at depth 0; everything else is counted from them.
            return depth, out, roots
        return depth, out

    def _log_calls(self, topics: list) -> list[tuple[str, list]]:
        """The ``eth_getLogs`` calls of one filter from the deployment block on: one per log range
        (the last ends at ``latest``); a single :data:`_EXACT` placeholder when the span needs more
        ranges than one batch should carry, or a node has refused log queries already."""
        if self._logs_capped:
            return [(_EXACT, [])]
        deploy, limit = self.registry.deploy_block, self.registry.reader.log_limits.max_range
        ranges: list[tuple[int, Any]] = [(deploy, "latest")]
        if self._head is not None and limit > 0 and self._head - deploy + 1 > limit:
            cut = block_ranges(deploy, self._head, limit)
            if len(cut) > _RANGES_PER_BATCH:
                return [(_EXACT, [])]
            ranges = cut[:-1] + [(cut[-1][0], "latest")]
        encoded = encode_topics(topics)
        return [("eth_getLogs", [{"address": self.registry.address, "fromBlock": hex(low), "toBlock": high if isinstance(high, str) else hex(high),
                                  "topics": encoded}]) for low, high in ranges]

    def _execute(self, calls: list[_Call]) -> list[Any]:
        """Run the calls in ONE round trip where the node batches, else one after the other."""
        if not calls:
            return []
        chain = self.registry.chain
        if self._batching:
            self.round_trips += 1
            answers = self.registry.reader.batch([(c.method, c.params) for c in calls])
            if answers is None:
                # A node without batch support answers one error object: stop batching.
                self._batching = False
                self.round_trips -= 1
                return self._execute(calls)
            out: list[Any] = []
            for call, answer in zip(calls, answers):
                error = answer.get("error") if isinstance(answer, dict) else None
                if error is None and isinstance(answer, dict) and "result" in answer:
                    out.append(answer["result"])
                elif call.method == "eth_getLogs":
                    out.append(_Fallback(str(error)))
                else:
                    message = error.get("message") if isinstance(error, dict) else error
                    raise ChainError(f"{chain.rpc_url} refused {call.method} ({str(message)[:200]}); check the registry address and the node")
            return out
        out = []
        for call in calls:
            self.round_trips += 1
            if call.method == "eth_call":
                tx = call.params[0]
                out.append(chain.eth_call(tx["to"], bytes.fromhex(tx["data"][2:]), what="reading records"))
            elif call.method == "eth_blockNumber":
                out.append(hex(chain.block_number()))
            else:
                try:
                    out.append(chain.get_logs(call.params[0]))
                except LogQueryRefused as exc:
                    out.append(_Fallback(str(exc)))
        return out

    @property
    def _where(self) -> str:
        return self.registry.chain.rpc_url

    def _bytes(self, value: Any, what: str) -> bytes:
        """A call's answer (``0x`` hex from JSON-RPC, bytes in process) as bytes; anything else is refused."""
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        if isinstance(value, str) and value[:2].lower() == "0x" and len(value) % 2 == 0:
            try:
                return bytes.fromhex(value[2:])
            except ValueError:
                pass
        raise IntegrityError(f"{self._where} answered {what} with {str(value)[:60]!r}, not hex data; is this the registry?")

    def _read_licenses(self, ids: list[int]) -> None:
        ids = sorted({i for i in ids if 0 < i < 2**32})
        if not ids:
            return
        data = to_hex(licenses_call(ids))
        [result] = self._execute([_Call("eth_call", [{"to": self.registry.address, "data": data}, "latest"], "licenses", ids)])
        for license_id, (spdx_id, flags) in zip(ids, decode_licenses(self._bytes(result, "licenses()"), len(ids), self._where)):
            if spdx_id:
                self._licenses[license_id] = LicenseTerms(license_id, spdx_id, flags)

    # -- documents ----------------------------------------------------------------------------

    def _parse_recipe(self, document: Any) -> Any:
        if self._recipe_parser is None:
            # Recipes are specified in the compose layer; it is imported only when a composition
            # is met (the elements layer does not otherwise depend on it).
            from ..formats.recipe import parse_recipe

            self._recipe_parser = parse_recipe
        return self._recipe_parser(document)

    def _check_document(self, record: Record, raw: bytes) -> Any:
        rid = to_hex(record.record_id)
        if record.kind == Kind.COMPOSITION:
            data = load_document(raw, f"the recipe {record.cid} of composition {rid}")
            try:
                recipe = self._parse_recipe(data)
            except InputError as exc:
                raise DocumentError(f"the recipe {record.cid} of composition {rid} is not a valid recipe: {exc}") from None
            if recipe.canonical_json() != raw:
                raise DocumentError(f"the recipe {record.cid} of composition {rid} is not in canonical form; it cannot be the published one")
            if not recipe.publishable:
                raise DocumentError(f"the recipe of composition {rid} has inputs without record ids; a published recipe pins every input")
            if recipe.output.content_id and recipe.output.content_id != to_hex(record.content_id):
                raise DocumentError(
                    f"composition {rid} claims content id {to_hex(record.content_id)} but its recipe builds {recipe.output.content_id}"
                )
            parents = set(record.parents)
            for name, ref in recipe.inputs.items():
                if to_bytes32(ref.record) not in parents:
                    raise DocumentError(f"the recipe of composition {rid} uses record {ref.record} (input {name!r}), which is not a parent of the record")
            return recipe
        try:
            manifest = Manifest.from_json(raw, require_canonical=True)
        except ElementsError as exc:
            raise DocumentError(f"the manifest {record.cid} of record {rid} is invalid: {exc}") from None
        if bytes(manifest.content_id) != record.content_id:
            raise DocumentError(
                f"record {rid} claims content id {to_hex(record.content_id)} but its manifest {record.cid} states {manifest.content_id}"
            )
        wanted = {Kind.ELEMENT: "tensors", Kind.ADAPTER: "tensors", Kind.FILE: "file"}.get(record.kind)
        if wanted and manifest.kind != wanted:
            raise DocumentError(f"record {rid} is a {Kind(record.kind).name.lower()} but its manifest is of kind {manifest.kind!r}")
        if manifest.data is None:
            raise DocumentError(f"the manifest of record {rid} names no data CID; it cannot be fetched")
        try:
            split_cid(manifest.data["cid"])
        except InputError:
            raise DocumentError(f"the manifest of record {rid} names data CID {manifest.data['cid']!r}, which is not a CID") from None
        return manifest

    def _attach_documents(self, graph: Graph, strict: bool) -> None:
        records = [n.record for n in graph.nodes.values()]
        remote = self.sources is not None and (getattr(self.sources, "kubo", None) is not None or getattr(self.sources, "gateways", None))

        def one(record: Record):
            try:
                return record.record_id, self.document(record), None
            except (NotFoundError, ServiceError, IntegrityError) as exc:
                if strict:
                    raise
                return record.record_id, None, exc

        if remote and len(records) > 1:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="documents") as pool:
                results = list(pool.map(one, records))
        else:
            results = [one(r) for r in records]
        for rid, document, error in results:
            node = graph.nodes[rid]
            graph.nodes[rid] = ResolvedRecord(
                node.record, node.license, document, node.depth,
                None if error is None else str(error), isinstance(error, IntegrityError),
            )
        # Inputs of every recipe must carry their parent record's content id, and a composition
        # input (kind composition) must be a composition record, an element input must not.
        for node in list(graph.nodes.values()):
            recipe = node.document
            if node.is_composition and recipe is not None:
                for name, ref in recipe.inputs.items():
                    parent = graph.nodes.get(to_bytes32(ref.record))
                    error = None
                    if parent is not None and to_hex(parent.content_id) != ref.content_id:
                        error = DocumentError(
                            f"the recipe of composition {to_hex(node.record_id)} pins input {name!r} to content id {ref.content_id}, "
                            f"but record {ref.record} claims {to_hex(parent.content_id)}"
                        )
                    elif parent is not None and parent.is_composition != (ref.kind == "composition"):
                        error = DocumentError(
                            f"the recipe of composition {to_hex(node.record_id)} uses record {ref.record} (input {name!r}) as "
                            f"{'a composition' if ref.kind == 'composition' else 'an element'}, but it is "
                            + kind_name(parent.record.kind, article=True)
                        )
                    if error is not None:
                        if strict:
                            raise error
                        graph.nodes[node.record_id] = ResolvedRecord(node.record, node.license, None, node.depth, str(error), True)
                        break


class _Fallback:
    """A log query the node refused; the level is read through :meth:`Registry.records`."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


# --------------------------------------------------------------------------------------------
# licences against a whole ancestry


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
    parent_ids = sorted({to_bytes32(p, "parent record id") for p in parents})
    for pid in parent_ids:
        if pid not in graph.nodes:
            raise make_error("UnknownParent", {"parentId": to_hex(pid)})
    names = {}
    for rid, node in graph.nodes.items():
        if node.license is None:
            raise IntegrityError(f"ancestor {to_hex(rid)} has licence {node.record.license_id}, which the registry does not list")
        names[node.license.license_id] = node.license.spdx_id
    names[child.license_id] = child.spdx_id
    carried = inherited_restrictions({rid: (n.record.publisher, n.license, n.record.parents) for rid, n in graph.nodes.items()})
    entries = [(to_hex(pid), graph.nodes[pid].record.publisher, graph.nodes[pid].license, carried[pid]) for pid in parent_ids]
    try:
        check_derivative(publisher, child, entries, names)
    except LicenseViolation as error:
        if error.error.startswith("Inherited"):
            _explain_inherited(error, publisher, child, graph, to_bytes32(error.parent_id), names)
        raise


def _explain_inherited(error: LicenseViolation, publisher: str, child: LicenseTerms, graph: Graph, start: bytes,
                       names: dict[int, str]) -> None:
    """Name, in ``error``, the record of another publisher that a restriction inherited through the
    publisher's own record ``start`` comes from: the nearest one whose terms it breaks and that binds
    the child (a path reaches it through no other record of its own publisher)."""
    share_alike = error.rule == "share-alike"

    def breaks(terms: LicenseTerms) -> bool:
        if share_alike:
            return terms.share_alike and terms.license_id != child.license_id
        return not terms.commercial_use and child.commercial_use

    found: list[list[bytes]] = []
    for owner in {n.record.publisher for n in graph.nodes.values()} - {publisher}:
        frontier, seen = [[start]], set()
        while frontier:
            following = []
            for path in frontier:
                rid = path[-1]
                if rid in seen or rid not in graph.nodes:
                    continue
                seen.add(rid)
                node = graph.nodes[rid]
                if node.record.publisher == owner:
                    if node.license is not None and breaks(node.license):
                        found.append(path)
                    continue  # past it, the owner's own re-licensing governs
                following.extend(path + [p] for p in sorted(node.record.parents))
            frontier = following
    if not found:
        return
    path = min(found, key=lambda f: (len(f), f[-1]))
    node = graph.nodes[path[-1]]
    terms = node.license
    via = " -> ".join(to_hex(p)[:12] + "…" for p in path[:-1])
    explanation = (f"which is share-alike: publish under {terms.spdx_id}, not {child.spdx_id}" if share_alike else
                   f"which is non-commercial, and {child.spdx_id} allows commercial use: choose a non-commercial licence")
    error.args = (
        f"ancestor record {to_hex(path[-1])} (published by {node.record.publisher}, reached through {via}) is under "
        f"{terms.spdx_id} (licence {terms.license_id}: {describe_flags(terms.flags)}), {explanation}",
    )
    error.values.update({"parentId": to_hex(path[-1]), "parentLicenseId": terms.license_id, "ancestorPath": [to_hex(p) for p in path]})
