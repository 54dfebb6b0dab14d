#!/usr/bin/env bash
# Builds Jaeger v2 (all-in-one) from the Go module proxy into .cache/bin/jaeger.
# The tools module (tools/jaeger) keeps Jaeger's large dependency tree out of
# traceport's go.mod. The binary is cached twice: in the clone's .cache/
# (git-ignored) and machine-wide in ${XDG_CACHE_HOME:-$HOME/.cache}/traceport/,
# keyed by Jaeger version and platform, so a fresh clone on a machine that
# built it once links or copies it instead of building it again (the build
# takes 8-25 minutes on 2 cores; the copy, a second).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
version=v1.76.0
out="$top/.cache/bin/jaeger-$version"
if [ -x "$out" ]; then echo "$out"; exit 0; fi
mkdir -p "$top/.cache/bin"

shared_dir="${XDG_CACHE_HOME:-$HOME/.cache}/traceport"
shared="$shared_dir/jaeger-$version-$(go env GOOS)-$(go env GOARCH)"
if [ -x "$shared" ]; then
  ln -f "$shared" "$out" 2>/dev/null || { cp "$shared" "$out.tmp.$$" && mv "$out.tmp.$$" "$out"; }
  echo "jaeger: reused the machine-wide build $shared" >&2
  echo "$out"
  exit 0
fi

cd "$top/tools/jaeger"
if ! grep -q "jaegertracing/jaeger " go.mod; then
  go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$version" >&2
fi
echo "jaeger: building $version from the Go module proxy (once per machine; 8-25 min on 2 cores)" >&2
go build -trimpath -o "$out.tmp.$$" github.com/jaegertracing/jaeger/cmd/jaeger >&2
mv "$out.tmp.$$" "$out"
# Best effort: a read-only or missing home only costs the next clone a build.
if mkdir -p "$shared_dir" 2>/dev/null && cp "$out" "$shared.tmp.$$" 2>/dev/null; then
  mv "$shared.tmp.$$" "$shared"
fi
echo "$out"
