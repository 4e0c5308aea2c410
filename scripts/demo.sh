#!/usr/bin/env bash
# One command from a fresh checkout to the whole story: set up, then `elements demo`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh"
exec "$root/.venv/bin/elements" demo "$@"
