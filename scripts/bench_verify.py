#!/usr/bin/env python
"""Benchmark: `elements verify`'s work vs sigstore model-signing's hashing vs raw SHA-256 / BLAKE3.

Generates a safetensors checkpoint shaped like a transformer's (default 1 GiB, F32), publishes it
in process as elements plus the composition that reassembles it (`publish-model` on the
in-process chain, blocks in a temporary block store), warms the page cache, then measures once
each, in this order, in this process:

- ``model-signing``  ``model_signing.hashing.hash(path)``: the library's default configuration
                     (file serialization, SHA-256, 1 MiB reads), which signing and verifying run
- ``sha256``         hashlib SHA-256 of the file's bytes, one stream (mmap)
- ``blake3``         BLAKE3 of the file's bytes on every core (mmap, ``max_threads=AUTO``)
- ``content-id``     the weights' content id alone (``elements id``): the hashing part of verify
- ``verify``         ``registry.provenance.verify_model``: content id of every tensor, the claims
                     (one log query), the composition's recipe and every input manifest from the
                     block store, the ancestry from the chain, every tensor compared

Prints wall and CPU seconds, throughput and the two ratios the goal is stated in:
model-signing / verify (goal >= 3x) and verify / blake3 (goal <= 2x).

Usage::

    .venv/bin/python scripts/bench_verify.py              # 1 GiB
    .venv/bin/python scripts/bench_verify.py --size 256MiB --keep /tmp/bench-verify
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench_common import MiB, size_argument, timed, warm  # noqa: E402


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        return hashlib.sha256(mapped).hexdigest()


def blake3_of(path: Path) -> str:
    import blake3

    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        return blake3.blake3(mapped, max_threads=blake3.blake3.AUTO).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=size_argument, default="1GiB", help="checkpoint size (default 1GiB)")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary directory)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    size = args.size

    from scripts.bench_content_id import generate

    import model_signing.hashing

    from registry.chain.connection import connect
    from registry.chain.registry import Registry
    from registry.publish.model import publish_model
    from registry.formats.content_id import content_id
    from registry.provenance.verify import VerifyOptions, verify_model
    from registry.storage.blockstore import BlockStore
    from registry.storage.fetch import Sources

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-verify-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        model = work / "model.safetensors"
        if not model.exists() or abs(model.stat().st_size - size) > size // 10:
            print(f"generating {size / MiB:.0f} MiB checkpoint ...", file=sys.stderr)
            generate(model, size)
        actual = model.stat().st_size
        chain = connect("memory")
        registry = Registry.deploy(chain, chain.dev_accounts[0])
        store = BlockStore(work / "blocks")
        print("publishing it as elements + a composition (in-process chain) ...", file=sys.stderr)
        published, publish_wall, _ = timed(lambda: publish_model(registry, store, model, license="Apache-2.0", work_dir=work))
        reader = registry.with_account(None)
        sources = Sources(store)
        warm(model)

        figures: dict[str, dict] = {}
        manifest, wall, cpu = timed(lambda: model_signing.hashing.hash(model))
        figures["model-signing"] = {"wall": wall, "cpu": cpu}
        digest, wall, cpu = timed(lambda: sha256_of(model))
        figures["sha256"] = {"wall": wall, "cpu": cpu}
        digest, wall, cpu = timed(lambda: blake3_of(model))
        figures["blake3"] = {"wall": wall, "cpu": cpu}
        digest, wall, cpu = timed(lambda: content_id(model))
        figures["content-id"] = {"wall": wall, "cpu": cpu}
        report, wall, cpu = timed(lambda: verify_model(model, reader, sources, VerifyOptions()))
        figures["verify"] = {"wall": wall, "cpu": cpu}
        if report.exit_code != 0:
            print(f"verify did not verify: {report.verdict} {report.reasons}", file=sys.stderr)
            return 1
        for entry in figures.values():
            entry["mib_s"] = actual / MiB / entry["wall"]
        ratios = {
            "model_signing_over_verify": figures["model-signing"]["wall"] / figures["verify"]["wall"],
            "verify_over_blake3": figures["verify"]["wall"] / figures["blake3"]["wall"],
            "verify_over_sha256_speedup": figures["sha256"]["wall"] / figures["verify"]["wall"],
        }
        result = {
            "load_average": os.getloadavg()[0],
            "size_bytes": actual,
            "tensors": len(report.model.manifest.entries),
            "elements": len(published.elements),
            "publish_seconds": publish_wall,
            "cpus": os.cpu_count(),
            "figures": figures,
            "ratios": ratios,
            "goals": {"model_signing_over_verify >= 3": ratios["model_signing_over_verify"] >= 3,
                      "verify_over_blake3 <= 2": ratios["verify_over_blake3"] <= 2},
        }
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(f"{actual / MiB:.0f} MiB, {result['tensors']} tensors in {result['elements']} elements, "
                  f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.2f}), page cache warm, one run each")
            print(f"{'measurement':<16}{'wall s':>9}{'cpu s':>9}{'MiB/s':>10}")
            for name, entry in figures.items():
                print(f"{name:<16}{entry['wall']:>9.3f}{entry['cpu']:>9.3f}{entry['mib_s']:>10,.0f}")
            print(f"model-signing / verify: {ratios['model_signing_over_verify']:.2f}x (goal >= 3x)")
            print(f"verify / blake3:        {ratios['verify_over_blake3']:.2f}x (goal <= 2x)")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
