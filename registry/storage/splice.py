"""Byte ranges of files copied into one output file by the kernel, written in aligned windows.

Assembly copies a model's tensors from where they are kept (the 1 MiB leaf files of the block
store, or a local element file) into an output shard without the bytes entering the process.
:class:`OutputCopy` is that copy: ranges are appended at the output's position in turn, and the
kernel moves them, in the first of these ways that works:

1. ``splice``: each range is spliced into a pipe (the pipe takes references to the source's
   cached pages, no copy) and the pipe is spliced into the output whenever the output's position
   reaches a multiple of :data:`WINDOW`, so every write but a copy's first and last covers one
   whole aligned window of the output, whatever the sources' boundaries (bytes from memory, a
   source that ends early, or dozens of tiny ranges in one window write a part of one early);
2. ``copy_file_range`` range by range (another system, or a pipe the kernel would not enlarge);
3. ``pread`` / ``pwrite`` through a buffer (a file system the kernel cannot copy between).

Why windows: the page cache backs a file with folios of up to 2^k pages only where a write starts
at a multiple of 2^k pages, and a safetensors shard puts its tensor data after a header of any
length, so a copy leaf by leaf starts every MiB of the output off alignment and the kernel fills
the output with small folios (163,847 for a 2 GiB assembly; ``cp`` of the result makes 37,876, the
64 KiB windows 33,031), each costing the same bookkeeping as a large one. Measured on ext4 (Linux
6.18, 2 cores), copying the 2,048 leaf files of a published 2 GiB model into an output 2,816 bytes
on, as assembly does, in CPU seconds of the kernel: ``copy_file_range`` per leaf 0.75 to 0.79 s, 64
KiB windows 0.65 to 0.68 s, ``cp`` of the assembled file 0.60 s. Larger windows were faster at best
(128 KiB 0.60 s, 256 KiB 0.57 s) but not every time: on this virtual machine a large folio is often
carved from memory the host had taken back, and the copy then takes two to three times as long (128
KiB: 0.77 and 1.27 s in six rounds; 256 KiB: 1.1 to 1.65 s in six of eight), while 64 KiB folios,
``cp``'s size, showed it once in six rounds (0.91 s; docs/benchmarks.md, "assemble: the copy in
aligned windows").

Only bytes written to the output are reported (``on_bytes``, at least every MiB and at the end), so
a caller that hashes the output as it grows (the assembly's copy check) never reads a byte still in
the pipe. Nothing read is verified here: the caller hashes what was written.
"""

from __future__ import annotations

import errno
import os
from typing import Callable

__all__ = ["WINDOW", "OutputCopy", "copy_range"]

#: The output is written in windows of this size, each starting at a multiple of it (``cp``'s write size).
WINDOW = 64 << 10
#: The pipe holds one window and the partial pages at its ends (the kernel rounds up to a power of two pages).
_PIPE_BYTES = 2 * WINDOW
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
#: Each ``copy_file_range`` / buffered step moves at most this much (progress follows the copy).
_STEP = 64 << 20
#: Bytes written are reported in steps of at least this (a window each would be 16,384 calls per GiB).
_REPORT = 1 << 20
#: Errors that mean "the kernel cannot do this copy here", not "the copy failed".
_NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM)


def copy_range(src_fd: int, src_offset: int, dst_fd: int, dst_offset: int, count: int) -> int:
    """Copy up to ``count`` bytes between file offsets (``copy_file_range``, or a buffer where
    the kernel cannot); returns how many were copied, 0 at the source's end."""
    if hasattr(os, "copy_file_range"):
        try:
            return os.copy_file_range(src_fd, dst_fd, count, src_offset, dst_offset)
        except OSError as exc:
            if exc.errno not in _NO_KERNEL_COPY:
                raise
    data = os.pread(src_fd, min(count, 8 << 20), src_offset)
    _pwrite_all(dst_fd, data, dst_offset)
    return len(data)


def _pwrite_all(fd: int, data, offset: int) -> None:
    view = memoryview(data).cast("B")
    written = 0
    while written < len(view):
        written += os.pwrite(fd, view[written:], offset + written)


def _open_pipe() -> tuple[int, int, int] | None:
    """A pipe for splicing (read end, write end, how many pages it holds), its write end
    non-blocking (a full pipe answers EAGAIN instead of waiting for a reader that is this thread);
    None where there is no ``splice`` or the kernel will not enlarge the pipe to one window."""
    if not hasattr(os, "splice"):
        return None
    import fcntl

    if not hasattr(fcntl, "F_SETPIPE_SZ"):  # pragma: no cover - Linux has it since 2.6.35
        return None
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return None
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        pages = fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ) // _PAGE
        os.set_blocking(write_end, False)
    except OSError:  # over the user's pipe allowance (EPERM), or a pipe of another kind
        pages = 0
    if pages * _PAGE < WINDOW + 2 * _PAGE:
        os.close(read_end)
        os.close(write_end)
        return None
    return read_end, write_end, pages


