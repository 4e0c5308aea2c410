"""Storage commands: ``elements cid`` and ``elements car export|import``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import Settings
from ..errors import InputError
from ..storage.car import export_car, import_car
from ..storage.cid import CID
from ..storage.fetch import Sources, open_store
from ..storage.kubo import Kubo
from ..storage.unixfs import DEFAULT_PROFILE, PROFILES, add_file, get_profile
from ._app import Result, add_command, progress

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    cid = add_command(
        sub, common, "cid", cmd_cid,
        help="IPFS CID of a file, as Kubo computes it for a UnixFS import profile",
        examples=(
            "  elements cid model.safetensors                           unixfs-v1-2025 (the default)\n"
            "  elements cid model.safetensors --profile unixfs-v0-2015  what plain `ipfs add` gives (Qm...)\n"
            "  elements cid model.safetensors --profile cidv1           what `ipfs add --cid-version=1` gives\n"
            "  elements cid model.safetensors --store                   also keep the blocks in the local store\n"
        ),
    )
    cid.add_argument("file", metavar="FILE", help="the file to import ('-' reads standard input)")
    cid.add_argument(
        "--profile", default=DEFAULT_PROFILE, metavar="P",
        help=f"import profile: {', '.join(PROFILES)} (default {DEFAULT_PROFILE})",
    )
    cid.add_argument("--store", action="store_true", help="put the blocks into the local block store too")

    car = sub.add_parser(
        "car", help="move DAGs in and out as CAR files (interchangeable with `ipfs dag export/import`)",
        description="Move DAGs in and out as CAR v1 files, interchangeable with `ipfs dag export` / `ipfs dag import`.",
        epilog=(
            "examples:\n"
            "  elements car export bafybei... -o model.car\n"
            "  elements car import model.car\n"
            "  elements car import model.car --ipfs-api http://127.0.0.1:5001\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    car_sub = car.add_subparsers(dest="car_command", metavar="COMMAND", required=True)
    export = add_command(
        car_sub, common, "export", cmd_car_export,
        help="write the DAG of a CID to a CAR file (fetched first from --ipfs-api / --gateway if needed)",
        examples=(
            "  elements car export bafybei... -o model.car\n"
            "  elements car export bafybei... -o model.car --ipfs-api http://127.0.0.1:5001\n"
        ),
    )
    export.add_argument("cid", metavar="CID", help="root CID of the DAG")
    export.add_argument("-o", "--output", required=True, metavar="FILE.car", help="where to write the CAR")
    imp = add_command(
        car_sub, common, "import", cmd_car_import,
        help="import a CAR into the local block store (and into Kubo with --ipfs-api); all or nothing",
        examples=(
            "  elements car import model.car\n"
            "  elements car import model.car --ipfs-api http://127.0.0.1:5001   also import and pin in Kubo\n"
        ),
    )
    imp.add_argument("file", metavar="FILE.car", help="the CAR file (v1 or v2)")


def cmd_cid(args: argparse.Namespace, settings: Settings) -> Result:
    profile = get_profile(args.profile)
    store = open_store(settings) if args.store else None
    if args.file == "-":
        import sys

        source = sys.stdin.buffer
        size = None
        name = "<stdin>"
    else:
        path = Path(args.file)
        if not path.exists():
            raise InputError(f"{path} does not exist; give the path of a file")
        if path.is_dir():
            raise InputError(f"{path} is a directory; `elements cid` takes one file")
        source, size, name = path, path.stat().st_size, str(path)
    with progress(settings, size, f"hashing {name}") as bar:
        cid = add_file(source, store=store, profile=profile, progress=bar.advance)
    data = {"cid": str(cid), "profile": profile.name, "file": name, "stored": bool(store)}
    if size is not None:
        data["size"] = size
    return Result(data=data, human=str(cid))


def cmd_car_export(args: argparse.Namespace, settings: Settings) -> Result:
    root = CID.parse(args.cid)
    output = Path(args.output)
    if output.is_dir():
        raise InputError(f"{output} is a directory; give a file name such as {output / 'dag.car'}")
    if not output.parent.exists():
        raise InputError(f"{output.parent} does not exist; create it first")
    with Sources.from_settings(settings) as sources:
        sources.ensure(root)
        blocks, size = export_car(root, sources.store.get, output)
    data = {"root": str(root), "file": str(output), "blocks": blocks, "bytes": size}
    return Result(data=data, human=f"{root} -> {output} ({blocks} blocks, {size} bytes)")


def cmd_car_import(args: argparse.Namespace, settings: Settings) -> Result:
    path = Path(args.file)
    if not path.is_file():
        raise InputError(f"{path} is not a file; give a CAR file (made by `elements car export` or `ipfs dag export`)")
    result = import_car(path, open_store(settings))
    data = result.to_json()
    data["file"] = str(path)
    lines = [f"{root} ({result.blocks} blocks, {result.new_blocks} new)" for root in result.roots]
    if settings.ipfs_api:
        with Kubo(settings.ipfs_api) as kubo:
            pinned = kubo.dag_import(path, pin_roots=True)
        data["kubo"] = {"api": kubo.url, "pinned": [str(c) for c in pinned]}
        lines.append(f"imported and pinned in Kubo at {kubo.url}")
    return Result(data=data, human="\n".join(lines))
