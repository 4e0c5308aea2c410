"""Commands on records after publication: `yank` one, and `publish-delta` (a fine-tune as a delta).

A yank is a visible flag, never a deletion: the record stays readable, its id is never reused,
`verify` reports it and refuses a yanked ancestry unless told `--allow-yanked`.

`publish-delta` is how a fine-tune is shared without re-publishing the model: only the tensors
that changed become an element (parent: the base composition), and a composition that overrides
the base with it is published next to it; anyone can then `assemble` the fine-tuned model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import Settings
from ..formats.safetensors import tensor_nbytes
from ..errors import InputError, NotFoundError
from ..storage.scratch import make_area
from ._app import Result, add_command, add_commit_reveal_option, progress_bars
from .pin_cmd import add_pin_option, check_pinning, pin_published, with_pinning

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = add_command(
        sub, common, "yank", cmd_yank,
        "yank one of your records: it stays readable and visible, flagged (nothing is deleted)",
        examples=(
            "  elements yank 0x131964df71d5393a633a98b2ba03615ff249c9ee8d7014998692672ba7904dc9 --network devnet\n"
            "  elements --keystore alice yank 0x<record id> --json      a second yank sends nothing\n"
            "readers still resolve it; `elements verify` fails on a yanked ancestry unless --allow-yanked\n"
        ),
    )
    parser.add_argument("record", metavar="RECORD_ID", help="the record id (0x + 64 hex) of a record you published")

    parser = add_command(
        sub, common, "publish-delta", cmd_publish_delta,
        "publish a fine-tune as a delta: only the changed tensors, plus the composition that overrides the base",
        examples=(
            "  elements publish-delta 0x<base composition> ./finetuned --license Apache-2.0\n"
            "  elements publish-delta 0xda7ab620…1a9d ./finetuned/model.safetensors --license MIT --name my-tune\n"
        ),
    )
    parser.add_argument("base", metavar="BASE", help="the base composition: a record id or the content id it claims")
    parser.add_argument("finetuned", metavar="FINETUNED", help="the fine-tuned weights: a .safetensors file or model directory")
    parser.add_argument("--license", required=True, metavar="SPDX", help="licence of the delta and of the composition")
    parser.add_argument("--name", default="delta", help="name of the delta element (default: delta)")
    parser.add_argument("--trust", action="append", metavar="ADDR", help="prefer the base claim of this publisher")
    add_commit_reveal_option(parser)
    add_pin_option(parser)


def cmd_yank(args: argparse.Namespace, settings: Settings) -> Result:
    from ..digest import parse_record_id
    from .elements_cmd import session

    record_id = parse_record_id(args.record)
    with session(settings, write=True) as (registry, _, _):
        record = registry.records([record_id])[0]
        if record is None:
            raise NotFoundError(
                f"no record {record_id} on chain {registry.chain.chain_id}; list yours with "
                f"`elements ls --publisher {registry.account.address}`"
            )
        changed = registry.yank(record_id)
    data = {"record": str(record_id), "yanked": True, "changed": changed, "publisher": record.publisher}
    human = (f"yanked {record_id}; it stays readable, flagged for every reader" if changed
             else f"{record_id} was already yanked; nothing sent")
    return Result(data=data, human=human)


def cmd_publish_delta(args: argparse.Namespace, settings: Settings) -> Result:
    from ..compose.chain_source import choose_composition
    from ..publish.delta import publish_delta
    from .elements_cmd import commit_reveal_for, session

    finetuned = Path(args.finetuned)
    if not finetuned.exists():
        raise InputError(f"{finetuned}: no such file or directory; give the fine-tuned .safetensors file or model directory")
    pin = check_pinning(args, settings)
    with session(settings, write=True) as (registry, sources, resolver), progress_bars(settings) as bars:
        base_record = choose_composition(resolver.lookup(args.base), args.trust or settings.trust)
        base = resolver.graph([base_record.record_id], documents=True, strict=True).nodes[base_record.record_id].document
        # The delta element is streamed into its blocks (no file); the area is where the composition
        # is assembled once to pin its output. The next run removes it if this one is killed.
        area = make_area(settings.home / "tmp", "delta")
        commit_reveal = commit_reveal_for(args, settings, registry, bars)
        try:
            report = publish_delta(registry, resolver, base, base_record.record_id, finetuned, license=args.license,
                                   name=args.name, work_dir=area.path, hash_progress=bars.bar("hashing"),
                                   upload_progress=bars.bar("uploading"), fetch_progress=bars.bar("fetching"),
                                   progress=bars.bar("assembling"), commit_reveal=commit_reveal)
        finally:
            area.close()
        element, composition, manifest, delta_record = report.element, report.composition, report.plan.manifest, report.record_id
        pinned = pin_published(pin, settings, sources, [element, composition.publish], bars)
    base_bytes = sum(tensor_nbytes(row.dtype, row.shape) for row in base.output.tensors) or None
    data = {
        "base": str(base_record.record_id),
        "delta": {"record": delta_record, "content_id": str(manifest.content_id), "tensors": len(manifest.entries),
                  "bytes": manifest.size},
        "composition": composition.to_json()["composition"],
        "base_bytes": base_bytes,
    }

    def human() -> None:
        share = f" of {base_bytes:,} in the base" if base_bytes else ""
        print(f"delta element {delta_record}: {len(manifest.entries)} changed tensor(s), {manifest.size:,} bytes{share}")
        for entry in manifest.entries[:8]:
            print(f"  {entry.name}")
        claim = composition.claim
        print(f"composition   {claim.record_id} (base + override), content id {claim.record.content_id}")
        print(f"assemble the fine-tuned model with: elements assemble {claim.record_id} -o DIR")

    return with_pinning(Result(data=data, human=human), pinned)
