"""Hypothesis fuzzing of every parser of outside input, within a bounded time budget.

Each parser gets random bytes or text, random JSON values, and mutations of a valid input
(bytes flipped, inserted, deleted, truncated; a field replaced by a random JSON value). Whatever
it is given, a parser either returns or raises a typed :class:`registry.errors.ElementsError`:
any other exception (a TypeError from an unhashable value, a MemoryError from a size read from
the input, a RecursionError, a crash) fails the test. Examples per parser are sized so the whole
file runs in well under a minute on two cores (``EXAMPLES`` below; the total is what a run tries).
"""

from __future__ import annotations

import io
import json
import os
import struct
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.chain.accounts import _check_kdf
from registry.formats.recipe import load_recipe, parse_recipe
from registry.config import Settings, load_config_file
from registry.formats.content_id import Manifest, TensorEntry, tensor_entries
from registry.records.documents import load_document
from registry.records.resolve import parse_hash
from registry.formats.safetensors import parse_header_bytes
from registry.formats.safetensors_writer import write_safetensors
from registry.errors import ElementsError
from registry.limits import JSON_DEPTH, LimitExceededError, NotJSONError, loads_json, loads_yaml, measure_json
from registry.storage.blockstore import BlockStore
from registry.storage.car import CarReader, export_car, import_car
from registry.storage.cid import CID, RAW
from registry.storage.dagpb import decode_node, decode_unixfs
from registry.storage.unixfs import Profile

#: slow: thousands of examples (`scripts/test.sh --fast` leaves them out; the full run fuzzes)
pytestmark = pytest.mark.slow

#: Examples per fuzzed parser (the run's total is ``sum(EXAMPLES.values())``).
EXAMPLES = {
    "json": 300, "json-deep": 100, "yaml": 150, "safetensors": 300, "manifest": 250, "recipe": 250,
    "recipe-text": 100, "car": 250, "car-import": 100, "dagpb": 300, "cid": 300, "document": 100, "config": 150, "keystore": 100,
}
TOTAL_EXAMPLES = sum(EXAMPLES.values())
#: ``FUZZ_SCALE=8 pytest tests/test_fuzz_parsers.py`` fuzzes eight times as long (by hand, not in CI).
SCALE = max(1, int(os.environ.get("FUZZ_SCALE") or 1))


def fuzz(name: str) -> Callable:
    return settings(max_examples=EXAMPLES[name] * SCALE, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


def typed(call: Callable[[], Any]) -> Any:
    """The call's result, or None when it refused with an ElementsError; anything else escapes."""
    try:
        return call()
    except ElementsError:
        return None


# -- strategies ------------------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
                           max_leaves=25)


