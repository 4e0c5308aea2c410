#!/usr/bin/env python
"""Benchmark: resolve a composition graph of N generated records against a real anvil.

Three clients read the same graph (every record checked against its id, licences included), in
the same run, interleaved, best of ``--repeat``:

- naive:     one record per call, breadth first (``Registry.record``: a view call + a log query each);
- per level: ``Registry.records(ids)`` for each level (a view call + a log query per level);
- resolver:  ``Resolver.graph`` (ONE JSON-RPC batch request per level).

It prints RPC round trips (HTTP requests counted at the provider) and wall time, and the ratios.
Goals: the resolver makes at most depth + 1 round trips and is at least 20x faster than naive.

    .venv/bin/python scripts/bench_resolve.py              # 200 records, depth 4
    .venv/bin/python scripts/bench_resolve.py --records 1000 --depth 6 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from registry.chain.devnet import Anvil  # noqa: E402
from registry.chain.registry import Kind, Registry  # noqa: E402
from registry.chain.inputs import RecordInput  # noqa: E402
from registry.chain.cids import RAW, join_cid  # noqa: E402
from registry.records.resolve import Resolver  # noqa: E402


class Counter:
    """Counts the HTTP requests (JSON-RPC round trips) a chain's bounded provider sends, batched or not
    (every request of registry.chain.rpc.BoundedHTTPProvider goes through its ``_post``)."""

    def __init__(self, provider) -> None:
        self.count = 0
        post = provider._post

        def counted(*args, **kwargs):
            self.count += 1
            return post(*args, **kwargs)

        provider._post = counted


def widths(records: int, depth: int) -> list[int]:
    """Level widths from the root (1) down, growing geometrically, summing to ``records``."""
    levels = depth + 1
    ratio = 1.0
    while sum(round(ratio**i) for i in range(levels)) < records:
        ratio += 0.01
    out = [1] + [max(1, round(ratio**i)) for i in range(1, levels)]
    out[-1] += records - sum(out)
    return out


def build(registry: Registry, records: int, depth: int, seed: int) -> tuple[bytes, list[int]]:
    """Publish a layered graph: every record of level k names 1-4 records of level k+1 as parents,
    and every record below the root has at least one child. Returns the root id and the widths."""
    rng = random.Random(seed)
    shape = widths(records, depth)
    publisher = registry.account.address
    levels: list[list[RecordInput]] = [[] for _ in shape]
    ids: list[list[bytes]] = [[] for _ in shape]
    licences = [2, 3, 5, 1]
    for level in range(len(shape) - 1, -1, -1):
        below = ids[level + 1] if level + 1 < len(shape) else []
        for i in range(shape[level]):
            parents: set[bytes] = set()
            if below:
                # cover every record below, then add a few at random
                share = [below[j] for j in range(len(below)) if j % shape[level] == i]
                parents.update(share)
                parents.update(rng.sample(below, min(len(below), rng.randint(1, 3))))
            kind = Kind.COMPOSITION if level == 0 else (Kind.ELEMENT if not below else Kind.COMPOSITION)
            record = RecordInput(rng.randbytes(32), join_cid(RAW, rng.randbytes(32)), licences[level % len(licences)], kind, tuple(parents))
            levels[level].append(record)
            ids[level].append(record.record_id(publisher))
    for level in range(len(shape) - 1, -1, -1):
        registry.publish_batch(levels[level], chunk=50)
    return ids[0][0], shape


def _walk(registry: Registry, root: bytes, read_level) -> int:
    """Read the graph under ``root`` level by level with ``read_level(ids) -> records``, and each
    record's licence; returns the number of records."""
    seen, frontier = {root}, [root]
    while frontier:
        following = []
        for record in read_level(frontier):
            registry.license(record.license_id)
            for parent in record.parents:
                if parent not in seen:
                    seen.add(parent)
                    following.append(parent)
        frontier = following
    return len(seen)


def naive(registry: Registry, root: bytes) -> int:
    """One record per call."""
    return _walk(registry, root, lambda ids: [registry.record(rid) for rid in ids])


def per_level(registry: Registry, root: bytes) -> int:
    """One batched records() call per level."""
    return _walk(registry, root, registry.records)


def resolver(registry: Registry, root: bytes) -> int:
    graph = Resolver(registry).graph([root], documents=False)
    assert all(n.license is not None for n in graph)
    return len(graph)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, Anvil(log=Path(tmp) / "anvil.log") as anvil:
        chain = anvil.connect()
        deployer = Registry.deploy(chain, chain.dev_accounts[0])
        root, shape = build(deployer, args.records, args.depth, args.seed)
        print(f"anvil {anvil.url}: {args.records} records in levels {shape} (depth {len(shape) - 1}), root 0x{root.hex()}")

        clients = {"naive (one record per call)": naive, "per level (Registry.records)": per_level, "resolver (one batch per level)": resolver}
        best = {name: float("inf") for name in clients}
        trips = {}
        for _ in range(args.repeat):
            for name, client in clients.items():
                registry = Registry(anvil.connect(), deployer.address, None, deployer.deploy_block)  # cold caches
                counter = Counter(registry.chain.provider)
                start = time.perf_counter()
                found = client(registry, root)
                elapsed = time.perf_counter() - start
                assert found == args.records, (name, found)
                best[name] = min(best[name], elapsed)
                trips[name] = counter.count

        base = best["naive (one record per call)"]
        print(f"{'client':<34} {'round trips':>11} {'wall (best of ' + str(args.repeat) + ')':>18} {'vs naive':>9}")
        for name in clients:
            print(f"{name:<34} {trips[name]:>11} {best[name] * 1000:>15.1f} ms {base / best[name]:>8.1f}x")
        ours = "resolver (one batch per level)"
        depth = len(shape) - 1
        print(f"goal: resolver round trips <= depth + 1 = {depth + 1}: {'met' if trips[ours] <= depth + 1 else 'MISSED'} ({trips[ours]}); "
              f">= 20x faster than naive: {'met' if base / best[ours] >= 20 else 'MISSED'} ({base / best[ours]:.1f}x)")
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
