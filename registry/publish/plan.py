"""Planning a publish: which claims exist already, whether the rest would be accepted, and what
sending them would cost.

Record ids are computed client-side (``record_id_of``) and ONE view call says which exist; the
missing ones are checked off-chain against the contract's rules (licence, every parent's terms,
parents exist) and their gas is estimated: nothing is sent when anything is wrong, and the
message names the parent and the rule.

On an OP-stack L2 each transaction also pays an L1 data fee for its signed bytes
(:mod:`registry.chain.l1fee`): the estimate signs each planned transaction (nothing is sent) and
prices it at the network's configured figures or its GasPriceOracle's; the cost and the balance
check count it, and on an Isthmus chain the operator fee its oracle charges on the gas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..chain.abi import keccak
from ..chain.errors import InsufficientFundsError, TransactionFailedError
from ..chain.l1fee import L1FeeParams, l1_fee, l1_fee_params
from ..chain.registry import Registry
from ..errors import ElementsError, InputError
from .claims import Claim, check_parent_count, signing_account
from .commit_reveal import SALT_BYTES

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Estimate",
    "Plan",
    "plan_claims",
    "require_funds",
]

#: Claims per publishBatch transaction (an element record costs ~70k gas: 50 fit any block).
DEFAULT_BATCH_SIZE = 50


@dataclass
class Estimate:
    """What sending the missing claims would cost (from ``eth_estimateGas`` and the latest block)."""

    gas: int
    transactions: int
    base_fee: int
    priority_fee: int
    balance: int
    #: The L1 data fee of all the transactions (wei) on an OP-stack L2, else None.
    l1_fee: int | None = None
    l1_fee_params: L1FeeParams | None = None

    @property
    def max_l1_fee(self) -> int:
        # The L1 prices may rise before the transactions land: allowed to double, as the L2 base fee is.
        return 2 * (self.l1_fee or 0)

    @property
    def operator_fee(self) -> int:
        """An Isthmus chain's operator fee (wei) on the estimated gas; 0 elsewhere."""
        return self.l1_fee_params.operator_fee(self.gas, self.transactions) if self.l1_fee_params else 0

    @property
    def max_operator_fee(self) -> int:
        # The chain takes it up front on the gas limit (as it does the gas itself), refunding the unused part.
        return self.l1_fee_params.operator_fee(self.gas_limit, self.transactions) if self.l1_fee_params else 0

    @property
    def max_fee_per_gas(self) -> int:
        return 2 * self.base_fee + self.priority_fee

    @property
    def gas_limit(self) -> int:
        # What Chain.transact asks for: the estimate plus its margin, per transaction.
        return int(self.gas * 1.2) + 10_000 * self.transactions

    @property
    def cost(self) -> int:
        """Expected cost in wei (gas x (base fee + tip), plus the L1 data fee on an OP-stack L2 and
        the operator fee on an Isthmus one)."""
        return self.gas * (self.base_fee + self.priority_fee) + (self.l1_fee or 0) + self.operator_fee

    @property
    def max_cost(self) -> int:
        """The most the transactions may cost (gas limit x max fee, plus twice the L1 data fee and the
        operator fee on the gas limit): what the balance must cover."""
        return self.gas_limit * self.max_fee_per_gas + self.max_l1_fee + self.max_operator_fee

    def to_json(self) -> dict[str, Any]:
        l1: dict[str, Any] = {}
        if self.l1_fee is not None and self.l1_fee_params is not None:
            l1 = {"l1_fee_wei": self.l1_fee, "l1_fee_eth": self.l1_fee / 10**18, "l1_fee_params": self.l1_fee_params.to_json()}
            if self.l1_fee_params.isthmus:
                l1["operator_fee_wei"] = self.operator_fee
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
            **l1,
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
    data = registry.calldata("publishBatch", [[c.record.as_abi() for c in batch]])
    # Gas price 0: the estimate must not depend on the balance (a dry run from an unfunded key).
    tx = {"from": publisher, "to": registry.address, "data": data, "value": 0, "gasPrice": 0}
    namer = lambda i: registry.license_name(i) or ""  # noqa: E731  # chain's LicenseNamer promises a name
    try:
        # Over JSON-RPC a revert comes back decoded (no web3); on `memory` web3's error is replayed below.
        return registry.chain.rpc("estimating gas", lambda: registry.chain.estimate_gas(tx, namer))
    except ElementsError:
        raise
    except Exception as exc:
        # Replaying the call decodes a revert into the registry's own error (UnknownParent, ...).
        # chain's LicenseNamer promises a name; an unknown licence's "" reads as no name there, as None does.
        registry.chain.call({k: v for k, v in tx.items() if k != "gasPrice"}, namer)
        raise TransactionFailedError(f"the node could not estimate the gas of publishBatch: {exc}") from None


