"""Every limit on what Elements reads from outside, and the bounded parsers that enforce them.

Anyone may publish, so a document, a header, a block or a node's answer is written by an
adversary as often as by a friend. Each thing read from outside is checked against an explicit
limit **before** it is parsed or allocated, and a violation is a :class:`LimitExceededError` (an
:class:`~registry.errors.InputError`) whose message names the limit, the value and the fix.
``docs/limits.md`` lists every limit of :data:`LIMITS` (a test keeps the two equal).

Why parse here and not with ``json.loads`` directly: importing py-evm raises Python's recursion
limit to 100,000, so ``json.loads`` of a 100 KB document of nested arrays overflows the C stack
and kills the process (exit 139) instead of raising. :func:`loads_json` measures the nesting
with a linear scan first (strings skipped, brackets counted), whatever the interpreter's
recursion limit, and only then hands the text to ``json``. YAML gets the same treatment from a
composer that counts depth and nodes, aliases expanded (:func:`loads_yaml`).
"""

from __future__ import annotations

import json
import math
import os
import re
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any, Callable

from .errors import InputError

__all__ = [
    "Limit",
    "LIMITS",
    "LimitExceededError",
    "NotJSONError",
    "JSON_DEPTH",
    "JSON_VALUES",
    "JSON_NUMBER_CHARS",
    "DOCUMENT_BYTES",
    "CONFIG_BYTES",
    "MODEL_JSON_BYTES",
    "SERVICE_ANSWER_BYTES",
    "SAFETENSORS_HEADER_BYTES",
    "TENSORS",
    "TENSOR_RANK",
    "NAME_BYTES",
    "PATH_COMPONENT_BYTES",
    "PATH_BYTES",
    "RECIPE_INPUTS",
    "RECIPE_STEPS",
    "RECIPE_FILES",
    "LAYER_NUMBER",
    "LORA_RANK",
    "PLAN_WORK",
    "COMPOSITION_NESTING",
    "ANCESTORS",
    "REGEX_CHARS",
    "CID_CHARS",
    "CAR_HEADER_BYTES",
    "CARV2_PADDING_BYTES",
    "BLOCK_BYTES",
    "DAG_DEPTH",
    "DAGPB_LINKS",
    "DAGPB_NAME_BYTES",
    "SCRYPT_MEMORY_BYTES",
    "SCRYPT_WORK_BYTES",
    "PBKDF2_ITERATIONS",
    "measure_json",
    "loads_json",
    "load_json_file",
    "loads_yaml",
    "read_bounded",
    "check_name",
    "check_path",
    "check_output_path",
    "temporary_name",
]


class Limit(int):
    """An int that knows its name, what it bounds, its unit and how to get under it."""

    name: str
    unit: str
    applies: str
    fix: str

    def __new__(cls, value: int, name: str, unit: str, applies: str, fix: str) -> "Limit":
        self = super().__new__(cls, value)
        self.name, self.unit, self.applies, self.fix = name, unit, applies, fix
        return self

    def __reduce__(self) -> tuple[Any, ...]:  # pickled (multiprocessing) as what it is
        return (Limit, (int(self), self.name, self.unit, self.applies, self.fix))

    def shown(self) -> str:
        """The value as the docs write it (``16 MiB``, ``64``)."""
        value = int(self)
        if self.unit == "bytes":
            for size, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
                if value >= size and value % size == 0:
                    return f"{value // size} {suffix}"
            return f"{value:,} bytes"
        return f"{value:,}" + (f" {self.unit}" if self.unit else "")

    def describe(self, what: str, value: int | str) -> str:
        """``what is VALUE, over the limit of LIMIT (NAME)``: the problem, without the fix."""
        shown = f"{value:,}" if isinstance(value, int) else str(value)
        unit = f" {self.unit}" if self.unit and isinstance(value, int) else ""
        return f"{what} is {shown}{unit}, over the limit of {self.shown()} ({self.name})"

    def exceeded(self, what: str, value: int | str, error: Callable[[str], Exception] | None = None) -> Exception:
        """The error for ``what`` having ``value`` over this limit (``error`` builds it from the
        message; a :class:`LimitExceededError` by default)."""
        message = f"{self.describe(what, value)}; {self.fix}"
        if error is None:
            return LimitExceededError(message, limit=self, value=value, what=what)
        made = error(message)
        if isinstance(made, LimitExceededError):
            made.limit, made.value, made.what = self, value, what
        return made

    def check(self, value: int, what: str, error: Callable[[str], Exception] | None = None) -> int:
        """``value``, or raise :meth:`exceeded` when it is over the limit."""
        if value > self:
            raise self.exceeded(what, value, error)
        return value


