"""The attribution index: which published elements hold a tensor, by digest and by name.

When no claim matches a whole model, verification needs the candidates for single tensors. The
chain cannot answer "who published a tensor with this digest" (records commit to whole
elements), so the client builds an index from the registry's events and the manifests they
point to, and keeps it under ``$ELEMENTS_HOME/cache``::

    $ELEMENTS_HOME/cache/provenance/
    └── index-<chain id>-<registry address>.sqlite
        meta      (key, value)            format, chain id, registry, genesis hash,
                                          last indexed block and its hash, the
                                          endpoints every indexed block was read from
        records   (record_id UNIQUE, publisher, content_id, kind, license_id, block,
                   log_index, priority_block, cid_codec, cid_digest, yanked, name,
                   role, status, error)
                                          every RecordPublished event; yanked as storage said
                                          when the record was indexed, then set by the
                                          RecordYanked events of later syncs; name the one its
                                          document gives once that is read and checked (NULL:
                                          not known yet); role element | output | file once its
                                          document is read; status pending | indexed | invalid
        parents   (parent_id, record_id)  one row per parent a record names: what builds on a
                                          record (``children``), without a scan of the events
        tensors   (content_id, role, name, dtype, shape, digest)
                                          one row per tensor of each distinct element
                                          (manifest) and composition output (recipe table);
                                          indexed by digest, by name, by content id

``sync()`` reads the events of blocks after the last indexed one (:func:`registry.chain.scan.scan_records`:
within the network's log caps, tens of thousands of records a second from a local node) and
nothing else; ``update()`` syncs, then fetches the documents of new records (and retries earlier failures) in a small thread pool,
and stores their tensor tables, keyed by content id so an element claimed by several publishers
is stored once. If the block at the last indexed height has another hash (a reorg, or a devnet
restarted from scratch) or the genesis differs, the index is rebuilt; so it is when this run
cross-checks an endpoint that did not read every indexed block (an index built through one
endpoint must not bypass the comparison of several, see ``registry.chain.crosscheck``). The in-process chain
(``memory``) gets an in-memory index, as its contents die with the process.

Claims are ranked by priority (``priority_block``, then block and log index: see "Priority and
disputes" in docs/provenance.md), the order the chain's records are shown in; an index of an older
format (``meta.format``) is dropped and rebuilt, as it lacks columns.

The index only proposes candidates. Nothing in it is reported without being re-read: hit
records are read back from the chain (publisher, block, yanked), and the closest composition is
verified like any claim, from its documents.
"""

from __future__ import annotations

import gc
import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ..chain.cids import join_cid
from ..chain.registry import Record, Registry
from ..chain.scan import scan_parts, scan_yanks
from ..digest import ContentId, RecordId
from ..formats.recipe import Recipe
from ..formats.content_id import Manifest, TensorEntry
from ..errors import ElementsError, NotFoundError, ServiceError
from ..records.documents import DocumentError, Documents
from ..records.filters import document_name
from ..records.resolve import Resolver
from .index_hints import INDEX_FORMAT, SQL_CHUNK, IndexHints, endpoint_keys, hints_of, index_path, open_hints

# INDEX_FORMAT, IndexHints, index_path and open_hints are registry.provenance.index_hints' (the
# index read as the resolver's hints, without a sync), named here too: the index's one import path.
__all__ = ["INDEX_FORMAT", "Hit", "ElementIndex", "IndexHints", "index_path", "builds_on", "open_hints", "indexed_records",
           "remember_names"]

_TABLES = ("meta", "records", "parents", "tensors")
_READ_BACK = 2_000  # records read back in one JSON-RPC batch (~2 MB of logs)
_FETCH_THREADS = 8

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    record_id BLOB NOT NULL, publisher TEXT NOT NULL, content_id BLOB NOT NULL, kind INTEGER NOT NULL,
    license_id INTEGER NOT NULL, block INTEGER NOT NULL, log_index INTEGER NOT NULL, priority_block INTEGER NOT NULL,
    cid_codec INTEGER NOT NULL, cid_digest BLOB NOT NULL, yanked INTEGER NOT NULL DEFAULT 0, name TEXT,
    role TEXT, status TEXT NOT NULL DEFAULT 'pending', error TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS records_id ON records (record_id);
