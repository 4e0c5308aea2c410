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

The graph it returns is :mod:`registry.records.graph`; the check of a document against its record
is :func:`registry.records.documents.check_record_document`; a new child's licence against a
whole ancestry is :func:`registry.records.licensing.check_license_against_ancestors`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from ..chain.cids import split_cid
from ..chain.errors import LogQueryRefusedError, RecordNotFoundError, RpcResponseError
from ..chain.licenses import LicenseTerms
from ..chain.logs import block_ranges
from ..chain.reader import (
    RECORD_PUBLISHED_TOPIC,
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
)
from ..chain.registry import Registry
from ..digest import ContentId, RecordId, parse_bytes32, parse_content_id, parse_record_id, to_hex
from ..errors import ChainError, InputError, IntegrityError, NotFoundError, ServiceError
from ..formats.content_id import Manifest
from ..formats.recipe import Recipe, parse_recipe
from ..storage.fetch import Sources
from .disputes import Dispute, earliest_first, find_disputes, priority_key
from .documents import DocumentError, check_record_document, fetch_document
from .graph import Graph, ResolvedRecord
from .hints import BlockHints, hinted_ranges

__all__ = ["LICENSE_WINDOW", "Resolver", "HashNotFoundError", "parse_hash"]

#: Licence term sets read speculatively in the first batch (ids are dense from 1; 14 are built in).
LICENSE_WINDOW = 64
_IDS_PER_CALL = 256
_RANGES_PER_BATCH = 8  # log queries of one id list in one batch; a registry spanning more reads exact blocks
_EXACT = "exact blocks"  # a log call not sent: its records are read through the exact blocks
_TOO_MANY_RANGES = "the registry spans more log ranges than one batch holds"


class HashNotFoundError(NotFoundError):
    """No record, claim or document on this chain has the hash asked for."""


def parse_hash(text: str) -> tuple[str, bytes]:
    """Classify a hash: ``("id", 32 bytes)`` for a ``0x`` + 64 hex id (record or content id), or
    ``("cid", codec byte + digest)`` for a CID.

    Raises:
        InputError: neither.
    """
    value = str(text).strip()
    if value[:2].lower() == "0x" or (len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)):
        return "id", parse_bytes32(value, "record id or content id")
    try:
        codec, digest = split_cid(value)
    except InputError:
        shown = repr(value) if len(value) <= 80 else repr(value[:70]) + "…"
        raise InputError(
            f"{shown} is not a hash: give a record id or a content id (0x + 64 hex) or a CID (bafy…, Qm…)"
        ) from None
    return "cid", bytes([codec]) + digest


# --------------------------------------------------------------------------------------------
# the resolver


@dataclass
class _Call:
    method: str
    params: list[Any]
    kind: str  # "states" | "logs" | "claims" | "licenses"
    ids: list[Any] = field(default_factory=list)  # record or content ids (bytes); licence ids (int) for "licenses"


