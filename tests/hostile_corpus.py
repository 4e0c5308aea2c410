"""A corpus of hostile inputs for every parser a user can reach from the command line (plain data
and builders, no fixtures; run by tests/test_hostile_corpus.py).

Each :class:`Hostile` builds its input in a :class:`Workspace` (a temporary directory with an
``ELEMENTS_HOME``) and returns the ``elements`` command line that reads it, with what must come
out: the exit code and a pattern the one-line error must match. Families: safetensors headers
and indexes, local manifests, recipes (JSON and YAML), CAR files, dag-pb nodes, CIDs, config
files, keystores, signed-publish files and output paths. Documents published on a chain, hostile
Kubo nodes, JSON-RPC nodes and gateways are in tests/test_hostile_corpus.py itself (they need a
chain or a server).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from registry.storage.car import encode_header
from registry.storage.cid import CID, DAG_PB, RAW, encode_varint
from registry.storage.dagpb import encode_link, encode_node, encode_unixfs, FILE

DEEP = 100_000  # the nesting that crashed the process (exit 139) before registry.limits
JUST_OVER = 65  # one level over JSON_DEPTH
DEV_KEY = "0x" + "11" * 32


def deep_json(depth: int = DEEP, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


def deep_object(depth: int = DEEP) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@dataclass
class Workspace:
    """Where a case writes its input: ``root/in`` for inputs, ``root/home`` as ELEMENTS_HOME,
    ``root/out`` for outputs (which must never exist after a refusal)."""

    root: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def out(self) -> Path:
        return self.root / "out" / "result"

    def input(self, name: str, data: bytes | str) -> Path:
        path = self.root / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
        return path

    def setup(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.root / "out").mkdir(parents=True, exist_ok=True)

    def elements(self) -> tuple[Path, str]:
        """A tiny elements directory (one tensors element, one file element) and the content id
        of its tensors element: enough for a recipe to be planned."""
        from tests.compose_support import write_element, write_file_element

        directory = self.root / "in" / "elements"
        tensors = {f"layer.{i}.weight": np.arange(4, dtype=np.float32) + i for i in range(3)}
        content_id = write_element(directory, "weights.safetensors", tensors)
        self.file_id = write_file_element(directory, "config.json", b'{"hidden_size": 4}')
        return directory, content_id


@dataclass(frozen=True)
class Hostile:
    """One hostile input: ``build(workspace) -> argv`` and what the command must answer."""

    id: str
    build: Callable[[Workspace], list[str]]
    match: str
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)
    stdout: str | None = None  # for cases that must succeed (exit 0) and print this

    @property
    def family(self) -> str:
        return self.id.split("/")[0]


# ------------------------------------------------------------------------------------ safetensors


def header_file(header: bytes | str, data: bytes = b"", length: int | None = None) -> bytes:
    if isinstance(header, str):
        header = header.encode("utf-8", "surrogatepass")
    return struct.pack("<Q", len(header) if length is None else length) + header + data


def entry(name: str = "w", dtype: object = "F32", shape: object = (1,), offsets: object = (0, 4)) -> str:
    return json.dumps({name: {"dtype": dtype, "shape": list(shape) if isinstance(shape, tuple) else shape,
                              "data_offsets": list(offsets) if isinstance(offsets, tuple) else offsets}})


def _safetensors(case: str, content: bytes, match: str) -> Hostile:
    return Hostile(f"safetensors/{case}", lambda ws: ["id", ws.input("model.safetensors", content)], match)


def safetensors_cases() -> list[Hostile]:
    four = b"\0" * 4
    cases = [
        ("empty", b"", "shorter than the 8-byte"),
        ("seven-bytes", b"\1" * 7, "shorter than the 8-byte"),
        ("length-past-end", header_file("{}", length=1000), "runs past the end"),
        ("length-u64-max", header_file("{}", length=(1 << 64) - 1), "exceeds the 100000000-byte limit"),
        ("length-over-100mb", header_file("{}", length=100_000_001), "exceeds the 100000000-byte limit"),
        ("not-utf8", header_file(b"\xff\xfe{}"), "not UTF-8"),
        ("not-json", header_file("{not json"), "not valid JSON"),
        ("json-array", header_file("[]"), "must be a JSON object"),
        ("json-string", header_file('"x"'), "must be a JSON object"),
        ("nan", header_file('{"w":{"dtype":"F32","shape":[NaN],"data_offsets":[0,4]}}', four), "not valid JSON"),
        ("infinity-literal", header_file('{"w":{"dtype":"F32","shape":[Infinity],"data_offsets":[0,4]}}', four), "not valid JSON"),
        ("float-overflow", header_file('{"w":{"dtype":"F32","shape":[1e999],"data_offsets":[0,4]}}', four), "too large for a float"),
        ("number-200-digits", header_file('{"w":{"dtype":"F32","shape":[' + "9" * 200 + '],"data_offsets":[0,4]}}', four),
         "JSON_NUMBER_CHARS"),
        ("nested-100k-arrays", header_file(deep_json()), "JSON_DEPTH"),
        ("nested-100k-objects", header_file(deep_object()), "JSON_DEPTH"),
        ("nested-65", header_file(deep_json(JUST_OVER)), "JSON_DEPTH"),
        ("nested-in-metadata", header_file('{"__metadata__":{"a":' + deep_json() + "}}"), "JSON_DEPTH"),
        ("nested-in-shape", header_file('{"w":{"dtype":"F32","shape":' + deep_json() + ',"data_offsets":[0,4]}}', four), "JSON_DEPTH"),
        ("nested-unclosed", header_file("[" * DEEP), "JSON_DEPTH"),
        ("duplicate-tensor", header_file('{"w":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},' + entry()[1:], four), "twice"),
        ("dtype-unknown", header_file(entry(dtype="F33"), four), "unknown dtype"),
        ("dtype-list", header_file(entry(dtype=["F32"]), four), "unknown dtype"),
        ("dtype-null", header_file(entry(dtype=None), four), "unknown dtype"),
        ("shape-negative", header_file(entry(shape=(-1,)), four), "not an integer in 0"),
        ("shape-float", header_file(entry(shape=(1.5,)), four), "not an integer in 0"),
        ("shape-bool", header_file(entry(shape=(True,)), four), "not an integer in 0"),
        ("shape-string", header_file(entry(shape="1"), four), "must be a list of integers"),
        ("shape-object", header_file(entry(shape={"a": 1}), four), "must be a list of integers"),
        ("shape-2-to-64", header_file(entry(shape=(1 << 64,)), four), "not an integer in 0"),
        ("shape-rank-65", header_file(entry(shape=(1,) * 65), four), "TENSOR_RANK"),
        ("shape-huge-product", header_file(entry(shape=((1 << 64) - 1,) * 64), four), "needs"),
        ("offsets-reversed", header_file(entry(offsets=(4, 0)), four), "end before they begin"),
        ("offsets-past-end", header_file(entry(offsets=(0, 8)), four), "run past"),
        ("offsets-three", header_file(entry(offsets=(0, 4, 8)), four), "data_offsets must be"),
        ("offsets-negative", header_file(entry(offsets=(-4, 0)), four), "data_offsets must be"),
        ("offsets-u64-max", header_file(entry(offsets=(0, (1 << 64) - 1)), four), "run past"),
        ("offsets-string", header_file(entry(offsets="0,4"), four), "data_offsets must be"),
        ("size-mismatch", header_file(entry(shape=(2,)), four), "needs 8 bytes"),
        ("overlap", header_file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}',
                                b"\0" * 6), "overlaps|needs|unused"),
        ("gap", header_file(entry(offsets=(4, 8)), b"\0" * 8), "unused bytes"),
        ("trailing", header_file(entry(), b"\0" * 9), "after the last tensor"),
        ("metadata-number", header_file('{"__metadata__":{"a":1}}'), "not a string"),
        ("metadata-list", header_file('{"__metadata__":["a"]}'), "must be an object of strings"),
        ("entry-not-object", header_file('{"w":[1,2,3]}'), "must be an object"),
        ("entry-missing-fields", header_file('{"w":{"dtype":"F32"}}'), "missing"),
        ("entry-extra-field", header_file('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}', four), "unknown field"),
        ("name-2000-bytes", header_file(entry(name="n" * 2000), four), "NAME_BYTES"),
        ("name-lone-surrogate", header_file('{"\\ud800":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', four), "surrogate"),
        ("utf8-bom", header_file("\ufeff{}"), "not valid JSON"),
        ("name-rtl-override-duplicate", header_file('{"a\u202eb":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},'
                                                     '"a\u202eb":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'), "twice"),
    ]
    return [_safetensors(case, content, match) for case, content, match in cases]


def index_cases() -> list[Hostile]:
    def case(name: str, index: str, match: str) -> Hostile:
        def build(ws: Workspace) -> list[str]:
            path = ws.input("ckpt/model.safetensors.index.json", index)
            return ["id", path.parent]
        return Hostile(f"safetensors/index-{name}", build, match)

    return [
        case("nested-100k", deep_json(), "JSON_DEPTH"),
        case("not-json", "{", "not valid JSON"),
        case("no-weight-map", "{}", "no weight_map"),
        case("shard-escapes", '{"weight_map":{"w":"../x.safetensors"}}', "not a .safetensors file name"),
        case("shard-absolute", '{"weight_map":{"w":"/etc/passwd.safetensors"}}', "not a .safetensors file name"),
        case("shard-number", '{"weight_map":{"w":5}}', "must be a file name"),
        case("shard-missing", '{"weight_map":{"w":"gone.safetensors"}}', "missing"),
    ]


# ------------------------------------------------------------------------------------- recipes


def _recipe(ws: Workspace, edit: Callable[[dict], object] | None = None) -> dict:
    directory, content_id = ws.elements()
    document = {
        "format": "elements.recipe/v1",
        "inputs": {"base": {"path": "weights.safetensors", "content_id": content_id},
                   "config": {"path": "config.json", "content_id": ws.file_id}},
        "steps": [{"op": "take", "from": "base"}],
        "files": [{"path": "config.json", "from": "config"}],
    }
    if edit is not None:
        replaced = edit(document)
        if replaced is not None:
            document = replaced
    return document


def _assemble(name: str, make: Callable[[Workspace], bytes | str], match: str, suffix: str = "json") -> Hostile:
    def build(ws: Workspace) -> list[str]:
        ws.elements()
        recipe = ws.input(f"recipe.{suffix}", make(ws))
        return ["assemble-local", recipe, "--elements", ws.root / "in" / "elements", "-o", ws.out]
    return Hostile(f"recipe/{name}", build, match)


def _edited(name: str, edit: Callable[[dict], object], match: str) -> Hostile:
    return _assemble(name, lambda ws: json.dumps(_recipe(ws, edit)), match)


def _set(path: str, value: object) -> Callable[[dict], None]:
    def edit(document: dict) -> None:
        target = document
        keys = path.split(".")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        last = keys[-1]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return edit


MANY = 10_000  # tensors of the "many" element: enough for a recipe to multiply past a limit


def _many(name: str, edit: Callable[[dict], object], match: str) -> Hostile:
    """A recipe over an element of MANY (empty) tensors ``layer.{i}.w``: cheap to store, costly
    to plan if a recipe could multiply it."""
    def build(ws: Workspace) -> list[str]:
        from tests.compose_support import write_element

        document = _recipe(ws)
        directory = ws.root / "in" / "elements"
        content_id = write_element(directory, "many.safetensors",
                                   {f"layer.{i}.w": np.zeros(0, dtype=np.float32) for i in range(MANY)})
        document["inputs"] = {"many": {"path": "many.safetensors", "content_id": content_id}}
        document.pop("files")
        edit(document)
        recipe = ws.input("recipe.json", json.dumps(document))
        return ["assemble-local", recipe, "--elements", directory, "-o", ws.out]
    return Hostile(f"recipe/{name}", build, match)


def recipe_cases() -> list[Hostile]:
    long_name = "f" * 300
    stack = lambda **slice_: {"op": "stack", "template": "layer.{n}.", "slices": [{"from": "base", **slice_}]}  # noqa: E731
    cases = [
        _assemble("not-utf8", lambda ws: b"\xff\xfe\x00", "not UTF-8"),
        _assemble("neither-json-nor-yaml", lambda ws: "{: [", "neither JSON nor YAML"),
        _assemble("json-nested-100k", lambda ws: deep_json(), "JSON_DEPTH"),
        _assemble("json-nested-objects-100k", lambda ws: deep_object(), "JSON_DEPTH"),
        _assemble("json-nested-65", lambda ws: '{"format":' + deep_json(JUST_OVER) + "}", "JSON_DEPTH"),
        _assemble("yaml-flow-nested-100k", lambda ws: "a: " + deep_json(), "JSON_DEPTH", "yaml"),
        _assemble("yaml-block-nested-100", lambda ws: "".join(" " * i + "- \n" for i in range(100)) + " " * 100 + "- 1\n",
                  "JSON_DEPTH", "yaml"),
        _assemble("yaml-alias-bomb", lambda ws: "a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(7)),
            "JSON_VALUES", "yaml"),
        _assemble("yaml-recursive-alias", lambda ws: "format: &a [*a]\n", "recursive", "yaml"),
        _assemble("yaml-timestamp", lambda ws: "format: 2024-01-01\n", "date", "yaml"),
        _assemble("yaml-binary", lambda ws: "format: !!binary aGVsbG8=\n", "bytes", "yaml"),
        _assemble("yaml-set", lambda ws: "format: !!set {a, b}\n", "set", "yaml"),
        _assemble("yaml-python-tag", lambda ws: "format: !!python/object/apply:os.system ['true']\n", "neither JSON nor YAML", "yaml"),
        _assemble("yaml-inf", lambda ws: "format: .inf\n", "finite", "yaml"),
        _assemble("number-200-digits", lambda ws: '{"format":' + "1" * 200 + "}", "JSON_NUMBER_CHARS"),
        _assemble("json-list", lambda ws: "[]", "must be an object"),
        _assemble("too-large", lambda ws: b" " * (16 * 1024 * 1024 + 1), "DOCUMENT_BYTES"),
        _edited("unknown-format", _set("format", "elements.recipe/v9"), "format"),
        _edited("unknown-key", _set("surprise", 1), "unknown key"),
        _edited("file-name-300-chars", _set("files.0.path", long_name), "PATH_COMPONENT_BYTES"),
        _edited("path-4097-bytes", _set("files.0.path", "/".join(["d" * 200] * 21)), "PATH_BYTES"),
        _edited("path-dotdot", _set("files.0.path", "../escape.json"), "escapes"),
        _edited("path-absolute", _set("files.0.path", "/etc/passwd"), "relative path"),
        _edited("path-backslash", _set("files.0.path", "a\\b.json"), "relative path"),
        _edited("path-nul", _set("files.0.path", "a\u0000b.json"), "relative path"),
        _edited("path-lone-surrogate", _set("files.0.path", "a\ud800.json"), "surrogate|UTF-8"),
        _edited("patch-lone-surrogate", _set("files.0.patch", {"name": "\ud800"}), "surrogate|UTF-8"),
        _edited("rename-to-lone-surrogate", _set("steps.0.rename", [{"prefix": "layer", "to": "\ud800"}]), "surrogate|UTF-8"),
        _edited("input-name-lone-surrogate", lambda d: d["inputs"].update({"\ud800": d["inputs"]["base"]}), "surrogate|UTF-8|input name"),
        _edited("output-metadata-lone-surrogate", _set("output", {"metadata": {"a": "\ud800"}}), "surrogate|UTF-8|output"),
        _edited("path-reserved", _set("files.0.path", "model.safetensors"), "reserved"),
        _edited("path-file-and-directory", lambda d: d["files"].extend([{"path": "config.json/x", "from": "config"}]),
                "both a file and a directory"),
        _edited("path-twice", lambda d: d["files"].append({"path": "config.json", "from": "config"}), "same path twice"),
        _edited("input-path-300-chars", _set("inputs.base.path", long_name), "PATH_COMPONENT_BYTES"),
        _edited("input-name-2000-bytes", lambda d: d["inputs"].update({"n" * 2000: d["inputs"]["base"]}), "NAME_BYTES"),
        _edited("input-name-cyrillic", lambda d: d["inputs"].update({"bаse": d["inputs"]["base"]}), "input name"),
        _edited("input-content-id-short", _set("inputs.base.content_id", "0x1234"), "64 hex digits"),
        _edited("input-content-id-huge", _set("inputs.base.content_id", "0x" + "a" * 100_000), "64 hex digits"),
        _edited("input-missing", _set("steps.0.from", "ghost"), "does not define"),
        _edited("input-unused", lambda d: d["inputs"].update({"spare": d["inputs"]["base"]}), "not used"),
        _edited("input-both-kinds", _set("files.0.from", "base"), "both as tensors and as a file"),
        _edited("inputs-4097", lambda d: d["inputs"].update({f"i{i}": d["inputs"]["base"] for i in range(4097)}), "RECIPE_INPUTS"),
        _edited("steps-10001", _set("steps", [{"op": "take", "from": "base"}] * 10_001), "RECIPE_STEPS"),
        _edited("steps-not-list", _set("steps", {"op": "take"}), "must be lists"),
        _edited("step-unknown-op", _set("steps.0.op", "explode"), "unknown"),
        _edited("layer-range-10-to-18", _set("steps", [stack(layer_range=[0, 10 ** 18])]), "LAYER_NUMBER"),
        _edited("layer-number-huge", _set("steps", [stack(layers=[2 ** 63])]), "LAYER_NUMBER"),
        _edited("layer-start-huge", _set("steps", [dict(stack(layers=[0]), start=10 ** 30)]), "LAYER_NUMBER"),
        _edited("layer-negative", _set("steps", [stack(layers=[-1])]), ">= 0"),
        _edited("layer-range-empty", _set("steps", [stack(layer_range=[5, 5])]), "empty"),
        _edited("lora-rank-huge", _set("steps", [{"op": "take", "from": "base"},
                                                 {"op": "lora", "adapter": "base", "params": {"r": 10 ** 12, "lora_alpha": 8}}]),
                "LORA_RANK"),
        _edited("lora-rank-pattern-redos", _set("steps", [{"op": "take", "from": "base"},
                                                          {"op": "lora", "adapter": "base", "params": {
                                                              "r": 4, "lora_alpha": 8, "rank_pattern": {"(a+)+$": 2}}}]),
                "exponential"),
        _edited("regex-nested-quantifier", _set("steps.0.match", "^(layer\\.[0-9]+)+x$"), "exponential"),
        _edited("regex-star-star", _set("steps.0.match", "(a*)*b"), "exponential"),
        _edited("regex-2000-chars", _set("steps.0.match", "a" * 2000), "REGEX_CHARS"),
        _edited("regex-invalid", _set("steps.0.match", "(unclosed"), "not a valid regular expression"),
        _edited("regex-huge-repeat", _set("steps.0.match", "a{1000000000}"), "matches no tensor"),
        _many("steps-scan-for-hours", lambda d: d.update(steps=[{"op": "take", "from": "many"}] + [
            {"op": "override", "from": "many", "select": ["layer.*"] * 2} for _ in range(700)]), "PLAN_WORK"),
        _many("stack-slices-multiply-tensors", lambda d: d.update(steps=[{"op": "stack", "template": "layer.{n}.", "slices": [
            {"from": "many", "layer_range": [0, MANY]}] * 26}]), "TENSORS"),
        _edited("stack-repeats-a-layer", _set("steps", [{"op": "stack", "template": "layer.{n}.", "slices": [
            {"from": "base", "layers": [0, 1, 2] * 20_000}]}]), "repeats a layer"),
        _edited("rename-explodes", _set("steps.0.rename", [{"regex": "(?:)", "to": "xx"}] * 20), "NAME_BYTES"),
        _edited("rename-bad-group", _set("steps.0.rename", [{"regex": "a", "to": "\\9"}]), "not a valid replacement"),
        _edited("weight-string", _set("steps", [{"op": "linear", "sources": [{"from": "base", "weight": "heavy"}]}]),
                "must be a number"),
        _edited("weight-bool", _set("steps", [{"op": "linear", "sources": [{"from": "base", "weight": True}]}]),
                "not a boolean"),
        _edited("weight-nan-string", _set("steps", [{"op": "linear", "sources": [{"from": "base", "weight": "nan"}]}]),
                "finite"),
        _edited("sources-empty", _set("steps", [{"op": "linear", "sources": []}]), "non-empty list"),
        _edited("output-rank-65", _set("output", {"tensors": [{"name": "w", "dtype": "F32", "shape": [1] * 65,
                                                                "digest": "0x" + "00" * 32}]}), "TENSOR_RANK"),
        _edited("output-dim-2-to-64", _set("output", {"tensors": [{"name": "w", "dtype": "F32", "shape": [2 ** 64],
                                                                    "digest": "0x" + "00" * 32}]}), "2\\*\\*64"),
        _edited("output-name-2000-bytes", _set("output", {"tensors": [{"name": "n" * 2000, "dtype": "F32", "shape": [1],
                                                                        "digest": "0x" + "00" * 32}]}), "NAME_BYTES"),
        _edited("output-metadata-nested", _set("output", {"metadata": {"a": {"b": 1}}}), "object of strings"),
        _edited("output-wrong-content-id", _set("output", {"content_id": "0x" + "00" * 32}), "content id"),
        _edited("patch-not-object", _set("files.0.patch", [1, 2]), "JSON merge patch"),
        _edited("patch-nested-70", _set("files.0.patch", json.loads('{"a":' * 62 + "1" + "}" * 62)), "JSON_DEPTH"),
        _edited("description-number", _set("description", 5), "must be a string"),
        _assemble("yaml-non-string-key", lambda ws: "format: elements.recipe/v1\n[1, 2]: x\n", "neither JSON nor YAML|non-string key|keys are strings",
                  "yaml"),
    ]
    # a YAML recipe with an integer key where a name goes
    cases.append(_assemble("yaml-integer-input-name", lambda ws: "format: elements.recipe/v1\ninputs:\n  1: {path: a, content_id: '0x'}\n",
                           "64 hex digits|input name", "yaml"))
    return cases


def local_manifest_cases() -> list[Hostile]:
    def case(name: str, manifest: str | bytes, match: str) -> Hostile:
        def build(ws: Workspace) -> list[str]:
            recipe = ws.input("recipe.json", json.dumps(_recipe(ws)))
            (ws.root / "in" / "elements" / "weights.safetensors.manifest.json").write_bytes(
                manifest.encode() if isinstance(manifest, str) else manifest)
            return ["assemble-local", recipe, "--elements", ws.root / "in" / "elements", "-o", ws.out]
        return Hostile(f"manifest/local-{name}", build, match)

    return [
        case("nested-100k", deep_json(), "JSON_DEPTH"),
        case("not-json", "{", "not valid JSON"),
        case("not-utf8", b"\xff", "UTF-8"),
        case("json-array", "[]", "JSON object"),
        case("tensors-rank-65", json.dumps({"format": "elements.manifest/v1", "kind": "tensors", "content_id": "0x" + "00" * 32,
                                             "metadata": {}, "tensors": [{"name": "w", "dtype": "F32", "shape": [1] * 65,
                                                                          "digest": "0x" + "00" * 32, "size": 4}]}), "TENSOR_RANK"),
        case("dtype-unhashable", json.dumps({"format": "elements.manifest/v1", "kind": "tensors", "content_id": "0x" + "00" * 32,
                                              "metadata": {}, "tensors": [{"name": "w", "dtype": ["F32"], "shape": [1],
                                                                           "digest": "0x" + "00" * 32, "size": 4}]}), "unknown dtype"),
        case("kind-unhashable", json.dumps({"format": "elements.manifest/v1", "kind": ["tensors"], "content_id": "0x" + "00" * 32}),
             "kind must be"),
        case("data-size-negative", json.dumps({"format": "elements.manifest/v1", "kind": "file", "content_id": "0x" + "00" * 32,
                                                "data": {"cid": "x", "size": -1, "name": "x"}}), "wrong types"),
    ]


# ----------------------------------------------------------------------------------------- CAR

TINY_BLOCK = b"hostile corpus"
TINY = CID.of(TINY_BLOCK, RAW)


def car(roots: list[CID], sections: list[bytes], header: bytes | None = None) -> bytes:
    head = encode_header(roots) if header is None else header
    return encode_varint(len(head)) + head + b"".join(encode_varint(len(s)) + s for s in sections)


def section(cid: CID, block: bytes) -> bytes:
    return bytes(cid) + block


def carv2(inner: bytes, data_offset: int | None = None, data_size: int | None = None) -> bytes:
    pragma = bytes.fromhex("0aa16776657273696f6e02")
    offset = len(pragma) + 40 if data_offset is None else data_offset
    fixed = bytes(16) + struct.pack("<QQQ", offset, len(inner) if data_size is None else data_size, 0)
    return pragma + fixed + inner


def cbor_map(items: bytes, count: int) -> bytes:
    return bytes([0xA0 | count]) + items


def car_cases() -> list[Hostile]:
    good = car([TINY], [section(TINY, TINY_BLOCK)])
    roots_key = b"\x65roots"
    version_1 = b"\x67version\x01"

    def case(name: str, content: bytes, match: str, code: int = 2) -> Hostile:
        return Hostile(f"car/{name}", lambda ws: ["car", "import", ws.input("x.car", content)], match, code)

    return [
        case("empty", b"", "is empty"),
        case("header-length-zero", b"\x00", "not a CAR"),
        case("header-length-huge", encode_varint(1 << 40), "not a CAR"),
        case("varint-ten-bytes", b"\xff" * 10, "longer than 9 bytes"),
        case("varint-not-minimal", b"\x80\x00", "not minimally encoded"),
        case("header-truncated", encode_varint(50) + b"\xa2", "truncated"),
        case("header-not-map", car([], [], header=b"\x83\x01\x02\x03"), "not a map"),
        case("header-version-2", car([], [], header=cbor_map(roots_key + b"\x81\xd8\x2a\x58\x25\x00" + bytes(TINY) + b"\x67version\x02", 2)),
             "CARv2 header"),
        case("header-roots-not-list", car([], [], header=cbor_map(roots_key + b"\x01" + version_1, 2)), "roots must be a list"),
        case("header-roots-not-cids", car([], [], header=cbor_map(roots_key + b"\x81\x01" + version_1, 2)), "roots must be a list"),
        case("header-indefinite", car([], [], header=b"\xbf\xff"), "indefinite"),
        case("header-nested-deep", car([], [], header=b"\x81" * 20 + b"\x00"), "nests too deep"),
        case("header-list-as-key", car([], [], header=cbor_map(b"\x80\x01", 1)), "malformed CAR header"),
        case("header-bad-tag", car([], [], header=cbor_map(roots_key + b"\x81\xd8\x2b\x00" + version_1, 2)), "unexpected tag"),
        case("header-bad-cid-in-root", car([], [], header=cbor_map(roots_key + b"\x81\xd8\x2a\x43\x00\x01\x02" + version_1, 2)),
             "malformed CAR header"),
        case("header-not-utf8-key", car([], [], header=cbor_map(b"\x62\xff\xfe\x01", 1)), "malformed CAR header"),
        case("no-roots", car([], [section(TINY, TINY_BLOCK)]), "declares no root"),
        case("section-length-zero", good + b"\x00", "zero-length section"),
        case("section-length-huge", car([TINY], []) + encode_varint(1 << 50), "section of"),
        case("section-truncated", good[:-3], "truncated"),
        case("section-bad-cid", car([TINY], [b"\x01\x55\x12\x05abc"]), "corrupt"),
        case("section-cid-version-3", car([TINY], [b"\x03\x55\x12\x20" + bytes(32)]), "corrupt"),
        case("block-not-its-cid", car([TINY], [section(TINY, b"another block")]), "does not match its CID"),
        case("root-missing", car([TINY], []), "incomplete"),
        case("short-digest-cid", car([TINY], [b"\x01\x55\x12\x04abcd" + b"x"]), "corrupt"),
        case("unknown-hash-function", car([TINY], [b"\x01\x55\x99\x01\x20" + bytes(32) + b"x"]), "unknown to Elements"),
        case("trailing-garbage", good + b"\xff", "varint is truncated|corrupt"),
        case("carv2-data-offset-huge", carv2(good, data_offset=(1 << 63)), "malformed CARv2"),
        case("carv2-data-offset-2-to-40", carv2(good, data_offset=1 << 40), "CARV2_PADDING_BYTES"),
        case("carv2-data-offset-small", carv2(good, data_offset=10), "malformed CARv2"),
        case("carv2-data-size-zero", carv2(good, data_size=0), "malformed CARv2"),
        case("carv2-truncated-header", carv2(good)[:30], "truncated"),
        case("carv2-padding-truncated", carv2(good, data_offset=51 + 1000)[:200], "truncated"),
    ]


# -------------------------------------------------------------------------------------- dag-pb


def dagpb_root(block: bytes) -> tuple[CID, bytes]:
    return CID.of(block, DAG_PB), block


def dagpb_cases() -> list[Hostile]:
    leaf = CID.of(b"leaf", RAW)
    link = encode_link(bytes(leaf), 4)
    data = encode_unixfs(FILE, b"", 4, [4])

    def case(name: str, block: bytes, match: str, extra: list[bytes] = ()) -> Hostile:
        root, block = dagpb_root(block)
        content = car([root], [section(root, block), *extra])
        return Hostile(f"dagpb/{name}", lambda ws: ["car", "import", ws.input("x.car", content)], match)

    many = encode_node([link] * 65_537, data)
    return [
        case("truncated-field", b"\x12\x10abc", "malformed dag-pb node"),
        case("wire-type-64bit", b"\x09" + bytes(8), "unsupported wire type"),
        case("wire-type-32bit", b"\x0d" + bytes(4), "unsupported wire type"),
        case("unknown-field", b"\x1a\x01x", "unexpected field"),
        case("link-after-data", b"\x0a\x00\x12" + encode_varint(len(link)) + link, "a link after the data"),
        case("two-data-fields", b"\x0a\x00\x0a\x00", "two data fields"),
        case("link-without-hash", encode_node([b"\x12\x00\x18\x00"], data), "no hash"),
        case("link-bad-cid", encode_node([b"\x0a\x03abc"], data), "malformed dag-pb link"),
        case("link-name-not-utf8", encode_node([encode_link(bytes(leaf), 4, b"\xff\xfe")], data), "not UTF-8"),
        case("link-name-300-bytes", encode_node([encode_link(bytes(leaf), 4, b"n" * 300)], data), "DAGPB_NAME_BYTES"),
        case("links-65537", many, "DAGPB_LINKS"),
        case("link-repeated-hash", encode_node([b"\x0a\x22" + bytes(leaf)[:34] + b"\x0a\x22" + bytes(leaf)[:34]], data),
             "malformed dag-pb link"),
        case("varint-overlong-in-node", b"\x12\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "malformed dag-pb node"),
        case("link-to-missing-block", encode_node([link], data), "incomplete"),
    ]


# ---------------------------------------------------------------------------------------- CIDs


def cid_cases() -> list[Hostile]:
    def case(name: str, text: str, match: str) -> Hostile:
        return Hostile(f"cid/{name}", lambda ws: ["car", "export", text, "-o", ws.out], match)

    good = str(TINY)
    return [
        case("unknown-multibase", "x" + good[1:], "unknown multibase prefix|not a hash"),
        case("base32-bad-char", "b" + "1" * 58, "not a CID|not a hash"),
        case("base58-bad-char", "Qm" + "0" * 44, "not a CID|not a hash"),
        case("version-2", "b" + __import__("base64").b32encode(b"\x02\x55\x12\x20" + bytes(32)).decode().lower().rstrip("="),
             "version 2|not a hash"),
        case("digest-length-mismatch", "f01551220" + "00" * 31, "not a hash|digest bytes"),
        case("digest-too-short", "f0155120400000000", "unsafe"),
        case("identity-too-long", "f015500" + "8101" + "00" * 129, "not a hash|over the 128-byte limit"),
        case("cyrillic-lookalike", "bаfkrei" + good[7:], "not a hash|not a CID"),
        case("nul-byte", good[:10] + "\u0000" + good[11:], "not a hash|not a CID"),
        case("one-megabyte", "b" + "a" * 1_000_000, "CID_CHARS"),
        case("multibase-cidv0", "z" + "1" * 10, "not a hash|not a CID|does not exist"),
        case("empty-after-prefix", "/ipfs/", "not a hash|empty CID"),
        case("hex-0x-short", "0x1234", "64 hex digits|record id or content id"),
    ]


# -------------------------------------------------------------------------------- config files


def config_cases() -> list[Hostile]:
    def case(name: str, text: str | bytes, match: str) -> Hostile:
        def build(ws: Workspace) -> list[str]:
            ws.setup()
            (ws.home / "config.json").write_bytes(text.encode() if isinstance(text, str) else text)
            return ["config", "show"]
        return Hostile(f"config/{name}", build, match)

    return [
        case("nested-100k", deep_json(), "JSON_DEPTH"),
        case("nested-objects-100k", deep_object(), "JSON_DEPTH"),
        case("over-1mib", b" " * (1024 * 1024 + 1), "CONFIG_BYTES"),
        case("not-json", "{", "not valid JSON"),
        case("not-utf8", b"\xff\xfe", "not UTF-8"),
        case("array", "[]", "must hold a JSON object"),
        case("nan", '{"rpc_url": NaN}', "not valid JSON"),
        case("networks-list", '{"networks": ["devnet"]}', "networks must be"),
        case("network-entry-string", '{"networks": {"devnet": "http://x"}}', "networks.devnet must be"),
        case("chain-id-string", '{"networks": {"devnet": {"rpc_url": "http://x", "chain_id": "31337"}}}', "chain_id must be"),
        case("chain-id-negative", '{"networks": {"devnet": {"rpc_url": "http://x", "chain_id": -1}}}', "chain_id must be"),
        case("trust-string", '{"trust": "0xabc"}', "trust must be"),
        case("gateways-number", '{"gateways": 5}', "gateways must be"),
        case("rpc-url-number", '{"rpc_url": 5}', "rpc_url must be"),
        case("keystore-object", '{"keystore": {"a": 1}}', "keystore must be"),
    ]


# ------------------------------------------------------------------------------------ keystores


def _keystore(kdf: str = "scrypt", **params: object) -> dict:
    base = {"scrypt": {"dklen": 32, "n": 2, "r": 1, "p": 1, "salt": "00"},
            "pbkdf2": {"dklen": 32, "c": 2, "prf": "hmac-sha256", "salt": "00"}}[kdf]
    return {"address": "7e5f4552091a69125d5dfcb7b8c2659029395bdf", "version": 3, "id": "x",
            "crypto": {"cipher": "aes-128-ctr", "cipherparams": {"iv": "00" * 16}, "ciphertext": "00" * 32,
                       "kdf": kdf, "kdfparams": {**base, **params}, "mac": "00" * 32}}


def keystore_cases() -> list[Hostile]:
    def case(name: str, content: str | bytes, match: str) -> Hostile:
        def build(ws: Workspace) -> list[str]:
            path = ws.input("key.json", content)
            # A command that signs: a read (resolve, show, ls, assemble, verify) loads no key at all.
            return ["--keystore", path, "yank", "0x" + "00" * 32]
        return Hostile(f"keystore/{name}", build, match, env={"ELEMENTS_KEYSTORE_PASSWORD": "pw"})

    return [
        case("nested-100k", deep_json(), "JSON_DEPTH"),
        case("over-1mib", b" " * (1024 * 1024 + 1), "CONFIG_BYTES"),
        case("not-json", "{", "not readable JSON"),
        case("scrypt-n-2-to-40", json.dumps(_keystore(n=1 << 40)), "SCRYPT_MEMORY_BYTES"),
        case("scrypt-r-huge", json.dumps(_keystore(n=1 << 10, r=1 << 30)), "SCRYPT_MEMORY_BYTES"),
        case("scrypt-p-huge", json.dumps(_keystore(n=1 << 14, r=8, p=1 << 20)), "SCRYPT_WORK_BYTES"),
        case("scrypt-n-not-power-of-two", json.dumps(_keystore(n=1000)), "not a power of two"),
        case("scrypt-n-string", json.dumps(_keystore(n="16384")), "not a positive integer"),
        case("dklen-huge", json.dumps(_keystore(dklen=1 << 30)), "derives a"),
        case("pbkdf2-c-2-to-40", json.dumps(_keystore("pbkdf2", c=1 << 40)), "PBKDF2_ITERATIONS"),
        case("wrong-mac", json.dumps(_keystore()), "wrong password|not an eth-account keystore"),
        case("crypto-not-object", json.dumps({"crypto": [1]}), "not an eth-account keystore|wrong password"),
    ]


def keys_list_case() -> Hostile:
    """``keys list`` skips a keystore it cannot read (it used to crash on a deeply nested one)."""
    def build(ws: Workspace) -> list[str]:
        ws.setup()
        (ws.home / "keystores").mkdir()
        (ws.home / "keystores" / "deep.json").write_text(deep_json())
        return ["keys", "list"]
    return Hostile("keystore/list-skips-nested-100k", build, "", code=0, stdout="no keystores|^$")


# ---------------------------------------------------------------------------- signed publishes


def signed_cases() -> list[Hostile]:
    base = {"format": "elements.signed-publish/v1", "chain_id": 1, "registry": "0x" + "00" * 20,
            "publisher": "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf", "records": []}

    def case(name: str, content: str | bytes | dict, match: str) -> Hostile:
        def build(ws: Workspace) -> list[str]:
            text = json.dumps(content) if isinstance(content, dict) else content
            return ["relay", ws.input("signed.json", text)]
        return Hostile(f"signed/{name}", build, match, env={"ELEMENTS_PRIVATE_KEY": DEV_KEY})

    return [
        case("nested-100k", deep_json(), "JSON_DEPTH"),
        case("over-16mib", b" " * (16 * 1024 * 1024 + 1), "DOCUMENT_BYTES"),
        case("not-json", "{", "not a signed-publish JSON file"),
        case("array", "[]", "is not an elements.signed-publish/v1 file"),
        case("records-not-list", {**base, "records": {}}, "is not an elements.signed-publish/v1 file"),
        case("chain-id-list", {**base, "chain_id": [1], "records": [{}]}, "no valid chain_id"),
        case("registry-garbage", {**base, "registry": "nope", "records": [{}]}, "no valid chain_id"),
        case("wrong-chain", {**base, "records": [{}]}, "relay on the chain they were signed for"),
    ] + [Hostile("signed/directory", lambda ws: ["relay", ws.input("d/x", b"").parent], "is a directory")]


def mergekit_cases() -> list[Hostile]:
    """``convert-mergekit`` of hostile configs and templates (each once a TypeError, ValueError,
    KeyError or MemoryError, or a hang on a huge layer range)."""
    models = {"org/base": {"content_id": "0x" + "aa" * 32, "record": "0x" + "01" * 32},
              "org/math": {"content_id": "0x" + "bb" * 32, "record": "0x" + "02" * 32}}
    slerp = "merge_method: slerp\nbase_model: org/base\nslices:\n  - sources:\n" \
            "      - {model: org/base, layer_range: [0, RANGE]}\n      - {model: org/math, layer_range: [0, RANGE]}\n"

    def case(name: str, config: str, match: str, template: str | None = None) -> Hostile:
        def build(ws: Workspace) -> list[str]:
            argv = ["convert-mergekit", ws.input("config.yml", config), "--mergekit-models", ws.input("models.json", json.dumps(models)),
                    "-o", ws.out]
            return argv + (["--mergekit-template", template] if template is not None else [])
        return Hostile(f"mergekit/{name}", build, match)

    ties = "merge_method: ties\nbase_model: org/base\nmodels:\n  - model: org/base\n  - model: org/math\n"
    return [
        case("parameters-number", ties + "parameters: 5\n", "parameters must be a mapping"),
        case("model-parameters-list", ties.replace("model: org/math", "model: org/math\n    parameters: [1, 2]"),
             "parameters must be a mapping"),
        case("dtype-list", ties + "dtype: [bfloat16]\n", "dtype"),
        case("base-model-list", ties.replace("base_model: org/base", "base_model: [org/base]"), "base_model must be a model name"),
        case("numeric-keys", ties + "1: a\nx: b\n", "field\\(s\\) 1, x"),
        case("layer-range-10-to-30", slerp.replace("RANGE", str(10 ** 30)), "LAYER_NUMBER"),
        case("template-format-field", slerp.replace("RANGE", "2"), "exactly once", "{x}"),
        case("template-format-width", slerp.replace("RANGE", "2"), "exactly once", "model.{n:>99999999999}."),
        case("nested-100k", "models: " + deep_json(), "JSON_DEPTH"),
    ]


def split_rule_cases() -> list[Hostile]:
    """``split --rule`` patterns (a repeat over 2**32 was an OverflowError; a nested repeat ran in
    exponential time on a tensor name; a nested set printed a FutureWarning as a second line)."""
    def case(name: str, rule: str, match: str) -> Hostile:
        def build(ws: Workspace) -> list[str]:
            ws.elements()
            return ["split", ws.root / "in" / "elements" / "weights.safetensors", "--out", ws.out, "--rule", rule]
        return Hostile(f"split/{name}", build, match)

    return [
        case("rule-repeat-2-to-32", "a{4294967296}=x", "not a valid regular expression"),
        case("rule-nested-repeat", "(a+)+$=x", "exponential"),
        case("rule-2000-chars", "a" * 2000 + "=x", "REGEX_CHARS"),
        case("rule-nested-set", "[[z]=x", "match no --rule"),
    ]


def output_path_cases() -> list[Hostile]:
    def long_out(ws: Workspace) -> list[str]:
        ws.elements()
        recipe = ws.input("recipe.json", json.dumps(_recipe(ws)))
        return ["assemble-local", recipe, "--elements", ws.root / "in" / "elements", "-o", ws.root / "out" / ("o" * 300)]

    def under_a_file(ws: Workspace) -> list[str]:
        ws.elements()
        recipe = ws.input("recipe.json", json.dumps(_recipe(ws)))
        blocker = ws.input("blocker", b"a file")
        return ["assemble-local", recipe, "--elements", ws.root / "in" / "elements", "-o", blocker / "model"]

    def split_long(ws: Workspace) -> list[str]:
        ws.elements()
        return ["split", ws.root / "in" / "elements" / "weights.safetensors", "--out", ws.root / "out" / ("s" * 256)]

    def long_name_250(ws: Workspace) -> list[str]:
        ws.elements()
        recipe = ws.input("recipe.json", json.dumps(_recipe(ws)))
        return ["assemble-local", recipe, "--elements", ws.root / "in" / "elements", "-o", ws.root / "out" / ("p" * 250), "--force"]

    def car_export_under_file(ws: Workspace) -> list[str]:
        blocker = ws.input("blocker", b"a file")
        return ["car", "export", str(TINY), "-o", blocker / "x.car"]

    return [
        Hostile("output/assemble-name-300-bytes", long_out, "PATH_COMPONENT_BYTES"),
        Hostile("output/assemble-under-a-file", under_a_file, "cannot use .*blocker"),
        Hostile("output/split-name-256-bytes", split_long, "PATH_COMPONENT_BYTES|File name too long; use a shorter name"),
        Hostile("output/assemble-name-250-bytes-works", long_name_250, "", code=0, stdout="assembled"),
        Hostile("output/car-export-under-a-file", car_export_under_file, "not in the local block store|Not a directory"),
    ]


def command_cases() -> list[Hostile]:
    """The same hostile files through the other commands that read them (publish, verify, split,
    compose, publish-model, publish-delta): each refuses before it writes or sends anything."""
    nested_header = header_file(deep_json())
    nested_index = deep_json()

    def weights(ws: Workspace) -> Path:
        return ws.input("model.safetensors", nested_header)

    def model_dir(ws: Workspace) -> Path:
        ws.input("model/model.safetensors.index.json", nested_index)
        ws.input("model/config.json", b"{}")
        return ws.root / "in" / "model"

    def recipe(ws: Workspace) -> Path:
        return ws.input("recipe.json", deep_json())

    key = {"ELEMENTS_PRIVATE_KEY": DEV_KEY}
    return [
        Hostile("command/verify-nested-header", lambda ws: ["verify", weights(ws)], "JSON_DEPTH"),
        Hostile("command/verify-nested-index", lambda ws: ["verify", model_dir(ws)], "JSON_DEPTH"),
        Hostile("command/publish-nested-header", lambda ws: ["publish", weights(ws), "--license", "MIT"], "JSON_DEPTH", env=key),
        Hostile("command/publish-sign-only-nested-header", lambda ws: [
            "publish", weights(ws), "--license", "MIT", "--sign-only", ws.out], "JSON_DEPTH", env=key),
        Hostile("command/publish-model-nested-index", lambda ws: ["publish-model", model_dir(ws), "--license", "MIT"], "JSON_DEPTH",
                env=key),
        Hostile("command/publish-delta-nested-index", lambda ws: [
            "publish-delta", "0x" + "11" * 32, model_dir(ws), "--license", "MIT"], "JSON_DEPTH|not a record|no record", env=key),
        Hostile("command/split-nested-header", lambda ws: ["split", weights(ws), "--out", ws.out], "JSON_DEPTH"),
        Hostile("command/compose-nested-recipe", lambda ws: ["compose", recipe(ws), "--license", "MIT"], "JSON_DEPTH", env=key),
        Hostile("command/compose-dry-run-nested-recipe", lambda ws: ["compose", recipe(ws), "--license", "MIT", "--dry-run"],
                "JSON_DEPTH", env=key),
        Hostile("command/assemble-local-dry-run-nested-recipe", lambda ws: [
            "assemble-local", recipe(ws), "--elements", ws.root / "in", "--dry-run"], "JSON_DEPTH"),
        Hostile("command/cid-of-a-nested-file-is-just-bytes", lambda ws: ["cid", weights(ws)], "", code=0, stdout="^baf"),
        Hostile("command/id-of-a-nested-json-file-is-just-bytes", lambda ws: ["id", ws.input("x.json", nested_index)], "", code=0,
                stdout="0x[0-9a-f]{64}"),
    ]


def option_cases() -> list[Hostile]:
    """Option values that are numbers no computer holds (each once an OverflowError or a
    ValueError from int() as an internal error)."""
    def assemble(size: str) -> Callable[[Workspace], list[str]]:
        def build(ws: Workspace) -> list[str]:
            recipe = ws.input("recipe.json", json.dumps(_recipe(ws)))
            return ["assemble-local", recipe, "--elements", ws.root / "in" / "elements", "-o", ws.out, "--max-shard-size", size]
        return build

    def sign(hours: str) -> Callable[[Workspace], list[str]]:
        return lambda ws: ["publish", ws.input("notes.txt", "notes"), "--license", "MIT", "--sign-only", ws.out, "--valid-for", hours]

    key = {"ELEMENTS_PRIVATE_KEY": DEV_KEY}
    return [
        *(Hostile(f"option/max-shard-size-{name}", assemble(size), "not a size")
          for name, size in [("inf", "inf"), ("1e999", "1e999"), ("400-digits", "9" * 400), ("inf-gb", "infGB")]),
        *(Hostile(f"option/cache-limit-{name}", lambda ws, size=size: ["config", "set", "cache_limit", size], "not a size")
          for name, size in [("inf", "inf"), ("400-digits", "9" * 400)]),
        *(Hostile(f"option/valid-for-{name}", sign(hours), "--valid-for", env=key)
          for name, hours in [("nan", "nan"), ("inf", "inf"), ("400-digits", "9" * 400), ("zero", "0"), ("negative", "-1")]),
    ]


def url_cases() -> list[Hostile]:
    """Endpoint URLs that do not parse, from a flag or the config file (each once a ValueError or
    httpx.InvalidURL as an internal error)."""
    cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"

    def flag(name: str, argv: list[str]) -> Hostile:
        return Hostile(f"url/{name}", lambda ws: [*argv, "-o", ws.out] if argv[0] == "car" else argv, "not a valid URL")

    def network(ws: Workspace) -> list[str]:
        ws.setup()
        (ws.home / "config.json").write_text(json.dumps({"networks": {"lab": {"rpc_url": "http://127.0.0.1:99999"}}}))
        return ["ls", "--network", "lab"]

    return [
        flag("rpc-url-ipv6-unclosed", ["ls", "--rpc-url", "http://[::1"]),
        flag("rpc-url-port-99999", ["ls", "--rpc-url", "http://127.0.0.1:99999"]),
        flag("rpc-url-port-word", ["ls", "--rpc-url", "http://127.0.0.1:abc"]),
        flag("rpc-url-host-not-an-address", ["ls", "--rpc-url", "http://[zz]:5"]),
        flag("rpc-url-second-of-two", ["ls", "--rpc-url", "http://127.0.0.1:1", "--rpc-url", "http://127.0.0.1:-1"]),
        flag("ipfs-api-ipv6-unclosed", ["car", "export", cid, "--ipfs-api", "http://[::1"]),
        flag("gateway-port-word", ["car", "export", cid, "--gateway", "http://127.0.0.1:abc"]),
        flag("gateway-ipv4-999", ["car", "export", cid, "--gateway", "http://999.0.0.1"]),
        flag("ipfs-api-ipv4-999", ["car", "export", cid, "--ipfs-api", "http://999.0.0.1:5001"]),
        flag("ipfs-api-multiaddr-ipv4-999", ["car", "export", cid, "--ipfs-api", "/ip4/999.0.0.1/tcp/5001"]),
        Hostile("url/rpc-url-password-not-echoed", lambda ws: ["ls", "--rpc-url", "http://user:hunter2@127.0.0.1:abc"],
                "^(?!.*hunter2).*not a valid URL"),
        Hostile("url/network-rpc-url-port-99999", network, "not a valid URL"),
    ]


def endless_cases() -> list[Hostile]:
    """Documents that never end: a path (or a symlink) to ``/dev/zero`` has no size to check, so a
    reader that trusts ``stat`` reads until memory runs out (each once a hang)."""
    def zero(ws: Workspace, name: str) -> Path:
        link = ws.root / "in" / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/dev/zero")
        return link

    def recipe(ws: Workspace) -> list[str]:
        ws.elements()
        return ["assemble-local", zero(ws, "recipe.json"), "--elements", ws.root / "in" / "elements", "-o", ws.out]

    def config(ws: Workspace) -> list[str]:
        return ["convert-mergekit", zero(ws, "config.yml"), "--mergekit-models", ws.input("models.json", "{}"), "-o", ws.out]

    def models(ws: Workspace) -> list[str]:
        config = "merge_method: linear\nmodels:\n  - model: org/base\n"
        return ["convert-mergekit", ws.input("config.yml", config), "--mergekit-models", zero(ws, "models.json"), "-o", ws.out]

    def index(ws: Workspace) -> list[str]:
        return ["id", zero(ws, "ckpt/model.safetensors.index.json")]

    return [
        Hostile("recipe/dev-zero", recipe, "DOCUMENT_BYTES"),
        Hostile("mergekit/config-dev-zero", config, "DOCUMENT_BYTES"),
        Hostile("mergekit/models-dev-zero", models, "DOCUMENT_BYTES"),
        Hostile("safetensors/index-dev-zero", index, "limit"),
    ]


def corpus() -> list[Hostile]:
    """Every command-line case, in a stable order."""
    cases = [
        *safetensors_cases(), *index_cases(), *recipe_cases(), *local_manifest_cases(), *car_cases(),
        *dagpb_cases(), *cid_cases(), *config_cases(), *keystore_cases(), keys_list_case(), *signed_cases(),
        *output_path_cases(), *command_cases(), *mergekit_cases(), *split_rule_cases(), *endless_cases(), *url_cases(), *option_cases(),
    ]
    ids = [c.id for c in cases]
    assert len(set(ids)) == len(ids), "case ids must be unique"
    return cases
