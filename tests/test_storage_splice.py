"""registry.storage.splice: byte ranges of files copied into an output by the kernel, in aligned windows.

Every case copies real files on the test's file system and compares the output byte for byte. The
fallbacks (a source or an output the kernel cannot splice, no pipe, no ``copy_file_range``) are
reached by making the system call answer what such a file system answers (EINVAL, EXDEV).
"""

from __future__ import annotations

import errno
import os
import random
import threading
from pathlib import Path

import pytest

from registry.storage import splice
from registry.storage.splice import WINDOW, OutputCopy

PAGE = os.sysconf("SC_PAGE_SIZE")


def sources(tmp_path: Path, sizes: list[int], seed: int) -> list[tuple[Path, bytes]]:
    rng = random.Random(seed)
    made = []
    for i, size in enumerate(sizes):
        data = rng.randbytes(size)
        path = tmp_path / f"source-{i}"
        path.write_bytes(data)
        made.append((path, data))
    return made


def copy_all(out: Path, start: int, pieces: list[tuple[Path, int, int]], check_reported: bool = True) -> tuple[int, bool]:
    """Copy ``pieces`` (path, offset, count) into ``out`` from ``start``; every report of bytes written
    is checked against what the output file holds at that moment. Returns (bytes reported, spliced)."""
    reported = [0]
    fd = os.open(out, os.O_RDWR | os.O_CREAT, 0o644)
    expected = bytearray()
    for path, offset, count in pieces:
        expected += path.read_bytes()[offset:offset + count]

    def on_bytes(count: int) -> None:
        reported[0] += count
        if check_reported:  # what is reported written is in the file, byte for byte
            assert os.pread(fd, reported[0], start) == bytes(expected[:reported[0]])

    try:
        with OutputCopy(fd, start, on_bytes) as copier:
            spliced = copier.spliced
            for path, offset, count in pieces:
                src = os.open(path, os.O_RDONLY)
                assert copier.copy(src, offset, count, close=True) == count
    finally:
        os.close(fd)
    return reported[0], spliced


@pytest.mark.parametrize("start", [0, 1, 100, PAGE - 1, PAGE, WINDOW - 1, WINDOW, 3 * WINDOW + 2904])
def test_ranges_of_many_sizes_land_in_order_at_any_output_offset(tmp_path, start):
    made = sources(tmp_path, [1 << 20, 1, 4095, 4097, 3 * WINDOW + 7, 1000, 1 << 20, 0, 77], seed=start)
    rng = random.Random(start)
    pieces = []
    for path, data in made:
        offset = rng.randrange(0, max(1, len(data)))
        pieces.append((path, min(offset, len(data)), len(data) - min(offset, len(data))))
        pieces.append((path, 0, len(data)))
    out = tmp_path / "out"
    out.write_bytes(b"h" * start)  # a header before the copied bytes, as a shard has
    reported, spliced = copy_all(out, start, pieces)
    expected = b"h" * start + b"".join(p.read_bytes()[o:o + c] for p, o, c in pieces)
    assert out.read_bytes() == expected
    assert reported == len(expected) - start
    assert spliced == (splice._open_pipe() is not None)


def test_a_thousand_tiny_ranges_never_fill_the_pipe_and_hang(tmp_path):
    """Each range of a few bytes takes a pipe buffer of its own: the copier writes the pipe out
    before it is full (a full pipe with no reader would block this thread forever)."""
    (path, data), = sources(tmp_path, [64 << 10], seed=3)
    rng = random.Random(4)
    pieces = [(path, rng.randrange(0, len(data) - 8), rng.randrange(1, 8)) for _ in range(1000)]
    out = tmp_path / "out"
    out.write_bytes(b"")
    done = []
    worker = threading.Thread(target=lambda: done.append(copy_all(out, 0, pieces, check_reported=False)), daemon=True)
    worker.start()
    worker.join(60)
    assert done, "the copy hung"
    assert out.read_bytes() == b"".join(data[o:o + c] for _, o, c in pieces)


def test_a_source_shorter_than_asked_gives_what_it_has_and_says_so(tmp_path):
    (path, data), = sources(tmp_path, [WINDOW + 5000], seed=5)
    out = tmp_path / "out"
    fd = os.open(out, os.O_RDWR | os.O_CREAT, 0o644)
    src = os.open(path, os.O_RDONLY)
    try:
        with OutputCopy(fd, 10) as copier:
            assert copier.copy(src, 100, len(data)) == len(data) - 100
    finally:
        os.close(src)
        os.close(fd)
    assert out.read_bytes()[10:] == data[100:]


