"""A trustless HTTP gateway client (ipfs/specs ``http-gateways/trustless-gateway``).

A gateway is never trusted: a block asked with ``?format=raw`` must hash to its CID; a DAG
asked with ``?format=car`` must declare exactly the root asked, hold only blocks that hash to
their CIDs, hold every block of the DAG and nothing else. Blocks are staged apart from the
store and committed only when all of that holds, so a lying gateway leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterator

import httpx

from ..config import FetchLimits
from .car import CarImport, IterStream, import_car
from .cid import CID, IDENTITY
from .errors import BlockIntegrityError, BlockNotFoundError, GatewayError, GatewayLimitError
from .limits import MAX_BLOCK, Budget, DagWalk, Watch, http_client

__all__ = ["Gateway", "RAW_TYPE", "CAR_TYPE"]

RAW_TYPE = "application/vnd.ipld.raw"
CAR_TYPE = "application/vnd.ipld.car"


class Gateway:
    """One trustless gateway, e.g. ``http://127.0.0.1:8080`` or ``https://trustless-gateway.link``.

    Args:
        limits: what one request may cost (:class:`~registry.config.FetchLimits`; default: the defaults).
        timeout: overrides ``limits.timeout`` (seconds to connect, answer, or stay silent).
    """

    def __init__(self, url: str, *, timeout: float | None = None, limits: FetchLimits | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        url = url.strip().rstrip("/")
        if "://" not in url:
            url = "http://" + url
        self.url = url
        limits = limits or FetchLimits()
        self.limits = replace(limits, timeout=timeout) if timeout is not None else limits
        # base_url only for its check (requests name their whole URL): http_client refuses an invalid one
        self._client = http_client(self.limits, transport=transport, follow_redirects=True, base_url=url)

    def __repr__(self) -> str:
        return f"Gateway({self.url!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "Gateway":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _watch(self, what: str, cap: int, budget: Budget | None = None) -> Watch:
        return Watch(self.limits, f"gateway {self.url}", what, cap, error=GatewayLimitError, budget=budget)

    def _get(self, cid: CID, fmt: str, accept: str, watch: Watch, extra: dict | None = None,
             accept_params: str = "") -> httpx.Response:
        params = {"format": fmt, **(extra or {})}
        headers = {"Accept": accept + accept_params}
        request = self._client.build_request(
            "GET", f"{self.url}/ipfs/{cid}", params=params, headers=headers, extensions={"trace": watch.trace}
        )
        try:
            response = self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            watch.raise_if_fired()
            raise GatewayError(
                f"gateway {self.url} did not answer {cid} within {self.limits.timeout:g}s ({type(exc).__name__}); "
                "try again or another gateway"
            ) from None
        except httpx.TransportError as exc:
            watch.raise_if_fired()
            raise GatewayError(
                f"gateway {self.url} is unreachable ({type(exc).__name__}); check --gateway / ELEMENTS_GATEWAY"
            ) from None
        except httpx.HTTPError as exc:  # a redirect loop, say
            raise GatewayError(f"gateway {self.url} answered {cid} with {type(exc).__name__}: {exc}; try another gateway") from None
        try:
            if response.status_code == 200:
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind != accept:
                    raise GatewayError(
                        f"gateway {self.url} answered {cid} with {kind or 'no content type'} instead of {accept}; "
                        "it is not a trustless gateway"
                    )
                encoding = response.headers.get("content-encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise GatewayError(
                        f"gateway {self.url} answered {cid} compressed ({encoding}) although asked not to; "
                        "it is not a trustless gateway"
                    )
                watch.headers(response)
                return response
            if response.status_code in (404, 410, 451) or response.status_code == 504:
                raise BlockNotFoundError(cid, f"gateway {self.url}", "try another gateway or a Kubo node")
            raise GatewayError(f"gateway {self.url} refused {cid} (HTTP {response.status_code}); try another gateway")
        except BaseException:
            response.close()
            raise

    def get_block(self, cid: CID | str) -> bytes:
        """One block (``?format=raw``), verified against its CID, at most :data:`MAX_BLOCK` bytes.

        Raises:
            BlockNotFoundError: the gateway does not have it.
            BlockIntegrityError: it answered other bytes.
            GatewayLimitError: too slow, too long, or more bytes than a block can have.
            GatewayError: unreachable or not a trustless gateway.
        """
        cid = CID.parse(cid)
        if cid.hash_code == IDENTITY:
            return cid.digest
        with self._watch(f"block {cid}", MAX_BLOCK) as watch:
            response = self._get(cid, "raw", RAW_TYPE, watch)
            try:
                body = bytearray()
                for chunk in watch.chunks(response.iter_raw()):
                    body += chunk
            except httpx.TransportError as exc:
                raise GatewayError(f"gateway {self.url} broke off block {cid} ({type(exc).__name__}); try again") from None
            finally:
                response.close()
        block = bytes(body)
        if not cid.matches(block):
            raise BlockIntegrityError(cid, f"gateway {self.url}")
        return block

    def fetch_dag(self, root: CID | str, store, *, budget: Budget | None = None) -> CarImport:
        """Fetch a whole DAG (``?format=car&dag-scope=all``) into ``store``: all of it, verified, or nothing.

        The CAR is read only as far as the DAG needs: the first block that no block before it
        links to ends the fetch, and the bytes read are bounded by the sizes the DAG declares
        (see :class:`~registry.storage.limits.DagWalk`) and by ``budget``.

        Raises:
            CARError: malformed or truncated CAR, another root, or a block outside the DAG.
            BlockIntegrityError: a block that does not match its CID.
            IncompleteDAGError: blocks of the DAG missing from the CAR.
            GatewayLimitError: too slow, too long, or more bytes than the DAG can need.
            BlockNotFoundError / GatewayError: as for :meth:`get_block`.
        """
        root = CID.parse(root)
        where = f"gateway {self.url}"
        with self._watch(f"the CAR of {root}", MAX_BLOCK, budget) as watch:
            walk = DagWalk(root, where, watch)
            response = self._get(root, "car", CAR_TYPE, watch, {"dag-scope": "all"}, "; version=1; order=dfs; dups=n")
            try:
                return import_car(
                    IterStream(self._body(response, root, watch)), store, where=where, expect_roots=[root], exact=True,
                    accept=walk.accept,
                )
            finally:
                response.close()

    def _body(self, response: httpx.Response, cid: CID, watch: Watch) -> Iterator[bytes]:
        try:
            yield from watch.chunks(response.iter_raw())
        except httpx.TransportError as exc:
            raise GatewayError(f"gateway {self.url} broke off the CAR of {cid} ({type(exc).__name__}); try again") from None
