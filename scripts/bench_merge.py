"""Benchmark: a merge of two Mistral-layout F32 models by Elements and by mergekit, same inputs, one run.

    .venv/bin/python scripts/bench_merge.py [--methods slerp,ties] [--layers 8] [--dir /tmp/bench-merge]

Methods: slerp, ties, dare_ties, della, sce, nuslerp, karcher, arcee_fusion (see CONFIGS).

Two models (``--layers`` decoder layers of hidden 1024, MLP 3584, vocabulary 32,000: 0.70 GiB
each at 8 layers, 75 tensors, the largest 125 MiB) are written once as safetensors; then for each
method ``elements assemble-local`` (the mergekit YAML with ``--mergekit-models``) and
``mergekit-yaml`` (CPU) merge them in separate processes, measured by ``/usr/bin/time`` (wall
seconds, peak RSS). The goal of issue 13 is printed beside: the largest tensor x (inputs + 1) +
100 MiB. This is a benchmark, not a test: numbers vary with the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry.formats.content_id import Manifest, tensor_entries  # noqa: E402
from registry.formats.safetensors_writer import write_safetensors  # noqa: E402

MiB = 1 << 20
HIDDEN, MLP, VOCAB, KV = 1024, 3584, 32000, 256
CONFIGS = {
    "slerp": "merge_method: slerp\nbase_model: a\nmodels: [{model: a}, {model: b}]\nparameters: {t: 0.5}\ndtype: float32\n",
    "ties": "merge_method: ties\nbase_model: a\nmodels: [{model: a}, {model: b, parameters: {weight: 1.0, density: 0.5}}]\n"
            "dtype: float32\n",
    "dare_ties": "merge_method: dare_ties\nbase_model: a\nmodels: [{model: a}, {model: b, parameters: {weight: 1.0, density: 0.5}}]\n"
                 "dtype: float32\n",
    "della": "merge_method: della\nbase_model: a\nmodels: [{model: a}, {model: b, parameters: {weight: 1.0, density: 0.5, "
             "epsilon: 0.1}}]\ndtype: float32\n",
    "sce": "merge_method: sce\nbase_model: a\nmodels: [{model: a}, {model: b}]\nparameters: {select_topk: 0.5}\ndtype: float32\n",
    "nuslerp": "merge_method: nuslerp\nmodels: [{model: a, parameters: {weight: 0.4}}, {model: b, parameters: {weight: 0.6}}]\n"
               "dtype: float32\n",
    "karcher": "merge_method: karcher\nmodels: [{model: a}, {model: b}]\ndtype: float32\n",
    "arcee_fusion": "merge_method: arcee_fusion\nbase_model: a\nmodels: [{model: a}, {model: b}]\ndtype: float32\n",
}


def _shapes(layers: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (VOCAB, HIDDEN), "model.norm.weight": (HIDDEN,),
                                          "lm_head.weight": (VOCAB, HIDDEN)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes.update({p + "self_attn.q_proj.weight": (HIDDEN, HIDDEN), p + "self_attn.k_proj.weight": (KV, HIDDEN),
                       p + "self_attn.v_proj.weight": (KV, HIDDEN), p + "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
                       p + "mlp.gate_proj.weight": (MLP, HIDDEN), p + "mlp.up_proj.weight": (MLP, HIDDEN),
                       p + "mlp.down_proj.weight": (HIDDEN, MLP), p + "input_layernorm.weight": (HIDDEN,),
                       p + "post_attention_layernorm.weight": (HIDDEN,)})
    return shapes


def _write_models(root: Path, layers: int) -> dict[str, dict]:
    config = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": HIDDEN,
              "intermediate_size": MLP, "num_hidden_layers": layers, "num_attention_heads": 16,
              "num_key_value_heads": 4, "vocab_size": VOCAB, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
              "torch_dtype": "float32", "tie_word_embeddings": False}
    models = {}
    shapes = _shapes(layers)
    for name, scale in (("a", 0.0), ("b", 0.01)):
        folder = root / name
        weights = folder / "model.safetensors"
        if not weights.exists():
            folder.mkdir(parents=True, exist_ok=True)
            items = []
            for i, (tensor, shape) in enumerate(shapes.items()):
                rng = np.random.default_rng(i)  # the same base values in both models
                values = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
                if scale:
                    values += np.random.default_rng(1000 + i).standard_normal(shape, dtype=np.float32) * np.float32(scale)
                items.append((tensor, "F32", shape, values))
            write_safetensors(weights, items)
            del items
            (folder / "config.json").write_text(json.dumps(config))
            manifest = Manifest.for_tensors(tensor_entries(weights))
            (folder / "model.safetensors.manifest.json").write_bytes(manifest.to_json_bytes())
        manifest_doc = json.loads((folder / "model.safetensors.manifest.json").read_text())
        models[name] = {"content_id": manifest_doc["content_id"], "path": f"{name}/model.safetensors"}
    return models


def _measure(command: list[str]) -> tuple[float, int]:
    # the checkout's registry/, not whatever the shared venv has installed
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run(["/usr/bin/time", "-f", "%e %M", *command], capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise SystemExit(f"{command[0]} failed:\n{run.stderr[-3000:]}")
    seconds, kib = run.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kib) * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="slerp,ties")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench-merge"))
    parser.add_argument("--skip-mergekit", action="store_true")
    args = parser.parse_args()
    root = args.dir
    root.mkdir(parents=True, exist_ok=True)
    models = _write_models(root, args.layers)
    (root / "map.json").write_text(json.dumps(models))
    largest = max(int(np.prod(s)) for s in _shapes(args.layers).values()) * 4
    venv = Path(sys.executable).parent
    print(f"two models of {(root / 'a/model.safetensors').stat().st_size / (1 << 30):.2f} GiB, largest tensor "
          f"{largest / MiB:.0f} MiB")
    for method in args.methods.split(","):
        config = root / f"{method}.yml"
        config.write_text(CONFIGS[method])
        inputs = 2
        goal = largest * (inputs + 1) + 100 * MiB
        out = root / f"out-elements-{method}"
        ours = _measure([str(venv / "elements"), "assemble-local", str(config), "--elements", str(root),
                         "--mergekit-models", str(root / "map.json"), "-o", str(out), "--force"])
        shutil.rmtree(out, ignore_errors=True)
        line = f"{method:10s} Elements {ours[0]:6.1f} s {ours[1] / MiB:6.0f} MiB"
        if not args.skip_mergekit:
            mk_config = root / f"{method}-mergekit.yml"
            mk_config.write_text(CONFIGS[method].replace("model: a", f"model: {root / 'a'}")
                                 .replace("base_model: a", f"base_model: {root / 'a'}")
                                 .replace("model: b", f"model: {root / 'b'}"))
            mk_out = root / f"out-mergekit-{method}"
            theirs = _measure([str(venv / "mergekit-yaml"), str(mk_config), str(mk_out)])
            shutil.rmtree(mk_out, ignore_errors=True)
            line += f" | mergekit {theirs[0]:6.1f} s {theirs[1] / MiB:6.0f} MiB"
        print(line + f" | goal <= {goal / MiB:.0f} MiB", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
