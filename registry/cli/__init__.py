"""The ``elements`` command line: thin commands over the library, human or --json output.

Exit codes: 0 success / verified; 1 verification failed or not found by verify; 2 bad input,
usage error or an unreachable service. Errors print one line (no traceback without --debug).

Each command group lives in its own module with a ``register(subparsers)`` function that adds
its commands; a command's handler takes ``(args, settings)`` and returns a :class:`Result`.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import json
import os
import sys
import threading
from typing import NoReturn, Sequence

from .. import __version__
from ..config import Settings
from ..errors import ConfigError, ElementsError, InputError
from ._app import Parser, Repeated, Result, UsageError, emit

__all__ = ["main", "run", "build_parser", "Result"]

# Command modules, in the order their commands appear in --help.
COMMAND_MODULES = [
    "registry.cli.demo_cmd",
    "registry.cli.chain_cmd",
    "registry.cli.elements_cmd",
    "registry.cli.resolve_cmd",
    "registry.cli.compose_cmd",
    "registry.cli.mergekit_cmd",
    "registry.cli.records_cmd",
    "registry.cli.provenance_cmd",
    "registry.cli.storage_cmd",
    "registry.cli.pin_cmd",
    "registry.cli.config_cmd",
]

EPILOG = """\
examples:
  elements demo                                             the whole story in process, on a real model
  elements devnet                                           a local chain; then, in another shell:
  elements --network devnet publish-model ./all-MiniLM-L6-v2 --license Apache-2.0      job 1
  elements --network devnet assemble 0x<record or content id> -o ./model               job 2
  elements --network devnet verify ./model                                             job 3

