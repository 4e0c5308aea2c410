"""The one reader of the registry's records: its view calls and events, decoded and checked.

Two readers used to decode ``records()`` answers, ``RecordPublished`` events and record ids: the
registry bindings (one call per level, through web3) and the resolver (JSON-RPC batches, by
hand). Both now go through this module:

* **values**: :class:`Record`, :class:`Kind`, :func:`record_id_of`,
  :data:`RECORD_PUBLISHED_TOPIC`, :func:`encode_topics`, :func:`claim_order`;
* **decoders** of hostile bytes: :func:`decode_states` (``records(ids)``' answer),
  :func:`decode_licenses` (``licenses(ids)``'), :func:`decode_event` (one ``RecordPublished``
  log), and :func:`make_record`, which joins a storage word and an event into a :class:`Record`
  only when the event hashes to the record id and storage agrees with it;
* :class:`ChainReader`: the reads themselves over a :class:`~registry.chain.network.Chain`
  (``eth_call`` / ``eth_getLogs`` / JSON-RPC batches), for :class:`~registry.chain.registry.Registry`
  and :class:`~registry.records.resolve.Resolver` alike.

Nothing here imports web3 or eth-abi (:mod:`registry.chain.abi` does the little ABI work), so a
command that only reads over JSON-RPC starts without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple, Sequence

from ..digest import ContentId, RecordId, to_hex
from ..errors import ChainError, ElementsError, InputError, IntegrityError
from .abi import AbiDecodeError, checksum_address, decode, encode_call, keccak
from .cids import join_cid
from .logs import DEFAULT_LOG_LIMITS, LogLimits, query_logs
from .licenses import LicenseTerms, describe_inherited

if TYPE_CHECKING:
    from .network import Chain

__all__ = [
    "Kind",
    "kind_name",
    "Record",
    "RecordState",
    "RecordEvent",
    "claim_order",
    "COMMITMENT_EXPIRY",
    "RECORD_TYPE",
    "RECORD_TYPEHASH",
    "RECORD_PUBLISHED_TOPIC",
    "RECORD_YANKED_TOPIC",
    "decode_yank",
    "ZERO_ADDRESS",
    "record_id_of",
    "encode_topics",
    "records_call",
    "licenses_call",
    "decode_states",
    "decode_licenses",
    "decode_event",
    "make_record",
    "ChainReader",
]

#: How many blocks after its commitment a reveal may come, at most (the contract's COMMITMENT_EXPIRY).
COMMITMENT_EXPIRY = 255
RECORD_TYPE = (
    "Record(address publisher,bytes32 contentId,uint8 cidCodec,bytes32 cidDigest,uint32 licenseId,uint8 kind,bytes32[] parents)"
)
RECORD_TYPEHASH = keccak(RECORD_TYPE.encode())
#: topics[0] of the registry's RecordPublished event (topics[1..3]: record id, content id, publisher).
RECORD_PUBLISHED_TOPIC = keccak(text="RecordPublished(bytes32,bytes32,address,uint8,bytes32,uint32,uint8,bytes32[])")
RECORD_YANKED_TOPIC = keccak(text="RecordYanked(bytes32,address)")
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

_STATE_WORDS = 9  # the words of one RecordState in records()' answer
_STATE_TYPE = "(address,uint32,uint40,uint8,uint8,uint8,bool,uint8,uint40)[]"
# How many ids go into one eth_call / one eth_getLogs topic list, and how many blocks one log query
# spans at most when it gathers records from several blocks (public RPCs limit both).
READ_CHUNK = 256
LOG_SPAN = 2_000
_MAX_LOG_PARENTS = 127  # the contract's MAX_PARENTS: an event with more was not emitted by it


class Kind(IntEnum):
    """What a record's content is (other values are accepted by the contract)."""

    ELEMENT = 0
    COMPOSITION = 1
    FILE = 2
    ADAPTER = 3

    @classmethod
    def of(cls, value: int) -> "Kind | int":
        """The :class:`Kind` of a value this client names, else the plain integer."""
        return cls(value) if value in cls._value2member_map_ else int(value)


