"""The OP Stack's L1 data fee (registry.chain.l1fee): the FastLZ length and the Fjord fee against
the published reference vectors, the figures a network is configured with, and the figures read
from a GasPriceOracle at the OP Stack's predeploy address on a real ``anvil --optimism`` (which has
no predeploys: the tests put a contract there that answers as the oracle does, or lies; or, for
Isthmus's operator fee, which anvil has no mode for, a loopback proxy plays the oracle)."""

from __future__ import annotations

import random

import pytest

from registry.chain import connect
from registry.chain.abi import selector
from registry.chain.errors import ChainError, ConfigError
from registry.chain.l1fee import (
    GAS_PRICE_ORACLE,
    L1FeeParams,
    calldata_gas,
    configured_params,
    fastlz_length,
    fjord_estimated_size,
    forget_missing_oracles,
    l1_fee,
    l1_fee_params,
    oracle_params,
    parse_l1_fee_option,
)
from scripts.gas_snapshot_l2 import OptimismAnvil
from tests.rpc_support import OpStackOracle, RpcProxy

# A signed EIP-1559 contract call, with its FastLZ length (202) and its Fjord fee at scalars and
# prices of 1,000 (2,148 wei): the vectors op-geth and revm test their implementations with.
REFERENCE_TX = bytes.fromhex(
    "02f901550a758302df1483be21b88304743f94f80e51afb613d764fa61751affd3313c190a86bb870151bd62fd12adb8e41ef24f3f"
    "000000000000000000000000000000000000000000000000000000000000006e000000000000000000000000af88d065e77c8cc2239327"
    "c5edb3a432268e5831000000000000000000000000000000000000000000000000000000000003c1e5000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000a000000000"
    "000000000000000000000000000000000000000000000000000000148c89ed219d02f1a5be012c689b4f5b731827bebe0000000000000000"
    "00000000c001a033fd89cb37c31b2cba46b6466e040c61fc9b2a3675a7f5f493ebd5ad77c497f8a07cdf65680e238392693019b4092f6102"
    "22e71b7cec06449cb922b93b6a12744e"
)
THOUSANDS = L1FeeParams(l1_base_fee=1000, blob_base_fee=1000, base_fee_scalar=1000, blob_base_fee_scalar=1000)
OP_MAINNET = {"l1_base_fee": 10**9, "blob_base_fee": 10**8, "base_fee_scalar": 5227, "blob_base_fee_scalar": 1_014_213}


def test_fastlz_length_matches_the_reference_vectors():
    assert fastlz_length(b"") == 0
    assert fastlz_length(bytes.fromhex("facade")) == 4
    assert fastlz_length(bytes([1]) * 1000) == 21
    assert fastlz_length(bytes(1000)) == 21
    assert fastlz_length(REFERENCE_TX) == 202


def test_fastlz_length_grows_with_every_byte_of_data_that_never_repeats():
    data = bytes(range(256))
    lengths = [fastlz_length(data[:n]) for n in range(257)]
    assert all(a < b for a, b in zip(lengths, lengths[1:]))


def test_fastlz_length_of_random_data_is_its_literals_and_their_control_bytes():
    rng = random.Random(15)
    for size in (13, 32, 33, 500):
        data = rng.randbytes(size)
        assert size - size // 4 <= fastlz_length(data) <= size + (size + 31) // 32


def test_the_fjord_fee_matches_the_reference_vectors():
    assert fjord_estimated_size(202) == 126_387_400
    assert l1_fee(REFERENCE_TX, THOUSANDS) == 2148
    assert l1_fee(bytes.fromhex("facade"), THOUSANDS) == 1700  # under 100 bytes: charged as 100


def test_before_fjord_the_fee_follows_the_transactions_calldata_gas():
    ecotone = L1FeeParams(1000, 1000, 1000, 1000, fjord=False)
    assert l1_fee(REFERENCE_TX, ecotone) == calldata_gas(REFERENCE_TX) * THOUSANDS.scaled() // (16 * 10**6)


def test_a_network_entry_names_its_l1_fee_figures_and_a_malformed_one_is_refused_naming_the_fix():
    assert configured_params({}) is None
    assert configured_params({"l1_fee": OP_MAINNET}, "op") == L1FeeParams(10**9, 10**8, 5227, 1_014_213)
    assert configured_params({"l1_fee": {**OP_MAINNET, "fjord": False}}, "op").fjord is False
    for bad in ([1, 2, 3, 4], {**OP_MAINNET, "l1_base_fee": -1}, {**OP_MAINNET, "blob_base_fee": "1"},
                {**OP_MAINNET, "base_fee_scalar": 2**200}, {"l1_base_fee": 1}, {**OP_MAINNET, "extra": 1},
                {**OP_MAINNET, "fjord": "yes"}, {**OP_MAINNET, "blob_base_fee_scalar": True}):
        with pytest.raises(ConfigError, match="network 'op'.*elements config network add op .*--l1-fee"):
            configured_params({"l1_fee": bad}, "op")