environment: ELEMENTS_HOME, ELEMENTS_RPC_URL, ELEMENTS_NETWORK, ELEMENTS_REGISTRY,
ELEMENTS_KEYSTORE, ELEMENTS_KEYSTORE_PASSWORD, ELEMENTS_PRIVATE_KEY, ELEMENTS_IPFS_API,
ELEMENTS_GATEWAY (see `elements config show`; docs/cli.md).
ELEMENTS_NO_PROGRESS=1 turns progress bars off; --debug or ELEMENTS_DEBUG=1 shows tracebacks and
the sources tried. ELEMENTS_FETCH_TIMEOUT, _DEADLINE, _MIN_RATE, _MAX_BYTES limit what a fetch may cost.
exit codes: 0 ok / verified, 1 verification failed, 2 bad input, usage or an unreachable service.
"""


# The top-level help lists commands by the job they serve (any command not named here is listed last).
COMMAND_GROUPS = [
    ("get started", ["demo", "devnet", "config"]),
    ("job 1, publish", ["publish-model", "publish", "compose", "publish-delta", "split", "extract-lora",
                         "convert-mergekit"]),
    ("job 2, resolve and assemble", ["resolve", "show", "ls", "assemble", "assemble-local"]),
    ("job 3, verify", ["verify"]),
    ("content ids, IPFS and disk", ["id", "cid", "car", "pin-service", "pins", "cache", "gc"]),
    ("chain, keys and licences", ["deploy", "keys", "licenses", "add-license", "relay", "yank"]),
]

# Commands that read or write the registry: on the default in-process chain they run against a
# chain that exists only for this process, which a user should be told (the demo knows).
CHAIN_COMMANDS = {
    "deploy", "licenses", "add-license", "publish", "publish-model", "publish-delta", "relay", "compose",
    "resolve", "show", "ls", "assemble", "verify", "yank", "pins",
}
MEMORY_NOTE = (
    "elements: note: no chain configured, so this runs on a throw-away in-process chain that is gone when "
    "the command exits; start one with `elements devnet` and use --network devnet, or pass --network NAME / --rpc-url URL"
)


def _global_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    g = parent.add_argument_group("global options (before or after the command)")
    sup = argparse.SUPPRESS
    g.add_argument("--rpc-url", default=sup, metavar="URL", action=Repeated,
                   help="JSON-RPC URL, or 'memory' (ELEMENTS_RPC_URL); repeat it to cross-check reads across endpoints")
    g.add_argument("--network", default=sup, metavar="NAME", help="a named network from the config, e.g. devnet (ELEMENTS_NETWORK)")
    g.add_argument("--registry", default=sup, metavar="ADDR", help="registry address (ELEMENTS_REGISTRY; default: deployments file, CREATE2 address)")
    g.add_argument("--keystore", default=sup, metavar="NAME", help="keystore name or path (ELEMENTS_KEYSTORE; or ELEMENTS_PRIVATE_KEY)")
    g.add_argument("--home", default=sup, metavar="DIR", help="config, keystores, block store, caches (ELEMENTS_HOME; ~/.elements)")
    g.add_argument("--ipfs-api", default=sup, metavar="URL", help="Kubo RPC API, e.g. http://127.0.0.1:5001 (ELEMENTS_IPFS_API)")
    g.add_argument("--gateway", default=sup, metavar="URL", help="trustless gateway URL(s), comma separated (ELEMENTS_GATEWAY)")
    g.add_argument("--json", action="store_true", default=sup, help="machine-readable output on stdout (no progress bars)")
    g.add_argument("--debug", action="store_true", default=sup, help="show tracebacks (ELEMENTS_DEBUG)")
    return parent


class _TopParser(Parser):
    """The ``elements`` parser: its help lists the commands grouped by job."""

    def parse_known_args(self, args=None, namespace=None):
        Repeated.reset(self)  # a repeated option's values belong to one command line
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        import shutil
        import textwrap

        formatter = self._get_formatter()
        formatter.add_usage(self.usage, self._actions, self._mutually_exclusive_groups)
        formatter.add_text(self.description)
        sub = next(a for a in self._actions if isinstance(a, argparse._SubParsersAction))
        helps = {a.dest: a.help or "" for a in sub._choices_actions}
        width = max(len(name) for name in helps) + 3
        columns = max(60, min(120, shutil.get_terminal_size().columns) - 2)
        listed = set()
        groups = [(title, [n for n in names if n in helps]) for title, names in COMMAND_GROUPS]
        groups.append(("other commands", [n for n in helps if not any(n in names for _, names in COMMAND_GROUPS)]))
        for title, names in groups:
            if not names:
                continue
            lines = []
            for name in names:
                listed.add(name)
                text = textwrap.wrap(helps[name], columns - width - 2) or [""]
                lines.append(f"{name:<{width}}{text[0]}")
                lines.extend(" " * width + more for more in text[1:])
            formatter.start_section(title)
            formatter.add_text("\n".join(lines))
            formatter.end_section()
        for group in self._action_groups:
            if group is self._positionals:
                continue
            formatter.start_section(group.title)
            formatter.add_text(group.description)
            formatter.add_arguments(group._group_actions)
            formatter.end_section()
        formatter.add_text(self.epilog)
        return formatter.format_help()


def build_parser() -> argparse.ArgumentParser:
    common = _global_options()
    parser = _TopParser(
        prog="elements",
        usage="elements [global options] COMMAND [ACTION] [options]",
        description="Elements: publish, compose, assemble and verify AI model components on an EVM chain and IPFS.\n"
                    "Run `elements COMMAND --help` for a command's options and examples.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"elements {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", prog="elements", parser_class=Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a command group not built yet
                continue
            raise
        module.register(sub, common)
    return parser


def _british(argv: list[str]) -> list[str]:
    """``--licence`` (the docs' prose spelling) is ``--license``."""
    return ["--license" + arg[len("--licence"):] if arg == "--licence" or arg.startswith("--licence=") else arg
            for arg in argv]


def main(argv: Sequence[str] | None = None) -> int:
    argv = _british(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return _fail(exc, 2, None, {"json": "--json" in argv})
    if not getattr(args, "handler", None):
        if getattr(args, "json", False):
            return _fail(UsageError("choose a command (see `elements --help`)"), 2, None, {"json": True})
        parser.print_help()
        return 2
    flags = vars(args)
    settings = None
    try:
        try:
            settings = Settings.resolve(flags)
        except ConfigError:
            # devnet makes the network, config fixes it: a stale default must not lock them out
            # (config still refuses a --network flag that names no network).
            optional = getattr(args, "network_optional", False)
            if not optional or (optional == "default" and flags.get("network")):
                raise
            settings = Settings.resolve(flags, use_network=False)
        if settings.debug:
            _debug_log()
        result = args.handler(args, settings)
        try:
            code = emit(result, settings)
        except BrokenPipeError:  # `elements verify M | head -1`: the reader left, the verdict still decides
            _silence_stdout()
            return result.exit_code if result is not None else 0
        if args.command in CHAIN_COMMANDS and settings.rpc_url == "memory" and settings.rpc_default and not settings.json:
            # After the output, and only when the command ran: a failure stays one line (its message names the chain).
            print(MEMORY_NOTE, file=sys.stderr)
        return code
    except ElementsError as exc:
        return _fail(exc, exc.exit_code, settings, flags)
    except KeyboardInterrupt:
        print("elements: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `elements ls | head`: the reader left; not an error worth a message
        _silence_stdout()
        return 0
    except Exception as exc:  # an unexpected failure is still one line unless --debug
        if flags.get("debug") or (settings is not None and settings.debug):
            raise
        if isinstance(exc, OSError) and exc.filename is not None:
            # A path the system refuses (too long, no permission, no space, read-only): the user's to fix.
            return _fail(InputError(_path_problem(exc)), 2, settings, flags)
        if isinstance(exc, OSError) and _disk_full(exc):
            # A write to an open file (no path in the error): the disk or quota filled up mid-way.
            return _fail(InputError(f"{exc.strerror or exc} while writing; free some disk space (or give another --home "
                                    "or output directory) and re-run"), 2, settings, flags)
        return _fail(exc, 2, settings, flags, unexpected=True)


def run() -> NoReturn:
    """The ``elements`` process (console script and ``python -m registry``): :func:`main`, then an
    exit without the interpreter's teardown (freeing every module and object: 20 to 50 ms after
    ``publish-model``, most of what follows ``verify``'s verdict). Everything a command writes is
    renamed into place and closed before main() returns (registry/files.py), so what is skipped is
    only freeing memory; the atexit handlers (logging's flush among them) still run. While a
    non-daemon thread is alive, or stdout or stderr cannot be flushed, the exit is the usual one."""
    try:
        code = main()
    except SystemExit as done:  # --help and --version exit from inside argparse
        if done.code is not None and not isinstance(done.code, int):
            raise
        code = done.code or 0
    if not 0 <= code <= 255 or any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a reader that left: Python's own exit reports it as before
        sys.exit(code)
    atexit._run_exitfuncs()
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _debug_log() -> None:
    """--debug: the library's debug log (which source was tried, why it failed) on stderr."""
    import logging

    class Stderr(logging.StreamHandler):
        """Writes to whatever ``sys.stderr`` is when a record comes (main() may run many times in a process)."""

        stream = property(lambda self: sys.stderr, lambda self, value: None)

    logger = logging.getLogger("registry")
    logger.setLevel(logging.DEBUG)
    if not any(type(h).__name__ == "Stderr" for h in logger.handlers):
        handler = Stderr()
        handler.setFormatter(logging.Formatter("elements: debug: %(message)s"))
        logger.addHandler(handler)


def _path_problem(exc: OSError) -> str:
    import errno

    fixes = {
        errno.ENAMETOOLONG: "use a shorter name (at most 255 bytes per name)",
        errno.ENOSPC: "free some disk space",
        errno.EDQUOT: "free some disk space (quota)",
        errno.EACCES: "check its permissions",
        errno.EPERM: "check its permissions",
        errno.EROFS: "choose a writable location",
        errno.ENOTDIR: "a part of the path is a file, not a directory",
        errno.EISDIR: "it is a directory; give a file",
        errno.EEXIST: "it exists already; choose another path",
        errno.ENOENT: "check the path",
    }
    fix = "check the path" if exc.errno is None else fixes.get(exc.errno, "check the path")
    # A rename names both paths; the second is the one the user gave (the first a temporary).
    name = exc.filename2 if exc.filename2 is not None else exc.filename
    return f"cannot use {name}: {exc.strerror or exc}; {fix}"


def _disk_full(exc: OSError) -> bool:
    import errno

    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _fail(exc: BaseException, code: int, settings: Settings | None, flags: dict, unexpected: bool = False) -> int:
    if settings is not None and settings.debug:
        import traceback

        traceback.print_exc()
    message = str(exc) or type(exc).__name__
    if unexpected:
        message = f"internal error: {type(exc).__name__}: {message} (re-run with --debug and report it)"
    if flags.get("json"):
        print(json.dumps({"ok": False, "error": type(exc).__name__, "message": message, "exit_code": code}))
    else:
        print(f"elements: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    run()
