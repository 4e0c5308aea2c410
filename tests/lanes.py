"""Which lane this run is (set by tests/conftest.py's pytest_configure before any test module is
imported): the full run, or the fast lane (`scripts/test.sh --fast`, ``-m "not slow"``)."""

from __future__ import annotations

__all__ = ["FAST", "examples"]

#: True in the fast lane.
FAST = False


def examples(full: int) -> int:
    """A property test's Hypothesis example count: ``full`` in the full run (CI runs everything),
    a quarter of it (at least 5) in the fast lane, which runs each property on fewer random cases."""
    return max(5, full // 4) if FAST else full
