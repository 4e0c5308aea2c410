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
        records   (record_id PK, publisher, content_id, kind, block, log_index, cid,
                   role, status, error)   every RecordPublished event; role element | output |
                                          file once its document is read; status pending |
                                          indexed | invalid
        tensors   (content_id, role, name, dtype, shape, digest)
                                          one row per tensor of each distinct element
                                          (manifest) and composition output (recipe table);
                                          indexed by digest, by name, by content id

``update()`` reads the events of blocks after the last indexed one (``Registry.records_between``),
fetches the documents of new records (and retries earlier failures) in a small thread pool,
and stores their tensor tables, keyed by content id so an element claimed by several publishers
is stored once. If the block at the last indexed height has another hash (a reorg, or a devnet
restarted from scratch) or the genesis differs, the index is rebuilt; so it is when this run
cross-checks an endpoint that did not read every indexed block (an index built through one
endpoint must not bypass the comparison of several, see ``registry.chain.crosscheck``). The in-process chain
(``memory``) gets an in-memory index, as its contents die with the process.

The index only proposes candidates. Nothing in it is reported without being re-read: hit
records are read back from the chain (publisher, block, yanked), and the closest composition is
verified like any claim, from its documents.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..chain.registry import Record, Registry
from ..formats.recipe import Recipe
from ..formats.content_id import Manifest, TensorEntry
from ..errors import NotFoundError, ServiceError
from ..records.documents import DocumentError, Documents

__all__ = ["INDEX_FORMAT", "Hit", "ElementIndex", "index_path"]

INDEX_FORMAT = "elements.provenance-index/1"
_CHUNK = 500
_FETCH_THREADS = 8

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    record_id BLOB PRIMARY KEY, publisher TEXT NOT NULL, content_id BLOB NOT NULL, kind INTEGER NOT NULL,
    block INTEGER NOT NULL, log_index INTEGER NOT NULL, cid TEXT NOT NULL,
    role TEXT, status TEXT NOT NULL DEFAULT 'pending', error TEXT);
CREATE INDEX IF NOT EXISTS records_content ON records (content_id, role);
CREATE INDEX IF NOT EXISTS records_status ON records (status);
CREATE TABLE IF NOT EXISTS tensors (
    content_id BLOB NOT NULL, role TEXT NOT NULL, name TEXT NOT NULL, dtype TEXT NOT NULL, shape TEXT NOT NULL,
    digest BLOB NOT NULL, PRIMARY KEY (content_id, role, name));
