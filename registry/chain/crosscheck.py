"""Several JSON-RPC endpoints of one chain, read as one: every read is asked of each, compared.

**Trust model.** With one endpoint, Elements trusts that endpoint for what cannot be checked
locally. Event fields can be checked (every event is re-hashed into its record id, which commits
to every field, and compared with the storage word), but an endpoint can still leave out a log
(hiding an earlier claim of the same content), alter what a view call returns (a yank flag, a
licence's terms) or serve a stale chain. With several endpoints (``--rpc-url A --rpc-url B``, or
a network with several) every read the client builds records from is asked of each at the same
block, and any difference is an :class:`~registry.chain.errors.RpcMismatchError` naming the
endpoints and what differs. An attacker then has to control every endpoint.

**What is compared** (by :class:`CrossCheckProvider`, the provider of such a chain, so every reader goes
through it unchanged):

* ``eth_chainId``: the same chain id everywhere;
* ``eth_getLogs``: the same filter on each (address, topics, block range; ``latest`` replaced by
  the pinned block); the logs must be identical (block, index, block hash, transaction, address,
  topics, data), none missing, none extra;
* ``eth_call`` and ``eth_getCode``: at the same block (``latest`` replaced by the pinned block);
  the answers must be byte-identical;
* JSON-RPC batches: each call of the batch as above (one batch per endpoint, sent in parallel).

**The pinned block** is the lowest of the endpoints' latest blocks, so every endpoint has it.
It is read again on each ``eth_blockNumber`` (which returns it) and after a transaction is sent;
an endpoint more than ``max_lag`` blocks behind the others is an error (a frozen endpoint would
hide every later record), and after a transaction of this session is mined the next pin waits (at
most ``catch_up`` seconds) until every endpoint has that block.

**Writes** (``eth_sendRawTransaction``, ``eth_estimateGas``, nonces, fees, receipts) and anything
else go to the first endpoint only. An endpoint that cannot be reached fails the read (fail
closed: dropping the honest endpoint must not leave a lying one trusted alone); a call that any
endpoint answers with a JSON-RPC error is an error for the caller (a log query an endpoint caps
is then split and asked again, never answered by the other endpoints alone).
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

from ..errors import ElementsError
from .errors import RpcMismatchError, RpcResponseError, RpcUnavailableError
from .rpc import BoundedHTTPProvider, public_url

__all__ = ["CrossCheckProvider", "MAX_LAG_BLOCKS", "CATCH_UP_SECONDS", "COMPARED_METHODS"]

#: How far (in blocks) one endpoint may trail the others before reads stop.
MAX_LAG_BLOCKS = 128
#: How long a read waits for every endpoint to reach the block of this session's last transaction.
CATCH_UP_SECONDS = 30.0
#: The reads asked of every endpoint and compared.
COMPARED_METHODS = frozenset({"eth_call", "eth_getLogs", "eth_getCode"})

_SENDS = frozenset({"eth_sendRawTransaction", "eth_sendTransaction"})
_ADVICE = "one of them is wrong or out of sync: check both, and drop the bad one from --rpc-url / ELEMENTS_RPC_URL / the network's endpoints"
# The standard fields of a log (nodes add others, e.g. blockTimestamp, that are not compared).
_LOG_FIELDS = ("blockHash", "transactionHash", "transactionIndex", "address", "topics", "data", "removed")


class CrossCheckProvider:
    """A JSON-RPC provider over several endpoints of one chain (see the module's documentation).

    It speaks the same protocol as :class:`~registry.chain.rpc.BoundedHTTPProvider` (``make_request``,
    ``make_batch_request``), so the readers batch through it and web3 sends through it
    (:func:`registry.chain.rpc.web3_provider`).

    Args:
        endpoints: the endpoints, the first one also takes the writes (at least two).
        max_lag: blocks one endpoint may trail the others.
        catch_up: seconds to wait for every endpoint to reach this session's last transaction.
    """

    def __init__(self, endpoints: Sequence[BoundedHTTPProvider], *, max_lag: int = MAX_LAG_BLOCKS,
                 catch_up: float = CATCH_UP_SECONDS) -> None:
        if len(endpoints) < 2:
            raise ValueError("cross-checking needs at least two endpoints")
        self.url = self.endpoint_uri = endpoints[0].url
        self.endpoints = list(endpoints)
        self.max_lag = max_lag
        self.catch_up = catch_up
        self._pin: int | None = None
        self._floor = 0
        self._lock = threading.RLock()
        self._pool = ThreadPoolExecutor(max_workers=len(self.endpoints), thread_name_prefix="elements-rpc")
        self._ids = itertools.count(1)

    def __str__(self) -> str:
        return "RPC connections " + ", ".join(public_url(e.url) for e in self.endpoints)

    @property
    def urls(self) -> list[str]:
        return [e.url for e in self.endpoints]

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent to all endpoints together."""
        return sum(e.requests_sent for e in self.endpoints)

    # -- web3's provider interface ------------------------------------------------------------

    def make_request(self, method: str, params: Any) -> dict[str, Any]:
        if method == "eth_blockNumber":
            return {"jsonrpc": "2.0", "id": next(self._ids), "result": hex(self.pin(refresh=True))}
        if method == "eth_chainId":
            answers = self._everywhere(lambda e: e.make_request(method, params))
            return self._agreed(method, params, answers)
        if method in COMPARED_METHODS:
            pinned = self._pinned(method, params)
            answers = self._everywhere(lambda e: e.make_request(method, pinned))
            return self._agreed(method, pinned, answers)
        answer = self.endpoints[0].make_request(method, params)
        self._observe(method, answer)
        return answer

    def make_batch_request(self, calls: Sequence[tuple[str, Any]]) -> list[dict[str, Any]] | object:
        pinned = [(m, self._pinned(m, p) if m in COMPARED_METHODS else p) for m, p in calls]
        answers = self._everywhere(lambda e: e.make_batch_request(pinned))
        for answer in answers:
            if not isinstance(answer, list):
                refusal: object = answer  # an endpoint that does not batch: the caller asks call by call
                return refusal
        out = []
        for i, (method, params) in enumerate(pinned):
            column = [answer[i] for answer in answers]
            if method == "eth_blockNumber":
                out.append({"jsonrpc": "2.0", "id": column[0].get("id"), "result": hex(self.pin())})
            elif method in COMPARED_METHODS or method == "eth_chainId":
                out.append(self._agreed(method, params, column))
            else:
                out.append(column[0])
        return out

    # -- the pinned block ---------------------------------------------------------------------

    def pin(self, refresh: bool = False) -> int:
        """The block every compared read is made at: the lowest of the endpoints' latest blocks."""
        with self._lock:
            if self._pin is not None and not refresh:
                return self._pin
            heads = self._heads()
            if min(heads) < self._floor:
                heads = self._wait_for(self._floor, heads)
            low, high = min(heads), max(heads)
            if high - low > self.max_lag:
                behind, ahead = self.endpoints[heads.index(low)], self.endpoints[heads.index(high)]
                raise RpcMismatchError(
                    f"endpoint {public_url(behind.url)} is at block {low}, {high - low} blocks behind endpoint "
                    f"{public_url(ahead.url)} (block {high}); at most {self.max_lag} blocks of lag are accepted: wait for it "
                    "to catch up, or drop it from --rpc-url / ELEMENTS_RPC_URL / the network's endpoints"
                )
            self._pin = low
            return low

    def _heads(self) -> list[int]:
        answers = self._everywhere(lambda e: e.make_request("eth_blockNumber", []))
        return [_block_of(endpoint, answer) for endpoint, answer in zip(self.endpoints, answers)]

    def _wait_for(self, block: int, heads: list[int]) -> list[int]:
        deadline = time.monotonic() + self.catch_up
        while min(heads) < block and time.monotonic() < deadline:
            time.sleep(0.2)
            heads = self._heads()
        if min(heads) < block:
            late = self.endpoints[heads.index(min(heads))]
            raise RpcMismatchError(
                f"endpoint {public_url(late.url)} is still at block {min(heads)}, {self.catch_up:.0f}s after a transaction of "
                f"this session was mined in block {block}; wait for it to sync, or drop it from --rpc-url / ELEMENTS_RPC_URL / "
                "the network's endpoints"
            )
        return heads

    def _observe(self, method: str, answer: dict[str, Any]) -> None:
        """Follow this session's writes: a sent transaction unpins, a mined one raises the floor."""
        if method in _SENDS:
            with self._lock:
                self._pin = None
        elif method == "eth_getTransactionReceipt":
            receipt = answer.get("result") if isinstance(answer, dict) else None
            block = _int(receipt.get("blockNumber")) if isinstance(receipt, dict) else None
            if block is not None:
                with self._lock:
                    self._floor = max(self._floor, block)
                    if self._pin is not None and self._pin < block:
                        self._pin = None

    def _pinned(self, method: str, params: Any) -> list[Any]:
        """The parameters with ``latest`` (or no block) replaced by the pinned block."""
        pinned: list[Any] = list(params or [])
        if method in ("eth_call", "eth_getCode"):
            if len(pinned) < 2 or pinned[1] in (None, "latest"):
                pinned = pinned[:1] + [hex(self.pin())] + pinned[2:]
        elif method == "eth_getLogs" and pinned and isinstance(pinned[0], dict) and "blockHash" not in pinned[0]:
            flt = dict(pinned[0])
            for key in ("fromBlock", "toBlock"):
                if flt.get(key) in (None, "latest"):
                    flt[key] = hex(self.pin())
            pinned = [flt] + pinned[1:]
        return pinned

    # -- asking every endpoint ----------------------------------------------------------------

    def _everywhere(self, ask: Callable[[BoundedHTTPProvider], Any]) -> list[Any]:
        """Ask every endpoint at once; any endpoint that fails fails the read."""
        futures = [self._pool.submit(ask, endpoint) for endpoint in self.endpoints]
        answers, failure = [], None
        for endpoint, future in zip(self.endpoints, futures):
            try:
                answers.append(future.result())
            except ElementsError as exc:
                failure = failure or exc
            except Exception as exc:
                failure = failure or RpcUnavailableError(f"{public_url(endpoint.url)} failed a request ({type(exc).__name__}: {exc}); check the node")
        if failure is not None:
            raise failure
        return answers

    def _agreed(self, method: str, params: list[Any], answers: list[dict[str, Any]]) -> dict[str, Any]:
        """The first endpoint's answer, once every other endpoint gave the same one."""
        for answer in answers:
            if answer.get("error") is not None:
                # One endpoint refusing makes the call an error: never the others' word alone.
                return {"jsonrpc": "2.0", "id": answers[0].get("id"), "error": answer["error"]}
        first, reference = self.endpoints[0], answers[0].get("result")
        for endpoint, answer in zip(self.endpoints[1:], answers[1:]):
            difference = _difference(method, params, first, reference, endpoint, answer.get("result"))
            if difference:
                raise RpcMismatchError(f"{difference}; {_ADVICE}")
        return answers[0]


# ----------------------------------------------------------------------------------------------
# describing a difference


def _difference(method: str, params: list[Any], a: BoundedHTTPProvider, ra: Any, b: BoundedHTTPProvider, rb: Any) -> str | None:
    """``None`` when the two answers agree, else one sentence saying how they differ."""
    A, B = public_url(a.url), public_url(b.url)
    if method == "eth_getLogs":
        return _logs_difference(A, _logs_of(a, ra), B, _logs_of(b, rb))
    if method == "eth_chainId":
        ca, cb = _int(ra), _int(rb)
        if ca is None or cb is None:
            raise RpcResponseError(f"{A if ca is None else B} answered eth_chainId with {ra if ca is None else rb!r}; check the URL")
        return None if ca == cb else f"endpoint {B} serves chain id {cb} where endpoint {A} serves chain id {ca}"
    ha, hb = _hex_of(a, method, ra), _hex_of(b, method, rb)
    if ha == hb:
        return None
    block = _int(params[1]) if len(params) > 1 else None
    at = f" at block {block}" if block is not None else ""
    if method == "eth_getCode":
        return (f"endpoint {B} returns other code for {params[0]}{at} than endpoint {A} "
                f"({(len(hb) - 2) // 2:,} bytes where it has {(len(ha) - 2) // 2:,})")
    return _call_difference(A, ha, B, hb, params[0] if params else {}, at)


def _logs_difference(A: str, la: dict[tuple[int, int], dict[str, Any]], B: str, lb: dict[tuple[int, int], dict[str, Any]]) -> str | None:
    for key in sorted(set(la) | set(lb)):
        block = key[0]
        if key not in lb:
            return f"endpoint {B} is missing the {_log_name(la[key])} in block {block} that endpoint {A} returned"
        if key not in la:
            return f"endpoint {B} returned the {_log_name(lb[key])} in block {block}, which endpoint {A} did not return"
        if la[key] != lb[key]:
            fields = [f for f in _LOG_FIELDS if la[key].get(f) != lb[key].get(f)]
            return (f"endpoint {B} and endpoint {A} return different {_log_name(la[key])} in block {block} "
                    f"(log index {key[1]}; {', '.join(fields)} differ)")
    return None


def _logs_of(endpoint: BoundedHTTPProvider, result: Any) -> dict[tuple[int, int], dict[str, Any]]:
    """An ``eth_getLogs`` answer as ``{(block, log index): standard fields}``; malformed is refused."""
    url = public_url(endpoint.url)
    if not isinstance(result, list):
        raise RpcResponseError(f"{url} answered eth_getLogs with {type(result).__name__}, not a list of logs; check the node")
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for log in result:
        block = _int(log.get("blockNumber")) if isinstance(log, dict) else None
        index = _int(log.get("logIndex")) if isinstance(log, dict) else None
        if block is None or index is None or not isinstance(log.get("topics"), list):
            raise RpcResponseError(f"{url} answered eth_getLogs with a malformed log; check the node")
        key = (block, index)
        if key in out:
            raise RpcResponseError(f"{url} answered eth_getLogs with two logs at block {key[0]} index {key[1]}; check the node")
        out[key] = {f: _canonical(log.get(f)) for f in _LOG_FIELDS}
    return out


def _log_name(log: dict[str, Any]) -> str:
    """``RecordPublished log of record 0x…`` (named from the registry's ABI where it can be)."""
    topics = [t for t in log.get("topics") or [] if isinstance(t, str)]
    event = _events().get(topics[0]) if topics else None
    if event is None:
        return f"log with topic {topics[0][:10]}…" if topics else "log without topics"
    name, first = event
    if first == "recordId" and len(topics) > 1:
        return f"{name} log of record {topics[1]}"
    if first == "licenseId" and len(topics) > 1 and _int(topics[1]) is not None:
        return f"{name} log of licence {_int(topics[1])}"
    return f"{name} log"


def _call_difference(A: str, ha: str, B: str, hb: str, tx: Any, at: str) -> str:
    data = (tx.get("data") or tx.get("input") or "") if isinstance(tx, dict) else ""
    function = _functions().get(str(data)[:10].lower())
    if function is None:
        return f"endpoint {B} answers an eth_call{at} with {_short(hb)} where endpoint {A} answers {_short(ha)}"
    name = function["name"]
    try:
        detail = _decoded_difference(function, bytes.fromhex(str(data)[10:]), bytes.fromhex(ha[2:]), bytes.fromhex(hb[2:]))
    except Exception:  # an answer that does not decode is described by its bytes
        detail = None
    if detail is None:
        return f"endpoint {B} answers {name}(){at} with {_short(hb)} where endpoint {A} answers {_short(ha)}"
    subject, field, va, vb = detail
    return f"endpoint {B} answers {name}(){at} with {field}={vb} for {subject} where endpoint {A} answers {field}={va}"


def _decoded_difference(function: dict[str, Any], args: bytes, ra: bytes, rb: bytes) -> tuple[str, str, str, str] | None:
    """(what, which field, value at A, value at B) of the first decoded difference."""
    from .abi import decode as abi_decode

    outputs = function.get("outputs", [])
    out_a = abi_decode([_abi_type(o) for o in outputs], ra)
    out_b = abi_decode([_abi_type(o) for o in outputs], rb)
    inputs = function.get("inputs", [])
    given = abi_decode([_abi_type(i) for i in inputs], args) if inputs else ()
    per_item = (len(outputs) == 1 and outputs[0]["type"].endswith("[]") and len(inputs) == 1
                and inputs[0]["type"].endswith("[]") and len(out_a[0]) == len(out_b[0]) == len(given[0]))
    if per_item:
        names = [c["name"] for c in outputs[0].get("components", [])]
        for key, row_a, row_b in zip(given[0], out_a[0], out_b[0]):
            if row_a == row_b:
                continue
            subject = _subject(inputs[0]["name"], key)
            if names and isinstance(row_a, tuple):
                for field, va, vb in zip(names, row_a, row_b):
                    if va != vb:
                        return subject, field, _show(va), _show(vb)
            return subject, outputs[0]["name"] or "result", _show(row_a), _show(row_b)
        return None
    for index, (output, va, vb) in enumerate(zip(outputs, out_a, out_b)):
        if va != vb:
            return "the call", output.get("name") or f"output {index}", _show(va), _show(vb)
    return None


def _subject(input_name: str, key: Any) -> str:
    if input_name == "recordIds":
        return f"record {_show(key)}"
    if input_name == "licenseIds":
        return f"licence {key}"
    return f"{input_name} item {_show(key)}"


def _abi_type(entry: dict[str, Any]) -> str:
    kind = str(entry["type"])  # the committed artifact's ABI (tests/test_contracts_artifacts.py)
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in entry.get("components", [])) + ")" + kind[len("tuple"):]
    return kind


