"""Publishing elements: content id, manifest, blocks, and claims on chain — idempotent and resumable.

What publishing an element file does, in order::

    prepare     content id (tensors: the tensor table; files: the bytes) and the element manifest
                (elements.manifest/v1, canonical JSON) naming the data file's CID; data and
                manifest go into the local block store. The record's CID is the manifest's CID.
    plan        record ids computed client-side (record_id_of), ONE view call says which exist;
                the missing ones are checked off-chain against the contract's rules (licence,
                every parent's terms, parents exist) and their gas is estimated: nothing is
                sent when anything is wrong, and the message names the parent and the rule.
    pin         data + manifest into the Kubo node (pinned) when one is configured.
    send        the missing claims in publishBatch transactions (in order, so a record may name
                an earlier one as a parent); the receipt's events say which records each created.

Because a record id is a hash of the whole claim, running the same publish again computes the
same ids: what exists is reported as already there, only what is missing is sent, so a re-run
after a crash, a dropped connection or a failed transaction completes the work and never makes
a duplicate claim (the contract also ignores a claim that exists).

Signed publishing: :func:`sign_claims` writes EIP-712 signatures that another account relays
with :func:`relay_signed` (the signer is the publisher).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import to_checksum_address

from ..files import atomic_write
from ..chain.errors import InsufficientFundsError, RecordNotFoundError, TransactionFailed, make_error
from ..chain.licenses import LicenseTerms
from ..chain.registry import (
    RECORD_PUBLISHED_TOPIC,
    Commitment,
    Kind,
    RecordInput,
    Registry,
    SignedCommit,
    SignedPublish,
    commitment_of,
    record_id_of,
    to_bytes32,
)
from ..digest import to_hex
from ..errors import ElementsError, InputError, UnsafeFileError
from ..limits import DOCUMENT_BYTES, NotJSON, load_json_file
from ..storage.blockstore import BlockStore
from ..storage.cid import CID
from ..storage.unixfs import add_file
from .commit_reveal import SALT_BYTES, CommitReveal, clear_stale, publish_committed, wait_for_block
from ..formats.content_id import Manifest, manifest_of
from ..formats.safetensors import INDEX_SUFFIX

__all__ = [
    "KINDS",
    "DEFAULT_BATCH_SIZE",
    "CommitReveal",
    "SIGNED_FORMAT",
    "PreparedElement",
    "Claim",
    "ClaimResult",
    "TransactionInfo",
    "Estimate",
    "PublishReport",
    "UnknownLicenseName",
    "TooManyParentsError",
    "kind_of",
    "prepare_element",
    "prepare_elements",
    "store_document",
    "element_claim",
    "resolve_license",
    "plan_claims",
    "publish_claims",
    "element_claims",
    "publish_elements",
    "sign_elements",
    "sign_claims",
    "sign_committed",
    "SignedCommitment",
    "write_signed",
    "load_signed",
    "relay_signed",
]

#: ``--kind`` names and the registry kinds they stand for.
KINDS = {"element": Kind.ELEMENT, "adapter": Kind.ADAPTER, "file": Kind.FILE, "composition": Kind.COMPOSITION}
#: Claims per publishBatch transaction (an element record costs ~70k gas: 50 fit any block).
DEFAULT_BATCH_SIZE = 50
SIGNED_FORMAT = "elements.signed-publish/v1"
#: Weight formats that are pickles or other code-carrying formats: never read, never published.
_REFUSED_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".h5", ".msgpack", ".onnx", ".gguf", ".ot")
#: ``progress(bytes_done, bytes_total)``: hashing and uploading report through it (progress bars).
Progress = Callable[[int, int], None]


class UnknownLicenseName(InputError):
    """The chain has no licence term set with this SPDX identifier."""


class TooManyParentsError(InputError):
    """A claim names more parents than the registry's MAX_PARENTS."""


# --------------------------------------------------------------------------------------------
# preparing: content id, manifest, blocks


@dataclass(frozen=True)
class PreparedElement:
    """An element file ready to claim: its manifest (with the data CID) and the manifest's CID.

    Attributes:
        name: the element's name (the file name unless given).
        path: the file.
        kind: the registry kind (ELEMENT, ADAPTER or FILE).
        manifest: the manifest, ``data`` filled in (the data file's CID, size and name).
        cid: the CID of the manifest's canonical JSON: the record's CID.
    """

    name: str
    path: Path
    kind: int
    manifest: Manifest
    cid: CID

    @property
    def content_id(self) -> bytes:
        return bytes(self.manifest.content_id)

    @property
    def data_cid(self) -> CID:
        """The data file's CID."""
        return CID.parse(self.manifest.data["cid"])

    @property
    def size(self) -> int:
        """The data file's size in bytes."""
        return int(self.manifest.data["size"])


def kind_of(name: str | int | None) -> int | None:
    """A ``--kind`` name (or registry kind number) as a registry kind; ``None`` stays ``None``.

    Raises:
        InputError: an unknown name.
    """
    if name is None or isinstance(name, int):
        return name
    key = str(name).strip().lower()
    if key not in KINDS:
        raise InputError(f"--kind {name!r} is not known; use one of {', '.join(KINDS)}")
    return KINDS[key]


def _check_publishable_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise InputError(f"{path} is a directory; publish its files, or a whole model with `elements publish-model {path}`")
    if path.name.endswith(INDEX_SUFFIX):
        raise InputError(f"{path} is a sharded checkpoint index; publish the model with `elements publish-model {path.parent}`")
    if path.suffix.lower() in _REFUSED_SUFFIXES:
        raise UnsafeFileError(
            f"{path} is a {path.suffix} weights file (pickle-based or not safetensors); Elements never reads those: "
            "convert it to .safetensors first"
        )


