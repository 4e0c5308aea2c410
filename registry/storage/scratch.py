"""Scratch areas a crash cannot leak: directories owned by a live process, swept by the next run.

An area is a directory ``<root>/<prefix>-<pid>-<token>`` holding a lock file ``.owner`` that
its process keeps locked (``fcntl.flock``) for as long as it uses the area. The kernel drops
the lock when the process ends, however it ends (``kill -9`` included), so every run that makes
an area under a root first removes the areas there whose lock it can take: nobody owns them.

- An area becomes visible only once locked: it is made as ``.new-<token>``, locked, then
  renamed, so a sweeper never sees an area that is still being made (a ``.new-`` left by a
  crash in that instant is removed once it is an hour old).
- Removing is renaming to ``.dead-<token>`` first, then deleting: whoever removes an area
  owns it alone, and a removal cut short is finished by the next sweep.
- Two threads or processes making, using and sweeping areas under one root at once are safe:
  names are unique, every step is an atomic rename, and a lock is taken before anything of
  another's is touched.

Used for ``$ELEMENTS_HOME/tmp`` (publish-model's split, compose and publish-delta's work), the
block store's imports and block writes (``blocks/.staging``) and the caches' partial exports.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import time
from pathlib import Path

__all__ = ["ScratchArea", "make_area", "sweep"]

LOCK = ".owner"
_AREA = re.compile(r"[A-Za-z0-9_.-]+-\d+-[0-9a-f]{12}")
#: A half-made area (``.new-``) is someone's for this long; after it, a crash left it.
STALE_NEW = 3600.0


class ScratchArea:
    """A directory this process owns while the area is open (see the module docstring).

    Use as a context manager, or call :meth:`close`: both delete the directory and its content.
    """

    def __init__(self, root: Path, path: Path, fd: int, token: str) -> None:
        self.root = root
        self.path = path
        self._fd: int | None = fd
        self._token = token
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"ScratchArea({str(self.path)!r})"

    def __enter__(self) -> "ScratchArea":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Closed, or inherited by a forked child (the area is its parent's, not the child's to use)."""
        return self._fd is None or self._pid != os.getpid()

    def close(self) -> None:
        """Delete the area; the lock is released only after, so no sweeper races the deletion.

        In a forked child the area stays (it is the parent's); only the child's copy of the
        lock's descriptor is closed.
        """
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._pid == os.getpid():
                _remove(self.path, self.root / f".dead-{self._token}")
        finally:
            os.close(fd)


def make_area(root: str | os.PathLike, prefix: str, *, sweep_first: bool = True) -> ScratchArea:
    """A new area under ``root`` (created if needed), after sweeping the areas nobody owns there.

    Args:
        prefix: what the area is for, e.g. ``publish-model`` (letters, digits, ``_.-``; others
            become ``_``): the area is ``<prefix>-<pid>-<token>``.
    """
    root = Path(root)
    if sweep_first:
        sweep(root)
    token = secrets.token_hex(6)
    hidden = root / f".new-{token}"
    _mkdir_under(root, hidden)
    try:
        fd = os.open(hidden / LOCK, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except BaseException:
        shutil.rmtree(hidden, ignore_errors=True)
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: never held by anyone else
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", prefix).lstrip(".") or "area"
        path = root / f"{name}-{os.getpid()}-{token}"
        os.rename(hidden, path)
    except BaseException:
        os.close(fd)
        shutil.rmtree(hidden, ignore_errors=True)
        raise
    return ScratchArea(root, path, fd, token)


def sweep(root: str | os.PathLike) -> int:
    """Remove the areas under ``root`` whose owner is gone; returns how many were removed."""
    root = Path(root)
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    removed = 0
    now = time.time()
    for entry in entries:
        path = Path(entry.path)
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if entry.name.startswith(".dead-"):  # a removal cut short: finish it
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
            elif entry.name.startswith(".new-"):
                if now - entry.stat(follow_symlinks=False).st_mtime > STALE_NEW:
                    _remove(path, root / f".dead-{secrets.token_hex(6)}")
                    removed += 1
            elif _AREA.fullmatch(entry.name) and _take(path, root):
                removed += 1
        except OSError:  # gone meanwhile, or not ours to remove: leave it
            continue
    return removed


def _take(path: Path, root: Path) -> bool:
    """Remove an area if its lock is free (its owner is gone)."""
    try:
        fd = os.open(path / LOCK, os.O_RDWR)
    except FileNotFoundError:
        # An area without its lock is only ever one someone is removing right now.
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # alive
        if not path.exists():  # another sweeper took it between our open and our lock
            return False
        _remove(path, root / f".dead-{secrets.token_hex(6)}")
        return True
    finally:
        os.close(fd)


def _remove(path: Path, dead: Path) -> None:
    try:
        os.rename(path, dead)
    except FileNotFoundError:
        return
    shutil.rmtree(dead, ignore_errors=True)


def _mkdir_under(root: Path, path: Path) -> None:
    # Another run may remove an empty ``root`` (the block store drops an empty ``.staging``)
    # between our making it and our making ``path`` in it: make both again.
    for attempt in range(100):
        try:
            os.mkdir(path)
            return
        except FileNotFoundError:
            try:
                os.makedirs(root, exist_ok=True)
            except FileExistsError:  # made and removed again meanwhile; the next round sees which
                pass
    raise OSError(f"cannot make {path}: {root} keeps disappearing")
