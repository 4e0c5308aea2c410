"""What the block store must keep: pins and recent assemblies, noted under ``$ELEMENTS_HOME``.

``elements gc`` removes blocks that nothing needs. Besides the records the user published (read
from the chain by the CLI), two kinds of roots are kept locally, one small file each, written
atomically (a temporary name, then a rename), so a crash leaves a whole note or none::

    $ELEMENTS_HOME/
    ├── pins/<cid>                      a DAG the user pinned (``elements cache --pin CID``)
    └── assemblies/<record id>.json     {"record", "content_id", "out", "time", "cids": [...]}

An assembly note names every document and data DAG the assembly read; ``gc`` keeps them while
the note is recent (``--keep-days``), so assembling a model twice in a week fetches nothing twice.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import InputError
from ..files import atomic_write
from ..limits import CONFIG_BYTES, LimitExceededError, NotJSONError, loads_json
from .cid import CID
from .errors import CIDError

__all__ = ["AssemblyNote", "note_assembly", "assemblies", "pin", "unpin", "pins", "PINS", "ASSEMBLIES"]

PINS = "pins"
ASSEMBLIES = "assemblies"


@dataclass(frozen=True)
class AssemblyNote:
    """One noted assembly: the record built, where, when, and the DAGs it read."""

    record: str
    content_id: str
    out: str
    time: float
    cids: tuple[str, ...]
    path: Path

    def to_json(self) -> dict:
        return {"record": self.record, "content_id": self.content_id, "out": self.out, "time": self.time,
                "cids": list(self.cids)}


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)


def note_assembly(home: Path, record: str, content_id: str, out: str | os.PathLike, cids: Iterable[str],
                  now: float | None = None) -> Path:
    """Note that ``record`` was assembled into ``out`` from the DAGs ``cids`` (for ``elements gc``)."""
    name = record.lower().removeprefix("0x")
    if not name or any(c not in "0123456789abcdef" for c in name):
        raise InputError(f"record id {record!r} is not hex")
    note = {"record": record, "content_id": content_id, "out": str(Path(out).resolve()),
            "time": time.time() if now is None else now, "cids": sorted(set(cids))}
    path = Path(home) / ASSEMBLIES / f"{name}.json"
    _write_atomic(path, (json.dumps(note, sort_keys=True) + "\n").encode())
    return path


def assemblies(home: Path) -> list[AssemblyNote]:
    """Every readable assembly note, newest first (an unreadable one is skipped: it keeps nothing)."""
    directory = Path(home) / ASSEMBLIES
    notes: list[AssemblyNote] = []
    if not directory.is_dir():
        return notes
    for path in sorted(directory.glob("*.json")):
        try:
            document = loads_json(path.read_bytes(), what=str(path), max_bytes=CONFIG_BYTES)
            cids = tuple(str(CID.parse(c)) for c in document["cids"])
            notes.append(AssemblyNote(str(document["record"]), str(document["content_id"]), str(document["out"]),
                                      float(document["time"]), cids, path))
        except (OSError, LimitExceededError, NotJSONError, CIDError, KeyError, TypeError, ValueError):
            continue
    return sorted(notes, key=lambda n: -n.time)


def pin(home: Path, cid: CID | str) -> Path:
    """Keep the DAG under ``cid`` through ``elements gc``."""
    cid = CID.parse(cid)
    path = Path(home) / PINS / str(cid)
    _write_atomic(path, b"")
    return path


def unpin(home: Path, cid: CID | str) -> bool:
    """Stop keeping ``cid``; returns whether it was pinned."""
    path = Path(home) / PINS / str(CID.parse(cid))
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def pins(home: Path) -> list[CID]:
    """The pinned CIDs (names that do not parse are skipped)."""
    directory = Path(home) / PINS
    found: list[CID] = []
    if directory.is_dir():
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith("."):
                continue
            try:
                found.append(CID.parse(entry.name))
            except CIDError:
                continue
    return found