class LimitExceededError(InputError):
    """Something read from outside is over one of the limits of :data:`LIMITS`.

    ``limit`` is the :class:`Limit` (its ``name`` is what the docs list), ``value`` what was found,
    ``what`` what had it.
    """

    def __init__(self, message: str, *, limit: Limit | None = None, value: Any = None, what: str = "") -> None:
        super().__init__(message)
        self.limit = limit
        self.value = value
        self.what = what


class NotJSONError(InputError):
    """Bytes that are not UTF-8 JSON (the message says where; callers add what the bytes were)."""


_MiB = 1 << 20

# -- JSON and YAML -----------------------------------------------------------------------------

JSON_DEPTH = Limit(
    64, "JSON_DEPTH", "levels", "nesting of arrays and objects in any JSON or YAML read: documents, "
    "safetensors headers, recipes, config files, keystores, JSON-RPC and Kubo answers",
    "no document Elements reads nests deeper; the input is malformed or hostile",
)
JSON_VALUES = Limit(
    4_000_000, "JSON_VALUES", "values", "values (numbers, strings, arrays, objects) in one JSON or YAML "
    "document, YAML aliases expanded",
    "split the document; a manifest or recipe this large is not one Elements writes",
)
JSON_NUMBER_CHARS = Limit(
    100, "JSON_NUMBER_CHARS", "characters", "one number literal in JSON or YAML (a u64 has 20 digits)",
    "numbers are at most 100 characters long; the input is malformed or hostile",
)
DOCUMENT_BYTES = Limit(
    16 * _MiB, "DOCUMENT_BYTES", "bytes", "a record's document (element manifest or recipe) fetched from "
    "IPFS; a local recipe file; a signed-publish file",
    "manifests and recipes are small JSON documents; a record points at data, not at a manifest",
)
CONFIG_BYTES = Limit(
    1 * _MiB, "CONFIG_BYTES", "bytes", "$ELEMENTS_HOME/config.json, deployments.json, a keystore file, a commitment state file",
    "the file is not one Elements wrote: fix or delete it",
)
MODEL_JSON_BYTES = Limit(
    64 * _MiB, "MODEL_JSON_BYTES", "bytes", "a model's JSON file that a recipe patches or reads "
    "(config.json, adapter_config.json, tokenizer files)",
    "patch a smaller file, or copy this one without a patch",
)
SERVICE_ANSWER_BYTES = Limit(
    64 * _MiB, "SERVICE_ANSWER_BYTES", "bytes", "one JSON answer of a JSON-RPC node or a Kubo RPC API",
    "the node sent more than any answer Elements asks for; use another endpoint",
)

# -- safetensors, manifests and recipes ----------------------------------------------------------

