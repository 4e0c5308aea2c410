"""What a source may cost: a deadline, a minimum rate and a byte cap on every request to Kubo
or a gateway, and the walk that admits only the blocks of the DAG asked for.

Every guarded request has a :class:`Watch`:

- a watchdog thread shuts the request's socket down when the request overstays
  ``limits.deadline``, or when a window of ``limits.timeout`` seconds brings fewer than
  ``limits.min_rate`` bytes per second (fewer is fine only when the request can need no more);
  httpx's own timeouts end a connect, or a silence, longer than ``limits.timeout``;
- every chunk is counted against a byte cap as it arrives: for one block, the largest block;
  for a DAG, what the blocks received so far say the rest can hold (:class:`DagWalk`); never
  more than what is left of ``limits.max_bytes``. A declared ``Content-Length`` over the cap is
  refused before the body is read.

Why a thread and a socket shutdown: httpx has no deadline for a whole request, and its read
timeout restarts with every byte, so a server sending one byte per second is never timed out.
Requests go without keep-alive, so each owns its socket and the watchdog closes that one only,
and with ``Accept-Encoding: identity``, so a byte counted is a byte that came over the wire.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import TYPE_CHECKING, Iterable, Iterator

from ..config import FetchLimits
from ..errors import ConfigError
from ..limits import BLOCK_BYTES, SERVICE_ANSWER_BYTES
from .cid import CID, DAG_PB, IDENTITY, RAW
from .dagpb import decode_node
from .errors import CARError, DAGError, FetchLimitError

if TYPE_CHECKING:
    import httpx

__all__ = ["FetchLimits", "Budget", "Watch", "DagWalk", "http_client", "MAX_BLOCK", "MAX_ANSWER"]

#: The largest block any source may send (no UnixFS importer makes blocks over 2 MiB; CAR
#: sections are refused over the same size).
MAX_BLOCK = int(BLOCK_BYTES)
#: The largest answer to an RPC call that is not content (JSON of versions, pins, ids).
MAX_ANSWER = int(SERVICE_ANSWER_BYTES)
#: What one CAR section adds to its block: the section's varint and the block's CID.
SECTION_OVERHEAD = 128
#: What a CAR may hold before its first block (the header: roots and version).
CAR_HEAD = 64 << 10


def http_client(limits: FetchLimits, *, transport: httpx.BaseTransport | None = None, **options) -> httpx.Client:
    """An httpx client whose requests can be watched: limits' timeouts, no keep-alive, no compression."""
    import httpx  # a tenth of a second: only the commands that reach Kubo or a gateway pay it

    try:
        return httpx.Client(
            timeout=httpx.Timeout(limits.timeout, connect=min(limits.timeout, 10.0)),
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"Accept-Encoding": "identity"},
            transport=transport,
            **options,
        )
    except httpx.InvalidURL as exc:  # http://999.0.0.1: httpx checks hosts more strictly than urlsplit
        shown = re.sub(r"//[^/@]*@", "//***@", str(options.get("base_url", "")))[:200]  # never a password
        raise ConfigError(f"the URL {shown!r} is not a valid URL ({exc}); check --ipfs-api / --gateway and the config") from None


