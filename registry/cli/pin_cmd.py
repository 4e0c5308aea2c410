"""Remote pinning: ``pin-service add|list|remove`` (IPFS Pinning Service API endpoints),
``pins`` (where your records' DAGs stand on each), and the ``--pin NAME`` option of the
publishing commands (``publish``, ``publish-model``, ``compose``, ``publish-delta``).

The work is in :mod:`registry.publish.pinning`; handlers import it when they run, so this
module's top level costs nothing (tests/test_cli_imports.py).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config import Settings
from ..errors import ConfigError, InputError
from ._app import Result, add_command, add_group

__all__ = ["register", "add_pin_option", "check_pinning", "pin_published", "with_pinning"]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    _, actions = add_group(
        sub, common, "pin-service",
        help="remote pinning services (the IPFS Pinning Service API): add, list, remove",
        examples=(
            "  export PINNING_TOKEN=...; elements pin-service add pinata https://api.pinata.cloud/psa --token-env PINNING_TOKEN\n"
            "  elements pin-service add cluster http://127.0.0.1:9097 --token-stdin < token.txt     stored 0600 in $ELEMENTS_HOME\n"
            "  elements pin-service list\n"
            "  elements publish-model ./model --license MIT --ipfs-api http://127.0.0.1:5001 --pin pinata\n"
        ),
        dest="pin_service_action",
    )
    p = add_command(
        actions, common, "add", cmd_service_add,
        "add (or replace) a pinning service; the token comes from a variable or stdin, never an argument",
        examples=(
            "  elements pin-service add web3 https://api.web3.storage --token-env WEB3_TOKEN\n"
            "  elements pin-service add cluster http://127.0.0.1:9097 --token-stdin < token.txt\n"
            "  elements pin-service add local http://127.0.0.1:9097 --no-token --wait 600 --queued-timeout 120\n"
        ),
    )
    p.add_argument("name", metavar="NAME", help="a name for the service (letters, digits, _ . -)")
    p.add_argument("url", metavar="URL", help="the service's Pinning Service API endpoint (the URL under which /pins is served)")
    token = p.add_mutually_exclusive_group(required=True)
    token.add_argument("--token-env", metavar="VAR", help="read the access token from this environment variable at each use")
    token.add_argument("--token-stdin", action="store_true", help="read the token from stdin (or a hidden prompt) into a 0600 file under $ELEMENTS_HOME")
    token.add_argument("--no-token", action="store_true", help="the service asks for no token (a cluster on this machine)")
    p.add_argument("--wait", type=float, metavar="SECONDS", help="how long --pin waits for every pin (default 3600)")
    p.add_argument("--queued-timeout", type=float, metavar="SECONDS", help="how long a pin may stay queued (default 900)")
    p.add_argument("--default", action="store_true", help="pin on this service when no --pin is given (the first service added is the default)")

    add_command(actions, common, "list", cmd_service_list, "list the pinning services (never their tokens)",
                examples="  elements pin-service list\n  elements pin-service list --json\n")
    p = add_command(actions, common, "remove", cmd_service_remove, "remove a pinning service and its stored token",
                    examples="  elements pin-service remove pinata\n")
    p.add_argument("name", metavar="NAME")

    p = add_command(
        sub, common, "pins", cmd_pins,
        help="the status of your records' DAGs on each pinning service (queued, pinning, pinned, failed, none)",
        examples=(
            "  elements --network devnet pins                       every DAG of the configured key's records\n"
            "  elements pins --publisher 0xf39F... --service pinata --json\n"
        ),
    )
    p.add_argument("--publisher", metavar="ADDR", help="whose records (default: the configured key's)")
    p.add_argument("--service", metavar="NAME", action="append", help="only this service (repeatable; default: every one)")


def add_pin_option(parser: argparse.ArgumentParser) -> None:
    """``--pin NAME`` / ``--no-pin`` on a publishing command."""
    parser.add_argument("--pin", metavar="NAME",
                        help="after publishing, pin every DAG on this pinning service and wait until it is pinned "
                             "(default: the config's pin_service; see `elements pin-service`)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin on the default pinning service")


# -- pinning after a publish ---------------------------------------------------------------------


def check_pinning(args: argparse.Namespace, settings: Settings) -> str | None:
    """The service a publishing command will pin on, checked before anything is sent (the service
    configured, its token readable, a Kubo node the service can fetch from); ``None``: no pinning."""
    if getattr(args, "pin", None) and getattr(args, "no_pin", False):
        raise InputError("--pin and --no-pin exclude each other")
    if getattr(args, "no_pin", False) or getattr(args, "dry_run", False) or getattr(args, "sign_only", None):
        return None
    from ..publish.pinning import chosen_service, open_service, service_config

    name = chosen_service(settings, getattr(args, "pin", None))
    if name is None:
        return None
    service_config(settings, name)  # an unknown name first: it is the likelier mistake
    if not settings.ipfs_api:
        raise ConfigError(f"--pin {name} needs a Kubo node that holds the DAGs for the service to fetch them from; "
                          "pass --ipfs-api URL (or ELEMENTS_IPFS_API), or --no-pin")
    service, _ = open_service(settings, name)
    with service:
        # A service that is down or refuses the token says so before any gas is spent.
        service.find(limit=1, statuses=("pinned",))
    return name


def pin_published(name: str | None, settings: Settings, sources, reports, bars) -> Any:
    """Pin every DAG ``reports`` (PublishReports) published on service ``name``; the PinReport."""
    if name is None:
        return None
    from ..publish.pinning import dags_of, open_service, pin_dags

    cids = dags_of(*reports)
    if not cids:
        return None
    kubo = sources.kubo
    origins = list(kubo.id().get("Addresses") or [])[:20] if kubo is not None else []
    service, config = open_service(settings, name)
    with service:
        bar = bars.bar(f"pinning on {name}", len(cids), unit="DAGs")
        return pin_dags(service, cids, origins=[a for a in origins if isinstance(a, str)],
                        connect=kubo.swarm_connect if kubo is not None else None,
                        wait=config.wait, queued_timeout=config.queued_timeout, progress=bar)


def with_pinning(result: Result, report: Any) -> Result:
    """The command's result, plus the pinning outcome (``pinning`` in --json, one line for humans)."""
    if report is None:
        return result
    if isinstance(result.data, dict):
        result.data["pinning"] = report.to_json()
    human = result.human

    def both() -> None:
        if callable(human):
            human()
        elif human is not None:
            print(human)
        print(f"pinned {len(report.pins)} DAG(s) on {report.service} ({report.requested} requested now, "
              f"{len(report.pins) - report.requested} already requested); `elements pins` shows them")

    result.human = both
    return result