def _show(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    return str(value)


def _short(hex_text: str) -> str:
    return hex_text if len(hex_text) <= 26 else f"{hex_text[:18]}…{hex_text[-6:]} ({(len(hex_text) - 2) // 2:,} bytes)"


_ABI_LOCK = threading.Lock()
_ABI_CACHE: dict[str, dict[str, Any]] = {}


def _functions() -> dict[str, dict[str, Any]]:
    """The registry's functions by selector (``0x`` + 8 hex)."""
    _load_abi()
    return _ABI_CACHE["functions"]


def _events() -> dict[str, tuple[str, str | None]]:
    """The registry's events by topic 0: (name, name of the first indexed input)."""
    _load_abi()
    return _ABI_CACHE["events"]


def _load_abi() -> None:
    with _ABI_LOCK:
        if _ABI_CACHE:
            return
        from .abi import keccak
        from .deploy import artifact

        functions, events = {}, {}
        for entry in artifact()["abi"]:
            signature = f"{entry.get('name')}({','.join(_abi_type(i) for i in entry.get('inputs', []))})"
            if entry["type"] == "function":
                functions["0x" + keccak(text=signature)[:4].hex()] = entry
            elif entry["type"] == "event":
                first = next((i["name"] for i in entry.get("inputs", []) if i.get("indexed")), None)
                events["0x" + keccak(text=signature).hex()] = (entry["name"], first)
        _ABI_CACHE.update(functions=functions, events=events)


# ----------------------------------------------------------------------------------------------
# values


def _int(value: Any) -> int | None:
    """A JSON-RPC quantity (``0x`` hex, or a plain integer) as an int, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value[:2].lower() == "0x" and 2 < len(value) <= 66:
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None


def _canonical(value: Any) -> Any:
    """Hex strings compared without regard to case (nodes differ in how they print addresses)."""
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _hex_of(endpoint: BoundedHTTPProvider, method: str, result: Any) -> str:
    if not isinstance(result, str) or not result[:2].lower() == "0x":
        raise RpcResponseError(f"{public_url(endpoint.url)} answered {method} with {type(result).__name__}, not hex data; check the node")
    return result.lower()


def _block_of(endpoint: BoundedHTTPProvider, answer: dict[str, Any]) -> int:
    if answer.get("error") is not None:
        error = answer["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise RpcUnavailableError(f"{public_url(endpoint.url)} refused eth_blockNumber ({str(message)[:200]}); check the node")
    block = _int(answer.get("result"))
    if block is None:
        raise RpcResponseError(f"{public_url(endpoint.url)} answered eth_blockNumber with {str(answer.get('result'))[:80]!r}; check the node")
    return block
