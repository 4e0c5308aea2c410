"""The attribution index read as block hints (:class:`IndexHints`, the
:class:`registry.records.hints.BlockHints` the resolver asks), and where an index lives.

An index (:mod:`registry.provenance.index`, which builds and queries it) records the block of
every record it has synced; the resolver can ask each log query for just those blocks. The
hints are read from an index as it stands: :func:`open_hints` opens the file read-only, never
syncs or creates it, and gives nothing when the index is of another format, registry or chain,
or was read through other endpoints than this run's (it must not bypass their comparison, see
``registry.chain.crosscheck``).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Sequence

from ..chain.registry import Registry

__all__ = ["INDEX_FORMAT", "SQL_CHUNK", "IndexHints", "endpoint_keys", "hints_of", "index_path", "open_hints"]

INDEX_FORMAT = "elements.provenance-index/4"
#: Keys asked for in one ``IN (...)`` query (SQLite's bound on parameters is far above).
SQL_CHUNK = 500


def endpoint_keys(chain: Any) -> set[str]:
    """The endpoints a chain reads from, as short hashes (a URL may hold an API key)."""
    import hashlib

    return {hashlib.sha256(url.encode()).hexdigest()[:16] for url in chain.endpoints}


def index_path(home: Path, chain_id: int, registry_address: str) -> Path:
    """Where the index of one registry lives under ``ELEMENTS_HOME``."""
    return home / "cache" / "provenance" / f"index-{chain_id}-{registry_address.lower()}.sqlite"


class IndexHints:
    """:class:`registry.records.hints.BlockHints` read from an index's ``records`` table."""

    def __init__(self, db: sqlite3.Connection, last_block: int, last_hash: bytes, *, owned: bool = False) -> None:
        self._db = db
        self._owned = owned
        self.last_block = last_block
        self.last_hash = last_hash

    def close(self) -> None:
        """Close the connection these hints opened (one borrowed from an index stays open)."""
        if self._owned:
            self._db.close()

    def _pairs(self, column: str, keys: Sequence[bytes]) -> list[tuple[bytes, int]]:
        out: list[tuple[bytes, int]] = []
        unique = list(dict.fromkeys(bytes(k) for k in keys))
        for start in range(0, len(unique), SQL_CHUNK):
            part = unique[start : start + SQL_CHUNK]
            sql = f"SELECT {column}, block FROM records WHERE {column} IN ({','.join('?' * len(part))})"
            out += [(bytes(key), int(block)) for key, block in self._db.execute(sql, part).fetchall()]
        return out

    def record_blocks(self, record_ids: Sequence[bytes]) -> dict[bytes, int]:
        return dict(self._pairs("record_id", record_ids))

    def claim_blocks(self, content_ids: Sequence[bytes]) -> dict[bytes, list[int]]:
        out: dict[bytes, list[int]] = {}
        for content_id, block in self._pairs("content_id", content_ids):
            out.setdefault(content_id, []).append(block)
        return out

    def records_with_cid(self, codec: int, digest: bytes) -> list[bytes]:
        rows = self._db.execute("SELECT record_id FROM records WHERE cid_digest = ? AND cid_codec = ? ORDER BY block, log_index",
                                (bytes(digest), int(codec))).fetchall()
        return [bytes(row[0]) for row in rows]


def open_hints(registry: Registry, home: Path) -> IndexHints | None:
    """The hints of the index under ``home`` as it stands (not synced, never created: a
    read-only look), or ``None`` when there is none or it cannot be read."""
    if registry.chain.is_memory:
        return None
    path = index_path(home, registry.chain.chain_id, registry.address)
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
    except (sqlite3.Error, OSError, ValueError):
        return None
    try:
        hints = hints_of(db, registry, owned=True)
    except (sqlite3.Error, ValueError):
        hints = None
    if hints is None:
        db.close()
    return hints


def hints_of(db: sqlite3.Connection, registry: Registry, *, owned: bool = False) -> IndexHints | None:
    """The hints of an index's database, or ``None`` when they would not be this run's (see the module docstring)."""
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    if "last_block" not in meta or "last_hash" not in meta or meta.get("format") != INDEX_FORMAT:
        return None
    if meta.get("registry") != registry.address.lower() or meta.get("chain_id") != str(registry.chain.chain_id):
        return None
    if not endpoint_keys(registry.chain) <= set(json.loads(meta.get("endpoints", "[]"))):
        return None  # read through other endpoints than this run's: it must not bypass their comparison
    return IndexHints(db, int(meta["last_block"]), bytes.fromhex(meta["last_hash"]), owned=owned)