# -- pin-service ---------------------------------------------------------------------------------


def cmd_service_add(args: argparse.Namespace, settings: Settings) -> Result:
    from ..publish.pinning import add_service

    token = None
    if args.token_stdin:
        if sys.stdin.isatty():
            import getpass

            token = getpass.getpass("access token (not shown): ")
        else:
            token = sys.stdin.readline()
        if not token.strip():
            raise InputError("no token on stdin; pipe it in (elements pin-service add NAME URL --token-stdin < token.txt)")
    config = add_service(settings.home, args.name, args.url, token_env=args.token_env, token=token,
                         wait=args.wait, queued_timeout=args.queued_timeout, default=args.default)
    default = config.name == _default_name(settings.home)
    data = {"name": config.name, **config.to_json(), "default": default}
    return Result(data=data, human=f"pinning service {config.name} at {config.url} (token: {config.token_source})"
                                   + ("; the default for --pin" if default else f"; use it with --pin {config.name}"))


def _default_name(home) -> str | None:
    from ..config import load_config_file

    return load_config_file(home).get("pin_service")


def cmd_service_list(args: argparse.Namespace, settings: Settings) -> Result:
    from ..publish.pinning import service_configs

    services = service_configs(settings.file)
    default = settings.file.get("pin_service")
    data = [{"name": c.name, **c.to_json(), "wait": c.wait, "queued_timeout": c.queued_timeout,
             "default": c.name == default} for c in services.values()]

    def human() -> None:
        if not services:
            print("no pinning services; add one with `elements pin-service add NAME URL --token-env VAR`")
        for c in services.values():
            mark = "  (default)" if c.name == default else ""
            print(f"{c.name:<16} {c.url}  token: {c.token_source}  wait {c.wait:g}s, queued {c.queued_timeout:g}s{mark}")

    return Result(data=data, human=human)