SAFETENSORS_HEADER_BYTES = Limit(
    100_000_000, "SAFETENSORS_HEADER_BYTES", "bytes", "a safetensors header, a sharded checkpoint's index "
    "(the safetensors library's own limit)",
    "the file is not a valid safetensors file: re-export it (safetensors save_file)",
)
TENSORS = Limit(
    250_000, "TENSORS", "tensors", "tensors in one safetensors file, element manifest or recipe output table "
    "(the largest open models have under 100,000)",
    "split the weights into several elements",
)
TENSOR_RANK = Limit(
    64, "TENSOR_RANK", "dimensions", "dimensions of one tensor (numpy's and PyTorch's own maximum)",
    "no framework makes tensors of more dimensions; the input is malformed or hostile",
)
NAME_BYTES = Limit(
    1024, "NAME_BYTES", "bytes", "a tensor name (in a safetensors header, a manifest, a recipe, after "
    "renames) and a recipe input name, UTF-8",
    "use shorter names (real models' tensor names are under 200 bytes)",
)
PATH_COMPONENT_BYTES = Limit(
    255, "PATH_COMPONENT_BYTES", "bytes", "one component of a file path a recipe writes or reads "
    "(files, output.files, inputs.path), UTF-8: what every common file system allows",
    "use a shorter file name",
)
PATH_BYTES = Limit(
    4096, "PATH_BYTES", "bytes", "a whole relative file path in a recipe, UTF-8 (Linux PATH_MAX)",
    "use a shorter path",
)
RECIPE_INPUTS = Limit(
    4096, "RECIPE_INPUTS", "inputs", "inputs of one recipe (a published recipe's inputs are also parents "
    "of its record, which the contract caps at 127)",
    "split the recipe into compositions that build on each other",
)
RECIPE_STEPS = Limit(
    10_000, "RECIPE_STEPS", "steps", "steps of one recipe; slices, sources, renames, patterns or names "
    "listed in one step",
    "select tensors with patterns (select, match) instead of one step per tensor",
)
RECIPE_FILES = Limit(
    4096, "RECIPE_FILES", "files", "entries of recipe.files and of output.files",
    "ship fewer files with the model",
)
LAYER_NUMBER = Limit(
    65_535, "LAYER_NUMBER", "", "a layer number in a stack step (layers, layer_range, start)",
    "layer numbers are small integers (a model has at most a few hundred layers)",
)
LORA_RANK = Limit(
    65_536, "LORA_RANK", "", "a LoRA rank (r, rank_pattern) in a recipe or adapter_config.json",
    "LoRA ranks are small integers; check the adapter config",
)
PLAN_WORK = Limit(
    20_000_000, "PLAN_WORK", "name tests", "tensor names a recipe's steps scan and test against their patterns "
    "while it is planned (tensors of the inputs a step reads x its patterns, summed over the steps)",
    "select with fewer steps or patterns; a recipe that scans this much is not one anyone writes by hand",
)
COMPOSITION_NESTING = Limit(
    16, "COMPOSITION_NESTING", "levels", "levels of compositions nested below a recipe (its own composition "
    "inputs are level 1), when assembling and verifying",
    "flatten the recipe: take the tensors of a deeply nested composition's elements directly",
)
ANCESTORS = Limit(
    10_000, "ANCESTORS", "records", "records of one claim's ancestry that verify checks (licences, yanks, trust)",
    "the ancestry beyond it is reported as not checked",
)
REGEX_CHARS = Limit(
    1024, "REGEX_CHARS", "characters", "a regular expression in a recipe (match, rename, target_modules)",
    "use a shorter pattern or several steps",
)

# -- IPFS: CAR, blocks, dag-pb -----------------------------------------------------------------

CID_CHARS = Limit(
    1024, "CID_CHARS", "characters", "a CID in text (the longest real one, an identity CID, has about 215)",
    "the text is not a CID",
)
CAR_HEADER_BYTES = Limit(
    1 * _MiB, "CAR_HEADER_BYTES", "bytes", "the dag-cbor header of a CAR (v1, or inside a v2)",
    "the file is not a CAR Elements, Kubo or go-car writes",
)
CARV2_PADDING_BYTES = Limit(
    16 * _MiB, "CARV2_PADDING_BYTES", "bytes", "the gap between a CARv2 header and its data payload "
    "(data offset minus 51)",
    "the CARv2 header is corrupt: export the CAR again (`elements car export` or `ipfs dag export`)",
)
BLOCK_BYTES = Limit(
    4 * _MiB, "BLOCK_BYTES", "bytes", "one block: a CAR section, a block from a gateway",
    "no UnixFS importer makes larger blocks (Kubo's limit is 2 MiB); the source is not trustworthy",
)
DAG_DEPTH = Limit(
    64, "DAG_DEPTH", "levels", "levels of a UnixFS DAG walked or read",
    "the DAG is not a file anyone imported; the source is not trustworthy",
)
DAGPB_LINKS = Limit(
    65_536, "DAGPB_LINKS", "links", "links of one dag-pb node (Kubo's file nodes have at most 1024)",
    "the block is not a UnixFS node any importer writes; the source is not trustworthy",
)
DAGPB_NAME_BYTES = Limit(
    255, "DAGPB_NAME_BYTES", "bytes", "the name of one dag-pb link (a file name in a UnixFS directory)",
    "the block is not a UnixFS node Elements reads; the source is not trustworthy",
)

