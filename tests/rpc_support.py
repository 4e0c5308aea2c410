"""JSON-RPC endpoints that lie, for the cross-check tests (plain helpers, no fixtures).

:class:`RpcProxy` is a real threaded HTTP server on loopback that forwards every JSON-RPC request
(single or batched) to a real node (anvil) and hands each call and its answer to a :class:`Lie`
on the way, which may rewrite either. With ``Lie()`` it is an honest endpoint that counts what it
is asked. The lies are what an endpoint controlled by an attacker would do:

* :class:`DropEarliestLog`: leaves the earliest log out of every ``eth_getLogs`` answer (hides
  the earlier claim of a content id);
* :class:`MarkYanked`: answers ``records(ids)`` with every record flagged as yanked;
* :class:`OtherChain`: reports another chain id;
* :class:`Lagging`: is ``blocks`` behind the node (reports an older head, answers ``latest``
  with that older block), as a slow but honest node would be; :class:`CatchingUp` is behind for
  its first few head queries only;
* :class:`CapsLogRange`: refuses log queries over more than a few blocks, as public nodes do
  (honest, but it answers some queries with an error where another endpoint answers data);
* :class:`OpStackOracle`: plays the OP Stack's GasPriceOracle predeploy (which ``anvil --optimism``
  lacks) for ``eth_call`` to its address: Fjord's L1 fee figures and, when told, Isthmus's or
  Jovian's operator fee, computed from ``getOperatorFee``'s argument as the oracle does; or lies;
* :class:`RewriteRecords`: rewrites the ``records(ids)`` answer's bytes (a huge array length, a
  truncated answer), and :class:`RewriteLogData` every log's data (a parents array that claims
  more ids than it holds): malformed ABI the decoder must refuse in one line.

:class:`RawServer` is a loopback server that answers every connection with whatever bytes its
handler writes (stalls, drips, floods, bombs): a hostile peer below JSON-RPC.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import urllib.request
from collections import Counter
from typing import Any

RECORDS_SELECTOR = "0x4a2eb672"  # records(bytes32[])


class Lie:
    """An honest endpoint: rewrites nothing (subclasses rewrite calls or answers)."""

    def call(self, call: dict, upstream: "RpcProxy") -> dict:
        return call

    def answer(self, call: dict, answer: dict, upstream: "RpcProxy") -> dict:
        return answer


class DropEarliestLog(Lie):
    dropped = 0  # logs left out so far (one per answer that had any)

    def answer(self, call, answer, upstream):
        logs = answer.get("result")
        if call.get("method") == "eth_getLogs" and isinstance(logs, list) and logs:
            earliest = min(logs, key=lambda log: (int(log["blockNumber"], 16), int(log["logIndex"], 16)))
            self.dropped += 1
            answer = {**answer, "result": [log for log in logs if log is not earliest]}
        return answer


class MarkYanked(Lie):
    def answer(self, call, answer, upstream):
        params = call.get("params") or [{}]
        if call.get("method") == "eth_call" and str(params[0].get("data", "")).startswith(RECORDS_SELECTOR) and "result" in answer:
            data = bytearray(bytes.fromhex(answer["result"][2:]))
            rows = int.from_bytes(data[32:64], "big")
            # records() returns (offset, length, then one static tuple per record); yanked is its 7th word,
            # after publisher, licenseId, blockNumber, kind, cidCodec and parentCount (IElementRegistry.RecordState).
            words = (len(data) - 64) // 32 // rows if rows else 0
            for row in range(rows):
                data[64 + (row * words + 6) * 32 + 31] = 1
            answer = {**answer, "result": "0x" + data.hex()}
        return answer


class RewriteRecords(Lie):
    """Answers ``records(ids)`` with ``rewrite(answer bytes)`` instead of the node's bytes."""

    def __init__(self, rewrite) -> None:
        self.rewrite = rewrite

    def answer(self, call, answer, upstream):
        params = call.get("params") or [{}]
        if call.get("method") == "eth_call" and str(params[0].get("data", "")).startswith(RECORDS_SELECTOR) and "result" in answer:
            answer = {**answer, "result": "0x" + self.rewrite(bytes.fromhex(answer["result"][2:])).hex()}
        return answer


