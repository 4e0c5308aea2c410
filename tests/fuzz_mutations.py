"""Deterministic mutations of valid inputs, for tests/test_fuzz_mutations.py (plain code, no
fixtures): everything comes from the :class:`random.Random` a :class:`Mutator` is given, so the
same seed makes the same inputs on every run and every machine. Also the valid documents the
mutations start from, and :class:`MutatingServer`, the hostile peer on loopback (a JSON-RPC node,
a pinning service and a Kubo node) that answers with the mutated bytes."""

from __future__ import annotations

import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from registry.chain import abi
from registry.chain.reader import RECORD_PUBLISHED_TOPIC
from registry.errors import ElementsError
from registry.limits import loads_json

ODD_STRINGS = ["", "\x00", "\ud800", "\udfff", "\u202e", "\ufeff", "../x", "/etc/passwd", "a" * 3000, "e\u0301", "\U0001F600",
               "0x", "0x" + "f" * 64, "NaN", "-1", "1e999", "{n}", "{x}", "(a+)+$", "[", "\\", "%s", "\n", "а"]
ODD_NUMBERS = [0, -1, 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), 10**30, 10**100,
               1e308, -1e308, 5e-324, 0.5, -0.0, 1.5]
#: varints that never end, end after ten bytes, or decode to more than 2**63
HUGE_VARINTS = [b"\xff" * 9 + b"\x01", b"\x80" * 10 + b"\x00", b"\xff\xff\xff\xff\x0f", b"\x80" * 11 + b"\x01"]
#: byte strings that mean something to one parser or another
MARKERS = [b"\xef\xbb\xbf", b"\xed\xa0\x80", b"\xc0\x80", b'"', b"\\", b"[" * 70, b"{", b"}", b"\x00", b"-", b"9" * 40, b"\xd8\x2a"]


class Pairs(list):
    """A JSON object written with the keys and values it holds in order, so a key can repeat."""


def dump(value: Any) -> str:
    """JSON text of ``value``; :class:`Pairs` as objects with repeated keys, infinities as 1e999."""
    if isinstance(value, Pairs):
        return "{" + ",".join(json.dumps(k) + ":" + dump(v) for k, v in value) + "}"
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + dump(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return "1e999"
    return json.dumps(value)


def _paths(value: Any, path: tuple = ()) -> list[tuple]:
    found = [path]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, path + (key,))
    elif isinstance(value, list) and not isinstance(value, Pairs):
        for i, inner in enumerate(value):
            found += _paths(inner, path + (i,))
    return found