class Resolver:
    """Reads records, claims and record graphs from a registry, and their documents from sources.

    Args:
        registry: a :class:`Registry` (read-only is enough).
        sources: a :class:`registry.storage.fetch.Sources` for documents (``None``: chain only).
        recipe_parser: turns a recipe document (dict) into a Recipe (default:
            :func:`registry.formats.recipe.parse_recipe`).
        workers: parallel document fetches when remote sources are configured.
    """

    def __init__(self, registry: Registry, sources: Sources | None = None, *, recipe_parser: Callable[[Any], Recipe] | None = None,
                 workers: int = 4, hints: BlockHints | None = None) -> None:
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
        self._hints = hints
        self._hints_checked = False

    # -- public API ---------------------------------------------------------------------------

    @property
    def hints(self) -> BlockHints | None:
        """Where records are (a synced attribution index): narrows log queries, never decides
        (:mod:`registry.records.hints`); dropped when the chain no longer has their last block."""
        return self._hints

    @hints.setter
    def hints(self, hints: BlockHints | None) -> None:
        self._hints, self._hints_checked = hints, False

    def claims(self, content_id: Any) -> list[Record]:
        """Every claim of a content id, earliest first (empty when none)."""
        cid = parse_content_id(content_id)
        records = self._run_levels([], claims_of=[cid], follow=False)[1]
        return earliest_first(r for r in records.values() if r.content_id == cid)

    def claims_of(self, content_ids: Iterable[Any]) -> dict[ContentId, list[Record]]:
        """Every claim of several content ids, each list earliest first (an empty list for an id
        nothing claims): two round trips, the logs (one query per 256 ids) then the records'
        storage, every event re-hashed to its id."""
        ids = list(dict.fromkeys(parse_content_id(c) for c in content_ids))
        if not ids:
            return {}
        records = self._run_levels([], claims_of=ids, follow=False)[1]
        out: dict[ContentId, list[Record]] = {cid: [] for cid in ids}
        for record in records.values():
            if record.content_id in out:
                out[record.content_id].append(record)
        return {cid: earliest_first(found) for cid, found in out.items()}

    def disputes(self, records: Iterable[Record]) -> dict[RecordId, list[Dispute]]:
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
        ids = [parse_record_id(r) for r in record_ids]
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
                f"no record {to_hex(parse_bytes32(record_id, 'id'))} on {self.registry.chain.name} at {self.registry.address}; "
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
            HashNotFoundError: none.
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
            HashNotFoundError, RecordNotFoundError: nothing has that hash / an id is unknown.
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
        nodes = {r.record_id: ResolvedRecord(r, self._licenses.get(r.license_id), None, depth[rid]) for rid, r in records.items()}
        graph = Graph(
            query if isinstance(query, str) else ",".join(to_hex(parse_bytes32(q, "id")) for q in ([query] if isinstance(query, bytes) else query)),
            [records[rid].record_id for rid in roots], nodes, 0, self.registry.chain.chain_id, self.registry.address,
        )
        if documents:
            self._attach_documents(graph, strict)
        graph.round_trips = self.round_trips - start
        return graph

    def need_sources(self, what: str) -> Sources:
        """The sources, for a job that cannot run on the chain alone (``what`` names it)."""
        if self.sources is None:
            raise NotFoundError(f"{what} needs a block store or IPFS sources; this resolver reads the chain only")
        return self.sources

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

    def _roots(self, query: str | bytes | Sequence[Any], *, follow: bool,
               yanked: bool = True) -> tuple[list[bytes], dict[bytes, Record], dict[bytes, int]]:
        if isinstance(query, (list, tuple)):
            asked: list[bytes] = [parse_record_id(q) for q in query]
            if not asked:
                raise InputError("no record ids to resolve")
            depth, records, _ = self._run_levels(asked, follow=follow)
            for rid in asked:
                if rid not in records:
                    raise RecordNotFoundError(
                        f"no record {to_hex(rid)} on {self.registry.chain.name} at {self.registry.address}; check the id and the network"
                    )
            return list(dict.fromkeys(asked)), records, depth
        if isinstance(query, (bytes, bytearray)):
            kind, value = "id", bytes(query)
        else:
            text = str(query)  # parse_hash reads str() of anything else, and refuses it
            kind, value = parse_hash(text)
        if kind == "cid":
            matching = self._records_with_cid(value)
            if not matching:
                raise HashNotFoundError(
                    f"no record on {self.registry.chain.name} has CID {text}; check the CID and the network "
                    "(`elements ls` lists the records)"
                )
            ids: list[bytes] = [r.record_id for r in earliest_first(matching)]
            depth, records, _ = self._run_levels(ids, follow=follow)
            return ids, records, depth
        depth, records, roots = self._run_levels([value], claims_of=[value], follow=follow)
        if not roots:
            raise HashNotFoundError(
                f"no record and no claim has hash {to_hex(value)} on {self.registry.chain.name} at {self.registry.address}; "
                "check the hash and the network (`elements ls` lists the records; `elements id PATH` gives a file's content id)"
            )
        if not yanked and len(roots) > 1:
            live = [r for r in roots if not records[r].yanked]
            roots = live or roots
        return roots, records, depth

    def _records_with_cid(self, value: bytes) -> list[Record]:
        """The records whose document is this CID (codec byte + digest): from the hints up to
        their last block and the events after it, each read back and checked; else a scan of
        every event."""
        hints = self._usable_hints()
        if hints is not None:
            reader = self.registry.reader
            ids = hints.records_with_cid(value[0], value[1:])
            tail = reader.events(reader.logs([RECORD_PUBLISHED_TOPIC], hints.last_block + 1))
            self.round_trips += 2
            ids += [e.record_id for e in tail if bytes([e.cid_codec]) + e.cid_digest == value]
            found = self._run_levels(list(dict.fromkeys(ids)), follow=False)[1] if ids else {}
            if self.hints is not None:  # still trusted after the first batch's check of the last block
                return [r for r in found.values() if bytes([r.cid_codec]) + r.cid_digest == value]
        self.round_trips += 2
        return [r for r in self.registry.all_records() if bytes([r.cid_codec]) + r.cid_digest == value]

    def _usable_hints(self) -> BlockHints | None:
        """The hints, where they can narrow queries: a batching node that has not refused a log query."""
        return self.hints if self.hints is not None and self._batching and not self._logs_capped else None

    def _run_levels(self, ids: Sequence[bytes], *, claims_of: Sequence[bytes] | None = None,
                    follow: bool = True) -> tuple[dict[bytes, int], dict[bytes, Record], list[bytes]]:
        """Read records level by level; returns ``(depth, records, roots)``; read again over the
        whole range when the hints turn out to be of another chain (see :meth:`_read_levels`)."""
        read = self._read_levels(ids, claims_of=claims_of, follow=follow)
        if read is None:  # the hints are of another chain: dropped, read again without them
            self.hints = None
            read = self._read_levels(ids, claims_of=claims_of, follow=follow)
        assert read is not None  # without hints nothing is stale
        return read

    def _read_levels(self, ids: Sequence[bytes], *, claims_of: Sequence[bytes] | None = None,
                     follow: bool = True) -> tuple[dict[bytes, int], dict[bytes, Record], list[bytes]] | None:
        """Read records level by level; returns ``(depth, records, roots)``, or ``None`` when the
        hints turn out to be of another chain (the first batch checks their last block).

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
            hinted: set[bytes] = set()  # record ids asked for through hinted ranges
            calls += self._id_log_calls("logs", need_log, hinted)
            calls += self._id_log_calls("claims", list(claims_of or ()), hinted)
            if first and self._batching and self._head is None:
                calls.append(_Call("eth_blockNumber", [], "head"))
            hints = self._usable_hints()
            if hints is not None and not self._hints_checked:
                # First: a stale index is dropped before any answer is read.
                calls.insert(0, _Call("eth_getBlockByNumber", [hex(hints.last_block), False], "hint-check"))
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
            fallen: set[tuple[str, tuple[bytes, ...]]] = set()
            claims_of = None
            need_state, need_log = [], []
            fresh: list[bytes] = []
            for call, result in zip(calls, results):
                if call.kind == "states":
                    for rid, row in zip(call.ids, decode_states(self._bytes(result, "records()"), len(call.ids), self._where)):
                        states[rid] = row if row.exists else None
                elif call.kind == "hint-check":
                    expected = "0x" + bytes(hints.last_hash).hex() if hints is not None else None
                    if not isinstance(result, dict) or str(result.get("hash", "")).lower() != expected:
                        return None
                    self._hints_checked = True
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
                        for rid, read in zip(call.ids, self.registry.records(call.ids)):
                            if read is not None:
                                done[rid] = read
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
            # A record that exists but whose event the hinted ranges missed (an index that lies or
            # lost rows): read through the exact blocks its storage names.
            lost = [rid for rid in hinted if states.get(rid) is not None and rid not in logs and rid not in done]
            if lost:
                for rid, read in zip(lost, self.registry.records(lost)):
                    if read is not None:
                        done[rid] = read
                        fresh.append(rid)
                self.round_trips += 2
            for rid in claim_roots:
                depth.setdefault(rid, 0)
                if rid not in states and rid not in done and rid not in need_state:
                    need_state.append(rid)
            for rid in fresh:
                record_or_event: Record | RecordEvent = done.get(rid) or logs[rid]
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
        if ids and ids[0] in out:
            roots = [ids[0]]
        else:
            roots = [r for r in claim_roots if r in out]
            roots.sort(key=lambda r: priority_key(out[r]))
        # Roots of a content-id query are at depth 0; everything else is counted from them.
        return depth, out, roots

    def _id_log_calls(self, kind: str, ids: list[bytes], hinted: set[bytes]) -> list[_Call]:
        """The log queries of a level's record ids (``logs``) or content ids (``claims``): over
        the whole range, or with hints, one per range of the blocks the hints name plus one from
        the hints' last block on (for ids they do not know, and every newer claim)."""
        def topics(part: list[bytes]) -> list[Any]:
            return [RECORD_PUBLISHED_TOPIC, part] if kind == "logs" else [RECORD_PUBLISHED_TOPIC, None, part]

        hints = self._usable_hints()
        calls: list[_Call] = []
        if hints is None or not ids:
            for start in range(0, len(ids), _IDS_PER_CALL):
                part = ids[start : start + _IDS_PER_CALL]
                calls += [_Call(m, p, kind, part) for m, p in self._log_calls(topics(part))]
            return calls
        if kind == "logs":
            blocks_of = {rid: [block] for rid, block in hints.record_blocks(ids).items() if block <= hints.last_block}
            tail = [rid for rid in ids if rid not in blocks_of]
            hinted.update(ids)
        else:
            blocks_of = {cid: [b for b in found if b <= hints.last_block] for cid, found in hints.claim_blocks(ids).items()}
            tail = ids
        address = self.registry.address
        for low, high, known in hinted_ranges(blocks_of, self.registry.reader.log_limits.max_range):
            for start in range(0, len(known), _IDS_PER_CALL):
                part = known[start : start + _IDS_PER_CALL]
                calls.append(_Call("eth_getLogs", [{"address": address, "fromBlock": hex(low), "toBlock": hex(high),
                                                    "topics": encode_topics(topics(part))}], kind, part))
        for start in range(0, len(tail), _IDS_PER_CALL):
            part = tail[start : start + _IDS_PER_CALL]
            calls += [_Call(m, p, kind, part) for m, p in self._log_calls(topics(part), hints.last_block)]
        return calls

    def _log_calls(self, topics: list[Any], start: int | None = None) -> list[tuple[str, list[Any]]]:
        """The ``eth_getLogs`` calls of one filter from the deployment block (or ``start``) on: one
        per log range (the last ends at ``latest``); a single :data:`_EXACT` placeholder when the
        span needs more ranges than one batch should carry, or a node has refused log queries already."""
        if self._logs_capped:
            return [(_EXACT, [])]
        deploy, limit = self.registry.deploy_block if start is None else start, self.registry.reader.log_limits.max_range
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
            elif call.method == "eth_getBlockByNumber":  # the hints' check, on a node that stopped batching
                try:
                    out.append({"hash": "0x" + chain.block_hash(int(call.params[0], 16)).hex()})
                except RpcResponseError:
                    out.append(None)  # no such block: the hints are of another chain
            else:
                try:
                    out.append(chain.get_logs(call.params[0]))
                except LogQueryRefusedError as exc:
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

    def _parse_recipe(self, document: Any) -> Recipe:
        return (self._recipe_parser or parse_recipe)(document)

    def _check_document(self, record: Record, raw: bytes) -> Manifest | Recipe:
        return check_record_document(record, raw, self._parse_recipe)

    def _attach_documents(self, graph: Graph, strict: bool) -> None:
        records = [n.record for n in graph.nodes.values()]
        remote = self.sources is not None and (getattr(self.sources, "kubo", None) is not None or getattr(self.sources, "gateways", None))

        def one(record: Record) -> tuple[RecordId, Manifest | Recipe | None, Exception | None]:
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
                    parent = graph.nodes.get(parse_record_id(ref.record, "id"))
                    error = None
                    if parent is not None and parent.content_id != parse_content_id(ref.content_id):
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
