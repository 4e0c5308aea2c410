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
import signal
import tempfile
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.anvil_fixtures", "tests.kubo_fixtures", "tests.compose_fixtures", "tests.cluster_fixtures", "tests.chain_worlds",
]

#: What libraries keep in the temp dir by design, once per user and reused by every run (torch's
#: compile cache, py-solc-x's install lock): removed with the rest, but not a leak of a test.
LIBRARY_CACHES = ("torchinductor_", ".solcx-lock-")

#: What each of the costliest test files takes (seconds of setup, call and teardown summed per
#: file, on a loaded machine, load average 4-8, so relative: the whole run, then the fast lane
#: `-m "not slow"`, the median of three runs; a file's whole-run figure is at least its fast-lane
#: one; a session fixture's cost lands on the first file of a worker to use it). Under xdist the files
#: are handed out costliest first for the lane being run (`scripts/test.sh` passes
#: `--no-loadscope-reorder` so that xdist keeps this order), so that no worker is left running one
#: long file while the other idles at the end: `--dist loadfile` gives out files in collection
#: order. Order only; a file not listed runs after them, in its usual place.
FILE_COSTS: dict[str, tuple[int, int]] = {
    "test_fuzz_mutations.py": (84, 5), "test_hostile_corpus.py": (71, 49),
    "test_storage_car_conformance.py": (66, 10), "test_cli_footprint.py": (62, 0),
    "test_contracts_licence_ancestry.py": (52, 11), "test_records_resolve_assemble.py": (49, 49),
    "test_provenance_bom.py": (46, 2), "test_contracts_properties.py": (46, 0), "test_provenance_verify.py": (44, 44),
    "test_publish_model.py": (38, 32), "test_cli_jobs.py": (29, 6), "test_compose_engine.py": (28, 16),
    "test_cli_pinning.py": (27, 22), "test_storage_unixfs.py": (26, 7),
    "test_provenance_verify_disputes.py": (26, 10), "test_cli_progress.py": (23, 0), "test_lint.py": (23, 0),
    "test_provenance_verify_nested.py": (22, 22), "test_contracts_commit_reveal.py": (20, 4),
    "test_cli_devnet_flow.py": (17, 0), "test_contracts_registry.py": (17, 8), "test_chain_accounts.py": (17, 3),
    "test_storage_blockstore.py": (17, 1), "test_cli_errors.py": (16, 9), "test_storage_limits.py": (14, 12),
    "test_publish_commit_reveal.py": (14, 14), "test_publish_claims.py": (13, 12),
    "test_chain_crosscheck.py": (12, 12),
}

#: Files that import torch and transformers (with peft, through mergekit's config), about 5 s of
#: imports on a quiet machine and more under load, paid once per worker process: under xdist they go
#: to one worker as one unit (``pytest_xdist_make_scheduler``), costing the sum of their
#: FILE_COSTS, instead of each worker importing them for one of these files.
SHARED_IMPORTS = {
    name: "tests/[torch and transformers]"
    for name in ("test_compose_engine.py", "test_compose_merges_oracle.py", "test_formats_moe.py", "test_compose_extract_lora.py")
}

_private_tmp: Path | None = None
_first_seen: dict[str, str] = {}
#: What the xdist workers reported left behind (the controller's list; empty when not distributed).
_workers_left: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    global _private_tmp
    # A shell's background job (`scripts/test.sh &`, nohup) starts with SIGINT ignored, and every
    # process inherits that: the tests that stop a command with Ctrl-C (a prompt, devnet) would then
    # wait for it forever. A Python handler here makes the processes the tests start get the default.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    from tests import lanes

    lanes.FAST = config.getoption("markexpr", "") == "not slow"
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
    from tests import lanes

    lane = 1 if lanes.FAST else 0
    group_costs: dict[str, int] = {}
    for name, group in SHARED_IMPORTS.items():
        group_costs[group] = group_costs.get(group, 0) + FILE_COSTS.get(name, (0, 0))[lane]

    def cost(item: pytest.Item) -> int:
        group = SHARED_IMPORTS.get(item.path.name)
        return group_costs[group] if group else FILE_COSTS.get(item.path.name, (0, 0))[lane]

    items.sort(key=lambda item: -cost(item))  # stable: a file's tests keep their order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadfile`` with the files of SHARED_IMPORTS as one unit; other modes as xdist has them."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class LoadFileWithSharedImports(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            return SHARED_IMPORTS.get(Path(path).name, path)

    return LoadFileWithSharedImports(config, log)


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
