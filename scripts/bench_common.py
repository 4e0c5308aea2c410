"""Helpers shared by the benchmarks in ``scripts/``: ``--size``, peak memory, timing, a warm page cache.

Peak memory is a process's ``VmHWM`` in ``/proc/<pid>/status``: the high-water mark of its own
resident set. ``ru_maxrss`` (``getrusage``, ``wait4``) is no substitute: a child started by fork
inherits the parent's figure, so it would report this script's size.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["MiB", "compile_package", "peak_rss", "size_argument", "timed", "warm"]

MiB = 1 << 20

def compile_package(package: Path, env: dict[str, str] | None = None) -> None:
    """Byte-compile a checkout's ``registry`` package (into its ``__pycache__``, ignored by git) as
    ``pip install`` does for an installed package, so no timed process pays for compiling."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], env=env, check=True, stdout=subprocess.DEVNULL)


def size_argument(text: str) -> int:
    """``--size`` as an argparse ``type``: :func:`registry.compose.engine.parse_size`, the one size
    parser (``5GB`` = 5 x 10^9 bytes as Hugging Face writes shard sizes, ``1GiB`` = 2^30), its
    error shown as argparse's one-line usage error."""
    from registry.compose.engine import parse_size
    from registry.errors import InputError

    try:
        return parse_size(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