# -- keystores -----------------------------------------------------------------------------------

SCRYPT_MEMORY_BYTES = Limit(
    1 << 30, "SCRYPT_MEMORY_BYTES", "bytes", "memory a keystore's scrypt parameters ask for (128 x n x r; "
    "eth-account's and geth's default is 256 MiB)",
    "the keystore was not written by eth-account or geth; re-import the key with `elements keys import`",
)
SCRYPT_WORK_BYTES = Limit(
    2 << 30, "SCRYPT_WORK_BYTES", "bytes", "work a keystore's scrypt parameters ask for (128 x n x r x p; "
    "eth-account's and geth's defaults are 256 MiB)",
    "the keystore was not written by eth-account or geth; re-import the key with `elements keys import`",
)
PBKDF2_ITERATIONS = Limit(
    10_000_000, "PBKDF2_ITERATIONS", "iterations", "a keystore's pbkdf2 iterations (eth-account's default "
    "is 1,000,000)",
    "the keystore was not written by eth-account or geth; re-import the key with `elements keys import`",
)

#: Every limit, in the order docs/limits.md lists them.
LIMITS: tuple[Limit, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Limit))


# ---------------------------------------------------------------------------------------------
# JSON

# A JSON string (escapes included); the unrolled form runs in linear time.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b"[]{},")
_NOT_STRUCTURE_OR_QUOTE = bytes(b for b in range(256) if b not in b'[]{},"')
_DELTA = [0] * 256
_DELTA[ord("[")] = _DELTA[ord("{")] = 1
_DELTA[ord("]")] = _DELTA[ord("}")] = -1


def measure_json(data: bytes) -> tuple[int, int]:
    """``(depth, values)`` of JSON text, measured without parsing it: the deepest nesting of
    brackets outside strings (what ``json.loads`` recurses to, also for malformed text) and an
    upper bound on the number of values. Linear in ``len(data)``."""
    if b"\\" in data or data.count(b'"') % 2:
        structure = _STRING.sub(b'""', data).translate(None, _NOT_STRUCTURE)
    else:
        # No escapes and every string closed: each quote opens or closes a string, so the text
        # outside strings is every other piece between quotes (a fast path for large answers),
        # cut from the quotes and brackets alone (one pass of translate drops the rest first).
        structure = b"".join(data.translate(None, _NOT_STRUCTURE_OR_QUOTE).split(b'"')[::2])
    commas = structure.count(b",")
    brackets = structure.translate(None, b",")
    opens = brackets.count(b"[") + brackets.count(b"{")
    depth = max(accumulate(map(_DELTA.__getitem__, brackets)), default=0)
    return max(depth, 0), commas + opens + 1


def _check_number(text: str, what: str) -> None:
    if len(text) > JSON_NUMBER_CHARS:
        raise JSON_NUMBER_CHARS.exceeded(f"a number in {what}", f"{len(text):,} characters long")


