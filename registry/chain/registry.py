"""Typed bindings of the ElementRegistry contract.

A :class:`Registry` is bound to one chain, one address and (for writes) one account::

    chain = connect("memory")
    reg = Registry.deploy(chain, chain.dev_accounts[0])          # or Registry.attach(chain)
    mit = reg.license_by_spdx("MIT")
    rid = reg.publish(RecordInput(content_id, "bafk...", mit.license_id, Kind.ELEMENT))
    [record] = reg.records([rid])                                # a Record, or None if unknown
    reg.claims(content_id)                                       # every claim of that content

What the contract stores per record is one packed word (publisher, licence, block, kind, codec,
parent count, yanked); the content id, the CID and the parents come from the record's
``RecordPublished`` event, which :meth:`Registry.records` reads from exactly the record's block and
checks against the record id (which commits to every field) before returning it.

What is sent (:class:`~registry.chain.inputs.RecordInput`, commitments, signed publishes and
their EIP-712 messages) is :mod:`registry.chain.inputs`; this module sends it and reads back.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal, Sequence, overload

from ..digest import ContentId, RecordId, parse_bytes32, parse_content_id, parse_record_id
from ..errors import IntegrityError
from .abi import checksum_address as to_checksum_address
from .abi import encode_call
from .deploy import Deployment, artifact, deploy_registry, find_registry
from .errors import AccountError, RecordNotFoundError, make_error
from .inputs import (
    Commitment,
    RecordInput,
    SignedCommit,
    SignedPublish,
    commit_typed_data,
    kept_commitment,
    publish_typed_data,
)
from .licenses import LicenseTerms, check_derivative
from .network import Chain
from .reader import (
    COMMITMENT_EXPIRY,
    READ_CHUNK,
    RECORD_PUBLISHED_TOPIC,
    RECORD_TYPE,
    RECORD_TYPEHASH,
    ChainReader,
    Kind,
    Record,
    RecordState,
    claim_order,
    encode_topics,
    kind_name,
    record_id_of,
)

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

# Registry, and the reader's values its callers have always found here.
__all__ = [
    "Kind",
    "kind_name",
    "Record",
    "Registry",
    "RECORD_TYPE",
    "RECORD_TYPEHASH",
    "COMMITMENT_EXPIRY",
    "RECORD_PUBLISHED_TOPIC",
    "record_id_of",
    "claim_order",
    "encode_topics",
]

_READ_CHUNK = READ_CHUNK
_BATCH_CHUNK = 200


class Registry:
    """The ElementRegistry on one chain, optionally bound to an account for writes.

    Attributes:
        chain: the :class:`Chain`.
        address: the contract address (checksummed).
        account: the account that signs and pays for writes (``None``: read-only).
        deploy_block: the block the registry was created in (where log queries start).
        last_receipt: the receipt of the last transaction this object sent.
    """

    def __init__(self, chain: Chain, address: str, account: LocalAccount | None = None, deploy_block: int = 0) -> None:
        self.chain = chain
        self.address = to_checksum_address(address)
        self.account = account
        self.deploy_block = deploy_block
        self.reader = ChainReader(chain, self.address, deploy_block)
        self._contract: Any = None
        self.last_receipt: dict[str, Any] | None = None
        self._licenses: dict[int, LicenseTerms] = {}
        self._max_parents: int | None = None

    @property
    def contract(self) -> Any:
        """The web3 contract object (built, and web3 imported, when first needed: decoding the event of
        a yank or a new licence; calls are encoded by :meth:`calldata` without it)."""
        if self._contract is None:
            self._contract = self.chain.w3.eth.contract(address=self.address, abi=artifact()["abi"])
        return self._contract

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def deploy(cls, chain: Chain, account: LocalAccount, home: Path | None = None) -> "Registry":
        """Deploy the registry (idempotent, CREATE2) and bind ``account`` to it.

        Records the deployment in ``home/deployments.json`` when ``home`` is given.
        """
        deployment = deploy_registry(chain, account, home)
        return cls(chain, deployment.address, account, deployment.block)

    @classmethod
    def attach(
        cls, chain: Chain, address: str | None = None, home: Path | None = None, account: LocalAccount | None = None
    ) -> "Registry":
        """Bind to an existing registry: ``address``, else the deployments file, else the CREATE2 address.

        Raises:
            NoRegistryError: no registry (of this version) there; run `elements deploy`.
        """
        deployment = find_registry(chain, address, home)
        return cls(chain, deployment.address, account, deployment.block)

    def with_account(self, account: LocalAccount | None) -> "Registry":
        """The same registry, bound to another account (caches are shared)."""
        other = Registry(self.chain, self.address, account, self.deploy_block)
        other._licenses = self._licenses
        other._max_parents = self._max_parents
        return other

    @property
    def deployment(self) -> Deployment:
        """Where this registry lives (chain id, address, creation block)."""
        return Deployment(self.chain.chain_id, self.address, self.deploy_block)

    # -- writing ------------------------------------------------------------------------------

    def _signer(self) -> LocalAccount:
        if self.account is None:
            raise AccountError(
                "no account to send from: set ELEMENTS_PRIVATE_KEY or --keystore/ELEMENTS_KEYSTORE "
                "(on `memory` and a devnet the funded dev accounts are used)"
            )
        return self.account

    def calldata(self, function: str, args: list[Any]) -> bytes:
        """The calldata of contract function ``function`` with ABI ``args``, encoded by
        :mod:`registry.chain.abi` from the artifact's ABI (no web3 on the way to a transaction)."""
        return encode_call(function, _input_types(function), args)

    def transact(self, function: str, args: list[Any], gas: int | None = None) -> dict[str, Any]:
        """Low level: send a call of contract function ``function`` with ABI ``args`` from the bound
        account, wait for the receipt and return it (reverts raise the decoded errors)."""
        data = self.calldata(function, args)
        receipt = self.chain.transact(self._signer(), {"to": self.address, "data": data}, gas=gas, namer=self.license_name)
        self.last_receipt = receipt
        return receipt

    def publish(self, record: RecordInput, *, gas: int | None = None) -> RecordId:
        """Publish one claim from the bound account; returns its record id.

        Publishing a claim that already exists sends a transaction that changes nothing and
        returns the same id (a retry is harmless).

        Raises:
            RegistryRevertError subclasses, e.g. UnknownParentError, LicenseViolationError subclasses.
        """
        account = self._signer()
        record_id = record.record_id(account.address)
        self.transact("publish", [record.as_abi()], gas)
        return record_id

    def publish_batch(self, records: Sequence[RecordInput], *, chunk: int = _BATCH_CHUNK) -> list[RecordId]:
        """Publish many claims in as few transactions as possible (``chunk`` records each), in order.

        A record may name an earlier record of the same call as a parent (its id is
        ``records[i].record_id(publisher)``).
        """
        account = self._signer()
        ids = [r.record_id(account.address) for r in records]
        for start in range(0, len(records), chunk):
            self.transact("publishBatch", [[r.as_abi() for r in records[start : start + chunk]]])
        return ids

    def sign_publish(
        self, record: RecordInput, account: LocalAccount | None = None, *, nonce: int | None = None, deadline: int | None = None
    ) -> SignedPublish:
        """Sign a publish as ``account`` (default: the bound one) for someone else to send.

        Args:
            nonce: the publisher's next nonce (read from the chain when omitted).
            deadline: the last valid block timestamp (default: one hour after the latest block).
        """
        signer = account or self._signer()
        if nonce is None:
            nonce = self.nonce(signer.address)
        if deadline is None:
            latest = self.chain.latest_block()
            deadline = int(latest["timestamp"]) + 3600
        message = self.typed_data(record, signer.address, nonce, deadline)
        from eth_account.messages import encode_typed_data

        signature = signer.sign_message(encode_typed_data(full_message=message)).signature
        return SignedPublish(record, to_checksum_address(signer.address), nonce, deadline, bytes(signature), record.record_id(signer.address))

    def typed_data(self, record: RecordInput, publisher: str, nonce: int, deadline: int) -> dict[str, Any]:
        """The EIP-712 message of a signed publish (what a wallet shows and signs)."""
        return publish_typed_data(record, publisher, nonce, deadline, self.chain.chain_id, self.address)

    def publish_signed(self, signed: SignedPublish, *, gas: int | None = None) -> RecordId:
        """Send a signed publish from the bound account (the relayer pays); returns the record id."""
        args = [signed.input.as_abi(), signed.publisher, signed.nonce, signed.deadline, signed.signature]
        self.transact("publishSigned", args, gas)
        return signed.record_id

    # -- commit-reveal ------------------------------------------------------------------------

    def commit(self, commitment: bytes, *, gas: int | None = None) -> int:
        """Record a commitment of the bound account (replacing its previous one); returns its block."""
        receipt = self.transact("commitRecordIds", [kept_commitment(commitment)], gas)
        return int(receipt["blockNumber"])

    def commitment(self, publisher: str) -> Commitment | None:
        """The publisher's current commitment, or None when it never committed."""
        digest, block, relayable = self.reader.view("commitments", ["address"], [to_checksum_address(publisher)],
                                                    ["bytes32", "uint40", "bool"])
        if int(block) == 0 and bytes(digest) == b"\0" * 32:
            return None
        return Commitment(bytes(digest), int(block), bool(relayable))

    def reveal(self, salt: bytes, records: Sequence[RecordInput], *, gas: int | None = None) -> list[RecordId]:
        """Publish the records the bound account committed to (same order); returns their ids.

        Raises:
            RegistryRevertError: UnknownCommitment, CommitmentTooRecent, CommitmentExpired, RecordExists,
                or what :meth:`publish` raises.
        """
        account = self._signer()
        if len(records) == 1:  # the single-record entry point: less calldata, no array
            self.transact("revealOne", [parse_bytes32(salt, "salt"), records[0].as_abi()], gas)
        else:
            self.transact("revealCommitment", [parse_bytes32(salt, "salt"), [r.as_abi() for r in records]], gas)
        return [r.record_id(account.address) for r in records]

    def reveal_for(self, publisher: str, salt: bytes, records: Sequence[RecordInput], *, gas: int | None = None) -> list[RecordId]:
        """Reveal a commitment ``publisher`` signed (:meth:`commit_signed`), from the bound account."""
        self.transact("revealCommitmentFor", [to_checksum_address(publisher), parse_bytes32(salt, "salt"), [r.as_abi() for r in records]], gas)
        return [r.record_id(publisher) for r in records]

    def sign_commit(self, commitment: bytes, account: LocalAccount | None = None, *, nonce: int | None = None,
                    deadline: int | None = None) -> SignedCommit:
        """Sign a commitment as ``account`` (default: the bound one) for someone else to send
        (nonce read from the chain when omitted; deadline one hour after the latest block by default)."""
        signer = account or self._signer()
        if nonce is None:
            nonce = self.nonce(signer.address)
        if deadline is None:
            deadline = int(self.chain.latest_block()["timestamp"]) + 3600
        message = self.commit_typed_data(kept_commitment(commitment), nonce, deadline)
        from eth_account.messages import encode_typed_data

        signature = signer.sign_message(encode_typed_data(full_message=message)).signature
        return SignedCommit(kept_commitment(commitment), to_checksum_address(signer.address), nonce, deadline, bytes(signature))

    def commit_typed_data(self, commitment: bytes, nonce: int, deadline: int) -> dict[str, Any]:
        """The EIP-712 message of a signed commitment."""
        return commit_typed_data(commitment, nonce, deadline, self.chain.chain_id, self.address)

    def commit_signed(self, signed: SignedCommit, *, gas: int | None = None) -> int:
        """Send a signed commitment from the bound account (the relayer pays); returns its block."""
        args = [signed.publisher, signed.commitment, signed.nonce, signed.deadline, signed.signature]
        receipt = self.transact("commitSigned", args, gas)
        return int(receipt["blockNumber"])

    def yank(self, record_id: Any, *, gas: int | None = None) -> bool:
        """Yank one of the bound account's records; returns False if it was already yanked."""
        rid = parse_record_id(record_id)
        receipt = self.transact("yank", [rid], gas)
        from web3.logs import DISCARD

        return bool(self.contract.events.RecordYanked().process_receipt(receipt, errors=DISCARD))

    def add_license(self, spdx_id: str, flags: int, *, gas: int | None = None) -> LicenseTerms:
        """Add a licence term set (or find the one with the same terms, sending nothing)."""
        existing = self.license_id_of(spdx_id, flags)
        if existing:
            return self.license(existing)
        receipt = self.transact("addLicense", [spdx_id, flags], gas)
        from web3.logs import DISCARD

        events = self.contract.events.LicenseAdded().process_receipt(receipt, errors=DISCARD)
        license_id = events[0]["args"]["licenseId"] if events else self.license_id_of(spdx_id, flags)
        return self.license(license_id)

    # -- reading: records ---------------------------------------------------------------------

    def record_id(self, record: RecordInput, publisher: str | None = None) -> RecordId:
        """The id ``record`` gets when published by ``publisher`` (default: the bound account)."""
        return record.record_id(publisher or self._signer().address)

    def records(self, record_ids: Iterable[Any]) -> list[Record | None]:
        """Read many records in one view call (per 256) plus the log queries of their blocks.

        Returns a list aligned with ``record_ids``: a :class:`Record`, or ``None`` for an id that
        has no record.

        Raises:
            IntegrityError: the node returned event data that does not hash to the record id.
        """
        return self.reader.records([parse_record_id(r) for r in record_ids])

    def record(self, record_id: Any) -> Record:
        """Read one record.

        Raises:
            RecordNotFoundError: no record has this id on this chain.
        """
        (record,) = self.records([record_id])
        if record is None:
            raise RecordNotFoundError(
                f"no record {parse_record_id(record_id, 'id')} on {self.chain.name} at {self.address}; check the id and the network"
            )
        return record

    def exists(self, record_ids: Iterable[Any]) -> list[bool]:
        """Whether each record exists (one view call, no logs)."""
        ids = [parse_record_id(r) for r in record_ids]
        return [st.exists for st in self.reader.states(ids)]

    def claims(self, content_id: Any) -> list[Record]:
        """Every claim of a content id, earliest first by priority block (:func:`claim_order`; for
        records published directly that is publication order), in one log query and one view call."""
        cid = parse_content_id(content_id)
        return self.claims_of([cid])[cid]

    def claims_of(self, content_ids: Iterable[Any]) -> dict[ContentId, list[Record]]:
        """Every claim of several content ids at once (one log query per 256 ids, one view call).

        Returns ``{content id: [Record, ...]}`` with every asked id as a key (an empty list when
        nothing claims it), each list earliest first (:func:`claim_order`).
        """
        ids = list(dict.fromkeys(parse_content_id(c) for c in content_ids))
        logs: list[Any] = []
        for start in range(0, len(ids), _READ_CHUNK):
            logs += self.reader.logs([RECORD_PUBLISHED_TOPIC, None, ids[start : start + _READ_CHUNK]])
        out: dict[ContentId, list[Record]] = {cid: [] for cid in ids}
        for record in sorted(self.reader.from_logs(logs), key=claim_order):
            if record.content_id not in out:
                raise IntegrityError(f"{self.chain.rpc_url} answered a claims query with a claim of another content id; check the node")
            out[record.content_id].append(record)
        return out

    def records_between(self, from_block: int, to_block: int | None = None) -> list[Record]:
        """Every record published in blocks ``from_block`` to ``to_block`` (inclusive; default the
        latest), in publication order (what an incremental index reads)."""
        start = max(int(from_block), self.deploy_block)
        end = self.chain.block_number() if to_block is None else int(to_block)
        return self.reader.from_logs(self.reader.logs([RECORD_PUBLISHED_TOPIC], start, end))

    def records_by(self, publisher: str) -> list[Record]:
        """Every record of a publisher, in publication order."""
        topic = b"\0" * 12 + bytes.fromhex(to_checksum_address(publisher)[2:])
        return self.reader.from_logs(self.reader.logs([RECORD_PUBLISHED_TOPIC, None, None, topic]))

    def all_records(self) -> list[Record]:
        """Every record of the registry, in publication order (for small registries and tests)."""
        return self.reader.from_logs(self.reader.logs([RECORD_PUBLISHED_TOPIC]))

    def nonce(self, publisher: str) -> int:
        """The next nonce of ``publisher`` for a signed publish."""
        return int(self.reader.view("nonces", ["address"], [to_checksum_address(publisher)], ["uint256"])[0])

    def check_publish(self, records: Sequence[RecordInput], publisher: str | None = None) -> None:
        """Check claims off-chain against the contract's rules before sending anything.

        Reads the parents and licences in batched calls; parents may be earlier records of
        ``records`` (as in a batch). Raises what the contract would raise.

        Raises:
            UnknownLicenseError, UnknownParentError, LicenseViolationError subclasses.
        """
        publisher = to_checksum_address(publisher or self._signer().address)
        pending: dict[RecordId, tuple[str, int, int]] = {}
        wanted = sorted({p for r in records for p in r.parents})
        states = dict(zip(wanted, self.reader.states(wanted))) if wanted else {}
        for record in records:
            child_license = self.license(record.license_id, missing_ok=True)
            if child_license is None:
                raise make_error("UnknownLicense", {"licenseId": record.license_id}, self.license_name)
            names = {i: t.spdx_id for i, t in self._licenses.items()}
            inherited = 0
            for parent in record.parents:  # the contract's order: existence, then the rules, per parent
                if parent in pending:
                    parent_publisher, parent_license, parent_inherited = pending[parent]
                else:
                    state = states.get(parent)
                    if state is None or not state.exists:
                        raise make_error("UnknownParent", {"parentId": str(parent)})
                    parent_publisher, parent_license, parent_inherited = to_checksum_address(state.publisher), state.license_id, state.inherited
                inherited |= check_derivative(
                    publisher, child_license, [(parent, parent_publisher, self.license(parent_license), parent_inherited)], names
                )
            pending[record.record_id(publisher)] = (publisher, record.license_id, inherited)

    def max_parents(self) -> int:
        """The contract's fan-in cap (its ``MAX_PARENTS``), read once."""
        if self._max_parents is None:
            self._max_parents = int(self.reader.view("MAX_PARENTS", [], [], ["uint256"])[0])
        return self._max_parents

    # -- reading: licences --------------------------------------------------------------------

    def license_count(self) -> int:
        """The number of licence term sets (their ids run from 1 to this number)."""
        return int(self.reader.view("licenseCount", [], [], ["uint32"])[0])

    def licenses(self) -> list[LicenseTerms]:
        """Every licence term set, by id."""
        count = self.license_count()
        self._load_licenses([i for i in range(1, count + 1) if i not in self._licenses])
        return [self._licenses[i] for i in range(1, count + 1)]

    @overload
    def license(self, license_id: int, missing_ok: Literal[False] = False) -> LicenseTerms: ...

    @overload
    def license(self, license_id: int, missing_ok: bool) -> LicenseTerms | None: ...

    def license(self, license_id: int, missing_ok: bool = False) -> LicenseTerms | None:
        """One licence term set by id.

        Raises:
            RecordNotFoundError: no such term set (unless ``missing_ok``, which returns None).
        """
        if license_id not in self._licenses:
            self._load_licenses([license_id])
        terms = self._licenses.get(license_id)
        if terms is None and not missing_ok:
            raise RecordNotFoundError(
                f"no licence term set {license_id} on {self.chain.name}; list them with Registry.licenses()"
            )
        return terms

    def license_by_spdx(self, spdx_id: str) -> LicenseTerms:
        """The term set for an SPDX id (case-insensitive); the lowest id wins (built-ins first).

        Raises:
            RecordNotFoundError: none has this identifier; add one with :meth:`add_license`.
        """
        wanted = spdx_id.strip().lower()
        for terms in self.licenses():
            if terms.spdx_id.lower() == wanted:
                return terms
        raise RecordNotFoundError(
            f"no licence term set for {spdx_id!r} on {self.chain.name}; use a built-in (e.g. MIT, Apache-2.0, "
            "CC-BY-4.0) or add one with Registry.add_license"
        )

    def license_id_of(self, spdx_id: str, flags: int) -> int:
        """The id of the term set with exactly these terms, or 0."""
        return int(self.reader.view("licenseIdOf", ["string", "uint8"], [spdx_id, flags], ["uint32"])[0])

    # -- internals ----------------------------------------------------------------------------

    def license_name(self, license_id: int) -> str | None:
        """The SPDX identifier of licence ``license_id`` (cached), or ``None`` when unknown or
        unreadable: how a decoded revert names a licence (``UnknownLicense(7)`` -> ``CC-BY-NC-4.0``)."""
        terms = self._licenses.get(license_id)
        if terms is None:
            try:
                terms = self.license(license_id, missing_ok=True)
            except Exception:
                return None
        return terms.spdx_id if terms else None

    def _load_licenses(self, ids: list[int]) -> None:
        self._licenses.update(self.reader.licenses(ids))

    def _states(self, ids: list[bytes]) -> list[RecordState]:
        return self.reader.states(ids)


def _canonical_type(param: dict[str, Any]) -> str:
    """An ABI parameter's canonical type (a struct as ``(t1,t2,...)`` with its array suffix)."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(_canonical_type(c) for c in param["components"]) + ")" + kind[len("tuple"):]
    return kind


_INPUT_TYPES: dict[str, list[str]] = {}


def _input_types(function: str) -> list[str]:
    """The input types of the registry's function ``function`` (its names are not overloaded)."""
    types = _INPUT_TYPES.get(function)
    if types is None:
        entries = [e for e in artifact()["abi"] if e.get("type") == "function" and e.get("name") == function]
        if len(entries) != 1:
            raise ValueError(f"the registry's ABI has {len(entries)} functions named {function!r}")
        types = _INPUT_TYPES[function] = [_canonical_type(p) for p in entries[0]["inputs"]]
    return types