def test_the_l1_fee_option_is_four_whole_numbers():
    assert parse_l1_fee_option("1000000000, 100000000,5227,1014213") == OP_MAINNET
    for bad in ("1,2,3", "1,2,3,4,5", "1,2,3,-4", "1,2,3,x", "1,2,3," + "9" * 40, ""):
        with pytest.raises(ConfigError, match="must be four whole numbers"):
            parse_l1_fee_option(bad)


def test_a_chain_without_the_oracle_has_no_l1_fee_unless_its_network_names_the_figures():
    chain = connect("memory")
    assert oracle_params(chain) is None and l1_fee_params(chain) is None
    chain.l1_fee = L1FeeParams(1, 2, 3, 4)
    assert l1_fee_params(chain) == L1FeeParams(1, 2, 3, 4)


def responder(answers: dict[str, int | None]) -> bytes:
    """Runtime bytecode answering each ``name()`` with its 32-byte word (reverting where the value
    is None, and on any other call): a GasPriceOracle's view of its figures, or a lying one."""
    code = bytearray(b"\x60\x00\x35\x60\xe0\x1c")  # PUSH1 0 CALLDATALOAD PUSH1 224 SHR: the selector
    jumps, bodies = [], []
    for name, value in answers.items():
        jumps.append((selector(f"{name}()"), len(bodies)))
        if value is None:
            bodies.append(b"\x5b\x60\x00\x80\xfd")  # JUMPDEST PUSH1 0 DUP1 REVERT
        else:
            bodies.append(b"\x5b\x7f" + value.to_bytes(32, "big") + b"\x60\x00\x52\x60\x20\x60\x00\xf3")
    dispatch_size = len(code) + 11 * len(jumps) + 5
    offsets, at = [], dispatch_size
    for body in bodies:
        offsets.append(at)
        at += len(body)
    for sel, index in jumps:  # DUP1 PUSH4 sel EQ PUSH2 dest JUMPI
        code += b"\x80\x63" + sel + b"\x14\x61" + offsets[index].to_bytes(2, "big") + b"\x57"
    code += b"\x60\x00\x80\xfd"  # PUSH1 0 DUP1 REVERT
    code += b"\x00"  # padding to the computed size (STOP, never reached)
    assert len(code) == dispatch_size
    return bytes(code) + b"".join(bodies)


FJORD_ORACLE = {"isFjord": 1, "isEcotone": 1, "l1BaseFee": 7 * 10**9, "blobBaseFee": 3, "baseFeeScalar": 1368,
                "blobBaseFeeScalar": 810_949}


@pytest.fixture(scope="module")
def op_anvil(anvil_binary, tmp_path_factory):
    """A fresh ``anvil --optimism`` of this module's own (the oracle put there stays out of other tests)."""
    with OptimismAnvil(binary=anvil_binary, log=tmp_path_factory.mktemp("op-anvil") / "anvil.log") as node:
        yield node


def put_oracle(chain, answers: dict[str, int | None] | None) -> None:
    code = "0x" + responder(answers).hex() if answers is not None else "0x"
    chain.request("anvil_setCode", [GAS_PRICE_ORACLE, code], "placing the oracle")


def test_anvil_in_optimism_mode_has_no_oracle_so_no_l1_fee_is_read(op_anvil):
    chain = op_anvil.connect()
    put_oracle(chain, None)
    assert oracle_params(chain) is None


def test_the_oracle_at_the_predeploy_address_gives_the_figures(op_anvil):
    chain = op_anvil.connect()
    put_oracle(chain, FJORD_ORACLE)
    try:
        assert oracle_params(chain) == L1FeeParams(7 * 10**9, 3, 1368, 810_949, fjord=True)
        put_oracle(chain, {**FJORD_ORACLE, "isFjord": 0})
        assert oracle_params(chain) == L1FeeParams(7 * 10**9, 3, 1368, 810_949, fjord=False)
        chain.l1_fee = L1FeeParams(1, 2, 3, 4)  # a network's configured figures come first
        assert l1_fee_params(chain) == L1FeeParams(1, 2, 3, 4)
    finally:
        put_oracle(chain, None)


def test_an_oracle_that_answers_nonsense_is_no_oracle_or_a_one_line_error(op_anvil):
    chain = op_anvil.connect()
    try:
        for lying in ({**FJORD_ORACLE, "isFjord": 2}, {**FJORD_ORACLE, "isFjord": 0, "isEcotone": 0}, {"isFjord": None}):
            put_oracle(chain, lying)
            assert oracle_params(chain) is None, lying
        for lying in ({**FJORD_ORACLE, "l1BaseFee": None}, {**FJORD_ORACLE, "blobBaseFeeScalar": 2**255}):
            put_oracle(chain, lying)
            with pytest.raises(ChainError, match="does not give its L1 fee figures; configure them with .*--l1-fee"):
                oracle_params(chain)
    finally:
        put_oracle(chain, None)