def prepare_element(
    path: str | os.PathLike,
    store: BlockStore | None,
    *,
    kind: int | str | None = None,
    name: str | None = None,
    progress: Progress | None = None,
    manifest: Manifest | None = None,
) -> PreparedElement:
    """Compute an element's content id and manifest, and put its data and manifest in ``store``.

    Args:
        path: a ``.safetensors`` file (a tensors element) or any other file (a file element).
        store: the local block store; ``None`` only computes CIDs (a dry run).
        kind: ``element``/``adapter`` (tensors) or ``file``; default from the file.
        name: the element's name (recorded in the manifest's metadata; default: the file name).
        progress: ``progress(bytes_done, bytes_total)`` over both passes (content id, then CID):
            the total is twice the file's size.
        manifest: the file's manifest when the caller has just derived it from this very file
            (as ``split_model`` does for each element it writes): the file is not hashed again.

    Raises:
        SafetensorsError: a ``.safetensors`` file the strict parser refuses.
        UnsafeFileError: a pickle-based weights file.
        InputError: a missing file, a directory, a kind that does not fit the file.
    """
    path = Path(path)
    _check_publishable_file(path)
    kind = kind_of(kind)
    is_tensors = path.name.endswith(".safetensors")
    if kind is None:
        kind = Kind.ELEMENT if is_tensors else Kind.FILE
    if kind in (Kind.ELEMENT, Kind.ADAPTER) and not is_tensors:
        raise InputError(f"{path} is not a .safetensors file, so it cannot be a tensors {Kind(kind).name.lower()}; use --kind file")
    if kind == Kind.FILE and is_tensors:
        raise InputError(f"{path} is a .safetensors file; publish it as an element or an adapter, not as a file")
    if kind == Kind.COMPOSITION:
        raise InputError("a composition is published from its recipe: `elements compose RECIPE --license SPDX`")
    name = name or path.name
    size = path.stat().st_size
    hashed = [0]

    def content_progress(done: int, _total: int) -> None:
        progress(done, 2 * size)

    def cid_progress(n: int) -> None:
        hashed[0] += n
        progress(size + hashed[0], 2 * size)

    if manifest is None:
        manifest = manifest_of(path, metadata={"name": name}, progress=content_progress if progress else None)
    elif manifest.kind != ("tensors" if is_tensors else "file"):
        raise InputError(f"{path} is a {'tensors' if is_tensors else 'file'} element but the manifest given is of kind {manifest.kind}")
    else:
        manifest = manifest.with_metadata({"name": name})
        if progress:
            progress(size, 2 * size)
    manifest = manifest.with_data(add_file(path, store, progress=cid_progress if progress else None), size, path.name)
    return PreparedElement(name, path, int(kind), manifest, store_document(manifest.to_json_bytes(), store))


def prepare_elements(
    paths: Sequence[str | os.PathLike],
    store: BlockStore | None,
    *,
    kind: int | str | None = None,
    name: str | None = None,
    names: Sequence[str] | None = None,
    kinds: Sequence[int | str | None] | None = None,
    manifests: Sequence[Manifest | None] | None = None,
    progress: Progress | None = None,
) -> list[PreparedElement]:
    """:func:`prepare_element` for several files (``names`` and ``kinds``: one per path, else
    ``name`` and ``kind`` for all), with one ``progress(bytes_done, bytes_total)`` over all of
    them (twice their bytes); ``manifests``: one per path (or ``None``), as for ``manifest``."""
    sizes = [Path(p).stat().st_size if Path(p).is_file() else 0 for p in paths]
    total, base = 2 * sum(sizes), 0
    prepared = []
    for i, (path, size) in enumerate(zip(paths, sizes)):
        def step(done: int, _total: int, base: int = base) -> None:
            progress(base + done, total)

        element_name = names[i] if names is not None else name
        element_kind = kinds[i] if kinds is not None else kind
        element_manifest = manifests[i] if manifests is not None else None
        prepared.append(prepare_element(path, store, kind=element_kind, name=element_name, manifest=element_manifest,
                                        progress=step if progress else None))
        base += 2 * size
    return prepared


def store_document(document: bytes, store: BlockStore | None) -> CID:
    """Put a small document (a manifest, a canonical recipe) in the store as a UnixFS file."""
    return add_file(document, store)


# --------------------------------------------------------------------------------------------
# claims


@dataclass(frozen=True)
class Claim:
    """One record to publish and what it describes.

    Attributes:
        label: how to show it (an element or composition name).
        record: the :class:`RecordInput`.
        record_id: its id for the publisher it was made for.
        publisher: that publisher.
        data_cid: the data file's CID (``None`` for a composition).
        size: the data size in bytes (0 for a composition).
        path: the local file it came from, if any.
        pins: every CID to pin in Kubo for this record (document and data).
    """

    label: str
    record: RecordInput
    record_id: bytes
    publisher: str
    data_cid: str | None = None
    size: int = 0
    path: str | None = None
    pins: tuple[str, ...] = ()

    @property
    def kind_name(self) -> str:
        kind = self.record.kind
        return kind.name.lower() if isinstance(kind, Kind) else str(kind)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.label,
            "record_id": to_hex(self.record_id),
            "content_id": to_hex(self.record.content_id),
            "cid": self.record.cid,
            "data_cid": self.data_cid,
            "kind": self.kind_name,
            "license_id": self.record.license_id,
            "parents": [to_hex(p) for p in self.record.parents],
            "size": self.size,
            "path": self.path,
        }


def element_claim(prepared: PreparedElement, publisher: str, license_id: int, parents: Iterable[Any] = ()) -> Claim:
    """The claim of a prepared element by ``publisher`` under ``license_id`` with ``parents``."""
    record = RecordInput(prepared.content_id, str(prepared.cid), license_id, prepared.kind, tuple(parents))
    return Claim(
        label=prepared.name,
        record=record,
        record_id=record_id_of(publisher, record),
        publisher=to_checksum_address(publisher),
        data_cid=str(prepared.data_cid),
        size=prepared.size,
        path=str(prepared.path),
        pins=(str(prepared.data_cid), str(prepared.cid)),
    )