class Mutator:
    """Mutations of seeds; ``made`` keeps the inputs made since it was last cleared (to show the
    one that broke a parser)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.made: list[Any] = []

    # -- values -------------------------------------------------------------------------------

    def odd(self, old: Any) -> Any:
        """A hostile replacement for ``old``."""
        rng = self.rng
        choice = rng.randrange(12)
        if choice == 0:
            return rng.choice(ODD_NUMBERS)
        if choice == 1:
            return rng.choice(ODD_STRINGS)
        if choice == 2:
            return rng.choice([None, True, False, [], {}, [old], {"x": old}])
        if choice == 3:  # nesting around the limit (64) and past it
            value = old
            for _ in range(rng.choice([3, 20, 62, 63, 64, 65, 200])):
                value = [value]
            return value
        if choice == 4:  # many of it (a long list of something small)
            return [old] * rng.choice([2, 100, 1000 if not isinstance(old, (dict, list)) else 10])
        if choice == 5 and isinstance(old, str):
            return old + rng.choice(ODD_STRINGS)
        if choice == 6 and isinstance(old, str) and old:
            i = rng.randrange(len(old))
            return old[:i] + chr(rng.choice([0, 0x2E, 0x2F, 0x7F, 0xD800, 0x202E, 0x10FFFF, rng.randrange(0x20, 0x7F)])) + old[i + 1:]
        if choice == 7 and isinstance(old, (int, float)) and not isinstance(old, bool):
            return rng.choice([old + 1, old - 1, -old, old * 2**40, str(old), float(old)])
        if choice == 8 and isinstance(old, list) and old:
            return old[: rng.randrange(len(old))] + old[::-1]
        if choice == 9:
            return str(old)
        if choice == 10 and isinstance(old, dict) and old:
            key = rng.choice(list(old))
            return Pairs(list(old.items()) + [(key, self.odd(old[key]))])
        return rng.choice([None, 0, "", [], {}, -1, 2**64, "x"])

    def structure(self, document: Any) -> Any:
        """``document`` with one to three values replaced, keys removed or keys added."""
        doc = json.loads(json.dumps(document))
        for _ in range(self.rng.randint(1, 3)):
            path = self.rng.choice(_paths(doc))
            if not path:
                doc = self.odd(doc) if self.rng.random() < 0.3 else doc
                continue
            parent = doc
            for key in path[:-1]:
                parent = parent[key]
            key, op = path[-1], self.rng.randrange(4)
            if op == 0 and isinstance(parent, dict):
                del parent[key]
            elif op == 1 and isinstance(parent, dict):
                parent[self.rng.choice(["x", f"{key}_", str(key).upper(), "", "__proto__"])] = self.odd(parent[key])
            else:
                parent[key] = self.odd(parent[key])
        return doc

    def json(self, document: Any) -> bytes:
        """JSON bytes: ``document`` mutated in structure, then (one time in five) in its bytes."""
        text = dump(self.structure(document)).encode("utf-8", "surrogatepass")
        if self.rng.random() < 0.2:
            text = self.bytes(text, edits=1)
        self.made.append(text)
        return text

    def value(self, document: Any) -> Any:
        """``document`` mutated in structure, as the project's JSON reader would hand it on (a
        mutation that reader refuses is tried again: a parser of values never sees it)."""
        for _ in range(8):
            text = dump(self.structure(document)).encode("utf-8", "surrogatepass")
            try:
                value = loads_json(text, what="a mutated value")
            except ElementsError:
                continue
            self.made.append(text)
            return value
        return json.loads(json.dumps(document))

    # -- bytes --------------------------------------------------------------------------------

    def bytes(self, seed: bytes, edits: int | None = None) -> bytes:
        """``seed`` with one to four edits: bits flipped, bytes set, inserted, deleted, cut off,
        huge varints and 8-byte lengths written in, a piece repeated, a marker inserted."""
        rng, data = self.rng, bytearray(seed)
        for _ in range(edits or rng.randint(1, 4)):
            op, at = rng.randrange(10), rng.randrange(len(data) + 1)
            last = max(0, min(at, len(data) - 1))
            if op == 0 and data:
                data[last] ^= 1 << rng.randrange(8)
            elif op == 1 and data:
                data[last] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
            elif op == 2:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            elif op == 3:
                del data[at:at + rng.randint(1, 16)]
            elif op == 4:
                del data[at:]
            elif op == 5:
                data[at:at] = rng.choice(HUGE_VARINTS)
            elif op == 6 and data:
                data[last:last + 1] = rng.choice(HUGE_VARINTS)
            elif op == 7:
                data[at:at + 8] = rng.choice([2**64 - 1, 2**63, 2**32, 0, 1 << 40]).to_bytes(8, "little")
            elif op == 8 and len(data) > 2:
                start = rng.randrange(len(data))
                data[at:at] = data[start:start + rng.randint(1, 64)]
            else:
                data[at:at] = rng.choice(MARKERS)
        self.made.append(bytes(data))
        return bytes(data)


ADDRESS = "0x" + "22" * 20
#: a plausible answer of each method (the seed a hostile answer is made from)
GOOD_RESULTS: dict[str, Any] = {
    "eth_blockNumber": "0x10", "eth_getCode": "0x6000", "eth_call": "0x" + "00" * 32, "eth_getBalance": "0x1", "eth_gasPrice": "0x1",
    "eth_getTransactionCount": "0x1", "eth_maxPriorityFeePerGas": "0x1", "eth_getLogs": [], "eth_chainId": "0x7a69",
    "eth_getBlockByNumber": {
        "number": "0x10", "hash": "0x" + "ab" * 32, "parentHash": "0x" + "cd" * 32, "timestamp": "0x5", "baseFeePerGas": "0x7",
        "gasLimit": "0x1000", "gasUsed": "0x0", "transactions": [], "miner": ADDRESS, "difficulty": "0x0", "extraData": "0x",
        "logsBloom": "0x" + "00" * 256, "nonce": "0x" + "00" * 8, "sha3Uncles": "0x" + "00" * 32, "size": "0x1",
        "stateRoot": "0x" + "00" * 32, "receiptsRoot": "0x" + "00" * 32, "transactionsRoot": "0x" + "00" * 32, "uncles": [],
        "mixHash": "0x" + "00" * 32},
    "eth_getTransactionReceipt": {
        "status": "0x1", "blockNumber": "0x10", "gasUsed": "0x5", "transactionHash": "0x" + "ab" * 32, "logs": [],
        "blockHash": "0x" + "ab" * 32, "transactionIndex": "0x0", "cumulativeGasUsed": "0x5", "contractAddress": None,
        "from": ADDRESS, "to": ADDRESS, "logsBloom": "0x" + "00" * 256, "effectiveGasPrice": "0x1", "type": "0x2"},
}


def answer_bytes(mutator: Mutator) -> Callable[[list[dict]], bytes]:
    """A node's answer to a request (its calls): each call's good result mutated in one of four
    ways: the result replaced, one field of it changed or dropped, the envelope or the error
    object hostile, or the answer's bytes edited."""
    rng = mutator.rng
    mode = rng.randrange(4)

    def answer(calls: list[dict]) -> bytes:
        envelopes = []
        for call in calls:
            result = GOOD_RESULTS.get(call.get("method"), "0x")
            envelope: Any = {"jsonrpc": "2.0", "id": call.get("id"), "result": result}
            if mode == 0:
                envelope["result"] = mutator.odd(result)
            elif mode == 1 and isinstance(result, dict):
                changed = dict(result)
                key = rng.choice(sorted(changed))
                if rng.random() < 0.3:
                    del changed[key]
                else:
                    changed[key] = mutator.odd(changed[key])
                envelope["result"] = changed
            elif mode == 2:
                error = {"code": -32000, "message": "refused", "data": "0x08c379a0"}
                envelope = rng.choice([{"jsonrpc": "2.0", "id": call.get("id"), "error": mutator.odd(error)},
                                       {"jsonrpc": "2.0", "id": call.get("id"), "error": mutator.structure(error)},
                                       mutator.structure(envelope)])
            envelopes.append(envelope)
        text = dump(envelopes if len(calls) > 1 else envelopes[0]).encode("utf-8", "surrogatepass")
        return mutator.bytes(text) if mode == 3 else text

    return answer


