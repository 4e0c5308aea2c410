"""A scripted pinning service on loopback for the failure tests (plain classes, no fixtures).

It follows the Pinning Service API (``POST /pins``, ``GET /pins?cid=&status=``, ``GET`` /
``DELETE /pins/{requestid}``, bearer token) and keeps its requests in memory; what a request's
status becomes is scripted, so a test can have a service that never leaves ``queued``, one that
reports ``failed``, or one that pins. It never fetches anything: the real pinning is tested
against IPFS Cluster (tests/cluster_fixtures.py).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

__all__ = ["ScriptedPinService"]


class ScriptedPinService:
    """Args:
        outcome: ``(cid, polls) -> status`` for a request polled ``polls`` times so far
            (default: ``queued`` at first, ``pinned`` from the second poll on).
        token: the bearer token it accepts (``None``: any).
    """

    def __init__(self, outcome: Callable[[str, int], str] | None = None, token: str | None = "t0ken") -> None:
        self.outcome = outcome or (lambda cid, polls: "queued" if polls < 1 else "pinned")
        self.token = token
        self.pins: dict[str, dict] = {}
        self.polls: dict[str, int] = {}
        self.log: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, code: int, value=None) -> None:
                body = json.dumps(value).encode() if value is not None else b""
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                service.log.append((self.command, url.path))
                if service.token is not None and self.headers.get("Authorization") != f"Bearer {service.token}":
                    return self._send(401, {"error": {"reason": "UNAUTHORIZED", "details": "invalid access token"}})
                with service._lock:
                    code, value = service._route(self.command, url.path, parse_qs(url.query), body)
                self._send(code, value)

            do_GET = do_POST = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def posted(self) -> int:
        return sum(1 for method, path in self.log if (method, path) == ("POST", "/pins"))

    def _route(self, method: str, path: str, query: dict, body: bytes) -> tuple[int, object]:
        if (method, path) == ("POST", "/pins"):
            pin = json.loads(body)
            requestid = f"req-{len(self.pins) + 1}"
            self.pins[requestid] = {"requestid": requestid, "status": "queued", "created": "2026-11-30T04:00:00Z",
                                    "pin": {"cid": pin["cid"], "name": pin.get("name"), "origins": pin.get("origins", [])},
                                    "delegates": [], "info": {}}
            self.polls[requestid] = 0
            return 202, self.pins[requestid]
        if (method, path) == ("GET", "/pins"):
            cids = set(query.get("cid", [""])[0].split(",")) - {""}
            statuses = set(query.get("status", ["pinned"])[0].split(","))
            found = [p for p in self.pins.values() if (not cids or p["pin"]["cid"] in cids) and p["status"] in statuses]
            return 200, {"count": len(found), "results": found}
        if path.startswith("/pins/") and path[6:] in self.pins:
            requestid = path[6:]
            if method == "DELETE":
                del self.pins[requestid]
                return 202, None
            pin = self.pins[requestid]
            pin["status"] = self.outcome(pin["pin"]["cid"], self.polls[requestid])
            self.polls[requestid] += 1
            if pin["status"] == "failed":
                pin["info"] = {"status_details": "could not find the content on the network"}
            return 200, pin
        return 404, {"error": {"reason": "NOT_FOUND", "details": f"no {path}"}}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
