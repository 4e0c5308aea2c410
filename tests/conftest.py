"""Shared pytest plugins. Fixture modules live beside the tests and are registered here.

The suite also keeps the system temp dir clean: every temporary file or directory the tests, the
library and the ``elements`` subprocesses create (``tempfile``, ``$TMPDIR``) goes into one private
directory for the session, and whatever is still in it at the end (a ``mkdtemp`` nobody removed,
a cache dir of a killed process) fails the run, named with the test after which it first appeared.
CI once filled the disk with leaked ``fuzz-seeds-*`` and ``tmp*`` directories; this is the check.
pytest's own ``tmp_path`` directories stay where pytest keeps them (removed when a test passes:
``tmp_path_retention_policy`` in pyproject.toml).

Under pytest-xdist (``-n 2``) each worker is a session of its own: it makes its private directory
inside the controller's (the workers inherit ``TMPDIR`` from it), checks and removes it at its
end, and hands what it found to the controller (``workeroutput``), which fails the run. The
controller's own directory then holds only what a crashed worker left, which fails the run too.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.anvil_fixtures", "tests.kubo_fixtures", "tests.compose_fixtures", "tests.cluster_fixtures", "tests.chain_worlds",
]

#: What libraries keep in the temp dir by design, once per user and reused by every run (torch's
#: compile cache, py-solc-x's install lock): removed with the rest, but not a leak of a test.
LIBRARY_CACHES = ("torchinductor_", ".solcx-lock-")

#: The test files that take longest (`--durations` of a full run, slowest first). Under xdist they
#: are handed out first, so that no worker is left running one long file while the other idles at
#: the end (`--dist loadfile` gives out files in collection order). Order only; a file not listed
#: runs after them, in its usual place.
SLOWEST_FILES = (
    "test_hostile_corpus.py", "test_storage_car_conformance.py", "test_contracts_licence_ancestry.py",
    "test_provenance_bom.py", "test_publish_model.py", "test_provenance_verify_disputes.py",
    "test_provenance_verify.py", "test_records_resolve_assemble.py", "test_storage_blockstore.py",
    "test_provenance_verify_nested.py", "test_contracts_properties.py", "test_publish_claims.py", "test_lint.py",
)

_private_tmp: Path | None = None
_first_seen: dict[str, str] = {}
#: What the xdist workers reported left behind (the controller's list; empty when not distributed).
_workers_left: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    global _private_tmp
    if _private_tmp is not None:
        return
    system_tmp = tempfile.gettempdir()
    # pytest's basetemp stays in the system temp dir (where a failed run's tmp_path is kept to look at).
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", system_tmp)
    _private_tmp = Path(tempfile.mkdtemp(prefix="elements-tests-", dir=system_tmp))
    os.environ["TMPDIR"] = str(_private_tmp)  # subprocesses (elements, Kubo, anvil) inherit it
    tempfile.tempdir = str(_private_tmp)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # one process: the usual order
        return
    rank = {name: at for at, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order


def _entries() -> set[str]:
    try:
        return set(os.listdir(_private_tmp)) if _private_tmp is not None else set()
    except FileNotFoundError:
        return set()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    for name in _entries() - _first_seen.keys():
        _first_seen[name] = item.nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """(xdist controller) A worker finished: keep what it left behind, named by the worker."""
    output = getattr(node, "workeroutput", None) or {}
    _workers_left.extend(f"  [{node.gateway.id}] {line.lstrip()}" for line in output.get("elements_tmp_left", []))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _private_tmp
    if _private_tmp is None:
        return
    # A TemporaryDirectory still held in a reference cycle is removed by its finalizer at the next
    # collection: not a leak, so collect before looking.
    gc.collect()
    left = sorted(name for name in _entries() if not name.startswith(LIBRARY_CACHES))
    shutil.rmtree(_private_tmp, ignore_errors=True)
    tempfile.tempdir = None
    _private_tmp = None
    lines = [f"  {name} (first seen after {_first_seen.get(name, 'the session started')})" for name in left]
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports and fails the run
        workeroutput["elements_tmp_left"] = lines
        return
    lines += _workers_left
    if lines and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "tests left temporary files in the system temp dir (now removed):\n" + "\n".join(lines)
        if reporter is not None:
            reporter.write_sep("=", "temporary files left behind", red=True)
            reporter.write_line(message)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