CREATE INDEX IF NOT EXISTS records_content ON records (content_id, role);
CREATE INDEX IF NOT EXISTS records_status ON records (status);
CREATE INDEX IF NOT EXISTS records_publisher ON records (publisher, kind);
CREATE INDEX IF NOT EXISTS records_cid ON records (cid_digest);
CREATE INDEX IF NOT EXISTS records_yanked ON records (block, log_index) WHERE yanked;
CREATE TABLE IF NOT EXISTS parents (
    parent_id BLOB NOT NULL, record_id BLOB NOT NULL, PRIMARY KEY (parent_id, record_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tensors (
    content_id BLOB NOT NULL, role TEXT NOT NULL, name TEXT NOT NULL, dtype TEXT NOT NULL, shape TEXT NOT NULL,
    digest BLOB NOT NULL, PRIMARY KEY (content_id, role, name));
CREATE INDEX IF NOT EXISTS tensors_digest ON tensors (digest);
CREATE INDEX IF NOT EXISTS tensors_name ON tensors (name);
"""
# The indexes of ``records``, its record ids' too (a unique index, not a primary key, for that
# reason): a first sync builds them after its inserts, which then append rows in the order they
# come (one sort per index, instead of a random B-tree insert per row and index).
_RECORD_INDEXES = {statement.split(" ON ")[0].split()[-1]: statement.strip() for statement in _SCHEMA.split(";") if " ON records " in statement}


@dataclass(frozen=True)
class Hit:
    """A tensor of a published element (role ``element``) or composition output (``output``)."""

    record_id: RecordId
    publisher: str
    content_id: ContentId
    block: int
    log_index: int
    priority_block: int
    role: str
    name: str
    dtype: str
    shape: tuple[int, ...]
    digest: bytes


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the duration (restored as it was): a sync makes
    millions of acyclic containers (parsed logs, rows), each allocation counts towards a
    collection that walks every live one, which cost more than parsing itself (measured: JSON
    parsing of 100,000 logs 1.05 s with it, 0.40 s without). Reference counting still frees
    everything; the answers it parses are bounded by the byte budgets."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class ElementIndex:
    """The attribution index of one registry (see the module docstring).

    Args:
        registry: the registry whose events are indexed.
        documents: fetches and checks the records' documents (``None``: :meth:`sync` only).
        path: the SQLite file (``None``: in memory, for the in-process chain and tests).
    """

    def __init__(self, registry: Registry, documents: Documents | None, path: Path | None = None) -> None:
        self.registry = registry
        self.documents = documents
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path) if path is not None else ":memory:", check_same_thread=False)
        # Derived data, rebuilt from the chain when lost: a crash may cost the last sync, never the file.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()
        self._lock = threading.Lock()

    def _migrate(self) -> None:
        """Create the tables; an index of another format is dropped first (it is derived data, and
        rebuilding is the one migration that cannot go wrong)."""
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        except sqlite3.OperationalError:
            row = None  # no meta table: a new file
        if row is not None and row[0] != INDEX_FORMAT:
            with self._db:
                for table in _TABLES:
                    self._db.execute(f"DROP TABLE IF EXISTS {table}")
        self._db.executescript(_SCHEMA)

    @classmethod
    def for_home(cls, registry: Registry, documents: Documents | None, home: Path) -> "ElementIndex":
        """The cached index under ``home`` (in memory on the in-process chain)."""
        if registry.chain.is_memory:
            return cls(registry, documents, None)
        return cls(registry, documents, index_path(home, registry.chain.chain_id, registry.address))

    def close(self) -> None:
        self._db.close()

    # -- state -------------------------------------------------------------------------------

    def _meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def state(self) -> dict[str, Any]:
        """What the index holds: last block, record and tensor counts, pending documents."""
        meta = self._meta()

        def count(sql: str) -> int:
            return int(self._db.execute(sql).fetchone()[0])

        return {
            "path": str(self.path) if self.path else None,
            "last_block": int(meta["last_block"]) if "last_block" in meta else None,
            "records": count("SELECT COUNT(*) FROM records"),
            "indexed": count("SELECT COUNT(*) FROM records WHERE status = 'indexed'"),
            "pending": count("SELECT COUNT(*) FROM records WHERE status = 'pending'"),
            "invalid": count("SELECT COUNT(*) FROM records WHERE status = 'invalid'"),
            "tensors": count("SELECT COUNT(*) FROM tensors"),
        }

    def _identity(self) -> dict[str, str]:
        chain = self.registry.chain
        genesis = chain.block_hash(0)
        return {"format": INDEX_FORMAT, "chain_id": str(chain.chain_id), "registry": self.registry.address.lower(),
                "genesis": genesis.hex()}

    def _block_hash(self, number: int) -> str:
        chain = self.registry.chain
        return chain.block_hash(number).hex()

    def _reset(self, identity: dict[str, str]) -> None:
        with self._db:
            self._db.execute("DELETE FROM meta")
            self._db.execute("DELETE FROM records")
            self._db.execute("DELETE FROM parents")
            self._db.execute("DELETE FROM tensors")
            self._db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", identity.items())

    # -- update ------------------------------------------------------------------------------

    def update(self) -> dict[str, Any]:
        """Index the records published since the last update and fetch their documents.

        Returns :meth:`state` plus ``new`` (records read this time) and ``fetched`` (documents
        indexed this time). Documents that cannot be fetched stay pending and are retried next
        time; the block range is committed either way.

        Raises:
            ServiceError / ChainError: the chain is unreachable.
        """
        with self._lock:
            new, _, _ = self._sync()
            fetched = self._fetch_pending()
            return {**self.state(), "new": new, "fetched": fetched}

    def sync(self) -> dict[str, Any]:
        """Read the records of the blocks after the last indexed one (no document is fetched).

        Returns ``new`` (records read) and ``from_block`` / ``to_block`` (the blocks read: only
        those after the last indexed one, unless the index was rebuilt).
        """
        with self._lock:
            new, start, latest = self._sync()
            return {"new": new, "from_block": start, "to_block": latest}

    def _sync(self) -> tuple[int, int, int]:
        """The records of new blocks into ``records`` and ``parents``: (how many, first block, last block)."""
        with _collector_paused():
            return self._sync_blocks()

    def _sync_blocks(self) -> tuple[int, int, int]:
        identity = self._identity()
        meta = self._meta()
        if any(meta.get(k) != v for k, v in identity.items()):
            self._reset(identity)
            meta = self._meta()
        latest = self.registry.chain.block_number()
        last = int(meta["last_block"]) if "last_block" in meta else None
        endpoints = endpoint_keys(self.registry.chain)
        # An index from before endpoints were recorded was read through one endpoint: taken as this one.
        read_by = set(json.loads(meta["endpoints"])) if "endpoints" in meta else (endpoints if len(endpoints) == 1 else set())
        if last is not None and (last > latest or self._block_hash(last) != meta.get("last_hash") or not endpoints <= read_by):
            self._reset(identity)
            last = None
        start = self.registry.deploy_block if last is None else last + 1
        first = self._db.execute("SELECT 1 FROM records LIMIT 1").fetchone() is None
        # A yank is a change of state after publication: a first sync reads it from storage with
        # each record (read after the head block was taken), a later one from the RecordYanked
        # events of its new blocks, which may name records indexed long before.
        yanks = scan_yanks(self.registry.reader, start, latest) if last is not None else []
        seen: set[bytes] = set()
        with self._db:
            if first:
                for name in _RECORD_INDEXES:
                    self._db.execute(f"DROP INDEX IF EXISTS {name}")
            links: list[tuple[bytes, bytes]] = []
            # Each part is stored while the node answers the others.
            for part in scan_parts(self.registry.reader, start, latest):
                fresh = [r for r in part if r.record_id not in seen]  # a node repeating a log across parts
                seen.update(r.record_id for r in fresh)
                # record[:-1] is the row (the parents come last): no tuple is built per record.
                self._db.executemany(
                    "INSERT OR IGNORE INTO records (record_id, content_id, publisher, cid_codec, cid_digest, license_id, kind, block, log_index, "
                    "priority_block, yanked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [r[:-1] for r in fresh])
                links += [(p, r.record_id) for r in fresh if r.parents for p in r.parents]
            # In key order, all at once: the parents table's B-tree is appended to, not split at random.
            links.sort()
            self._db.executemany("INSERT OR IGNORE INTO parents (parent_id, record_id) VALUES (?, ?)", links)
            self._db.executemany("UPDATE records SET yanked = 1 WHERE record_id = ?", [(bytes(rid),) for rid in yanks])
            if first:
                for statement in _RECORD_INDEXES.values():
                    self._db.execute(statement)
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_block', ?)", (str(latest),))
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_hash', ?)", (self._block_hash(latest),))
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('endpoints', ?)", (json.dumps(sorted(endpoints)),))
        return len(seen), start, latest

    def _fetch_pending(self) -> int:
        rows = self._db.execute(
            "SELECT record_id, publisher, content_id, kind, block, log_index, cid_codec, cid_digest FROM records WHERE status = 'pending' "
            "ORDER BY block, log_index"
        ).fetchall()
        if not rows or self.documents is None:
            return 0
        documents = self.documents
        known = {(bytes(c), r) for c, r in self._db.execute("SELECT DISTINCT content_id, role FROM tensors").fetchall()}

        def fetch(row: tuple[Any, ...]) -> tuple[bytes, str, str | None, Any]:
            record_id, publisher, content_id, kind, block, log_index, codec, digest = row
            try:
                cid = join_cid(codec, bytes(digest))
            except ElementsError as exc:  # a codec the registry never accepts: nothing to fetch
                return bytes(record_id), "invalid", str(exc), None
            record = Record(RecordId(record_id), publisher, ContentId(content_id), cid, codec, bytes(digest), 0, kind, (), block, False, b"",
                            log_index)
            try:
                return bytes(record_id), "indexed", None, documents.of(record)
            except DocumentError as exc:
                return bytes(record_id), "invalid", str(exc), None
            except (NotFoundError, ServiceError) as exc:
                return bytes(record_id), "pending", str(exc), None

        with ThreadPoolExecutor(max_workers=_FETCH_THREADS) as pool:
            results = list(pool.map(fetch, rows))
        indexed = 0
        with self._db:
            for (record_id, *_rest), (_, status, error, document) in zip(rows, results):
                content_id = bytes(_rest[1])
                role = None
                if document is not None:
                    role, table = _table_of(document)
                    if (content_id, role) not in known and table:
                        self._db.executemany(
                            "INSERT OR IGNORE INTO tensors (content_id, role, name, dtype, shape, digest) VALUES (?, ?, ?, ?, ?, ?)",
                            [(content_id, role, e.name, e.dtype, json.dumps(list(e.shape)), bytes(e.digest)) for e in table],
                        )
                        known.add((content_id, role))
                    indexed += 1
                name = None if document is None else (document_name(document) or "")
                self._db.execute("UPDATE records SET status = ?, error = ?, role = ?, name = COALESCE(?, name) WHERE record_id = ?",
                                 (status, error, role, name, bytes(record_id)))
        return indexed

    # -- queries -----------------------------------------------------------------------------

    _HIT_SQL = (
        "SELECT r.record_id, r.publisher, r.content_id, r.block, r.log_index, r.priority_block, t.role, t.name, t.dtype, t.shape, t.digest "
        "FROM tensors t JOIN records r ON r.content_id = t.content_id AND r.role = t.role AND r.status = 'indexed' "
    )

    def _hits(self, where: str, values: Sequence[Any]) -> list[Hit]:
        out: list[Hit] = []
        for start in range(0, len(values), SQL_CHUNK):
            part = list(values[start : start + SQL_CHUNK])
            marks = ",".join("?" * len(part))
            rows = self._db.execute(self._HIT_SQL + where.format(marks=marks) + " ORDER BY r.priority_block, r.block, r.log_index", part).fetchall()
            out += [Hit(RecordId(r[0]), r[1], ContentId(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], tuple(json.loads(r[9])), bytes(r[10])) for r in rows]
        return out

    def by_digest(self, digests: Iterable[bytes]) -> dict[bytes, list[Hit]]:
        """Every indexed tensor with one of these digests, earliest claim (by priority) first."""
        out: dict[bytes, list[Hit]] = {}
        for hit in self._hits("WHERE t.digest IN ({marks})", list(dict.fromkeys(bytes(d) for d in digests))):
            out.setdefault(hit.digest, []).append(hit)
        return out

    def by_name(self, names: Iterable[str]) -> dict[str, list[Hit]]:
        """Every indexed tensor with one of these names, earliest claim (by priority) first."""
        out: dict[str, list[Hit]] = {}
        for hit in self._hits("WHERE t.name IN ({marks})", list(dict.fromkeys(names))):
            out.setdefault(hit.name, []).append(hit)
        return out

    def tensors_of(self, record_ids: Iterable[bytes]) -> dict[bytes, list[Hit]]:
        """The whole tensor table of each of these records."""
        out: dict[bytes, list[Hit]] = {}
        for hit in self._hits("WHERE r.record_id IN ({marks})", list(dict.fromkeys(bytes(r) for r in record_ids))):
            out.setdefault(hit.record_id, []).append(hit)
        return out

    def children(self, parent_id: bytes) -> list[bytes]:
        """The records that name ``parent_id`` as a parent (what builds on it), earliest claim
        first: as the index holds them, to be read back from the chain before anything is shown."""
        rows = self._db.execute(
            "SELECT r.record_id FROM parents p JOIN records r ON r.record_id = p.record_id WHERE p.parent_id = ? "
            "ORDER BY r.priority_block, r.block, r.log_index", (bytes(parent_id),)).fetchall()
        return [bytes(row[0]) for row in rows]

    def builds_on(self, parent_id: bytes) -> list[Record]:
        """The records that name ``parent_id`` as a parent, in publication order: the index synced
        (only blocks after its last one are read), its rows read back from the chain."""
        self.sync()
        ids = self.children(parent_id)
        records = self.registry.records(ids) if ids else []
        # The index proposes; the chain decides: a row a tampered cache added is dropped here.
        kept = [r for r in records if r is not None and bytes(parent_id) in {bytes(p) for p in r.parents}]
        return sorted(kept, key=lambda r: (r.block_number, r.log_index))

    def select(self, *, publisher: str | None = None, kind: int | None = None, license_ids: Iterable[int] | None = None,
               yanked: bool | None = None, name: str | None = None) -> list[bytes]:
        """The record ids of a publisher (checksummed), kind, licence ids, yanked or live, and
        name (each ``None``: any), in publication order: as the index holds them, to be read back
        from the chain. A name is text the document's name contains (case-insensitively): a record
        whose name the index does not know yet (its document not read) is selected too."""
        where: list[str] = []
        values: list[Any] = []
        if yanked is not None:
            where.append("yanked" if yanked else "NOT yanked")  # "yanked": the partial index's own term
        if publisher is not None:
            where.append("publisher = ?")
            values.append(publisher)
        if kind is not None:
            where.append("kind = ?")
            values.append(int(kind))
        if license_ids is not None:
            wanted = sorted({int(i) for i in license_ids})
            if not wanted:
                return []
            where.append(f"license_id IN ({','.join('?' * len(wanted))})")
            values += wanted
        sql = "SELECT record_id, name FROM records" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY block, log_index"
        rows = self._db.execute(sql, values).fetchall()
        if name is None:
            return [bytes(row[0]) for row in rows]
        text = name.casefold()
        # '' is a document read without a name: it matches nothing, as in RecordFilter.matches.
        return [bytes(rid) for rid, known in rows if known is None or (known and text in str(known).casefold())]

    def remember_names(self, names: Mapping[bytes, str | None]) -> None:
        """Keep the names checked documents gave (``None``: the document has none), so that a
        later :meth:`select` by name reads back only the records that may match."""
        with self._lock, self._db:
            self._db.executemany("UPDATE records SET name = ? WHERE record_id = ?", [(n or "", bytes(r)) for r, n in names.items()])

    def hints(self) -> "IndexHints | None":
        """Where the indexed records are, for the resolver (:mod:`registry.records.hints`);
        ``None`` before a first sync, or when this run reads through endpoints the index was not
        read from."""
        return hints_of(self._db, self.registry)

    def closest_compositions(self, entries: Iterable[TensorEntry], limit: int = 3) -> list[bytes]:
        """Composition records whose output shares the most (name, digest) pairs with ``entries``.

        Ties go to the smaller output table (fewer tensors the model would lack), then to the
        earlier record.
        """
        wanted = {(e.name, bytes(e.digest)) for e in entries}
        scores: dict[bytes, list[Any]] = {}  # [matching names, tensors, (block, log index), content id]
        for hit in self._hits("WHERE t.digest IN ({marks}) AND t.role = 'output'", list({d for _, d in wanted})):
            score = scores.setdefault(hit.record_id, [0, 0, (hit.priority_block, hit.block, hit.log_index), hit.content_id])
            if (hit.name, hit.digest) in wanted:
                score[0] += 1
            score[1] += 1
        if not scores:
            return []
        sizes = dict(self._db.execute(
            "SELECT content_id, COUNT(*) FROM tensors WHERE role = 'output' GROUP BY content_id").fetchall())
        ranked = sorted(scores.items(), key=lambda item: (-item[1][0], -item[1][1], sizes.get(item[1][3], 0), item[1][2]))
        return [record_id for record_id, _ in ranked[:limit]]


def indexed_records(registry: Registry, home: Path, resolver: Resolver, *, publisher: str | None = None, kind: int | None = None,
                    license_ids: Iterable[int] | None = None, yanked: bool | None = None,
                    name: str | None = None) -> list[Record] | None:
    """The records of a publisher / kind / licence ids / yanked or live (each ``None``: any), in
    publication order, from the index under ``home`` (synced first: only blocks after its last
    one are read) and read back through ``resolver`` (checked, with the index's blocks as hints),
    instead of a scan of the events. Yanked ones are taken from the yanks the index holds; live
    ones are every candidate read back, less what storage says is yanked. With ``name``, the records whose document may give that name
    (:meth:`ElementIndex.select`): the caller still reads each document, and hands the names it
    read to :func:`remember_names`. ``None`` when the index cannot be opened or written (the
    caller then reads the events)."""
    try:
        index = ElementIndex.for_home(registry, None, home)
    except (sqlite3.Error, OSError):
        return None
    try:
        index.sync()
        # Only --yanked narrows by the index's yanks: a live listing must not lose a record to a
        # yank event a node forged (it reads them all back; storage says which are yanked).
        ids = index.select(publisher=publisher, kind=kind, license_ids=license_ids, yanked=True if yanked else None, name=name)
        previous, resolver.hints = resolver.hints, index.hints()
        found: list[Record | None] = []
        try:
            # One JSON-RPC batch per slice: an answer stays far below a node's (and our) size caps.
            for start in range(0, len(ids), _READ_BACK):
                found += resolver.records(ids[start : start + _READ_BACK])
        finally:
            resolver.hints = previous
    except (sqlite3.Error, OSError):
        return None
    finally:
        index.close()
    licences = None if license_ids is None else set(license_ids)
    # The index proposes; the chain decides: a row a tampered cache relabelled, or a record yanked
    # since the sync, is dropped here.
    kept = [r for r in found if r is not None and (publisher is None or r.publisher.lower() == publisher.lower())
            and (kind is None or int(r.kind) == int(kind)) and (licences is None or r.license_id in licences)
            and (yanked is None or bool(r.yanked) == yanked)]
    return sorted(kept, key=lambda r: (r.block_number, r.log_index))


def remember_names(registry: Registry, home: Path, names: Mapping[bytes, str | None]) -> None:
    """:meth:`ElementIndex.remember_names` on the index under ``home``; nothing when it cannot be
    written (the names are only a cache: the next listing reads those documents again)."""
    if not names:
        return
    try:
        index = ElementIndex.for_home(registry, None, home)
    except (sqlite3.Error, OSError):
        return
    try:
        index.remember_names(names)
    except (sqlite3.Error, OSError):
        pass
    finally:
        index.close()


def _table_of(document: Manifest | Recipe) -> tuple[str, list[TensorEntry]]:
    if isinstance(document, Manifest):
        return ("element" if document.kind == "tensors" else "file"), list(document.entries)
    return "output", document.output.entries()


def builds_on(registry: Registry, home: Path, parent_id: bytes) -> list[Record] | None:
    """:meth:`ElementIndex.builds_on` of the index under ``home``; ``None`` when the index cannot
    be opened or written (a locked or damaged file, a read-only home): the caller then reads the
    events instead."""
    try:
        index = ElementIndex.for_home(registry, None, home)
    except (sqlite3.Error, OSError):
        return None
    try:
        return index.builds_on(parent_id)
    except (sqlite3.Error, OSError):
        return None
    finally:
        index.close()
