#!/usr/bin/env bash
# Installs what the tests, the demo and the benchmarks need, idempotently:
#   - MariaDB server, client and test suite (mysql-test-run, for make conformance), etcd,
#     sysbench (and the benchmark peers) from Debian;
#   - Consul, which Debian does not package, built once from its Go module and cached
#     under ${XDG_CACHE_HOME:-~/.cache}/slardar/consul-<version>/consul;
#   - with --bench, Gaea (XiaoMi's MySQL proxy) built once from bench/gaea (its module pinned
#     there) and cached under ${XDG_CACHE_HOME:-~/.cache}/slardar/gaea-<version>/gaea.
# Usage: scripts/install-deps.sh [--no-consul] [--bench]
# Prints the path of the Consul binary on its last line (when built).
set -euo pipefail

CONSUL_VERSION=${CONSUL_VERSION:-1.20.6}
want_consul=1
want_bench=0
for a in "$@"; do
  case "$a" in
    --no-consul) want_consul=0 ;;
    --bench) want_bench=1 ;;
    *) echo "install-deps: unknown argument $a" >&2; exit 2 ;;
  esac
done

log() { printf 'install-deps: %s\n' "$*" >&2; }

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- Debian packages -------------------------------------------------------------------------
pkgs=(mariadb-server mariadb-client mariadb-test etcd-server etcd-client sysbench netcat-openbsd xxd openssl curl)
[ "$want_bench" = 1 ] && pkgs+=(haproxy nginx libnginx-mod-stream iperf3 sniproxy)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # The packages' own services are not wanted: tests start their own servers.
  sudo_ env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts a packaged daemon on install where it can; the tests never use it. Only a
  # service whose package this run just installed is stopped: a developer's own MariaDB or
  # nginx, installed before, is left as it is.
  for p in "${missing[@]}"; do
    case "$p" in
      mariadb-server) svc=mariadb ;;
      etcd-server) svc=etcd ;;
      haproxy | nginx | sniproxy) svc=$p ;;
      *) continue ;;
    esac
    if command -v service >/dev/null 2>&1; then sudo_ service "$svc" stop >/dev/null 2>&1 || true; fi
  done
fi

# --- Gaea, built from its Go module (benchmarks only) -----------------------------------------
if [ "$want_bench" = 1 ]; then
  gaea_version=$(sed -n 's/^require github.com\/XiaoMi\/Gaea \(v[^ ]*\)$/\1/p' "$(dirname "$0")/../bench/gaea/go.mod")
  gaea=${XDG_CACHE_HOME:-$HOME/.cache}/slardar/gaea-$gaea_version/gaea
  if [ -x "$gaea" ]; then
    log "gaea $gaea_version cached at $gaea"
  else
    log "building gaea $gaea_version from its Go module (about a minute, once per machine)"
    mkdir -p "$(dirname "$gaea")"
    (cd "$(dirname "$0")/../bench/gaea" && go build -trimpath -o "$gaea.tmp" github.com/XiaoMi/Gaea/cmd/gaea)
    mv "$gaea.tmp" "$gaea"
    log "gaea cached at $gaea"
  fi
fi

# --- Consul, built from its Go module --------------------------------------------------------
if [ "$want_consul" = 1 ]; then
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/slardar/consul-$CONSUL_VERSION
  bin=$cache/consul
  if [ -x "$bin" ] && "$bin" version 2>/dev/null | grep -q "v$CONSUL_VERSION"; then
    log "consul $CONSUL_VERSION cached at $bin"
  else
    log "building consul $CONSUL_VERSION from its Go module (about 7 minutes on 2 cores, once per machine)"
    work=$(mktemp -d)
    trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
    export GOFLAGS=-mod=mod
    dir=$(cd "$work" && go mod download -json "github.com/hashicorp/consul@v$CONSUL_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
    [ -n "$dir" ] || { log "go mod download of consul failed"; exit 1; }
    cp -r "$dir" "$work/src"
    chmod -R u+w "$work/src"
    cd "$work/src"
    # The module's replace lines point at sibling directories of its repository, which a module
    # download does not have; the published versions of those modules are used instead.
    for r in $(sed -n 's/^[[:space:]]*\(github.com\/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\.\/.*/\1/p' go.mod); do
      go mod edit -dropreplace="$r"
    done
    go mod tidy >/dev/null
    mkdir -p "$cache"
    go build -trimpath -ldflags "-X github.com/hashicorp/consul/version.GitCommit=module -X github.com/hashicorp/consul/version.Version=$CONSUL_VERSION -X github.com/hashicorp/consul/version.VersionPrerelease=" -o "$bin.tmp" .
    mv "$bin.tmp" "$bin"
    cd /
    log "consul cached at $bin"
  fi
  echo "$bin"
fi
