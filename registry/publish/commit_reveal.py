"""Commit-reveal publishing: priority that a mempool watcher cannot take.

On a chain with a public mempool a publish transaction shows its content ids before it is mined;
whoever copies them and pays more lands the same claims first. So a batch is published in two
transactions (see docs/publishing.md):

1. **commit**: ``commitRecordIds(commitment)`` with ``commitment = keccak256(abi.encode(publisher,
   salt, keccak256(record ids)))`` (:func:`registry.chain.commitment_of`): it shows nothing of the
   records. The block it lands in is their **priority block**.
2. **reveal**, in a later block: ``revealCommitment(salt, records)`` (``revealOne`` for a single
   record). The contract checks the commitment is the publisher's, at least one block and at most
   ``COMMITMENT_EXPIRY`` (255) blocks old, covers exactly these records, all new; each record is
   stored with the commitment's block as its priority block. A copy seen in the reveal and sent
   directly is later than that block, whatever fee it pays.

The salt is written to ``$ELEMENTS_HOME/commitments/<chain>-<registry>-<publisher>.json``
(atomically, before the commitment is sent) and removed when the reveal is mined, so an
interrupted publish resumes: the next run finds the commitment on chain and reveals it, or, when it
expired or was replaced, commits anew.

A publisher has one commitment at a time on a registry, so two processes publishing with one key
would replace each other's commitment (and state file) between commit and reveal. Each publish
therefore holds an exclusive lock on ``<chain>-<registry>-<publisher>.lock`` beside the state file
(:func:`publisher_lock`, ``flock``: the kernel releases it when the process ends, however it ends)
from before its commitment until its last reveal is mined, and removes the file as it lets go; a
second process waits for it, then publishes only the records still missing
(:func:`missing_records`). The command line holds the same lock around a plain publish and a relay
too (one sending process per account: two would race on the nonce and send the same claims twice).
The lock is re-entrant within a thread (a publish already holding it reveals without locking again)
and excludes other threads as it does other processes (each takes its own ``flock`` descriptor).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ..chain.abi import checksum_address as to_checksum_address  # in-house EIP-55: eth-utils loads only with the signer

from ..files import atomic_write
from ..chain.errors import CommitmentError
from ..errors import ChainError
from ..chain.registry import COMMITMENT_EXPIRY, Registry
from ..chain.inputs import RecordInput, commitment_of
from ..digest import RecordId, parse_bytes32, parse_record_id, to_hex
from ..limits import CONFIG_BYTES, load_json_file
from .claims import signing_account

__all__ = [
    "STATE_FORMAT",
    "SALT_BYTES",
    "CommitReveal",
    "PendingCommitment",
    "Committed",
    "pending_path",
    "lock_path",
    "publisher_lock",
    "load_pending",
    "clear_stale",
    "publish_committed",
    "missing_records",
    "wait_for_block",
    "wait_until_mined",
    "is_loopback",
    "sent_receipt",
]

STATE_FORMAT = "elements.pending-commitment/v1"
#: Random bytes of a salt; the rest of its 32 bytes are zero (cheaper calldata). 96 bits cannot be
#: searched to test a guess of the records against a commitment.
SALT_BYTES = 12
# A commitment this close to its expiry is replaced rather than revealed (the reveal may need a few
# blocks to be mined).
_EXPIRY_MARGIN = 8
# The lock files this thread holds (publisher_lock is re-entrant per thread).
_HELD = threading.local()


@dataclass(frozen=True)
class CommitReveal:
    """How to publish through commitments.

    Attributes:
        state_dir: where a pending commitment's salt is kept (``$ELEMENTS_HOME/commitments``).
        wait_progress: ``progress(blocks_seen, blocks_needed)`` while waiting for the block after the
            commitment.
        timeout: seconds to wait for that block before giving up (the commitment stays; rerun).
        poll: seconds between block-number polls (default: 0.05 on local chains, 1 elsewhere).
    """

    state_dir: Path
    wait_progress: Callable[[int, int], None] | None = None
    timeout: float = 600.0
    poll: float | None = None


@dataclass(frozen=True)
class PendingCommitment:
    """A commitment whose reveal has not been seen mined (the content of the state file)."""

    chain_id: int
    registry: str
    publisher: str
    salt: bytes
    record_ids: tuple[RecordId, ...]
    commitment: bytes

    def to_json(self) -> dict:
        return {
            "format": STATE_FORMAT,
            "chain_id": self.chain_id,
            "registry": self.registry,
            "publisher": self.publisher,
            "salt": to_hex(self.salt),
            "records": [to_hex(r) for r in self.record_ids],
            "commitment": to_hex(self.commitment),
        }


@dataclass(frozen=True)
class Committed:
    """The two transactions of one batch: the commitment (whose block is the records' priority
    block; ``commit_receipt`` is None when an earlier run sent it) and the reveal."""

    commit_block: int
    commit_receipt: dict | None
    reveal_receipt: dict


def sent_receipt(registry: Registry) -> dict:
    """The receipt of the transaction ``registry`` just sent (every write of a Registry keeps it)."""
    receipt = registry.last_receipt
    if receipt is None:  # pragma: no cover - called only after a write
        raise AssertionError("no transaction was sent through this registry")
    return receipt


def pending_path(state_dir: Path, registry: Registry, publisher: str) -> Path:
    """The state file of ``publisher``'s pending commitment on this chain and registry."""
    return Path(state_dir) / f"{registry.chain.chain_id}-{registry.address}-{to_checksum_address(publisher)}.json"


