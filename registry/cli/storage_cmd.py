"""Storage commands: ``elements cid``, ``elements car export|import``, ``elements cache`` and ``elements gc``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Settings
from ..errors import ConfigError, InputError
from ..storage.cid import CID
from ..storage.errors import CIDError
from ..storage.profiles import DEFAULT_PROFILE, PROFILES, get_profile
from ._app import Result, add_command, add_group, progress

if TYPE_CHECKING:
    from ..storage.fetch import Sources
    from ..storage.kubo import Kubo

__all__ = ["register"]

# The storage modules above are the standard library's and ours, and light; the importer and the CAR
# codec (thread pools, logging) are imported by the handlers that use them, since every command
# loads this module to build the parser; the ones that speak HTTP (fetch, kubo, gateway: httpx) by
# the handlers that reach a node, so `elements cid` does not.


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    cid = add_command(
        sub, common, "cid", cmd_cid,
        help="IPFS CID of a file, as Kubo computes it for a UnixFS import profile",
        examples=(
            "  elements cid model.safetensors                           unixfs-v1-2025 (the default)\n"
            "  elements cid model.safetensors --profile unixfs-v0-2015  what plain `ipfs add` gives (Qm...)\n"
            "  elements cid model.safetensors --profile cidv1           what `ipfs add --cid-version=1` gives\n"
            "  elements cid model.safetensors --store                   also keep the blocks in the local store\n"
            "  elements cid model.safetensors --hash blake2b-256        what `ipfs add --hash=blake2b-256` gives with the profile\n"
        ),
    )
    cid.add_argument("file", metavar="FILE", help="the file to import ('-' reads standard input)")
    cid.add_argument(
        "--profile", default=DEFAULT_PROFILE, metavar="P",
        help=f"import profile: {', '.join(PROFILES)} (default {DEFAULT_PROFILE})",
    )
    cid.add_argument(
        "--hash", default="sha2-256", metavar="H",
        help="multihash function, any name `ipfs add --hash` takes: sha2-256 (default), sha2-512, sha3-256, "
        "keccak-256, blake2b-256, blake2s-256, blake3, ... (needs a CIDv1 profile)",
    )
    cid.add_argument("--store", action="store_true", help="put the blocks into the local block store too")

    _, car_sub = add_group(
        sub, common, "car",
        help="move DAGs in and out as CAR files (interchangeable with `ipfs dag export` / `ipfs dag import`)",
        examples=(
            "  elements car export bafybei... -o model.car\n"
            "  elements car export 0x<record or content id> -o model.car      its manifests/recipe and data\n"
            "  elements car import model.car\n"
            "  elements car import model.car --ipfs-api http://127.0.0.1:5001\n"
        ),
        dest="car_command",
    )
    export = add_command(
        car_sub, common, "export", cmd_car_export,
        help="write the DAG of a CID, or every document and data file behind a record / content id, to a CAR file",
        examples=(
            "  elements car export bafybei... -o model.car                     one DAG, as `ipfs dag export` writes it\n"
            "  elements car export bafybei... -o model.car --ipfs-api http://127.0.0.1:5001   fetched from Kubo first\n"
            "  elements --network devnet car export 0x<composition record> -o model.car\n"
            "      the recipe, every element's manifest and data: one root each (`ipfs dag import` pins them all)\n"
            "  elements car export 0x<content id> -o model.car                 every claim of the content id, and their ancestors\n"
        ),
    )
    export.add_argument("hash", metavar="HASH", help="a CID, or a record id / content id (0x + 64 hex) resolved on the chain")
    export.add_argument("-o", "--output", required=True, metavar="FILE.car", help="where to write the CAR (must not exist unless --force)")
    export.add_argument("--force", action="store_true", help="replace FILE.car if it exists")
    imp = add_command(
        car_sub, common, "import", cmd_car_import,
        help="import a CAR into the local block store (and into Kubo with --ipfs-api); all or nothing",
        examples=(
            "  elements car import model.car\n"
            "  elements car import model.car --ipfs-api http://127.0.0.1:5001   also import and pin in Kubo\n"
        ),
    )
    imp.add_argument("file", metavar="FILE.car", help="the CAR file (v1 or v2)")
    imp.add_argument(
        "--zero-length-as-end", action="store_true",
        help="read a zero-length section as the end of the data (padding some writers leave) instead of refusing the CAR",
    )


    cache = add_command(
        sub, common, "cache", cmd_cache,
        help="what $ELEMENTS_HOME holds, by kind and by recent assembly; pin or unpin a DAG so gc keeps it",
        examples=(
            "  elements cache                      blocks, caches, scratch, notes: files and bytes on disk\n"
            "  elements cache --pin bafybei...     keep this DAG (and a manifest's data) through `elements gc`\n"
            "  elements cache --unpin bafybei...\n"
        ),
    )
    cache.add_argument("--pin", action="append", metavar="CID", help="keep this DAG through gc (repeatable)")
    cache.add_argument("--unpin", action="append", metavar="CID", help="stop keeping this DAG (repeatable)")
    gc = add_command(
        sub, common, "gc", cmd_gc,
        help="remove blocks that no record of yours, no pin and no recent assembly needs, and derived caches",
        examples=(
            "  elements --network devnet gc --dry-run   what would be freed, nothing removed\n"
            "  elements --network devnet gc             keeps your records' documents and data (read from the chain)\n"
            "  elements gc --no-chain                   keeps only pins and recent assemblies\n"
            "  elements gc --no-chain --max-size 50GB   evicts least recently used unneeded blocks down to 50 GB\n"
            "  elements --network devnet gc --publisher 0xA --publisher 0xB   keep the records of these publishers\n"
        ),
    )
    gc.add_argument("--dry-run", action="store_true", help="say what would be freed; remove nothing")
    gc.add_argument("--max-size", metavar="SIZE",
                    help="keep unneeded blocks as a cache of at most SIZE in all (e.g. 50GB, 20GiB), evicting the least "
                         "recently used first (default: the config's cache_limit; none: free every unneeded block)")
    gc.add_argument("--keep-days", type=float, default=7.0, metavar="DAYS",
                    help="keep what assemblies of the last DAYS days read (default 7)")
    gc.add_argument("--grace", type=float, default=3600.0, metavar="SECONDS",
                    help="keep blocks written in the last SECONDS whatever needs them (default 3600: imports in progress)")
    gc.add_argument("--publisher", action="append", metavar="ADDR",
                    help="keep the records of this publisher (default: the configured account; repeatable)")
    gc.add_argument("--no-chain", action="store_true",
                    help="do not read your records from the chain: keep only pins and recent assemblies")


def _mib(n: int) -> str:
    """A byte count as people read it (KiB below a MiB, GiB above a GiB)."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} B"


