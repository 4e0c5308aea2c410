#!/usr/bin/env python3
"""Benchmark: our UnixFS CID computation against Kubo's `ipfs add --only-hash` and hashlib.

On one generated file (1 GiB by default, in a temporary directory), in one run:

- ``sha256``:   hashlib.sha256 over the file, single thread (the baseline a CPU gives);
- ``elements``: ``registry.storage.unixfs.add_file(path, profile=P)`` (the CID only);
- ``kubo``:     ``ipfs add --only-hash --quieter`` with the same profile, on a daemon-less repo.

Each runs in its own fresh process, the file warm in the page cache, in interleaved rounds
(so load from other processes falls on all alike), best of ``--repeat``; CPU seconds are
also shown (user + system), a figure that load on a shared machine does not skew;
peak memory is each process's peak resident set (VmHWM of /proc/PID/status, read by the
Python children themselves at their end and polled for Kubo; wait4's ru_maxrss would report
this script's own size, which a vfork'd child inherits). Goals checked at
the end: elements >= 2x Kubo's throughput, elements peak RSS < 200 MiB. The CIDs of
elements and Kubo must be equal, or the run fails.

    .venv/bin/python scripts/bench_storage.py                       # 1 GiB, unixfs-v1-2025
    .venv/bin/python scripts/bench_storage.py --size 256MiB --profile all --repeat 5
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry.storage.unixfs import PROFILES, get_profile  # noqa: E402
from scripts.bench_common import MiB, peak_rss, size_argument, warm  # noqa: E402

IPFS = ROOT / ".tools" / "bin" / "ipfs"
GOAL_RATIO = 2.0
GOAL_RSS_MIB = 200.0

# Child programs: each prints one JSON line {"seconds": ..., "result": ...}.
SHA256_CHILD = """
import hashlib, json, mmap, sys, time
sys.path.insert(0, sys.argv[2])
from scripts.bench_common import peak_rss
with open(sys.argv[1], "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
    t = time.perf_counter()
    c = time.process_time()
    h = hashlib.sha256()
    view = memoryview(m)
    step = 16 << 20
    for i in range(0, len(view), step):
        h.update(view[i:i + step])
        # drop hashed pages from our resident set, as the importer does
        m.madvise(mmap.MADV_DONTNEED, i, min(step, len(view) - i))
    digest = h.hexdigest()
    seconds = time.perf_counter() - t
    cpu = time.process_time() - c
    view.release()
print(json.dumps({"seconds": seconds, "cpu": cpu, "result": digest, "peak_rss": peak_rss()}))
"""

ELEMENTS_CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[3])
from registry.storage.unixfs import add_file
from scripts.bench_common import peak_rss
t = time.perf_counter()
c = time.process_time()
cid = add_file(sys.argv[1], profile=sys.argv[2])
seconds = time.perf_counter() - t
cpu = time.process_time() - c
print(json.dumps({"seconds": seconds, "cpu": cpu, "result": str(cid), "peak_rss": peak_rss()}))
"""


def run_child(argv: list[str], env: dict | None = None) -> tuple[float, str, float, float]:
    """Run a process; returns (wall seconds, its output, peak RSS MiB polled from /proc, CPU seconds)."""
    import threading

    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    peak = [0]
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            try:
                peak[0] = max(peak[0], peak_rss(proc.pid))
            except (OSError, ValueError, IndexError):
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)  # wait4: the child's own CPU time
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{argv[0]} failed: {err.decode()[-800:]}")
    return wall, out.decode().strip(), peak[0] / MiB, usage.ru_utime + usage.ru_stime


def generate(path: Path, size: int) -> None:
    block = MiB
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(block, left)
            f.write(os.urandom(n))
            left -= n


def kubo_repo(base: Path, profile: str) -> tuple[dict, list[str]]:
    """A daemon-less repo; profiles Kubo knows are applied at init, `cidv1` by flag."""
    repo = base / f"repo-{profile}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
    env.update(IPFS_PATH=str(repo), IPFS_TELEMETRY="off", DO_NOT_TRACK="1")
    init_profiles = "test" + ("" if profile == "cidv1" else f",{profile}")
    if not repo.exists():
        subprocess.run([str(IPFS), "init", "--empty-repo", f"--profile={init_profiles}"], env=env, check=True, capture_output=True)
    flags = ["--cid-version=1"] if profile == "cidv1" else []
    return env, flags


