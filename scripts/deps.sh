#!/usr/bin/env bash
# deps.sh - install everything `make test` and `make demo` need on a fresh
# Debian 12 machine, and nothing more.
#
#   - Debian packages: zookeeper (server jar /usr/share/java/zookeeper.jar,
#     started with a plain `java` command by the tests and the demo) and
#     thrift-compiler (0.17, used by `make generate` / `make check-generate`).
#   - Go modules: `go mod download` (fills the module cache; no go.mod change).
#
# Idempotent: when everything is present it only checks and returns quickly.
# apt-get update runs at most once, and only when a package is missing.
# Must run as root (or with sudo available) when a package has to be installed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'deps: %s\n' "$*"; }

ZK_JAR=/usr/share/java/zookeeper.jar
SLF4J_JAR=/usr/share/java/slf4j-simple.jar

missing=()
if ! command -v thrift >/dev/null 2>&1; then
	missing+=(thrift-compiler)
fi
if [[ ! -f $ZK_JAR || ! -f $SLF4J_JAR ]] || ! command -v java >/dev/null 2>&1; then
	missing+=(zookeeper)
fi

if ((${#missing[@]} > 0)); then
	sudo=()
	if ((EUID != 0)); then
		if command -v sudo >/dev/null 2>&1; then
			sudo=(sudo)
		else
			log "missing ${missing[*]}; run this script as root (apt-get install -y ${missing[*]})" >&2
			exit 1
		fi
	fi
	log "missing: ${missing[*]}"
	log "apt-get update"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
	log "apt-get install -y ${missing[*]}"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
else
	log "thrift, java and the zookeeper jar are present"
fi

want_thrift="0.17.0"
have_thrift="$(thrift --version 2>/dev/null | awk '{print $3}')"
if [[ $have_thrift != "$want_thrift" ]]; then
	# Generated code is checked in; another compiler version makes
	# `make check-generate` report a diff.
	log "warning: thrift $have_thrift installed, gen-go/ was generated with $want_thrift" >&2
fi

log "go mod download"
go mod download
log "ok"
