#!/usr/bin/env bash
# Runs the L4 benchmark side by side (direct, slardar-proxy, nginx stream, HAProxy) and writes
# bench/out/l4-<date>.md. Record the table in bench/RESULTS.md with this command.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/out
out=bench/out/l4-$(date +%Y%m%d-%H%M%S).md
go run ./bench/cmd/l4bench -proxy bin/slardar-proxy "$@" | tee "$out"
echo "written to $out" >&2
