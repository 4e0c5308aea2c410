"""Sending claims: idempotent and resumable publishing of elements and compositions.

What publishing element files does, in order::

    prepare     content id and element manifest; data and manifest into the local block store
                (registry.publish.prepare), after the licence and parents are checked
                (registry.publish.claims).
    plan        ONE view call says which records exist; the missing ones are checked off-chain
                and their gas estimated (registry.publish.plan): nothing is sent when anything
                is wrong.
    pin         data + manifest into the Kubo node (pinned) when one is configured.
    send        the missing claims in publishBatch transactions (in order, so a record may name
                an earlier one as a parent); the receipt's events say which records each created.

Because a record id is a hash of the whole claim, running the same publish again computes the
same ids: what exists is reported as already there, only what is missing is sent, so a re-run
after a crash, a dropped connection or a failed transaction completes the work and never makes
a duplicate claim (the contract also ignores a claim that exists).

Signed publishing (another account relays the signer's claims) is :mod:`registry.publish.signed`.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..chain.abi import checksum_address as to_checksum_address  # in-house EIP-55: eth-utils loads only with the signer

from ..chain.licenses import LicenseTerms
from ..chain.registry import RECORD_PUBLISHED_TOPIC, Registry
from ..digest import to_hex
from ..storage.blockstore import BlockStore
from .claims import Claim, element_claims, signing_account
from .commit_reveal import CommitReveal, clear_stale, missing_records, publish_committed, publisher_lock
from .plan import DEFAULT_BATCH_SIZE, Estimate, plan_claims, require_funds
from .prepare import Progress

__all__ = [
    "ClaimResult",
    "PublishReport",
    "TransactionInfo",
    "created_ids",
    "pin_claims",
    "publish_claims",
    "publish_elements",
]


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


def created_ids(registry: Registry, receipt: dict) -> set[bytes]:
    created = set()
    for log in receipt.get("logs", []):
        topics = [bytes(t) for t in log.get("topics", [])]
        if topics and topics[0] == RECORD_PUBLISHED_TOPIC and to_checksum_address(log["address"]) == registry.address:
            created.add(topics[1])
    return created


def pin_claims(sources, claims: Sequence[Claim], progress: Progress | None = None) -> list[str]:
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
    uploaded: Callable[[int], None] | None = None
    if progress:
        report = progress  # not None inside the closure

        def uploaded(n: int) -> None:
            sent[0] += n
            report(sent[0], max(total, sent[0]))

    for cid, _ in uploads:
        sources.publish(cid, progress=uploaded)
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
        TransactionFailedError: the transactions mined so far stand, and running the same publish
        again sends only the rest.
    """
    plan = plan_claims(registry, claims, batch_size=batch_size, commit_reveal=commit_reveal is not None)
    publisher = signing_account(registry).address
    report = PublishReport(registry.chain.chain_id, registry.address, publisher, dry_run, [], estimate=plan.estimate, license=license)
    if dry_run:
        report.results = [ClaimResult(c, "present") for c in plan.present] + [ClaimResult(c, "planned") for c in plan.missing]
        report.results.sort(key=lambda r: plan.claims.index(r.claim))
        return report
    require_funds(registry, plan)
    report.pinned = pin_claims(sources, plan.claims, upload_progress)
    status: dict[bytes, ClaimResult] = {c.record_id: ClaimResult(c, "present") for c in plan.present}
    with contextlib.ExitStack() as held:
        if commit_reveal is not None:
            # one publishing process per key at a time: another's commitment would replace this one's
            held.enter_context(publisher_lock(registry, commit_reveal))
            clear_stale(registry, commit_reveal)
        _send_batches(registry, plan.batches, commit_reveal, report, status, on_transaction)
    report.results = [status[c.record_id] for c in plan.claims]
    return report


def _send_batches(registry: Registry, batches: Sequence[Sequence[Claim]], commit_reveal: CommitReveal | None, report: PublishReport,
                  status: dict[bytes, ClaimResult], on_transaction: Callable[[TransactionInfo], None] | None) -> None:
    for planned in batches:
        batch = list(planned)
        priority = None
        if commit_reveal is None:
            receipt = registry.transact("publishBatch", [[c.record.as_abi() for c in batch]])
        else:
            # Another process with this key may have published some of them while this one waited for the lock.
            missing = {r.record_id(signing_account(registry).address) for r in missing_records(registry, [c.record for c in batch])}
            for claim in batch:
                if claim.record_id not in missing:
                    status[claim.record_id] = ClaimResult(claim, "present")
            batch = [c for c in batch if c.record_id in missing]
            if not batch:
                continue
            committed = publish_committed(registry, [c.record for c in batch], commit_reveal)
            if committed.commit_receipt is not None:
                commit = committed.commit_receipt
                report.transactions.append(TransactionInfo(to_hex(commit["transactionHash"]), int(commit["blockNumber"]),
                                                           int(commit["gasUsed"]), 0, 0, "commit"))
            receipt, priority = committed.reveal_receipt, committed.commit_block
        created = created_ids(registry, receipt)
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
