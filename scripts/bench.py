"""What a person meets: every Elements command as a whole process, beside the tool they would use instead.

One entry point for the goals of issue 12. Each job runs the Elements command as a process (the
way a user types it) and its anchor in the same run, on the same bytes, and prints the ratio
against the goal, plus the in-process figure where the library has one:

* ``elements --help`` / ``id`` / ``cid`` of a small file vs ``hf --help`` (goal <= 0.35x);
* ``elements id`` of SIZE vs a SHA-256 process over the same bytes (goal <= 0.5x) and raw BLAKE3
  (goal <= 2x);
* ``elements verify DIR`` of SIZE claimed on anvil vs OpenSSF model-signing 1.x hashing in its
  BLAKE3 mode with shard serialization (goal <= 0.8x) and raw BLAKE3 (goal <= 3x);
* ``elements publish-model DIR`` of SIZE on anvil vs ``ipfs add -r DIR`` into a fresh Kubo repo
  (goal <= 1.5x);
* ``elements assemble`` of a 2xSIZE composition from the local store vs ``cp -r`` of the output
  (goal <= 1.2x): by default (elements checked by an earlier assembly are copied unhashed; the
  output is flushed to disk, which ``cp`` does not do), with ``--no-fsync`` (as ``cp``), with
  ``--verify-blocks`` (every tensor hashed again), and the first assembly after publishing (one
  run: it hashes every tensor and notes the elements as checked). The durable ones are also shown
  beside ``cp -r`` followed by ``sync`` of the copy, which is what they do; the goal's ratio stays
  the one against plain ``cp -r``.

Run: ``.venv/bin/python scripts/bench.py`` (1 GiB, 2 GiB; a few minutes) or ``--quick`` (64 MiB,
128 MiB); ``--only assemble`` (or any of startup, id, publish-model, verify) runs only those jobs. The anchors are benchmark-only packages: ``pip install -e '.[bench]'`` (huggingface_hub,
model-signing, blake3); anvil from ``npm ci``; Kubo at ``.tools/bin/ipfs``. A missing anchor is
reported as missing, never guessed. Times are the median of ``--repeat`` runs; verify and its
model-signing anchor run in turns, and each publish-model round publishes a new model (a second
run of the same one finds its records on chain and sends nothing) beside ``ipfs add`` of it. Every
timed round starts after ``sync`` (see :func:`run`), so none inherits the writeback of the
previous one. The checkout is byte-compiled first, as an installed package is (see :func:`environment`).
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
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench_common import MiB, compile_package, size_argument  # noqa: E402

#: anvil's first dev account (public test key: never for value).
ANVIL_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
IPFS = ROOT / ".tools" / "bin" / "ipfs"


#: The jobs ``--only`` can choose.
JOBS = ("startup", "id", "publish-model", "verify", "assemble")


def tool(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def environment(home: Path, **extra: str) -> dict[str, str]:
    """The environment every timed process runs in, Elements and anchors alike.

    ``PYTHONDONTWRITEBYTECODE`` is dropped: with it (a sandbox may set it) Python recompiles every
    module of the checkout from source in each process, which an installed package never does
    (pip writes its bytecode at install, as it did for the anchors' packages).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ELEMENTS_", "IPFS_")) and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(ROOT), ELEMENTS_HOME=str(home), NO_COLOR="1", **extra)
    return env


def compile_checkout(env: dict[str, str]) -> None:
    """Byte-compile the checkout's ``registry`` package (into its ``__pycache__``, ignored by git)
    as ``pip install`` does for an installed package, so no timed process pays for compiling."""
    compile_package(ROOT / "registry", env)


def run(argv: list[str], env: dict[str, str], repeat: int = 1, ok: tuple[int, ...] = (0,)) -> tuple[float, str]:
    """Median wall-clock seconds of ``argv`` as a process, and its last stdout.

    Every round starts after ``sync``: the dirty pages an earlier round (or anchor) left are
    written back before the clock starts, so no round pays for another's writes.
    """
    times, out = [], ""
    for _ in range(repeat):
        os.sync()
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode not in ok:
            raise SystemExit(f"{' '.join(map(str, argv))} exited {done.returncode}: {done.stderr.strip()[-600:]}")
        out = done.stdout
    return statistics.median(times), out


def alternate(a: list[str], a_env: dict[str, str], b: list[str], b_env: dict[str, str], repeat: int) -> tuple[float, float]:
    """Median seconds of ``a`` and of ``b``, run in turns (a, b, a, b ...) after one untimed round
    of each, so a change in the shared machine's load falls on both alike."""
    run(a, a_env), run(b, b_env)
    pairs = [(run(a, a_env)[0], run(b, b_env)[0]) for _ in range(repeat)]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def publish_rounds(work: Path, size: int, repeat: int, chain_env: dict[str, str], env: dict[str, str]) -> tuple[float, float | None]:
    """Median seconds of ``elements publish-model`` and of ``ipfs add -r`` into a fresh Kubo repo,
    in turns (which goes first alternates between rounds), each round on a new model of ``size``
    bytes (a model published once is found on chain the next time, and nothing is sent): the page
    cache warm for both alike. The median CPU seconds (user + system) of each are printed on
    stderr: on a shared machine they move less than the wall times."""
    publish, ipfs = [], []
    publish_cpu, ipfs_cpu = [], []
    for i in range(repeat):
        model = make_model(work / f"publish-{i}", size, seed=10 + i)
        subprocess.run(["cat", str(model / "model.safetensors")], stdout=subprocess.DEVNULL, check=True)

        def publish_round() -> None:
            # A copy of the home as deployed, removed after the round: its blocks do not pile up on the shared disk.
            home = work / f"publish-home-{i}"
            shutil.copytree(chain_env["ELEMENTS_HOME"], home)
            seconds, cpu = cpu_of(lambda: run(elements("publish-model", model, "--license", "Apache-2.0", "--json"),
                                              {**chain_env, "ELEMENTS_HOME": str(home)})[0])
            publish.append(seconds)
            publish_cpu.append(cpu)
            shutil.rmtree(home)

        def ipfs_round() -> None:
            repo = work / f"ipfs-{i}"
            ipfs_env = {**env, "IPFS_PATH": str(repo)}
            subprocess.run([str(IPFS), "init", "-e", "--profile", "unixfs-v1-2025"], env=ipfs_env, capture_output=True, check=True)
            seconds, cpu = cpu_of(lambda: run([str(IPFS), "add", "-r", "-Q", str(model)], ipfs_env)[0])
            ipfs.append(seconds)
            ipfs_cpu.append(cpu)
            shutil.rmtree(repo)

        rounds = [publish_round, ipfs_round] if IPFS.exists() else [publish_round]
        for step in rounds if i % 2 == 0 else rounds[::-1]:
            step()
        shutil.rmtree(model)
    anchor = f", ipfs add -r {statistics.median(ipfs_cpu):.2f} s" if ipfs_cpu else ""
    print(f"publish-model CPU (user + system, median): elements {statistics.median(publish_cpu):.2f} s{anchor}", file=sys.stderr)
    return statistics.median(publish), statistics.median(ipfs) if ipfs else None


def cpu_of(timed: Callable[[], float]) -> tuple[float, float]:
    """``timed()``'s result and the CPU seconds (user + system) of the child processes it waited for."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = timed()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def elements(*args: object) -> list[str]:
    return [sys.executable, "-m", "registry", *map(str, args)]


def make_model(directory: Path, size: int, seed: int) -> Path:
    """A model directory of about ``size`` bytes of float32 weights in one safetensors file (64 MiB tensors)."""
    import numpy as np

    from registry.formats.safetensors_writer import write_safetensors

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tensors, left, index = {}, size, 0
    while left > 0:
        count = min(left, 64 * MiB) // 4
        tensors[f"layer.{index}.weight"] = rng.random(count, dtype=np.float32)
        left -= count * 4
        index += 1
    write_safetensors(directory / "model.safetensors", tensors)
    (directory / "config.json").write_text(json.dumps({"model_type": "bench", "seed": seed}))
    return directory


def python(code: str, *args: object) -> list[str]:
    return [sys.executable, "-c", code, *map(str, args)]


SHA256 = ("import hashlib,sys\nh=hashlib.sha256()\nf=open(sys.argv[1],'rb')\n"
          "while (b:=f.read(1<<22)): h.update(b)\nprint(h.hexdigest())")
BLAKE3 = ("import blake3,sys,pathlib\nfor p in sorted(pathlib.Path(sys.argv[1]).rglob('*')):\n"
          "  p.is_file() and print(blake3.blake3(max_threads=blake3.blake3.AUTO).update_mmap(p).hexdigest())")
#: ``cp -r SRC DST`` then ``sync`` of DST's files and DST itself (coreutils fsyncs each one named).
CP_SYNC = ["sh", "-c", 'cp -r "$1" "$2" && sync "$2"/* "$2"', "cp-sync"]
MODEL_SIGNING = ("import sys\nfrom model_signing import hashing\n"
                 "hashing.Config().use_shard_serialization(hashing_algorithm='blake3').hash(sys.argv[1])")


class Table:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, job: str, command: str, seconds: float | None, anchor: str, anchor_seconds: float | None,
            goal: float | None, in_process: float | None = None) -> None:
        ratio = seconds / anchor_seconds if seconds and anchor_seconds else None
        verdict = "-" if ratio is None or goal is None else ("met" if ratio <= goal else "missed")
        self.rows.append({"job": job, "elements": command, "seconds": seconds, "anchor": anchor, "anchor_seconds": anchor_seconds,
                          "ratio": ratio, "goal": goal, "verdict": verdict, "in_process": in_process})

    def markdown(self) -> str:
        lines = ["| job | Elements (process) | in process | anchor (process) | ratio | goal | verdict |",
                 "|---|---|---|---|---|---|---|"]
        f = lambda s: "missing" if s is None else f"{s:.2f} s"  # noqa: E731
        for r in self.rows:
            ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
            goal = "-" if r["goal"] is None else f"<= {r['goal']}x"
            inside = "-" if r["in_process"] is None else f(r["in_process"])
            lines.append(f"| {r['job']} | `{r['elements']}` {f(r['seconds'])} | {inside} | {r['anchor']} {f(r['anchor_seconds'])} | "
                         f"{ratio} | {goal} | {r['verdict']} |")
        return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=size_argument, default=size_argument("1GiB"), help="checkpoint size (default 1GiB; assemble uses twice it)")
    parser.add_argument("--quick", action="store_true", help="64 MiB / 128 MiB and fewer rounds (about a minute)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each timed process, median kept (default 3)")
    parser.add_argument("--work", type=Path, help="work in this directory and keep it (default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument("--only", nargs="+", choices=JOBS, default=list(JOBS), metavar="JOB",
                        help=f"run only these jobs ({', '.join(JOBS)}; default all)")
    args = parser.parse_args()
    size = 64 * MiB if args.quick else args.size
    repeat = 1 if args.quick else args.repeat
    work = args.work or Path(tempfile.mkdtemp(prefix="elements-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    table = Table()
    try:
        bench(table, work, size, repeat, set(args.only))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(table.rows, indent=2) if args.json else table.markdown())
    return 0


def bench(table: Table, work: Path, size: int, repeat: int, jobs: frozenset[str] | set[str] = frozenset(JOBS)) -> None:
    home = work / "home"
    env = environment(home)
    compile_checkout(env)
    gib = f"{size / (1 << 30):g} GiB" if size >= 1 << 30 else f"{size // MiB} MiB"

    # -- start-up -----------------------------------------------------------------------------
    if "startup" in jobs:
        small = make_model(work / "small", 1 * MiB, seed=1) / "model.safetensors"
        hf = tool("hf")
        hf_s = run([hf, "--help"], env, max(repeat, 5))[0] if hf else None
        for label, argv in (("--help", elements("--help")), ("id small", elements("id", small)), ("cid small", elements("cid", small))):
            table.add("start-up", f"elements {label}", run(argv, env, max(repeat, 5))[0], "`hf --help`", hf_s, 0.35)

    # -- id of a checkpoint ---------------------------------------------------------------------
    model = work / "model"
    b3_s = None
    if jobs & {"id", "verify"}:
        make_model(model, size, seed=2)
        weights = model / "model.safetensors"
        subprocess.run(["cat", str(weights)], stdout=subprocess.DEVNULL, check=True)  # page cache warm for every contender alike
        b3_s = run(python(BLAKE3, model), env, repeat)[0] if _has("blake3") else None
    if "id" in jobs:
        from registry.formats.content_id import content_id

        os.sync()
        start = time.perf_counter()
        content_id(weights)
        in_process = time.perf_counter() - start
        id_s = run(elements("id", weights), env, repeat)[0]
        sha_s = run(python(SHA256, weights), env, repeat)[0]
        table.add(f"id of {gib}", "elements id model.safetensors", id_s, "SHA-256 process", sha_s, 0.5, in_process)
        table.add(f"id of {gib}", "elements id model.safetensors", id_s, "raw BLAKE3 process", b3_s, 2.0, in_process)
    if not jobs & {"publish-model", "verify", "assemble"}:
        return

    # -- publish-model and verify on anvil --------------------------------------------------------
    from registry.chain.devnet import Anvil, find_anvil
    from registry.errors import ConfigError

    try:
        find_anvil()
    except ConfigError as exc:
        print(f"anvil missing ({exc}): publish-model, verify and assemble not measured", file=sys.stderr)
        return
    anvil = Anvil(log=work / "anvil.log").start()
    try:
        from registry.chain.registry import Registry

        chain = anvil.connect()
        Registry.deploy(chain, chain.dev_accounts[0], home)
        chain_env = environment(home, ELEMENTS_RPC_URL=anvil.url, ELEMENTS_PRIVATE_KEY=ANVIL_KEY)
        verify_env = environment(home, ELEMENTS_RPC_URL=anvil.url)
        if "publish-model" in jobs:
            publish_s, ipfs_s = publish_rounds(work, size, repeat, chain_env, env)
            table.add(f"publish-model of {gib}", "elements publish-model DIR", publish_s, "`ipfs add -r DIR` (fresh repo)", ipfs_s, 1.5)
        if "verify" in jobs:
            run(elements("publish-model", model, "--license", "Apache-2.0", "--json"), chain_env)  # what verify checks
            verify_argv = elements("verify", model, "--json")
            if _has("model_signing"):
                verify_s, ms_s = alternate(verify_argv, verify_env, python(MODEL_SIGNING, model), env, repeat)
            else:
                verify_s, ms_s = run(verify_argv, verify_env, repeat)[0], None
            table.add(f"verify of {gib}", "elements verify DIR", verify_s, "model-signing (BLAKE3, shards)", ms_s, 0.8)
            table.add(f"verify of {gib}", "elements verify DIR", verify_s, "raw BLAKE3 process", b3_s, 3.0)
        if "assemble" not in jobs:
            return

        # -- assemble a composition twice the size from the local store ----------------------------
        big = make_model(work / "big", 2 * size, seed=3)
        _, published = run(elements("publish-model", big, "--license", "Apache-2.0", "--json"), chain_env)
        composition = json.loads(published)["composition"]["record_id"]
        shutil.rmtree(big)  # what is assembled comes from the store, not from the original
        # The first assembly after publishing hashes every tensor and notes its elements as checked
        # (registry.storage.checked); the timed rounds then copy them unhashed (the default), flushed
        # to disk (default) or not (--no-fsync, as cp), or hash them all again (--verify-blocks).
        # Its output is kept as what cp copies: every contender, assemble and cp alike, then starts
        # right after a 2 GiB output was removed. On this VM memory that was freed a moment ago is
        # fast to touch and memory the host took back is slow: under load, cp of the output just
        # assembled (allocating 2 GiB more) took 2 to 6 s, cp of a kept copy right after a removal
        # 0.7 to 1.6 s.
        reference = work / "assembled-reference"
        first_s = run(elements("assemble", composition, "-o", reference), verify_env)[0]
        variants = {"": [], "--no-fsync": [], "--verify-blocks": []}
        cp_times: list[float] = []
        cp_sync_times: list[float] = []
        anchors = ((["cp", "-r", str(reference), "{copied}"], cp_times), (CP_SYNC + [str(reference), "{copied}"], cp_sync_times))

        def one_round(label: str, timed: bool, turn: int = 0) -> None:
            # cp as is (the anchor), and cp followed by a flush of what it wrote (``sync`` of
            # its files and directory: what a durable assembly does before its rename). Each round
            # starts the turn one contender later: on this VM the process that runs right after a
            # given one can find its memory slow to touch (docs/benchmarks.md), so every contender
            # takes every place in the order across the rounds.
            contenders: list[tuple[list[str], list[float], dict[str, str]]] = []
            for flag, times in variants.items():
                out = work / f"assembled-{label}"
                contenders.append((elements("assemble", composition, "-o", out, *([flag] if flag else [])), times, verify_env))
            for argv, into in anchors:
                contenders.append(([a.replace("{copied}", str(work / f"copied-{label}")) for a in argv], into, env))
            turn %= len(contenders)
            for argv, times, run_env in contenders[turn:] + contenders[:turn]:
                seconds = run(argv, run_env)[0]
                shutil.rmtree(argv[argv.index("-o") + 1] if "-o" in argv else argv[-1])  # each output removed before the next
                if timed:
                    times.append(seconds)
                    name = " ".join(a for a in argv[-2:] if a.startswith("--")) or ("cp -r + sync" if argv[0] == "sh" else "cp -r" if argv[0] == "cp" else "default")
                    print(f"assemble round {label}: {name} {seconds:.2f} s", file=sys.stderr)

        # One untimed round of every contender first (whichever ran first would pay for the memory
        # the publish and the first assembly left), then the timed rounds in turns.
        one_round("warm", timed=False)
        for i in range(repeat):
            one_round(str(i), timed=True, turn=i)
        shutil.rmtree(reference)
        cp_s, cp_sync_s = statistics.median(cp_times), statistics.median(cp_sync_times)
        size2 = f"{2 * size / (1 << 30):g} GiB" if size >= 1 << 29 else f"{2 * size // MiB} MiB"
        for flag, goal in (("", 1.2), ("--no-fsync", 1.2), ("--verify-blocks", None)):
            table.add(f"assemble of {size2}", f"elements assemble HASH -o DIR{' ' + flag if flag else ''}",
                      statistics.median(variants[flag]), "`cp -r` of the output", cp_s, goal)
            if flag != "--no-fsync":  # durable: beside a copy made as durable
                table.add(f"assemble of {size2}", f"elements assemble HASH -o DIR{' ' + flag if flag else ''}",
                          statistics.median(variants[flag]), "`cp -r` + `sync` of the output", cp_sync_s, goal)
        table.add(f"assemble of {size2}", "first elements assemble after publish-model (hashes, notes)", first_s,
                  "`cp -r` + `sync` of the output", cp_sync_s, None)
    finally:
        anvil.stop()


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    sys.exit(main())