def plan_claims(registry: Registry, claims: Sequence[Claim], *, batch_size: int = DEFAULT_BATCH_SIZE, estimate: bool = True,
                commit_reveal: bool = False) -> Plan:
    """Find which claims exist (one view call), check the rest off-chain, estimate their gas.

    Raises:
        InputError: claims made for another publisher than the registry's account.
        UnknownLicenseError, UnknownParentError, LicenseViolationError subclasses: what the contract
            would refuse, before anything is sent.
        InsufficientFundsError: the account cannot pay for the missing claims.
    """
    publisher = signing_account(registry).address
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
    data = registry.calldata("commitRecordIds", [b"\xee" * 20 + bytes(12)])
    tx = {"from": publisher, "to": registry.address, "data": data, "value": 0, "gasPrice": 0}
    return registry.chain.rpc("estimating gas", lambda: registry.chain.estimate_gas(tx))


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
    estimate = Estimate(gas, transactions, base_fee, tip, registry.chain.balance(publisher))
    params = l1_fee_params(registry.chain)
    if params is not None:
        signed = _signed_transactions(registry, publisher, batches, commit_reveal, estimate)
        estimate.l1_fee, estimate.l1_fee_params = sum(l1_fee(raw, params) for raw in signed), params
    return estimate


def _signed_transactions(registry: Registry, publisher: str, batches: list[list[Claim]], commit_reveal: bool,
                         estimate: Estimate) -> list[bytes]:
    """The planned transactions signed as they would be sent (EIP-2718 bytes; nothing is sent): the
    L1 data fee is charged on these bytes. A commitment and a salt are stand-ins of their real size
    and entropy (hashes), so the bytes compress as the real ones do."""
    calldata: list[bytes] = []
    for batch in batches:
        records = [c.record for c in batch]
        if not commit_reveal:
            calldata.append(_encode(registry, "publishBatch", [[r.as_abi() for r in records]]))
            continue
        commitment = keccak(b"planned commitment")[:20] + bytes(12)  # the contract keeps 160 bits
        salt = keccak(b"planned salt")[:SALT_BYTES] + bytes(32 - SALT_BYTES)
        calldata.append(_encode(registry, "commitRecordIds", [commitment]))
        if len(records) == 1:
            calldata.append(_encode(registry, "revealOne", [salt, records[0].as_abi()]))
        else:
            calldata.append(_encode(registry, "revealCommitment", [salt, [r.as_abi() for r in records]]))
    chain = registry.chain
    nonce = chain.transaction_count(publisher, "pending")
    gas = estimate.gas_limit // max(1, estimate.transactions)
    signed = []
    account = signing_account(registry)
    for i, data in enumerate(calldata):
        tx: dict[str, Any] = {"type": 2, "chainId": chain.chain_id, "nonce": nonce + i, "gas": gas, "to": registry.address, "value": 0, "data": data,
              "maxFeePerGas": estimate.max_fee_per_gas, "maxPriorityFeePerGas": estimate.priority_fee}
        signed.append(bytes(account.sign_transaction(tx).raw_transaction))
    return signed


def _encode(registry: Registry, function: str, args: list[Any]) -> bytes:
    return registry.calldata(function, args)


_REVEAL_OVERHEAD = 2_500


def require_funds(registry: Registry, plan: Plan) -> None:
    """Raise :class:`InsufficientFundsError` when the account cannot cover the plan's worst-case cost."""
    estimate = plan.estimate
    if estimate is None or not plan.missing:
        return
    if estimate.balance < estimate.max_cost:
        publisher = signing_account(registry).address
        l1 = f", and up to {estimate.max_l1_fee / 10**18:.6g} ETH of L1 data fee" if estimate.l1_fee is not None else ""
        if estimate.max_operator_fee:
            l1 += f", and up to {estimate.max_operator_fee / 10**18:.6g} ETH of operator fee"
        raise InsufficientFundsError(
            f"account {publisher} holds {estimate.balance / 10**18:.6g} ETH on {registry.chain.name} but publishing "
            f"{len(plan.missing)} record(s) may cost up to {estimate.max_cost / 10**18:.6g} ETH "
            f"({estimate.gas:,} gas at up to {estimate.max_fee_per_gas / 10**9:.3g} gwei{l1}); fund it and run the same command again"
        )
