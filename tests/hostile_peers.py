"""Hostile HTTP peers on loopback (plain helpers, no fixtures): a server whose every answer is a
script written straight to the socket, counting what it manages to send.

``ScriptedServer(script)`` accepts connections, reads each request's head and runs
``script(peer, method, target)``; ``peer.send`` writes and counts bytes until the client hangs
up. The send buffer is kept small, so what the server counts as sent is close to what the
client read (at most what the client's kernel buffered on top). Scripts for a trustless
gateway's misbehaviours are below.
"""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from typing import Callable, Iterator

from registry.storage.car import encode_header, export_car
from registry.storage.cid import CID, encode_varint

CAR_TYPE = "application/vnd.ipld.car"
RAW_TYPE = "application/vnd.ipld.raw"


class Peer:
    """One accepted connection, as a script sees it."""

    def __init__(self, server: "ScriptedServer", sock: socket.socket) -> None:
        self.server = server
        self.sock = sock

    def send(self, data: bytes) -> bool:
        """Write ``data``, counting what the kernel took; ``False`` once the client has hung up."""
        view = memoryview(data)
        while view:
            try:
                n = self.sock.send(view)
            except OSError:
                return False
            self.server.count(n)
            view = view[n:]
        return True

    def headers(self, content_type: str = CAR_TYPE, length: int | None = None, status: int = 200) -> bool:
        lines = [f"HTTP/1.1 {status} OK", f"Content-Type: {content_type}", "Connection: close"]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        return self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    def wait_closed(self, timeout: float = 60.0) -> None:
        """Block until the client hangs up (or ``timeout``), sending nothing."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(4096):
                pass
        except OSError:
            pass


class ScriptedServer:
    """An HTTP/1.1 server on 127.0.0.1 whose answers are scripts (see the module docstring)."""

    def __init__(self, script: Callable[[Peer, str, str], None], send_buffer: int = 16 << 10) -> None:
        self.script = script
        self.sent = 0
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def count(self, n: int) -> None:
        with self._lock:
            self.sent += n

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self._open.append(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                more = sock.recv(4096)
                if not more:
                    return
                head += more
            method, target = head.split(b"\r\n", 1)[0].decode().split(" ")[:2]
            self.requests.append((method, target))
            self.script(Peer(self, sock), method, target)
        except OSError:
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        self._listener.close()
        for sock in self._open:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "ScriptedServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- CAR pieces ---------------------------------------------------------------------------------


def car_of(store, root: CID) -> bytes:
    out = io.BytesIO()
    export_car(root, store.get, out)
    return out.getvalue()


def car_head(root: CID) -> bytes:
    header = encode_header([root])
    return encode_varint(len(header)) + header


def section(cid: CID, block: bytes) -> bytes:
    raw = bytes(cid)
    return encode_varint(len(raw) + len(block)) + raw + block


def unrelated_sections(size: int = 1024) -> Iterator[bytes]:
    """Valid CAR sections of blocks no DAG links to, forever."""
    while True:
        block = os.urandom(size)
        yield section(CID.of(block), block)


# -- scripts: a trustless gateway misbehaving ---------------------------------------------------


def trickling(body: bytes, every: float = 1.0) -> Callable[[Peer, str, str], None]:
    """Answers 200 with the right length, then sends the body one byte every ``every`` seconds."""
    def script(peer: Peer, method: str, target: str) -> None:
        if not peer.headers(length=len(body)):
            return
        for i in range(len(body)):
            if not peer.send(body[i:i + 1]):
                return
            time.sleep(every)
    return script


def steady(body: bytes, piece: int, every: float) -> Callable[[Peer, str, str], None]:
    """Sends ``piece`` bytes every ``every`` seconds: above a minimum rate, but slow overall."""
    def script(peer: Peer, method: str, target: str) -> None:
        if not peer.headers(length=len(body)):
            return
        for i in range(0, len(body), piece):
            if not peer.send(body[i:i + piece]):
                return
            time.sleep(every)
    return script


def unrelated_forever(root: CID, first: bytes = b"", size: int = 1024) -> Callable[[Peer, str, str], None]:
    """A CAR for ``root`` (after ``first``, e.g. the root's own section) that goes on with valid
    blocks of no DAG, for as long as the client reads."""
    def script(peer: Peer, method: str, target: str) -> None:
        if not peer.headers() or not peer.send(car_head(root) + first):
            return
        for piece in unrelated_sections(size):
            if not peer.send(piece):
                return
    return script


def huge_length(content_type: str = CAR_TYPE, declared: int = 10**15) -> Callable[[Peer, str, str], None]:
    """Declares ``declared`` bytes, then sends zeros for as long as the client reads."""
    def script(peer: Peer, method: str, target: str) -> None:
        if not peer.headers(content_type, length=declared):
            return
        zeros = bytes(64 << 10)
        while peer.send(zeros):
            pass
    return script


def silent() -> Callable[[Peer, str, str], None]:
    """Reads the request and never answers."""
    def script(peer: Peer, method: str, target: str) -> None:
        peer.wait_closed()
    return script


def closing_mid_block(body: bytes, cut: int) -> Callable[[Peer, str, str], None]:
    """Declares the whole body, sends its first ``cut`` bytes, closes the connection."""
    def script(peer: Peer, method: str, target: str) -> None:
        if peer.headers(length=len(body)):
            peer.send(body[:cut])
    return script


def honest(body: bytes, content_type: str = CAR_TYPE, declare: bool = True) -> Callable[[Peer, str, str], None]:
    """Answers the body as it is (with its length, unless not ``declare``: then it ends when the connection does)."""
    def script(peer: Peer, method: str, target: str) -> None:
        if peer.headers(content_type, length=len(body) if declare else None):
            peer.send(body)
    return script
