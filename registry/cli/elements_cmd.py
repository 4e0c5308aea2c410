"""Element commands: ``id`` (content ids); publishing (``publish``, ``publish-model``, ``relay``,
``add-license``, ``keys``), and the session and commit-reveal choice every publishing command uses.
Reading (``resolve``, ``show``, ``ls``) is :mod:`registry.cli.resolve_cmd`.

The commands are thin: the work is in :mod:`registry.publish.send`, :mod:`registry.publish.signed`,
:mod:`registry.publish.model` and :mod:`registry.chain.keystore`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Settings
from ..errors import InputError
from ._app import Result, add_command, add_commit_reveal_option, add_group, progress, progress_bars
from .pin_cmd import add_pin_option, check_pinning, pin_published, with_pinning

if TYPE_CHECKING:
    from ..publish.commit_reveal import CommitReveal
    from ..publish.send import PublishReport

# Each handler imports what it runs: `elements id` hashes with blake3 and never loads the chain
# stack (web3, eth-account: over a second), and `--help` loads no command's implementation.
# The two values argparse needs up front are copies of registry.publish.plan's DEFAULT_BATCH_SIZE
# and registry.publish.prepare's KINDS (tests/test_cli_imports.py checks they agree).
DEFAULT_BATCH_SIZE = 50
KIND_NAMES = ("element", "adapter", "file", "composition")

__all__ = ["print_report", "register"]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = add_command(
        sub,
        common,
        "id",
        cmd_id,
        help="content id of a file, a .safetensors file, a sharded checkpoint or a model directory",
        examples=(
            "  elements id model.safetensors                 the weights' content id (layout independent)\n"
            "  elements id ./all-MiniLM-L6-v2                a directory: its weights' content id\n"
            "  elements id ./all-MiniLM-L6-v2 --json         + tensor table and every other file's id\n"
            "  elements id model.safetensors.index.json      a sharded checkpoint as one tensor set\n"
            "  elements id config.json                       a plain file's content id\n"
        ),
    )
    parser.add_argument("path", metavar="PATH", help="file, .safetensors, *.safetensors.index.json or model directory")
    _register_publishing(sub, common)


def cmd_id(args: argparse.Namespace, settings: Settings) -> Result:
    from ..formats.content_id import directory_ids, file_content_id, is_weights_path, manifest_of

    path = Path(args.path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory; check the path")
    if path.is_dir():
        with progress(settings, "hashing") as bar:
            ids = directory_ids(path, bar)
        data = {"kind": "directory", **ids.to_json()}
        return Result(data=data, human=str(ids.content_id))
    if is_weights_path(path):
        with progress(settings, "hashing") as bar:
            manifest = manifest_of(path, progress=bar)
        data = {
            "kind": "tensors",
            "path": str(path),
            "content_id": str(manifest.content_id),
            "tensor_count": len(manifest.entries),
            "size": manifest.size,
            "manifest": manifest.to_json(),
        }
        return Result(data=data, human=str(manifest.content_id))
    file_id = file_content_id(path)
    data = {"kind": "file", "path": str(path), "content_id": str(file_id), "size": path.stat().st_size}
    return Result(data=data, human=str(file_id))


# ============================================================================================
# publishing and reading records


def _register_publishing(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    publish = add_command(
        sub,
        common,
        "publish",
        cmd_publish,
        help="publish element files: content id + manifest into the block store (and Kubo), claims on chain",
        examples=(
            "  elements publish elements/encoder.layer.0.safetensors --license Apache-2.0\n"
            "  elements publish adapter.safetensors --kind adapter --license CC-BY-NC-4.0 --parent 0x<base record>\n"
            "  elements publish config.json tokenizer.json --license MIT --dry-run      what would be sent, gas and cost\n"
            "  elements publish layer.safetensors --license MIT --sign-only signed.json  sign for a relayer (no gas)\n"
            "  elements --network devnet publish *.safetensors --license MIT --ipfs-api http://127.0.0.1:5001 --json\n"
            "a re-run publishes only what is missing (record ids are computed before sending)\n"
        ),
    )
    publish.add_argument("paths", nargs="+", metavar="PATH", help="element files: .safetensors (tensors) or any other file")
    publish.add_argument("--license", required=True, metavar="SPDX", help="licence of the elements (see `elements licenses`)")
    publish.add_argument("--parent", action="append", default=[], metavar="ID", help="a parent record id (repeatable)")
    publish.add_argument("--kind", choices=["element", "adapter", "file"], help="record kind (default: element for .safetensors, else file)")
    publish.add_argument("--name", help="the element's name in its manifest (one PATH only; default: the file name)")
    publish.add_argument("--dry-run", action="store_true", help="check and estimate only; store and send nothing")
    publish.add_argument("--sign-only", metavar="FILE", help="write EIP-712 signatures for `elements relay` instead of sending")
    publish.add_argument("--valid-for", type=float, default=24.0, metavar="HOURS", help="with --sign-only: hours the signatures stay valid (24)")
    publish.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N", help=f"records per transaction ({DEFAULT_BATCH_SIZE})")
    add_commit_reveal_option(publish)
    add_pin_option(publish)

    model = add_command(
        sub,
        common,
        "publish-model",
        cmd_publish_model,
        help="split a model, publish every element and the composition that reassembles it, in one go",
        examples=(
            "  elements publish-model ./all-MiniLM-L6-v2 --license Apache-2.0\n"
            "  elements --network devnet publish-model model.safetensors --license MIT --by module\n"
            "  elements publish-model ./model --license Apache-2.0 --name all-MiniLM-L6-v2 --dry-run --json\n"
            "then: elements resolve 0x<composition record>; elements assemble 0x<composition record> -o ./model\n"
        ),
    )
    model.add_argument("model", metavar="MODEL", help=".safetensors file, *.safetensors.index.json or Hugging Face model directory")
    model.add_argument("--license", required=True, metavar="SPDX", help="licence of the elements and the composition")
    group = model.add_mutually_exclusive_group()
    group.add_argument("--by", choices=["layer", "module", "none"], default="layer", help="how to split (default: per layer)")
    group.add_argument("--rule", action="append", metavar="REGEX=NAME", help="group tensors by regex (repeatable)")
    model.add_argument("--name", help="the composition's name in its recipe (default: the model's directory or file name)")
    model.add_argument("--dry-run", action="store_true", help="split, check and estimate only; store and send nothing")
    model.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N", help=f"records per transaction ({DEFAULT_BATCH_SIZE})")
    add_commit_reveal_option(model)
    add_pin_option(model)

    relay = add_command(
        sub,
        common,
        "relay",
        cmd_relay,
        help="send signed publishes (from `publish --sign-only`) from this account; the signer stays the publisher",
        examples=(
            "  ELEMENTS_PRIVATE_KEY=0x<relayer key> elements --network devnet relay signed.json\n"
            "  elements --keystore relayer relay signed.json --json\n"
        ),
    )
    relay.add_argument("file", metavar="FILE", help="the signed-publish JSON file")

    add_license = add_command(
        sub,
        common,
        "add-license",
        cmd_add_license,
        help="register a licence term set (an SPDX id or LicenseRef- name plus the flags a machine checks)",
        examples=(
            "  elements add-license LicenseRef-MyModel-1.0 --commercial --derivatives --attribution\n"
            "  elements add-license CC-BY-NC-ND-4.0 --attribution                  non-commercial, no derivatives\n"
            "adding terms that exist returns their id and sends nothing\n"
        ),
    )
    add_license.add_argument("spdx", metavar="SPDX", help="SPDX licence id or LicenseRef-name (1-128 printable ASCII)")
    add_license.add_argument("--commercial", action="store_true", help="commercial use is allowed")
    add_license.add_argument("--derivatives", action="store_true", help="derivatives are allowed")
    add_license.add_argument("--share-alike", action="store_true", help="derivatives must keep these terms")
    add_license.add_argument("--attribution", action="store_true", help="attribution is required")

    _, keys_sub = add_group(
        sub,
        common,
        "keys",
        help="encrypted keystores under $ELEMENTS_HOME/keystores: new, import, list",
        examples=(
            "  elements keys new alice                      a fresh key (password from ELEMENTS_KEYSTORE_PASSWORD or a prompt)\n"
            "  elements keys import alice < key.txt         a private key from stdin (never from an argument)\n"
            "  elements keys list\n"
            "  elements --keystore alice publish x.safetensors --license MIT\n"
        ),
        dest="keys_command",
    )
    for action, handler, text, examples in (
        ("new", cmd_keys_new, "create a fresh key in an encrypted keystore (prints the address to fund)",
         "  elements keys new alice                           asks for a password twice\n"
         "  ELEMENTS_KEYSTORE_PASSWORD=... elements keys new ci --json\n"
         "then: elements --keystore alice publish ... (password: ELEMENTS_KEYSTORE_PASSWORD or a prompt)\n"),
        ("import", cmd_keys_import, "encrypt an existing private key (read from stdin or a hidden prompt) into a keystore",
         "  elements keys import bob < bob.key                the key from a file, never from an argument\n"
         "  elements keys import bob                          a hidden prompt on a terminal\n"),
        ("list", cmd_keys_list, "list keystores and their addresses (read without decrypting)",
         "  elements keys list\n  elements keys list --json\n"),
    ):
        p = add_command(keys_sub, common, action, handler, text, examples)
        if action != "list":
            p.add_argument("name", metavar="NAME", help="keystore name (letters, digits, _ . -)")


# -- sessions -----------------------------------------------------------------------------------


def commit_reveal_default(settings: Settings, chain) -> bool:
    """Whether to publish through commitments when no flag says: the named network's
    ``commit_reveal`` setting, else off in process and on a node on this machine (no public mempool
    there), else on."""
    if chain.is_memory:
        return False
    from ..publish.commit_reveal import is_loopback

    entry = settings.file.get("networks", {}).get(settings.network) if settings.network else None
    if isinstance(entry, dict) and isinstance(entry.get("commit_reveal"), bool):
        return entry["commit_reveal"]
    return not (settings.network == "devnet" or is_loopback(chain.rpc_url))


def commit_reveal_for(args: argparse.Namespace, settings: Settings, registry, bars) -> CommitReveal | None:
    """The commit-reveal options of a publishing command, or None to publish directly."""
    from ..publish.commit_reveal import CommitReveal

    wanted = getattr(args, "commit_reveal", None)
    if wanted is None:
        wanted = commit_reveal_default(settings, registry.chain)
    if not wanted:
        return None
    return CommitReveal(settings.home / "commitments", wait_progress=bars.bar("waiting for the block after the commitment", unit="blocks"))


def sending_lock(settings: Settings, registry, skip: bool = False):
    """The account's publishing lock (registry.publish.commit_reveal.publisher_lock), held while a
    command plans and sends: a second process with the key waits, then finds the claims sent."""
    if skip or registry.chain.is_memory:  # nothing is sent, or a chain no other process shares
        return contextlib.nullcontext()
    from ..publish.commit_reveal import CommitReveal, publisher_lock

    return publisher_lock(registry, CommitReveal(settings.home / "commitments"))


@contextlib.contextmanager
def session(settings: Settings, *, write: bool = False, resolver: bool = True):
    """The registry (bound to the configured key when ``write``), the sources, a resolver (its log queries
    narrowed by the attribution index under the home, when there is one; ``None`` when the
    command resolves nothing, ``resolver=False``: the index is then neither imported nor opened)."""
    from ..chain.session import open_registry
    from ..storage.fetch import Sources

    registry = open_registry(settings, write=write, bind=write)  # a read loads no key (nor decrypts a keystore)
    sources = Sources.from_settings(settings)
    hints = None
    try:
        if not resolver:
            yield registry, sources, None
            return
        from ..provenance.index import open_hints
        from ..records.resolve import Resolver

        hints = open_hints(registry, settings.home)
        yield registry, sources, Resolver(registry, sources, hints=hints)
    finally:
        sources.close()
        if hints is not None:
            hints.close()


def _short(value: str, keep: int = 10) -> str:
    return value if len(value) <= keep + 4 else value[:keep] + "…"


def print_report(report: PublishReport, what: str = "record") -> None:
    lic = f" under {report.license.spdx_id}" if report.license else ""
    verb = "would publish" if report.dry_run else "published"
    print(f"{report.publisher} on chain {report.chain_id}, registry {report.registry}{lic}")
    for result in report.results:
        claim = result.claim
        status = {"published": "published", "present": "already there", "planned": "to publish"}[result.status]
        print(f"{status:<13} {claim.kind_name:<11} {claim.label}")
        print(f"{'':14}record  {claim.record_id}")
        print(f"{'':14}content {claim.record.content_id}")
        data = f"  (data {claim.data_cid})" if claim.data_cid else ""
        print(f"{'':14}cid     {claim.record.cid}{data}")
        if result.transaction:
            tx = result.transaction
            print(f"{'':14}tx      {tx.hash}  block {tx.block}  gas ~{result.gas_share:,} ({tx.gas_used:,} for {tx.records} records)")
            if tx.priority_block is not None:
                print(f"{'':14}priority block {tx.priority_block} (its commitment's)")
    present = len(report.present)
    if report.dry_run:
        planned = len([r for r in report.results if r.status == "planned"])
        print(f"dry run: {verb} {planned} {what}(s), {present} already there; nothing was stored or sent")
        if report.estimate:
            e = report.estimate
            print(
                f"estimated {e.gas:,} gas in {e.transactions} transaction(s): ~{e.cost / 10**18:.6g} ETH at "
                f"{(e.base_fee + e.priority_fee) / 10**9:.4g} gwei (at most {e.max_cost / 10**18:.6g} ETH); "
                f"balance {e.balance / 10**18:.6g} ETH"
            )
            if e.l1_fee is not None:  # an OP-stack L2: included in the cost above
                print(f"of which the L1 data fee ~{e.l1_fee / 10**18:.6g} ETH (OP stack, on the signed transactions' FastLZ size)")
            if e.operator_fee:  # an Isthmus chain's operator fee: included in the cost above
                print(f"and the operator fee ~{e.operator_fee / 10**18:.6g} ETH (OP stack Isthmus, on the gas)")
    else:
        gas = sum(t.gas_used for t in report.transactions)
        print(f"{len(report.published)} {what}(s) published, {present} already there; {len(report.transactions)} transaction(s), {gas:,} gas")
        for tx in report.transactions:
            if tx.kind == "reveal":
                print(f"committed in block {tx.priority_block} (the records' priority block), revealed in block {tx.block}")
        if report.pinned:
            print(f"pinned {len(report.pinned)} DAG(s) in Kubo")


# -- publish ------------------------------------------------------------------------------------


def cmd_publish(args: argparse.Namespace, settings: Settings) -> Result:
    if args.sign_only and args.dry_run:
        raise InputError("--sign-only and --dry-run exclude each other")
    if args.sign_only and not 0 < args.valid_for < 1e6:  # NaN fails too; a million hours is over a century
        raise InputError(f"--valid-for {args.valid_for:g} is not a number of hours above 0 (and under a million); give e.g. --valid-for 24")
    from ..publish.send import publish_elements

    pin = check_pinning(args, settings)
    with session(settings, write=True) as (registry, sources, resolver), progress_bars(settings) as bars:
        if args.sign_only:
            return _sign_only(args, registry, sources, resolver, bars, settings)
        with sending_lock(settings, registry, args.dry_run):
            report = publish_elements(
                registry, args.paths, sources.store, license=args.license, parents=args.parent, kind=args.kind,
                name=args.name, sources=sources, dry_run=args.dry_run, batch_size=args.batch_size, resolver=resolver,
                hash_progress=bars.bar("hashing"), upload_progress=bars.bar("uploading"),
                commit_reveal=commit_reveal_for(args, settings, registry, bars),
            )
        pinned = pin_published(pin, settings, sources, [report], bars)
    return with_pinning(Result(data=report.to_json(), human=lambda: print_report(report, "element")), pinned)


def _sign_only(args: argparse.Namespace, registry, sources, resolver, bars, settings: Settings) -> Result:
    from ..publish.signed import sign_elements, write_signed

    committed = args.commit_reveal if args.commit_reveal is not None else commit_reveal_default(settings, registry.chain)
    claims, signed = sign_elements(
        registry, args.paths, sources.store, license=args.license, parents=args.parent, kind=args.kind, name=args.name,
        sources=sources, resolver=resolver, valid_for=int(args.valid_for * 3600),
        hash_progress=bars.bar("hashing"), upload_progress=bars.bar("uploading"), commit_reveal=committed,
    )
    if not isinstance(signed, list):  # --commit-reveal: one signed commitment, or None when nothing is missing
        return _sign_only_committed(args, registry, claims, signed)
    path = write_signed(args.sign_only, registry, signed)
    data = {"file": str(path), "publisher": registry.account.address, "signed": [c.to_json() for c, _ in signed],
            "already_present": len(claims) - len(signed)}

    def human() -> None:
        print(f"signed {len(signed)} record(s) as {registry.account.address} into {path} ({len(claims) - len(signed)} already on chain)")
        for claim, s in signed:
            print(f"  {claim.record_id}  {claim.label}  nonce {s.nonce}")
        print(f"a relayer sends them with: elements relay {path}")

    return Result(data=data, human=human)


def _sign_only_committed(args: argparse.Namespace, registry, claims, signed) -> Result:
    from ..publish.signed import write_signed

    if signed is None:
        data = {"file": None, "publisher": registry.account.address, "signed": [], "already_present": len(claims)}
        return Result(data=data, human=f"all {len(claims)} record(s) are on chain already; nothing to sign")
    path = write_signed(args.sign_only, registry, signed)
    data = {"file": str(path), "publisher": registry.account.address, "signed": [c.to_json() for c in signed.claims],
            "already_present": len(claims) - len(signed.claims), "commitment": "0x" + signed.signed.commitment.hex(),
            "nonce": signed.signed.nonce}

    def human() -> None:
        print(f"signed one commitment to {len(signed.claims)} record(s) as {registry.account.address} into {path} "
              f"(nonce {signed.signed.nonce}; {len(claims) - len(signed.claims)} already on chain)")
        for claim in signed.claims:
            print(f"  {claim.record_id}  {claim.label}")
        print(f"a relayer commits and, a block later, reveals them with: elements relay {path} (the file holds the salt: "
              "give it to the relayer only)")

    return Result(data=data, human=human)


def cmd_publish_model(args: argparse.Namespace, settings: Settings) -> Result:
    from ..publish.model import publish_model

    pin = check_pinning(args, settings)
    # The account's lock is taken after the split, for planning and sending.
    with session(settings, write=True, resolver=False) as (registry, sources, _), progress_bars(settings) as bars:
        report = publish_model(
            registry, sources.store, args.model, license=args.license, sources=sources, by=args.by, rules=args.rule,
            name=args.name, dry_run=args.dry_run, batch_size=args.batch_size, work_dir=settings.home / "tmp",
            split_progress=bars.bar("splitting"), hash_progress=bars.bar("hashing"), upload_progress=bars.bar("uploading"),
            commit_reveal=commit_reveal_for(args, settings, registry, bars), sending=sending_lock(settings, registry, args.dry_run),
        )
        pinned = pin_published(pin, settings, sources, [report.publish], bars)

    def human() -> None:
        print_report(report.publish)
        claim = report.composition
        print(f"composition of {args.model}: record {claim.record_id}")
        print(f"  content id {claim.record.content_id} ({len(report.elements)} elements), recipe {report.recipe_cid}")
        if not report.publish.dry_run:
            print(f"assemble it anywhere with: elements assemble {claim.record_id} -o DIR")

    return with_pinning(Result(data=report.to_json(), human=human), pinned)


def cmd_relay(args: argparse.Namespace, settings: Settings) -> Result:
    from ..publish.signed import load_signed, relay_signed

    document = load_signed(args.file)
    with session(settings, write=True) as (registry, _, _), progress_bars(settings) as bars, sending_lock(settings, registry):
        report = relay_signed(registry, document, wait_progress=bars.bar("waiting for the block after the commitment", unit="blocks"))
        relayer = registry.account.address

    def human() -> None:
        print_report(report)
        print(f"relayed by {relayer} (who paid the gas); the records' publisher is {report.publisher}")

    return Result(data={**report.to_json(), "relayer": relayer}, human=human)


def cmd_add_license(args: argparse.Namespace, settings: Settings) -> Result:
    from ..chain.licenses import ATTRIBUTION, COMMERCIAL_USE, DERIVATIVES, SHARE_ALIKE, describe_flags

    flags = (COMMERCIAL_USE if args.commercial else 0) | (DERIVATIVES if args.derivatives else 0)
    flags |= (SHARE_ALIKE if args.share_alike else 0) | (ATTRIBUTION if args.attribution else 0)
    if args.share_alike and not args.derivatives:
        raise InputError("--share-alike is about derivatives; add --derivatives too (or drop --share-alike)")
    with session(settings, write=True) as (registry, _, _):
        existing = registry.license_id_of(args.spdx, flags)
        terms = registry.add_license(args.spdx, flags)
    verb = "already registered as" if existing else "registered as"
    return Result(
        data={**terms.to_json(), "created": not existing},
        human=f"{terms.spdx_id} ({describe_flags(terms.flags)}) {verb} licence {terms.license_id}; use --license {terms.spdx_id}",
    )


# -- keys ---------------------------------------------------------------------------------------


def _password(settings: Settings, confirm: bool) -> str:
    from ..chain.errors import AccountError

    if settings.keystore_password:
        return settings.keystore_password
    if not sys.stdin.isatty():
        raise AccountError("no password: set ELEMENTS_KEYSTORE_PASSWORD, or run on a terminal to be asked")
    import getpass

    first = getpass.getpass("keystore password: ")
    if confirm and getpass.getpass("again: ") != first:
        raise AccountError("the passwords differ; nothing was written")
    return first


def cmd_keys_new(args: argparse.Namespace, settings: Settings) -> Result:
    from ..chain.keystore import check_key_name, new_key

    check_key_name(args.name)
    info = new_key(settings.home, args.name, _password(settings, confirm=True))
    return Result(data=info.to_json(), human=f"created keystore {info.name}: {info.address} ({info.path}); use it with --keystore {info.name}")


def cmd_keys_import(args: argparse.Namespace, settings: Settings) -> Result:
    from ..chain.errors import AccountError
    from ..chain.keystore import check_key_name, import_key

    check_key_name(args.name)
    if sys.stdin.isatty():
        import getpass

        private_key = getpass.getpass("private key (hex, not shown): ")
    else:
        private_key = sys.stdin.readline()
    if not private_key.strip():
        raise AccountError("no private key on stdin; pipe it in (elements keys import NAME < key.txt) or run on a terminal")
    info = import_key(settings.home, args.name, _password(settings, confirm=True), private_key.strip())
    return Result(data=info.to_json(), human=f"imported {info.address} into keystore {info.name} ({info.path}); use it with --keystore {info.name}")


def cmd_keys_list(args: argparse.Namespace, settings: Settings) -> Result:
    from ..chain.keystore import list_keys

    keys = list_keys(settings.home)

    def human() -> None:
        if not keys:
            print(f"no keystores in {settings.home / 'keystores'}; create one with `elements keys new NAME`")
        for info in keys:
            print(f"{info.name:<24} {info.address}  {info.path}")

    return Result(data=[k.to_json() for k in keys], human=human)
