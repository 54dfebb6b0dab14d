#!/usr/bin/env bash
# Runs every fuzz target for the given time each (default 60s) and prints the
# total executions: `make fuzz FUZZTIME=5m`.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-60s}
total=0
for pkg in ./translate ./receiver ./exporter ./bench ./bench/sink; do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
    out=$(go test -run "^$" -fuzz "^${target}\$" -fuzztime "$t" -fuzzminimizetime 3s "$pkg" 2>&1) || { echo "$out"; exit 1; }
    execs=$(echo "$out" | grep -oE 'execs: [0-9]+' | tail -1 | grep -oE '[0-9]+' || echo 0)
    echo "$pkg $target: $execs executions"
    total=$((total + execs))
  done
done
echo "total: $total executions"