def kind_name(kind: int, *, article: bool = False) -> str:
    """A record kind in words: ``element``, ``composition``, ``file``, ``adapter``, or ``kind N``
    for one this client does not name; with ``article``: ``an element`` ... ``a kind 9``."""
    name = Kind(kind).name.lower() if kind in Kind._value2member_map_ else f"kind {kind}"
    return (("an " if name[0] in "aeiou" else "a ") + name) if article else name


@dataclass(frozen=True)
class Record:
    """A published claim, as read back from the chain.

    Attributes:
        record_id: the record's id (32 bytes).
        publisher: the publisher's checksummed address.
        content_id: the content claimed (32 bytes).
        cid: the CID string (as Kubo prints it); ``cid_codec`` / ``cid_digest`` are its parts.
        license_id: the licence term set.
        kind: the kind (a :class:`Kind` when known).
        parents: the parent record ids, ascending.
        block_number: the block it was published in.
        yanked: whether its publisher yanked it.
        transaction_hash: the transaction that published it.
        log_index: the event's index in its block (with the block, the publication order).
        inherited: the restrictions the record inherits from other publishers' records in its
            ancestry, as the chain stores them (``INHERITS_NON_COMMERCIAL`` | ``INHERITS_SHARE_ALIKE``
            of :mod:`registry.chain.licenses`); they bind every derivative of it.
        priority_block: the block the record's priority dates from: the block of the commitment it
            was revealed from (commit-reveal publishing), else ``block_number`` (the default).
            Claims of the same content are ordered by it, earliest first (:func:`claim_order`).
    """

    record_id: RecordId
    publisher: str
    content_id: ContentId
    cid: str
    cid_codec: int
    cid_digest: bytes
    license_id: int
    kind: int
    parents: tuple[RecordId, ...]
    block_number: int
    yanked: bool
    transaction_hash: bytes = b""
    log_index: int = 0
    inherited: int = 0
    priority_block: int | None = None

    def __post_init__(self) -> None:
        if self.priority_block is None:
            object.__setattr__(self, "priority_block", self.block_number)

    def to_json(self) -> dict[str, Any]:
        return {
            "record_id": to_hex(self.record_id),
            "publisher": self.publisher,
            "content_id": to_hex(self.content_id),
            "cid": self.cid,
            "license_id": self.license_id,
            "kind": self.kind.name.lower() if isinstance(self.kind, Kind) else self.kind,
            "parents": [to_hex(p) for p in self.parents],
            "block_number": self.block_number,
            "priority_block": self.priority_block,
            "yanked": self.yanked,
            "transaction_hash": to_hex(self.transaction_hash) if self.transaction_hash else None,
            "inherited_restrictions": describe_inherited(self.inherited),
        }


def claim_order(record: Record) -> tuple[int, int, int]:
    """The order of claims, earliest first: priority block, then publication (block, log index)."""
    priority = record.block_number if record.priority_block is None else record.priority_block  # set by __post_init__
    return (priority, record.block_number, record.log_index)


def record_id_of(publisher: str | bytes, record: Any) -> RecordId:
    """The record id: the EIP-712 struct hash of ``Record`` (same as the contract's ``recordIdOf``).

    ``record`` is a :class:`Record` or a ``RecordInput`` (anything with the claim's fields); every
    field of the struct is one static word, so its encoding is a concatenation.
    """
    from .abi import address_bytes

    return RecordId(keccak(
        RECORD_TYPEHASH
        + bytes(12) + address_bytes(publisher)
        + bytes(record.content_id)
        + int(record.cid_codec).to_bytes(32, "big")
        + bytes(record.cid_digest)
        + int(record.license_id).to_bytes(32, "big")
        + int(record.kind).to_bytes(32, "big")
        + keccak(b"".join(record.parents))
    ))


def encode_topics(topics: Sequence[Any]) -> list[Any]:
    """An ``eth_getLogs`` topic filter: each topic (bytes), list of topics (any of them) or ``None``
    (any value) as ``0x`` hex; trailing ``None`` dropped."""
    out: list[Any] = []
    for topic in topics:
        if topic is None:
            out.append(None)
        elif isinstance(topic, list):
            out.append([to_hex(t) for t in topic])
        else:
            out.append(to_hex(topic))
    while out and out[-1] is None:
        out.pop()
    return out


