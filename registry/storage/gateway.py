"""A trustless HTTP gateway client (ipfs/specs ``http-gateways/trustless-gateway``).

A gateway is never trusted: a block asked with ``?format=raw`` must hash to its CID; a DAG
asked with ``?format=car`` must declare exactly the root asked, hold only blocks that hash to
their CIDs, hold every block of the DAG and nothing else. Blocks are staged apart from the
store and committed only when all of that holds, so a lying gateway leaves nothing behind.
"""

from __future__ import annotations

from typing import Iterator

import httpx

from .car import CarImport, IterStream, import_car
from .cid import CID, IDENTITY
from .errors import BlockIntegrityError, BlockNotFound, GatewayError

__all__ = ["Gateway", "RAW_TYPE", "CAR_TYPE"]

RAW_TYPE = "application/vnd.ipld.raw"
CAR_TYPE = "application/vnd.ipld.car"
# A single block larger than this is not a UnixFS block; do not read more.
MAX_BLOCK = 4 << 20


class Gateway:
    """One trustless gateway, e.g. ``http://127.0.0.1:8080`` or ``https://trustless-gateway.link``."""

    def __init__(self, url: str, *, timeout: float = 60.0, transport: httpx.BaseTransport | None = None) -> None:
        url = url.strip().rstrip("/")
        if "://" not in url:
            url = "http://" + url
        self.url = url
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), transport=transport, follow_redirects=True
        )

    def __repr__(self) -> str:
        return f"Gateway({self.url!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "Gateway":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, cid: CID, fmt: str, accept: str, extra: dict | None = None, accept_params: str = "") -> httpx.Response:
        params = {"format": fmt, **(extra or {})}
        headers = {"Accept": accept + accept_params}
        request = self._client.build_request("GET", f"{self.url}/ipfs/{cid}", params=params, headers=headers)
        try:
            response = self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise GatewayError(
                f"gateway {self.url} did not answer {cid} in time ({type(exc).__name__}); try again or another gateway"
            ) from None
        except httpx.TransportError as exc:
            raise GatewayError(
                f"gateway {self.url} is unreachable ({type(exc).__name__}); check --gateway / ELEMENTS_GATEWAY"
            ) from None
        if response.status_code == 200:
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != accept:
                response.close()
                raise GatewayError(
                    f"gateway {self.url} answered {cid} with {kind or 'no content type'} instead of {accept}; "
                    "it is not a trustless gateway"
                )
            return response
        response.close()
        if response.status_code in (404, 410, 451) or response.status_code == 504:
            raise BlockNotFound(cid, f"gateway {self.url}", "try another gateway or a Kubo node")
        raise GatewayError(f"gateway {self.url} refused {cid} (HTTP {response.status_code}); try another gateway")

    def get_block(self, cid: CID | str) -> bytes:
        """One block (``?format=raw``), verified against its CID.

        Raises:
            BlockNotFound: the gateway does not have it.
            BlockIntegrityError: it answered other bytes.
            GatewayError: unreachable or not a trustless gateway.
        """
        cid = CID.parse(cid)
        if cid.hash_code == IDENTITY:
            return cid.digest
        response = self._get(cid, "raw", RAW_TYPE)
        try:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BLOCK:
                    raise GatewayError(f"gateway {self.url} sent over {MAX_BLOCK} bytes for block {cid}; refusing it")
        except httpx.TransportError as exc:
            raise GatewayError(f"gateway {self.url} broke off block {cid} ({type(exc).__name__}); try again") from None
        finally:
            response.close()
        block = bytes(body)
        if not cid.matches(block):
            raise BlockIntegrityError(cid, f"gateway {self.url}")
        return block

    def fetch_dag(self, root: CID | str, store) -> CarImport:
        """Fetch a whole DAG (``?format=car&dag-scope=all``) into ``store``: all of it, verified, or nothing.

        Raises:
            CARError: malformed or truncated CAR, another root, or blocks outside the DAG.
            BlockIntegrityError: a block that does not match its CID.
            IncompleteDAG: blocks of the DAG missing from the CAR.
            BlockNotFound / GatewayError: as for :meth:`get_block`.
        """
        root = CID.parse(root)
        response = self._get(root, "car", CAR_TYPE, {"dag-scope": "all"}, "; version=1; order=dfs; dups=n")
        try:
            return import_car(
                IterStream(self._body(response, root)), store, where=f"gateway {self.url}", expect_roots=[root], exact=True
            )
        finally:
            response.close()

    def _body(self, response: httpx.Response, cid: CID) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes(1 << 16)
        except httpx.TransportError as exc:
            raise GatewayError(f"gateway {self.url} broke off the CAR of {cid} ({type(exc).__name__}); try again") from None
