"""Real Kubo daemons for the tests (a pytest plugin, registered from ``tests/conftest.py``).

Each node has its own ``IPFS_PATH`` under pytest's temporary directory, the ``test`` profile
(no bootstrap peers, no MDNS, no AutoConf), API, gateway and swarm on 127.0.0.1 port 0 (the
kernel picks each port as the daemon binds it, read back from its start-up lines: a port picked
free beforehand could be taken by a parallel xdist worker or another suite before Kubo binds it),
and telemetry off. Nodes start once per session (per xdist worker) and stop at its end.

Fixtures:
    kubo_bin        path of ``.tools/bin/ipfs`` (skips, saying so, when it is absent)
    kubo_node       one running daemon (node A)
    kubo_pair       (A, B): B peered to A only, both running
    ipfs_only_hash  run ``ipfs add --only-hash`` on repos initialised with each import profile
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent
IPFS = ROOT / ".tools" / "bin" / "ipfs"
START_TIMEOUT = 90.0


def kubo_env(repo: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env.update(IPFS_PATH=str(repo), IPFS_TELEMETRY="off", DO_NOT_TRACK="1", GOLOG_LOG_LEVEL="error")
    return env


def run_ipfs(repo: Path, *args: str, input: bytes | None = None, stdin=None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(IPFS), *args], env=kubo_env(repo), input=input, stdin=stdin, capture_output=True, check=check, timeout=600
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def configure(repo: Path, settings: dict[str, object]) -> None:
    """Set dotted config keys (``{"Routing.Type": "none"}``) in one ``ipfs config replace``: two
    ``ipfs`` runs instead of one per key (each run starts Go and opens the repo)."""
    config = json.loads(run_ipfs(repo, "config", "show").stdout)
    for dotted, value in settings.items():
        *parents, key = dotted.split(".")
        node = config
        for parent in parents:
            if not isinstance(node.get(parent), dict):  # absent, or null in Kubo's defaults
                node[parent] = {}
            node = node[parent]
        node[key] = value
    run_ipfs(repo, "config", "replace", "-", input=json.dumps(config).encode())


def init_repo(repo: Path, *profiles: str, settings: dict[str, object] | None = None) -> Path:
    """``ipfs init`` with the test profile (plus ``profiles``), telemetry off and ``settings``; no daemon."""
    profile = ",".join(("test",) + profiles)
    run_ipfs(repo, "init", "--empty-repo", f"--profile={profile}")
    configure(repo, {"Plugins.Plugins.telemetry.Config.Mode": "off", **(settings or {})})
    return repo


#: The lines ``ipfs daemon`` prints once it listens, each with the port the kernel gave it.
_LISTENING = {
    "api_port": re.compile(rb"RPC API server listening on /ip4/127\.0\.0\.1/tcp/(\d+)"),
    "gateway_port": re.compile(rb"Gateway server listening on /ip4/127\.0\.0\.1/tcp/(\d+)"),
    "swarm_port": re.compile(rb"Swarm listening on 127\.0\.0\.1:(\d+)"),
}


@dataclass
class KuboNode:
    """A running Kubo daemon (its ports are 0 until :meth:`start` has read them)."""

    name: str
    repo: Path
    api_port: int = 0
    gateway_port: int = 0
    swarm_port: int = 0
    process: subprocess.Popen | None = None
    peer_id: str = ""
    log: Path | None = None
    _clients: list = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def swarm_addr(self) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.swarm_port}/p2p/{self.peer_id}"

    def ipfs(self, *args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run the ``ipfs`` CLI against this node (it talks to the running daemon)."""
        return run_ipfs(self.repo, *args, input=input, check=check)

    def client(self, timeout: float = 30.0):
        from registry.storage.kubo import Kubo

        kubo = Kubo(self.api_url, timeout=timeout)
        self._clients.append(kubo)
        return kubo

    def start(self) -> "KuboNode":
        self.log = self.repo.parent / f"{self.name}.log"
        out = open(self.log, "wb")
        self.process = subprocess.Popen(
            [str(IPFS), "daemon"], env=kubo_env(self.repo), stdout=out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Kubo {self.name} exited at start: {self.log.read_text()[-2000:]}")
            output = self.log.read_bytes()
            if b"Daemon is ready" in output:
                break
            time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"Kubo {self.name} did not start in {START_TIMEOUT:.0f}s: {self.log.read_text()[-2000:]}")
        for attribute, line in _LISTENING.items():
            found = line.search(output)
            if found is None:
                self.stop()
                raise RuntimeError(f"Kubo {self.name} did not say its {attribute}: {output.decode()[-2000:]}")
            setattr(self, attribute, int(found.group(1)))
        self.peer_id = json.loads(self.ipfs("id").stdout)["ID"]
        return self

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


