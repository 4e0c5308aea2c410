"""One front over every store: the local block store first, then Kubo, then gateways.

``Sources.ensure(cid)`` makes a whole DAG present and verified in the local store, asking
each source in turn for the whole DAG as a CAR (verified, all or nothing, within the fetch
limits); ``export_file(cid, path)`` writes a file out of it, healing blocks that rotted on
disk; ``publish(cid)`` puts a local DAG into the configured Kubo node and pins it.

Which source was tried and why it failed is logged at debug level (``elements --debug``) and
named in the error when none could provide the DAG.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from ..config import FetchLimits, Settings
from ..errors import ElementsError, NotFoundError, ServiceError
from .blockstore import BlockStore
from .cid import CID
from .errors import BlockIntegrityError, BlockNotFoundError, DAGError, FetchLimitError, IncompleteDAGError
from .limits import Budget
from .unixfs import file_matches, file_size

if TYPE_CHECKING:
    from .gateway import Gateway
    from .kubo import Kubo

__all__ = ["open_store", "Sources"]

log = logging.getLogger(__name__)


def open_store(settings: Settings) -> BlockStore:
    """The local block store of these settings (``$ELEMENTS_HOME/blocks``)."""
    return BlockStore(settings.home / "blocks")


class Sources:
    """The local store plus, optionally, a Kubo node and trustless gateways.

    Args:
        store: the local :class:`BlockStore`; every DAG fetched lands here.
        kubo: a :class:`Kubo` or its API URL (``None``: no Kubo).
        gateways: :class:`Gateway` objects or URLs, tried in order.
        limits: what fetching may cost (:class:`FetchLimits`): given to the Kubo and gateways
            made here from URLs; its ``max_bytes`` is the budget of each :meth:`ensure`.
    """

    def __init__(self, store: BlockStore, kubo: Kubo | str | None = None, gateways: Iterable[Gateway | str] = (),
                 *, limits: FetchLimits | None = None) -> None:
        self.store = store
        self.limits = limits or FetchLimits()
        # The HTTP clients (httpx: a tenth of a second to import) only when a node is configured.
        if isinstance(kubo, str):
            from .kubo import Kubo

            kubo = Kubo(kubo, limits=self.limits)
        self.kubo = kubo
        self.gateways = []
        for gateway in gateways:
            if isinstance(gateway, str):
                from .gateway import Gateway

                gateway = Gateway(gateway, limits=self.limits)
            self.gateways.append(gateway)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Sources":
        return cls(open_store(settings), settings.ipfs_api, settings.gateways, limits=settings.fetch)

    def close(self) -> None:
        if self.kubo is not None:
            self.kubo.close()
        for gateway in self.gateways:
            gateway.close()

    def __enter__(self) -> "Sources":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ensure(self, cid: CID | str) -> CID:
        """Make the whole DAG under ``cid`` present and verified in the local store.

        Each source is asked in turn; one that is down, lacks the DAG, lies, stalls, overstays
        its deadline or sends more than the DAG can need is abandoned for the next. All the
        sources together read at most ``limits.max_bytes``.

        Returns the CID. Raises, when no source could provide it, an error naming every source
        tried and why it failed: the first integrity error (:class:`BlockIntegrityError`,
        :class:`CARError`, ...) if a source lied, else :class:`BlockNotFoundError` /
        :class:`IncompleteDAGError`.
        """
        cid = CID.parse(cid)
        missing = self.store.missing(cid)
        if not missing:
            return cid
        budget = Budget(self.limits.max_bytes)
        failures: list[tuple[str, ElementsError]] = []
        for name, fetch in self._remote():
            if budget.left <= 0:
                failures.append((name, FetchLimitError(
                    f"{name} was not asked: the fetch's byte budget of {budget.total:,} bytes is spent (ELEMENTS_FETCH_MAX_BYTES)"
                )))
                continue
            log.debug("fetching %s from %s (%d block(s) missing)", cid, name, len(missing))
            spent = budget.spent
            try:
                fetch(cid, budget)
            except ElementsError as exc:  # down, absent, lying or too costly: note it, try the next
                log.debug("%s failed for %s after %d bytes: %s", name, cid, budget.spent - spent, exc)
                failures.append((name, exc))
                continue
            missing = self.store.missing(cid)
            if not missing:
                log.debug("%s provided %s (%d bytes read)", name, cid, budget.spent - spent)
                return cid
            failures.append((name, IncompleteDAGError(cid, missing, name)))
        raise _none_could(cid, missing, failures)

    def _remote(self) -> Iterator[tuple[str, Callable[[CID, Budget], object]]]:
        if self.kubo is not None:
            kubo = self.kubo
            yield f"Kubo at {kubo.url}", lambda c, budget: kubo.dag_export(c, self.store, budget=budget)
        for gateway in self.gateways:
            yield f"gateway {gateway.url}", lambda c, budget, g=gateway: g.fetch_dag(c, self.store, budget=budget)  # type: ignore[misc]  # a lambda with a default

    def cat(self, cid: CID | str) -> Iterator[bytes]:
        """A file's bytes, fetched first if needed, verified block by block."""
        return self.store.cat(self.ensure(cid))

    def export_file(self, cid: CID | str, path: str | os.PathLike, *, size: int | None = None) -> int:
        """Write a UnixFS file to ``path`` atomically, fetched first if needed (see
        :meth:`BlockStore.export_file`); returns the bytes written.

        ``size``: the size the caller was told (a manifest's). A DAG whose root declares another
        is refused before a byte is written: a few blocks that link one child many times declare
        a file of petabytes, and it would be written out in full before any later check.

        A block that rotted on disk is caught on read: every corrupt block of the DAG is then
        removed, fetched again from the sources, and the export done once more.

        Raises:
            DAGError: the file's declared size is not ``size``.
        """
        cid = self.ensure(cid)
        if size is not None:
            declared = file_size(cid, self.store.get)
            if declared != size:
                raise DAGError(f"{cid} declares a {declared:,}-byte file where {size:,} bytes are expected; it is not the file named")
        for attempt in range(3):
            try:
                return self.store.export_file(cid, path)
            except BlockIntegrityError as exc:
                if attempt == 2:
                    raise
                removed = self.store.scrub(cid)
                log.debug("%s: %d corrupt block(s) removed from the local store (%s); fetching again", cid, len(removed), exc)
                self.ensure(cid)
        raise AssertionError("unreachable")  # pragma: no cover

    def matches_file(self, cid: CID | str, path: str | os.PathLike) -> bool:
        """Whether the local file ``path`` holds exactly the UnixFS file ``cid`` (a cached copy,
        say): hashed against the DAG's leaves, whose nodes come from the store (fetched again
        if absent or corrupt there). See :func:`registry.storage.unixfs.file_matches`."""
        cid = CID.parse(cid)
        for attempt in range(2):
            try:
                return file_matches(cid, self.store.get, path)
            except (NotFoundError, BlockIntegrityError):  # get() removed a corrupt node
                if attempt:
                    raise
                self.ensure(cid)
        raise AssertionError("unreachable")  # pragma: no cover

    def publish(self, cid: CID | str, *, pin: bool = True, progress: Callable[[int], None] | None = None) -> bool:
        """Put the local DAG under ``cid`` into Kubo and pin it; ``False`` when no Kubo is configured.

        ``progress(n)`` is called with each block's size as it is sent (progress bars).

        Raises:
            IncompleteDAGError / BlockNotFoundError: the DAG is not complete locally.
            KuboError: the node is down or refused.
        """
        cid = self.store.require(cid)
        if self.kubo is None:
            return False
        get_block: Callable[[CID | str], bytes] = self.store.get
        if progress is not None:
            def get_block(block_cid: CID | str) -> bytes:
                data = self.store.get(block_cid)
                progress(len(data))
                return data
        self.kubo.put_dag(cid, get_block, pin=pin)
        return True


