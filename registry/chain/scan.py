"""Bulk reads of the registry's events for indexes: every record of a block range, fast.

:meth:`ChainReader.from_logs` turns each log into a checked :class:`Record` (its id re-hashed, its
CID built, its publisher checksummed): right for what a command shows, a few hundred microseconds a
record. An index that reads the whole registry needs a few dozen: :func:`scan_records` reads the
same logs (through :meth:`ChainReader.logs`, so within the network's log caps), decodes the raw
JSON-RPC fields by position with the layout checks of :func:`~registry.chain.reader.decode_event`,
and reads each record's priority block from storage in JSON-RPC batches of ``records(ids)`` calls
(a node without batches, or the in-process chain, is read through :meth:`ChainReader.records`'s
path). Storage must agree with the event (publisher, block, a priority block at most
``COMMITMENT_EXPIRY`` blocks before it).

What it does not do is re-hash each event into its record id: the rows it returns only propose
(the attribution index reads every record it reports back from the chain, checked in full), so a
lying node can hide or invent a candidate but not a statement.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Iterator, NamedTuple, Sequence

from ..digest import ContentId, RecordId
from ..errors import IntegrityError
from .abi import checksum_address
from .logs import block_ranges
from .reader import COMMITMENT_EXPIRY, READ_CHUNK, RECORD_PUBLISHED_TOPIC, RECORD_YANKED_TOPIC, ChainReader, decode_yank, records_call

__all__ = ["ScannedRecord", "scan_records", "scan_parts", "scan_yanks", "decode_raw_log"]

_PARTS = 4  # block ranges read at once
# Each part starts small and sizes its next query from what the last one returned, so a node with
# dense blocks is not asked for answers over the caps (that would be thrown away whole).
_FIRST_SPAN = 16
_TARGET_LOGS = 4_000
_CALLS_PER_BATCH = 40  # records(ids) calls in one JSON-RPC batch: 10,240 records a round trip
_MAX_PARENTS = 127
_TOPIC0 = "0x" + RECORD_PUBLISHED_TOPIC.hex()
_STATE_HEX = 9 * 64  # one RecordState: nine words
_HEX = re.compile(r"[0-9a-fA-F]*")  # int(..., 16) alone would take "_", "+" and spaces, and raise on the rest
_PARENTS_OFFSET = f"{160:064x}"
_ADDRESS_PAD = "0" * 24
# A typed id from 32 bytes whose length is checked here, without Bytes32's own checks (a Python
# call per id: a tenth of a 100,000-record scan).
_typed = bytes.__new__
_FALSE = "0" * 64


class ScannedRecord(NamedTuple):
    """One ``RecordPublished`` event, its record's priority block and whether it was yanked when
    storage was read. The parents come last: ``record[:-1]`` is a row of plain values (what the
    attribution index stores, without a tuple built per record)."""

    record_id: RecordId
    content_id: ContentId
    publisher: str  # checksummed
    cid_codec: int
    cid_digest: bytes
    license_id: int
    kind: int
    block_number: int
    log_index: int
    priority_block: int
    yanked: bool
    parents: tuple[RecordId, ...]


def _word(body: str, index: int) -> int:
    return int(body[64 * index : 64 * index + 64], 16)


def decode_raw_log(log: Any, address: str, where: str) -> tuple[Any, ...] | None:
    """A JSON-RPC log as ``(record id, content id, publisher (40 hex), codec, digest, licence,
    kind, parents, block, log index)``; ``None`` for a log that is not the registry's
    ``RecordPublished`` (``address`` in lower case).

    Raises:
        IntegrityError: a malformed log or event (the checks of ``decode_event``).
    """
    try:
        topics = log["topics"]
        if type(topics) is not list or len(topics) > 4:
            raise ValueError("topics")
        if len(topics) != 4 or topics[0].lower() != _TOPIC0 or log.get("removed") or log["address"].lower() != address:
            return None
        record_hex, content_hex, publisher_hex, body = topics[1], topics[2], topics[3], log["data"]
        size = len(body) - 2
        # The layout is fixed (codec, digest, licence, kind, the parents' offset 0xa0, their count,
        # the ids): compared as text where a word has one right value, parsed where it has several.
        if (len(record_hex) != 66 or len(content_hex) != 66 or len(publisher_hex) != 66 or body[:2] != "0x" or size < 384
                or size % 64 or body[258:322].lower() != _PARENTS_OFFSET):
            raise IntegrityError(f"{where} returned a malformed RecordPublished event (record {record_hex})")
        # Two hex decodings, the topics' and the data's; their lengths show every digit was hex
        # (bytes.fromhex skips spaces, which a shorter result shows; int(..., 16) would take "-", "+" and "_").
        ids = bytes.fromhex(record_hex[2:] + content_hex[2:] + publisher_hex[26:])
        words = bytes.fromhex(body[2:])
        if len(ids) != 84 or len(words) != size >> 1:
            raise ValueError("not hex")
        count = int.from_bytes(words[160:192], "big")
        codec, license_id, kind = int.from_bytes(words[0:32], "big"), int.from_bytes(words[64:96], "big"), int.from_bytes(words[96:128], "big")
        if count != (size - 384) >> 6:
            raise IntegrityError(f"{where} returned a malformed RecordPublished event (record {record_hex})")
        if count > _MAX_PARENTS or codec > 0xFF or kind > 0xFF or license_id >= 2**32 or publisher_hex[2:26] != _ADDRESS_PAD:
            raise IntegrityError(f"{where} returned an out-of-range RecordPublished event (record {record_hex})")
        return (
            _typed(RecordId, ids[:32]),
            _typed(ContentId, ids[32:64]),
            publisher_hex[26:].lower(),
            codec,
            words[32:64],
            license_id,
            kind,
            tuple([_typed(RecordId, words[i : i + 32]) for i in range(192, len(words), 32)]) if count else (),
            int(log["blockNumber"], 16),
            int(log["logIndex"], 16),
        )
    except IntegrityError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError):
        raise IntegrityError(f"{where} answered eth_getLogs with a malformed log; check the node") from None


def _priority_blocks(reader: ChainReader, events: Sequence[tuple[Any, ...]]) -> list[tuple[int, bool]]:
    """Each event's priority block and yanked flag from storage, storage checked against the event."""
    ids = [e[0] for e in events]
    calls: list[tuple[str, list[Any]]] = [("eth_call", [{"to": reader.address, "data": "0x" + records_call(ids[i : i + READ_CHUNK]).hex()}, "latest"])
             for i in range(0, len(ids), READ_CHUNK)]
    answers: list[str] = []
    for start in range(0, len(calls), _CALLS_PER_BATCH):
        part = calls[start : start + _CALLS_PER_BATCH]
        batch = reader.batch(part) if len(part) > 1 else None
        if batch is None:
            # No batches (in process, or a node without them): one call at a time.
            answers += ["0x" + reader.call(bytes.fromhex(call[1][0]["data"][2:]), "reading records").hex() for call in part]
            continue
        for answer in batch:
            result = answer.get("result") if isinstance(answer, dict) else None
            if not isinstance(result, str):
                raise IntegrityError(f"{reader.where} refused a records() call in a batch; check the node")
            answers.append(result)
    out: list[tuple[int, bool]] = []
    for n, answer in enumerate(answers):
        chunk = events[n * READ_CHUNK : (n + 1) * READ_CHUNK]
        body = answer[2:] if answer[:2] == "0x" else ""
        if not _HEX.fullmatch(body):
            raise IntegrityError(f"{reader.where} answered records() with malformed storage (not hex); is this the registry?")
        if len(body) != 128 + _STATE_HEX * len(chunk) or _word(body, 0) != 32 or _word(body, 1) != len(chunk):
            raise IntegrityError(f"{reader.where} answered records() with {len(body) // 2} bytes for {len(chunk)} ids; is this the registry?")
        for i, event in enumerate(chunk):
            base = 128 + _STATE_HEX * i
            publisher, block, priority = body[base + 24 : base + 64], int(body[base + 128 : base + 192], 16), int(body[base + 512 : base + 576], 16)
            if publisher.lower() != event[2] or block != event[8] or not 0 <= block - priority <= COMMITMENT_EXPIRY:
                raise IntegrityError(f"storage and event disagree for record {event[0]} at {reader.where}")
            out.append((priority, body[base + 384 : base + 448] != _FALSE))
    return out


