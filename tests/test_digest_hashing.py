"""Hashing primitives: Bytes32 ids, BLAKE3 / SHA-256 of buffers and of mmap'ed file regions."""

from __future__ import annotations

import hashlib
import mmap
import os

import blake3
import numpy as np
import pytest

import registry.digest as digest
from registry.digest import (
    PARALLEL_THRESHOLD,
    Bytes32,
    ContentId,
    RecordId,
    blake3_digest,
    hash_file,
    hash_file_region,
    parse_bytes32,
    parse_content_id,
    parse_record_id,
    sha256_digest,
    to_hex,
)
from registry.digest.hashing import hash_mapped_region
from registry.errors import InputError


def test_public_api_is_listed():
    assert sorted(digest.__all__) == sorted(name for name in vars(digest) if not name.startswith("_") and name != "hashing"
                                            and name != "annotations")


def test_bytes32_prints_as_0x_and_64_hex_and_equals_plain_bytes():
    raw = bytes(range(32))
    value = Bytes32(raw)
    assert str(value) == "0x" + raw.hex() and len(str(value)) == 66
    assert value == raw and hash(value) == hash(raw)
    assert {raw: 1}[value] == 1
    assert value.to_json() == str(value)
    assert repr(value) == f"Bytes32('0x{raw.hex()}')"


@pytest.mark.parametrize("text", ["0x" + "ab" * 32, "AB" * 32, "0X" + "Ab" * 32, "  0x" + "ab" * 32 + "\n"])
def test_parse_bytes32_accepts_hex_with_or_without_prefix(text):
    assert parse_bytes32(text) == bytes([0xAB]) * 32
    assert Bytes32(text) == bytes([0xAB]) * 32


@pytest.mark.parametrize("bad", ["0x" + "ab" * 31, "0x" + "zz" * 32, "", "0x", b"\x00" * 31])
def test_parse_bytes32_refuses_anything_else(bad):
    with pytest.raises(InputError):
        parse_bytes32(bad)


@pytest.mark.parametrize("bad", ["00 " * 21 + "0", "0x" + "ab " * 21 + "a"])
def test_parse_bytes32_refuses_hex_with_spaces_between_the_digits(bad):
    # bytes.fromhex skips them: 64 characters would make a shorter id, never a 32-byte one.
    for what in (None, "record id"):
        with pytest.raises(InputError, match="64 hex digits"):
            parse_bytes32(bad, what)


@pytest.mark.parametrize("value", ["0x" + "ab" * 32, "AB" * 32, " 0X" + "Ab" * 32 + "\n", bytes(range(32)), bytearray(32)])
def test_parse_bytes32_with_a_name_reads_every_form_the_chain_bindings_read(value):
    # The chain layer's own parser (chain.registry.to_bytes32) is gone: its callers use this one.
    parsed = parse_bytes32(value, "parent record id")
    expected = bytes(value) if isinstance(value, (bytes, bytearray)) else bytes.fromhex(value.strip()[2:] if value.strip()[:2].lower() == "0x" else value)
    assert parsed == expected and isinstance(parsed, Bytes32)


@pytest.mark.parametrize(("value", "message"), [
    ("0x" + "ab" * 31, repr("0x" + "ab" * 31) + " is not a parent record id (expected 0x + 64 hex digits)"),
    ("0x" + "zz" * 32, repr("0x" + "zz" * 32) + " is not a parent record id (expected 0x + 64 hex digits)"),
    ("", "'' is not a parent record id (expected 0x + 64 hex digits)"),
    ("0x", "'0x' is not a parent record id (expected 0x + 64 hex digits)"),
    ("0x" + "a" * 100_000, repr("0x" + "a" * 68) + "… is not a parent record id (expected 0x + 64 hex digits)"),
    (b"\x00" * 31, "a parent record id has 32 bytes, got 31"),
    (12345, "'12345' is not a parent record id (expected 0x + 64 hex digits)"),
    (None, "'None' is not a parent record id (expected 0x + 64 hex digits)"),
])
def test_parse_bytes32_with_a_name_says_what_the_chain_bindings_said(value, message):
    # The messages chain.registry.to_bytes32 gave, word for word: commands that named their ids
    # through it keep their one-line errors.
    with pytest.raises(InputError) as caught:
        parse_bytes32(value, "parent record id")
    assert str(caught.value) == message


def test_parse_bytes32_refuses_hex_with_spaces_that_the_chain_bindings_read_as_31_bytes():
    # chain.registry.to_bytes32 handed bytes.fromhex 64 characters holding two spaces and returned
    # 31 bytes as a "bytes32"; the one parser refuses them.
    with pytest.raises(InputError, match="is not a parent record id"):
        parse_bytes32("ab ab " + "ab" * 29, "parent record id")