# ----------------------------------------------------------------------------------------------
# decoding hostile answers


class RecordState(NamedTuple):
    """One record's storage word as ``records(ids)`` returns it (``publisher`` as 20 bytes)."""

    publisher: bytes
    license_id: int
    block_number: int
    kind: int
    cid_codec: int
    parent_count: int
    yanked: bool
    inherited: int
    priority_block: int

    @property
    def exists(self) -> bool:
        return self.publisher != bytes(20)


class RecordEvent(NamedTuple):
    """One ``RecordPublished`` log, decoded (``publisher`` as 20 bytes)."""

    record_id: RecordId
    content_id: ContentId
    publisher: bytes
    cid_codec: int
    cid_digest: bytes
    license_id: int
    kind: int
    parents: tuple[RecordId, ...]
    block_number: int
    log_index: int
    transaction_hash: bytes


_RECORDS_SELECTOR = encode_call("records", ["bytes32[]"], [[]])[:4]


def records_call(ids: Sequence[bytes]) -> bytes:
    """Calldata of ``records(bytes32[] ids)``: the selector, the array's offset and length, the
    ids (a bulk read encodes 100,000 of them: by hand, not through the ABI encoder)."""
    if all(isinstance(i, (bytes, bytearray)) and len(i) == 32 for i in ids):
        return _RECORDS_SELECTOR + (32).to_bytes(32, "big") + len(ids).to_bytes(32, "big") + b"".join(bytes(i) for i in ids)
    return encode_call("records", ["bytes32[]"], [list(ids)])


def licenses_call(ids: Sequence[int]) -> bytes:
    """Calldata of ``licenses(uint32[] ids)``."""
    return encode_call("licenses", ["uint32[]"], [list(ids)])


def _uint(data: bytes, word: int) -> int:
    return int.from_bytes(data[32 * word : 32 * word + 32], "big")


def decode_states(data: bytes, count: int, where: str) -> list[RecordState]:
    """``records(ids)``' answer for ``count`` ids, each word range-checked.

    Raises:
        IntegrityError: any other length, layout or a value wider than its field (``where``
        names the endpoint).
    """
    data = bytes(data)
    if len(data) != 64 + 32 * _STATE_WORDS * count or _uint(data, 0) != 32 or _uint(data, 1) != count:
        raise IntegrityError(f"{where} answered records() with {len(data)} bytes for {count} ids; is this the registry?")
    try:
        (rows,) = decode([_STATE_TYPE], data, what=f"the answer of {where} to records()")
    except AbiDecodeError as exc:
        raise IntegrityError(f"{exc}; is this the registry?") from None
    return [RecordState(bytes.fromhex(row[0][2:]), *row[1:]) for row in rows]


def decode_licenses(data: bytes, count: int, where: str) -> list[tuple[str, int]]:
    """``licenses(ids)``' answer: ``(SPDX id, flags)`` for each of ``count`` ids (an unknown id
    reads as an empty identifier)."""
    try:
        (rows,) = decode(["(string,uint8)[]"], data, what=f"the answer of {where} to licenses()")
    except AbiDecodeError as exc:
        raise IntegrityError(f"{exc}; is this the registry?") from None
    if len(rows) != count:
        raise IntegrityError(f"{where} answered licenses() with {len(rows)} term sets for {count} ids; is this the registry?")
    return [(str(spdx), int(flags)) for spdx, flags in rows]


