"""Which data DAGs of the block store were once checked, tensor by tensor, against an element's content id.

A block's name is its hash, so the store checks every block against its CID when it is written
(a fetch, an import, a publish). That does not say that the bytes of a data DAG are the tensors
an element's manifest lists: a manifest names its data by CID, and only hashing every tensor
ties the two (a publisher may pair a manifest with other data). Assembly does that hashing; once
every tensor of an element has matched, it notes the pair beside the block store::

    $ELEMENTS_HOME/checked/<content id hex>-<data CID>      empty; its name is the fact

The fact never goes stale: the content id pins every tensor digest and the CID pins every byte.
What it does not cover is the disk changing under a block later (bit rot, a torn write after a
power cut), which is why the blocks of a DAG are flushed to disk (one ``syncfs`` of the store's
file system, or an ``fsync`` of each) before its note is written, and why ``elements assemble --verify-blocks`` (or ``verify_blocks: true`` in the config)
hashes every tensor again however often it was checked: the trade Kubo makes with
``Datastore.HashOnRead`` (false by default). ``docs/storage.md`` weighs it.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..files import atomic_write
from .cid import CID

__all__ = ["CHECKED", "is_checked", "note_all_checked", "note_checked"]

#: The directory under ``$ELEMENTS_HOME`` that holds the notes.
CHECKED = "checked"


def _note(home: Path, content_id: str, data: CID) -> Path:
    return home / CHECKED / f"{content_id.lower().removeprefix('0x')}-{data}"


def is_checked(home: str | os.PathLike, content_id: str, data: CID | str) -> bool:
    """Whether the data DAG ``data`` was checked against every tensor digest of ``content_id``."""
    return _note(Path(home), content_id, CID.parse(data)).is_file()


def note_checked(home: str | os.PathLike, content_id: str, data: CID | str, blocks: Iterable[Path]) -> None:
    """Note that ``data`` holds exactly the tensors of ``content_id``, after flushing ``blocks``
    (the files of its DAG) to disk, so that a note on disk never outlives its blocks' bytes."""
    note_all_checked(home, [(content_id, data)], blocks)


def note_all_checked(home: str | os.PathLike, pairs: Sequence[tuple[str, CID | str]], blocks: Iterable[Path]) -> int:
    """:func:`note_checked` for several pairs at once, ``blocks`` being the files of all their
    DAGs: the blocks are flushed once, then every note is written; returns how many were noted.

    The flush is one ``syncfs`` of the file system that holds the blocks where the platform has it
    (Linux): an ``fsync`` per block costs a disk cache flush each even when the block is clean,
    about 2 ms, which for the 2,048 leaves of a GiB is seconds. A note itself is written without
    a flush of its own: it is empty, and written only after its blocks are on disk, so losing it
    in a power cut only means hashing the element once more.
    """
    if not pairs:
        return 0
    _flush(blocks)
    for content_id, data in pairs:
        note = _note(Path(home), content_id, CID.parse(data))
        note.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(note, b"", fsync=False)
    return len(pairs)


def _flush(blocks: Iterable[Path]) -> None:
    paths = list(blocks)
    syncfs = _syncfs()
    if syncfs is not None:
        devices: dict[int, Path] = {}
        for directory in {path.parent for path in paths}:
            try:
                devices.setdefault(os.stat(directory).st_dev, directory)
            except FileNotFoundError:
                continue  # a shard gc just emptied: its blocks are fetched and checked again later
        for directory in devices.values():
            fd = os.open(directory, os.O_RDONLY)
            try:
                if syncfs(fd) != 0:
                    number = ctypes.get_errno()
                    raise OSError(number, f"syncfs of {directory}: {os.strerror(number)}")
            finally:
                os.close(fd)
        return
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # an identity block or one gc just took: a later fetch checks it against its CID
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs`` (Linux), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function
