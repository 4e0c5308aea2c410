#!/usr/bin/env bash
# Fetch go-car's conformance fixtures (its testdata/) into .tools/go-car/<version>/testdata for
# tests/test_storage_car_conformance.py. They come from the Go module proxy, checked by Go
# against the checksum database and against the module hash pinned here; they are never
# committed to this repository. Idempotent; without Go it says so and the tests skip.
set -euo pipefail
GOCAR_VERSION="${GOCAR_VERSION:-v2.17.0}"
# `go mod download -json` reports this for v2.17.0 (the same as go.sum's line).
GOCAR_SUM="h1:zgjSxf/lQNYcQPX08cvb5rSdEY8sv5OOnQIsZhZMPx4="
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.tools/go-car/$GOCAR_VERSION"
if [ -f "$dest/testdata/sample-v1.car" ]; then
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "install_car_fixtures: Go is not installed; go-car conformance tests will be skipped" >&2
  exit 0
fi
info="$(go mod download -json "github.com/ipld/go-car/v2@$GOCAR_VERSION")"
dir="$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
sum="$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Sum"])')"
if [ "$GOCAR_VERSION" = "v2.17.0" ] && [ "$sum" != "$GOCAR_SUM" ]; then
  echo "install_car_fixtures: go-car $GOCAR_VERSION has module hash $sum, expected $GOCAR_SUM; refusing it" >&2
  exit 1
fi
mkdir -p "$dest"
tmp="$(mktemp -d "$dest/.testdata.XXXXXX")"
trap 'chmod -R u+w "$tmp" 2>/dev/null || true; rm -rf "$tmp"' EXIT
cp -r "$dir/testdata/." "$tmp/"
chmod -R u+w "$tmp"
rm -rf "$dest/testdata"
mv "$tmp" "$dest/testdata"
echo "install_car_fixtures: go-car $GOCAR_VERSION testdata in $dest/testdata" >&2
