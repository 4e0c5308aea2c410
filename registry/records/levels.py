"""The resolver's reading of records level by level: one JSON-RPC batch per level of a graph.

A level is ONE batch request (one HTTP round trip) holding the ``records(ids)`` view call and one
``eth_getLogs`` whose record-id topic is the OR-list of the level's ids (plus, in the first batch,
the claims of a content id, the licence term sets and the head block). Log queries are cut into
the network's log ranges (:mod:`registry.chain.logs`), narrowed to the blocks an attribution index
names (:mod:`registry.records.hints`), and read through the exact blocks a record's storage names
when a node refuses them (:meth:`registry.chain.registry.Registry.records`). Every event is
re-hashed into its record id and compared with the storage word before it becomes a
:class:`~registry.chain.reader.Record`. :class:`registry.records.resolve.Resolver` builds on it;
the module docstring there says what a graph costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ..chain.errors import LogQueryRefusedError, RpcResponseError
from ..chain.licenses import LicenseTerms
from ..chain.logs import block_ranges
from ..chain.reader import (
    RECORD_PUBLISHED_TOPIC,
    Record,
    RecordEvent,
    RecordState,
    decode_event,
    decode_licenses,
    decode_states,
    encode_topics,
    licenses_call,
    make_record,
    records_call,
)
from ..chain.registry import Registry
from ..digest import to_hex
from ..errors import ChainError, IntegrityError
from .disputes import priority_key
from .hints import BlockHints, hinted_ranges

__all__ = ["LICENSE_WINDOW", "LevelReader"]

#: Licence term sets read speculatively in the first batch (ids are dense from 1; 14 are built in).
LICENSE_WINDOW = 64
_IDS_PER_CALL = 256
_RANGES_PER_BATCH = 8  # log queries of one id list in one batch; a registry spanning more reads exact blocks
_EXACT = "exact blocks"  # a log call not sent: its records are read through the exact blocks
_TOO_MANY_RANGES = "the registry spans more log ranges than one batch holds"


@dataclass
class _Call:
    method: str
    params: list[Any]
    kind: str  # "states" | "logs" | "claims" | "licenses"
    ids: list[Any] = field(default_factory=list)  # record or content ids (bytes); licence ids (int) for "licenses"


class LevelReader:
    """Reads records of a registry level by level, batched (see the module docstring).

    Args:
        registry: a :class:`Registry` (read-only is enough).
        hints: where records are (a synced attribution index), or ``None``.
    """

    def __init__(self, registry: Registry, hints: BlockHints | None = None) -> None:
        self.registry = registry
        self.round_trips = 0
        self._licenses: dict[int, LicenseTerms] = dict(registry._licenses)
        self._batching = not registry.chain.is_memory
        self._head: int | None = None  # the head block, learnt in the first batch (log ranges are cut by it)
        self._logs_capped = False  # a node refused a log query: read exact blocks from then on
        self._address_bytes = bytes.fromhex(registry.address[2:])
        self._hints = hints
        self._hints_checked = False

    @property
    def hints(self) -> BlockHints | None:
        """Where records are (a synced attribution index): narrows log queries, never decides
        (:mod:`registry.records.hints`); dropped when the chain no longer has their last block."""
        return self._hints

    @hints.setter
    def hints(self, hints: BlockHints | None) -> None:
        self._hints, self._hints_checked = hints, False

    def _usable_hints(self) -> BlockHints | None:
        """The hints, where they can narrow queries: a batching node that has not refused a log query."""
        return self.hints if self.hints is not None and self._batching and not self._logs_capped else None

    def _run_levels(self, ids: Sequence[bytes], *, claims_of: Sequence[bytes] | None = None,
                    follow: bool = True) -> tuple[dict[bytes, int], dict[bytes, Record], list[bytes]]:
        """Read records level by level; returns ``(depth, records, roots)``; read again over the
        whole range when the hints turn out to be of another chain (see :meth:`_read_levels`)."""
        read = self._read_levels(ids, claims_of=claims_of, follow=follow)
        if read is None:  # the hints are of another chain: dropped, read again without them
            self.hints = None
            read = self._read_levels(ids, claims_of=claims_of, follow=follow)
        assert read is not None  # without hints nothing is stale
        return read

    def _read_levels(self, ids: Sequence[bytes], *, claims_of: Sequence[bytes] | None = None,
                     follow: bool = True) -> tuple[dict[bytes, int], dict[bytes, Record], list[bytes]] | None:
        """Read records level by level; returns ``(depth, records, roots)``, or ``None`` when the
        hints turn out to be of another chain (the first batch checks their last block).

        ``ids`` are read as records; ``claims_of`` adds every claim of these content ids as roots
        (the ids that turn out not to be records are then dropped). With ``follow`` the parents are
        read too, one level per round trip.
        """
        states: dict[bytes, RecordState | None] = {}
        logs: dict[bytes, RecordEvent] = {}
        done: dict[bytes, Record] = {}
        depth: dict[bytes, int] = {rid: 0 for rid in ids}
        need_state, need_log = list(dict.fromkeys(ids)), list(dict.fromkeys(ids))
        claim_roots: list[bytes] = []
        first = True
        licences_wanted: set[int] = set()
        while need_state or need_log or claims_of:
            calls: list[_Call] = []
            for start in range(0, len(need_state), _IDS_PER_CALL):
                part = need_state[start : start + _IDS_PER_CALL]
                calls.append(_Call("eth_call", [{"to": self.registry.address, "data": to_hex(records_call(part))}, "latest"], "states", part))
            hinted: set[bytes] = set()  # record ids asked for through hinted ranges
            calls += self._id_log_calls("logs", need_log, hinted)
            calls += self._id_log_calls("claims", list(claims_of or ()), hinted)
            if first and self._batching and self._head is None:
                calls.append(_Call("eth_blockNumber", [], "head"))
            hints = self._usable_hints()
            if hints is not None and not self._hints_checked:
                # First: a stale index is dropped before any answer is read.
                calls.insert(0, _Call("eth_getBlockByNumber", [hex(hints.last_block), False], "hint-check"))
            licence_ids = sorted(licences_wanted - set(self._licenses))
            if first and len(self._licenses) < 14:
                licence_ids = sorted(set(licence_ids) | set(range(1, LICENSE_WINDOW + 1)))
            if licence_ids:
                data = licenses_call(licence_ids)
                calls.append(_Call("eth_call", [{"to": self.registry.address, "data": to_hex(data)}, "latest"], "licenses", licence_ids))
            answers = iter(self._execute([c for c in calls if c.method != _EXACT]))
            results = [_Fallback(_TOO_MANY_RANGES) if c.method == _EXACT else next(answers)
                       for c in calls]
            first = False
            fallen: set[tuple[str, tuple[bytes, ...]]] = set()
            claims_of = None
            need_state, need_log = [], []
            fresh: list[bytes] = []
            for call, result in zip(calls, results):
                if call.kind == "states":
                    for rid, row in zip(call.ids, decode_states(self._bytes(result, "records()"), len(call.ids), self._where)):
                        states[rid] = row if row.exists else None
                elif call.kind == "hint-check":
                    expected = "0x" + bytes(hints.last_hash).hex() if hints is not None else None
                    if not isinstance(result, dict) or str(result.get("hash", "")).lower() != expected:
                        return None
                    self._hints_checked = True
                elif call.kind == "head":
                    try:
                        head = int(result, 16) if isinstance(result, str) and result[:2] == "0x" and 2 < len(result) <= 18 else None
                    except ValueError:  # "0xzz": not hex
                        head = None
                    self._head = head  # a malformed head only costs the range cut: log queries stay whole
                elif call.kind == "licenses":
                    rows = decode_licenses(self._bytes(result, "licenses()"), len(call.ids), self._where)
                    for license_id, (spdx_id, flags) in zip(call.ids, rows):
                        if spdx_id:
                            self._licenses[license_id] = LicenseTerms(license_id, spdx_id, flags)
                elif isinstance(result, _Fallback):
                    # The node refused the log query (a capped block range): read these records the
                    # slow way, through the exact blocks their storage names (once per id list).
                    if result.reason != _TOO_MANY_RANGES:
                        self._logs_capped = True
                    if (call.kind, tuple(call.ids)) in fallen:
                        continue
                    fallen.add((call.kind, tuple(call.ids)))
                    if call.kind == "claims":
                        for found in self.registry.claims_of(call.ids).values():
                            for record in found:
                                done[record.record_id] = record
                                claim_roots.append(record.record_id)
                                fresh.append(record.record_id)
                        self.round_trips += 2
                    else:
                        for rid, read in zip(call.ids, self.registry.records(call.ids)):
                            if read is not None:
                                done[rid] = read
                                fresh.append(rid)
                        self.round_trips += 2
                else:
                    if not isinstance(result, list):
                        raise IntegrityError(f"{self._where} answered eth_getLogs with {type(result).__name__}, not a list of logs")
                    for log in result:
                        event = decode_event(log, self._address_bytes, self._where)
                        if event is None:
                            continue
                        rid = event.record_id
                        if call.kind == "claims":
                            if event.content_id not in call.ids:
                                raise IntegrityError(f"{self.registry.chain.rpc_url} answered a claims query with a claim of another content id")
                            if rid not in claim_roots:
                                claim_roots.append(rid)
                        elif rid not in call.ids:
                            continue  # a node that answers more than asked: ignore the extra
                        if rid not in logs:
                            logs[rid] = event
                            fresh.append(rid)
            # A record that exists but whose event the hinted ranges missed (an index that lies or
            # lost rows): read through the exact blocks its storage names.
            lost = [rid for rid in hinted if states.get(rid) is not None and rid not in logs and rid not in done]
            if lost:
                for rid, read in zip(lost, self.registry.records(lost)):
                    if read is not None:
                        done[rid] = read
                        fresh.append(rid)
                self.round_trips += 2
            for rid in claim_roots:
                depth.setdefault(rid, 0)
                if rid not in states and rid not in done and rid not in need_state:
                    need_state.append(rid)
            for rid in fresh:
                record_or_event: Record | RecordEvent = done.get(rid) or logs[rid]
                parents, licence = record_or_event.parents, record_or_event.license_id
                licences_wanted.add(licence)
                if not follow:
                    continue
                for parent in parents:
                    if parent not in depth:
                        depth[parent] = depth[rid] + 1
                        need_state.append(parent)
                        need_log.append(parent)
        # Assemble and check every record whose state and event were read.
        out: dict[bytes, Record] = dict(done)
        for rid, event in logs.items():
            state = states.get(rid)
            if state is None:
                raise IntegrityError(
                    f"{self.registry.chain.rpc_url} returned an event for record {to_hex(rid)} that the registry's storage does not hold"
                )
            out[rid] = make_record(rid, state, event, self._where)
        for rid, state in states.items():
            if state is not None and rid not in out:
                raise ChainError(
                    f"{self.registry.chain.rpc_url} returned no RecordPublished event for record {to_hex(rid)} (block {state.block_number}); "
                    "the node may have pruned its logs (use an archive RPC)"
                )
        if follow:
            for rid, record in list(out.items()):
                for parent in record.parents:
                    if parent not in out:
                        raise IntegrityError(f"record {to_hex(rid)} names parent {to_hex(parent)}, which the registry does not hold")
        depth = {rid: d for rid, d in depth.items() if rid in out}
        if ids and ids[0] in out:
            roots = [ids[0]]
        else:
            roots = [r for r in claim_roots if r in out]
            roots.sort(key=lambda r: priority_key(out[r]))
        # Roots of a content-id query are at depth 0; everything else is counted from them.
        return depth, out, roots

    def _id_log_calls(self, kind: str, ids: list[bytes], hinted: set[bytes]) -> list[_Call]:
        """The log queries of a level's record ids (``logs``) or content ids (``claims``): over
        the whole range, or with hints, one per range of the blocks the hints name plus one from
        the hints' last block on (for ids they do not know, and every newer claim)."""
        def topics(part: list[bytes]) -> list[Any]:
            return [RECORD_PUBLISHED_TOPIC, part] if kind == "logs" else [RECORD_PUBLISHED_TOPIC, None, part]

        hints = self._usable_hints()
        calls: list[_Call] = []
        if hints is None or not ids:
            for start in range(0, len(ids), _IDS_PER_CALL):
                part = ids[start : start + _IDS_PER_CALL]
                calls += [_Call(m, p, kind, part) for m, p in self._log_calls(topics(part))]
            return calls
        if kind == "logs":
            blocks_of = {rid: [block] for rid, block in hints.record_blocks(ids).items() if block <= hints.last_block}
            tail = [rid for rid in ids if rid not in blocks_of]
            hinted.update(ids)
        else:
            blocks_of = {cid: [b for b in found if b <= hints.last_block] for cid, found in hints.claim_blocks(ids).items()}
            tail = ids
        address = self.registry.address
        for low, high, known in hinted_ranges(blocks_of, self.registry.reader.log_limits.max_range):
            for start in range(0, len(known), _IDS_PER_CALL):
                part = known[start : start + _IDS_PER_CALL]
                calls.append(_Call("eth_getLogs", [{"address": address, "fromBlock": hex(low), "toBlock": hex(high),
                                                    "topics": encode_topics(topics(part))}], kind, part))
        for start in range(0, len(tail), _IDS_PER_CALL):
            part = tail[start : start + _IDS_PER_CALL]
            calls += [_Call(m, p, kind, part) for m, p in self._log_calls(topics(part), hints.last_block)]
        return calls

    def _log_calls(self, topics: list[Any], start: int | None = None) -> list[tuple[str, list[Any]]]:
        """The ``eth_getLogs`` calls of one filter from the deployment block (or ``start``) on: one
        per log range (the last ends at ``latest``); a single :data:`_EXACT` placeholder when the
        span needs more ranges than one batch should carry, or a node has refused log queries already."""
        if self._logs_capped:
            return [(_EXACT, [])]
        deploy, limit = self.registry.deploy_block if start is None else start, self.registry.reader.log_limits.max_range
        ranges: list[tuple[int, Any]] = [(deploy, "latest")]
        if self._head is not None and limit > 0 and self._head - deploy + 1 > limit:
            cut = block_ranges(deploy, self._head, limit)
            if len(cut) > _RANGES_PER_BATCH:
                return [(_EXACT, [])]
            ranges = cut[:-1] + [(cut[-1][0], "latest")]
        encoded = encode_topics(topics)
        return [("eth_getLogs", [{"address": self.registry.address, "fromBlock": hex(low), "toBlock": high if isinstance(high, str) else hex(high),
                                  "topics": encoded}]) for low, high in ranges]

    def _execute(self, calls: list[_Call]) -> list[Any]:
        """Run the calls in ONE round trip where the node batches, else one after the other."""
        if not calls:
            return []
        chain = self.registry.chain
        if self._batching:
            self.round_trips += 1
            answers = self.registry.reader.batch([(c.method, c.params) for c in calls])
            if answers is None:
                # A node without batch support answers one error object: stop batching.
                self._batching = False
                self.round_trips -= 1
                return self._execute(calls)
            out: list[Any] = []
            for call, answer in zip(calls, answers):
                error = answer.get("error") if isinstance(answer, dict) else None
                if error is None and isinstance(answer, dict) and "result" in answer:
                    out.append(answer["result"])
                elif call.method == "eth_getLogs":
                    out.append(_Fallback(str(error)))
                else:
                    message = error.get("message") if isinstance(error, dict) else error
                    raise ChainError(f"{chain.rpc_url} refused {call.method} ({str(message)[:200]}); check the registry address and the node")
            return out
        out = []
        for call in calls:
            self.round_trips += 1
            if call.method == "eth_call":
                tx = call.params[0]
                out.append(chain.eth_call(tx["to"], bytes.fromhex(tx["data"][2:]), what="reading records"))
            elif call.method == "eth_blockNumber":
                out.append(hex(chain.block_number()))
            elif call.method == "eth_getBlockByNumber":  # the hints' check, on a node that stopped batching
                try:
                    out.append({"hash": "0x" + chain.block_hash(int(call.params[0], 16)).hex()})
                except RpcResponseError:
                    out.append(None)  # no such block: the hints are of another chain
            else:
                try:
                    out.append(chain.get_logs(call.params[0]))
                except LogQueryRefusedError as exc:
                    out.append(_Fallback(str(exc)))
        return out

    @property
    def _where(self) -> str:
        return self.registry.chain.rpc_url

    def _bytes(self, value: Any, what: str) -> bytes:
        """A call's answer (``0x`` hex from JSON-RPC, bytes in process) as bytes; anything else is refused."""
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        if isinstance(value, str) and value[:2].lower() == "0x" and len(value) % 2 == 0:
            try:
                return bytes.fromhex(value[2:])
            except ValueError:
                pass
        raise IntegrityError(f"{self._where} answered {what} with {str(value)[:60]!r}, not hex data; is this the registry?")

    def _read_licenses(self, ids: list[int]) -> None:
        ids = sorted({i for i in ids if 0 < i < 2**32})
        if not ids:
            return
        data = to_hex(licenses_call(ids))
        [result] = self._execute([_Call("eth_call", [{"to": self.registry.address, "data": data}, "latest"], "licenses", ids)])
        for license_id, (spdx_id, flags) in zip(ids, decode_licenses(self._bytes(result, "licenses()"), len(ids), self._where)):
            if spdx_id:
                self._licenses[license_id] = LicenseTerms(license_id, spdx_id, flags)


class _Fallback:
    """A log query the node refused; the level is read through :meth:`Registry.records`."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