def resolve_license(registry: Registry, license: str | int) -> LicenseTerms:
    """The term set for an SPDX identifier (case-insensitive) or a numeric licence id.

    Raises:
        UnknownLicenseName: none on this chain; the message lists the known ones and how to add one.
    """
    text = str(license).strip()
    if text.isdigit():
        terms = registry.license(int(text), missing_ok=True)
        if terms is not None:
            return terms
    else:
        try:
            return registry.license_by_spdx(text)
        except RecordNotFoundError:
            pass
    known = ", ".join(t.spdx_id for t in registry.licenses())
    raise UnknownLicenseName(
        f"licence {text!r} is not registered on {registry.chain.name}; known (`elements licenses`): {known}. Add it with "
        f"`elements add-license {text if not text.isdigit() else 'SPDX-ID'} --commercial --derivatives [--share-alike] [--attribution]`"
    )


def check_parent_count(registry: Registry, count: int, what: str) -> None:
    """Raise :class:`TooManyParentsError` when ``count`` parents exceed the registry's cap."""
    cap = registry.max_parents()
    if count > cap:
        raise TooManyParentsError(
            f"{what} needs {count} parents but the registry at {registry.address} allows at most {cap} (MAX_PARENTS); "
            "group some inputs into an intermediate composition, or split the model coarser (--by module)"
        )


# --------------------------------------------------------------------------------------------
# planning


@dataclass
class Estimate:
    """What sending the missing claims would cost (from ``eth_estimateGas`` and the latest block)."""

    gas: int
    transactions: int
    base_fee: int
    priority_fee: int
    balance: int

    @property
    def max_fee_per_gas(self) -> int:
        return 2 * self.base_fee + self.priority_fee

    @property
    def gas_limit(self) -> int:
        # What Chain.transact asks for: the estimate plus its margin, per transaction.
        return int(self.gas * 1.2) + 10_000 * self.transactions

    @property
    def cost(self) -> int:
        """Expected cost in wei (gas x (base fee + tip))."""
        return self.gas * (self.base_fee + self.priority_fee)

    @property
    def max_cost(self) -> int:
        """The most the transactions may cost (gas limit x max fee): what the balance must cover."""
        return self.gas_limit * self.max_fee_per_gas

    def to_json(self) -> dict[str, Any]:
        return {
            "gas": self.gas,
            "transactions": self.transactions,
            "base_fee_per_gas": self.base_fee,
            "max_priority_fee_per_gas": self.priority_fee,
            "max_fee_per_gas": self.max_fee_per_gas,
            "cost_wei": self.cost,
            "cost_eth": self.cost / 10**18,
            "max_cost_wei": self.max_cost,
            "balance_wei": self.balance,
        }


@dataclass
class Plan:
    """Which claims exist already and which would be sent, in how many transactions."""

    claims: list[Claim]
    present: list[Claim]
    missing: list[Claim]
    batches: list[list[Claim]]
    estimate: Estimate | None = None


def _batches(claims: Sequence[Claim], batch_size: int) -> list[list[Claim]]:
    if batch_size < 1:
        raise InputError(f"batch size {batch_size} must be at least 1")
    return [list(claims[i : i + batch_size]) for i in range(0, len(claims), batch_size)]


def _fee_parts(registry: Registry) -> tuple[int, int]:
    """(base fee, tip) as Chain.transact will pay them; a pre-London chain's gas price as its base fee."""
    base_fee, tip = registry.chain.fee_parts()
    return (registry.chain.gas_price(), 0) if base_fee is None else (base_fee, tip)


def _estimate_batch(registry: Registry, publisher: str, batch: Sequence[Claim]) -> int:
    data = registry.contract.encode_abi("publishBatch", args=[[c.record.as_abi() for c in batch]])
    # Gas price 0: the estimate must not depend on the balance (a dry run from an unfunded key).
    tx = {"from": publisher, "to": registry.address, "data": data, "value": 0, "gasPrice": 0}
    try:
        return int(registry.chain.rpc("estimating gas", lambda: registry.chain.w3.eth.estimate_gas(tx)))
    except ElementsError:
        raise
    except Exception as exc:
        # Replaying the call decodes a revert into the registry's own error (UnknownParent, ...).
        registry.chain.call({k: v for k, v in tx.items() if k != "gasPrice"}, registry._license_name)
        raise TransactionFailed(f"the node could not estimate the gas of publishBatch: {exc}") from None


def plan_claims(registry: Registry, claims: Sequence[Claim], *, batch_size: int = DEFAULT_BATCH_SIZE, estimate: bool = True,
                commit_reveal: bool = False) -> Plan:
    """Find which claims exist (one view call), check the rest off-chain, estimate their gas.

    Raises:
        InputError: claims made for another publisher than the registry's account.
        UnknownLicenseError, UnknownParentError, LicenseViolation subclasses: what the contract
            would refuse, before anything is sent.
        InsufficientFundsError: the account cannot pay for the missing claims.
    """
    from ..chain.session import require_account

    require_account(registry)
    publisher = registry.account.address
    for claim in claims:
        if claim.publisher.lower() != publisher.lower():
            raise InputError(f"claim {claim.label} was made for {claim.publisher}, but the key in use is {publisher}")
    # Duplicates in the input (the same file twice) are one claim.
    unique: dict[bytes, Claim] = {}
    for claim in claims:
        unique.setdefault(claim.record_id, claim)
    ordered = list(unique.values())
    exists = registry.exists([c.record_id for c in ordered]) if ordered else []
    present = [c for c, e in zip(ordered, exists) if e]
    missing = [c for c, e in zip(ordered, exists) if not e]
    for claim in missing:
        check_parent_count(registry, len(claim.record.parents), f"record {claim.label}")
    if missing:
        registry.check_publish([c.record for c in missing], publisher)
    batches = _batches(missing, batch_size)
    plan = Plan(ordered, present, missing, batches)
    if estimate and missing:
        plan.estimate = _estimate(registry, publisher, batches, commit_reveal)
    return plan