def cmd_cache(args: argparse.Namespace, settings: Settings) -> Result:
    from ..storage.fetch import open_store
    from ..storage.gc import home_usage
    from ..storage.roots import assemblies, pin, pins, unpin

    home = settings.home
    pinned, unpinned = [], []
    for text in args.pin or []:
        cid = _parse_cid(text)
        pin(home, cid)
        pinned.append(str(cid))
    for text in args.unpin or []:
        cid = _parse_cid(text)
        if not unpin(home, cid):
            raise InputError(f"{cid} is not pinned; `elements cache` lists the pins")
        unpinned.append(str(cid))
    usage = home_usage(home)
    store = open_store(settings)
    notes = []
    for note in assemblies(home):
        size = _dag_bytes(store, note.cids)
        notes.append({**note.to_json(), "bytes": size})
    data = {**usage.to_json(), "pins": [str(c) for c in pins(home)], "assemblies": notes,
            "pinned": pinned, "unpinned": unpinned}

    def human() -> None:
        for cid in pinned:
            print(f"pinned {cid}")
        for cid in unpinned:
            print(f"unpinned {cid}")
        print(f"{home}: {_mib(usage.total)} on disk")
        for kind, (files, size) in usage.kinds.items():
            if files:
                print(f"  {kind:<20} {files:>9,} files  {_mib(size):>14}")
        if notes:
            print("recent assemblies (kept by gc for --keep-days):")
            for note in notes:
                print(f"  {note['record'][:18]}…  {note['out']}  {_mib(note['bytes'])} of blocks")
        if data["pins"]:
            print("pins: " + ", ".join(data["pins"]))

    return Result(data=data, human=human)


def _dag_bytes(store, cids) -> int:
    """Bytes of the blocks of these DAGs that are in the store (each block once)."""
    from ..storage.gc import reach_blocks

    names: set[str] = set()
    reach_blocks(store, [CID.parse(c) for c in cids], names)
    total = 0
    for name in names:
        try:
            total += (store.root / name[-3:-1] / name).stat().st_size
        except FileNotFoundError:
            continue
    return total


