"""A local anvil devnet: start, wait until it answers, stop.

Anvil comes from npm (``@foundry-rs/anvil-linux-amd64``, pinned in package-lock.json) and is
looked up in ``node_modules`` above the package, then on ``PATH``. It listens on 127.0.0.1 only,
funds ten dev accounts from its public mnemonic, and has the canonical CREATE2 deployer built in.
With a state file, the chain is loaded from it at start and written back periodically and on exit.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import ConfigError, ServiceError
from .network import Chain
from .connection import anvil_dev_accounts, connect, wait_for_rpc

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

__all__ = ["Anvil", "find_anvil", "free_port", "ANVIL_CHAIN_ID"]

ANVIL_CHAIN_ID = 31337
_NPM_BINARY = Path("node_modules") / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"


def find_anvil() -> Path:
    """The anvil binary: ``node_modules`` of the checkout (or of the working directory), else PATH.

    Raises:
        ConfigError: none found (the message says how to install it).
    """
    here = Path(__file__).resolve()
    for base in [Path.cwd(), *here.parents]:
        candidate = base / _NPM_BINARY
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise ConfigError("anvil not found: run `npm ci` in the Elements checkout (it installs the pinned anvil), or put anvil on PATH")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class Anvil:
    """One anvil process on loopback.

    Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with Anvil(state=Path("devnet.json")) as anvil:
            chain = anvil.connect()

    Args:
        port: the port (a free one when omitted).
        state: a state file to load at start and to write every few seconds and on exit.
        hardfork: anvil's ``--hardfork`` (default: anvil's latest).
        log: where anvil's output goes (default: a temporary file, shown if it fails to start).
    """

    host = "127.0.0.1"

    def __init__(
        self,
        port: int | None = None,
        state: Path | None = None,
        hardfork: str | None = None,
        binary: Path | None = None,
        log: Path | None = None,
        state_interval: int = 5,
    ) -> None:
        self.port = port or free_port(self.host)
        self.state = Path(state) if state else None
        self.hardfork = hardfork
        self.binary = Path(binary) if binary else find_anvil()
        self.log = Path(log) if log else None
        self.state_interval = state_interval
        self.process: subprocess.Popen[bytes] | None = None
        self._log_handle: BinaryIO | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def accounts(self) -> list[LocalAccount]:
        """The ten funded dev accounts (public keys: never use them on a real network)."""
        return anvil_dev_accounts()

    def command(self) -> list[str]:
        cmd = [str(self.binary), "--host", self.host, "--port", str(self.port), "--chain-id", str(ANVIL_CHAIN_ID)]
        if self.hardfork:
            cmd += ["--hardfork", self.hardfork]
        if self.state:
            cmd += ["--state", str(self.state), "--state-interval", str(self.state_interval)]
        return cmd

    def start(self, timeout: float = 30.0) -> "Anvil":
        """Start anvil and wait until it answers JSON-RPC.

        Raises:
            ServiceError: it exited or did not answer in time (its output is in the message).
        """
        if self.state:
            self.state.parent.mkdir(parents=True, exist_ok=True)
        if self.log is None:
            fd, name = tempfile.mkstemp(prefix="anvil-", suffix=".log")
            os.close(fd)
            self.log = Path(name)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._log_handle = open(self.log, "ab")
        self.process = subprocess.Popen(
            self.command(), stdout=self._log_handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(f"anvil exited with code {self.process.returncode} at start: {self._tail()}")
            try:
                wait_for_rpc(self.url, timeout=0.5)
                return self
            except ServiceError:
                continue
        self.stop()
        raise ServiceError(f"anvil did not answer on {self.url} within {timeout:.0f}s: {self._tail()}")

    def connect(self) -> Chain:
        """A :class:`Chain` on this anvil, with its dev accounts."""
        return connect(self.url, expected_chain_id=ANVIL_CHAIN_ID, dev_accounts=True)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop anvil (SIGINT, so it writes its state file), killing it if it lingers."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def wait(self) -> int:
        """Block until anvil exits; returns its exit code."""
        assert self.process is not None
        return self.process.wait()

    def _tail(self, lines: int = 5) -> str:
        try:
            text = self.log.read_text(errors="replace") if self.log else ""
        except OSError:
            text = ""
        return " | ".join(text.strip().splitlines()[-lines:]) or "no output"

    def __enter__(self) -> "Anvil":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def to_json(self) -> dict[str, Any]:
        return {"rpc_url": self.url, "chain_id": ANVIL_CHAIN_ID, "state": str(self.state) if self.state else None}

