"""JSON-RPC over HTTP with limits: every answer of a node is hostile input.

:class:`BoundedHTTPProvider` is the transport :func:`registry.chain.connection.connect` uses for
every ``http(s)://`` endpoint: the chain's readers (:mod:`registry.chain.reader`) talk JSON-RPC
through it directly, and web3, for the commands that send transactions, through
:func:`web3_provider`, so both meet the same limits. It holds each request to :class:`RpcLimits`:

* a **deadline** per request, from sending it to the last byte of the answer (a node that stalls,
  or drips one byte at a time, is abandoned when the deadline passes);
* a **byte budget** per answer (declared ``Content-Length``, compressed and decompressed bytes);
* a **nesting cap** checked on the raw bytes before ``json.loads`` (importing py-evm raises
  Python's recursion limit so far that deeply nested JSON would overflow the C stack);
* a **log cap** per ``eth_getLogs`` answer: more entries are refused the way a capping public
  node refuses them (a JSON-RPC error), so callers split the block range and ask again;
* batch answers are matched to their calls by id (a missing, extra or repeated id is refused).

A broken limit raises :class:`~registry.chain.errors.RpcResponseError`; a node that cannot be
reached or misses the deadline raises :class:`~registry.chain.errors.RpcUnavailableError`. Both
name the endpoint and are one line.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import socket
import ssl
import threading
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence, cast
from urllib.parse import unquote, urlsplit

from ..limits import SERVICE_ANSWER_BYTES, LimitExceededError, NotJSONError, loads_json
from .errors import RpcResponseError, RpcUnavailableError

if TYPE_CHECKING:
    from web3.types import RPCEndpoint, RPCResponse

__all__ = ["RpcLimits", "DEFAULT_LIMITS", "BoundedHTTPProvider", "JsonRpcTransport", "public_url", "web3_provider"]


@dataclass(frozen=True)
class RpcLimits:
    """What one JSON-RPC answer may cost.

    Attributes:
        timeout: seconds for one request, from sending it to the last byte of the answer.
        max_bytes: bytes of one answer (after decompression).
        max_logs: entries of one ``eth_getLogs`` answer (10,000 is also what common public nodes allow).
    """

    timeout: float = 30.0
    max_bytes: int = int(SERVICE_ANSWER_BYTES)
    max_logs: int = 10_000


DEFAULT_LIMITS = RpcLimits()

# The error code public nodes use for "query returned more than N results" (EIP-1474: limit exceeded).
_LIMIT_EXCEEDED = -32005
_CHUNK = 64 * 1024


def public_url(url: str) -> str:
    """A URL as it may appear in a message: without a password in it."""
    from urllib.parse import urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class BoundedHTTPProvider:
    """JSON-RPC over HTTP with a deadline, a byte budget and parsing limits on every answer.

    It speaks web3's provider protocol (``make_request``, ``make_batch_request``: answers as
    dicts) without importing web3; :func:`web3_provider` wraps it for web3 when a command sends
    a transaction.

    Attributes:
        limits: the :class:`RpcLimits` every request is held to.
        requests_sent: how many HTTP requests this provider has sent (one per batch).
    """

    def __init__(self, url: str, limits: RpcLimits = DEFAULT_LIMITS, *, hint: str = "check the node is running and the URL") -> None:
        self.url = self.endpoint_uri = str(url)
        self.limits = limits
        self.hint = hint
        self.requests_sent = 0
        self._local = threading.local()
        self._ids = itertools.count(1)
        self._count_lock = threading.Lock()

    def __str__(self) -> str:
        return f"RPC connection {public_url(self.url)}"

    # -- the provider interface (web3's, without web3) ----------------------------------------

    def make_request(self, method: str, params: Any) -> dict[str, Any]:
        request_id = next(self._ids)
        body = _encode({"jsonrpc": "2.0", "method": method, "params": params or [], "id": request_id})
        answer = self._exchange(body, method)
        if not isinstance(answer, dict) or not ("result" in answer or "error" in answer):
            raise RpcResponseError(f"{public_url(self.url)} answered {method} with something that is not a JSON-RPC answer; check the URL")
        return self._capped(method, answer)

    def make_batch_request(self, calls: Sequence[tuple[str, Any]]) -> list[dict[str, Any]] | object:
        ids = [next(self._ids) for _ in calls]
        body = _encode([{"jsonrpc": "2.0", "method": m, "params": p or [], "id": i} for (m, p), i in zip(calls, ids)])
        answer: object = self._exchange(body, f"a batch of {len(calls)} calls")
        if not isinstance(answer, list):
            return answer  # one error object: the node does not take batches (callers fall back)
        by_id: dict[int, dict[str, Any]] = {}
        for item in answer:
            key = _as_id(item.get("id")) if isinstance(item, dict) else None
            if key is None or key in by_id or not ("result" in item or "error" in item):
                raise RpcResponseError(f"{public_url(self.url)} answered a batch with a malformed or repeated entry; check the node")
            by_id[key] = item
        if sorted(by_id) != sorted(ids):
            raise RpcResponseError(
                f"{public_url(self.url)} answered a batch of {len(calls)} calls with {len(answer)} answers that do not match them; check the node"
            )
        return [self._capped(method, by_id[i]) for (method, _), i in zip(calls, ids)]

    # -- the exchange -------------------------------------------------------------------------

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        """This thread's connection to the endpoint (kept alive between requests, like a session)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            parts = urlsplit(self.url)
            if parts.scheme == "https":
                connection = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout,
                                                         context=ssl.create_default_context())
            else:
                connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
            self._local.connection = connection
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()

    def _exchange(self, body: bytes, what: str) -> Any:
        """POST ``body`` and return the parsed answer, within every limit (registry.limits:
        size, nesting, number lengths, all measured before ``json.loads``)."""
        raw = self._post(body, what)
        try:
            return loads_json(raw, what=f"the answer of {public_url(self.url)} to {what}", max_bytes=SERVICE_ANSWER_BYTES)
        except LimitExceededError as exc:
            raise RpcResponseError(f"{exc}; this is not an Ethereum node, check the URL") from None
        except NotJSONError:
            raise RpcResponseError(
                f"{public_url(self.url)} does not answer JSON-RPC (its answer to {what} is not JSON); check the URL"
            ) from None

    def _post(self, body: bytes, what: str) -> bytes:
        """One POST over the standard library's HTTP client (no requests, no urllib3: a read
        command's start-up), every byte of the answer within the deadline and the byte budget."""
        limits, url = self.limits, public_url(self.url)
        deadline = time.monotonic() + limits.timeout
        with self._count_lock:
            self.requests_sent += 1
        parts = urlsplit(self.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Content-Type": "application/json", "Accept-Encoding": "gzip, deflate", "Accept": "application/json",
                   "Content-Length": str(len(body))}
        if parts.username is not None:
            token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        for attempt in range(2):
            connection = self._connection(min(10.0, limits.timeout))
            reused = connection.sock is not None
            try:
                connection.request("POST", target, body=body, headers=headers)
                if connection.sock is not None:
                    connection.sock.settimeout(max(0.001, deadline - time.monotonic()))
                response = connection.getresponse()
                break
            except (socket.timeout, TimeoutError):
                self._drop_connection()
                raise RpcUnavailableError(f"{url} did not answer {what} within {limits.timeout:.0f}s; check the node, or use another endpoint") from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                if reused and attempt == 0 and time.monotonic() < deadline and b"eth_send" not in body:
                    # The node closed a kept-alive connection: one fresh try for a read (never for a
                    # transaction, which the node may have taken before it hung up).
                    continue
                raise RpcUnavailableError(f"cannot reach a JSON-RPC node at {url} ({type(exc).__name__}); {self.hint}") from None
        try:
            declared = response.getheader("Content-Length", "") or ""
            if declared.isdigit() and int(declared) > limits.max_bytes:
                raise RpcResponseError(f"{url} announced a {int(declared):,}-byte answer to {what} (the limit is {limits.max_bytes:,}, SERVICE_ANSWER_BYTES in docs/limits.md); check the node")
            raw = self._read(response, connection, deadline, what)
            # A body read to its length leaves the response open (read1 never sees the end): close
            # it, or the kept-alive connection refuses the next request.
            response.close()
        except BaseException:
            self._drop_connection()  # an answer left half read would poison the next request
            raise
        if response.will_close:
            self._drop_connection()
        if response.status >= 400 and not raw.lstrip().startswith((b"{", b"[")):
            raise RpcUnavailableError(f"{url} answered {what} with HTTP {response.status}; check the URL (and any API key in it)")
        return raw

    def _read(self, response: http.client.HTTPResponse, connection: http.client.HTTPConnection, deadline: float, what: str) -> bytes:
        limits, url = self.limits, public_url(self.url)
        encoding = (response.getheader("Content-Encoding", "") or "").strip().lower()
        if encoding not in ("", "identity", "gzip", "deflate"):
            raise RpcResponseError(f"{url} answered {what} in an encoding this client does not read ({encoding}); check the node")
        inflate = zlib.decompressobj(zlib.MAX_WBITS | 32) if encoding in ("gzip", "deflate") else None
        parts: list[bytes] = []
        size = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RpcUnavailableError(f"{url} did not finish its answer to {what} within {limits.timeout:.0f}s; check the node, or use another endpoint")
            if connection.sock is not None:
                try:
                    connection.sock.settimeout(remaining)
                except OSError:
                    pass
            try:
                chunk = response.read1(_CHUNK)
            except (socket.timeout, TimeoutError):
                raise RpcUnavailableError(
                    f"{url} did not finish its answer to {what} within {limits.timeout:.0f}s; check the node, or use another endpoint"
                ) from None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                raise RpcUnavailableError(f"lost {url} while reading its answer to {what} ({type(exc).__name__}); check the node") from None
            if not chunk:
                break
            if inflate is not None:
                chunk = self._inflate(inflate, chunk, limits.max_bytes - size, what)
            size += len(chunk)
            if size > limits.max_bytes:
                raise RpcResponseError(f"{url} answered {what} with more than {limits.max_bytes:,} bytes (SERVICE_ANSWER_BYTES in docs/limits.md); check the node, or ask for less")
            parts.append(chunk)
        if inflate is not None:
            tail = inflate.flush()
            size += len(tail)
            if size > limits.max_bytes:
                raise RpcResponseError(f"{url} answered {what} with more than {limits.max_bytes:,} bytes (SERVICE_ANSWER_BYTES in docs/limits.md); check the node, or ask for less")
            parts.append(tail)
        return b"".join(parts)

    def _inflate(self, inflate: Any, chunk: bytes, budget: int, what: str) -> bytes:
        """Decompress one chunk, never producing more than ``budget`` + 1 bytes."""
        try:
            out: bytes = inflate.decompress(chunk, budget + 1)
        except zlib.error:
            raise RpcResponseError(f"{public_url(self.url)} answered {what} with a corrupt compressed body; check the node") from None
        if inflate.unconsumed_tail:
            raise RpcResponseError(
                f"{public_url(self.url)} answered {what} with more than {self.limits.max_bytes:,} bytes (SERVICE_ANSWER_BYTES in docs/limits.md); check the node, or ask for less"
            )
        return out

    def _capped(self, method: str, answer: dict[str, Any]) -> dict[str, Any]:
        """An ``eth_getLogs`` answer with more entries than the limit becomes the error a capping node gives."""
        if method == "eth_getLogs" and isinstance(answer.get("result"), list) and len(answer["result"]) > self.limits.max_logs:
            return {
                "jsonrpc": "2.0",
                "id": answer.get("id"),
                "error": {"code": _LIMIT_EXCEEDED, "message": f"query returned more than {self.limits.max_logs} results (this client's limit)"},
            }
        return answer