def loads_json(
    data: bytes | bytearray | memoryview | str,
    *,
    what: str,
    max_bytes: Limit = DOCUMENT_BYTES,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> Any:
    """Parse JSON text within the limits: size (``max_bytes``, a :class:`Limit`), nesting
    (:data:`JSON_DEPTH`), value count (:data:`JSON_VALUES`), number length
    (:data:`JSON_NUMBER_CHARS`). NaN, Infinity and numbers too large for a float are refused
    (JSON has none of them).

    Args:
        what: names the input in messages (``"the manifest bafy…"``, ``"config.json"``).
        object_pairs_hook: as for ``json.loads`` (to refuse duplicate keys).

    Raises:
        LimitExceededError: over a limit (checked before parsing).
        NotJSONError: not UTF-8, or not JSON.
    """
    if isinstance(data, str):
        text = data
        raw = data.encode("utf-8", "surrogatepass")
    else:
        raw = bytes(data)
        text = None
    max_bytes.check(len(raw), what)
    depth, values = measure_json(raw)
    JSON_DEPTH.check(depth, f"the nesting of {what}")
    JSON_VALUES.check(values, f"the number of values in {what}")
    if text is None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotJSONError(f"{what} is not UTF-8 (byte {exc.start})") from None

    def parse_int(literal: str) -> int:
        _check_number(literal, what)
        return int(literal)

    def parse_float(literal: str) -> float:
        _check_number(literal, what)
        value = float(literal)
        if not math.isfinite(value):
            raise NotJSONError(f"{what} holds the number {literal}, too large for a float")
        return value

    def refuse_constant(name: str) -> Any:
        raise NotJSONError(f"{name} is not allowed (JSON has no {name})")

    try:
        return json.loads(text, object_pairs_hook=object_pairs_hook, parse_int=parse_int,
                          parse_float=parse_float, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise NotJSONError(f"{exc.msg} (line {exc.lineno} column {exc.colno})") from None
    except RecursionError:  # pragma: no cover - the depth was measured; kept for a lowered recursion limit
        raise JSON_DEPTH.exceeded(f"the nesting of {what}", "too deep for this interpreter") from None


def read_bounded(path: str | os.PathLike[str], max_bytes: Limit, what: str | None = None) -> bytes:
    """A file's bytes, refused before reading when it is over ``max_bytes``.

    Raises:
        LimitExceededError: the file is larger; FileNotFoundError / OSError as ``open`` raises them.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        max_bytes.check(size, what or str(path))
        data = handle.read(int(max_bytes) + 1)  # a file that grew under us is still bounded
    max_bytes.check(len(data), what or str(path))
    return data


def load_json_file(path: str | os.PathLike[str], max_bytes: Limit, what: str | None = None,
                   object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None) -> Any:
    """:func:`read_bounded`, then :func:`loads_json`.

    Raises:
        LimitExceededError, NotJSONError; FileNotFoundError / OSError from reading.
    """
    what = what or str(path)
    return loads_json(read_bounded(path, max_bytes, what), what=what, max_bytes=max_bytes,
                      object_pairs_hook=object_pairs_hook)


# ---------------------------------------------------------------------------------------------
# YAML


def loads_yaml(text: str, *, what: str, max_bytes: Limit = DOCUMENT_BYTES) -> Any:
    """Parse YAML within the limits of :func:`loads_json`, into JSON values only.

    PyYAML composes nodes recursively and lets aliases multiply a small text into a huge value
    ("billion laughs"); this composer counts depth and nodes, each alias counted as the whole
    node it repeats, and refuses an alias to a node that contains it. Tags that make other
    values than JSON's (timestamps, binary, sets, ordered pairs) are refused.

    Raises:
        LimitExceededError: over a limit; NotJSONError: not YAML, or values JSON does not have.
    """
    import yaml

    max_bytes.check(len(text.encode("utf-8", "surrogatepass")), what)
    loader = None
    try:
        loader = _bounded_loader()(text, what)  # the reader already refuses some characters here
        value = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise NotJSONError(f"{problem}{at}") from None
    finally:
        if loader is not None:
            loader.dispose()
    _check_json_values(value, what)
    return value


@lru_cache(maxsize=1)
def _bounded_loader() -> type:
    import yaml

    class BoundedLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
        def __init__(self, stream: str, what: str) -> None:
            super().__init__(stream)
            self.what = what
            self.depth = 0
            self.deepest = 0
            self.nodes = 0
            self.sizes: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, height) of a finished node

        def _count(self, nodes: int) -> None:
            self.nodes += nodes
            JSON_VALUES.check(self.nodes, f"the number of values in {self.what} (aliases expanded)")

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                if event.anchor in self.anchors and event.anchor not in self.sizes:
                    raise NotJSONError(f"{self.what}: alias *{event.anchor} repeats a node that contains it (a recursive document)")
                nodes, height = self.sizes.get(event.anchor, (1, 1))
                self._count(nodes)
                JSON_DEPTH.check(self.depth + height, f"the nesting of {self.what} (aliases expanded)")
                self.deepest = max(self.deepest, self.depth + height)
                return super().compose_node(parent, index)
            self.depth += 1
            JSON_DEPTH.check(self.depth, f"the nesting of {self.what}")
            outer, self.deepest = self.deepest, self.depth
            start = self.nodes
            self._count(1)
            try:
                node = super().compose_node(parent, index)
            finally:
                self.depth -= 1
            anchor = getattr(event, "anchor", None)
            if anchor is not None:
                self.sizes[anchor] = (self.nodes - start, self.deepest - self.depth)
            self.deepest = max(outer, self.deepest)
            return node

        def construct_yaml_int(self, node: Any) -> Any:
            _check_number(str(node.value), self.what)
            return super().construct_yaml_int(node)

        def construct_yaml_float(self, node: Any) -> Any:
            _check_number(str(node.value), self.what)
            return super().construct_yaml_float(node)

    BoundedLoader.add_constructor("tag:yaml.org,2002:int", BoundedLoader.construct_yaml_int)
    BoundedLoader.add_constructor("tag:yaml.org,2002:float", BoundedLoader.construct_yaml_float)
    return BoundedLoader


_JSON_SCALARS = (str, int, float, bool, type(None))


def _check_json_values(value: Any, what: str) -> None:
    """Refuse values JSON has not (YAML timestamps, binary, sets, pairs; NaN and infinities)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, _JSON_SCALARS) or (isinstance(key, float) and not math.isfinite(key)):
                    raise NotJSONError(f"{what} has a key {key!r} of type {type(key).__name__}; keys are strings (quote it)")
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise NotJSONError(f"{what} holds {item}; JSON numbers are finite")
        elif not isinstance(item, _JSON_SCALARS):
            raise NotJSONError(f"{what} holds a {type(item).__name__} ({str(item)[:40]!r}); only JSON values are allowed (quote it)")


# ---------------------------------------------------------------------------------------------
# names and paths


def check_name(name: str, what: str, error: Callable[[str], Exception] | None = None) -> str:
    """A name (tensor, input) of at most :data:`NAME_BYTES` UTF-8 bytes."""
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > NAME_BYTES:
        raise NAME_BYTES.exceeded(f"{what} {name[:40]!r}…", size, error)
    return name


def check_path(path: str, what: str, error: Callable[[str], Exception] | None = None) -> str:
    """A relative POSIX path whose components fit :data:`PATH_COMPONENT_BYTES` and whole fits
    :data:`PATH_BYTES` (so writing it never fails with "File name too long")."""
    size = len(path.encode("utf-8", "surrogatepass"))
    if size > PATH_BYTES:
        raise PATH_BYTES.exceeded(f"{what} ({path[:40]!r}…)", size, error)
    for part in path.split("/"):
        size = len(part.encode("utf-8", "surrogatepass"))
        if size > PATH_COMPONENT_BYTES:
            raise PATH_COMPONENT_BYTES.exceeded(f"the file name {part[:40]!r}… in {what}", size, error)
    return path


def check_output_path(path: str | os.PathLike[str], what: str = "the output path") -> Path:
    """An output path (``-o OUT``) whose every component fits :data:`PATH_COMPONENT_BYTES` and
    whole absolute form fits :data:`PATH_BYTES`: checked before anything is created, so a name
    the file system refuses is one clean error with nothing left behind."""
    path = Path(path)
    absolute = os.fsencode(os.path.abspath(path))
    if len(absolute) > PATH_BYTES:
        raise PATH_BYTES.exceeded(f"{what} {str(path)[:60]!r}…", len(absolute))
    for part in absolute.split(b"/"):
        if len(part) > PATH_COMPONENT_BYTES:
            shown = os.fsdecode(part)[:40]
            raise PATH_COMPONENT_BYTES.exceeded(f"the name {shown!r}… in {what}", len(part))
    return path


def temporary_name(name: str, tag: str) -> str:
    """A hidden sibling name for ``name`` being written (``.NAME.TAG``), short enough for any
    file system whatever the length of ``name`` (which is cut, never the tag)."""
    room = int(PATH_COMPONENT_BYTES) - len(tag.encode()) - 2
    cut = name
    while len(cut.encode("utf-8", "surrogateescape")) > room:
        cut = cut[:-1]
    return f".{cut}.{tag}"
