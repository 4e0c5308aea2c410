"""The L1 data fee an OP-stack L2 charges a transaction, computed from its signed bytes.

On an OP-stack chain every transaction pays, besides its execution gas, an L1 data fee for
posting its bytes to Ethereum. The cost function in force since the Fjord upgrade (Ecotone's
scalars, a FastLZ size estimate; Holocene, Isthmus and Jovian left it as it is)::

    fastlzSize    = length of the signed transaction (EIP-2718 bytes) compressed with FastLZ
    estimatedSize = max(100e6, -42_585_600 + 836_500 * fastlzSize)          (bytes x 1e6)
    l1FeeScaled   = 16 * l1BaseFee * baseFeeScalar + blobBaseFee * blobBaseFeeScalar
    l1Fee         = estimatedSize * l1FeeScaled / 1e12                       (wei, rounded down)

Before Fjord (Ecotone) the size was the transaction's calldata gas (4 a zero byte, 16 another)
divided by 16, and ``l1Fee = calldataGas * l1FeeScaled / 16e6``.

The FastLZ length follows the reference the OP Stack names (Solady's ``flzCompress``, as op-geth's
``FlzCompressLen`` and revm's ``flz_compress_len`` compute it); ``tests/test_chain_l1fee.py`` checks
it against their published vectors.

Isthmus added an operator fee, charged on the execution gas (``gasUsed * operatorFeeScalar / 1e6 +
operatorFeeConstant``; Jovian made it ``gasUsed * operatorFeeScalar * 100 + operatorFeeConstant``),
zero unless a chain's operator sets it. Where the oracle says ``isIsthmus()``, its
``getOperatorFee(gasUsed)`` is asked at 0 and at a million gas: the constant, and the fee per million
gas, whichever formula is in force (:meth:`L1FeeParams.operator_fee`). A network configured with
``--l1-fee`` has none.

Where the figures come from (:func:`l1_fee_params`): a network configured with them
(``elements config network add NAME ... --l1-fee L1_BASE_FEE,BLOB_BASE_FEE,BASE_FEE_SCALAR,BLOB_BASE_FEE_SCALAR``,
which ``anvil --optimism`` needs: it has no predeploys), else the chain's ``GasPriceOracle``
predeploy at ``0x420000000000000000000000000000000000000F``, asked for them; a chain without it is
not an OP-stack chain and has no L1 fee. That a chain has no oracle is remembered for the process
(per endpoint and chain id: a publish plan asks once, not every time), and Ethereum's own networks
(:data:`L1_CHAIN_IDS`) are not asked at all. Anvil's ``--optimism`` mode cannot be told apart by its
chain id (31337 in both modes): only the code at the predeploy address says.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from .abi import decode, selector
from ..errors import ChainError, ConfigError

__all__ = [
    "GAS_PRICE_ORACLE",
    "L1FeeParams",
    "L1_CHAIN_IDS",
    "calldata_gas",
    "configured_params",
    "fastlz_length",
    "fjord_estimated_size",
    "forget_missing_oracles",
    "l1_fee",
    "l1_fee_params",
    "oracle_params",
    "parse_l1_fee_option",
]

#: The OP Stack's GasPriceOracle predeploy (the same address on every OP-stack chain).
GAS_PRICE_ORACLE = "0x420000000000000000000000000000000000000F"
#: Ethereum's mainnet and test networks: layer 1, no GasPriceOracle, so no call to look for one.
L1_CHAIN_IDS = frozenset({1, 11155111, 17000, 560048})  # mainnet, Sepolia, Holesky, Hoodi

# Fjord constants (op-geth core/types/rollup_cost.go), scaled by 1e6.
COST_INTERCEPT = -42_585_600
COST_FASTLZ_COEF = 836_500
MIN_TRANSACTION_SIZE = 100 * 10**6

_HASH_TABLE = 8192
_MAX_DISTANCE = 8192
# A fee figure above this (wei per gas, or a scalar) is not a price but a lie or a typo.
_MAX_FIGURE = 2**96
_FIELDS = ("l1_base_fee", "blob_base_fee", "base_fee_scalar", "blob_base_fee_scalar")
# The gas the oracle's getOperatorFee is asked at for the slope: its fee per million gas is exact
# under both the Isthmus (scalar / 1e6) and the Jovian (scalar * 100) formula.
_MILLION_GAS = 10**6
# (endpoints, chain id) of the chains this process found without an oracle.
_NO_ORACLE: set[tuple[tuple[str, ...], int]] = set()


@dataclass(frozen=True)
class L1FeeParams:
    """The L1 prices and scalars an OP-stack chain charges its L1 data fee at (what its L1Block
    predeploy holds), and whether the Fjord cost function applies (else Ecotone's)."""

    l1_base_fee: int  # wei per L1 gas
    blob_base_fee: int  # wei per blob gas
    base_fee_scalar: int
    blob_base_fee_scalar: int
    fjord: bool = True
    #: Isthmus's operator fee: whether the chain charges one, its constant (wei per transaction)
    #: and its rate (wei per million gas used).
    isthmus: bool = False
    operator_fee_constant: int = 0
    operator_fee_per_million_gas: int = 0

    def scaled(self) -> int:
        return 16 * self.l1_base_fee * self.base_fee_scalar + self.blob_base_fee * self.blob_base_fee_scalar

    def operator_fee(self, gas: int, transactions: int) -> int:
        """The operator fee (wei) of ``transactions`` transactions using ``gas`` in all: at most a
        wei a transaction above the chain's, which rounds each down."""
        if not self.isthmus:
            return 0
        return gas * self.operator_fee_per_million_gas // _MILLION_GAS + transactions * self.operator_fee_constant

    def to_json(self) -> dict[str, Any]:
        figures = asdict(self)
        if not self.isthmus:  # a chain before Isthmus has no operator fee to show
            for name in ("isthmus", "operator_fee_constant", "operator_fee_per_million_gas"):
                del figures[name]
        return figures


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


def l1_fee(signed: bytes, params: L1FeeParams) -> int:
    """The L1 data fee in wei of a signed transaction (its EIP-2718 bytes) at ``params``."""
    if params.fjord:
        return fjord_estimated_size(fastlz_length(signed)) * params.scaled() // 10**12
    return calldata_gas(signed) * params.scaled() // (16 * 10**6)


def configured_params(entry: dict[str, Any], network: str | None = None) -> L1FeeParams | None:
    """The L1 fee figures a network's config entry names (its ``l1_fee``), or None.

    Raises:
        ConfigError: the entry's ``l1_fee`` is not four whole numbers in range.
    """
    figures = entry.get("l1_fee")
    if figures is None:
        return None
    fix = (f"set them again with `elements config network add {network or 'NAME'} ... --l1-fee "
           "L1_BASE_FEE,BLOB_BASE_FEE,BASE_FEE_SCALAR,BLOB_BASE_FEE_SCALAR`")
    if not isinstance(figures, dict) or set(figures) - {*_FIELDS, "fjord"} or not set(_FIELDS) <= set(figures):
        raise ConfigError(f"network {network!r}: l1_fee must name {', '.join(_FIELDS)}; {fix}")
    values = [figures[k] for k in _FIELDS]
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < _MAX_FIGURE for v in values):
        raise ConfigError(f"network {network!r}: every l1_fee figure must be a whole number from 0 to 2**96; {fix}")
    fjord = figures.get("fjord", True)
    if not isinstance(fjord, bool):
        raise ConfigError(f"network {network!r}: l1_fee's fjord must be true or false; {fix}")
    return L1FeeParams(values[0], values[1], values[2], values[3], fjord=fjord)


