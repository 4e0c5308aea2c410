"""Running the command line as a user does (plain helpers for the tests/test_cli_* files, no fixtures).

``elements(...)`` runs ``registry.cli.main(argv)`` in this process, as ``python -m registry``
would: a clean environment (only the ELEMENTS_* variables a test gives, so a developer's own
configuration never leaks in), the repository as the working directory, stdin/stdout/stderr
captured as text, and the real exit code (a ``SystemExit`` becomes its code, an exception that
escapes ``main`` a traceback on stderr and exit 1, as the interpreter does). A subprocess costs a
second or more of interpreter start and imports per command, which was a third of the suite.

``elements_process(...)`` is the same as a real subprocess (``python -m registry``), for the few
smoke tests per job that check what only a process shows (its imports, signals, the entry point).
"""

from __future__ import annotations

import io
import logging
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from registry.chain.connection import anvil_dev_accounts

ROOT = Path(__file__).resolve().parent.parent
# Derived once, here (each derivation from the mnemonic is tens of milliseconds, and every xdist
# worker imports this module at collection): the test modules take them from here.
_DEV_ACCOUNTS = anvil_dev_accounts()
DEV_KEYS = ["0x" + a.key.hex() for a in _DEV_ACCOUNTS]
DEV_ADDRESSES = [a.address for a in _DEV_ACCOUNTS]


def clean_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """The process environment without any ELEMENTS_* variable, plus ``home`` and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELEMENTS_")}
    env["PYTHONPATH"] = str(ROOT)
    if home is not None:
        env["ELEMENTS_HOME"] = str(home)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def elements(home: Path | None, *args: str, stdin: str | None = None, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    """``elements ARGS`` in this process (``registry.cli.main``) with its real exit code, stdout and
    stderr (text). ``timeout`` is the subprocess variant's; a command in process cannot be cut short."""
    return run_main([*map(str, args)], env=clean_env(home, **env), stdin=stdin)


def elements_process(home: Path | None, *args: str, stdin: str | None = None, timeout: float = 600,
                     **env: str) -> subprocess.CompletedProcess:
    """``elements ARGS`` as a subprocess with its real exit code, stdout and stderr (text)."""
    return subprocess.run(
        [sys.executable, "-m", "registry", *map(str, args)], env=clean_env(home, **env), cwd=ROOT, input=stdin,
        capture_output=True, text=True, timeout=timeout,
    )


def _text_stream(data: bytes = b"") -> io.TextIOWrapper:
    """A text stream over bytes, with ``.buffer`` (commands read and write binary through it) and
    ``isatty()`` false, like a pipe."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace", newline=None, write_through=True)


@contextmanager
def process_like(env: dict[str, str]) -> Iterator[None]:
    """This process looks like a fresh ``python -m registry`` to the command line for the block:
    ``env`` as the whole environment, the repository as the working directory, and the library's
    logger as a new process has it (``--debug`` adds a handler and lowers its level)."""
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    logger = logging.getLogger("registry")
    saved_log = (logger.level, list(logger.handlers), logger.propagate)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(ROOT)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        logger.setLevel(saved_log[0])
        logger.handlers[:] = saved_log[1]
        logger.propagate = saved_log[2]


def run_main(argv: list[str], env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess:
    """``registry.cli.main(argv)`` run as a process would run it, as a CompletedProcess."""
    from registry.cli import main

    out, err = _text_stream(), _text_stream()
    streams = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = _text_stream((stdin or "").encode()), out, err
    try:
        with process_like(env):
            try:
                code = main(argv)
            except SystemExit as exc:
                if exc.code is None or isinstance(exc.code, int):
                    code = exc.code or 0
                else:
                    sys.stderr.write(f"{exc.code}\n")
                    code = 1
            except Exception:  # what the interpreter does with an exception that escapes: print it, exit 1
                traceback.print_exc()
                code = 1
    finally:
        sys.stdin, sys.stdout, sys.stderr = streams
    return subprocess.CompletedProcess(["elements", *argv], code, _read(out), _read(err))


def _read(stream: io.TextIOWrapper) -> str:
    stream.flush()
    # As subprocess.run(text=True) reads a pipe: universal newlines.
    return stream.buffer.getvalue().decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def one_line_error(result: subprocess.CompletedProcess, code: int = 2) -> str:
    """The CLI failed the way it promises: the exit code, one line on stderr, no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("elements: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


class DevnetProcess:
    """``elements devnet --port PORT --state STATE`` running in the background, as a user starts it."""

    def __init__(self, home: Path, port: int, state: Path, json: bool = False) -> None:
        self.home, self.port, self.state, self.json = home, port, state, json
        self.process: subprocess.Popen | None = None
        self.banner = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> str:
        """Start it and wait until it has printed its banner (it is then deployed and configured)."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "registry", "devnet", "--port", str(self.port), "--state", str(self.state),
             *(["--json"] if self.json else [])],
            env=clean_env(self.home), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.banner = read_until(self.process, "\n" if self.json else "Ctrl-C", timeout)
        return self.banner

    def stop(self) -> tuple[int, str, str]:
        """Ctrl-C (SIGINT), as a user stops it; returns (exit code, rest of stdout, stderr)."""
        process, self.process = self.process, None
        if process is None:
            return 0, "", ""
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        return process.returncode, out, err


def read_until(process: subprocess.Popen, marker: str, timeout: float) -> str:
    """Read the process's stdout (unbuffered, straight from the pipe) until it holds ``marker``."""
    seen = b""
    deadline = time.monotonic() + timeout
    fd = process.stdout.fileno()
    while marker.encode() not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            process.kill()
            raise AssertionError(f"no {marker!r} within {timeout}s: {seen.decode(errors='replace')}")
        chunk = os.read(fd, 65536)
        if not chunk:
            process.wait()
            err = process.stderr.read() if process.stderr else ""
            raise AssertionError(f"exited with {process.returncode} before {marker!r}: {seen.decode(errors='replace')}{err}")
        seen += chunk
    return seen.decode()