def test_to_hex_formats_any_length():
    assert to_hex(b"\x01\xff") == "0x01ff"


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 1025, PARALLEL_THRESHOLD - 1, PARALLEL_THRESHOLD, PARALLEL_THRESHOLD * 3 + 17])
def test_blake3_digest_matches_the_reference_single_threaded_hash(size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    expected = blake3.blake3(data.tobytes()).digest()
    assert blake3_digest(data) == expected
    assert blake3_digest(memoryview(data)) == expected
    assert blake3_digest(data, threads=1) == expected
    assert blake3_digest(data, prefix=b"dom\0") == blake3.blake3(b"dom\0" + data.tobytes()).digest()


def test_sha256_digest_matches_hashlib():
    data = os.urandom(100_000)
    assert sha256_digest(data) == hashlib.sha256(data).digest()
    assert sha256_digest(memoryview(data), prefix=b"p") == hashlib.sha256(b"p" + data).digest()


def test_hash_file_matches_hashing_the_bytes(tmp_path):
    data = os.urandom(3 * PARALLEL_THRESHOLD + 12345)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert hash_file(path) == blake3.blake3(data).digest()
    assert hash_file(path, algorithm="sha256") == hashlib.sha256(data).digest()
    assert hash_file(path, prefix=b"x") == blake3.blake3(b"x" + data).digest()
    assert hash_file_region(path, 100, 200_000) == blake3.blake3(data[100:200_000]).digest()
    assert hash_file_region(path, 5, 5, prefix=b"q") == blake3.blake3(b"q").digest()


def test_hash_file_of_an_empty_file(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert hash_file(path) == blake3.blake3(b"").digest()
    assert hash_file(path, algorithm="sha256") == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("window", [4096, 4096 + 7, 65536])
def test_windowed_region_hash_is_independent_of_window_boundaries(tmp_path, window):
    data = os.urandom(300_001)
    path = tmp_path / "blob"
    path.write_bytes(data)
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        for start, end in [(0, len(data)), (1, 299_999), (4095, 4097), (8192, 8192 + window * 3 + 1)]:
            got = hash_mapped_region(mapped, start, end, window=window)
            assert got == blake3.blake3(data[start:end]).digest()
            got = hash_mapped_region(mapped, start, end, window=window, algorithm="sha256")
            assert got == hashlib.sha256(data[start:end]).digest()
        with pytest.raises(ValueError):
            hash_mapped_region(mapped, 10, len(data) + 1)


def test_region_outside_the_file_is_an_input_error(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"abc")
    with pytest.raises(InputError, match="outside the file"):
        hash_file_region(path, 0, 4)


def test_unknown_algorithm_is_refused(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"abc")
    with pytest.raises(ValueError, match="unknown hash algorithm"):
        hash_file(path, algorithm="md5")  # type: ignore[arg-type]


def test_content_and_record_ids_are_bytes32_that_print_as_hex_and_equal_the_plain_bytes():
    raw = bytes(range(32))
    content, record = ContentId(raw), RecordId(raw)
    assert isinstance(content, Bytes32) and isinstance(record, bytes)
    assert str(content) == str(record) == "0x" + raw.hex()
    assert content == raw == record and hash(content) == hash(raw) == hash(record)
    assert {raw: 1}[record] == 1 and {content: 2}[raw] == 2
    assert repr(content) == f"ContentId('0x{raw.hex()}')" and repr(record) == f"RecordId('0x{raw.hex()}')"
    assert type(ContentId(record)) is ContentId and type(RecordId(content)) is RecordId
    assert ContentId("0x" + raw.hex()) == raw and type(ContentId("0x" + raw.hex())) is ContentId


def test_the_id_parsers_return_their_type_from_hex_or_bytes_and_keep_a_typed_value():
    raw = bytes([0xCD]) * 32
    for text in ("0x" + raw.hex(), raw.hex().upper(), raw):
        assert type(parse_content_id(text)) is ContentId and parse_content_id(text) == raw
        assert type(parse_record_id(text)) is RecordId and parse_record_id(text) == raw
    record = RecordId(raw)
    assert parse_record_id(record) is record
    assert type(parse_content_id(record)) is ContentId


@pytest.mark.parametrize("parse, what, message", [
    (parse_content_id, None, "'0x12' is not a content id (expected 0x + 64 hex digits)"),
    (parse_record_id, None, "'0x12' is not a record id (expected 0x + 64 hex digits)"),
    (parse_record_id, "parent record id", "'0x12' is not a parent record id (expected 0x + 64 hex digits)"),
])
def test_the_id_parsers_refuse_a_bad_id_in_one_line_naming_what_was_expected(parse, what, message):
    with pytest.raises(InputError) as caught:
        parse("0x12") if what is None else parse("0x12", what)
    assert str(caught.value) == message and "\n" not in str(caught.value)
    with pytest.raises(InputError, match="a record id has 32 bytes, got 31"):
        parse_record_id(b"\x00" * 31)