@st.composite
def mutated(draw, seed: bytes) -> bytes:
    """``seed`` with a few random edits: flips, insertions, deletions, a truncation."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice-number"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete" and data:
            del data[at:at + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[at:]
        elif op == "splice-number":
            data[at:at] = str(draw(st.integers(-(2**66), 2**66))).encode()
    return bytes(data)


@st.composite
def replaced_field(draw, document: Any) -> Any:
    """A deep copy of a JSON document with one value (anywhere) replaced by a random JSON value."""
    document = json.loads(json.dumps(document))
    paths: list[tuple] = []

    def walk(value: Any, path: tuple) -> None:
        paths.append(path)
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, path + (key,))
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                walk(inner, path + (i,))

    walk(document, ())
    path = draw(st.sampled_from(paths))
    value = draw(json_values)
    if not path:
        return value
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return document


def nested(depth: int, kind: str) -> str:
    if kind == "arrays":
        return "[" * depth + "]" * depth
    if kind == "objects":
        return '{"a":' * depth + "0" + "}" * depth
    return "[" * depth  # unclosed


# -- seeds: one valid input per parser ----------------------------------------------------------


def _seeds() -> dict[str, Any]:
    import tempfile

    # The seeds are bytes and values; their files are gone once they are read (CI's /tmp filled up
    # with fuzz-seeds-* directories once).
    with tempfile.TemporaryDirectory(prefix="fuzz-seeds-") as tmp:
        return _seeds_in(Path(tmp))


def _seeds_in(root: Path) -> dict[str, Any]:
    weights = root / "w.safetensors"
    write_safetensors(weights, [("a.weight", "F32", (2, 2), np.arange(4, dtype=np.float32)),
                                ("b.bias", "F16", (3,), np.ones(3, dtype=np.float16))], metadata={"format": "pt"})
    raw = weights.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    manifest = Manifest.for_tensors(tensor_entries(weights))
    store = BlockStore(root / "blocks")
    root_cid = store.add_file(bytes(range(256)) * 40, profile=Profile("tiny", 1, False, 1000, 4))
    car = io.BytesIO()
    export_car(root_cid, store.get, car)
    zero = "0x" + "00" * 32
    recipe = {
        "format": "elements.recipe/v1",
        "inputs": {"base": {"kind": "tensors", "content_id": str(manifest.content_id), "record": zero},
                   "config": {"kind": "file", "content_id": zero, "record": zero}},
        "steps": [{"op": "take", "from": ["base"], "match": "weight$"},
                  {"op": "stack", "template": "layer.{n}.", "slices": [{"from": ["base"], "layer_range": [0, 2]}]},
                  {"op": "linear", "sources": [{"from": ["base"], "weight": 0.5}], "rename": [{"prefix": "a", "to": "b"}]},
                  {"op": "lora", "adapter": "base", "params": {"r": 4, "lora_alpha": 8, "rank_pattern": {"q": 2}}}],
        "files": [{"path": "config.json", "from": "config", "patch": {"x": 1}}],
        "output": {"content_id": zero, "tensors": [{"name": "a", "dtype": "F32", "shape": [2], "digest": zero}],
                   "files": [{"path": "config.json", "content_id": zero}], "metadata": {"format": "pt"}},
    }
    return {
        "header": raw[8:8 + length], "file_size": len(raw), "manifest": manifest.to_json(),
        "manifest_bytes": manifest.to_json_bytes(), "recipe": recipe, "car": car.getvalue(),
        "node": store.get(root_cid), "cid": str(root_cid),
    }


SEEDS = _seeds()


# -- the bounded JSON and YAML loaders --------------------------------------------------------------


@fuzz("json")
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                 json_values.map(lambda v: json.dumps(v).encode()), mutated(json.dumps(SEEDS["recipe"]).encode())))
def test_the_bounded_json_loader_returns_what_json_would_or_a_typed_refusal(data):
    try:
        value = loads_json(data, what="fuzz")
    except (LimitExceededError, NotJSONError):
        return
    reference = json.loads(data.decode("utf-8"))
    assert json.dumps(value, sort_keys=True) == json.dumps(reference, sort_keys=True)


@fuzz("json-deep")
@given(st.integers(0, 200_000), st.sampled_from(["arrays", "objects", "unclosed"]), st.text(max_size=5))
def test_any_nesting_is_measured_and_refused_above_the_limit_never_a_crash(depth, kind, noise):
    text = noise + nested(depth, kind)
    measured, _ = measure_json(text.encode("utf-8", "surrogatepass"))
    try:
        loads_json(text, what="fuzz")
        assert measured <= JSON_DEPTH
    except LimitExceededError:
        assert measured > JSON_DEPTH
    except NotJSONError:
        pass


@fuzz("yaml")
@given(st.one_of(st.text(max_size=300), json_values.map(json.dumps),
                 st.integers(0, 3000).map(lambda d: "a: " + "[" * d + "]" * d),
                 st.integers(1, 9).map(lambda n: "a: &a [1,1,1,1,1,1,1,1]\n" + "".join(
                     f"b{i}: &b{i} [" + ",".join([f"*{'a' if i == 0 else f'b{i - 1}'}"] * 8) + "]\n" for i in range(n)))))
def test_the_bounded_yaml_loader_returns_json_values_or_a_typed_refusal(text):
    value = typed(lambda: loads_yaml(text, what="fuzz"))
    if value is not None:
        json.dumps(value, allow_nan=False)  # only JSON values come out


# -- safetensors headers ---------------------------------------------------------------------------


@fuzz("safetensors")
@given(st.one_of(mutated(SEEDS["header"]), json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=300),
                 replaced_field(json.loads(SEEDS["header"])).map(lambda v: json.dumps(v).encode())),
       st.integers(0, 2**64 - 1) | st.just(SEEDS["file_size"]))
def test_the_safetensors_header_parser_accepts_or_refuses_with_a_typed_error(header, file_size):
    typed(lambda: parse_header_bytes(Path("fuzz.safetensors"), header, file_size))


# -- manifests, recipes, documents -----------------------------------------------------------------


@fuzz("manifest")
@given(st.one_of(replaced_field(SEEDS["manifest"]), json_values, mutated(SEEDS["manifest_bytes"]),
                 replaced_field(SEEDS["manifest"]).map(lambda v: json.dumps(v).encode())))
def test_the_manifest_checker_accepts_or_refuses_with_a_typed_error(document):
    manifest = typed(lambda: Manifest.from_json(document, require_canonical=isinstance(document, bytes)))
    if manifest is not None:
        assert Manifest.from_json(manifest.to_json_bytes(), require_canonical=True) == manifest
    if isinstance(document, dict):
        typed(lambda: TensorEntry.from_json(document))


@fuzz("recipe")
@given(st.one_of(replaced_field(SEEDS["recipe"]), json_values))
def test_the_recipe_checker_accepts_or_refuses_with_a_typed_error(document):
    recipe = typed(lambda: parse_recipe(document))
    if recipe is not None:  # what it accepts it can write canonically and read back the same
        assert parse_recipe(json.loads(recipe.canonical_json())).canonical_json() == recipe.canonical_json()


@fuzz("recipe-text")
@given(st.one_of(mutated(json.dumps(SEEDS["recipe"]).encode()), st.text(max_size=300).map(str.encode),
                 st.sampled_from(["a: &x [1]\nb: *x\n", "- !!binary aGk=\n", "x: !!set {a}\n", "a: 2020-01-01\n", "a: .nan\n"])
                 .map(str.encode)))
def test_a_recipe_read_from_text_accepts_or_refuses_with_a_typed_error(text):
    typed(lambda: load_recipe(text))


@fuzz("document")
@given(st.one_of(st.binary(max_size=200), mutated(SEEDS["manifest_bytes"]), mutated(json.dumps(SEEDS["recipe"]).encode()),
                 st.integers(60, 100_000).map(lambda d: nested(d, "arrays").encode())))
def test_a_record_document_loads_or_is_a_document_error(raw):
    typed(lambda: load_document(raw, "the fuzzed document"))


# -- CAR, dag-pb, CIDs ------------------------------------------------------------------------------


@fuzz("car")
@given(st.one_of(mutated(SEEDS["car"]), st.binary(max_size=400),
                 mutated(bytes.fromhex("0aa16776657273696f6e02") + bytes(16) + struct.pack("<QQQ", 51, len(SEEDS["car"]), 0) + SEEDS["car"]),
                 st.integers(0, 2**64 - 1).map(lambda offset: bytes.fromhex("0aa16776657273696f6e02") + bytes(16)
                                                + struct.pack("<QQQ", offset, 2**63, 0) + SEEDS["car"])))
def test_the_car_reader_yields_verified_blocks_or_refuses_with_a_typed_error(data):
    def read() -> list:
        reader = CarReader(io.BytesIO(data), "fuzz.car")
        return list(reader)

    for cid, block in typed(read) or []:
        assert cid.matches(block)


@fuzz("car-import")
@given(data=mutated(SEEDS["car"]))
def test_a_car_import_stores_all_or_nothing(data, tmp_path_factory):
    store = BlockStore(tmp_path_factory.mktemp("fuzz-car"))
    result = typed(lambda: import_car(io.BytesIO(data), store, where="fuzz.car"))
    if result is None:
        assert not any(p.is_file() for p in store.root.rglob("*"))


@fuzz("dagpb")
@given(st.one_of(mutated(SEEDS["node"]), st.binary(max_size=300)))
def test_the_dag_pb_decoder_decodes_or_refuses_with_a_typed_error(block):
    node = typed(lambda: decode_node(block))
    if node is not None:
        typed(lambda: decode_unixfs(node.data))


@fuzz("cid")
@given(st.one_of(st.text(max_size=120), st.binary(max_size=80), mutated(SEEDS["cid"].encode()).map(lambda b: b.decode("latin-1")),
                 mutated(bytes(CID.parse(SEEDS["cid"])))))
def test_the_cid_parser_parses_or_refuses_with_a_typed_error(value):
    cid = typed(lambda: CID.parse(value))
    if cid is not None:
        assert CID.parse(str(cid)) == cid and CID.parse(bytes(cid)) == cid
    if isinstance(value, bytes):
        typed(lambda: CID.read_from(value))
        typed(lambda: CID.of(value, RAW).matches(value))
    else:
        typed(lambda: parse_hash(value))


# -- configuration and keystores ------------------------------------------------------------------


@fuzz("config")
@given(document=st.one_of(replaced_field({"rpc_url": "memory", "gateways": ["http://g"], "trust": ["0x" + "11" * 20],
                                 "networks": {"devnet": {"rpc_url": "http://127.0.0.1:8545", "chain_id": 31337}}}),
                 st.dictionaries(st.text(max_size=10), json_values, max_size=4)))
def test_the_config_file_loads_or_is_refused_with_a_typed_error(document, tmp_path_factory):
    home = tmp_path_factory.mktemp("fuzz-config")
    (home / "config.json").write_text(json.dumps(document))
    config = typed(lambda: load_config_file(home))
    if config is not None:
        typed(lambda: Settings.resolve({"home": str(home)}, environ={}))


@fuzz("keystore")
@given(replaced_field({"crypto": {"kdf": "scrypt", "kdfparams": {"dklen": 32, "n": 262144, "r": 8, "p": 1, "salt": "00"}}})
       | replaced_field({"crypto": {"kdf": "pbkdf2", "kdfparams": {"dklen": 32, "c": 262144, "prf": "hmac-sha256", "salt": "00"}}}))
def test_the_keystore_kdf_check_accepts_only_bounded_work(document):
    if typed(lambda: _check_kdf(document, Path("key.json"))) is None:
        return
    params = document.get("crypto", {}).get("kdfparams") if isinstance(document.get("crypto"), dict) else None
    if isinstance(params, dict) and document["crypto"].get("kdf") == "scrypt" and isinstance(params.get("n"), int):
        assert 128 * params["n"] * params["r"] <= 1 << 30