class RewriteLogData(Lie):
    """Answers every ``eth_getLogs`` with each log's data replaced by ``rewrite(data bytes)``."""

    def __init__(self, rewrite) -> None:
        self.rewrite = rewrite

    def answer(self, call, answer, upstream):
        logs = answer.get("result")
        if call.get("method") == "eth_getLogs" and isinstance(logs, list):
            answer = {**answer, "result": [{**log, "data": "0x" + self.rewrite(bytes.fromhex(log["data"][2:])).hex()} for log in logs]}
        return answer


class OpStackOracle(Lie):
    """Answers ``eth_call`` to the GasPriceOracle address: ``figures`` maps a view's name to its
    number (a missing name reverts, as a call the contract lacks does); ``operator`` is
    ``(scalar, constant)`` of ``getOperatorFee(gasUsed)`` under ``formula`` (``isthmus``:
    gasUsed * scalar / 1e6 + constant; ``jovian``: gasUsed * scalar * 100 + constant; ``lying``:
    less at more gas). ``asked`` counts the calls by name."""

    ADDRESS = "0x420000000000000000000000000000000000000f"

    def __init__(self, figures: dict[str, int], operator: tuple[int, int] | None = None, formula: str = "isthmus") -> None:
        from registry.chain.abi import selector

        self.figures, self.operator, self.formula = figures, operator, formula
        self.names = {"0x" + selector(f"{name}()").hex(): name for name in figures}
        self.operator_selector = "0x" + selector("getOperatorFee(uint256)").hex()
        self.asked: Counter[str] = Counter()

    def _value(self, data: str) -> int | None:
        if data.startswith(self.operator_selector) and self.operator is not None:
            self.asked["getOperatorFee"] += 1
            gas, (scalar, constant) = int(data[10:74] or "0", 16), self.operator
            if self.formula == "jovian":
                return gas * scalar * 100 + constant
            if self.formula == "lying":
                return max(0, constant - gas)
            return gas * scalar // 10**6 + constant
        name = self.names.get(data[:10])
        if name is not None:
            self.asked[name] += 1
            return self.figures[name]
        return None

    def answer(self, call, answer, upstream):
        params = call.get("params") or [{}]
        if call.get("method") != "eth_call" or str(params[0].get("to", "")).lower() != self.ADDRESS:
            return answer
        value = self._value(str(params[0].get("data", "")))
        if value is None:
            return {"jsonrpc": "2.0", "id": answer.get("id"), "error": {"code": 3, "message": "execution reverted", "data": "0x"}}
        return {"jsonrpc": "2.0", "id": answer.get("id"), "result": "0x" + value.to_bytes(32, "big").hex()}


class OtherChain(Lie):
    def answer(self, call, answer, upstream):
        return {**answer, "result": "0x1"} if call.get("method") == "eth_chainId" else answer


class Lagging(Lie):
    def __init__(self, blocks: int) -> None:
        self.blocks = blocks

    def head(self, upstream: "RpcProxy") -> int:
        return max(0, upstream.node_head() - self.blocks)

    def call(self, call, upstream):
        method, params = call.get("method"), list(call.get("params") or [])
        if method in ("eth_call", "eth_getCode") and (len(params) < 2 or params[1] == "latest"):
            params = params[:1] + [hex(self.head(upstream))] + params[2:]
        elif method == "eth_getLogs" and params and params[0].get("toBlock", "latest") == "latest":
            params = [{**params[0], "toBlock": hex(self.head(upstream))}]
        return {**call, "params": params}

    def answer(self, call, answer, upstream):
        return {**answer, "result": hex(self.head(upstream))} if call.get("method") == "eth_blockNumber" else answer


