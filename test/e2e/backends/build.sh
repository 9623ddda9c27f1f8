#!/usr/bin/env bash
# Builds the real trace and metrics backends the end-to-end test runs against, from the Go module proxy:
#   Prometheus v3.5.0 (module github.com/prometheus/prometheus v0.305.0, cmd/prometheus)
#   Jaeger v1.75.0    (module github.com/jaegertracing/jaeger v1.75.0, cmd/jaeger)
# Each lands in _build/<name>-<version>/<name>; an existing binary is reused, so only a cold run compiles.
# Both modules carry replace directives, which `go install module@version` refuses, so each is built from a
# throwaway module that requires it: the build list is the module's own requirements (minimal version
# selection), without its replace directives, which neither build needs.
set -euo pipefail
cd "$(dirname "$0")"
BUILD="$PWD/_build"
command -v go >/dev/null || { echo "backends: Go is required to build Prometheus and Jaeger (https://go.dev/dl/)" >&2; exit 2; }

# build NAME MODULE VERSION PACKAGE [TAGS]
build() {
  local name=$1 module=$2 version=$3 pkg=$4 tags=${5:-}
  local out="$BUILD/$name-$version/$name"
  if [[ -x "$out" ]]; then
    echo "backends: $name $version is built ($out)"
    return 0
  fi
  local work="$BUILD/$name-$version/src"
  rm -rf "$work" && mkdir -p "$work"
  echo "backends: building $name $version from $module (a cold build compiles for several minutes)"
  local start
  start=$(date +%s)
  (
    cd "$work"
    go mod init "mltrail.local/backend-$name" >/dev/null 2>&1
    printf 'package tools\n\nimport _ "%s"\n' "$pkg" > tools.go
    go get "$module@$version"
    go mod tidy >/dev/null 2>&1 || true
    go build -trimpath -tags "$tags" -ldflags "-s -w" -o "$out.tmp" "$pkg"
  )
  mv "$out.tmp" "$out"
  rm -rf "$work"
  echo "backends: built $name $version in $(( $(date +%s) - start ))s"
}

which=${1:-all}
if [[ $which == all || $which == prometheus ]]; then
  build prometheus github.com/prometheus/prometheus v0.305.0 github.com/prometheus/prometheus/cmd/prometheus
fi
if [[ $which == all || $which == jaeger ]]; then
  build jaeger github.com/jaegertracing/jaeger v1.75.0 github.com/jaegertracing/jaeger/cmd/jaeger
fi
