#!/usr/bin/env bash
# Install the pinned Kubo (go-ipfs) into .tools/bin/ipfs, built from the Go module proxy.
#
# `go install github.com/ipfs/kubo/cmd/ipfs@vX` is refused for Kubo >= 0.42 because its go.mod
# carries exclude/replace directives, so the module is downloaded from the proxy and built in
# its own module context instead (same source, same result). Idempotent: does nothing when the
# pinned version is already installed.
set -euo pipefail
KUBO_VERSION="${KUBO_VERSION:-v0.42.0}"
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.tools/bin/ipfs"
if [ -x "$bin" ] && "$bin" version 2>/dev/null | grep -q "${KUBO_VERSION#v}"; then
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "install_kubo: Go is not installed; Kubo tests will be skipped (install Go >= 1.25 to run them)" >&2
  exit 0
fi
echo "install_kubo: building Kubo $KUBO_VERSION into $bin (a few minutes, once)" >&2
dir="$(go mod download -json "github.com/ipfs/kubo@$KUBO_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$dir/." "$work/"
chmod -R u+w "$work"
mkdir -p "$root/.tools/bin"
(cd "$work" && go build -trimpath -o "$bin.incomplete" ./cmd/ipfs)
mv "$bin.incomplete" "$bin"
"$bin" version >&2