class Budget:
    """The bytes one fetch may still read, over all the sources it tries (``limits.max_bytes``)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.spent = 0
        self._lock = threading.Lock()

    @property
    def left(self) -> int:
        return max(0, self.total - self.spent)

    def spend(self, n: int) -> None:
        with self._lock:
            self.spent += n


class Watch:
    """Watches one request: deadline, minimum rate and byte cap (see the module docstring).

    Use as a context manager around the request and the reading of its body; pass
    :meth:`trace` as the request's ``trace`` extension and read the body through :meth:`chunks`.

    Args:
        limits: the :class:`FetchLimits`.
        where: the source, as errors name it (``gateway http://...``).
        what: what is asked, as errors name it (``the CAR of bafy...``).
        cap: the most bytes the body may have (see :meth:`set_cap`).
        error: the :class:`FetchLimitError` subclass to raise (the source's own).
        budget: the fetch's :class:`Budget` (default: ``limits.max_bytes`` for this request
            alone); what the request reads is spent from it when the watch stops.
    """

    def __init__(self, limits: FetchLimits, where: str, what: str, cap: int, *,
                 error: type[FetchLimitError] = FetchLimitError, budget: Budget | None = None) -> None:
        self.limits = limits
        self.where = where
        self.what = what
        self.error = error
        self.budget = budget
        self._most = budget.left if budget is not None else limits.max_bytes
        self.cap = min(cap, self._most)
        self._firm = True
        self.read = 0
        self.declared: int | None = None
        self.reason: str | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._watch, name="elements-fetch-watch", daemon=True)
        self._thread.start()

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if not self._done.is_set():
            self._done.set()
            if self.budget is not None:
                self.budget.spend(self.read)

    # -- the request's socket ------------------------------------------------------------------

    def trace(self, event: str, info: dict) -> None:
        """httpx's ``trace`` extension: keep the socket of the connection the request opens."""
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
        if self.reason is not None:
            self._shutdown()

    def _shutdown(self) -> None:
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                # The plain socket's shutdown, also for TLS: it wakes the reading thread without
                # touching the TLS object that thread is inside.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except (OSError, ValueError):
                pass

    def _fire(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self._shutdown()

    def _watch(self) -> None:
        limits = self.limits
        deadline_at = self._started + limits.deadline
        mark_time, mark_bytes = self._started, 0
        while True:
            wake = min(mark_time + limits.timeout, deadline_at)
            if self._done.wait(max(0.0, wake - time.monotonic())):
                return
            now = time.monotonic()
            if now >= deadline_at:
                self._fire(
                    f"{self.where} did not finish {self.what} within the deadline of {limits.deadline:g}s "
                    f"({self.read:,} bytes received); try another source, or raise ELEMENTS_FETCH_DEADLINE for a slow link"
                )
                return
            elapsed = now - mark_time
            got = self.read - mark_bytes
            need = min(limits.min_rate * elapsed, max(0, self.cap - mark_bytes))
            if limits.min_rate and got < need:
                self._fire(
                    f"{self.where} sent {got:,} bytes of {self.what} in {elapsed:.1f}s, below the minimum of "
                    f"{limits.min_rate:,} bytes/s; it is stalling, try another source (ELEMENTS_FETCH_MIN_RATE sets the minimum)"
                )
                return
            mark_time, mark_bytes = now, self.read

    # -- the body ------------------------------------------------------------------------------

    def set_cap(self, cap: int, *, firm: bool = True) -> None:
        """Lower or raise the cap (a DAG's walk knows more with every block), never over the budget.

        A declared length over a ``firm`` cap is refused; a cap that is not firm (what a DAG may
        send before its root says how big it is) holds the bytes read only.
        """
        self.cap = min(cap, self._most)
        self._firm = firm
        limit = self.cap if firm else self._most
        if self.declared is not None and self.declared > limit:
            self._refuse(f"{self.where} declares {self.declared:,} bytes for {self.what}, {self._over(limit)}")

    def _over(self, limit: int) -> str:
        if limit == MAX_ANSWER:
            return (f"over the {limit:,}-byte limit on one answer (SERVICE_ANSWER_BYTES in docs/limits.md); "
                    "check that the URL is a Kubo RPC API or a gateway")
        if limit >= self._most:
            return (f"over the fetch's byte budget of {limit:,} (ELEMENTS_FETCH_MAX_BYTES); "
                    "raise it, or try another source")
        return f"over the {limit:,} it can need; it is not trustworthy, try another source"

    def headers(self, response: httpx.Response) -> None:
        """Check the answer's declared length against the cap before any of the body is read."""
        length = response.headers.get("content-length")
        if length is not None and length.strip().isdigit():
            self.declared = int(length)
            self.set_cap(self.cap, firm=self._firm)

    def count(self, n: int) -> None:
        """Count ``n`` bytes just received; raises FetchLimitError over the cap or once the watchdog fired."""
        self.read += n
        if self.read > self.cap:
            self._refuse(f"{self.where} sent more bytes for {self.what} than allowed: {self._over(self.cap)}")
        if self.reason is not None:
            raise self.error(self.reason)

    def chunks(self, body: Iterable[bytes]) -> Iterator[bytes]:
        """The body's chunks, counted; a transport error after the watchdog fired is its reason."""
        import httpx

        try:
            for chunk in body:
                self.count(len(chunk))
                yield chunk
        except httpx.TransportError:
            self.raise_if_fired()
            raise

    def raise_if_fired(self) -> None:
        """Raise the watchdog's FetchLimitError if it ended the request (call on any transport error)."""
        if self.reason is not None:
            raise self.error(self.reason) from None

    def _refuse(self, reason: str) -> None:
        self._fire(reason)
        raise self.error(self.reason or reason)


class DagWalk:
    """Admits a DAG's blocks as they arrive, and bounds the bytes the rest of it can need.

    A block is admitted only if a block already received links to it (the root first), and
    only once: the first block outside the DAG, out of order, or sent twice is refused (a
    :class:`CARError`), before it is staged. The bound follows the declared sizes (``Tsize``:
    the block and everything under it) of the blocks linked but not yet received, with the CAR's
    section heads (see :func:`_allowance`); a DAG that does not declare sizes, or understates
    them, is bounded by the byte budget alone.

    Args:
        root: the DAG asked for.
        where: the source, as errors name it.
        watch: the request's :class:`Watch`, whose cap follows the bound (its budget at most).
    """

    def __init__(self, root: CID, where: str, watch: Watch | None = None) -> None:
        self.root = root
        self.where = where
        self.watch = watch
        self.blocks = 0
        self._wanted: dict[bytes, tuple[CID, int | None]] = {root.multihash: (root, None)}
        self._received: set[bytes] = set()
        self._pending = 0  # declared bytes (and overheads) of the blocks wanted, when all declare it
        self._bounded = True
        if watch is not None:
            watch.set_cap(CAR_HEAD + MAX_BLOCK + SECTION_OVERHEAD, firm=False)

    def accept(self, cid: CID, block: bytes) -> None:
        """Admit a verified block (``import_car``'s ``accept``) or raise :class:`CARError`."""
        if cid.hash_code == IDENTITY:  # its bytes are its CID: nothing to fetch, nothing to bound
            return
        entry = self._wanted.pop(cid.multihash, None)
        if entry is None:
            if cid.multihash in self._received:
                raise CARError(f"{self.where} sent block {cid} of {self.root} twice; the source is not trustworthy, try another")
            raise CARError(
                f"{self.where} sent 1 block(s) outside the DAG of {self.root}: {cid}, which no block before it "
                "links to (or it came out of order); the source is not trustworthy, try another"
            )
        linked, declared = entry
        self._received.add(cid.multihash)
        self.blocks += 1
        if declared is not None:
            self._pending -= _allowance(declared)
            if len(block) > declared:
                self._bounded = False  # the DAG understates its sizes: only the budget bounds it
        for child, size in _links(linked, block):
            if child.hash_code == IDENTITY or child.multihash in self._received or child.multihash in self._wanted:
                continue
            self._wanted[child.multihash] = (child, size)
            if size is None:
                self._bounded = False
            else:
                self._pending += _allowance(size)
        if self.watch is not None:
            # What was read so far (a little of it read ahead) plus what the rest can hold.
            self.watch.set_cap(self.watch.read + self._pending if self._bounded else _UNBOUNDED)

    @property
    def complete(self) -> bool:
        return not self._wanted


_UNBOUNDED = 1 << 62


def _allowance(tsize: int) -> int:
    """The most CAR bytes a sub-DAG of declared size ``tsize`` can take: its blocks, and a section
    head per block. A block's section head (its CID and a varint) is no longer than the link to
    it in its parent plus a few bytes, and those links are inside ``tsize``: so twice it, plus
    the head of the sub-DAG's own root."""
    return 2 * tsize + SECTION_OVERHEAD


def _links(cid: CID, block: bytes) -> list[tuple[CID, int | None]]:
    if cid.codec == RAW:
        return []
    if cid.codec == DAG_PB:
        return [(link.cid, link.tsize if link.tsize else None) for link in decode_node(block).links]
    raise DAGError(f"block {cid} has codec {cid.codec_name}; only UnixFS DAGs (dag-pb, raw) are supported")
