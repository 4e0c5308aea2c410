"""The canonical safetensors writer (registry.formats.safetensors_writer): files the reference library
loads, one layout whatever the input order, lazy data, atomic replacement."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

from registry.errors import InputError
from registry.formats import safetensors_writer
from registry.formats.safetensors_writer import write_safetensors


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


def test_public_api_names_of_the_writer_all_exist():
    for name in safetensors_writer.__all__:
        assert hasattr(safetensors_writer, name), name
