#!/usr/bin/env bash
# Builds Jaeger v2 (all-in-one) from the Go module proxy into .cache/bin/jaeger.
# The tools module (tools/jaeger) keeps Jaeger's large dependency tree out of
# traceport's go.mod. The binary is cached: a second run is instant.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
version=v1.76.0
out="$top/.cache/bin/jaeger-$version"
if [ -x "$out" ]; then echo "$out"; exit 0; fi
mkdir -p "$top/.cache/bin"
cd "$top/tools/jaeger"
if ! grep -q "jaegertracing/jaeger " go.mod; then
  go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$version" >&2
fi
go build -trimpath -o "$out.tmp" github.com/jaegertracing/jaeger/cmd/jaeger >&2
mv "$out.tmp" "$out"
echo "$out"