def scan_records(reader: ChainReader, start: int, end: int) -> list[ScannedRecord]:
    """Every ``RecordPublished`` of blocks ``start..end``, in publication order, each once.

    Raises:
        IntegrityError: a malformed log, or storage that disagrees with an event.
        ChainError / ServiceError: the node refused or is unreachable.
    """
    if start > end:
        return []
    if not reader.chain.is_memory and end - start + 1 >= 2 * _PARTS:
        # The node works on one part while this process decodes another.
        parts = block_ranges(start, end, -(-(end - start + 1) // _PARTS))
        with ThreadPoolExecutor(max_workers=_PARTS) as pool:
            answers = list(pool.map(lambda part: _scan(reader, *part), parts))
        out, seen = [], set()
        for answer in answers:
            for record in answer:
                if record.record_id not in seen:  # a node repeating a log across parts
                    seen.add(record.record_id)
                    out.append(record)
        return out
    return _scan(reader, start, end)


def scan_parts(reader: ChainReader, start: int, end: int) -> Iterator[list[ScannedRecord]]:
    """The records of blocks ``start..end`` in parts, each yielded as soon as it is read (parts
    in any order; a record a node repeats across parts may come twice): a caller that stores
    them works while the node answers the other parts.

    Raises what :func:`scan_records` raises.
    """
    if start > end:
        return
    if reader.chain.is_memory or end - start + 1 < 2 * _PARTS:
        yield _scan(reader, start, end)
        return
    with ThreadPoolExecutor(max_workers=_PARTS) as pool:
        futures = [pool.submit(_scan, reader, *part) for part in block_ranges(start, end, -(-(end - start + 1) // _PARTS))]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _scan(reader: ChainReader, start: int, end: int) -> list[ScannedRecord]:
    if reader.chain.is_memory:
        # The in-process chain hands web3 objects, not JSON: read it the checked, slower way.
        return [ScannedRecord(r.record_id, r.content_id, r.publisher, r.cid_codec, r.cid_digest, r.license_id, int(r.kind),
                              r.block_number, r.log_index, r.block_number if r.priority_block is None else r.priority_block,
                              bool(r.yanked), tuple(r.parents))
                for r in reader.from_logs(reader.logs([RECORD_PUBLISHED_TOPIC], start, end))]
    address = reader.address.lower()
    seen: set[bytes] = set()
    events = []
    for log in reader.logs([RECORD_PUBLISHED_TOPIC], start, end, first_span=_FIRST_SPAN, target_logs=_TARGET_LOGS, merge=False):
        event = decode_raw_log(log, address, reader.where)
        if event is not None and event[0] not in seen:
            seen.add(event[0])
            events.append(event)
    priorities = _priority_blocks(reader, events) if events else []
    names: dict[str, str] = {}
    out: list[ScannedRecord] = []
    make = tuple.__new__
    for event, (priority, yanked) in zip(events, priorities):
        publisher = names.get(event[2])
        if publisher is None:
            publisher = names[event[2]] = checksum_address("0x" + event[2])
        # tuple.__new__: a named tuple's own constructor is a Python call per record.
        out.append(make(ScannedRecord, (event[0], event[1], publisher, event[3], event[4], event[5], event[6], event[8], event[9], priority,
                                        yanked, event[7])))
    return out


def scan_yanks(reader: ChainReader, start: int, end: int) -> list[RecordId]:
    """The record ids of every ``RecordYanked`` of blocks ``start..end`` (within the network's
    log caps), each once: how an index learns that a record it holds was yanked since.

    Raises:
        IntegrityError: a malformed log.
        ChainError / ServiceError: the node refused or is unreachable.
    """
    if start > end:
        return []
    address = bytes.fromhex(reader.address[2:])
    found = (decode_yank(log, address, reader.where) for log in reader.logs([RECORD_YANKED_TOPIC], start, end))
    return list(dict.fromkeys(rid for rid in found if rid is not None))
