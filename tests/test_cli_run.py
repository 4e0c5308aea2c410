"""The `elements` process (registry.cli.run): it ends without the interpreter's teardown, and a
person sees the same exit code, stdout and stderr as from ``sys.exit(main())``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from registry.formats.safetensors_writer import write_safetensors
from tests.cli_support import ROOT, clean_env

#: The process as it was before run(): main()'s code through the interpreter's own exit.
PLAIN = "import sys\nfrom registry.cli import main\nsys.argv[0] = 'elements'\nsys.exit(main())"


def both(home: Path, *args: str) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """``python -m registry ARGS`` (run()) and the same through ``sys.exit(main())``."""
    env = clean_env(home, NO_COLOR="1", ELEMENTS_NO_PROGRESS="1")
    fast = subprocess.run([sys.executable, "-m", "registry", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    plain = subprocess.run([sys.executable, "-c", PLAIN, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    return fast, plain


def run_snippet(tmp_path: Path, code: str, small: Path) -> None:
    """``python -c CODE SMALL``, which must exit 0."""
    done = subprocess.run([sys.executable, "-c", code, str(small)], env=clean_env(tmp_path / "home"), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.safetensors"
    write_safetensors(path, {"w": np.arange(12, dtype=np.float32).reshape(3, 4)})
    return path


@pytest.mark.parametrize("args", [
    ["--help"], ["--version"], ["id", "{small}"], ["cid", "{small}", "--json"], ["id", "{missing}"], ["no-such-command"],
    ["id", "{small}", "--json", "--no-such-flag"], ["verify", "{small}", "--rpc-url", "memory", "--json"],
])
def test_the_process_exits_with_the_code_and_output_of_main(tmp_path, small, args):
    args = [a.format(small=small, missing=tmp_path / "missing.safetensors") for a in args]
    fast, plain = both(tmp_path / "home", *args)
    assert (fast.returncode, fast.stdout, fast.stderr) == (plain.returncode, plain.stdout, plain.stderr)


def test_an_atexit_handler_registered_by_a_command_still_runs(tmp_path, small):
    marker = tmp_path / "ran"
    code = ("import atexit, pathlib, runpy, sys\n"
            f"atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text('yes'))\n"
            "sys.argv = ['elements', 'id', sys.argv[1]]\n"
            "runpy.run_module('registry', run_name='__main__', alter_sys=True)")
    run_snippet(tmp_path, code, small)
    assert marker.read_text() == "yes"


def test_a_thread_still_working_when_main_returns_is_waited_for(tmp_path, small):
    marker = tmp_path / "written"
    code = ("import pathlib, runpy, sys, threading, time\n"
            "import registry.cli as cli\n"
            "main = cli.main\n"
            "def late():\n"
            "    time.sleep(0.5)\n"
            f"    pathlib.Path({str(marker)!r}).write_text('done')\n"
            "def main_leaving_a_thread(argv=None):\n"
            "    threading.Thread(target=late).start()\n"
            "    return main(argv)\n"
            "cli.main = main_leaving_a_thread\n"
            "sys.argv = ['elements', 'id', sys.argv[1]]\n"
            "cli.run()")
    run_snippet(tmp_path, code, small)
    assert marker.read_text() == "done"


@pytest.mark.parametrize("args", [["--help"], ["id", "{small}"]])
def test_output_to_a_reader_that_left_ends_as_it_did_before(tmp_path, small, args):
    args = [a.format(small=small) for a in args]
    env = clean_env(tmp_path / "home")
    seen = []
    for argv in ([sys.executable, "-m", "registry", *args], [sys.executable, "-c", PLAIN, *args]):
        read, write = os.pipe()
        os.close(read)  # the reader left before the first byte: every write to stdout fails
        try:
            done = subprocess.run(argv, env=env, cwd=ROOT, stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
        finally:
            os.close(write)
        seen.append((done.returncode, done.stderr))
    assert seen[0] == seen[1]
