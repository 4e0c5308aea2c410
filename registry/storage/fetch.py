"""One front over every store: the local block store first, then Kubo, then gateways.

``Sources.ensure(cid)`` makes a whole DAG present and verified in the local store, asking
each source in turn for the whole DAG as a CAR (verified, all or nothing); ``publish(cid)``
puts a local DAG into the configured Kubo node and pins it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from ..config import Settings
from ..errors import ElementsError, ServiceError
from .blockstore import BlockStore
from .cid import CID
from .errors import BlockNotFound, IncompleteDAG

if TYPE_CHECKING:
    from .gateway import Gateway
    from .kubo import Kubo

__all__ = ["open_store", "Sources"]


def open_store(settings: Settings) -> BlockStore:
    """The local block store of these settings (``$ELEMENTS_HOME/blocks``)."""
    return BlockStore(settings.home / "blocks")


class Sources:
    """The local store plus, optionally, a Kubo node and trustless gateways.

    Args:
        store: the local :class:`BlockStore`; every DAG fetched lands here.
        kubo: a :class:`Kubo` or its API URL (``None``: no Kubo).
        gateways: :class:`Gateway` objects or URLs, tried in order.
    """

    def __init__(self, store: BlockStore, kubo: Kubo | str | None = None, gateways: Iterable[Gateway | str] = ()) -> None:
        self.store = store
        # The HTTP clients (httpx: a tenth of a second to import) only when a node is configured.
        if isinstance(kubo, str):
            from .kubo import Kubo

            kubo = Kubo(kubo)
        self.kubo = kubo
        self.gateways = []
        for gateway in gateways:
            if isinstance(gateway, str):
                from .gateway import Gateway

                gateway = Gateway(gateway)
            self.gateways.append(gateway)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Sources":
        return cls(open_store(settings), settings.ipfs_api, settings.gateways)

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

        Returns the CID. Raises :class:`BlockNotFound` / :class:`IncompleteDAG` naming every
        source tried when none could provide it, or the first integrity error if a source lied
        and no other source could provide it.
        """
        cid = CID.parse(cid)
        missing = self.store.missing(cid)
        if not missing:
            return cid
        failures: list[str] = []
        lies: list[ElementsError] = []
        for name, fetch in self._remote():
            try:
                fetch(cid)
            except (BlockNotFound, IncompleteDAG, ServiceError) as exc:
                failures.append(f"{name}: {exc}")
                continue
            except ElementsError as exc:  # a lying or broken source: note it, try the next
                lies.append(exc)
                failures.append(f"{name}: {exc}")
                continue
            missing = self.store.missing(cid)
            if not missing:
                return cid
            failures.append(f"{name}: {len(missing)} block(s) still missing")
        if lies:
            raise lies[0]
        if not failures:
            hint = "configure --ipfs-api or --gateway, or import a CAR that holds it"
        else:
            hint = "tried " + "; ".join(failures)
        if missing == [cid]:
            raise BlockNotFound(cid, "the local block store or any source", hint[:600])
        raise IncompleteDAG(cid, missing)

    def _remote(self) -> Iterator[tuple[str, object]]:
        if self.kubo is not None:
            yield f"Kubo {self.kubo.url}", lambda c: self.kubo.dag_export(c, self.store)
        for gateway in self.gateways:
            yield f"gateway {gateway.url}", lambda c, g=gateway: g.fetch_dag(c, self.store)

    def cat(self, cid: CID | str) -> Iterator[bytes]:
        """A file's bytes, fetched first if needed, verified block by block."""
        return self.store.cat(self.ensure(cid))

    def publish(self, cid: CID | str, *, pin: bool = True, progress: Callable[[int], None] | None = None) -> bool:
        """Put the local DAG under ``cid`` into Kubo and pin it; ``False`` when no Kubo is configured.

        ``progress(n)`` is called with each block's size as it is sent (progress bars).

        Raises:
            IncompleteDAG / BlockNotFound: the DAG is not complete locally.
            KuboError: the node is down or refused.
        """
        cid = self.store.require(cid)
        if self.kubo is None:
            return False
        get_block = self.store.get
        if progress is not None:
            def get_block(block_cid: CID) -> bytes:
                data = self.store.get(block_cid)
                progress(len(data))
                return data
        self.kubo.put_dag(cid, get_block, pin=pin)
        return True
