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

The batched reading of each level is :mod:`registry.records.levels`; the graph it returns is
:mod:`registry.records.graph`; the check of a document against its record
is :func:`registry.records.documents.check_record_document`; a new child's licence against a
whole ancestry is :func:`registry.records.licensing.check_license_against_ancestors`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Sequence

from ..chain.cids import split_cid
from ..chain.errors import RecordNotFoundError
from ..chain.licenses import LicenseTerms
from ..chain.reader import RECORD_PUBLISHED_TOPIC, Record, kind_name
from ..chain.registry import Registry
from ..digest import ContentId, RecordId, parse_bytes32, parse_content_id, parse_record_id, to_hex
from ..errors import InputError, IntegrityError, NotFoundError, ServiceError
from ..formats.content_id import Manifest
from ..formats.recipe import Recipe, parse_recipe
from ..storage.fetch import Sources
from .disputes import Dispute, earliest_first, find_disputes
from .documents import DocumentError, check_record_document, fetch_document
from .graph import Graph, ResolvedRecord
from .hints import BlockHints
from .levels import LICENSE_WINDOW, LevelReader

__all__ = ["LICENSE_WINDOW", "Resolver", "HashNotFoundError", "parse_hash"]


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


class Resolver(LevelReader):
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
        super().__init__(registry, hints)
        self.sources = sources
        self._recipe_parser = recipe_parser
        self.workers = workers
        self._documents: dict[bytes, Any] = {}

    # -- public API ---------------------------------------------------------------------------

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
