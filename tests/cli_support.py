"""Running the command line as a user does (plain helpers for the tests/test_cli_* files, no fixtures).

``elements(...)`` runs ``python -m registry`` in a subprocess with a clean environment: only the
ELEMENTS_* variables a test gives, so a developer's own configuration never leaks in.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from registry.chain.network import anvil_dev_accounts

ROOT = Path(__file__).resolve().parent.parent
DEV_KEYS = ["0x" + a.key.hex() for a in anvil_dev_accounts()]
DEV_ADDRESSES = [a.address for a in anvil_dev_accounts()]


def clean_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """The process environment without any ELEMENTS_* variable, plus ``home`` and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELEMENTS_")}
    env["PYTHONPATH"] = str(ROOT)
    if home is not None:
        env["ELEMENTS_HOME"] = str(home)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def elements(home: Path | None, *args: str, stdin: str | None = None, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    """``elements ARGS`` as a subprocess with its real exit code, stdout and stderr (text)."""
    return subprocess.run(
        [sys.executable, "-m", "registry", *map(str, args)], env=clean_env(home, **env), cwd=ROOT, input=stdin,
        capture_output=True, text=True, timeout=timeout,
    )


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