def _published_documents(args: argparse.Namespace, settings: Settings) -> tuple[list[str], list[str]]:
    """The document CIDs of the records of the publishers gc keeps, read from the chain."""
    if args.no_chain:
        return [], []
    from ..chain.session import open_registry

    if settings.rpc_default or (settings.rpc_url or "memory") == "memory":
        raise InputError(
            "elements gc keeps the blocks of your records, which are on a chain: pass --network NAME or --rpc-url URL, "
            "or --no-chain to keep only pins and recent assemblies"
        )
    registry = open_registry(settings)
    publishers = list(args.publisher or [])
    if not publishers:
        if registry.account is None:
            raise InputError(
                "elements gc keeps your records' blocks but no key is configured: pass --publisher ADDR "
                "(or --keystore / ELEMENTS_PRIVATE_KEY), or --no-chain"
            )
        publishers = [registry.account.address]
    cids: list[str] = []
    for publisher in publishers:
        cids.extend(r.cid for r in registry.records_by(publisher))
    return cids, publishers


def _max_size(args: argparse.Namespace, settings: Settings) -> int | None:
    """``--max-size``, else the config's ``cache_limit``, parsed by the one size parser; None: no limit."""
    from ..compose.engine import parse_size

    flag = args.max_size
    value = flag if flag is not None else settings.file.get("cache_limit")
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    try:
        return parse_size(value)
    except InputError as exc:
        if flag is not None:
            raise InputError(f"--max-size: {exc}") from None
        raise ConfigError(f"cache_limit in the config: {exc}; fix it with `elements config set cache_limit SIZE`") from None


def cmd_gc(args: argparse.Namespace, settings: Settings) -> Result:
    from ..storage.fetch import open_store
    from ..storage.gc import home_usage, plan_gc, run_gc, store_lock

    if args.keep_days < 0 or args.grace < 0:
        raise InputError("--keep-days and --grace must not be negative")
    max_size = _max_size(args, settings)
    documents, publishers = _published_documents(args, settings)
    store = open_store(settings)
    before = home_usage(settings.home).total
    with store_lock(store, exclusive=True):
        plan = plan_gc(settings.home, store, documents, keep_days=args.keep_days, grace=args.grace, max_size=max_size)
        freed = 0 if args.dry_run else run_gc(plan)
    after = before if args.dry_run else home_usage(settings.home).total
    data = {**plan.to_json(), "dry_run": args.dry_run, "publishers": publishers, "freed_bytes": freed,
            "would_free_bytes": plan.garbage_bytes + plan.cache_bytes, "home_bytes_before": before, "home_bytes_after": after}

    def human() -> None:
        verb = "would free" if args.dry_run else "freed"
        roots = plan.roots
        print(f"roots: {roots['published']} document(s) of your records, {roots['pins']} pin(s), "
              f"{roots['recent_assemblies']} recent assembly(ies)" + (f"; {plan.missing_roots} not (wholly) here" if plan.missing_roots else ""))
        print(f"keep  {plan.kept_blocks:,} blocks, {_mib(plan.kept_bytes)}" + (f" ({plan.young:,} written in the last {args.grace:g} s)" if plan.young else ""))
        if plan.max_size is not None:
            print(f"limit {_mib(plan.max_size)}: {plan.cached:,} unneeded blocks, {_mib(plan.cached_bytes)}, kept as a cache"
                  + (f"; what is needed alone exceeds it by {_mib(plan.over_limit)}" if plan.over_limit else ""))
        print(f"{verb} {len(plan.garbage):,} blocks, {_mib(plan.garbage_bytes)}; derived caches {_mib(plan.cache_bytes)}")
        if not args.dry_run:
            print(f"{settings.home}: {_mib(before)} -> {_mib(after)}")

    return Result(data=data, human=human)


def cmd_cid(args: argparse.Namespace, settings: Settings) -> Result:
    from ..storage.unixfs import add_file

    profile = get_profile(args.profile)
    if args.hash != profile.hash:
        profile = profile.with_hash(args.hash)
    store = None
    if args.store:
        from ..storage.fetch import open_store

        store = open_store(settings)
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
    with progress(settings, "hashing", total=size) as bar:
        cid = add_file(source, store=store, profile=profile, progress=bar.advance)
    data = {"cid": str(cid), "profile": profile.name, "hash": profile.hash, "file": name, "stored": bool(store)}
    if size is not None:
        data["size"] = size
    return Result(data=data, human=str(cid))