def _as_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _json_default(value: Any) -> Any:
    """What web3 hands a provider besides JSON types: bytes (``HexBytes``) and mappings (``AttributeDict``)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot send a {type(value).__name__} in a JSON-RPC request")


def _encode(request: Any) -> bytes:
    """A request as JSON, bytes as ``0x`` hex (the way web3 encodes parameters)."""
    return json.dumps(request, default=_json_default, separators=(",", ":")).encode()


class JsonRpcTransport(Protocol):
    """What web3 is given to send through: a :class:`BoundedHTTPProvider`, or a
    :class:`~registry.chain.crosscheck.CrossCheckProvider` over several."""

    url: str

    @property
    def requests_sent(self) -> int: ...

    def make_request(self, method: str, params: Any) -> dict[str, Any]: ...

    def make_batch_request(self, calls: Sequence[tuple[str, Any]]) -> list[dict[str, Any]] | object: ...


_ADAPTERS: dict[str, type] = {}


def web3_provider(transport: JsonRpcTransport) -> Any:
    """A web3 provider that sends everything through ``transport`` (a :class:`BoundedHTTPProvider`
    or a cross-checking provider), so web3's requests meet the same limits and cross-checks as the
    readers'. Imports web3: only commands that sign and send come here."""
    adapter = _ADAPTERS.get("http")
    if adapter is None:
        from web3.providers.rpc import HTTPProvider

        class Web3Transport(HTTPProvider):
            """web3's view of a bounded transport (only ``make_request`` and ``make_batch_request`` are used)."""

            def __init__(self, inner: JsonRpcTransport) -> None:
                super().__init__(inner.url, exception_retry_configuration=None)
                self.transport = inner

            def __str__(self) -> str:
                return str(self.transport)

            @property
            def requests_sent(self) -> int:
                return self.transport.requests_sent

            def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
                # web3 reads the answer as its RPCResponse TypedDict: a JSON-RPC answer object is one
                return cast("RPCResponse", self.transport.make_request(method, params))

            def make_batch_request(self, calls: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse] | RPCResponse:
                return cast("list[RPCResponse] | RPCResponse", self.transport.make_batch_request(calls))

            def is_connected(self, show_traceback: bool = False) -> bool:
                return True

        adapter = _ADAPTERS["http"] = Web3Transport
    return adapter(transport)