def _estimate_commit(registry: Registry, publisher: str) -> int:
    """The gas of a commitment (a new one if the publisher never committed, else a rewrite)."""
    data = registry.contract.encode_abi("commitRecordIds", args=[b"\xee" * 20 + bytes(12)])
    tx = {"from": publisher, "to": registry.address, "data": data, "value": 0, "gasPrice": 0}
    return int(registry.chain.rpc("estimating gas", lambda: registry.chain.w3.eth.estimate_gas(tx)))


def _estimate(registry: Registry, publisher: str, batches: list[list[Claim]], commit_reveal: bool = False) -> Estimate:
    batch_of = {c.record_id: i for i, batch in enumerate(batches) for c in batch}
    crossing = any(batch_of.get(p, i) != i for i, batch in enumerate(batches) for c in batch for p in c.record.parents)
    if crossing:
        # A batch whose parents come in an earlier batch cannot be estimated before that one is
        # mined: estimate everything as one call, plus the base cost of the extra transactions.
        gas = _estimate_batch(registry, publisher, [c for batch in batches for c in batch]) + 21_000 * (len(batches) - 1)
    else:
        gas = sum(_estimate_batch(registry, publisher, batch) for batch in batches)
    transactions = len(batches)
    if commit_reveal:
        # Each batch adds its commitment, and its reveal carries the salt and the commitment check
        # (measured: about 1,300 gas over publishBatch, 2,500 over publish for one record).
        gas += len(batches) * (_estimate_commit(registry, publisher) + _REVEAL_OVERHEAD)
        transactions *= 2
    base_fee, tip = _fee_parts(registry)
    return Estimate(gas, transactions, base_fee, tip, registry.chain.balance(publisher))


_REVEAL_OVERHEAD = 2_500


def require_funds(registry: Registry, plan: Plan) -> None:
    """Raise :class:`InsufficientFundsError` when the account cannot cover the plan's worst-case cost."""
    estimate = plan.estimate
    if estimate is None or not plan.missing:
        return
    if estimate.balance < estimate.max_cost:
        publisher = registry.account.address
        raise InsufficientFundsError(
            f"account {publisher} holds {estimate.balance / 10**18:.6g} ETH on {registry.chain.name} but publishing "
            f"{len(plan.missing)} record(s) may cost up to {estimate.max_cost / 10**18:.6g} ETH "
            f"({estimate.gas:,} gas at up to {estimate.max_fee_per_gas / 10**9:.3g} gwei); fund it and run the same command again"
        )


# --------------------------------------------------------------------------------------------
# sending


@dataclass
class TransactionInfo:
    """One transaction of a publish: ``publish`` (publishBatch or publishSigned), or with
    commit-reveal ``commit`` (no records; its block is the priority block of the ``reveal`` after
    it, named in ``priority_block``)."""

    hash: str
    block: int
    gas_used: int
    records: int
    created: int
    kind: str = "publish"
    priority_block: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"hash": self.hash, "block": self.block, "gas_used": self.gas_used, "records": self.records, "created": self.created,
                "kind": self.kind, "priority_block": self.block if self.priority_block is None else self.priority_block}


@dataclass
class ClaimResult:
    """What happened to one claim.

    ``status`` is ``published`` (this run created it), ``present`` (it existed already: an
    earlier run, or the same claim sent by someone else), or ``planned`` (a dry run).
    """

    claim: Claim
    status: str
    transaction: TransactionInfo | None = None

    @property
    def gas_share(self) -> int | None:
        """The transaction's gas divided by the records it carried (an even share)."""
        if self.transaction is None or not self.transaction.records:
            return None
        return self.transaction.gas_used // self.transaction.records

    def to_json(self) -> dict[str, Any]:
        out = self.claim.to_json()
        out["status"] = self.status
        out["transaction"] = self.transaction.hash if self.transaction else None
        out["block"] = self.transaction.block if self.transaction else None
        out["gas"] = self.gas_share
        return out


@dataclass
class PublishReport:
    """The outcome of a publish: every claim's status, the transactions, and (dry run) the estimate."""

    chain_id: int
    registry: str
    publisher: str
    dry_run: bool
    results: list[ClaimResult]
    transactions: list[TransactionInfo] = field(default_factory=list)
    estimate: Estimate | None = None
    pinned: list[str] = field(default_factory=list)
    license: LicenseTerms | None = None

    @property
    def published(self) -> list[ClaimResult]:
        return [r for r in self.results if r.status == "published"]

    @property
    def present(self) -> list[ClaimResult]:
        return [r for r in self.results if r.status == "present"]

    def result_for(self, record_id: bytes) -> ClaimResult:
        for result in self.results:
            if result.claim.record_id == record_id:
                return result
        raise KeyError(to_hex(record_id))

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "registry": self.registry,
            "publisher": self.publisher,
            "dry_run": self.dry_run,
            "license": self.license.to_json() if self.license else None,
            "records": [r.to_json() for r in self.results],
            "published": len(self.published),
            "already_present": len(self.present),
            "transactions": [t.to_json() for t in self.transactions],
            "gas_used": sum(t.gas_used for t in self.transactions),
            "estimate": self.estimate.to_json() if self.estimate else None,
            "pinned": self.pinned,
        }


