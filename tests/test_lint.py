"""The linters, configured in pyproject.toml, pass on every run: ruff (pyflakes, pycodestyle's
syntax errors, bugbear) over the package, scripts and tests, and mypy (strict on the base, digest,
formats, chain, records and provenance; storage, compose, publish, the demo and the command line
without strictness). Both come with the test extra (scripts/setup.sh test)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    """The tool beside this interpreter (the venv's), else on PATH; skipped only when absent."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed: run scripts/setup.sh test (it installs '.[test]')")
    return found


def test_ruff_finds_nothing():
    result = subprocess.run([_tool("ruff"), "check", "--no-cache", "registry", "scripts", "tests"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # the whole package type-checked from scratch, a minute of work (ruff above stays in the fast lane)
def test_mypy_finds_nothing_in_the_checked_layers():
    result = subprocess.run([_tool("mypy"), "--no-incremental", "--cache-dir", "/dev/null"], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
