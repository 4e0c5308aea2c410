"""The hostile corpus (tests/hostile_corpus.py) through the command line, and hostile documents,
nodes and gateways through the library and the command line.

Every case asserts what a user sees: the exit code (2, or 1 for a failed verification), one
line on standard error naming the problem, no traceback, no "internal error", and nothing
written (no output directory, no file added anywhere under the workspace or ELEMENTS_HOME).
Most cases run in process for speed (``registry.cli.main``); one case per family also runs as
a real ``python -m registry`` subprocess. Hostile peers are real servers on loopback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from registry.cli import main
from tests.cli_support import clean_env, one_line_error
from tests.hostile_corpus import DEEP, Hostile, Workspace, corpus, deep_json

ROOT = Path(__file__).resolve().parent.parent
CASES = corpus()


def files_under(root: Path) -> set[str]:
    """Every file (not directory) under ``root``, relative."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


@contextmanager
def environment(home: Path, extra: dict[str, str]):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ELEMENTS_")}
    with mock.patch.dict(os.environ, {**clean, "ELEMENTS_HOME": str(home), "ELEMENTS_NO_PROGRESS": "1", **extra}, clear=True):
        yield


def prepare(case: Hostile, tmp_path: Path) -> tuple[Workspace, list[str], set[str]]:
    workspace = Workspace(tmp_path)
    workspace.setup()
    argv = [str(a) for a in case.build(workspace)]
    return workspace, argv, files_under(tmp_path)


def check_outcome(case: Hostile, workspace: Workspace, before: set[str], code: int, out: str, err: str) -> None:
    assert "Traceback" not in err and "Traceback" not in out, err
    assert "internal error" not in err, err
    if case.code == 0:
        assert code == 0, (code, out, err)
        assert re.search(case.stdout or "", out, re.MULTILINE), out
        return
    assert code == case.code, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("elements: error: "), err
    assert re.search(case.match, lines[0]), (case.match, lines[0])
    assert len(lines[0]) < 2000, "an error names the problem; it does not echo the input"
    assert not workspace.out.exists()
    assert files_under(workspace.root) == before, "a refused input left files behind"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_hostile_input_is_refused_in_one_line_and_leaves_nothing_behind(case, tmp_path, capsys):
    workspace, argv, before = prepare(case, tmp_path)
    if case.code == 0:  # the cases that must work: their output is theirs to write
        before = None
    with environment(workspace.home, case.env):
        code = main(argv)
    out, err = capsys.readouterr()
    if before is None:
        assert code == 0 and "Traceback" not in err, (code, out, err)
        assert re.search(case.stdout or "", out, re.MULTILINE), out
        return
    check_outcome(case, workspace, before, code, out, err)


# One case per family, as a real process: the way a user meets them (and a crash would be exit 139).
REPRESENTATIVE = [
    "safetensors/nested-100k-arrays", "safetensors/index-nested-100k", "recipe/file-name-300-chars",
    "recipe/yaml-alias-bomb", "recipe/json-nested-100k", "manifest/local-nested-100k", "car/carv2-data-offset-huge",
    "car/header-list-as-key", "dagpb/links-65537", "cid/cyrillic-lookalike", "config/nested-100k",
    "keystore/nested-100k", "keystore/scrypt-n-2-to-40", "signed/nested-100k", "output/assemble-name-300-bytes",
]


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_the_real_command_line_refuses_a_hostile_input_of_each_family(name, tmp_path):
    case = next(c for c in CASES if c.id == name)
    workspace, argv, before = prepare(case, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "registry", *argv], env=clean_env(workspace.home, ELEMENTS_NO_PROGRESS="1", **case.env),
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    one_line_error(result, case.code)
    check_outcome(case, workspace, before, result.returncode, result.stdout, result.stderr)


def test_the_corpus_holds_every_family_and_enough_cases():
    families = {c.family for c in CASES}
    assert families >= {"safetensors", "recipe", "manifest", "car", "dagpb", "cid", "config", "keystore", "signed", "output"}
    assert len(CASES) >= 150