class CatchingUp(Lagging):
    """Behind by ``blocks`` for its first ``slow`` answers to eth_blockNumber, then up to date."""

    def __init__(self, blocks: int, slow: int) -> None:
        super().__init__(blocks)
        self.slow = slow
        self.heads_given = 0

    def head(self, upstream):
        return upstream.node_head() if self.heads_given > self.slow else super().head(upstream)

    def answer(self, call, answer, upstream):
        if call.get("method") == "eth_blockNumber":
            self.heads_given += 1
        return super().answer(call, answer, upstream)


class CapsLogRange(Lie):
    def __init__(self, blocks: int) -> None:
        self.blocks = blocks

    def answer(self, call, answer, upstream):
        if call.get("method") != "eth_getLogs":
            return answer
        flt = call["params"][0]
        end = upstream.node_head() if flt.get("toBlock", "latest") == "latest" else int(flt["toBlock"], 16)
        if end - int(flt.get("fromBlock", "0x0"), 16) + 1 > self.blocks:
            return {"jsonrpc": "2.0", "id": answer.get("id"), "error": {"code": -32005, "message": f"block range too large (max {self.blocks})"}}
        return answer


class RpcProxy:
    """A JSON-RPC endpoint on 127.0.0.1 in front of ``upstream``, rewriting through ``lie``.

    Attributes:
        requests: HTTP requests received (a batch is one).
        calls: JSON-RPC calls received, by method.
        seen: every call as forwarded (after the lie rewrote it).
    """

    def __init__(self, upstream: str, lie: Lie | None = None) -> None:
        self.upstream, self.lie = upstream, lie or Lie()
        self.requests = 0
        self.calls: Counter[str] = Counter()
        self.seen: list[dict] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                reply = json.dumps(proxy.handle(json.loads(body))).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # Polled every 20 ms, not socketserver's default 500 ms: shutdown() waits for the next poll,
        # and the tests start and stop proxies by the hundred.
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> "RpcProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "RpcProxy":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def reset_counts(self) -> None:
        with self._lock:
            self.requests = 0
            self.calls.clear()
            self.seen.clear()

    def handle(self, request: Any) -> Any:
        with self._lock:
            self.requests += 1
            for call in request if isinstance(request, list) else [request]:
                self.calls[call.get("method")] += 1
        if isinstance(request, list):
            calls = [self.lie.call(c, self) for c in request]
            self.seen.extend(calls)
            answers = {a["id"]: a for a in self.forward(calls)}
            return [self.lie.answer(c, answers[c["id"]], self) for c in calls]
        call = self.lie.call(request, self)
        self.seen.append(call)
        return self.lie.answer(call, self.forward(call), self)

    def forward(self, payload: Any) -> Any:
        raw = urllib.request.urlopen(
            urllib.request.Request(self.upstream, json.dumps(payload).encode(), {"Content-Type": "application/json"}), timeout=60
        ).read()
        return json.loads(raw)

    def node_head(self) -> int:
        return int(self.forward({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []})["result"], 16)



class RawServer:
    """A TCP server on 127.0.0.1 that hands each connection to ``handler(sock)`` after reading the
    request head and body; ``stopping`` is set when the test ends (handlers that stall wait on it)."""

    def __init__(self, handler) -> None:
        self.handler = handler
        self.stopping = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "RawServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        self._thread.join(timeout=10)
        self.sock.close()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            try:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += conn.recv(65536)
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
                body = head.split(b"\r\n\r\n", 1)[1]
                while len(body) < length:
                    body += conn.recv(65536)
                self.handler(conn, json.loads(body), self.stopping)
            except OSError:
                pass  # the client gave up on us: that is what these servers are for


def http_head(status: str = "200 OK", **headers: Any) -> bytes:
    """An HTTP/1.1 response head."""
    lines = [f"HTTP/1.1 {status}"] + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