def lock_path(state_dir: Path, registry: Registry, publisher: str) -> Path:
    """The lock file that one publishing process at a time holds for ``publisher`` on this chain
    and registry."""
    return pending_path(state_dir, registry, publisher).with_suffix(".lock")


@contextlib.contextmanager
def publisher_lock(registry: Registry, options: CommitReveal) -> Iterator[None]:
    """Hold the bound account's publishing lock (waiting up to ``options.timeout`` seconds for
    another process to release it).

    The holder removes the lock file before it lets go, so nothing is left behind; a process that
    was waiting on the removed file then finds its name gone (or on a newer file) and locks again by
    name, so two processes never both hold it. A process that ends while holding it leaves the file,
    unlocked (the kernel drops an ``flock`` with its last descriptor), for the next publish to take.

    Raises:
        ChainError: another process held it for ``options.timeout`` seconds.
    """
    publisher = signing_account(registry).address
    path = lock_path(options.state_dir, registry, publisher)
    held: set[Path] = _HELD.__dict__.setdefault("paths", set())
    if path in held:  # this thread holds it already (a command that locks around a publish that locks)
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)  # an empty file: only its lock matters
        try:
            if _locked(fd, path):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        if time.monotonic() - started > options.timeout:
            raise ChainError(
                f"another elements process has been publishing with {publisher} for over {options.timeout:.0f}s "
                f"(it holds {path}); let it finish, then run the same command again"
            )
        time.sleep(0.05 if options.poll is None else options.poll)
    held.add(path)
    try:
        yield
    finally:
        held.discard(path)
        try:
            path.unlink()  # while still locked: no one can hold this file after us
        except FileNotFoundError:
            pass
        os.close(fd)  # releases the lock


