"""Helpers shared by the benchmarks in ``scripts/``: sizes, peak memory, timing, a warm page cache.

Peak memory is a process's ``VmHWM`` in ``/proc/<pid>/status``: the high-water mark of its own
resident set. ``ru_maxrss`` (``getrusage``, ``wait4``) is no substitute: a child started by fork
inherits the parent's figure, so it would report this script's size.
"""

from __future__ import annotations

import argparse
import re
import resource
import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["MiB", "parse_size", "peak_rss", "timed", "warm"]

MiB = 1 << 20

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """A size in bytes from ``1GiB``, ``1G``, ``256MiB``, ``1.5GB`` (all binary) or ``1000000``.

    Raises:
        argparse.ArgumentTypeError: not a size (so it also serves as an argparse ``type``).
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*", text, re.I)
    if not match:
        raise argparse.ArgumentTypeError(f"cannot read size {text!r}; write e.g. 1GiB, 256MiB or 1000000")
    number, unit = float(match.group(1)), (match.group(2) or "").upper().rstrip("B").rstrip("I")
    return int(number * _UNITS[unit])


def peak_rss(pid: int | str = "self") -> int:
    """The peak resident memory of a process in bytes (``VmHWM``; see the module docstring).

    Raises:
        OSError: the process is gone (or there is no ``/proc``), for another process than this one.
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise OSError(f"/proc/{pid}/status has no VmHWM")
    except OSError:
        if pid != "self":
            raise
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run ``fn``; returns ``(its result, wall seconds, CPU seconds of this process)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def warm(path: Path) -> None:
    """Read a file once so that the page cache holds it (measurements then exclude the disk)."""
    with open(path, "rb", buffering=0) as handle:
        buffer = bytearray(16 * MiB)
        while handle.readinto(buffer):
            pass
