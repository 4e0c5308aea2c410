#!/usr/bin/env bash
# Install the pinned IPFS Cluster (ipfs-cluster-service, ipfs-cluster-ctl) into .tools/bin, built
# from the Go module proxy the way scripts/install_kubo.sh builds Kubo: the module is downloaded
# and built in its own module context, so its go.mod (replace/exclude directives included) is
# honoured. The cluster is only needed by the pinning tests (tests/cluster_fixtures.py).
# Idempotent: does nothing when the pinned version is already installed.
set -euo pipefail
CLUSTER_VERSION="${CLUSTER_VERSION:-v1.1.0}"
root="$(cd "$(dirname "$0")/.." && pwd)"
bindir="$root/.tools/bin"
service="$bindir/ipfs-cluster-service"
ctl="$bindir/ipfs-cluster-ctl"
installed() {
  [ -x "$service" ] && [ -x "$ctl" ] \
    && "$service" --version 2>/dev/null | grep -q "${CLUSTER_VERSION#v}" \
    && "$ctl" --version 2>/dev/null | grep -q "${CLUSTER_VERSION#v}"
}
if installed; then
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "install_cluster: Go is not installed; IPFS Cluster tests will be skipped (install Go >= 1.23 to run them)" >&2
  exit 0
fi
echo "install_cluster: building IPFS Cluster $CLUSTER_VERSION into $bindir (a few minutes, once)" >&2
dir="$(go mod download -json "github.com/ipfs-cluster/ipfs-cluster@$CLUSTER_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$dir/." "$work/"
chmod -R u+w "$work"
mkdir -p "$bindir"
(cd "$work" && go build -trimpath -o "$service.incomplete" ./cmd/ipfs-cluster-service \
  && go build -trimpath -o "$ctl.incomplete" ./cmd/ipfs-cluster-ctl)
mv "$service.incomplete" "$service"
mv "$ctl.incomplete" "$ctl"
"$service" --version >&2