def cmd_service_remove(args: argparse.Namespace, settings: Settings) -> Result:
    from ..publish.pinning import remove_service

    if not remove_service(settings.home, args.name):
        raise ConfigError(f"no pinning service {args.name!r}; see `elements pin-service list`")
    return Result(data={"name": args.name, "removed": True},
                  human=f"removed pinning service {args.name} (the pins stay on the service; remove them there)")


# -- pins ----------------------------------------------------------------------------------------


def cmd_pins(args: argparse.Namespace, settings: Settings) -> Result:
    from ..chain.session import open_registry
    from ..errors import ElementsError
    from ..provenance.index import indexed_records
    from ..publish.claims import signing_account
    from ..publish.pinning import open_service, pin_statuses, service_configs
    from ..records.resolve import Resolver
    from ..storage.fetch import Sources

    services = service_configs(settings.file)
    names = args.service or sorted(services)
    if not names:
        raise ConfigError("no pinning services; add one with `elements pin-service add NAME URL --token-env VAR`")
    for name in names:
        if name not in services:
            raise ConfigError(f"no pinning service {name!r}; see `elements pin-service list`")
    if args.publisher:
        from eth_utils import to_checksum_address

        try:
            publisher = to_checksum_address(args.publisher)
        except ValueError:
            raise InputError(f"--publisher {args.publisher!r} is not an address (0x + 40 hex)") from None
        registry = open_registry(settings)
    else:
        registry = open_registry(settings, write=True)
        publisher = signing_account(registry).address
    rows: list[dict[str, Any]] = []
    with Sources.from_settings(settings) as sources:
        resolver = Resolver(registry, sources)
        # From the attribution index (synced, each record read back), not a scan of the events.
        listed = indexed_records(registry, settings.home, resolver, publisher=publisher)
        records = listed if listed is not None else registry.records_by(publisher)
        for record in records:
            rid = str(record.record_id)
            rows.append({"record": rid, "role": "document", "cid": record.cid})
            try:
                document = resolver.document(record)
            except ElementsError as exc:
                rows.append({"record": rid, "role": "data", "cid": None, "error": str(exc)})
                continue
            data = getattr(document, "data", None)
            if isinstance(data, dict) and isinstance(data.get("cid"), str):
                rows.append({"record": rid, "role": "data", "cid": data["cid"]})
    cids = list(dict.fromkeys(r["cid"] for r in rows if r["cid"]))
    for name in names:
        service, _ = open_service(settings, name)
        with service:
            found = pin_statuses(service, cids)
        for row in rows:
            statuses = found.get(row["cid"], []) if row["cid"] else []
            row[name] = _summary(statuses)
    data = {"publisher": publisher, "services": names, "dags": rows}

    def human() -> None:
        if not rows:
            print(f"no records by {publisher}")
            return
        print(f"{'record':<14} {'role':<9} {'cid':<24} " + " ".join(f"{n:<10}" for n in names))
        for row in rows:
            cid = row["cid"] or f"? ({row.get('error', '')[:40]})"
            print(f"{row['record'][:12]}…  {row['role']:<9} {cid[:22] + '…' if len(cid) > 23 else cid:<24} "
                  + " ".join(f"{row[n]:<10}" for n in names))
        missing = sum(1 for row in rows for n in names if row[n] in ("none", "failed"))
        if missing:
            print(f"{missing} DAG(s) not pinned or failed; re-run the publish command with --pin NAME to (re)pin them")

    return Result(data=data, human=human)


def _summary(statuses) -> str:
    if not statuses:
        return "none"
    for status in ("pinned", "pinning", "queued", "unknown", "failed"):
        if any(s.status == status for s in statuses):
            return status
    return statuses[0].status
