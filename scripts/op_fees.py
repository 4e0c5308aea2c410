"""The L1 data fee an OP-stack chain charges a transaction, broken down for the snapshot and the costs tables.

Anvil's ``--optimism`` mode (Foundry 1.5.1) runs OP-stack transactions but puts no ``l1Fee`` in
its receipts and has no ``GasPriceOracle`` predeploy, so the fee is computed with the OP Stack's
published cost function since Fjord (a FastLZ size estimate of the signed transaction, Ecotone's
scalars). The FastLZ length and the cost function are the product's own,
:mod:`registry.chain.l1fee` (which ``elements publish --dry-run`` and the balance check price an
OP-stack L2's transactions with); this script adds the assumed prices (``REFERENCE_L2``, with an L2
gas price) and the per-transaction breakdown (calldata, signed and FastLZ sizes, L1 gas). Isthmus's
operator fee is zero unless a chain's operator sets it; it is left out (assumed zero).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from registry.chain.l1fee import L1FeeParams, calldata_gas, fastlz_length, fjord_estimated_size

__all__ = ["OpFeeParams", "REFERENCE_L2", "L1Data", "fastlz_length", "fjord_estimated_size", "l1_data", "calldata_gas"]


@dataclass(frozen=True)
class OpFeeParams:
    """The L1 prices and scalars an OP-stack chain reads from its L1Block predeploy, and its own
    gas price. Assumed figures, not quotes: they are what the committed tables are computed at."""

    l1_base_fee: int  # wei per L1 gas
    blob_base_fee: int  # wei per blob gas
    base_fee_scalar: int
    blob_base_fee_scalar: int
    l2_gas_price: int  # wei per L2 gas (base fee plus priority fee)

    def l1(self) -> L1FeeParams:
        """The figures the product prices an L1 data fee at (registry.chain.l1fee)."""
        return L1FeeParams(self.l1_base_fee, self.blob_base_fee, self.base_fee_scalar, self.blob_base_fee_scalar)

    def scaled(self) -> int:
        return self.l1().scaled()

    def to_json(self) -> dict:
        return asdict(self)


# OP Mainnet's Ecotone scalars; an L1 base fee of 1 gwei, a blob base fee of 0.1 gwei and an L2 gas
# price of 0.001 gwei. scripts/costs.py takes other figures on its command line.
REFERENCE_L2 = OpFeeParams(
    l1_base_fee=10**9, blob_base_fee=10**8, base_fee_scalar=5227, blob_base_fee_scalar=1_014_213, l2_gas_price=10**6,
)


@dataclass(frozen=True)
class L1Data:
    """A transaction's L1 data: its calldata, its signed size and what the L1 fee is charged on."""

    calldata_bytes: int
    calldata_zero_bytes: int
    signed_bytes: int
    fastlz_bytes: int
    estimated_size: int  # bytes x 1e6

    @property
    def calldata_nonzero_bytes(self) -> int:
        return self.calldata_bytes - self.calldata_zero_bytes

    def l1_gas(self) -> int:
        """The L1 gas the estimate stands for (``getL1GasUsed``: 16 per estimated byte)."""
        return self.estimated_size * 16 // 10**6

    def l1_fee(self, params: OpFeeParams) -> int:
        """The L1 data fee in wei at ``params``."""
        return self.estimated_size * params.scaled() // 10**12


def l1_data(signed: bytes, calldata: bytes) -> L1Data:
    """The L1 data of a signed transaction (its EIP-2718 bytes) carrying ``calldata``."""
    flz = fastlz_length(signed)
    return L1Data(len(calldata), calldata.count(0), len(signed), flz, fjord_estimated_size(flz))
