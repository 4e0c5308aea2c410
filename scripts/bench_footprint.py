#!/usr/bin/env python3
"""Bytes on disk, time and peak RSS of publish-model / assemble / verify, as a user runs them (issue 17).

Generates a checkpoint of random tensors (``--size``, default 2 GiB, BF16, ``--tensor`` MiB each;
``--llama 3``: Llama-2-7B shapes, as many layers as fit, in 3 shards with an index),
starts an anvil and a Kubo daemon, and runs every command as a whole ``elements`` process against
them, with the code of each ``--repo`` given (e.g. the main checkout for "before" and this worktree
for "after")::

    .venv/bin/python scripts/bench_footprint.py --repo before=/work/main --repo after=.

Per repo, in a fresh ELEMENTS_HOME: ``deploy``; ``publish-model``; ``assemble`` into the same home
(the blocks are there: what a publisher who assembles sees); ``verify``; then, in a second fresh home
that only knows the Kubo node, ``assemble`` (default) and ``assemble --no-keep`` (when the repo has it).
Reported: wall time, peak RSS of the process (``wait4``), and allocated bytes (``du``) of the home
and the output afterwards, with the ratio to the checkpoint. ``cp`` of the output is timed for
comparison. Everything is removed at the end (``--keep`` keeps the work directory).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry.chain.devnet import Anvil, find_anvil  # noqa: E402
from registry.chain.connection import anvil_dev_accounts  # noqa: E402

KEY = "0x" + anvil_dev_accounts()[0].key.hex()
MiB = 1 << 20


def write_checkpoint(path: Path, size: int, tensor_bytes: int) -> int:
    """A safetensors file of random BF16 tensors totalling ``size`` bytes; returns the largest tensor."""
    count = max(1, size // tensor_bytes)
    shape = [tensor_bytes // 2 // 4096, 4096]
    nbytes = shape[0] * shape[1] * 2
    header, offset = {}, 0
    for i in range(count):
        header[f"model.layers.{i:03d}.weight"] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(raw)) + raw)
        for _ in range(count):
            left = nbytes
            while left:
                step = min(left, 64 * MiB)
                out.write(os.urandom(step))
                left -= step
    (path.parent / "config.json").write_text('{"model_type": "bench"}\n')
    return nbytes


def write_llama_checkpoint(model: Path, size: int, shards: int = 3) -> int:
    """A Llama-layout BF16 checkpoint of about ``size`` bytes (hidden 4096, intermediate 11008,
    vocabulary 32000: Llama-2-7B's shapes, as many layers as fit) in ``shards`` files with a
    ``model.safetensors.index.json``, random bits; returns the largest tensor's bytes."""
    hidden, inter, vocab = 4096, 11008, 32000
    per_layer = (4 * hidden * hidden + 3 * hidden * inter + 2 * hidden) * 2
    fixed = (2 * vocab * hidden + hidden) * 2
    layers = max(1, (size - fixed) // per_layer)
    shapes = [("model.embed_tokens.weight", [vocab, hidden])]
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes += [(p + f"self_attn.{m}_proj.weight", [hidden, hidden]) for m in "qkvo"]
        shapes += [(p + "mlp.gate_proj.weight", [inter, hidden]), (p + "mlp.up_proj.weight", [inter, hidden]),
                   (p + "mlp.down_proj.weight", [hidden, inter])]
        shapes += [(p + "input_layernorm.weight", [hidden]), (p + "post_attention_layernorm.weight", [hidden])]
    shapes += [("model.norm.weight", [hidden]), ("lm_head.weight", [vocab, hidden])]
    nbytes = {name: 2 * (shape[0] * (shape[1] if len(shape) > 1 else 1)) for name, shape in shapes}
    total = sum(nbytes.values())
    groups: list[list[tuple[str, list[int]]]] = [[] for _ in range(shards)]
    done = 0
    for name, shape in shapes:  # fill the shards in order, each about total / shards
        groups[min(shards - 1, done * shards // total)].append((name, shape))
        done += nbytes[name]
    weight_map = {}
    for index, group in enumerate(groups, 1):
        file_name = f"model-{index:05d}-of-{shards:05d}.safetensors"
        header, offset = {}, 0
        for name, shape in group:
            header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + nbytes[name]]}
            offset += nbytes[name]
            weight_map[name] = file_name
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        with open(model / file_name, "wb") as out:
            out.write(struct.pack("<Q", len(raw)) + raw)
            for name, _ in group:
                left = nbytes[name]
                while left:
                    step = min(left, 64 * MiB)
                    out.write(os.urandom(step))
                    left -= step
    (model / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden, "intermediate_size": inter,
              "num_hidden_layers": layers, "vocab_size": vocab, "torch_dtype": "bfloat16"}
    (model / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return max(nbytes.values())


def du(*paths: Path) -> int:
    total = 0
    for path in paths:
        if not path.exists():
            continue
        for root, _, names in os.walk(path):
            for name in names:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def timed(args: list[str], env: dict[str, str]) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run a process in the code's directory (``python -m`` puts the working directory first on
    the path); (wall seconds, peak RSS in bytes, result)."""
    start = time.monotonic()
    process = subprocess.Popen(args, env=env, cwd=env["PYTHONPATH"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.monotonic() - start
    out, err = process.stdout.read(), process.stderr.read()
    code = os.waitstatus_to_exitcode(status)
    process.returncode = code
    return elapsed, usage.ru_maxrss * 1024, subprocess.CompletedProcess(args, code, out, err)


def _what(paths: list[Path]) -> str:
    """Where the bytes are: a home by blocks, cache and the rest; an output as a whole."""
    parts = []
    for path in paths:
        if (path / "blocks").exists() or (path / "cache").exists():
            blocks, cache = du(path / "blocks"), du(path / "cache")
            parts.append(f"blocks {blocks / 2**30:.2f} GiB")
            if cache:
                parts.append(f"**cache {cache / 2**30:.2f} GiB**")
            rest = du(path) - blocks - cache
            if rest > 2**20:
                parts.append(f"other {rest / 2**30:.2f} GiB")
        elif path.exists() and du(path):
            parts.append(f"output {du(path) / 2**30:.2f} GiB")
    return " + ".join(parts)


def elements_env(repo: Path, home: Path, rpc: str, kubo: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELEMENTS_")}
    env.update(PYTHONPATH=str(repo), ELEMENTS_HOME=str(home), ELEMENTS_RPC_URL=rpc, ELEMENTS_PRIVATE_KEY=KEY,
               ELEMENTS_NO_PROGRESS="1")
    if kubo:
        env["ELEMENTS_IPFS_API"] = kubo
    return env


def start_kubo(base: Path):
    from tests.kubo_fixtures import make_node

    return make_node(base, "kubo").start()


def bench_repo(label: str, repo: Path, work: Path, checkpoint: Path, model_bytes: int, rpc: str, kubo,
               lean: bool = False) -> list[dict]:
    rows: list[dict] = []
    python = str(ROOT / ".venv" / "bin" / "python")
    home = work / f"{label}-home"

    def step(name: str, args: list[str], env: dict[str, str], measure: list[Path]) -> subprocess.CompletedProcess:
        seconds, rss, result = timed([python, "-m", "registry", *args], env)
        if result.returncode != 0:
            raise SystemExit(f"{label}: {name} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
        on_disk = du(*measure)
        rows.append({"code": label, "step": name, "seconds": round(seconds, 1), "peak_rss_mib": round(rss / MiB, 1),
                     "disk_bytes": on_disk, "ratio": round(on_disk / model_bytes, 3), "what": _what(measure)})
        print(json.dumps(rows[-1]), flush=True)
        return result

    env = elements_env(repo, home, rpc, None)
    step("deploy", ["deploy"], env, [home])
    published = step("publish-model", ["publish-model", str(checkpoint.parent), "--license", "MIT", "--json"], env, [home])
    record = json.loads(published.stdout)["composition"]["record_id"]
    out = work / f"{label}-out"
    step("assemble (same home)", ["assemble", record, "-o", str(out)], env, [home, out])
    step("verify", ["verify", str(out)], env, [home, out])
    if lean:  # the checkpoint is no longer read: give its space to the steps that follow
        shutil.rmtree(checkpoint.parent)
    start = time.monotonic()
    subprocess.run(["cp", "-r", str(out), str(work / "cp-out")], check=True)
    rows.append({"code": label, "step": "cp -r out (reference)", "seconds": round(time.monotonic() - start, 1),
                 "peak_rss_mib": None, "disk_bytes": du(work / "cp-out"), "ratio": None, "what": ""})
    print(json.dumps(rows[-1]), flush=True)
    shutil.rmtree(work / "cp-out")
    shutil.rmtree(out)
    if kubo is not None:
        # Put the published DAGs into Kubo (with the code under test: the same blocks either way).
        seconds, _, result = timed([python, "-c", _TO_KUBO, str(home), rpc, kubo.api_url], elements_env(ROOT, home, rpc, None))
        if result.returncode != 0:
            raise SystemExit(f"putting the DAGs into Kubo failed: {result.stderr[-2000:]}")
        if lean:  # Kubo holds the DAGs now; the fresh homes fetch from it, not from the publisher's blocks
            shutil.rmtree(home / "blocks")
        has_no_keep = "--no-keep" in subprocess.run([python, "-m", "registry", "assemble", "--help"],
                                                    env=elements_env(repo, home, rpc, None), cwd=repo, capture_output=True, text=True).stdout
        for flags in ([], ["--no-keep"]) if has_no_keep else ([],):
            fresh = work / f"{label}-fresh{''.join(flags)}"
            out = work / f"{label}-out-fresh"
            step("assemble, fresh home, from Kubo" + (" --no-keep" if flags else ""), ["assemble", record, "-o", str(out), *flags],
                 elements_env(repo, fresh, rpc, kubo.api_url), [fresh, out])
            shutil.rmtree(out)
            shutil.rmtree(fresh)
    shutil.rmtree(home)
    return rows


_TO_KUBO = """
import sys
from pathlib import Path
from registry.chain.connection import connect
from registry.chain.registry import Registry
from registry.formats.content_id import Manifest
from registry.storage.blockstore import BlockStore
from registry.storage.fetch import Sources
home, rpc, api = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
registry = Registry.attach(connect(rpc), None, home)
with Sources(BlockStore(home / "blocks"), api) as sources:
    for record in registry.all_records():
        sources.publish(record.cid)
        raw = b"".join(sources.store.cat(record.cid))
        if b'"elements.manifest/v1"' in raw:
            sources.publish(Manifest.from_json(raw).data["cid"])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=float, default=2.0, help="checkpoint size in GiB (default 2)")
    parser.add_argument("--tensor", type=int, default=128, help="MiB per tensor (default 128)")
    parser.add_argument("--llama", type=int, metavar="SHARDS",
                        help="a Llama-layout BF16 checkpoint (Llama-2-7B shapes) in SHARDS files instead of equal tensors")
    parser.add_argument("--repo", action="append", metavar="LABEL=PATH", help="code to run (repeatable; default after=.)")
    parser.add_argument("--work", help="work directory (default: a temporary one)")
    parser.add_argument("--no-kubo", action="store_true", help="skip the fresh-home runs that fetch from Kubo")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--lean", action="store_true",
                        help="one repo only: remove the checkpoint after verify and the publisher's blocks once Kubo holds "
                             "them (peak disk about 3x the model instead of 5x)")
    args = parser.parse_args()
    repos = [(r.split("=", 1)[0], Path(r.split("=", 1)[1]).resolve()) for r in (args.repo or [f"after={ROOT}"])]
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-footprint-"))
    work.mkdir(parents=True, exist_ok=True)
    model = work / "model"
    model.mkdir(exist_ok=True)
    checkpoint = model / "model.safetensors"
    if args.llama:
        largest = write_llama_checkpoint(model, int(args.size * 2**30), args.llama)
    else:
        largest = write_checkpoint(checkpoint, int(args.size * 2**30), args.tensor * MiB)
    model_bytes = du(model)
    print(json.dumps({"checkpoint_bytes": model_bytes, "largest_tensor_mib": largest / MiB,
                      "rss_goal_mib": largest / MiB + 100}), flush=True)
    anvil = Anvil(binary=find_anvil(), log=work / "anvil.log")
    anvil.start()
    kubo = None if args.no_kubo else start_kubo(work)
    rows: list[dict] = []
    try:
        for label, repo in repos:
            rows += bench_repo(label, repo, work, checkpoint, model_bytes, anvil.url, kubo, lean=args.lean and len(repos) == 1)
    finally:
        anvil.stop()
        if kubo is not None:
            kubo.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"checkpoint: {model_bytes / 2**30:.2f} GiB, largest tensor {largest / MiB:.0f} MiB")
    print("| code | step | time | peak RSS | on disk afterwards | × model |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        rss = f"{row['peak_rss_mib']:.0f} MiB" if row["peak_rss_mib"] is not None else "—"
        ratio = f"{row['ratio']:.2f}×" if row["ratio"] is not None else "—"
        print(f"| {row['code']} | `{row['step']}` | {row['seconds']:.1f} s | {rss} | {row['what']} | {ratio} |")


if __name__ == "__main__":
    main()