def parse_l1_fee_option(text: str) -> dict[str, int]:
    """``--l1-fee L1_BASE_FEE,BLOB_BASE_FEE,BASE_FEE_SCALAR,BLOB_BASE_FEE_SCALAR`` as a config entry's
    ``l1_fee``.

    Raises:
        ConfigError: not four whole numbers in range.
    """
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4 or not all(p.isdigit() and len(p) <= 30 for p in parts) or not all(int(p) < _MAX_FIGURE for p in parts):
        raise ConfigError(
            f"--l1-fee {text!r} must be four whole numbers L1_BASE_FEE,BLOB_BASE_FEE,BASE_FEE_SCALAR,BLOB_BASE_FEE_SCALAR "
            "(wei, wei, and the chain's two scalars), e.g. 1000000000,100000000,5227,1014213"
        )
    return dict(zip(_FIELDS, map(int, parts)))


def _oracle_uint(chain: Any, name: str, argument: int | None = None) -> int | None:
    """``GasPriceOracle.name()`` (or ``name(argument)``, a uint256) as a number, or None where
    nothing sensible answers."""
    signature = f"{name}()" if argument is None else f"{name}(uint256)"
    data = selector(signature) + (b"" if argument is None else argument.to_bytes(32, "big"))
    try:
        raw = chain.eth_call(GAS_PRICE_ORACLE, data, what=f"reading GasPriceOracle.{signature}")
        [value] = decode(["uint256"], bytes(raw), what=f"the answer to GasPriceOracle.{signature}", exact=True)
    except (ChainError, ValueError):  # no contract there (an empty answer), a revert, or bytes of another shape
        return None
    return int(value)


