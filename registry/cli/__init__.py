"""The ``elements`` command line: thin commands over the library, human or --json output.

Exit codes: 0 success / verified; 1 verification failed or not found by verify; 2 bad input,
usage error or an unreachable service. Errors print one line (no traceback without --debug).

Each command group lives in its own module with a ``register(subparsers)`` function that adds
its commands; a command's handler takes ``(args, settings)`` and returns a :class:`Result`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Sequence

from .. import __version__
from ..config import Settings
from ..errors import ElementsError
from ._app import Result, emit

__all__ = ["main", "build_parser", "Result"]

# Command modules, in the order their commands appear in --help.
COMMAND_MODULES = [
    "registry.cli.demo_cmd",
    "registry.cli.chain_cmd",
    "registry.cli.elements_cmd",
    "registry.cli.compose_cmd",
    "registry.cli.records_cmd",
    "registry.cli.provenance_cmd",
    "registry.cli.storage_cmd",
    "registry.cli.config_cmd",
]

EPILOG = """\
examples:
  elements demo                                   the whole story, in process, on a real model
  elements devnet                                 a local anvil chain with the registry deployed
  elements publish-model ./all-MiniLM-L6-v2 --license Apache-2.0
  elements assemble 0x<content id> -o ./model
  elements verify ./model

environment: ELEMENTS_HOME, ELEMENTS_RPC_URL, ELEMENTS_NETWORK, ELEMENTS_REGISTRY,
ELEMENTS_KEYSTORE, ELEMENTS_PRIVATE_KEY, ELEMENTS_IPFS_API, ELEMENTS_GATEWAY,
ELEMENTS_NO_PROGRESS (see `elements config show`).
exit codes: 0 ok, 1 verification failed, 2 bad input or unreachable service.
"""


# Commands that read or write the registry: on the default in-process chain they run against a
# chain that exists only for this process, which a user should be told (the demo knows).
CHAIN_COMMANDS = {
    "deploy", "licenses", "add-license", "publish", "publish-model", "publish-delta", "relay", "compose",
    "resolve", "show", "ls", "assemble", "verify", "yank",
}
MEMORY_NOTE = (
    "elements: note: no chain configured, so this runs on a throw-away in-process chain that is gone when "
    "the command exits; start one with `elements devnet` and use --network devnet, or pass --network NAME / --rpc-url URL"
)


def _global_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    g = parent.add_argument_group("global options")
    sup = argparse.SUPPRESS
    g.add_argument("--rpc-url", default=sup, help="JSON-RPC URL, or 'memory' (ELEMENTS_RPC_URL)")
    g.add_argument("--network", default=sup, help="a named network from the config (ELEMENTS_NETWORK)")
    g.add_argument("--registry", default=sup, help="registry address (ELEMENTS_REGISTRY)")
    g.add_argument("--keystore", default=sup, help="keystore name or path (ELEMENTS_KEYSTORE)")
    g.add_argument("--home", default=sup, help="config, keystores, block store (ELEMENTS_HOME)")
    g.add_argument("--ipfs-api", default=sup, help="Kubo RPC API URL (ELEMENTS_IPFS_API)")
    g.add_argument("--gateway", default=sup, help="trustless gateway URL (ELEMENTS_GATEWAY)")
    g.add_argument("--json", action="store_true", default=sup, help="machine-readable output")
    g.add_argument("--debug", action="store_true", default=sup, help="show tracebacks")
    return parent


def build_parser() -> argparse.ArgumentParser:
    common = _global_options()
    parser = argparse.ArgumentParser(
        prog="elements",
        description="Elements: publish, compose, assemble and verify AI model components on an EVM chain and IPFS.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"elements {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a command group not built yet
                continue
            raise
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    flags = vars(args)
    settings = None
    try:
        settings = Settings.resolve(flags)
        if args.command in CHAIN_COMMANDS and settings.rpc_url == "memory" and not settings.json:
            print(MEMORY_NOTE, file=sys.stderr)
        result = args.handler(args, settings)
        return emit(result, settings)
    except ElementsError as exc:
        return _fail(exc, exc.exit_code, settings, flags)
    except KeyboardInterrupt:
        print("elements: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure is still one line unless --debug
        if flags.get("debug") or (settings is not None and settings.debug):
            raise
        return _fail(exc, 2, settings, flags, unexpected=True)


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
    sys.exit(main())