def test_bytes_from_memory_go_between_copied_ranges_in_order(tmp_path):
    made = sources(tmp_path, [WINDOW + 3, 5000], seed=6)
    out = tmp_path / "out"
    fd = os.open(out, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        with OutputCopy(fd, 7) as copier:
            for path, data in made:
                src = os.open(path, os.O_RDONLY)
                copier.copy(src, 1, len(data) - 1, close=True)
                copier.write(b"inline!")
    finally:
        os.close(fd)
    assert out.read_bytes()[7:] == b"".join(data[1:] + b"inline!" for _, data in made)


def open_descriptors() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to count descriptors (Linux)")
def test_descriptors_given_to_the_copier_and_its_pipe_are_closed_on_success_and_on_failure(tmp_path):
    made = sources(tmp_path, [WINDOW // 2, WINDOW // 3], seed=7)
    out = tmp_path / "out"
    fd = os.open(out, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        before = open_descriptors()
        with OutputCopy(fd, 0) as copier:
            for path, data in made:
                copier.copy(os.open(path, os.O_RDONLY), 0, len(data), close=True)
        assert open_descriptors() == before
        with pytest.raises(RuntimeError), OutputCopy(fd, 0) as copier:
            copier.copy(os.open(made[0][0], os.O_RDONLY), 0, 100, close=True)  # held in the pipe
            raise RuntimeError("the caller failed half-way")
        assert open_descriptors() == before
    finally:
        os.close(fd)


@pytest.mark.skipif(not hasattr(os, "splice"), reason="os.splice is Linux-only")
@pytest.mark.parametrize("refuses", ["source", "output", "both"])
def test_a_file_the_kernel_cannot_splice_is_copied_another_way(tmp_path, monkeypatch, refuses):
    """A source whose file system has no splice_read, or an output without splice_write, answers
    EINVAL: the copier writes what the pipe holds (read back through memory if the output refused
    it) and copies the rest with copy_file_range."""
    splice_call = os.splice  # the real one, called by the stand-in below
    pipes = set()

    def refusing(src, dst, count, offset_src=None, offset_dst=None, flags=0):
        into_pipe = offset_src is not None
        if (refuses in ("source", "both") and into_pipe and pipes) or (refuses in ("output", "both") and not into_pipe):
            raise OSError(errno.EINVAL, "Invalid argument")
        pipes.add(dst if into_pipe else src)
        return splice_call(src, dst, count, offset_src=offset_src, offset_dst=offset_dst, flags=flags)

    monkeypatch.setattr(os, "splice", refusing)
    made = sources(tmp_path, [3 * WINDOW + 11, 1 << 20, 999], seed=8)
    out = tmp_path / "out"
    out.write_bytes(b"x" * 100)
    pieces = [(path, 3, len(data) - 3) for path, data in made]
    reported, _ = copy_all(out, 100, pieces)
    expected = b"x" * 100 + b"".join(data[3:] for _, data in made)
    assert out.read_bytes() == expected and reported == len(expected) - 100


@pytest.mark.parametrize("without", ["pipe", "copy_file_range"])
def test_without_a_pipe_or_without_copy_file_range_the_bytes_are_the_same(tmp_path, monkeypatch, without):
    if without == "pipe":
        monkeypatch.setattr(splice, "_open_pipe", lambda: None)
    else:
        monkeypatch.setattr(splice, "_open_pipe", lambda: None)

        def cross_device(*_args):
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        monkeypatch.setattr(os, "copy_file_range", cross_device, raising=False)
    made = sources(tmp_path, [WINDOW + 1, 70 << 20], seed=9)  # more than one 64 MiB step
    out = tmp_path / "out"
    out.write_bytes(b"")
    pieces = [(path, 1, len(data) - 1) for path, data in made]
    reported, spliced = copy_all(out, 0, pieces, check_reported=False)
    assert not spliced
    assert out.read_bytes() == b"".join(data[1:] for _, data in made) and reported == sum(len(d) - 1 for _, d in made)


def test_copiers_in_many_threads_write_disjoint_ranges_of_one_output(tmp_path):
    """As the writer's checked copies may run: each thread its own copier and pipe, the same
    output file; thirty rounds, every byte where it belongs."""
    made = sources(tmp_path, [1 << 20] * 4 + [123_457], seed=10)
    whole = b"".join(data for _, data in made)
    out = tmp_path / "out"
    for round_ in range(30):
        out.write_bytes(b"")
        fd = os.open(out, os.O_RDWR)
        part = len(whole) // 8 + round_  # parts that start anywhere in a window
        errors: list[BaseException] = []

        def copy_part(first: int) -> None:
            try:
                with OutputCopy(fd, 2904 + first) as copier:
                    position, end = first, min(first + part, len(whole))
                    base = 0
                    for path, data in made:
                        lo, hi = max(position, base), min(end, base + len(data))
                        if lo < hi:
                            src = os.open(path, os.O_RDONLY)
                            assert copier.copy(src, lo - base, hi - lo, close=True) == hi - lo
                        base += len(data)
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=copy_part, args=(first,)) for first in range(0, len(whole), part)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        os.close(fd)
        assert not errors, errors
        assert out.read_bytes()[2904:] == whole, f"round {round_}"


def test_a_closed_copier_takes_nothing_more(tmp_path):
    """Bytes still in the pipe at close are dropped, so anything appended after would land past a hole."""
    (path, data), = sources(tmp_path, [5000], seed=11)
    fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT, 0o644)
    src = os.open(path, os.O_RDONLY)
    try:
        copier = OutputCopy(fd, 0)
        copier.copy(src, 0, 100)
        copier.close()
        with pytest.raises(ValueError, match="closed"):
            copier.copy(src, 100, 100)
        with pytest.raises(ValueError, match="closed"):
            copier.write(b"x")
    finally:
        os.close(src)
        os.close(fd)