def oracle_params(chain: Any) -> L1FeeParams | None:
    """The L1 fee figures the chain's GasPriceOracle predeploy answers, or None where it has none
    (not an OP-stack chain; or one from before Ecotone, whose fee this does not compute).

    Raises:
        ChainError: the oracle says it is there but does not give its figures (configure them).
        RpcUnavailableError: the node cannot be reached.
    """
    fjord = _oracle_uint(chain, "isFjord")
    if fjord not in (0, 1) or (fjord == 0 and _oracle_uint(chain, "isEcotone") != 1):
        return None
    figures = [_oracle_uint(chain, name) for name in ("l1BaseFee", "blobBaseFee", "baseFeeScalar", "blobBaseFeeScalar")]
    known = [v for v in figures if v is not None and v < _MAX_FIGURE]
    if len(known) != 4:
        raise _unreadable(chain, "its L1 fee figures")
    params = L1FeeParams(known[0], known[1], known[2], known[3], fjord=fjord == 1)
    return _with_operator_fee(chain, params) if params.fjord else params


def _with_operator_fee(chain: Any, params: L1FeeParams) -> L1FeeParams:
    """``params`` with the operator fee of an Isthmus chain (an oracle from before Isthmus has no
    ``isIsthmus``: its call reverts, and the chain charges none)."""
    isthmus = _oracle_uint(chain, "isIsthmus")
    if isthmus in (None, 0):
        return params
    if isthmus != 1:
        raise _unreadable(chain, "its L1 fee figures (isIsthmus answers neither true nor false)")
    constant = _oracle_uint(chain, "getOperatorFee", 0)
    at_million = _oracle_uint(chain, "getOperatorFee", _MILLION_GAS)
    if constant is None or at_million is None or not 0 <= constant <= at_million < _MAX_FIGURE:
        raise _unreadable(chain, "its L1 fee figures (getOperatorFee answers nonsense)")
    return replace(params, isthmus=True, operator_fee_constant=constant, operator_fee_per_million_gas=at_million - constant)


def _unreadable(chain: Any, what: str) -> ChainError:
    return ChainError(
        f"{chain.name} has an OP-stack GasPriceOracle that does not give {what}; configure them with "
        "`elements config network add NAME ... --l1-fee L1_BASE_FEE,BLOB_BASE_FEE,BASE_FEE_SCALAR,BLOB_BASE_FEE_SCALAR`"
    )


def forget_missing_oracles() -> None:
    """Ask every chain again whether it has the oracle (one found without it is remembered for the
    process: a node restarted as another chain on the same address, or a test's own)."""
    _NO_ORACLE.clear()


def l1_fee_params(chain: Any) -> L1FeeParams | None:
    """The L1 fee figures of ``chain``: those its network is configured with (``chain.l1_fee``),
    else its GasPriceOracle's; None where it is not an OP-stack chain (an Ethereum network, or a
    chain this process found without the oracle before: asked once per endpoint and chain id)."""
    configured = getattr(chain, "l1_fee", None)
    if isinstance(configured, L1FeeParams):
        return configured
    if chain.chain_id in L1_CHAIN_IDS:
        return None
    key = (tuple(chain.endpoints), int(chain.chain_id))
    if key in _NO_ORACLE:
        return None
    params = oracle_params(chain)
    if params is None:
        _NO_ORACLE.add(key)
    return params
