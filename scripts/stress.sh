#!/usr/bin/env bash
# Runs the whole test suite again and again under load, to find tests that fail by chance:
# each round runs `go test -race ./...` while two more copies of the packages that start
# servers and daemons run beside it (the load of a shared CI machine, and three test processes
# that start MariaDB, etcd, Consul and the daemons at once). A round passes only if all three
# pass. Logs of failed runs are kept under the printed directory.
#
# Usage: scripts/stress.sh [-n ROUNDS] [-p GOMAXPROCS] [-- PACKAGES...]
#   -n ROUNDS      rounds to run (default 10); stops at the end, not at the first failure
#   -p GOMAXPROCS  run every test process with this GOMAXPROCS (e.g. 1)
#   PACKAGES       the foreground packages (default ./...)
set -uo pipefail
cd "$(dirname "$0")/.."

rounds=10
procs=
while [ $# -gt 0 ]; do
  case "$1" in
    -n) rounds=$2; shift 2 ;;
    -p) procs=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "stress: unknown argument $1 (usage: scripts/stress.sh [-n ROUNDS] [-p GOMAXPROCS] [-- PACKAGES...])" >&2; exit 2 ;;
  esac
done
pkgs=("${@:-./...}")
heavy=(./pkg/cmd/... ./pkg/syncer ./internal/cmd/demo)
[ -n "$procs" ] && export GOMAXPROCS=$procs

out=$(mktemp -d /tmp/slardar-stress-XXXXXX)
echo "stress: $rounds rounds of go test -race ${pkgs[*]} beside 2 x ${heavy[*]}${procs:+, GOMAXPROCS=$procs}; logs in $out"
go test -race -count=1 -run '^$' ./... >/dev/null || { echo "stress: the tests do not build" >&2; exit 1; }

failed=0
for r in $(seq 1 "$rounds"); do
  start=$(date +%s)
  go test -race -count=1 -timeout 30m "${pkgs[@]}" >"$out/round$r-main.log" 2>&1 & main=$!
  go test -race -count=1 -timeout 30m "${heavy[@]}" >"$out/round$r-side1.log" 2>&1 & s1=$!
  go test -race -count=1 -timeout 30m "${heavy[@]}" >"$out/round$r-side2.log" 2>&1 & s2=$!
  verdict=ok
  for p in $main $s1 $s2; do wait "$p" || verdict=FAIL; done
  took=$(( $(date +%s) - start ))
  if [ "$verdict" = ok ]; then
    rm -f "$out/round$r-"*.log
    echo "round $r: ok (${took}s)"
  else
    failed=$((failed + 1))
    echo "round $r: FAIL (${took}s)"
    grep -h -E '^(--- FAIL|FAIL|panic:)|timed out' "$out/round$r-"*.log | sed 's/^/    /' | sort | uniq -c
  fi
done
echo "stress: $((rounds - failed)) of $rounds rounds passed; logs of the failed ones in $out"
[ "$failed" = 0 ]
