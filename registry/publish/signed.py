"""Signed publishing: the signer is the publisher, another account (a relayer) pays.

:func:`sign_claims` (or :func:`sign_elements` for files) writes EIP-712 signatures, one per claim
not on chain yet, or with commit-reveal one signed commitment to all of them
(:func:`sign_committed`); :func:`write_signed` puts them in an ``elements.signed-publish/v1``
file, and :func:`relay_signed` checks everything in it (chain, registry, every signature, nonces,
deadlines, licences and parents) before it sends the first transaction.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import to_checksum_address

from ..files import atomic_write
from ..chain.registry import Registry, record_id_of
from ..chain.inputs import Commitment, RecordInput, SignedCommit, SignedPublish, commitment_of
from ..digest import parse_bytes32, parse_record_id, to_hex
from ..errors import InputError
from ..limits import DOCUMENT_BYTES, NotJSONError, load_json_file
from ..storage.blockstore import BlockStore
from .claims import Claim, element_claims, signing_account
from .commit_reveal import SALT_BYTES, sent_receipt, wait_for_block
from .plan import plan_claims
from .prepare import Progress
from .send import ClaimResult, PublishReport, TransactionInfo, created_ids, pin_claims

__all__ = [
    "SIGNED_FORMAT",
    "SignedCommitment",
    "load_signed",
    "relay_signed",
    "sign_claims",
    "sign_committed",
    "sign_elements",
    "write_signed",
]

SIGNED_FORMAT = "elements.signed-publish/v1"


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
        pin_claims(sources, committed.claims if committed else [], upload_progress)
        return claims, committed
    signed = sign_claims(registry, claims, valid_for=valid_for)
    pin_claims(sources, [c for c, _ in signed], upload_progress)
    return claims, signed



def sign_claims(registry: Registry, claims: Sequence[Claim], *, valid_for: int = 24 * 3600) -> list[tuple[Claim, SignedPublish]]:
    """Sign the claims that are not on chain yet with the registry's account (consecutive nonces).

    Args:
        valid_for: seconds after the latest block's timestamp until the signatures expire.

    Raises:
        What :func:`plan_claims` raises (checked as if the signer sent them).
    """
    plan = plan_claims(registry, claims, estimate=False)
    nonce = registry.nonce(signing_account(registry).address)
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
    publisher = signing_account(registry).address
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
        "publisher": signing_account(registry).address,
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
    except (OSError, NotJSONError) as exc:
        raise InputError(f"{path} is not a signed-publish JSON file ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != SIGNED_FORMAT or not isinstance(document.get("records"), list):
        raise InputError(f"{path} is not an {SIGNED_FORMAT} file (write one with `elements publish --sign-only FILE`)")
    return document


def _committed_claim(document: dict, entry: dict) -> Claim:
    """A claim of a signed-commitment file (no signature of its own: the commitment is signed)."""
    try:
        publisher = to_checksum_address(document["publisher"])
        record = RecordInput(entry["content_id"], entry["cid"], int(entry["license_id"]), int(entry["kind"]), tuple(entry["parents"]))
        size = int(entry.get("size") or 0)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"a record of the signed-publish file is malformed ({type(exc).__name__}: {exc})") from None
    record_id = record_id_of(publisher, record)
    if entry.get("record_id") and parse_record_id(entry["record_id"], "id") != record_id:
        raise InputError(f"record {entry.get('name')!r}: its fields hash to {record_id}, not the record id the file states")
    return Claim(entry.get("name") or str(record_id)[:14], record, record_id, publisher,
                 entry.get("data_cid"), size, entry.get("path"))


def _relay_committed(registry: Registry, document: dict[str, Any], on_transaction, wait_progress) -> PublishReport:
    """:func:`relay_signed` for a signed commitment: commitSigned, a later block, revealCommitmentFor."""
    section = document["commitment"]
    try:
        publisher = to_checksum_address(document["publisher"])
        commitment, salt = parse_bytes32(section["commitment"], "commitment"), parse_bytes32(section["salt"], "salt")
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
        receipt = sent_receipt(registry)
        info = TransactionInfo(to_hex(receipt["transactionHash"]), commit_block, int(receipt["gasUsed"]), 0, 0, "commit")
        report.transactions.append(info)
        if on_transaction:
            on_transaction(info)
    wait_for_block(registry.chain, commit_block + 1, progress=wait_progress)
    registry.reveal_for(publisher, salt, [c.record for c in claims])
    receipt = sent_receipt(registry)
    created = created_ids(registry, receipt)
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
    if entry.get("record_id") and parse_record_id(entry["record_id"], "id") != record_id:
        raise InputError(f"record {entry.get('name')!r}: its fields hash to {record_id}, not the record id the file states")
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
    claim = Claim(entry.get("name") or str(record_id)[:14], record, record_id, publisher,
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
        receipt = sent_receipt(registry)
        created = created_ids(registry, receipt)
        info = TransactionInfo(to_hex(receipt["transactionHash"]), int(receipt["blockNumber"]), int(receipt["gasUsed"]), 1, len(created))
        report.transactions.append(info)
        results[claim.record_id] = ClaimResult(claim, "published" if claim.record_id in created else "present", info)
        if on_transaction:
            on_transaction(info)
    report.results = [results[c.record_id] for c, _ in entries]
    return report
