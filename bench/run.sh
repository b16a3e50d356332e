#!/usr/bin/env bash
# Runs the L4 benchmark side by side (direct, slardar-proxy, nginx stream, HAProxy, the minimal Go
# proxy and the epoll and io_uring probes; the last row is idle memory per connection) and writes
# bench/out/l4-<date>.md; with -scripts, slardar-proxy ports with and without Lua hooks; with
# -tls (first argument), the TLS SNI benchmark (bench/out/tls-<date>.md); with -sync, store-sync's
# propagation latency (bench/out/sync-<date>.md); with -mysql, mysql-proxy vs slardar-proxy, HAProxy
# and Gaea over a MariaDB primary and replica (bench/out/mysql-<date>.md). Record the tables in
# bench/RESULTS.md with the command that made them.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/out
if [ "${1:-}" = "-tls" ]; then
  # sni-router vs sniproxy vs nginx ssl_preread vs HAProxy req.ssl_sni
  shift
  out=bench/out/tls-$(date +%Y%m%d-%H%M%S).md
  go run ./bench/cmd/tlsbench -router bin/sni-router "$@" | tee "$out"
  echo "written to $out" >&2
  exit 0
fi
if [ "${1:-}" = "-mysql" ]; then
  # sysbench through mysql-proxy, slardar-proxy, HAProxy and Gaea; install-deps --bench builds Gaea
  shift
  out=bench/out/mysql-$(date +%Y%m%d-%H%M%S).md
  go run ./bench/cmd/mysqlbench -mysql-proxy bin/mysql-proxy -slardar-proxy bin/slardar-proxy "$@" | tee "$out"
  echo "written to $out" >&2
  exit 0
fi
if [ "${1:-}" = "-sync" ]; then
  # store-sync propagation latency, Consul and etcd, 3 proxies
  shift
  scripts/install-deps.sh >/dev/null
  out=bench/out/sync-$(date +%Y%m%d-%H%M%S).md
  go run ./bench/cmd/syncbench "$@" | tee "$out"
  echo "written to $out" >&2
  exit 0
fi
out=bench/out/l4-$(date +%Y%m%d-%H%M%S).md
go run ./bench/cmd/l4bench -proxy bin/slardar-proxy "$@" | tee "$out"
echo "written to $out" >&2
