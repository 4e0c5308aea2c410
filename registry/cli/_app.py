"""Shared plumbing for command modules: the parser, results and output, progress bars.

* :func:`add_command` / :func:`add_group` add a command (with the global options, a help line
  and examples) or a command group whose actions are commands of their own.
* A handler returns a :class:`Result`; :func:`emit` prints it for humans or as JSON.
* :func:`progress` (one bar) and :func:`progress_bars` (several, one live display) show rich
  progress bars on standard error, only on a terminal, never with ``--json`` or
  ``ELEMENTS_NO_PROGRESS``. A bar takes both ``bar(done, total)`` reports (what the library's
  ``progress=`` callbacks send) and ``bar.advance(n)``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from ..config import Settings, progress_enabled
from ..errors import InputError

__all__ = [
    "Result",
    "emit",
    "add_command",
    "add_group",
    "add_commit_reveal_option",
    "progress",
    "progress_bars",
    "Bar",
    "Bars",
    "BYTES",
    "Parser",
    "UsageError",
    "Repeated",
]


class UsageError(InputError):
    """The command line itself is wrong (an unknown command, a missing argument)."""


class Repeated(argparse.Action):
    """A repeatable global option: every value is kept, given before the command or after it
    (argparse's own ``append`` keeps only the command's values when both places are used, and
    silently dropping an endpoint would weaken a cross-check). The action object is shared by
    the top parser and every command's parser; the top parser resets it as each parse starts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.values: list[str] = []

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        self.values.append(values)
        setattr(namespace, self.dest, list(self.values))

    @staticmethod
    def reset(parser: argparse.ArgumentParser) -> None:
        """Forget the values of a previous parse (the top parser calls this as it starts)."""
        for action in parser._actions:
            if isinstance(action, Repeated):
                action.values.clear()


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are :class:`UsageError` (one line, exit 2, JSON with --json)."""

    # argparse declares error() NoReturn; this one raises too (UsageError), annotated as the code base's handlers are.
    def error(self, message: str) -> None:  # type: ignore[override]
        import difflib
        import re

        wrong = re.match(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if wrong:
            choices = re.findall(r"'([^']*)'", wrong.group(3))
            close = difflib.get_close_matches(wrong.group(2), choices, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            what = wrong.group(1).lower()
            article = "an" if what[:1] in "aeiou" else "a"
            message = f"{wrong.group(2)!r} is not {article} {what}; {hint}choose from {', '.join(choices)}"
        raise UsageError(f"{message} (see `{self.prog} --help`)")


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
    if settings.json and result.data is None and result.human is None:
        pass  # nothing to say (a command that printed its own output as it went)
    elif settings.json:
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
    """Add a subcommand with the global options, a help line and examples.

    ``examples`` is shown under ``examples:`` in the command's --help (indent each line by two
    spaces; a trailing comment after the command says what it does).
    """
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


def add_group(
    sub: argparse._SubParsersAction,
    common: argparse.ArgumentParser,
    name: str,
    help: str,
    examples: str,
    *,
    dest: str,
    handler: Callable[[argparse.Namespace, Settings], Result | None] | None = None,
) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """Add a command group (``keys``, ``car``, ``config network`` ...) and its action sub-parsers.

    Without ``handler`` the group alone is a usage error that lists its actions.
    """
    parser = add_command(sub, common, name, handler or _needs_action, help, examples)
    actions = parser.add_subparsers(dest=dest, metavar="ACTION")
    parser.set_defaults(group_parser=parser, group_actions=actions)
    return parser, actions


def _needs_action(args: argparse.Namespace, settings: Settings) -> Result:
    parser = args.group_parser
    choices = "|".join(args.group_actions.choices)
    raise UsageError(f"choose an action: {parser.prog} {choices} (see `{parser.prog} --help`)")


# ----------------------------------------------------------------------------------------------
# progress


#: The unit of a bar that counts bytes (sizes and a transfer speed shown); any other unit is the
#: plural noun of what a bar counts ("DAGs", "blocks"), shown as ``n/m DAGs`` and no speed.
BYTES = "bytes"


def progress(settings: Settings | None, description: str, total: int | None = None, unit: str = BYTES) -> "_SingleBar":
    """One progress bar, as a context manager::

        with progress(settings, "hashing model.safetensors", total=size) as bar:
            add_file(path, progress=bar.advance)        # or a (done, total) callback: progress=bar

    Shown on standard error only on a terminal, without --json and without ELEMENTS_NO_PROGRESS.
    ``unit`` as in :meth:`Bars.bar`.
    """
    return _SingleBar(_enabled(settings), description, total, unit)


def add_commit_reveal_option(parser: argparse.ArgumentParser) -> None:
    """``--commit-reveal/--no-commit-reveal`` on a command that publishes."""
    parser.add_argument(
        "--commit-reveal", action=argparse.BooleanOptionalAction, default=None,
        help="commit first, reveal a block later, so no one copying the transaction from the mempool gets an earlier "
             "priority (default: the network's setting; on, except in process and on loopback nodes)",
    )


def progress_bars(settings: Settings | None) -> "Bars":
    """Several bars in one live display (``bars.bar("fetching")``, ``bars.bar("assembling")``);
    each appears when it first reports, so a phase with nothing to do shows nothing."""
    return Bars(_enabled(settings))


def _enabled(settings: Settings | None) -> bool:
    return progress_enabled(settings.json if settings is not None else False)


class Bar:
    """One bar: ``bar(done, total)`` sets the position, ``bar.advance(n)`` moves it."""

    def __init__(self, bars: "Bars", description: str, total: int | None, unit: str = BYTES) -> None:
        self._bars, self.description, self.total, self.unit = bars, description, total, unit
        self.done = 0
        self._task: Any = None

    def __call__(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self.total = total
        self.done = done
        self._show()

    def advance(self, n: int) -> None:
        self.done += n
        self._show()

    def _show(self) -> None:
        live = self._bars.live()
        if live is None:
            return
        if self._task is None:
            self._task = live.add_task(self.description, total=self.total, unit=self.unit)
        live.update(self._task, completed=self.done, total=self.total)


class Bars:
    """Bars sharing one rich live display on standard error (nothing at all when disabled)."""

    def __init__(self, enabled: bool, console: Any = None) -> None:
        self.enabled = enabled
        self.console = console  # a rich Console to draw on (default: one on standard error)
        self._progress: Any = None
        self._closed = False

    def bar(self, description: str, total: int | None = None, unit: str = BYTES) -> Bar:
        """A bar counting ``unit``: bytes (the default), or the plural noun of the items it counts."""
        return Bar(self, description, total, unit)

    def live(self) -> Any:
        """The rich Progress, started on first use (``None`` when bars are off)."""
        if not self.enabled or self._closed:
            return None
        if self._progress is None:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            amount, speed = _unit_columns()
            self._progress = Progress(
                TextColumn("{task.description:<14}"), BarColumn(), amount, speed, TimeRemainingColumn(),
                console=self.console if self.console is not None else Console(file=sys.stderr), transient=True,
            )
            self._progress.start()
        return self._progress

    def __enter__(self) -> "Bars":
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _unit_columns() -> tuple[Any, Any]:
    """The amount and speed columns, by each task's unit: sizes and a transfer speed for bytes,
    ``done/total NOUN`` and no speed for items (rich is imported only when a bar is drawn)."""
    from rich.progress import DownloadColumn, ProgressColumn, Task, TransferSpeedColumn
    from rich.text import Text

    class AmountColumn(ProgressColumn):
        def __init__(self) -> None:
            super().__init__()
            self._bytes = DownloadColumn()

        def render(self, task: Task) -> Text:
            unit = task.fields.get("unit", BYTES)
            if unit == BYTES:
                return self._bytes.render(task)
            total = "?" if task.total is None else f"{int(task.total):,}"
            return Text(f"{int(task.completed):,}/{total} {unit}", style="progress.download")

    class SpeedColumn(ProgressColumn):
        def __init__(self) -> None:
            super().__init__()
            self._speed = TransferSpeedColumn()

        def render(self, task: Task) -> Text:
            return self._speed.render(task) if task.fields.get("unit", BYTES) == BYTES else Text("")

    return AmountColumn(), SpeedColumn()


class _SingleBar(Bars):
    """``with progress(...) as bar``: the context value is the bar itself."""

    def __init__(self, enabled: bool, description: str, total: int | None, unit: str = BYTES) -> None:
        super().__init__(enabled)
        self._bar = Bar(self, description, total, unit)

    # Bars enters as itself; a single bar's context value is the Bar, what `with progress(...) as bar` wants.
    def __enter__(self) -> Bar:  # type: ignore[override]
        return self._bar