def _created_ids(registry: Registry, receipt: dict) -> set[bytes]:
    created = set()
    for log in receipt.get("logs", []):
        topics = [bytes(t) for t in log.get("topics", [])]
        if topics and topics[0] == RECORD_PUBLISHED_TOPIC and to_checksum_address(log["address"]) == registry.address:
            created.add(topics[1])
    return created


def _pin(sources, claims: Sequence[Claim], progress: Progress | None = None) -> list[str]:
    """Put every claim's DAGs into Kubo (pinned), skipping what the node has pinned already.

    ``progress(bytes_done, bytes_total)`` follows the blocks uploaded (the total counts the data
    files; documents are small and make it end a little above).
    """
    if sources is None or getattr(sources, "kubo", None) is None:
        return []
    pinned, uploads = [], []
    for claim in claims:
        for cid in claim.pins:
            if not sources.kubo.is_pinned(cid):
                uploads.append((cid, claim.size if cid == claim.data_cid else 0))
            pinned.append(cid)
    total = sum(size for _, size in uploads)
    sent = [0]

    def uploaded(n: int) -> None:
        sent[0] += n
        progress(sent[0], max(total, sent[0]))

    for cid, _ in uploads:
        sources.publish(cid, progress=uploaded if progress else None)
    return pinned


def publish_claims(
    registry: Registry,
    claims: Sequence[Claim],
    *,
    sources=None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_transaction: Callable[[TransactionInfo], None] | None = None,
    license: LicenseTerms | None = None,
    upload_progress: Progress | None = None,
    commit_reveal: CommitReveal | None = None,
) -> PublishReport:
    """Publish claims: send only those not on chain yet, in batches, after checking them all.

    Args:
        sources: a :class:`registry.storage.fetch.Sources`; with a Kubo node, every claim's DAGs
            are put there and pinned before the transactions are sent.
        dry_run: plan and estimate only; nothing is pinned or sent.
        batch_size: claims per publishBatch transaction.
        on_transaction: called after each mined transaction (progress).
        upload_progress: ``progress(bytes_done, bytes_total)`` of the upload into Kubo.
        commit_reveal: publish each batch through a commitment (:mod:`registry.publish.commit_reveal`):
            commit, wait for a later block, reveal; the records' priority block is the commitment's.
            An interrupted run resumes from the commitment it left.

    Raises:
        What :func:`plan_claims` raises (nothing sent), InsufficientFundsError (nothing sent),
        KuboError (nothing sent), and for a failure mid-way RpcUnavailableError /
        TransactionFailed: the transactions mined so far stand, and running the same publish
        again sends only the rest.
    """
    plan = plan_claims(registry, claims, batch_size=batch_size, commit_reveal=commit_reveal is not None)
    publisher = registry.account.address
    report = PublishReport(registry.chain.chain_id, registry.address, publisher, dry_run, [], estimate=plan.estimate, license=license)
    if dry_run:
        report.results = [ClaimResult(c, "present") for c in plan.present] + [ClaimResult(c, "planned") for c in plan.missing]
        report.results.sort(key=lambda r: plan.claims.index(r.claim))
        return report
    require_funds(registry, plan)
    report.pinned = _pin(sources, plan.claims, upload_progress)
    status: dict[bytes, ClaimResult] = {c.record_id: ClaimResult(c, "present") for c in plan.present}
    if commit_reveal is not None:
        clear_stale(registry, commit_reveal)
    for batch in plan.batches:
        priority = None
        if commit_reveal is None:
            receipt = registry.transact("publishBatch", [[c.record.as_abi() for c in batch]])
        else:
            committed = publish_committed(registry, [c.record for c in batch], commit_reveal)
            if committed.commit_receipt is not None:
                commit = committed.commit_receipt
                report.transactions.append(TransactionInfo(to_hex(commit["transactionHash"]), int(commit["blockNumber"]),
                                                           int(commit["gasUsed"]), 0, 0, "commit"))
            receipt, priority = committed.reveal_receipt, committed.commit_block
        created = _created_ids(registry, receipt)
        info = TransactionInfo(
            to_hex(receipt["transactionHash"]), int(receipt["blockNumber"]), int(receipt["gasUsed"]), len(batch), len(created),
            "publish" if priority is None else "reveal", priority,
        )
        report.transactions.append(info)
        for claim in batch:
            # A claim someone else sent meanwhile is ignored by the contract: no event, "present".
            status[claim.record_id] = ClaimResult(claim, "published" if claim.record_id in created else "present", info)
        if on_transaction:
            on_transaction(info)
    report.results = [status[c.record_id] for c in plan.claims]
    return report


def element_claims(
    registry: Registry,
    paths: Sequence[str | os.PathLike],
    store: BlockStore | None,
    *,
    license: str | int,
    parents: Sequence[Any] = (),
    kind: str | int | None = None,
    name: str | None = None,
    resolver=None,
    progress: Progress | None = None,
) -> tuple[LicenseTerms, list[Claim]]:
    """Check the licence and parents, prepare the files (into ``store``) and make their claims.

    The licence is checked against every ancestor of the parents (with ``resolver``, a
    :class:`registry.records.resolve.Resolver`; else against the parents, as the contract does,
    when the claims are planned) before anything is stored. ``progress(bytes_done, bytes_total)``
    follows the hashing of every file (content id and CID: twice the files' bytes).

    Raises:
        InputError: no paths, ``name`` with several paths, a bad kind; UnknownLicenseName;
        UnknownParentError; TooManyParentsError; LicenseViolation subclasses; what
        :func:`prepare_element` raises.
    """
    if not paths:
        raise InputError("nothing to publish: give one or more element files")
    if name and len(paths) > 1:
        raise InputError("--name names one element; publish several files without it (each is named by its file name)")
    from ..chain.session import require_account

    require_account(registry)
    terms = resolve_license(registry, license)
    parent_ids = sorted({to_bytes32(p, "parent record id") for p in parents})
    check_parent_count(registry, len(parent_ids), "each element")
    for parent, exists in zip(parent_ids, registry.exists(parent_ids) if parent_ids else []):
        if not exists:
            raise make_error("UnknownParent", {"parentId": to_hex(parent)})
    if parent_ids and resolver is not None:
        from ..records.resolve import check_license_against_ancestors

        graph = resolver.graph(parent_ids, documents=False)
        check_license_against_ancestors(registry.account.address, terms, graph, parent_ids)
    prepared = prepare_elements(paths, store, kind=kind, name=name, progress=progress)
    return terms, [element_claim(p, registry.account.address, terms.license_id, parent_ids) for p in prepared]


