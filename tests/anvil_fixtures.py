"""Pytest fixtures for a real anvil devnet (npm ``@foundry-rs/anvil-linux-amd64``).

* ``anvil_binary``: the binary, for tests that start their own anvil (skips if missing).
* ``anvil``: one anvil process for the session, on a free loopback port, stopped at the end.
* ``anvil_registry``: the registry deployed on it (through anvil's built-in CREATE2 deployer).
* ``chain_backend``: parametrizes a test over ``"memory"`` (py-evm in process) and ``"anvil"``.
* ``registry_on``: a registry on the backend of ``chain_backend``, bound to the first dev account;
  on ``memory`` the session's in-process chain as just deployed (rolled back after each test,
  ``tests/chain_worlds.py``), on anvil the session's registry (tests use fresh ids).

When anvil is not installed (``npm ci`` not run) the anvil cases skip and say so.
"""

from __future__ import annotations

import pytest

from registry.chain.devnet import Anvil, find_anvil
from registry.chain.registry import Registry
from registry.errors import ConfigError


def _anvil_binary():
    try:
        return find_anvil()
    except ConfigError as exc:
        return exc


@pytest.fixture(scope="session")
def anvil_binary():
    """The anvil binary; skips (saying why) when it is not installed."""
    binary = _anvil_binary()
    if isinstance(binary, Exception):
        pytest.skip(f"anvil is not installed ({binary})")
    return binary


@pytest.fixture(scope="session")
def anvil(anvil_binary, tmp_path_factory):
    """A running anvil on 127.0.0.1:<free port>, for the whole session."""
    binary = anvil_binary
    log = tmp_path_factory.mktemp("anvil") / "anvil.log"
    with Anvil(binary=binary, log=log) as node:
        yield node


@pytest.fixture(scope="session")
def anvil_registry(anvil):
    """The registry deployed on the session's anvil (read-only binding; use ``with_account``)."""
    chain = anvil.connect()
    return Registry.deploy(chain, chain.dev_accounts[0]).with_account(None)


@pytest.fixture(params=["memory", "anvil"])
def chain_backend(request):
    """Run a test on the in-process EVM and on a real anvil."""
    return request.param


@pytest.fixture
def registry_on(chain_backend, request):
    """A registry on the backend under test, bound to dev account 0."""
    if chain_backend == "memory":
        # The session's in-process chain as just deployed, rolled back after the test (tests/chain_worlds.py).
        return request.getfixturevalue("memory_registry")
    shared = request.getfixturevalue("anvil_registry")
    return shared.with_account(shared.chain.dev_accounts[0])
