"""The OP Stack's L1 data fee (scripts/op_fees.py) agrees with the published reference vectors."""

from __future__ import annotations

from scripts.op_fees import OpFeeParams, calldata_gas, fjord_estimated_size, l1_data
from tests.test_chain_l1fee import REFERENCE_TX  # the vectors op-geth and revm test with

THOUSANDS = OpFeeParams(l1_base_fee=1000, blob_base_fee=1000, base_fee_scalar=1000, blob_base_fee_scalar=1000, l2_gas_price=0)


def test_the_fjord_fee_matches_the_reference_vectors():
    assert l1_data(REFERENCE_TX, b"").l1_fee(THOUSANDS) == 2148
    assert fjord_estimated_size(202) == 126_387_400


def test_a_small_transaction_is_charged_as_one_hundred_bytes():
    small = l1_data(bytes.fromhex("facade"), b"")
    assert small.estimated_size == 100 * 10**6
    assert small.l1_fee(THOUSANDS) == 1700
    assert small.l1_gas() == 1600


def test_l1_data_counts_the_calldata_zero_and_non_zero_bytes():
    data = l1_data(REFERENCE_TX, bytes.fromhex("00ff0000ab"))
    assert (data.calldata_bytes, data.calldata_zero_bytes, data.calldata_nonzero_bytes) == (5, 3, 2)
    assert data.signed_bytes == len(REFERENCE_TX)


def test_calldata_gas_is_four_a_zero_byte_and_sixteen_a_non_zero_byte():
    assert calldata_gas(bytes.fromhex("00ff0000ab")) == 3 * 4 + 2 * 16