def bench_profile(path: Path, profile: str, repeat: int, base: Path) -> dict:
    size = path.stat().st_size
    py = sys.executable
    tools = {
        "sha256": ([py, "-c", SHA256_CHILD, str(path), str(ROOT)], None, True),
        "elements": ([py, "-c", ELEMENTS_CHILD, str(path), profile, str(ROOT)], None, True),
    }
    if IPFS.is_file():
        env, flags = kubo_repo(base, profile)
        # Kubo's time is its whole process (its start is ~30 ms; it has no inner timer).
        tools["kubo"] = ([str(IPFS), "add", "--only-hash", "--quieter", *flags, str(path)], env, False)
    runs: dict[str, list] = {name: [] for name in tools}
    # Interleaved rounds, so that load from other processes falls on every tool alike.
    for _ in range(repeat):
        for name, (argv, env, inner) in tools.items():
            wall, out, rss, cpu = run_child(argv, env)
            if inner:
                answer = json.loads(out)
                seconds, result, cpu = answer["seconds"], answer["result"], answer["cpu"]
                rss = max(rss, answer["peak_rss"] / MiB)
            else:
                seconds, result = wall, out
            runs[name].append((seconds, result, rss, cpu))
    rows = {}
    for name, samples in runs.items():
        seconds = min(r[0] for r in samples)
        rows[name] = {
            "seconds": seconds,
            "mib_per_s": size / MiB / seconds,
            "cpu_seconds": min(r[3] for r in samples),
            "peak_rss_mib": max(r[2] for r in samples),
            "result": samples[0][1],
        }
    if "kubo" in rows and rows["kubo"]["result"] != rows["elements"]["result"]:
        raise SystemExit(f"CID mismatch for {profile}: elements {rows['elements']['result']} != kubo {rows['kubo']['result']}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=size_argument, default="1GiB", help="file size (default 1GiB)")
    parser.add_argument("--profile", default="unixfs-v1-2025", help=f"one of {', '.join(PROFILES)}, or 'all'")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is kept (default 3)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the file (default: a temporary directory)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    profiles = list(PROFILES) if args.profile == "all" else [get_profile(args.profile).name]

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-storage-") as tmp:
        base = Path(tmp)
        path = base / "data.bin"
        print(f"generating {args.size / MiB:.0f} MiB of random bytes in {path} ...", file=sys.stderr)
        generate(path, args.size)
        warm(path)
        results = {p: bench_profile(path, p, args.repeat, base) for p in profiles}

    if args.json:
        print(json.dumps({"size": args.size, "cpus": os.cpu_count(), "results": results}, indent=2))
    ok = True
    print(f"\nfile {args.size / MiB:.0f} MiB, {os.cpu_count()} CPUs, best of {args.repeat}")
    for profile, rows in results.items():
        print(f"\nprofile {profile}")
        print(f"  {'':10} {'seconds':>8} {'MiB/s':>8} {'CPU s':>7} {'peak RSS MiB':>13}  result")
        for name, row in rows.items():
            print(
                f"  {name:10} {row['seconds']:8.3f} {row['mib_per_s']:8.0f} {row['cpu_seconds']:7.3f} "
                f"{row['peak_rss_mib']:13.1f}  {row['result']}"
            )
        ours = rows["elements"]
        print(f"  elements / sha256 single thread: {ours['mib_per_s'] / rows['sha256']['mib_per_s']:.2f}x")
        if "kubo" in rows:
            ratio = ours["mib_per_s"] / rows["kubo"]["mib_per_s"]
            goal = ratio >= GOAL_RATIO
            ok &= goal
            print(f"  elements / kubo only-hash:       {ratio:.2f}x  (goal >= {GOAL_RATIO}x: {'met' if goal else 'NOT met'})")
            print(f"  CPU time, kubo / elements:       {rows['kubo']['cpu_seconds'] / ours['cpu_seconds']:.2f}x")
        else:
            print("  kubo: .tools/bin/ipfs is absent (scripts/install_kubo.sh); no comparison")
        rss_ok = ours["peak_rss_mib"] < GOAL_RSS_MIB
        ok &= rss_ok
        print(f"  elements peak RSS {ours['peak_rss_mib']:.1f} MiB (goal < {GOAL_RSS_MIB:.0f} MiB: {'met' if rss_ok else 'NOT met'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
