"""``elements verify``: the provenance of a model file or directory, down to the tensor.

A thin wrapper over :mod:`registry.provenance`: it opens the registry read-only (no key needed),
the stores (local block store, then Kubo, then gateways) and the attribution index under
``$ELEMENTS_HOME/cache/provenance``, verifies, prints the report (rich, or ``--json``), writes
the CycloneDX BOM when asked, and exits 0 verified / 1 not verified / 2 bad input or an
unreachable chain or store.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..config import Settings
from ._app import Result, add_command, progress

if TYPE_CHECKING:
    from ..chain.registry import Registry

__all__ = ["register", "open_read_registry"]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    verify = add_command(
        sub,
        common,
        "verify",
        cmd_verify,
        help="verify a model file or directory down to the tensor: claims, ancestry, licences, trust",
        examples=(
            "  elements verify ./all-MiniLM-L6-v2                       a model directory (weights, config, tokenizer)\n"
            "  elements verify model.safetensors --json                  the whole report as JSON\n"
            "  elements verify ./model --trust 0xAbC...                  only claims by this publisher count\n"
            "  elements verify ./model --claim 0x<composition record>    check against one named composition\n"
            "  elements verify ./model --bom model.cdx.json              also write a CycloneDX 1.6 BOM\n"
            "  elements verify ./model --allow-yanked                    accept a yanked ancestor (still reported)\n"
            "  elements verify ./model --accept-disputed 0x<earlier>     accept that claim's earlier, stricter terms\n"
            "\n"
            "exit codes: 0 verified (and trusted when a trust set is given); 1 not verified (mismatch, unknown,\n"
            "untrusted, disputed, yanked ancestry, licence violation); 2 bad input, or the chain or a store unreachable.\n"
            "The trust set is every --trust, else the 'trust' list in $ELEMENTS_HOME/config.json.\n"
            "A record whose content another publisher claimed earlier under stricter terms is disputed: verify\n"
            "fails unless --accept-disputed names that earlier claim (or all) or its publisher is trusted; the\n"
            "earlier terms then apply (effective licence, BOM).\n"
        ),
    )
    verify.add_argument("path", metavar="PATH", help=".safetensors file, *.safetensors.index.json, or a model directory")
    verify.add_argument("--trust", action="append", metavar="ADDR", default=None,
                        help="a trusted publisher address (repeatable); claims by others do not verify")
    verify.add_argument("--claim", metavar="HASH", help="check the model against this composition (record id or its content id)")
    verify.add_argument("--bom", metavar="FILE", help="write a CycloneDX 1.6 JSON bill of materials to FILE")
    verify.add_argument("--allow-yanked", action="store_true", help="do not fail on yanked records in the ancestry (they are still reported)")
    verify.add_argument("--accept-disputed", action="append", default=[], metavar="RECORD_ID|all",
                        help="accept the disputes this earlier claim raises (repeatable; 'all': every dispute); "
                             "its stricter terms then apply")
    verify.add_argument("--no-index", action="store_true",
                        help="do not read or update the attribution index (tensors are then compared with the named claim only)")


def open_read_registry(settings: Settings) -> Registry:
    """The registry the settings point at, read-only (no key is loaded or asked for).

    Raises:
        RpcUnavailableError, WrongChainError, UnknownNetworkError, NoRegistryError.
    """
    from ..chain.registry import Registry
    from ..chain.session import open_chain

    chain = open_chain(settings)
    if chain.is_memory:
        return Registry.deploy(chain, chain.dev_accounts[0]).with_account(None)
    return Registry.attach(chain, settings.registry, settings.home)


def cmd_verify(args: argparse.Namespace, settings: Settings) -> Result:
    # The BOM writer loads cyclonedx's schema validation (jsonschema, 39 lark grammars: seconds),
    # so it is imported only under --bom; the rich report only for a human reader.
    from ..provenance.verify import Verifier, VerifyOptions, read_model
    from ..storage.fetch import Sources

    with progress(settings, "verifying") as bar:  # the model is hashed (and a bad path refused) before connecting
        model = read_model(args.path, bar)
    registry = open_read_registry(settings)
    with Sources.from_settings(settings) as sources:
        verifier = Verifier(registry, sources, data_dir=settings.home / "cache" / "data")
        try:
            if not args.no_index:
                verifier.open_index(settings.home)
            options = VerifyOptions(trust=tuple(settings.trust), claim=args.claim, allow_yanked=args.allow_yanked,
                                    accept_disputed=tuple(args.accept_disputed))
            report = verifier.verify(model, options)
            data = report.to_json()
            if args.bom:
                from ..provenance.bom import write_bom

                path = write_bom(report, args.bom)
                data["bom"] = str(path)
        finally:
            verifier.close()

    hint = next_step(report, args.path)
    if hint:
        data["next"] = hint

    def human() -> None:
        import sys

        from rich.console import Console

        from ..provenance.report import render

        class _Console(Console):
            def on_broken_pipe(self) -> None:  # rich exits 1 ("not verified"); let main() give the verdict's code
                raise BrokenPipeError

        # Off a terminal (a pipe, a log file) lines are neither wrapped nor cut at 80 columns.
        render(report, _Console() if sys.stdout.isatty() else _Console(soft_wrap=True, width=240))
        if args.bom:
            print(f"bill of materials (CycloneDX 1.6): {args.bom}")
        if hint:
            print(f"next: {hint}")

    return Result(data=data, human=human, exit_code=report.exit_code)


def _disputed_hint(report) -> str | None:
    disputes = [d for d in report.disputes if not d.accepted]
    if not disputes:
        return None
    first = disputes[0]
    return (f"another publisher claimed this content first under stricter terms: accept them knowingly with "
            f"--accept-disputed {first.earlier_id} (or --accept-disputed all), or trust {first.dispute.earlier.publisher}; "
            f"`elements show {first.earlier_id}` shows the earlier claim")


def next_step(report, path: str) -> str | None:
    """What to do after a verdict that is not ``verified`` (one line, naming the command)."""
    content_id = report.model.content_id
    claim = report.claims[0].record_id if report.claims else content_id
    chain = report.chain.get("rpc") or "this chain"
    attribution = report.attribution
    changed = [t for t in (attribution.tensors + attribution.missing if attribution else [])
               if t.status in ("differs", "missing", "renamed")]
    if report.verdict == "unknown" and changed:
        closest = attribution.reference.record_id if attribution.reference is not None else None
        get = (f"`elements assemble {closest} -o DIR` builds the closest composition" if closest else
               "`elements ls --kind composition` lists the compositions, `elements assemble HASH -o DIR` builds one")
        return f"{len(changed)} tensor(s) above differ from the published elements they name: this is not a model as published; {get}"
    return {
        "unknown": (f"nothing on {chain} claims it: check the network (--network / --rpc-url); "
                    f"`elements resolve {content_id}` lists claims; its publisher can claim it with "
                    f"`elements publish-model {path} --license SPDX`"),
        "untrusted": ("no claim is by a publisher you trust: `elements verify PATH --json` lists the claims; trust one with "
                      "`elements config trust add ADDR` (or --trust ADDR)"),
        "disputed": _disputed_hint(report),
        "yanked": "its publisher yanked part of the ancestry: ask why, or accept it knowingly with --allow-yanked",
        "license-violation": f"the licences above conflict: `elements resolve {claim}` shows every record's licence",
        "mismatch": f"the tensors above differ from what was published: get a clean copy with `elements assemble {claim} -o DIR`",
        "unavailable": "the claims' documents could not be fetched: configure --ipfs-api or --gateway and run again",
    }.get(report.verdict)
