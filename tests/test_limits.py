"""registry/limits.py: the limits on outside input, the bounded JSON and YAML parsers, and the
docs table that lists every limit (docs/limits.md)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from registry import limits
from registry.errors import InputError
from registry.limits import (
    BLOCK_BYTES,
    CAR_HEADER_BYTES,
    CONFIG_BYTES,
    DAG_DEPTH,
    DOCUMENT_BYTES,
    JSON_DEPTH,
    JSON_VALUES,
    LIMITS,
    NAME_BYTES,
    PATH_BYTES,
    PATH_COMPONENT_BYTES,
    SAFETENSORS_HEADER_BYTES,
    Limit,
    LimitExceededError,
    NotJSONError,
    check_name,
    check_output_path,
    check_path,
    load_json_file,
    loads_json,
    loads_yaml,
    measure_json,
    read_bounded,
    temporary_name,
)

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "limits.md"


def test_every_limit_is_named_as_its_constant_and_says_where_it_applies_and_how_to_get_under_it():
    for limit in LIMITS:
        assert getattr(limits, limit.name) is limit and limit.name in limits.__all__
        assert int(limit) > 0 and limit.applies and limit.fix
    assert len({l.name for l in LIMITS}) == len(LIMITS) >= 25


def test_the_docs_list_every_limit_with_its_value():
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| ([^|]+) \|", DOC.read_text(), re.MULTILINE)
    assert {name: value.strip() for name, value in rows} == {l.name: l.shown() for l in LIMITS}


def test_the_modules_own_constants_are_the_limits():
    from registry.formats import safetensors as safetensors_format
    from registry.records import documents
    from registry.storage import car, gateway, unixfs

    assert car.MAX_HEADER == CAR_HEADER_BYTES and car.MAX_SECTION == BLOCK_BYTES and gateway.MAX_BLOCK == BLOCK_BYTES
    assert unixfs.MAX_DEPTH == DAG_DEPTH and safetensors_format.MAX_HEADER_SIZE == SAFETENSORS_HEADER_BYTES
    assert documents.MAX_DOCUMENT_BYTES == DOCUMENT_BYTES  # the one document fetcher, resolution and verification alike
    from registry.compose import nested
    from registry.provenance import verifier

    assert nested.MAX_NESTING_DEPTH == limits.COMPOSITION_NESTING and verifier._MAX_ANCESTORS == limits.ANCESTORS


def test_a_violation_names_the_limit_the_value_and_the_fix():
    with pytest.raises(LimitExceededError) as caught:
        loads_json("[" * 70 + "]" * 70, what="the test document")
    error = caught.value
    assert isinstance(error, InputError) and error.exit_code == 2
    assert error.limit is JSON_DEPTH and error.value == 70 and error.what == "the nesting of the test document"
    assert str(error) == ("the nesting of the test document is 70 levels, over the limit of 64 levels (JSON_DEPTH); "
                          "no document Elements reads nests deeper; the input is malformed or hostile")


@pytest.mark.parametrize("text,depth", [
    ("1", 0), ("[]", 1), ("[[],[[]]]", 3), ('{"a":{"b":[1]}}', 3), ('["[[[[", "]]"]', 1), ('["\\"[[[["]', 1),
    ('{"k\\\\":"[["}', 1), ("[[[", 3), ("]]][", 0), ('"unterminated [[[', 3),
])
def test_nesting_is_measured_outside_strings_and_for_malformed_text_too(text, depth):
    assert measure_json(text.encode())[0] == depth


@pytest.mark.parametrize("limit", [250, 1000, 100_000])
def test_depth_is_refused_before_parsing_whatever_the_recursion_limit(limit):
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)
    try:
        with pytest.raises(LimitExceededError, match="JSON_DEPTH"):
            loads_json("[" * 100_000 + "]" * 100_000, what="x")
        assert loads_json("[" * 64 + "]" * 64, what="x") is not None
    finally:
        sys.setrecursionlimit(old)


def test_a_deep_document_in_a_process_that_imported_py_evm_is_refused_not_a_crash():
    # py-evm (the in-process chain) raises the recursion limit to 100,000: json.loads of this crashed with exit 139.
    script = ("import json, sys; from registry.chain.connection import connect; connect('memory'); from registry.limits import loads_json, LimitExceededError\n"
              "assert sys.getrecursionlimit() >= 100_000\n"
              "try:\n    loads_json('[' * 100_000 + ']' * 100_000, what='x')\nexcept LimitExceededError:\n    print('refused')\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "refused", (result.returncode, result.stderr)


@pytest.mark.parametrize("document", [
    {}, [], {"a": [1, 2.5, None, True, "é"]}, {"deep": json.loads("[" * 60 + "]" * 60)}, "text", 12345678901234567890,
])
def test_what_the_loader_accepts_it_reads_as_json_does(document):
    text = json.dumps(document)
    assert loads_json(text, what="x") == json.loads(text) == loads_json(text.encode(), what="x")


@pytest.mark.parametrize("text,problem", [
    ("NaN", "NaN is not allowed"), ("[Infinity]", "Infinity is not allowed"), ("1e999", "too large for a float"),
    ("[1,]", "Expecting value"), (b"\xff", "not UTF-8"), ("", "Expecting value"),
])
def test_what_json_has_not_is_not_json(text, problem):
    with pytest.raises(NotJSONError, match=problem):
        loads_json(text, what="x")


def test_size_and_value_count_and_number_length_are_limits():
    with pytest.raises(LimitExceededError, match="CONFIG_BYTES"):
        loads_json(b" " * (CONFIG_BYTES + 1), what="x", max_bytes=CONFIG_BYTES)
    with pytest.raises(LimitExceededError, match="JSON_VALUES"):
        loads_json("[" + "0," * JSON_VALUES + "0]", what="x")
    with pytest.raises(LimitExceededError, match="JSON_NUMBER_CHARS"):
        loads_json("1" * 101, what="x")
    assert loads_json("1" * 100, what="x") == int("1" * 100)


def test_a_file_over_its_limit_is_refused_before_it_is_read(tmp_path):
    sparse = tmp_path / "huge.json"
    with open(sparse, "wb") as handle:
        handle.truncate(8 << 30)  # 8 GiB that would never fit in memory
    with pytest.raises(LimitExceededError, match="CONFIG_BYTES"):
        read_bounded(sparse, CONFIG_BYTES)
    small = tmp_path / "small.json"
    small.write_text('{"a": 1}')
    assert load_json_file(small, CONFIG_BYTES) == {"a": 1}


def test_yaml_is_read_as_json_values_with_aliases_counted_expanded():
    assert loads_yaml("a: &x [1, 2]\nb: *x\nc: {d: null}\n", what="y") == {"a": [1, 2], "b": [1, 2], "c": {"d": None}}
    bomb = "a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(7))
    with pytest.raises(LimitExceededError, match="JSON_VALUES"):
        loads_yaml(bomb, what="y")
    with pytest.raises(LimitExceededError, match="JSON_DEPTH"):
        loads_yaml("a: &x " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*x" + "]" * 30, what="y")
    with pytest.raises(LimitExceededError, match="JSON_DEPTH"):
        loads_yaml("[" * 100_000, what="y")


@pytest.mark.parametrize("text,problem", [
    ("a: &a [*a]", "recursive"), ("a: 2024-01-01", "date"), ("a: !!binary aGk=", "bytes"), ("a: !!set {x}", "set"),
    ("a: .nan", "finite"), ("? [1, 2]\n: x", "key|unhashable"), ("a: !!python/name:os.system", "constructor"),
    ("\x1f", "unacceptable character|special characters"), ("a: [", "expected|end of stream"),
])
def test_yaml_without_a_json_meaning_is_not_json(text, problem):
    with pytest.raises(NotJSONError, match=problem):
        loads_yaml(text, what="y")


def test_names_and_paths_are_bounded_per_component_and_whole():
    assert check_name("n" * NAME_BYTES, "tensor name") == "n" * NAME_BYTES
    with pytest.raises(LimitExceededError, match="NAME_BYTES"):
        check_name("é" * 513, "tensor name")  # 1,026 bytes in UTF-8
    assert check_path("a/" + "b" * 255, "files[0].path")
    with pytest.raises(LimitExceededError, match="PATH_COMPONENT_BYTES"):
        check_path("a/" + "b" * 256, "files[0].path")
    with pytest.raises(LimitExceededError, match="PATH_BYTES"):
        check_path("/".join(["c" * 200] * 21), "files[0].path")
    assert PATH_BYTES == 4096 and PATH_COMPONENT_BYTES == 255


def test_an_output_path_is_checked_before_anything_is_created(tmp_path):
    with pytest.raises(LimitExceededError, match="PATH_COMPONENT_BYTES"):
        check_output_path(tmp_path / "new" / ("o" * 256))
    assert not (tmp_path / "new").exists()
    assert check_output_path(tmp_path / ("o" * 255)) == tmp_path / ("o" * 255)


def test_a_temporary_name_fits_a_file_system_whatever_the_name_it_stands_for():
    for name in ("model", "o" * 255, "é" * 127):
        temporary = temporary_name(name, "incomplete-12345-abcdef01")
        assert len(temporary.encode()) <= 255 and temporary.startswith(".") and temporary.endswith(".incomplete-12345-abcdef01")
    assert temporary_name("model", "x") == ".model.x"


def test_a_limit_checks_and_shows_itself():
    limit = Limit(10, "TEST_LIMIT", "items", "a test", "use fewer")
    assert limit.check(10, "x") == 10 and limit.shown() == "10 items"
    with pytest.raises(LimitExceededError, match=r"^x is 11 items, over the limit of 10 items \(TEST_LIMIT\); use fewer$"):
        limit.check(11, "x")
    assert Limit(16 << 20, "B", "bytes", "a", "b").shown() == "16 MiB"
    assert Limit(100_000_000, "B", "bytes", "a", "b").shown() == "100,000,000 bytes"
    error = limit.exceeded("x", 11, InputError)
    assert type(error) is InputError and "TEST_LIMIT" in str(error)
