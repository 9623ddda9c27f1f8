#!/usr/bin/env bash
# Builds the mltrail collector from builder-config.yaml with ocb into collector/_build/mltrail-collector.
# Cached: skipped when the binary exists and the manifest's hash matches the one recorded at build time.
set -euo pipefail
cd "$(dirname "$0")"
OCB_VERSION=v0.161.0
BUILD=_build
BIN="$BUILD/mltrail-collector"
STAMP="$BUILD/manifest.sha256"
want="$(sha256sum builder-config.yaml | cut -d' ' -f1)"
if [[ -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  echo "collector: $BIN is up to date with builder-config.yaml"
  exit 0
fi
command -v go >/dev/null || { echo "collector: Go is required to build the collector (https://go.dev/dl/)" >&2; exit 2; }
mkdir -p "$BUILD/bin"
export GOBIN="$PWD/$BUILD/bin"
if [[ ! -x "$GOBIN/builder" ]] || ! "$GOBIN/builder" version 2>/dev/null | grep -q "${OCB_VERSION#v}"; then
  echo "collector: installing ocb $OCB_VERSION"
  go install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION"
fi
echo "collector: building (a cold build downloads modules and compiles for several minutes)"
start=$(date +%s)
"$GOBIN/builder" --config builder-config.yaml
cp "$BUILD/src/mltrail-collector" "$BIN"
echo "$want" > "$STAMP"
echo "collector: built $BIN in $(( $(date +%s) - start ))s"
