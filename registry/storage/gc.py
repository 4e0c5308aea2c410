"""What ``$ELEMENTS_HOME`` holds, and reclaiming the blocks nothing needs (``elements cache``, ``elements gc``).

A block is **needed** when it is reachable from a root:

- the documents of the records the user published, and the data their manifests name (the CLI
  reads those records from the chain and passes their CIDs);
- a pin (``$ELEMENTS_HOME/pins/<cid>``, see :mod:`.roots`), and the data of a pinned manifest;
- an assembly noted less than ``keep_days`` ago (``$ELEMENTS_HOME/assemblies``): its documents and data;
- any block written less than ``grace`` seconds ago (an import, a publish or a fetch in progress in
  another process has not noted its roots yet).

Everything else in ``blocks/`` is garbage. With a size limit (``max_size``: ``elements gc
--max-size SIZE``, or the config's ``cache_limit``) garbage is not all freed: it is a cache, and
only the least recently used of it goes, until the block store holds at most the limit. A block's
last use is the latest of its file's modification and access times (written or fetched; read,
where the file system records reads) and the time of the latest assembly note, however old, whose
DAGs reach it; ties go by name, so the order is the same on every run. Needed blocks are never
evicted: when they alone exceed the limit, gc frees every other block and says by how much the
limit is still exceeded. Derived caches (``cache/elements``, ``cache/data``: data
files exported for a caller that wanted a path; assembly no longer writes them) and scratch areas
whose process is gone are freed too.

Crash safety: ``gc`` only ever unlinks whole files that no root reaches (each unlink is atomic), so
a ``kill -9`` at any point leaves the store consistent: every needed block is still there, and the
next ``gc`` finishes the job. While it runs it holds the store's lock exclusively; an assembly holds
it shared (:func:`store_lock`), so the two never overlap, and ``gc`` says so instead of waiting.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import ElementsError, ServiceError
from ..limits import DOCUMENT_BYTES, LimitExceededError, NotJSONError, loads_json
from .blockstore import BlockStore
from .cid import CID, RAW
from .errors import BlockIntegrityError, BlockNotFoundError, CIDError, DAGError
from .roots import assemblies, pins
from .scratch import sweep
from .unixfs import links_of, read_file

__all__ = ["HomeUsage", "GcPlan", "GcBusyError", "home_usage", "plan_gc", "run_gc", "reach_blocks", "store_lock", "DERIVED_CACHES"]

#: Caches of derived data gc frees (files exported from blocks for callers that wanted a path).
DERIVED_CACHES = ("cache/elements", "cache/data")
LOCK_NAME = ".lock"


class GcBusyError(ServiceError):
    """Another process is using the block store (an assembly); gc does not wait for it."""


@contextmanager
def store_lock(store: BlockStore, *, exclusive: bool) -> Iterator[None]:
    """Hold the store's lock: shared by assemblies, exclusive (and not waited for) by gc.

    Raises:
        GcBusyError: ``exclusive`` and another process holds the lock.
    """
    store.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(store.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if exclusive:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise GcBusyError(f"another elements process is assembling from {store.root}; run `elements gc` again when it has finished") from None
        else:
            fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # drops the lock


def _tree_size(path: Path) -> tuple[int, int]:
    files = total = 0
    for root, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
                files += 1
            except FileNotFoundError:
                continue
    return files, total


@dataclass
class HomeUsage:
    """Bytes on disk under ``$ELEMENTS_HOME`` by kind (allocated bytes, as ``du`` counts them)."""

    home: Path
    kinds: dict[str, tuple[int, int]]  # kind -> (files, bytes)

    @property
    def total(self) -> int:
        return sum(b for _, b in self.kinds.values())

    def to_json(self) -> dict:
        return {"home": str(self.home), "total_bytes": self.total,
                "kinds": {k: {"files": f, "bytes": b} for k, (f, b) in self.kinds.items()}}


def home_usage(home: Path) -> HomeUsage:
    """What ``home`` holds: blocks, staging, each cache, scratch, notes, and the rest."""
    home = Path(home)
    kinds: dict[str, tuple[int, int]] = {}
    named = {
        "blocks": home / "blocks",
        "cache/elements": home / "cache" / "elements",
        "cache/data": home / "cache" / "data",
        "cache/compositions": home / "cache" / "compositions",
        "cache/provenance": home / "cache" / "provenance",
        "tmp": home / "tmp",
        "assemblies": home / "assemblies",
        "pins": home / "pins",
        "checked": home / "checked",
    }
    counted: set[Path] = set()
    for kind, path in named.items():
        if kind == "blocks" and path.is_dir():
            staging = _tree_size(path / ".staging") if (path / ".staging").is_dir() else (0, 0)
            files, total = _tree_size(path)
            kinds["blocks"] = (files - staging[0], total - staging[1])
            kinds["blocks/.staging"] = staging
        else:
            kinds[kind] = _tree_size(path) if path.is_dir() else (0, 0)
        counted.add(path)
    other_files = other_bytes = 0
    if home.is_dir():
        for entry in home.iterdir():
            if entry in counted or entry.name == "cache":
                continue
            if entry.is_dir() and not entry.is_symlink():
                f, b = _tree_size(entry)
            else:
                f, b = 1, entry.lstat().st_blocks * 512
            other_files, other_bytes = other_files + f, other_bytes + b
        cache = home / "cache"
        if cache.is_dir():
            for entry in cache.iterdir():
                if entry not in counted:
                    f, b = _tree_size(entry) if entry.is_dir() else (1, entry.lstat().st_blocks * 512)
                    other_files, other_bytes = other_files + f, other_bytes + b
    kinds["other"] = (other_files, other_bytes)
    return HomeUsage(home, kinds)


@dataclass
class GcPlan:
    """What gc keeps and frees."""

    home: Path
    store: BlockStore
    kept_blocks: int = 0
    kept_bytes: int = 0
    garbage: list[tuple[Path, int]] = field(default_factory=list)  # block files and their sizes
    young: int = 0  # unreferenced blocks kept because they are newer than the grace period
    caches: list[tuple[Path, int]] = field(default_factory=list)  # derived cache directories
    roots: dict[str, int] = field(default_factory=dict)  # kind of root -> how many
    missing_roots: int = 0  # roots whose DAG is not (wholly) here
    max_size: int | None = None  # the block store's size limit, if any (LRU eviction)
    cached: int = 0  # unneeded blocks kept because they fit under the limit
    cached_bytes: int = 0

    @property
    def over_limit(self) -> int:
        """Bytes the store still holds beyond ``max_size`` once the plan has run (needed blocks)."""
        if self.max_size is None:
            return 0
        return max(0, self.kept_bytes - self.max_size)

    @property
    def garbage_bytes(self) -> int:
        return sum(size for _, size in self.garbage)

    @property
    def cache_bytes(self) -> int:
        return sum(size for _, size in self.caches)

    def to_json(self) -> dict:
        return {
            "home": str(self.home),
            "roots": self.roots,
            "kept_blocks": self.kept_blocks,
            "kept_bytes": self.kept_bytes,
            "garbage_blocks": len(self.garbage),
            "garbage_bytes": self.garbage_bytes,
            "young_blocks_kept": self.young,
            "derived_cache_bytes": self.cache_bytes,
            "freed_bytes": self.garbage_bytes + self.cache_bytes,
            "max_size": self.max_size,
            "cached_blocks_kept": self.cached,
            "cached_bytes_kept": self.cached_bytes,
            "over_limit_bytes": self.over_limit,
        }


def _document_data(store: BlockStore, cid: CID) -> CID | None:
    """The data CID a manifest document names, or None (not a manifest, not here, not JSON)."""
    try:
        chunks, size = [], 0
        for chunk in read_file(cid, store.get, verify=False):
            size += len(chunk)
            if size > int(DOCUMENT_BYTES):
                return None
            chunks.append(chunk)
        document = loads_json(b"".join(chunks), what=f"document {cid}")
        data = document.get("data") if isinstance(document, dict) else None
        return CID.parse(data["cid"]) if isinstance(data, dict) and isinstance(data.get("cid"), str) else None
    except (ElementsError, LimitExceededError, NotJSONError):
        return None


def reach_blocks(store: BlockStore, roots: Iterable[CID], keep: set[str]) -> int:
    """Add the block names of the DAGs under ``roots`` to ``keep``; returns how many roots are incomplete here."""
    incomplete = 0
    seen: set[CID] = set()
    for root in roots:
        stack = [root]
        complete = True
        while stack:
            cid = stack.pop()
            if cid in seen:
                continue
            seen.add(cid)
            if not store.has(cid):
                complete = False
                continue
            keep.add(store.path_of(cid).name)
            if cid.codec == RAW:
                continue
            try:
                stack.extend(links_of(cid, store.get(cid)))
            except (BlockIntegrityError, BlockNotFoundError, DAGError):
                complete = False
        incomplete += not complete
    return incomplete


def plan_gc(home: Path, store: BlockStore, published: Iterable[CID | str] = (), *, keep_days: float = 7.0,
            grace: float = 3600.0, now: float | None = None, max_size: int | None = None) -> GcPlan:
    """Decide what gc frees (nothing is removed: :func:`run_gc` does).

    Args:
        published: CIDs of the documents of the user's records (their manifests' data is kept too).
        keep_days: assemblies noted less than this many days ago keep what they read.
        grace: blocks written less than this many seconds ago are kept whatever references them.
        max_size: free only the least recently used unneeded blocks, until the store holds at most
            this many bytes (None: free every unneeded block).
    """
    if max_size is not None and max_size < 0:
        raise ValueError("max_size must not be negative")
    now = time.time() if now is None else now
    plan = GcPlan(Path(home), store, max_size=max_size)
    documents: list[CID] = []
    for value in published:
        try:
            documents.append(CID.parse(value))
        except CIDError:
            continue
    pinned = pins(home)
    recent = [n for n in assemblies(home) if now - n.time <= keep_days * 86400]
    assembled = [CID.parse(c) for n in recent for c in n.cids]
    plan.roots = {"published": len(documents), "pins": len(pinned), "recent_assemblies": len(recent)}
    data = [d for d in (_document_data(store, c) for c in [*documents, *pinned]) if d is not None]
    keep: set[str] = set()
    plan.missing_roots = reach_blocks(store, [*documents, *pinned, *data, *assembled], keep)
    unneeded: list[tuple[Path, os.stat_result]] = []
    if store.root.is_dir():
        for shard in sorted(store.root.iterdir()):
            if shard.is_symlink() or not shard.is_dir() or shard.name.startswith("."):
                continue  # a symlinked shard leads out of the store: its files are not ours to remove
            for entry in shard.iterdir():
                if entry.name.startswith("."):
                    continue  # a temporary of an older writer: clean_incomplete's business
                try:
                    stat = entry.stat()
                except FileNotFoundError:
                    continue
                if entry.name in keep:
                    plan.kept_blocks += 1
                    plan.kept_bytes += stat.st_size
                elif now - stat.st_mtime < grace:
                    plan.young += 1
                    plan.kept_blocks += 1
                    plan.kept_bytes += stat.st_size
                else:
                    unneeded.append((entry, stat))
    if max_size is None:
        plan.garbage = [(entry, stat.st_size) for entry, stat in unneeded]
    else:
        _evict_least_recently_used(plan, unneeded, _note_times(home, store), max_size)
    for relative in DERIVED_CACHES:
        path = Path(home) / relative
        if path.is_dir():
            plan.caches.append((path, _tree_size(path)[1]))
    return plan


def _note_times(home: Path, store: BlockStore) -> dict[str, float]:
    """Block name -> the time of the newest assembly note (of any age) whose DAGs reach it."""
    times: dict[str, float] = {}
    for note in assemblies(home):  # newest first: a block keeps the first time it is reached at
        reached: set[str] = set()
        cids = []
        for value in note.cids:
            try:
                cids.append(CID.parse(value))
            except CIDError:
                continue
        reach_blocks(store, cids, reached)
        for name in reached:
            times.setdefault(name, note.time)
    return times


def _evict_least_recently_used(plan: GcPlan, unneeded: list[tuple[Path, os.stat_result]],
                               note_times: dict[str, float], max_size: int) -> None:
    """Mark for removal the least recently used of ``unneeded`` until the store fits ``max_size``."""
    def last_used(item: tuple[Path, os.stat_result]) -> tuple[float, str]:
        entry, stat = item
        return max(stat.st_mtime, stat.st_atime, note_times.get(entry.name, 0.0)), entry.name

    total = plan.kept_bytes + sum(stat.st_size for _, stat in unneeded)
    for entry, stat in sorted(unneeded, key=last_used):
        if total <= max_size:
            plan.cached += 1
            plan.cached_bytes += stat.st_size
            continue
        plan.garbage.append((entry, stat.st_size))
        total -= stat.st_size
    plan.kept_blocks += plan.cached
    plan.kept_bytes += plan.cached_bytes


def run_gc(plan: GcPlan) -> int:
    """Remove what ``plan`` found (blocks one atomic unlink each; derived caches; dead scratch
    areas); returns the bytes freed. Hold :func:`store_lock` exclusively around plan and run."""
    freed = 0
    for path, size in plan.garbage:
        try:
            path.unlink()
            freed += size
        except FileNotFoundError:
            continue
    for path, size in plan.caches:
        # Renamed aside first, so a crash mid-removal leaves no half-deleted cache that looks whole.
        aside = path.with_name(f".{path.name}.gc-{os.getpid()}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            continue
        shutil.rmtree(aside, ignore_errors=True)
        freed += size
    cache = plan.home / "cache"
    if cache.is_dir():
        for leftover in cache.glob(".*.gc-*"):  # a removal a crash cut short: finish it
            shutil.rmtree(leftover, ignore_errors=True)
    for relative in ("tmp", "blocks/.staging"):
        if (plan.home / relative).is_dir():
            sweep(plan.home / relative)
    plan.store.clean_incomplete()
    return freed