# -- seeds: one valid document of each format ------------------------------------------------------

ZERO = "0x" + "00" * 32
A, B, C = ("0x" + c * 64 for c in "abc")
MODELS = {"org/base": {"content_id": A, "record": "0x" + "01" * 32}, "org/math": {"content_id": B, "record": "0x" + "02" * 32},
          "org/code": {"kind": "composition", "content_id": C, "record": "0x" + "03" * 32}}
MERGEKIT = [
    {"merge_method": "ties", "base_model": "org/base", "dtype": "bfloat16", "parameters": {"normalize": True, "int8_mask": True},
     "models": [{"model": "org/base"}, {"model": "org/math", "parameters": {"density": [1, 0.7, 0.1], "weight": 1.0}},
                {"model": "org/code", "parameters": {"density": 0.5, "weight": [{"filter": "mlp", "value": 0.5}, {"value": 0}]}}]},
    {"merge_method": "passthrough", "dtype": "float16", "slices": [{"sources": [{"model": "org/base", "layer_range": [0, 4]}]},
                                                                  {"sources": [{"model": "org/math", "layer_range": [2, 6]}]}]},
    {"merge_method": "slerp", "base_model": "org/base", "parameters": {"t": [{"filter": "self_attn", "value": [0, 0.5, 1]}, {"value": 0.5}]},
     "slices": [{"sources": [{"model": "org/base", "layer_range": [0, 2]}, {"model": "org/math", "layer_range": [0, 2]}]}]},
]
RECIPE = {
    "format": "elements.recipe/v1",
    "inputs": {"base": {"kind": "tensors", "content_id": A, "record": ZERO}, "config": {"kind": "file", "content_id": ZERO, "record": ZERO}},
    "steps": [{"op": "take", "from": ["base"], "match": "weight$"},
              {"op": "stack", "template": "layer.{n}.", "slices": [{"from": ["base"], "layer_range": [0, 2]}]},
              {"op": "linear", "sources": [{"from": ["base"], "weight": 0.5}], "rename": [{"prefix": "a", "to": "b"}]},
              {"op": "ties", "base": ["base"], "template": "model.layers.{n}.", "sources": [{"from": ["base"], "density": [1.0, 0.5]}]},
              {"op": "lora", "adapter": "base", "params": {"r": 4, "lora_alpha": 8, "rank_pattern": {"q": 2}}}],
    "files": [{"path": "config.json", "from": "config", "patch": {"x": 1}}],
    "output": {"content_id": ZERO, "tensors": [{"name": "a", "dtype": "F32", "shape": [2], "digest": ZERO}],
               "files": [{"path": "config.json", "content_id": ZERO}], "metadata": {"format": "pt"}},
}
CONFIG = {"rpc_url": "memory", "gateways": ["http://g"], "trust": ["0x" + "11" * 20],
          "networks": {"devnet": {"rpc_url": "http://127.0.0.1:8545", "chain_id": 31337}}}
