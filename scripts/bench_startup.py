#!/usr/bin/env python
"""Benchmark: start-up as a person meets it: whole `elements` processes beside the CLIs they would use.

Every command below is a fresh process (stdout and stderr to /dev/null, a clean ELEMENTS_HOME),
run round robin ``--repeat`` times so that the machine's load falls on all of them alike; the
median and the best wall time are printed, and each figure's ratio to ``hf --help`` measured in
the same rounds:

- ``elements --help``
- ``elements id small``       content id of a small safetensors file (``--size``, default 1 MiB)
- ``elements cid small``      its IPFS CID (unixfs-v1-2025)
- ``elements verify small``   the small model (that file and a config.json), published as
                              elements and a composition on a real anvil, verified over JSON-RPC
                              (skipped, saying why, when anvil is not installed: `npm ci`)
- ``hf --help``               huggingface_hub's CLI: the anchor of the goal
- ``model_signing --help``    OpenSSF model-signing (the ``bench`` extra: pip install -e '.[bench]')
- ``python -c pass``          the interpreter alone: the floor under every row
- ``python -c "import web3"`` what any command that reads the chain through web3.py pays first

Goal (issue 12): ``--help``, ``id`` and ``cid`` of a small file at most 0.35x ``hf --help``.

``--compare DIR`` runs the same elements commands from another checkout too (its code on
PYTHONPATH, this interpreter), in the same rounds: a before/after table under the same load::

    .venv/bin/python scripts/bench_startup.py
    git worktree add /tmp/before 2cd14fb && .venv/bin/python scripts/bench_startup.py --compare /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench_common import MiB, compile_package, size_argument  # noqa: E402

#: Rows held to the goal, and the goal: at most this many times ``hf --help``.
GOAL_ROWS = ("elements --help", "elements id small", "elements cid small")
GOAL = 0.35
ANCHOR = "hf --help"


def tool(name: str) -> str | None:
    """A console script beside this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def make_model(directory: Path, size: int) -> Path:
    """A small BERT-shaped model: ``model.safetensors`` of about ``size`` bytes and a config.json."""
    import numpy as np

    from registry.formats.safetensors_writer import write_safetensors

    directory.mkdir(parents=True, exist_ok=True)
    width = 64
    rows = max(1, size // 3 // (width * 4))
    rng = np.random.default_rng(12)
    tensors = {"embeddings.weight": rng.standard_normal((rows, width)).astype(np.float32)}
    for layer in range(2):
        tensors[f"encoder.layer.{layer}.dense.weight"] = rng.standard_normal((rows, width)).astype(np.float32)
        tensors[f"encoder.layer.{layer}.dense.bias"] = rng.standard_normal(width).astype(np.float32)
    write_safetensors(directory / "model.safetensors", tensors)
    (directory / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": width}))
    return directory


def publish_on_anvil(model: Path, home: Path, work: Path):
    """Start anvil, deploy the registry, publish ``model`` as elements + a composition (blocks in
    ``home``). Returns the running Anvil, or the reason there is none."""
    from registry.chain.devnet import Anvil, find_anvil
    from registry.chain.registry import Registry
    from registry.publish.model import publish_model
    from registry.errors import ConfigError
    from registry.storage.blockstore import BlockStore

    try:
        find_anvil()
    except ConfigError as exc:
        return str(exc)
    anvil = Anvil(log=work / "anvil.log").start()
    chain = anvil.connect()
    registry = Registry.deploy(chain, chain.dev_accounts[0], home)
    publish_model(registry, BlockStore(home / "blocks"), model, license="Apache-2.0", work_dir=work)
    return anvil


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="rounds; each command runs once per round (default 7)")
    parser.add_argument("--size", type=size_argument, default="1MiB", help="size of the small safetensors file (default 1MiB)")
    parser.add_argument("--compare", metavar="DIR", type=Path, help="also run the elements commands from this checkout")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    anvil = None
    try:
        model = make_model(work / "small", args.size)
        weights = model / "model.safetensors"
        home = work / "home"
        print("publishing the small model on anvil ...", file=sys.stderr)
        anvil = publish_on_anvil(model, home, work)
        if isinstance(anvil, str):
            print(f"no verify row: {anvil}", file=sys.stderr)
            anvil = None

        base_env = {k: v for k, v in os.environ.items() if not k.startswith("ELEMENTS_")}
        base_env["ELEMENTS_HOME"] = str(home)
        elements = [tool("elements")] if tool("elements") else [sys.executable, "-m", "registry"]
        jobs: dict[str, tuple[list[str], dict[str, str]]] = {}
        checkouts = [("", ROOT)] + ([(f" ({args.compare.resolve().name})", args.compare.resolve())] if args.compare else [])
        for suffix, checkout in checkouts:
            env = {**base_env, "PYTHONPATH": str(checkout)}  # ahead of the editable install: that checkout's code
            # As an installed package is (pip compiles at install): the first round must not pay for compiling.
            compile_package(checkout / "registry", env)
            jobs[f"elements --help{suffix}"] = (elements + ["--help"], env)
            jobs[f"elements id small{suffix}"] = (elements + ["id", str(weights)], env)
            jobs[f"elements cid small{suffix}"] = (elements + ["cid", str(weights)], env)
            if anvil is not None:
                jobs[f"elements verify small{suffix}"] = (elements + ["--rpc-url", anvil.url, "verify", str(model)], env)
        missing = []
        for name, script in (("hf --help", "hf"), ("model_signing --help", "model_signing")):
            found = tool(script)
            if found:
                jobs[name] = ([found, "--help"], base_env)
            else:
                missing.append(f"{name}: {script} is not installed (pip install -e '.[bench]')")
        jobs["python -c pass"] = ([sys.executable, "-c", "pass"], base_env)
        jobs['python -c "import web3"'] = ([sys.executable, "-c", "import web3"], base_env)
        if ANCHOR not in jobs:
            print(f"{ANCHOR} is needed as the anchor: pip install -e '.[bench]' (huggingface_hub)", file=sys.stderr)
            return 2

        times: dict[str, list[float]] = {name: [] for name in jobs}
        for _ in range(args.repeat):
            for name, (command, env) in jobs.items():
                started = time.perf_counter()
                done = subprocess.run(command, env=env, cwd=work, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
                elapsed = time.perf_counter() - started
                if done.returncode != 0:
                    print(f"{name} failed (exit {done.returncode}): {done.stderr.decode(errors='replace')[-500:]}", file=sys.stderr)
                    return 1
                times[name].append(elapsed)

        anchor = statistics.median(times[ANCHOR])
        figures = {
            name: {"median": statistics.median(runs), "best": min(runs), "over_hf": statistics.median(runs) / anchor}
            for name, runs in times.items()
        }
        goals = {name: figures[name]["over_hf"] <= GOAL for name in GOAL_ROWS}
        result = {"cpus": os.cpu_count(), "load_average": os.getloadavg()[0], "repeat": args.repeat,
                  "small_bytes": weights.stat().st_size, "figures": figures, "goals": goals, "missing": missing}
        if args.json:
            print(json.dumps(result, indent=2))
            return 0
        print(f"whole processes, {args.repeat} rounds round robin, {os.cpu_count()} CPUs (load average "
              f"{os.getloadavg()[0]:.2f}); small = {weights.stat().st_size / MiB:.2f} MiB safetensors")
        print(f"{'command':<34}{'median s':>10}{'best s':>9}{'x hf --help':>13}  goal")
        for name, entry in figures.items():
            goal = ""
            if name in goals:
                goal = f"<= {GOAL}x {'met' if goals[name] else 'NOT MET'}"
            print(f"{name:<34}{entry['median']:>10.3f}{entry['best']:>9.3f}{entry['over_hf']:>12.2f}x  {goal}")
        for line in missing:
            print(f"not measured: {line}")
        print("goal: " + ("met" if all(goals.values()) else "NOT MET") + f" (--help, id and cid of a small file <= {GOAL}x hf --help)")
        return 0
    finally:
        if anvil is not None:
            anvil.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