def _locked(fd: int, path: Path) -> bool:
    """Whether ``fd`` now holds the lock on the file that ``path`` names (not on one its holder
    removed meanwhile)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False  # removed by the holder we waited for: lock the name anew
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def missing_records(registry: Registry, records: Sequence[RecordInput]) -> list[RecordInput]:
    """Those of ``records`` not on chain yet from the bound account (another process with the same
    key may have published some while this one waited for the lock: a reveal must cover only new
    records)."""
    publisher = signing_account(registry).address
    present = registry.exists([r.record_id(publisher) for r in records]) if records else []
    return [r for r, there in zip(records, present) if not there]


def load_pending(state_dir: Path, registry: Registry, publisher: str) -> PendingCommitment | None:
    """The pending commitment recorded for ``publisher``, or None (an unreadable file counts as
    none: the commitment it named is replaced)."""
    path = pending_path(state_dir, registry, publisher)
    try:
        data = load_json_file(path, CONFIG_BYTES, f"the commitment state {path}")
        pending = PendingCommitment(
            int(data["chain_id"]), to_checksum_address(data["registry"]), to_checksum_address(data["publisher"]),
            parse_bytes32(data["salt"], "salt"), tuple(parse_record_id(r) for r in data["records"]),
            parse_bytes32(data["commitment"], "commitment"),
        )
    except (OSError, ValueError, KeyError, TypeError):  # LimitExceededError and NotJSONError are ValueErrors
        return None  # absent, or unreadable: its commitment (if any) is replaced
    if data.get("format") != STATE_FORMAT or (pending.chain_id, pending.registry) != (registry.chain.chain_id, registry.address):
        return None
    if commitment_of(pending.publisher, pending.salt, pending.record_ids) != pending.commitment:
        return None
    return pending


def _save(state_dir: Path, registry: Registry, pending: PendingCommitment) -> None:
    path = pending_path(state_dir, registry, pending.publisher)
    path.parent.mkdir(parents=True, exist_ok=True)
    # flushed to disk: the salt must survive a crash right after the commitment is sent
    atomic_write(path, json.dumps(pending.to_json(), indent=2) + "\n")


def _drop(state_dir: Path, registry: Registry, publisher: str) -> None:
    try:
        pending_path(state_dir, registry, publisher).unlink()
    except FileNotFoundError:
        pass


def clear_stale(registry: Registry, options: CommitReveal) -> None:
    """Remove the bound account's state file when its records all exist (an earlier run's reveal
    was mined but the run stopped before it could clean up)."""
    publisher = signing_account(registry).address
    pending = load_pending(options.state_dir, registry, publisher)
    if pending is not None and all(registry.exists(list(pending.record_ids))):
        _drop(options.state_dir, registry, publisher)


def publish_committed(registry: Registry, records: Sequence[RecordInput], options: CommitReveal) -> Committed:
    """Publish ``records`` (all new) from the bound account through one commitment: commit (or find
    the pending one), wait for a later block, reveal.

    Raises:
        What :meth:`Registry.reveal` raises; ChainError when no block follows the commitment within
        ``options.timeout`` (the commitment stays: run the same publish again).
    """
    publisher = signing_account(registry).address
    ids = tuple(r.record_id(publisher) for r in records)
    for attempt in range(2):
        pending, commit_block, commit_receipt = _commitment_for(registry, ids, options, fresh=attempt > 0)
        wait_for_block(registry.chain, commit_block + 1, progress=options.wait_progress, timeout=options.timeout, poll=options.poll)
        try:
            registry.reveal(pending.salt, records)
        except CommitmentError as exc:
            if exc.error in ("CommitmentExpired", "UnknownCommitment") and attempt == 0:
                continue  # expired while waiting, or replaced meanwhile: commit anew, once
            raise
        _drop(options.state_dir, registry, publisher)
        return Committed(commit_block, commit_receipt, sent_receipt(registry))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _commitment_for(registry: Registry, ids: tuple[RecordId, ...], options: CommitReveal, *, fresh: bool):
    """The live commitment to ``ids`` (the pending one, if the chain still holds it), else a new one."""
    publisher = signing_account(registry).address
    pending = None if fresh else load_pending(options.state_dir, registry, publisher)
    if pending is not None and pending.record_ids == ids:
        on_chain = registry.commitment(publisher)
        if on_chain is None or not on_chain.holds(pending.commitment):
            # A run cut off right after sending its commitment: the node may hold it unmined. Wait
            # for it rather than commit again (a second commitment would cost gas and replace it).
            wait_until_mined(registry.chain, publisher, timeout=options.timeout, poll=options.poll)
            on_chain = registry.commitment(publisher)
        latest = registry.chain.block_number()
        if on_chain is not None and on_chain.holds(pending.commitment) and not on_chain.expired(latest + _EXPIRY_MARGIN):
            return pending, on_chain.block_number, None
    salt = os.urandom(SALT_BYTES) + bytes(32 - SALT_BYTES)
    pending = PendingCommitment(registry.chain.chain_id, registry.address, publisher, salt, ids, commitment_of(publisher, salt, ids))
    _save(options.state_dir, registry, pending)  # before sending: a crash after it must not lose the salt
    block = registry.commit(pending.commitment)
    return pending, block, sent_receipt(registry)


def wait_until_mined(chain, address: str, *, timeout: float = 600.0, poll: float | None = None) -> None:
    """Wait until the node holds none of ``address``'s transactions unmined (a run cut off after
    sending one left it in the node's pool).

    Raises:
        ChainError: some are still unmined after ``timeout`` seconds.
    """
    local = chain.is_memory or is_loopback(chain.rpc_url)
    poll = poll if poll is not None else (0.05 if local else 1.0)
    started = time.monotonic()
    while chain.unmined(address):
        if time.monotonic() - started > timeout:
            raise ChainError(
                f"{address} has transactions on {chain.name} still not mined after {timeout:.0f}s; wait for them "
                "(or replace them with a higher fee), then run the same command again"
            )
        time.sleep(poll)


def wait_for_block(chain, target: int, *, progress: Callable[[int, int], None] | None = None, timeout: float = 600.0,
                   poll: float | None = None) -> None:
    """Wait until block ``target`` exists on ``chain`` (a :class:`registry.chain.Chain`), reporting
    ``progress(blocks_seen, blocks_needed)``. A local chain that mines only on transactions (the
    in-process EVM, anvil or hardhat on loopback) is asked to mine.

    Raises:
        ChainError: no such block within ``timeout`` seconds.
    """
    local = chain.is_memory or is_loopback(chain.rpc_url)
    poll = poll if poll is not None else (0.05 if local else 1.0)
    start = chain.block_number()
    needed = max(0, target - start)
    started = time.monotonic()
    while True:
        latest = chain.block_number()
        if progress is not None:
            progress(min(needed, max(0, latest - start)), needed)
        if latest >= target:
            return
        waited = time.monotonic() - started
        if waited > timeout:
            raise ChainError(
                f"no block after {target - 1} on {chain.name} within {timeout:.0f}s; the commitment stays on chain "
                f"for {COMMITMENT_EXPIRY} blocks: run the same command again to reveal it"
            )
        if chain.is_memory:
            chain.w3.testing.mine()
            continue
        if local and waited > 1.0:
            try:  # anvil and hardhat mine on request; a node that refuses is simply waited for
                chain.provider.make_request("evm_mine", [])  # the JSON-RPC transport: no web3 to mine
            except Exception:
                pass
        time.sleep(poll)


def is_loopback(url: str) -> bool:
    """Whether a JSON-RPC URL is a node on this machine (no public mempool: a dev chain)."""
    from urllib.parse import urlparse

    host = (urlparse(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")
