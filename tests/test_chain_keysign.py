"""The hand-built signer (registry.chain.keysign): the same address and the same signed bytes as
eth-account (the reference) for any key, nonce, fee, value and calldata; anything else goes to
eth-account itself."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.chain.eth_account_import import load_eth_account
from registry.chain.keysign import SECP256K1_ORDER, KeyAccount, public_key, rlp_encode, sign_hash
from tests.lanes import examples

Account = load_eth_account().Account

keys = st.integers(1, SECP256K1_ORDER - 1).map(lambda k: k.to_bytes(32, "big"))
uint = st.one_of(st.just(0), st.integers(0, 2**8), st.integers(0, 2**64), st.integers(0, 2**256 - 1))
calldata = st.one_of(st.binary(max_size=80), st.binary(min_size=50, max_size=60), st.binary(min_size=1000, max_size=5000))


@st.composite
def transactions(draw):
    tip = draw(st.one_of(st.just(0), st.integers(0, 2**64)))
    tx = {
        "chainId": draw(st.one_of(st.sampled_from([1, 10, 8453, 31337, 11155111]), st.integers(1, 2**64))),
        "nonce": draw(st.integers(0, 2**64 - 1)),
        "gas": draw(st.integers(21_000, 2**64)),
        "to": Account.from_key(draw(keys)).address,
        "value": draw(uint),
        "data": draw(calldata),
        "maxPriorityFeePerGas": tip,
        "maxFeePerGas": tip + draw(st.integers(0, 2**128)),
    }
    if draw(st.booleans()):
        tx["type"] = 2
    return tx


def same_signed(mine, reference) -> None:
    assert bytes(mine.raw_transaction) == bytes(reference.raw_transaction)
    assert bytes(mine.hash) == bytes(reference.hash)
    assert (mine.r, mine.s, mine.v) == (reference.r, reference.s, reference.v)


@settings(max_examples=examples(300), deadline=None)
@given(key=keys, tx=transactions(), with_from=st.booleans())
def test_a_type_2_transaction_is_signed_byte_for_byte_as_eth_account_signs_it(key, tx, with_from):
    mine, reference = KeyAccount(key), Account.from_key(key)
    assert mine.address == reference.address
    if with_from:
        tx["from"] = mine.address
    same_signed(mine.sign_transaction(dict(tx)), reference.sign_transaction(dict(tx)))


@settings(max_examples=examples(200), deadline=None)
@given(key=keys, message_hash=st.binary(min_size=32, max_size=32))
def test_a_hash_is_signed_with_eth_keys_nonce_and_low_s(key, message_hash):
    parity, r, s = sign_hash(message_hash, key)
    reference = Account.from_key(key).unsafe_sign_hash(message_hash)
    assert (parity, r, s) == (reference.v - 27, reference.r, reference.s)
    assert 2 * s < SECP256K1_ORDER


@pytest.mark.parametrize("secret", [1, 2, 3, 2**128 + 1, SECP256K1_ORDER - 2, SECP256K1_ORDER - 1])
def test_the_edges_of_the_key_range_give_eth_accounts_address_and_public_key(secret):
    key = secret.to_bytes(32, "big")
    reference = Account.from_key(key)
    assert KeyAccount(key).address == reference.address
    assert public_key(secret) == bytes(reference._key_obj.public_key.to_bytes())


@pytest.mark.parametrize("secret", [0, SECP256K1_ORDER, 2**256 - 1])
def test_a_key_outside_one_to_n_minus_one_is_refused(secret):
    with pytest.raises(ValueError):
        KeyAccount(secret.to_bytes(32, "big"))


def test_the_signed_transaction_the_registry_sends_decodes_to_its_fields_and_sender():
    key = (0x4C).to_bytes(32, "big")
    account = KeyAccount(key)
    tx = {"from": account.address, "chainId": 31337, "value": 0, "to": account.address, "data": b"\x12\x34", "gas": 90_000,
          "maxFeePerGas": 2 * 10**9 + 1, "maxPriorityFeePerGas": 10**9, "nonce": 7}
    signed = account.sign_transaction(tx)
    from eth_account.typed_transactions import TypedTransaction
    from hexbytes import HexBytes

    decoded = TypedTransaction.from_bytes(HexBytes(signed.raw_transaction)).as_dict()
    assert (decoded["nonce"], decoded["gas"], decoded["chainId"], bytes(decoded["data"])) == (7, 90_000, 31337, b"\x12\x34")
    assert Account.recover_transaction(signed.raw_transaction) == account.address


def test_transactions_of_another_shape_are_signed_by_eth_account():
    key = (0x4D).to_bytes(32, "big")
    mine, reference = KeyAccount(key), Account.from_key(key)
    legacy = {"chainId": 1, "nonce": 0, "gas": 21_000, "gasPrice": 10**9, "to": reference.address, "value": 1, "data": b""}
    same_signed(mine.sign_transaction(dict(legacy)), reference.sign_transaction(dict(legacy)))
    listed = {"chainId": 1, "nonce": 1, "gas": 50_000, "maxFeePerGas": 3, "maxPriorityFeePerGas": 1, "to": reference.address,
              "value": 0, "data": b"", "accessList": [{"address": reference.address, "storageKeys": ["0x" + "00" * 32]}]}
    same_signed(mine.sign_transaction(dict(listed)), reference.sign_transaction(dict(listed)))


@pytest.mark.parametrize("change", [
    {"from": "0x" + "11" * 20},                     # another account: eth-account's own refusal
    {"to": "0x" + "ab" * 20},                       # a lower-case address, which eth-account refuses
    {"maxPriorityFeePerGas": 10, "maxFeePerGas": 5},
    {"nonce": -1},
    {"value": 2**256},
])
def test_what_eth_account_refuses_is_refused_by_eth_account(change):
    key = (0x4E).to_bytes(32, "big")
    mine, reference = KeyAccount(key), Account.from_key(key)
    tx = {"chainId": 1, "nonce": 0, "gas": 21_000, "maxFeePerGas": 5, "maxPriorityFeePerGas": 1, "to": reference.address,
          "value": 0, "data": b"", **change}
    try:
        expected = reference.sign_transaction(dict(tx))
    except Exception as refusal:
        with pytest.raises(type(refusal)):
            mine.sign_transaction(dict(tx))
    else:
        same_signed(mine.sign_transaction(dict(tx)), expected)


def test_everything_else_a_local_account_offers_comes_from_eth_account_with_the_same_key():
    key = (0x4F).to_bytes(32, "big")
    mine, reference = KeyAccount(key), Account.from_key(key)
    message = load_eth_account().messages.encode_defunct(text="elements")
    assert mine.sign_message(message).signature == reference.sign_message(message).signature
    assert bytes(mine.key) == bytes(reference.key)
    assert key.hex() not in repr(mine) and mine.address in repr(mine)


@pytest.mark.parametrize(("item", "encoded"), [
    (b"", "80"), (b"\x00", "00"), (b"\x7f", "7f"), (b"\x80", "8180"), (b"dog", "83646f67"), (0, "80"), (15, "0f"),
    (1024, "820400"), ([], "c0"), ([b"cat", b"dog"], "c88363617483646f67"), ([[], [[]], [[], [[]]]], "c7c0c1c0c3c0c1c0"),
    (b"Lorem ipsum dolor sit amet, consectetur adipisicing elit",
     "b8384c6f72656d20697073756d20646f6c6f722073697420616d65742c20636f6e7365637465747572206164697069736963696e6720656c6974"),
])
def test_rlp_encodes_the_examples_of_its_specification(item, encoded):
    assert rlp_encode(item).hex() == encoded