def _hex_bytes(value: Any, what: str, size: int | None = None) -> bytes:
    """A ``0x`` hex string (JSON-RPC) or bytes (the in-process chain) as bytes."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
    elif isinstance(value, str) and value[:2].lower() == "0x" and len(value) % 2 == 0:
        try:
            raw = bytes.fromhex(value[2:])
        except ValueError:
            raise IntegrityError(f"{what} is not hex") from None
    else:
        raise IntegrityError(f"{what} is not hex data ({type(value).__name__})")
    if size is not None and len(raw) != size:
        raise IntegrityError(f"{what} has {len(raw)} bytes, not {size}")
    return raw


def decode_yank(log: Any, address: bytes, where: str) -> RecordId | None:
    """The record id of one ``RecordYanked`` log of the registry at ``address``; ``None`` for
    another contract's or event's log, or a removed one.

    Raises:
        IntegrityError: a malformed log.
    """
    topics = _event_topics(log, address, where, RECORD_YANKED_TOPIC, 3)
    return None if topics is None else RecordId(topics[1])


def _event_topics(log: Any, address: bytes, where: str, event: bytes, count: int) -> list[bytes] | None:
    """The ``count`` topics of ``log`` when it is the registry's event ``event`` (its topic 0);
    ``None`` for another contract's or event's log, or a removed one.

    Raises:
        IntegrityError: a log that is not an object, or topics that are not 32-byte hex words.
    """
    if not isinstance(log, dict) and not hasattr(log, "get"):
        raise IntegrityError(f"{where} answered eth_getLogs with a log that is not an object")
    topics_value = log.get("topics")
    if not isinstance(topics_value, (list, tuple)) or len(topics_value) > 4:
        raise IntegrityError(f"{where} answered eth_getLogs with a malformed log (topics)")
    topics = [_hex_bytes(t, f"a log topic from {where}", 32) for t in topics_value]
    if log.get("removed") or len(topics) != count or topics[0] != event:
        return None
    if _hex_bytes(log.get("address"), f"a log address from {where}", 20) != address:
        return None
    return topics


def _quantity(value: Any, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value[:2].lower() == "0x" and 2 < len(value) <= 18:
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise IntegrityError(f"{what} is not a block quantity ({str(value)[:40]!r})")


def decode_event(log: Any, address: bytes, where: str) -> RecordEvent | None:
    """One log of an ``eth_getLogs`` answer as a :class:`RecordEvent`; ``None`` for a log that is
    not the registry's ``RecordPublished`` (another contract, another event, a removed log).

    Raises:
        IntegrityError: a malformed log, or a ``RecordPublished`` whose data does not decode
        within the event's bounds (a forged but well-formed one fails :func:`make_record`).
    """
    topics = _event_topics(log, address, where, RECORD_PUBLISHED_TOPIC, 4)
    if topics is None:
        return None
    data = _hex_bytes(log.get("data"), f"the data of a log from {where}")
    record = f"record {to_hex(topics[1])}"
    # RecordPublished's data: cidCodec, cidDigest, licenseId, kind, offset of parents (0xa0),
    # then the parents array (length, ids): the layout is fixed, so it is checked word by word.
    if len(data) < 192 or (len(data) - 192) % 32 or _uint(data, 4) != 160 or _uint(data, 5) != (len(data) - 192) // 32:
        raise IntegrityError(f"{where} returned a malformed RecordPublished event ({record})")
    if _uint(data, 5) > _MAX_LOG_PARENTS:
        raise IntegrityError(f"{where} returned a RecordPublished event with {_uint(data, 5)} parents ({record}); the registry allows {_MAX_LOG_PARENTS}")
    codec, license_id, kind = _uint(data, 0), _uint(data, 2), _uint(data, 3)
    if codec > 0xFF or kind > 0xFF or license_id >= 2**32 or topics[3][:12] != bytes(12):
        raise IntegrityError(f"{where} returned an out-of-range RecordPublished event ({record})")
    return RecordEvent(
        record_id=RecordId(topics[1]),
        content_id=ContentId(topics[2]),
        publisher=topics[3][12:],
        cid_codec=codec,
        cid_digest=data[32:64],
        license_id=license_id,
        kind=kind,
        parents=tuple(RecordId(data[i : i + 32]) for i in range(192, len(data), 32)),
        block_number=_quantity(log.get("blockNumber"), f"a log's block number from {where}"),
        log_index=_quantity(log.get("logIndex"), f"a log's index from {where}"),
        transaction_hash=_hex_bytes(log.get("transactionHash"), f"a log's transaction hash from {where}", 32),
    )


def make_record(rid: bytes, state: RecordState, event: RecordEvent, where: str) -> Record:
    """The :class:`Record` of a storage word and its event, once both are checked against the id.

    Raises:
        IntegrityError: the event does not hash to the record id, or storage and event disagree.
    """
    try:
        cid = join_cid(event.cid_codec, event.cid_digest)
    except InputError:
        raise IntegrityError(f"record {to_hex(rid)} has CID codec {event.cid_codec}, which the registry never accepts") from None
    # Never trust: the id commits to every field, and storage must agree with the event.
    if event.record_id != rid or record_id_of(event.publisher, event) != rid:
        raise IntegrityError(f"the event data of record {to_hex(rid)} does not hash to its id; the RPC at {where} is lying")
    if (
        state.publisher != event.publisher
        or state.license_id != event.license_id
        or state.block_number != event.block_number
        or state.parent_count != len(event.parents)
        or state.cid_codec != event.cid_codec
        or not 0 <= state.block_number - state.priority_block <= COMMITMENT_EXPIRY
    ):
        raise IntegrityError(f"storage and event disagree for record {to_hex(rid)} at {where}")
    return Record(
        record_id=event.record_id,
        publisher=checksum_address(event.publisher),
        content_id=event.content_id,
        cid=cid,
        cid_codec=event.cid_codec,
        cid_digest=event.cid_digest,
        license_id=event.license_id,
        kind=Kind.of(event.kind),
        parents=event.parents,
        block_number=event.block_number,
        yanked=bool(state.yanked),
        transaction_hash=event.transaction_hash,
        log_index=event.log_index,
        inherited=state.inherited,
        priority_block=state.priority_block,
    )


# ----------------------------------------------------------------------------------------------
# reading


class ChainReader:
    """The registry's records and licences read from one chain, every answer decoded and checked.

    Args:
        chain: the :class:`~registry.chain.network.Chain` (JSON-RPC, cross-checked, or in process).
        address: the registry's address.
        deploy_block: where log queries start.
    """

    def __init__(self, chain: "Chain", address: str, deploy_block: int = 0) -> None:
        self.chain = chain
        self.address = checksum_address(address)
        self.address_bytes = bytes.fromhex(self.address[2:])
        self.deploy_block = deploy_block
        #: how log queries are cut for this chain's nodes (``open_registry`` sets the network's)
        self.log_limits: LogLimits = DEFAULT_LOG_LIMITS

    @property
    def where(self) -> str:
        """The endpoint(s), as errors name them."""
        return self.chain.rpc_url

    # -- view calls ---------------------------------------------------------------------------

    def call(self, data: bytes, what: str = "reading the registry") -> bytes:
        """``eth_call`` of the registry with ``data``; the raw answer."""
        return self.chain.eth_call(self.address, data, what=what)

    def view(self, name: str, types: Sequence[str], values: Sequence[Any], outputs: Sequence[str]) -> tuple[Any, ...]:
        """Call a view of the registry and decode its outputs (bounded, strict)."""
        answer = self.call(encode_call(name, types, values), f"reading {name}")
        try:
            return decode(outputs, answer, what=f"the answer of {self.where} to {name}()")
        except AbiDecodeError as exc:
            raise IntegrityError(f"{exc}; is this the registry?") from None

    def states(self, ids: Sequence[bytes]) -> list[RecordState]:
        """The storage word of each id (one view call per 256 ids)."""
        out: list[RecordState] = []
        for start in range(0, len(ids), READ_CHUNK):
            part = list(ids[start : start + READ_CHUNK])
            out += decode_states(self.call(records_call(part), "reading records"), len(part), self.where)
        return out

    def licenses(self, ids: Sequence[int]) -> dict[int, LicenseTerms]:
        """The term sets of these ids that exist (one view call per 256 ids)."""
        out: dict[int, LicenseTerms] = {}
        wanted = [i for i in ids if 0 < i < 2**32]
        for start in range(0, len(wanted), READ_CHUNK):
            part = wanted[start : start + READ_CHUNK]
            rows = decode_licenses(self.call(licenses_call(part), "reading licences"), len(part), self.where)
            for license_id, (spdx_id, flags) in zip(part, rows):
                if spdx_id:
                    out[license_id] = LicenseTerms(license_id, spdx_id, flags)
        return out

    # -- events -------------------------------------------------------------------------------

    def logs(self, topics: Sequence[Any], from_block: int | None = None, to_block: int | None = None, **walk: Any) -> list[Any]:
        """Raw ``RecordPublished``-filtered logs of the registry in a block range (default: all of
        it), asked for within :attr:`log_limits` (see :mod:`registry.chain.logs`; ``walk``: the
        ``first_span`` / ``target_logs`` of :func:`~registry.chain.logs.query_logs`)."""
        start = self.deploy_block if from_block is None else from_block
        end = self.chain.block_number() if to_block is None else to_block
        encoded = encode_topics(topics)

        def get_logs(low: int, high: int) -> list[Any]:
            return self.chain.get_logs({"address": self.address, "fromBlock": hex(low), "toBlock": hex(high), "topics": encoded})

        return query_logs(get_logs, start, end, self.log_limits, self.where, **walk)

    def events(self, logs: Iterable[Any]) -> list[RecordEvent]:
        """The registry's ``RecordPublished`` events among raw logs (others are skipped)."""
        out = []
        for log in logs:
            event = decode_event(log, self.address_bytes, self.where)
            if event is not None:
                out.append(event)
        return out

    def events_for(self, present: dict[bytes, RecordState]) -> dict[bytes, RecordEvent]:
        """The events of these records, querying only the blocks their storage names."""
        by_block: dict[int, list[bytes]] = {}
        for rid, state in present.items():
            by_block.setdefault(state.block_number, []).append(rid)
        found: dict[bytes, RecordEvent] = {}
        blocks = sorted(by_block)
        i = 0
        while i < len(blocks):
            j = i
            while j + 1 < len(blocks) and blocks[j + 1] - blocks[i] < LOG_SPAN:
                j += 1
            ids = [rid for b in blocks[i : j + 1] for rid in by_block[b]]
            for start in range(0, len(ids), READ_CHUNK):
                part = ids[start : start + READ_CHUNK]
                for event in self.events(self.logs([RECORD_PUBLISHED_TOPIC, part], blocks[i], blocks[j])):
                    if event.record_id in present:
                        found[event.record_id] = event
            i = j + 1
        return found

    # -- records ------------------------------------------------------------------------------

    def records(self, ids: Sequence[bytes]) -> list[Record | None]:
        """Records by id: one view call (per 256) plus the log queries of their blocks; ``None``
        for an id that has no record."""
        states = self.states(ids)
        present = {rid: st for rid, st in zip(ids, states) if st.exists}
        events = self.events_for(present)
        return [self.record(rid, present[rid], events.get(rid)) if rid in present else None for rid in ids]

    def from_logs(self, logs: Iterable[Any]) -> list[Record]:
        """The records of raw ``RecordPublished`` logs (storage read in one call), in publication order."""
        events = sorted(self.events(logs), key=lambda e: (e.block_number, e.log_index))
        unique = list({e.record_id: e for e in events}.values())
        states = dict(zip([e.record_id for e in unique], self.states([e.record_id for e in unique]))) if unique else {}
        return [self.record(e.record_id, states[e.record_id], e) for e in unique]

    def record(self, rid: bytes, state: RecordState, event: RecordEvent | None) -> Record:
        """Join a storage word and its event (see :func:`make_record`)."""
        if event is None:
            raise ChainError(
                f"{self.where} returned no RecordPublished event for record {to_hex(rid)} in block "
                f"{state.block_number}; the node may have pruned its logs (use an archive RPC)"
            )
        if not state.exists:
            raise IntegrityError(f"{self.where} returned an event for record {to_hex(rid)} that the registry's storage does not hold")
        return make_record(rid, state, event, self.where)

    # -- batches ------------------------------------------------------------------------------

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any] | None:
        """Several JSON-RPC calls in one round trip: the answers (``{"result"|"error": …}``) in
        order, or ``None`` when the chain does not batch (the in-process one, a node without it)."""
        try:
            return self.chain.batch(calls)
        except ElementsError:
            raise