def test_the_operator_fee_is_the_constant_per_transaction_and_the_rate_per_million_gas_and_shown_only_on_isthmus():
    isthmus = L1FeeParams(1, 2, 3, 4, isthmus=True, operator_fee_constant=1000, operator_fee_per_million_gas=7_000_000)
    assert isthmus.operator_fee(2_000_000, 3) == 2 * 7_000_000 + 3 * 1000
    assert isthmus.operator_fee(1, 1) == 7 + 1000
    assert L1FeeParams(1, 2, 3, 4).operator_fee(10**9, 5) == 0
    assert "operator_fee_constant" not in L1FeeParams(1, 2, 3, 4).to_json()
    assert isthmus.to_json()["operator_fee_per_million_gas"] == 7_000_000


# anvil --optimism has no GasPriceOracle (nor an Isthmus mode): a loopback proxy in front of it plays
# the predeploy, answering getOperatorFee(gasUsed) from its argument as the real one does.
ISTHMUS_ORACLE = {**FJORD_ORACLE, "isIsthmus": 1}


def test_an_isthmus_oracle_gives_its_operator_fee_from_get_operator_fee_under_either_formula(op_anvil):
    with RpcProxy(op_anvil.url, OpStackOracle(ISTHMUS_ORACLE, operator=(2_500, 40_000))) as proxy:
        params = oracle_params(connect(proxy.url))
        assert params == L1FeeParams(7 * 10**9, 3, 1368, 810_949, isthmus=True, operator_fee_constant=40_000,
                                     operator_fee_per_million_gas=2_500)
        assert params.operator_fee(21_000, 1) == 21_000 * 2_500 // 10**6 + 40_000  # what getOperatorFee(21000) answers
        assert proxy.lie.asked["getOperatorFee"] == 2
    with RpcProxy(op_anvil.url, OpStackOracle(ISTHMUS_ORACLE, operator=(2_500, 40_000), formula="jovian")) as proxy:
        params = oracle_params(connect(proxy.url))
        assert params.operator_fee_per_million_gas == 2_500 * 100 * 10**6
        assert params.operator_fee(21_000, 1) == 21_000 * 2_500 * 100 + 40_000


def test_an_oracle_from_before_isthmus_or_not_yet_isthmus_charges_no_operator_fee(op_anvil):
    for figures in (FJORD_ORACLE, {**FJORD_ORACLE, "isIsthmus": 0}):  # no isIsthmus() at all: the call reverts
        with RpcProxy(op_anvil.url, OpStackOracle(figures, operator=(2_500, 40_000))) as proxy:
            params = oracle_params(connect(proxy.url))
            assert params == L1FeeParams(7 * 10**9, 3, 1368, 810_949) and not params.isthmus
            assert proxy.lie.asked["getOperatorFee"] == 0


def test_an_isthmus_oracle_that_answers_nonsense_about_its_operator_fee_is_a_one_line_error(op_anvil):
    for lie in (OpStackOracle({**FJORD_ORACLE, "isIsthmus": 2}, operator=(1, 1)),
                OpStackOracle(ISTHMUS_ORACLE),  # says Isthmus, has no getOperatorFee
                OpStackOracle(ISTHMUS_ORACLE, operator=(1, 5_000), formula="lying"),  # less at more gas
                OpStackOracle(ISTHMUS_ORACLE, operator=(0, 2**200))):
        with RpcProxy(op_anvil.url, lie) as proxy:
            with pytest.raises(ChainError, match="does not give its L1 fee figures .*; configure them with .*--l1-fee"):
                oracle_params(connect(proxy.url))


def test_a_chain_without_the_oracle_is_asked_once_per_process_and_an_ethereum_network_never(op_anvil):
    forget_missing_oracles()
    with RpcProxy(op_anvil.url) as proxy:
        for _ in range(3):
            assert l1_fee_params(connect(proxy.url)) is None
        assert proxy.calls["eth_call"] == 1
    with RpcProxy(op_anvil.url, OpStackOracle(FJORD_ORACLE)) as proxy:  # an OP-stack chain: its figures, every time
        assert l1_fee_params(connect(proxy.url)) == l1_fee_params(connect(proxy.url)) == L1FeeParams(7 * 10**9, 3, 1368, 810_949)
        assert proxy.lie.asked["isFjord"] == 2
        mainnet = connect(proxy.url)
        mainnet.chain_id = 1  # what Ethereum's mainnet reports: not asked, though an oracle would answer here
        assert l1_fee_params(mainnet) is None and proxy.lie.asked["isFjord"] == 2
