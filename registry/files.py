"""The one way Elements writes a file: whole, or not at all.

A file is written under a unique hidden temporary name in its target's directory (or in a
scratch directory on the same file system), flushed to disk, then renamed onto its name, and the
directory is flushed after the rename, so a reader sees the old file or the new one, never a
part, and a crash leaves at most a temporary (``.NAME.PID-TOKEN.incomplete``) that no reader
opens. On any failure the temporary is removed.

With ``exclusive=True`` the file is never put over an existing one: it is linked to its name
(a link fails if the name exists), so of two writers creating the same name at once exactly one
succeeds and the other gets :class:`FileExistsError` (``elements keys new`` relies on this).

- :func:`atomic_write` writes bytes (or text, or a list of buffers);
- :func:`atomic_file` is a context manager yielding the open temporary, for streaming writers;
- :func:`install` moves a complete file written elsewhere on the same file system into place;
- :func:`replace_directory` moves a finished output directory onto its name (whole-directory
  outputs: ``assemble -o``, ``split -o``).

``tests/test_conventions.py`` forbids ``os.replace`` / ``os.rename`` / ``Path.replace`` /
``Path.rename`` outside this module (with listed exceptions).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from .limits import temporary_name

__all__ = ["atomic_file", "atomic_write", "fsync_directory", "install", "replace_directory", "temporary_sibling"]

Buffer = bytes | bytearray | memoryview


def temporary_sibling(path: str | os.PathLike[str], tag: str = "incomplete", directory: Path | None = None) -> Path:
    """A unique hidden name for a temporary of ``path`` (``.NAME.PID-TOKEN.TAG``), in ``directory``
    (default: beside ``path``), short enough for any file system whatever the length of the name."""
    path = Path(path)
    return (directory or path.parent) / temporary_name(path.name, f"{os.getpid()}-{secrets.token_hex(6)}.{tag}")


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (a rename in it) to disk; a file system that cannot is skipped."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_all(fd: int, parts: Sequence[Buffer]) -> None:
    total = sum(len(p) for p in parts)
    written = os.writev(fd, parts) if parts else 0
    if written != total:  # a short writev: finish part by part
        view = memoryview(b"".join(bytes(p) for p in parts))[written:]
        while view:
            view = view[os.write(fd, view):]


def install(temporary: str | os.PathLike[str], path: str | os.PathLike[str], *, exclusive: bool = False,
            fsync: bool = True) -> Path:
    """Move the complete file ``temporary`` onto ``path`` (same file system); ``temporary`` is gone
    afterwards whatever happens.

    Raises:
        FileExistsError: ``exclusive`` and ``path`` exists (nothing of it was touched).
    """
    temporary, path = Path(temporary), Path(path)
    renamed = False  # a rename leaves nothing to remove (a block import installs a thousand files)
    try:
        if not exclusive:
            os.replace(temporary, path)
            renamed = True
        else:
            try:
                os.link(temporary, path)
            except FileExistsError:
                raise
            except OSError:  # a file system without hard links: exclusive creation of the name itself
                _copy_exclusive(temporary, path, fsync)
    finally:
        if not renamed:
            temporary.unlink(missing_ok=True)
    if fsync:
        fsync_directory(path.parent)
    return path


def _copy_exclusive(source: Path, path: Path, fsync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, source.stat().st_mode & 0o777)
    try:
        with open(source, "rb") as handle, os.fdopen(os.dup(fd), "wb") as out:
            shutil.copyfileobj(handle, out)
            out.flush()
            if fsync:
                os.fsync(out.fileno())
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: str | Buffer | Sequence[Buffer], *, exclusive: bool = False,
                 fsync: bool = True, mode: int = 0o666, scratch: Path | None = None, encoding: str = "utf-8") -> Path:
    """Write ``data`` (bytes, a list of buffers, or text in ``encoding``) to ``path`` whole, or not at all.

    Args:
        exclusive: never replace an existing file (raises :class:`FileExistsError`).
        fsync: flush the file and the directory to disk (off only for data that can be fetched
            again, such as verified blocks).
        mode: permissions of the new file (before the umask), e.g. ``0o600`` for a keystore.
        scratch: write the temporary there (a directory on the same file system) instead of
            beside ``path``.
    """
    path = Path(path)
    if isinstance(data, str):
        parts: Sequence[Buffer] = [data.encode(encoding)]
    elif isinstance(data, (bytes, bytearray, memoryview)):
        parts = [data]
    else:
        parts = data
    temporary = temporary_sibling(path, directory=scratch)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        _write_all(fd, parts)
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        temporary.unlink(missing_ok=True)
        raise
    os.close(fd)
    return install(temporary, path, exclusive=exclusive, fsync=fsync)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], *, exclusive: bool = False, fsync: bool = True, mode: int = 0o666,
                scratch: Path | None = None) -> Iterator[BinaryIO]:
    """Open a temporary for ``path`` for binary writing; when the block ends normally it is
    flushed and moved onto ``path``; when it raises, the temporary is removed and ``path`` is
    untouched. Arguments as for :func:`atomic_write`."""
    path = Path(path)
    temporary = temporary_sibling(path, directory=scratch)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    install(temporary, path, exclusive=exclusive, fsync=fsync)


def replace_directory(temporary: Path, out: Path, *, replace: bool, fsync: bool = True) -> None:
    """Move the finished directory ``temporary`` onto ``out``.

    With ``replace``, an existing ``out`` is moved aside, the new one moved in (the old one moved
    back if that fails) and the old one removed.

    Raises:
        FileExistsError: ``out`` exists and not ``replace``; ``temporary`` is left for the caller.
    """
    if out.exists() or out.is_symlink():
        if not replace:
            raise FileExistsError(out)
        old = temporary_sibling(out, "replaced")
        os.rename(out, old)
        try:
            os.rename(temporary, out)
        except BaseException:
            os.rename(old, out)
            raise
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
    else:
        os.rename(temporary, out)
    if fsync:
        fsync_directory(out.parent)
