#!/usr/bin/env python
"""Benchmark: our content id vs single-threaded SHA-256 and BLAKE3 of the same file bytes.

Generates a safetensors file shaped like a transformer checkpoint (a large embedding, per-layer
weight matrices, small biases and norms) in a temporary directory, warms the page cache, then
times each measurement in its own fresh process so its peak RSS is its own:

- ``sha256``   hashlib SHA-256 of the whole file, one thread (the baseline)
- ``blake3``   BLAKE3 of the whole file, one thread
- ``content``  our content id (strict parse + per-tensor BLAKE3 on every core + table hash)

Also prints BLAKE3 vs SHA-256 per core on an in-memory buffer (no I/O, no page faults).

Usage::

    .venv/bin/python scripts/bench_content_id.py            # 1 GiB
    .venv/bin/python scripts/bench_content_id.py --size 256MiB --repeat 3

Goal: content id >= 3x the throughput of single-threaded SHA-256; peak RSS < 200 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench_common import MiB, peak_rss, size_argument, timed  # noqa: E402


def generate(path: Path, size: int, seed: int = 0) -> int:
    """A checkpoint of about ``size`` bytes: F32 tensors, sized like a small transformer's."""
    import numpy as np

    from registry.formats.safetensors_writer import write_safetensors

    hidden = 1024
    rng = np.random.default_rng(seed)
    specs: list[tuple[str, tuple[int, ...]]] = []
    vocab = max(1, size // 8 // (hidden * 4))
    specs.append(("embeddings.word_embeddings.weight", (vocab, hidden)))
    total = vocab * hidden * 4
    layer = 0
    while total < size:
        for name, shape in [
            ("attention.query.weight", (hidden, hidden)), ("attention.query.bias", (hidden,)),
            ("attention.key.weight", (hidden, hidden)), ("attention.key.bias", (hidden,)),
            ("attention.value.weight", (hidden, hidden)), ("attention.value.bias", (hidden,)),
            ("attention.output.weight", (hidden, hidden)), ("attention.output.bias", (hidden,)),
            ("attention.norm.weight", (hidden,)), ("attention.norm.bias", (hidden,)),
            ("mlp.up.weight", (4 * hidden, hidden)), ("mlp.up.bias", (4 * hidden,)),
            ("mlp.down.weight", (hidden, 4 * hidden)), ("mlp.down.bias", (hidden,)),
            ("mlp.norm.weight", (hidden,)), ("mlp.norm.bias", (hidden,)),
        ]:
            specs.append((f"encoder.layer.{layer}.{name}", shape))
            total += int(np.prod(shape)) * 4
        layer += 1

    def data(shape):
        return lambda: np.frombuffer(rng.bytes(int(np.prod(shape)) * 4), dtype=np.float32).reshape(shape)

    write_safetensors(path, [(name, "F32", shape, data(shape)) for name, shape in specs], {"format": "pt"})
    return len(specs)


def measure(kind: str, path: Path) -> dict:
    """Run in a child process: time one measurement, report its peak RSS."""
    from registry.digest import hash_file
    from registry.formats.content_id import content_id

    start = time.perf_counter()
    if kind == "sha256":
        value = hash_file(path, algorithm="sha256")
    elif kind == "blake3":
        value = hash_file(path, threads=1)
    elif kind == "content":
        value = content_id(path)
    else:
        raise SystemExit(f"unknown measurement {kind}")
    seconds = time.perf_counter() - start
    return {"kind": kind, "seconds": seconds, "peak_rss": peak_rss(), "value": str(value)}


def run_child(kind: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--path", str(path)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def per_core(size: int = 256 * MiB) -> dict:
    """BLAKE3 vs SHA-256 on an in-memory buffer: one thread each, and BLAKE3 on every core."""
    import hashlib

    import blake3

    buffer = os.urandom(size)
    results = {}
    for label, fn in [
        ("sha256_1_thread", lambda: hashlib.sha256(buffer).digest()),
        ("blake3_1_thread", lambda: blake3.blake3(buffer).digest()),
        ("blake3_all_cores", lambda: blake3.blake3(buffer, max_threads=blake3.blake3.AUTO).digest()),
    ]:
        best = min(timed(fn)[1] for _ in range(3))
        results[label] = size / best / MiB
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=size_argument, default="1GiB", help="file size (e.g. 256MiB, 1GiB; default 1GiB)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement; the best is kept")
    parser.add_argument("--keep", metavar="DIR", help="generate into DIR and keep the file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, Path(args.path))))
        return 0

    size = args.size
    with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
        path = Path(args.keep or tmp) / "bench.safetensors"
        start = time.perf_counter()
        count = generate(path, size)
        actual = path.stat().st_size
        print(f"generated {path.name}: {actual / MiB:.0f} MiB, {count} tensors in {time.perf_counter() - start:.1f}s")
        with open(path, "rb") as handle:  # warm the page cache: every measurement reads hot data
            while handle.read(64 * MiB):
                pass
        print(f"cpus: {os.cpu_count()}  python {sys.version.split()[0]}  (page cache warm; each run in a fresh process)")
        rows = {}
        for kind in ["sha256", "blake3", "content"]:
            runs = [run_child(kind, path) for _ in range(args.repeat)]
            best = min(runs, key=lambda r: r["seconds"])
            best["peak_rss"] = max(r["peak_rss"] for r in runs)
            rows[kind] = best
        base = actual / rows["sha256"]["seconds"] / MiB
        print(f"\n{'measurement':<34}{'MiB/s':>10}{'x sha256':>10}{'peak RSS MiB':>14}")
        labels = {"sha256": "sha256, 1 thread (hashlib)", "blake3": "blake3, 1 thread", "content": "content id (ours, all cores)"}
        for kind, row in rows.items():
            rate = actual / row["seconds"] / MiB
            print(f"{labels[kind]:<34}{rate:>10.0f}{rate / base:>10.2f}{row['peak_rss'] / MiB:>14.0f}")
        ratio = (actual / rows["content"]["seconds"] / MiB) / base
        peak = rows["content"]["peak_rss"] / MiB
        print(f"\ncontent id: {ratio:.2f}x single-threaded sha256 (goal >= 3x: {'met' if ratio >= 3 else 'NOT met'}); "
              f"peak RSS {peak:.0f} MiB (goal < 200: {'met' if peak < 200 else 'NOT met'})")
        print(f"content id = {rows['content']['value']}")
    print("\nper core, in memory (256 MiB buffer, best of 3, no I/O):")
    for label, rate in per_core().items():
        print(f"  {label:<20}{rate:>10.0f} MiB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