SIGNED = {"format": "elements.signed-publish/v1", "chain_id": 1, "registry": "0x" + "00" * 20,
          "publisher": "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf", "records": [{}]}
REGISTRY = "0x" + "22" * 20
LOG = {"address": REGISTRY, "topics": ["0x" + RECORD_PUBLISHED_TOPIC.hex(), "0x" + "11" * 32, "0x" + "33" * 32, "0x" + "00" * 12 + "44" * 20],
       "data": "0x" + abi.encode(["uint256", "bytes32", "uint256", "uint256", "bytes32[]"], [0x70, b"\x55" * 32, 1, 1, [b"\x66" * 32]]).hex(),
       "blockNumber": "0x10", "logIndex": "0x1", "transactionHash": "0x" + "77" * 32, "removed": False}
ABI_SEEDS = [(["uint256", "bytes32[]"], [5, [b"\1" * 32]]), (["string", "bytes"], ["hi", b"xy"]),
             (["(address,uint256)[]"], [[("0x" + "12" * 20, 3)]]), (["bytes32[2]", "string[]"], [[b"\1" * 32, b"\2" * 32], ["a", "bc"]]),
             (["(uint8,bytes32,uint32,uint8,bytes32[])[]"], [[(1, b"\3" * 32, 4, 1, [b"\4" * 32])]])]


class MutatingServer:
    """A JSON-RPC node, a pinning service and a Kubo node on loopback. As a JSON-RPC node it
    answers ``eth_chainId`` truthfully while ``answer`` is None (so a client connects), then every
    call with ``answer(calls)``; under ``/pins`` and ``/api/v0/`` it answers every request with
    ``pins()``: the bytes under test."""

    def __init__(self) -> None:
        server = self
        self.answer: Callable[[list[dict]], bytes] | None = None
        self.pins: Callable[[], bytes] = lambda: b"{}"

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def reply(self, body: bytes, status: int = 200) -> None:
                # one write: headers and body in separate segments cost a delayed ACK (40 ms) each
                self.wfile.write(b"HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (status, len(body))
                                 + body)

            def do_GET(self) -> None:
                self.reply(server.pins())

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith(("/pins", "/api/v0/")):  # a pinning service, a Kubo node
                    return self.reply(server.pins(), 202 if self.path.startswith("/pins") else 200)
                request = json.loads(raw)
                calls = request if isinstance(request, list) else [request]
                if server.answer is None:
                    return self.reply(json.dumps({"jsonrpc": "2.0", "id": calls[0]["id"], "result": "0x7a69"}).encode())
                self.reply(server.answer(calls))

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
