"""The in-house ABI decoder (registry.chain.abi): what the registry's views and events return, from
a node that may lie. Valid encodings decode as eth-abi decodes them; truncated words, offsets out
of range, huge array lengths, values wider than their type, dirty padding and bad UTF-8 are
refused with one AbiDecodeError, before anything is allocated."""

from __future__ import annotations

import os

import pytest
from eth_abi import decode as eth_abi_decode
from eth_abi import encode as eth_abi_encode
from eth_utils import keccak as eth_keccak
from eth_utils import to_checksum_address

from registry.chain.abi import AbiDecodeError, checksum_address, decode, encode, encode_call, is_address, keccak, selector
from registry.errors import ElementsError

WORD = 32
LICENCES = "(string,uint8)[]"
STATES = "(address,uint32,uint40,uint8,uint8,uint8,bool,uint8,uint40)[]"


def word(value: int) -> bytes:
    return value.to_bytes(WORD, "big")


def refused(types, data) -> str:
    with pytest.raises(AbiDecodeError) as info:
        decode(types, data, what="the answer")
    message = str(info.value)
    assert isinstance(info.value, ElementsError) and isinstance(info.value, ValueError)
    assert "\n" not in message and message.startswith("the answer does not decode: ")
    return message


def test_keccak_and_checksums_match_eth_utils():
    for size in (0, 3, 135, 136, 137, 272, 200_000):  # around the 136-byte rate, and many blocks
        data = os.urandom(size)
        assert keccak(data) == eth_keccak(data)
    assert keccak(text="records(bytes32[])")[:4] == selector("records(bytes32[])") == bytes.fromhex("4a2eb672")
    for _ in range(20):
        raw = os.urandom(20)
        assert checksum_address(raw) == checksum_address("0x" + raw.hex()) == to_checksum_address(raw)
        assert is_address(checksum_address(raw)) and is_address("0x" + raw.hex())
    good = checksum_address(bytes(range(20)))
    bad_case = good[:2] + "".join(c.swapcase() if c.isalpha() else c for c in good[2:6]) + good[6:]
    assert not is_address(bad_case) or bad_case == good
    assert not is_address("0x1234") and not is_address("0x" + "zz" * 20)


@pytest.mark.parametrize("types, values", [
    ([LICENCES], [[("MIT", 3), ("Apache-2.0", 7), ("", 0), ("é" * 40, 255)]]),
    ([STATES], [[("0x" + "ab" * 20, 5, 2**40 - 1, 1, 0x55, 127, True, 3, 70)] * 3]),
    (["bytes32[]", "string", "uint256"], [[b"\x01" * 32] * 4, "héllo" * 20, 2**256 - 1]),
    (["uint8", "bytes32", "uint32", "uint8", "bytes32[]"], [0x55, b"\x02" * 32, 9, 1, [b"\x03" * 32] * 3]),
    (["bytes32", "uint40", "bool"], [b"\x04" * 32, 12345, False]),
    (["string[]", "(bytes,uint8[])[2]", "int16"], [["a", "bb", ""], [(b"xyz", [1, 2]), (b"", [])], -300]),
])
def test_valid_encodings_decode_and_encode_as_eth_abi_does(types, values):
    encoded = eth_abi_encode(types, values)
    assert encode(types, values) == encoded
    ours, theirs = decode(types, encoded), eth_abi_decode(types, encoded)
    assert repr(ours).lower() == repr(theirs).lower()  # addresses: checksummed in both


def test_calldata_is_the_selector_then_the_arguments():
    assert encode_call("licenseIdOf", ["string", "uint8"], ["MIT", 3]) == selector("licenseIdOf(string,uint8)") + eth_abi_encode(["string", "uint8"], ["MIT", 3])


def test_a_truncated_word_is_refused():
    encoded = eth_abi_encode(["uint256", "bytes32"], [1, b"\x05" * 32])
    assert "truncated" in refused(["uint256", "bytes32"], encoded[:-1])
    states = eth_abi_encode([STATES], [[("0x" + "ab" * 20, 1, 2, 0, 0x55, 0, False, 0, 2)]])
    assert "more than its 256 bytes can hold" in refused([STATES], states[:-32])  # a row one word short
    licences = eth_abi_encode([LICENCES], [[("MIT", 3)]])
    assert "truncated" in refused([LICENCES], licences[: 5 * WORD + 16])  # cut inside the string's length word


def test_an_offset_beyond_the_answer_is_refused():
    assert "offset" in refused(["string"], word(2**64) + word(3) + b"abc".ljust(32, b"\0"))
    assert "offset" in refused([LICENCES], word(2**255))
    assert "offset" in refused(["bytes32[]"], word(33) + word(0))  # not on a word boundary


def test_a_huge_array_length_is_refused_without_allocating_it():
    for length in (2**255, 2**64, 10**6):
        assert "claims" in refused(["bytes32[]"], word(32) + word(length) + bytes(64))
        assert "claims" in refused([STATES], word(32) + word(length) + bytes(9 * WORD))
        assert "claims" in refused([LICENCES], word(32) + word(length) + word(32))


def test_a_string_longer_than_what_follows_it_is_refused():
    assert "does not fit" in refused(["string"], word(32) + word(2**200) + b"abc".ljust(32, b"\0"))
    assert "padding" in refused(["string"], word(32) + word(40) + b"x" * 40)  # no room for its padding


def test_values_wider_than_their_type_are_refused():
    assert "wider than 8 bits" in refused(["uint8"], word(256))
    assert "wider than 40 bits" in refused(["uint40"], word(2**40))
    assert "bits set above" in refused(["address"], word(2**160))
    assert "a bool holds" in refused(["bool"], word(2))
    assert "padding" in refused(["bytes4"], b"\x01" * 32)


def test_dirty_padding_and_bad_utf8_in_strings_are_refused():
    assert "padding" in refused(["string"], word(32) + word(3) + b"abc" + b"\x01" + bytes(28))
    assert "UTF-8" in refused(["string"], word(32) + word(2) + b"\xff\xfe".ljust(32, b"\0"))


def test_unknown_types_are_a_programming_error_not_a_decode_error():
    with pytest.raises(ValueError):
        decode(["uint7"], word(1))