class OutputCopy:
    """Appends byte ranges of source files to ``dst_fd`` from ``dst_offset`` on, moved by the
    kernel and written in :data:`WINDOW`-aligned windows (see the module's docstring).

    Use it as a context manager; :meth:`finish` writes what is still in the pipe (leaving the
    ``with`` block normally finishes; an exception only closes). One instance is used by one
    thread; several may write disjoint ranges of one output at once, each with its own pipe.
    """

    def __init__(self, dst_fd: int, dst_offset: int, on_bytes: Callable[[int], None] | None = None) -> None:
        self.dst_fd = dst_fd
        self.position = dst_offset  # where the next byte goes (bytes in the pipe counted)
        self.written = dst_offset  # every byte before this is in the output file
        self.on_bytes = on_bytes
        self._pipe: tuple[int, int, int] | None = _open_pipe()
        self._pages = 0  # pipe buffers in use (one per source page a splice touched)
        self._held: list[int] = []  # source descriptors to close once their pages are written
        self._unreported = 0  # bytes written and not yet given to on_bytes
        self._closed = False

    def __enter__(self) -> "OutputCopy":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is None:
                self.finish()
        finally:
            self.close()

    @property
    def spliced(self) -> bool:
        """Whether ranges still go through the pipe (False once a fallback was taken)."""
        return self._pipe is not None

    def copy(self, src_fd: int, src_offset: int, count: int, *, close: bool = False) -> int:
        """Append ``count`` bytes of ``src_fd`` from ``src_offset``; returns how many were taken,
        fewer only where the source ends. ``close``: this copier closes ``src_fd`` once its bytes
        are in the output (a spliced page must stay referenced through an open file until then),
        or at :meth:`close`."""
        self._check_open()
        try:
            done = self._splice(src_fd, src_offset, count) if self._pipe is not None else 0
            while done < count:  # no pipe (or no longer): range by range, written at once
                self.flush()
                moved = copy_range(src_fd, src_offset + done, self.dst_fd, self.position, min(count - done, _STEP))
                if moved == 0:
                    break
                done += moved
                self.position += moved
                self.written = self.position
                self._written(moved)
        except BaseException:
            if close:
                os.close(src_fd)
            raise
        if close:
            if self.written < self.position:
                self._held.append(src_fd)
            else:
                os.close(src_fd)
        return done

    def write(self, data) -> None:
        """Append bytes from memory (a piece the kernel cannot copy, such as data inlined in a DAG node)."""
        self._check_open()
        self.flush()
        view = memoryview(data).cast("B")
        _pwrite_all(self.dst_fd, view, self.position)
        self.position += len(view)
        self.written = self.position
        self._written(len(view))

    def finish(self) -> None:
        """Write whatever the pipe still holds (and report every byte written)."""
        self.flush()
        self._report()

    def close(self) -> None:
        """Release the pipe and every source descriptor held (bytes still in the pipe are dropped:
        the copier takes nothing more)."""
        self._closed = True
        self._release()
        self._close_pipe()

    def _check_open(self) -> None:
        if self._closed:  # bytes dropped at close would leave a hole before anything appended now
            raise ValueError("this OutputCopy is closed; make another")

    def _splice(self, src_fd: int, src_offset: int, count: int) -> int:
        done = 0
        while done < count:
            if self._pipe is None:  # a flush found an output the kernel cannot splice into
                return done
            write_end, pages = self._pipe[1], self._pipe[2]
            window_end = (self.position // WINDOW + 1) * WINDOW
            within_page = (src_offset + done) % _PAGE
            room = (pages - self._pages) * _PAGE - within_page  # what fits in the pipe's free buffers
            if room <= 0:
                self.flush()
                continue
            want = min(count - done, window_end - self.position, room)
            try:
                moved = os.splice(src_fd, write_end, want, offset_src=src_offset + done)
            except BlockingIOError:  # the pipe is fuller than counted: write it out and go on
                if self.written == self.position:  # pragma: no cover - an empty pipe is never full
                    raise
                self.flush()
                continue
            except OSError as exc:
                if exc.errno not in _NO_KERNEL_COPY:
                    raise
                self._stop_splicing()  # a source the kernel cannot splice: copy the rest another way
                return done
            if moved == 0:
                return done  # the source ended
            self._pages += (within_page + moved + _PAGE - 1) // _PAGE
            self.position += moved
            done += moved
            if self.position == window_end:
                self.flush()
        return done

    def flush(self) -> None:
        """Write the pipe's bytes into the output at their place."""
        if self._pipe is None or self.written == self.position:
            return
        read_end = self._pipe[0]
        while self.written < self.position:
            try:
                moved = os.splice(read_end, self.dst_fd, self.position - self.written, offset_dst=self.written)
            except OSError as exc:
                if exc.errno not in _NO_KERNEL_COPY:
                    raise
                self._drain_through_memory()  # an output the kernel cannot splice into
                return
            if moved == 0:  # pragma: no cover - a pipe with bytes in it always gives some
                raise OSError(errno.EIO, "the copy's pipe ended before its bytes were written")
            self.written += moved
            self._written(moved)
        self._pages = 0
        self._release()

    def _drain_through_memory(self) -> None:
        """Write the pipe's bytes with ``pwrite`` (read out of it: at most one window), then stop splicing."""
        read_end = self._pipe[0]  # type: ignore[index]
        while self.written < self.position:
            data = os.read(read_end, self.position - self.written)
            if not data:  # pragma: no cover - as in flush
                raise OSError(errno.EIO, "the copy's pipe ended before its bytes were written")
            _pwrite_all(self.dst_fd, data, self.written)
            self.written += len(data)
            self._written(len(data))
        self._pages = 0
        self._release()
        self._stop_splicing()

    def _stop_splicing(self) -> None:
        self.flush()
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self._pipe is not None:
            os.close(self._pipe[0])
            os.close(self._pipe[1])
            self._pipe = None

    def _release(self) -> None:
        for fd in self._held:
            os.close(fd)
        self._held = []

    def _written(self, count: int) -> None:
        self._unreported += count
        if self._unreported >= _REPORT:
            self._report()

    def _report(self) -> None:
        if self.on_bytes is not None and self._unreported:
            self.on_bytes(self._unreported)
        self._unreported = 0