def publish_elements(
    registry: Registry,
    paths: Sequence[str | os.PathLike],
    store: BlockStore | None,
    *,
    license: str | int,
    parents: Sequence[Any] = (),
    kind: str | int | None = None,
    name: str | None = None,
    sources=None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    resolver=None,
    on_transaction: Callable[[TransactionInfo], None] | None = None,
    hash_progress: Progress | None = None,
    upload_progress: Progress | None = None,
    commit_reveal: CommitReveal | None = None,
) -> PublishReport:
    """Publish element files under one licence, each with the same parents (see
    :func:`element_claims` for the checks and :func:`publish_claims` for the sending, and
    ``commit_reveal``).
    ``hash_progress`` and ``upload_progress`` take ``(bytes_done, bytes_total)`` reports.

    Raises:
        What :func:`element_claims` and :func:`publish_claims` raise.
    """
    terms, claims = element_claims(
        registry, paths, None if dry_run else store, license=license, parents=parents, kind=kind, name=name, resolver=resolver,
        progress=hash_progress,
    )
    return publish_claims(
        registry, claims, sources=sources, dry_run=dry_run, batch_size=batch_size, on_transaction=on_transaction, license=terms,
        upload_progress=upload_progress, commit_reveal=commit_reveal,
    )


def sign_elements(
    registry: Registry,
    paths: Sequence[str | os.PathLike],
    store: BlockStore | None,
    *,
    license: str | int,
    parents: Sequence[Any] = (),
    kind: str | int | None = None,
    name: str | None = None,
    sources=None,
    resolver=None,
    valid_for: int = 24 * 3600,
    hash_progress: Progress | None = None,
    upload_progress: Progress | None = None,
    commit_reveal: bool = False,
) -> tuple[list[Claim], "list[tuple[Claim, SignedPublish]] | SignedCommitment | None"]:
    """Prepare element files and sign the claims not on chain yet, for a relayer.

    The data and manifests go into ``store`` and, with ``sources`` holding a Kubo node, into Kubo
    (pinned): the relayer sends only the claims, the bytes must be reachable already.

    Returns:
        every claim, and the signed ones (those not on chain yet): one signed publish each, or with
        ``commit_reveal`` one signed commitment to all of them (None when nothing is missing).
    """
    _, claims = element_claims(registry, paths, store, license=license, parents=parents, kind=kind, name=name, resolver=resolver,
                               progress=hash_progress)
    if commit_reveal:
        committed = sign_committed(registry, claims, valid_for=valid_for)
        _pin(sources, committed.claims if committed else [], upload_progress)
        return claims, committed
    signed = sign_claims(registry, claims, valid_for=valid_for)
    _pin(sources, [c for c, _ in signed], upload_progress)
    return claims, signed


# --------------------------------------------------------------------------------------------
# signed publishing (a relayer pays, the signer is the publisher)


def sign_claims(registry: Registry, claims: Sequence[Claim], *, valid_for: int = 24 * 3600) -> list[tuple[Claim, SignedPublish]]:
    """Sign the claims that are not on chain yet with the registry's account (consecutive nonces).

    Args:
        valid_for: seconds after the latest block's timestamp until the signatures expire.

    Raises:
        What :func:`plan_claims` raises (checked as if the signer sent them).
    """
    plan = plan_claims(registry, claims, estimate=False)
    nonce = registry.nonce(registry.account.address)
    latest = registry.chain.latest_block()
    deadline = int(latest["timestamp"]) + int(valid_for)
    return [(c, registry.sign_publish(c.record, nonce=nonce + i, deadline=deadline)) for i, c in enumerate(plan.missing)]


@dataclass(frozen=True)
class SignedCommitment:
    """Claims signed for a relayer as one commitment (commit-reveal): the relayer sends the signed
    commitment, waits for a later block and reveals the claims with the salt; the claims' priority
    block is the commitment's. The salt travels in the file: give it only to the relayer."""

    claims: list[Claim]
    salt: bytes
    signed: SignedCommit


def sign_committed(registry: Registry, claims: Sequence[Claim], *, valid_for: int = 24 * 3600) -> SignedCommitment | None:
    """Sign one commitment to the claims not on chain yet (None when every claim exists).

    Raises:
        What :func:`plan_claims` raises (checked as if the signer sent them).
    """
    plan = plan_claims(registry, claims, estimate=False)
    if not plan.missing:
        return None
    publisher = registry.account.address
    salt = os.urandom(SALT_BYTES) + bytes(32 - SALT_BYTES)
    commitment = commitment_of(publisher, salt, [c.record_id for c in plan.missing])
    deadline = int(registry.chain.latest_block()["timestamp"]) + int(valid_for)
    return SignedCommitment(plan.missing, salt, registry.sign_commit(commitment, deadline=deadline))