def make_node(base: Path, name: str, peers: list[KuboNode] = ()) -> KuboNode:
    settings: dict[str, object] = {
        "Addresses.API": "/ip4/127.0.0.1/tcp/0",
        "Addresses.Gateway": "/ip4/127.0.0.1/tcp/0",
        "Addresses.Swarm": ["/ip4/127.0.0.1/tcp/0"],
        "Bootstrap": [],
        "Discovery.MDNS.Enabled": False,
        # No DHT: the nodes find content only through the peers they are connected to (bitswap).
        "Routing.Type": "none",
        # The gateway gives up on content no peer has quickly (504) instead of after 30 s.
        "Gateway.RetrievalTimeout": "3s",
    }
    if peers:
        settings["Peering.Peers"] = [{"ID": p.peer_id, "Addrs": [f"/ip4/127.0.0.1/tcp/{p.swarm_port}"]} for p in peers]
    return KuboNode(name, init_repo(base / name, settings=settings))


@pytest.fixture(scope="session")
def kubo_bin() -> Path:
    if not (IPFS.is_file() and os.access(IPFS, os.X_OK)):
        pytest.skip(f"Kubo is not installed at {IPFS}; run scripts/install_kubo.sh (needs Go) to run this test")
    return IPFS


@pytest.fixture(scope="session")
def kubo_node(kubo_bin: Path, tmp_path_factory: pytest.TempPathFactory):
    node = make_node(tmp_path_factory.mktemp("kubo"), "a").start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def kubo_pair(kubo_node: KuboNode, tmp_path_factory: pytest.TempPathFactory):
    b = make_node(tmp_path_factory.mktemp("kubo"), "b", peers=[kubo_node]).start()
    try:
        b.ipfs("swarm", "connect", kubo_node.swarm_addr)
        yield kubo_node, b
    finally:
        b.stop()


class OnlyHash:
    """``ipfs add --only-hash`` on daemon-less repos, one per import profile (plus Kubo's default)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._repos: dict[str, Path] = {}

    def repo(self, profile: str | None) -> Path:
        key = profile or "default"
        if key not in self._repos:
            self._repos[key] = init_repo(self.base / key, *((profile,) if profile else ()))
        return self._repos[key]

    def __call__(self, source: Path | bytes | Callable, *flags: str, profile: str | None = None) -> str:
        """The CID Kubo gives ``source`` (a path, bytes, or a callable writing to a pipe)."""
        repo = self.repo(profile)
        args = ["add", "--only-hash", "--quieter", *flags]
        if isinstance(source, Path):
            return run_ipfs(repo, *args, str(source)).stdout.decode().strip()
        if isinstance(source, (bytes, bytearray)):
            return run_ipfs(repo, *args, input=bytes(source)).stdout.decode().strip()
        # A generator of chunks, streamed into Kubo's stdin so big inputs never touch the disk.
        proc = subprocess.Popen(
            [str(IPFS), *args], env=kubo_env(repo), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            for chunk in source():
                proc.stdin.write(chunk)
            out, err = proc.communicate(timeout=600)  # closes stdin
        finally:
            if proc.poll() is None:
                proc.kill()
        if proc.returncode:
            raise RuntimeError(f"ipfs add failed: {err.decode()[-500:]}")
        return out.decode().strip()


@pytest.fixture(scope="session")
def ipfs_only_hash(kubo_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> OnlyHash:
    return OnlyHash(tmp_path_factory.mktemp("kubo-only-hash"))


# -- a hostile HTTP server (a lying gateway or a garbage "Kubo") ----------------------------------


class HostileServer:
    """A tiny HTTP server whose answers each test scripts: ``route(method, path, ...)``.

    A route's body may be bytes or a callable ``(query) -> bytes``; ``length`` overrides the
    Content-Length header (a larger value makes the connection break off mid-body).
    """

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        routes = self.routes = {}
        requests = self.requests = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _answer(self):
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                requests.append((self.command, url.path, query, dict(self.headers)))
                route = routes.get((self.command, url.path)) or routes.get((self.command, "*"))
                if route is None:
                    status, headers, body, declared = 404, {"Content-Type": "text/plain"}, b"404 page not found", None
                else:
                    status, headers, body, declared = route
                if callable(body):
                    body = body(query)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(declared if declared is not None else len(body)))
                if declared is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                if declared is not None:
                    self.close_connection = True

            do_GET = do_POST = do_DELETE = _answer

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # clients that hang up are expected here
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def route(self, method: str, path: str, body=b"", status: int = 200, headers: dict | None = None, length: int | None = None) -> None:
        self.routes[(method, path)] = (status, headers or {}, body, length)

    def reset(self) -> None:
        self.routes.clear()
        self.requests.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def hostile_server():
    server = HostileServer()
    yield server
    server.close()