def _none_could(cid: CID, missing: list[CID], failures: list[tuple[str, ElementsError]]) -> ElementsError:
    """The error of an ensure no source could satisfy: its class from the failures, its message naming each."""
    if not failures:
        hint = "configure --ipfs-api or --gateway, or import a CAR that holds it"
        if missing == [cid]:
            return BlockNotFoundError(cid, "the local block store or any source", hint)
        return IncompleteDAGError(cid, missing)
    lies = [exc for _, exc in failures if not isinstance(exc, (NotFoundError, ServiceError))]
    if lies:
        error: ElementsError = lies[0]
    elif missing == [cid]:
        error = BlockNotFoundError(cid, "the local block store or any source")
    else:
        error = IncompleteDAGError(cid, missing)
    reasons = "; ".join(f"{name}: {_reason(name, exc)}" for name, exc in failures)
    what = f"block {cid}" if missing == [cid] else f"DAG {cid} ({len(missing)} block(s) missing)"
    # The class says what went wrong (a lie, or absence); the message says it for every source.
    error.args = (
        f"no source could provide {what}: {reasons}; fix or add a source (--ipfs-api, --gateway) "
        "or import a CAR that holds it",
    )
    return error


def _reason(name: str, exc: Exception) -> str:
    message = str(exc)
    return message[len(name):].lstrip(" :") if message.startswith(name) else message
