"""Shared plumbing for command modules: results, output, progress."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from ..config import Settings, progress_enabled

__all__ = ["Result", "emit", "add_command", "progress"]


@dataclass
class Result:
    """What a command returns: data for --json, a renderer for humans, an exit code."""

    data: Any = None
    human: Callable[[], None] | str | None = None
    exit_code: int = 0
    extra: dict = field(default_factory=dict)


def emit(result: Result | None, settings: Settings) -> int:
    if result is None:
        return 0
    if settings.json:
        print(json.dumps(result.data, indent=2, default=_jsonable))
    elif callable(result.human):
        result.human()
    elif result.human is not None:
        print(result.human)
    return result.exit_code


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if hasattr(value, "to_json"):
        return value.to_json()
    return str(value)


def add_command(
    sub: argparse._SubParsersAction,
    common: argparse.ArgumentParser,
    name: str,
    handler: Callable[[argparse.Namespace, Settings], Result | None],
    help: str,
    examples: str = "",
) -> argparse.ArgumentParser:
    """Add a subcommand with the global options, a help line and examples."""
    parser = sub.add_parser(
        name,
        help=help,
        description=help,
        epilog=("examples:\n" + examples) if examples else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.set_defaults(handler=handler)
    return parser


def progress(settings: Settings | None, total: int | None, description: str):
    """A rich progress bar context (disabled off-terminal, with --json or ELEMENTS_NO_PROGRESS).

    Returns an object with ``advance(n)``; use as a context manager.
    """
    enabled = progress_enabled(settings.json if settings else False)
    return _Progress(enabled, total, description)


class _Progress:
    def __init__(self, enabled: bool, total: int | None, description: str) -> None:
        self.enabled = enabled
        self.total = total
        self.description = description
        self._progress = None
        self._task = None

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                console=__import__("rich.console").console.Console(file=sys.stderr), transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=self.total)
        return self

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
