"""CIDs: parsing, encodings, multihash, varints — against values Kubo prints."""

from __future__ import annotations

import hashlib

import pytest

from registry.errors import InputError
from registry.storage import cid as cid_module
from registry.storage.cid import (
    CID,
    DAG_PB,
    RAW,
    SHA2_256,
    base58btc_decode,
    base58btc_encode,
    decode_varint,
    encode_varint,
)
from registry.storage.errors import BlockIntegrityError, CIDError

# "hello world" as Kubo adds it (kubo test/cli/add_test.go).
HELLO_V0 = "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
HELLO_V1_RAW = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
HELLO_V1_PB = "bafybeihykld7uyxzogax6vgyvag42y7464eywpf55gxi5qpoisibh3c5wa"
EMPTY_RAW = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def test_public_names_are_exported():
    for name in cid_module.__all__:
        assert hasattr(cid_module, name)


def test_raw_cid_of_hello_world_is_kubos():
    cid = CID.of(b"hello world")
    assert str(cid) == HELLO_V1_RAW
    assert cid.version == 1 and cid.codec == RAW and cid.hash_code == SHA2_256
    assert cid.digest == hashlib.sha256(b"hello world").digest()
    assert cid.multihash == b"\x12\x20" + cid.digest
    assert bytes(cid) == b"\x01\x55" + cid.multihash


def test_cidv0_parses_and_prints_back_identically():
    cid = CID.parse(HELLO_V0)
    assert cid.version == 0 and cid.codec == DAG_PB
    assert str(cid) == HELLO_V0
    assert bytes(cid) == cid.multihash and len(bytes(cid)) == 34
    assert CID.parse(bytes(cid)) == cid


def test_cidv0_and_its_v1_form_share_the_multihash():
    v0 = CID.parse(HELLO_V0)
    v1 = v0.to_v1()
    assert v1.version == 1 and v1.codec == DAG_PB and v1.multihash == v0.multihash
    assert str(v1).startswith("bafybei")
    assert v1.to_v0() == v0
    assert v0 != v1


@pytest.mark.parametrize("text", [HELLO_V1_RAW, HELLO_V1_PB, EMPTY_RAW])
def test_cidv1_round_trips_through_bytes_and_text(text):
    cid = CID.parse(text)
    assert str(cid) == text
    assert CID.parse(bytes(cid)) == cid
    assert CID.parse(cid) is cid
    assert hash(CID.parse(text)) == hash(cid)


def test_other_multibases_parse_to_the_same_cid():
    cid = CID.parse(HELLO_V1_RAW)
    assert CID.parse("B" + str(cid)[1:].upper()) == cid
    assert CID.parse("z" + base58btc_encode(bytes(cid))) == cid
    assert CID.parse("f" + bytes(cid).hex()) == cid
    assert CID.parse(f"/ipfs/{cid}") == cid


def test_empty_raw_block_has_the_well_known_cid():
    assert str(CID.of(b"")) == EMPTY_RAW


def test_check_rejects_other_bytes_with_the_cid_in_the_error():
    cid = CID.of(b"hello world")
    cid.check(b"hello world")
    with pytest.raises(BlockIntegrityError) as info:
        cid.check(b"hello world!", "gateway x")
    assert info.value.cid == cid
    assert "gateway x" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_identity_cids_inline_their_block():
    cid = CID(1, RAW, b"\x00\x03abc")
    assert cid.matches(b"abc") and not cid.matches(b"abd")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty CID"),
        ("nope", "unknown multibase prefix"),
        ("Qm" + "0" * 44, "not a CID"),
        ("b!!!!", "bad 'b' multibase"),
        ("f0255", "not a CID"),  # version 2
        ("f" + "1220" + "00" * 32, "multibase CIDv0"),
    ],
)
def test_malformed_cids_are_refused_with_a_clear_error(text, fragment):
    with pytest.raises(CIDError) as info:
        CID.parse(text)
    assert fragment in str(info.value)
    assert isinstance(info.value, InputError)


def test_truncated_multihash_is_refused():
    raw = bytes(CID.parse(HELLO_V1_RAW))[:-1]
    with pytest.raises(CIDError, match="digest bytes"):
        CID.parse(raw)


def test_short_digests_are_refused_as_unsafe():
    with pytest.raises(CIDError, match="unsafe"):
        CID(1, RAW, b"\x12\x04abcd")


def test_cidv0_must_be_dag_pb_sha256():
    with pytest.raises(CIDError, match="CIDv0"):
        CID(0, RAW, b"\x12\x20" + bytes(32))


@pytest.mark.parametrize(
    "multihash, fragment",
    [
        (b"\x1a\x1c" + bytes(28), "keccak-224 is not accepted: go-multihash registers no hasher"),
        (b"\xd5\x01\x14" + bytes(20), "md5 is not accepted: boxo's allowlist"),
        (b"\x80\x06\x20" + bytes(32), "0x300 is unknown"),
    ],
)
def test_hash_functions_kubo_refuses_are_parsed_but_cannot_be_verified(multihash, fragment):
    cid = CID(1, RAW, multihash)
    with pytest.raises(CIDError, match=fragment):
        cid.matches(b"x")


def test_read_from_reads_a_cid_followed_by_data():
    cid = CID.of(b"block")
    parsed, end = CID.read_from(bytes(cid) + b"block")
    assert parsed == cid and end == len(bytes(cid))
    v0 = CID.parse(HELLO_V0)
    parsed, end = CID.read_from(bytes(v0) + b"rest")
    assert parsed == v0 and end == 34


@pytest.mark.parametrize("value, encoded", [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02"), (2**63, b"\x80" * 9 + b"\x01")])
def test_varints_encode_as_unsigned_leb128(value, encoded):
    if len(encoded) <= 9:
        assert encode_varint(value) == encoded
        assert decode_varint(encoded) == (value, len(encoded))
    else:
        with pytest.raises(ValueError, match="longer than 9"):
            decode_varint(encoded)


def test_varints_must_be_minimal():
    with pytest.raises(ValueError, match="minimally"):
        decode_varint(b"\x80\x00")
    with pytest.raises(ValueError, match="truncated"):
        decode_varint(b"\x80")


def test_base58_keeps_leading_zero_bytes():
    data = b"\0\0\x01\x02"
    assert base58btc_encode(data).startswith("11")
    assert base58btc_decode(base58btc_encode(data)) == data