def write_signed(path: str | os.PathLike, registry: Registry,
                 signed: "Sequence[tuple[Claim, SignedPublish]] | SignedCommitment") -> Path:
    """Write signed publishes (or a signed commitment and its claims) as a JSON file for a relayer
    (atomically)."""
    document: dict[str, Any] = {
        "format": SIGNED_FORMAT,
        "chain_id": registry.chain.chain_id,
        "registry": registry.address,
        "publisher": registry.account.address,
    }
    if isinstance(signed, SignedCommitment):
        commit = signed.signed
        document["commitment"] = {"commitment": to_hex(commit.commitment), "salt": to_hex(signed.salt), "nonce": commit.nonce,
                                  "deadline": commit.deadline, "signature": to_hex(commit.signature)}
        document["records"] = [{**claim.to_json(), "kind": int(claim.record.kind)} for claim in signed.claims]
    else:
        document["records"] = [
            {
                **claim.to_json(),
                "kind": int(claim.record.kind),
                "nonce": s.nonce,
                "deadline": s.deadline,
                "signature": to_hex(s.signature),
            }
            for claim, s in signed
        ]
    return atomic_write(path, json.dumps(document, indent=2) + "\n")


def load_signed(path: str | os.PathLike) -> dict[str, Any]:
    """Read a signed-publish file.

    Raises:
        InputError: unreadable, not JSON, or not ``elements.signed-publish/v1``.
    """
    path = Path(path)
    try:
        document = load_json_file(path, DOCUMENT_BYTES, f"the signed-publish file {path}")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; give the file written by `elements publish --sign-only`") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory; give the file written by `elements publish --sign-only`") from None
    except (OSError, NotJSON) as exc:
        raise InputError(f"{path} is not a signed-publish JSON file ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != SIGNED_FORMAT or not isinstance(document.get("records"), list):
        raise InputError(f"{path} is not an {SIGNED_FORMAT} file (write one with `elements publish --sign-only FILE`)")
    return document


def _committed_claim(document: dict, entry: dict) -> Claim:
    """A claim of a signed-commitment file (no signature of its own: the commitment is signed)."""
    try:
        publisher = to_checksum_address(document["publisher"])
        record = RecordInput(entry["content_id"], entry["cid"], int(entry["license_id"]), int(entry["kind"]), tuple(entry["parents"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"a record of the signed-publish file is malformed ({type(exc).__name__}: {exc})") from None
    record_id = record_id_of(publisher, record)
    if entry.get("record_id") and to_bytes32(entry["record_id"]) != record_id:
        raise InputError(f"record {entry.get('name')!r}: its fields hash to 0x{record_id.hex()}, not the record id the file states")
    return Claim(entry.get("name") or "0x" + record_id.hex()[:12], record, record_id, publisher,
                 entry.get("data_cid"), int(entry.get("size") or 0), entry.get("path"))


def _relay_committed(registry: Registry, document: dict[str, Any], on_transaction, wait_progress) -> PublishReport:
    """:func:`relay_signed` for a signed commitment: commitSigned, a later block, revealCommitmentFor."""
    section = document["commitment"]
    try:
        publisher = to_checksum_address(document["publisher"])
        commitment, salt = to_bytes32(section["commitment"], "commitment"), to_bytes32(section["salt"], "salt")
        nonce, deadline = int(section["nonce"]), int(section["deadline"])
        signature = bytes.fromhex(str(section["signature"]).removeprefix("0x"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"the signed commitment of the file is malformed ({type(exc).__name__}: {exc})") from None
    claims = [_committed_claim(document, e) for e in document["records"]]
    if not claims:
        raise InputError("the signed-publish file holds no records")
    ids = [c.record_id for c in claims]
    on_file = Commitment(commitment, 0, True)
    if not on_file.holds(commitment_of(publisher, salt, ids)):
        raise InputError("the file's records and salt do not hash to its signed commitment; ask the publisher to sign again")
    message = registry.commit_typed_data(commitment, nonce, deadline)
    try:
        signer = Account.recover_message(encode_typed_data(full_message=message), signature=signature)
    except Exception:
        raise InputError("the commitment's signature is malformed; ask the publisher to sign again") from None
    if signer != publisher:
        raise InputError(
            f"the commitment was signed by {signer}, not the publisher {publisher} (or for another chain/registry than "
            f"{registry.chain.chain_id}/{registry.address}); ask the publisher to sign again"
        )
    report = PublishReport(registry.chain.chain_id, registry.address, publisher, False, [])
    exists = registry.exists(ids)
    if all(exists):
        report.results = [ClaimResult(c, "present") for c in claims]
        return report
    if any(exists):
        raise InputError("some of the committed records exist already, so the commitment cannot be revealed; ask the publisher "
                         "to sign the missing ones again")
    on_chain = registry.commitment(publisher)
    latest = registry.chain.latest_block()
    if on_chain is not None and on_chain.holds(commitment) and on_chain.relayable:
        commit_block = on_chain.block_number  # an earlier relay sent it: reveal it
        if on_chain.expired(int(latest["number"])):
            raise InputError(f"the commitment made in block {commit_block} expired; ask the publisher to sign again")
    else:
        current = registry.nonce(publisher)
        if nonce != current:
            raise InputError(f"the commitment's nonce {nonce} is not the publisher's next nonce ({current}): another signature "
                             "used it; ask the publisher to sign again")
        if deadline < int(latest["timestamp"]):
            raise InputError(f"the commitment's signature expired at timestamp {deadline}; ask the publisher to sign again")
        registry.check_publish([c.record for c in claims], publisher)
        commit_block = registry.commit_signed(SignedCommit(commitment, publisher, nonce, deadline, signature))
        receipt = registry.last_receipt
        info = TransactionInfo(to_hex(receipt["transactionHash"]), commit_block, int(receipt["gasUsed"]), 0, 0, "commit")
        report.transactions.append(info)
        if on_transaction:
            on_transaction(info)
    wait_for_block(registry.chain, commit_block + 1, progress=wait_progress)
    registry.reveal_for(publisher, salt, [c.record for c in claims])
    receipt = registry.last_receipt
    created = _created_ids(registry, receipt)
    info = TransactionInfo(to_hex(receipt["transactionHash"]), int(receipt["blockNumber"]), int(receipt["gasUsed"]), len(claims),
                           len(created), "reveal", commit_block)
    report.transactions.append(info)
    if on_transaction:
        on_transaction(info)
    report.results = [ClaimResult(c, "published" if c.record_id in created else "present", info) for c in claims]
    return report


def _signed_entry(registry: Registry, document: dict, entry: dict) -> tuple[Claim, SignedPublish]:
    try:
        publisher = to_checksum_address(document["publisher"])
        record = RecordInput(entry["content_id"], entry["cid"], int(entry["license_id"]), int(entry["kind"]), tuple(entry["parents"]))
        signature = bytes.fromhex(str(entry["signature"]).removeprefix("0x"))
        nonce, deadline = int(entry["nonce"]), int(entry["deadline"])
        size = int(entry.get("size") or 0)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"a record of the signed-publish file is malformed ({type(exc).__name__}: {exc})") from None
    record_id = record_id_of(publisher, record)
    if entry.get("record_id") and to_bytes32(entry["record_id"]) != record_id:
        raise InputError(f"record {entry.get('name')!r}: its fields hash to 0x{record_id.hex()}, not the record id the file states")
    message = registry.typed_data(record, publisher, nonce, deadline)
    try:
        signer = Account.recover_message(encode_typed_data(full_message=message), signature=signature)
    except Exception:
        raise InputError(f"record {entry.get('name')!r}: the signature is malformed; ask the publisher to sign again") from None
    if signer != publisher:
        raise InputError(
            f"record {entry.get('name')!r}: the signature was made by {signer}, not the publisher {publisher} "
            f"(or for another chain/registry than {registry.chain.chain_id}/{registry.address}); ask the publisher to sign again"
        )
    claim = Claim(entry.get("name") or "0x" + record_id.hex()[:12], record, record_id, publisher,
                  entry.get("data_cid"), size, entry.get("path"))
    return claim, SignedPublish(record, publisher, nonce, deadline, signature, record_id)


def relay_signed(registry: Registry, document: dict[str, Any], *, on_transaction: Callable[[TransactionInfo], None] | None = None,
                 wait_progress: Progress | None = None) -> PublishReport:
    """Send signed publishes from the registry's account (the relayer pays, the signer publishes).

    Everything is checked before the first transaction: chain and registry, every signature
    (recovered off-chain), nonces, deadlines, licences and parents. Payloads whose nonce was
    used already are reported as present when their record exists. A file holding a signed
    commitment (``publish --sign-only --commit-reveal``) is sent as the commitment, then, in a
    later block (``wait_progress`` while waiting), the reveal; a rerun after an interruption
    reveals the commitment an earlier run sent.

    Raises:
        InputError: another chain or registry, a bad signature, an expired deadline, a nonce gap
            or a used nonce whose record does not exist.
    """
    from ..chain.session import require_account

    require_account(registry)
    try:
        chain_id = int(document.get("chain_id", -1))
        address = to_checksum_address(document.get("registry", "0x" + "0" * 40))
    except (TypeError, ValueError):
        raise InputError("the signed-publish file names no valid chain_id and registry; ask the publisher to sign again") from None
    if chain_id != registry.chain.chain_id or address != registry.address:
        raise InputError(
            f"the signatures are for chain {document.get('chain_id')} registry {document.get('registry')}, "
            f"not {registry.chain.chain_id} {registry.address}; relay on the chain they were signed for"
        )
    if "commitment" in document:
        return _relay_committed(registry, document, on_transaction, wait_progress)
    entries = sorted((_signed_entry(registry, document, e) for e in document["records"]), key=lambda cs: cs[1].nonce)
    if not entries:
        raise InputError("the signed-publish file holds no records")
    publisher = entries[0][1].publisher
    current = registry.nonce(publisher)
    exists = dict(zip([c.record_id for c, _ in entries], registry.exists([c.record_id for c, _ in entries])))
    latest = registry.chain.latest_block()
    to_send: list[tuple[Claim, SignedPublish]] = []
    results: dict[bytes, ClaimResult] = {}
    expected = current
    for claim, signed in entries:
        if signed.nonce < current:
            if not exists[claim.record_id]:
                raise InputError(
                    f"record {claim.label}: nonce {signed.nonce} of {publisher} was used by another signed publish and the record "
                    "is not on chain; ask the publisher to sign again"
                )
            results[claim.record_id] = ClaimResult(claim, "present")
            continue
        if signed.nonce != expected:
            raise InputError(f"record {claim.label}: nonce {signed.nonce} leaves a gap (the publisher's next nonce is {expected}); relay the earlier signatures first")
        if signed.deadline < int(latest["timestamp"]):
            raise InputError(f"record {claim.label}: the signature expired at timestamp {signed.deadline}; ask the publisher to sign again")
        to_send.append((claim, signed))
        expected += 1
    if to_send:
        registry.check_publish([c.record for c, _ in to_send], publisher)
    report = PublishReport(registry.chain.chain_id, registry.address, publisher, False, [])
    for claim, signed in to_send:
        registry.publish_signed(signed)
        receipt = registry.last_receipt
        created = _created_ids(registry, receipt)
        info = TransactionInfo(to_hex(receipt["transactionHash"]), int(receipt["blockNumber"]), int(receipt["gasUsed"]), 1, len(created))
        report.transactions.append(info)
        results[claim.record_id] = ClaimResult(claim, "published" if claim.record_id in created else "present", info)
        if on_transaction:
            on_transaction(info)
    report.results = [results[c.record_id] for c, _ in entries]
    return report