def cmd_car_export(args: argparse.Namespace, settings: Settings) -> Result:
    from ..records.resolve import parse_hash
    from ..storage.car import export_car
    from ..storage.fetch import Sources

    kind, _ = parse_hash(args.hash) if args.hash.strip()[:2].lower() == "0x" else ("cid", b"")
    output = Path(args.output)
    if output.is_dir():
        raise InputError(f"{output} is a directory; give a file name such as {output / 'dag.car'}")
    if not output.parent.exists():
        raise InputError(f"{output.parent} does not exist; create it first")
    if output.exists() and not args.force:
        raise InputError(f"{output} exists; choose another -o or pass --force to replace it")
    records: list[str] = []
    with Sources.from_settings(settings) as sources:
        if kind == "id":
            roots, records, expected = _roots_behind(args.hash, settings, sources)
        else:
            roots, expected = [_parse_cid(args.hash)], None
        for root in roots:
            sources.ensure(root)
        with progress(settings, "exporting", total=expected) as bar:
            def get_block(cid: CID) -> bytes:
                block = sources.store.get(cid)
                bar.advance(len(block))
                return block

            blocks, size = export_car(roots, get_block, output)
    data = {"root": str(roots[0]), "roots": [str(r) for r in roots], "records": records, "file": str(output),
            "blocks": blocks, "bytes": size}
    what = f"{len(roots)} DAGs of {len(records)} record(s)" if kind == "id" else str(roots[0])
    return Result(data=data, human=f"{what} -> {output} ({blocks} blocks, {size:,} bytes)")


def _parse_cid(text: str) -> CID:
    try:
        return CID.parse(text)
    except CIDError as exc:
        raise CIDError(
            f"{exc}; give a CID (bafy…, Qm…; `elements cid FILE` computes one) or a record id / content id (0x + 64 hex)"
        ) from None


def _roots_behind(hash_: str, settings: Settings, sources: Sources) -> tuple[list[CID], list[str], int]:
    """The DAGs behind a record id or content id: every record of its graph (the claims and their
    ancestors), each record's document (manifest or recipe) and each element's data file."""
    from ..chain.session import open_registry
    from ..formats.content_id import Manifest
    from ..records.resolve import Resolver

    graph = Resolver(open_registry(settings), sources).graph(hash_, documents=True)
    roots: dict[str, CID] = {}
    data_bytes = 0
    for node in graph:
        roots.setdefault(node.record.cid, CID.parse(node.record.cid))
        document = node.document
        if isinstance(document, Manifest) and document.data and document.data["cid"] not in roots:
            roots[document.data["cid"]] = CID.parse(document.data["cid"])
            data_bytes += int(document.data.get("size", 0))
    return list(roots.values()), [str(node.record_id) for node in graph], data_bytes


def cmd_car_import(args: argparse.Namespace, settings: Settings) -> Result:
    from ..storage.car import import_car
    from ..storage.fetch import open_store

    path = Path(args.file)
    if not path.is_file():
        raise InputError(f"{path} is not a file; give a CAR file (made by `elements car export` or `ipfs dag export`)")
    result = import_car(path, open_store(settings), zero_length_as_end=args.zero_length_as_end)
    data = result.to_json()
    data["file"] = str(path)
    # The counts are the whole CAR's (not per root): said once, then the roots.
    lines = [f"{result.blocks} blocks ({result.new_blocks} new) from {path}, {len(result.roots)} root(s):", *map(str, result.roots)]
    if result.ended_at is not None:
        lines.append(f"read up to the zero-length section at byte {result.ended_at}; the rest was taken as padding")
    if settings.ipfs_api:
        from ..storage.kubo import Kubo

        with Kubo(settings.ipfs_api) as kubo:
            pinned = _kubo_import(kubo, path, result)
        data["kubo"] = {"api": kubo.url, "pinned": [str(c) for c in pinned]}
        lines.append(f"imported and pinned in Kubo at {kubo.url}")
    return Result(data=data, human="\n".join(lines))


def _kubo_import(kubo: Kubo, path: Path, result) -> list[CID]:
    """Import the CAR into Kubo too; a CAR read up to a zero-length section goes without that
    section and what follows (Kubo refuses the section), as the CAR v1 payload it holds."""
    from ..storage.car import IterStream

    if result.ended_at is None:
        return kubo.dag_import(path, pin_roots=True)
    with open(path, "rb") as f:
        f.seek(result.data_offset)
        left = result.ended_at - result.data_offset
        return kubo.dag_import(IterStream(_read_upto(f, left)), pin_roots=True)


def _read_upto(f, left: int):
    while left:
        chunk = f.read(min(left, 1 << 16))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk
