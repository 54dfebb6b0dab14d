#!/usr/bin/env bash
# Builds h2spec (the HTTP/2 conformance suite) from the Go module proxy into
# .cache/bin/h2spec-<version>. The tools module (tools/h2spec) keeps its
# dependencies out of traceport's go.mod. The binary is cached: a second run
# is instant.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
version=v2.2.1
out="$top/.cache/bin/h2spec-$version"
if [ -x "$out" ]; then echo "$out"; exit 0; fi
mkdir -p "$top/.cache/bin"
cd "$top/tools/h2spec"
go build -trimpath -o "$out.tmp" github.com/summerwind/h2spec/cmd/h2spec >&2
mv "$out.tmp" "$out"
echo "$out"