CREATE INDEX IF NOT EXISTS tensors_digest ON tensors (digest);
CREATE INDEX IF NOT EXISTS tensors_name ON tensors (name);
"""


@dataclass(frozen=True)
class Hit:
    """A tensor of a published element (role ``element``) or composition output (``output``)."""

    record_id: bytes
    publisher: str
    content_id: bytes
    block: int
    log_index: int
    role: str
    name: str
    dtype: str
    shape: tuple[int, ...]
    digest: bytes


def _endpoint_keys(chain: Any) -> set[str]:
    """The endpoints a chain reads from, as short hashes (a URL may hold an API key)."""
    import hashlib

    return {hashlib.sha256(url.encode()).hexdigest()[:16] for url in chain.endpoints}


def index_path(home: Path, chain_id: int, registry_address: str) -> Path:
    """Where the index of one registry lives under ``ELEMENTS_HOME``."""
    return home / "cache" / "provenance" / f"index-{chain_id}-{registry_address.lower()}.sqlite"


class ElementIndex:
    """The attribution index of one registry (see the module docstring).

    Args:
        registry: the registry whose events are indexed.
        documents: fetches and checks the records' documents.
        path: the SQLite file (``None``: in memory, for the in-process chain and tests).
    """

    def __init__(self, registry: Registry, documents: Documents, path: Path | None = None) -> None:
        self.registry = registry
        self.documents = documents
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path) if path is not None else ":memory:", check_same_thread=False)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    @classmethod
    def for_home(cls, registry: Registry, documents: Documents, home: Path) -> "ElementIndex":
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
            identity = self._identity()
            meta = self._meta()
            if any(meta.get(k) != v for k, v in identity.items()):
                self._reset(identity)
                meta = self._meta()
            latest = self.registry.chain.block_number()
            last = int(meta["last_block"]) if "last_block" in meta else None
            endpoints = _endpoint_keys(self.registry.chain)
            # An index from before endpoints were recorded was read through one endpoint: taken as this one.
            read_by = set(json.loads(meta["endpoints"])) if "endpoints" in meta else (endpoints if len(endpoints) == 1 else set())
            if last is not None and (last > latest or self._block_hash(last) != meta.get("last_hash") or not endpoints <= read_by):
                self._reset(identity)
                last = None
            start = self.registry.deploy_block if last is None else last + 1
            new: list[Record] = self.registry.records_between(start, latest) if start <= latest else []
            with self._db:
                self._db.executemany(
                    "INSERT OR IGNORE INTO records (record_id, publisher, content_id, kind, block, log_index, cid) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(r.record_id, r.publisher, r.content_id, int(r.kind), r.block_number, r.log_index, r.cid) for r in new],
                )
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_block', ?)", (str(latest),))
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_hash', ?)", (self._block_hash(latest),))
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('endpoints', ?)", (json.dumps(sorted(endpoints)),))
            fetched = self._fetch_pending()
            return {**self.state(), "new": len(new), "fetched": fetched}

    def _fetch_pending(self) -> int:
        rows = self._db.execute(
            "SELECT record_id, publisher, content_id, kind, block, log_index, cid FROM records WHERE status = 'pending' ORDER BY block, log_index"
        ).fetchall()
        if not rows:
            return 0
        known = {(bytes(c), r) for c, r in self._db.execute("SELECT DISTINCT content_id, role FROM tensors").fetchall()}

        def fetch(row: tuple[Any, ...]) -> tuple[bytes, str, str | None, Any]:
            record_id, publisher, content_id, kind, block, log_index, cid = row
            record = Record(bytes(record_id), publisher, bytes(content_id), cid, 0, b"", 0, kind, (), block, False, b"", log_index)
            try:
                return bytes(record_id), "indexed", None, self.documents.of(record)
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
                self._db.execute("UPDATE records SET status = ?, error = ?, role = ? WHERE record_id = ?",
                                 (status, error, role, bytes(record_id)))
        return indexed

    # -- queries -----------------------------------------------------------------------------

    _HIT_SQL = (
        "SELECT r.record_id, r.publisher, r.content_id, r.block, r.log_index, t.role, t.name, t.dtype, t.shape, t.digest "
        "FROM tensors t JOIN records r ON r.content_id = t.content_id AND r.role = t.role AND r.status = 'indexed' "
    )

    def _hits(self, where: str, values: Sequence[Any]) -> list[Hit]:
        out: list[Hit] = []
        for start in range(0, len(values), _CHUNK):
            part = list(values[start : start + _CHUNK])
            marks = ",".join("?" * len(part))
            rows = self._db.execute(self._HIT_SQL + where.format(marks=marks) + " ORDER BY r.block, r.log_index", part).fetchall()
            out += [Hit(bytes(r[0]), r[1], bytes(r[2]), r[3], r[4], r[5], r[6], r[7], tuple(json.loads(r[8])), bytes(r[9])) for r in rows]
        return out

    def by_digest(self, digests: Iterable[bytes]) -> dict[bytes, list[Hit]]:
        """Every indexed tensor with one of these digests, earliest record first."""
        out: dict[bytes, list[Hit]] = {}
        for hit in self._hits("WHERE t.digest IN ({marks})", list(dict.fromkeys(bytes(d) for d in digests))):
            out.setdefault(hit.digest, []).append(hit)
        return out

    def by_name(self, names: Iterable[str]) -> dict[str, list[Hit]]:
        """Every indexed tensor with one of these names, earliest record first."""
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

    def closest_compositions(self, entries: Iterable[TensorEntry], limit: int = 3) -> list[bytes]:
        """Composition records whose output shares the most (name, digest) pairs with ``entries``.

        Ties go to the smaller output table (fewer tensors the model would lack), then to the
        earlier record.
        """
        wanted = {(e.name, bytes(e.digest)) for e in entries}
        scores: dict[bytes, list[Any]] = {}  # [matching names, tensors, (block, log index), content id]
        for hit in self._hits("WHERE t.digest IN ({marks}) AND t.role = 'output'", list({d for _, d in wanted})):
            score = scores.setdefault(hit.record_id, [0, 0, (hit.block, hit.log_index), hit.content_id])
            if (hit.name, hit.digest) in wanted:
                score[0] += 1
            score[1] += 1
        if not scores:
            return []
        sizes = dict(self._db.execute(
            "SELECT content_id, COUNT(*) FROM tensors WHERE role = 'output' GROUP BY content_id").fetchall())
        ranked = sorted(scores.items(), key=lambda item: (-item[1][0], -item[1][1], sizes.get(item[1][3], 0), item[1][2]))
        return [record_id for record_id, _ in ranked[:limit]]


def _table_of(document: Manifest | Recipe) -> tuple[str, list[TensorEntry]]:
    if isinstance(document, Manifest):
        return ("element" if document.kind == "tensors" else "file"), list(document.entries)
    return "output", document.output.entries()
