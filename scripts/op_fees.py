"""The L1 data fee an OP-stack chain charges a transaction, computed from its signed bytes.

Anvil's ``--optimism`` mode (Foundry 1.5.1) runs OP-stack transactions but puts no ``l1Fee`` in
its receipts and has no ``GasPriceOracle`` predeploy, so the fee is computed here with the OP
Stack's published cost function, the one in force since the Fjord upgrade (Ecotone's scalars, a
FastLZ size estimate; Holocene, Isthmus and Jovian left it as it is)::

    fastlzSize    = length of the signed transaction (EIP-2718 bytes) compressed with FastLZ
    estimatedSize = max(100e6, -42_585_600 + 836_500 * fastlzSize)          (bytes x 1e6)
    l1FeeScaled   = 16 * l1BaseFee * baseFeeScalar + blobBaseFee * blobBaseFeeScalar
    l1Fee         = estimatedSize * l1FeeScaled / 1e12                       (wei, rounded down)

The FastLZ length follows the reference the OP Stack names (Solady's ``flzCompress``, as op-geth's
``FlzCompressLen`` and revm's ``flz_compress_len`` compute it); the tests check it against their
published vectors. Isthmus added an operator fee (``gasUsed * operatorFeeScalar / 1e6 +
operatorFeeConstant``) that is zero unless a chain's operator sets it; it is left out (assumed zero).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["OpFeeParams", "REFERENCE_L2", "L1Data", "fastlz_length", "fjord_estimated_size", "l1_data", "calldata_gas"]

# Fjord constants (op-geth core/types/rollup_cost.go), scaled by 1e6.
COST_INTERCEPT = -42_585_600
COST_FASTLZ_COEF = 836_500
MIN_TRANSACTION_SIZE = 100 * 10**6

_HASH_TABLE = 8192
_MAX_DISTANCE = 8192


@dataclass(frozen=True)
class OpFeeParams:
    """The L1 prices and scalars an OP-stack chain reads from its L1Block predeploy, and its own
    gas price. Assumed figures, not quotes: they are what the committed tables are computed at."""

    l1_base_fee: int  # wei per L1 gas
    blob_base_fee: int  # wei per blob gas
    base_fee_scalar: int
    blob_base_fee_scalar: int
    l2_gas_price: int  # wei per L2 gas (base fee plus priority fee)

    def scaled(self) -> int:
        return 16 * self.l1_base_fee * self.base_fee_scalar + self.blob_base_fee * self.blob_base_fee_scalar

    def to_json(self) -> dict:
        return asdict(self)


# OP Mainnet's Ecotone scalars; an L1 base fee of 1 gwei, a blob base fee of 0.1 gwei and an L2 gas
# price of 0.001 gwei. scripts/costs.py takes other figures on its command line.
REFERENCE_L2 = OpFeeParams(
    l1_base_fee=10**9, blob_base_fee=10**8, base_fee_scalar=5227, blob_base_fee_scalar=1_014_213, l2_gas_price=10**6,
)


def fastlz_length(data: bytes) -> int:
    """The length of ``data`` compressed by FastLZ level 1 (Solady's ``flzCompress``)."""
    size = len(data)
    limit = size - 13 if size >= 13 else 0
    table = [0] * _HASH_TABLE
    anchor = 0
    out = 0
    i = 2
    while i < limit:
        # Find the next position whose three bytes were seen within the window.
        while True:
            triple = _triple(data, i)
            slot = _slot(triple)
            ref = table[slot]
            table[slot] = i
            distance = i - ref
            if i >= limit:
                break
            i += 1
            if distance < _MAX_DISTANCE and triple == _triple(data, ref):
                break
        if i >= limit:
            break
        i -= 1
        if i > anchor:
            out = _literal_cost(i - anchor, out)
        length = _match_length(data, ref + 3, i + 3, limit + 9)
        out = _match_cost(length, out)
        i += length
        for _ in range(2):
            table[_slot(_triple(data, i))] = i
            i += 1
        anchor = i
    return _literal_cost(size - anchor, out)


def _triple(data: bytes, at: int) -> int:
    return data[at] | (data[at + 1] << 8) | (data[at + 2] << 16)


def _slot(triple: int) -> int:
    return ((triple * 2654435769) >> 19) & (_HASH_TABLE - 1)


def _literal_cost(count: int, out: int) -> int:
    """A run of literals: one control byte per 32 literals (and one for the rest)."""
    out += 33 * (count // 32)
    rest = count % 32
    return out + rest + 1 if rest else out


def _match_length(data: bytes, p: int, q: int, end: int) -> int:
    # As the reference counts it: the first differing byte is included in the length.
    length = 0
    bound = end - q
    while length < bound:
        if data[p + length] != data[q + length]:
            bound = 0
        length += 1
    return length


def _match_cost(length: int, out: int) -> int:
    length -= 1
    out += 3 * (length // 262)
    return out + (3 if length % 262 >= 6 else 2)


def fjord_estimated_size(fastlz_size: int) -> int:
    """The compressed size the fee is charged for, in bytes scaled by 1e6."""
    return max(MIN_TRANSACTION_SIZE, COST_INTERCEPT + COST_FASTLZ_COEF * fastlz_size)


def calldata_gas(data: bytes) -> int:
    """What calldata costs in gas on Ethereum (EIP-2028: 4 a zero byte, 16 a non-zero byte)."""
    zeros = data.count(0)
    return 4 * zeros + 16 * (len(data) - zeros)


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
