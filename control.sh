#!/usr/bin/env bash
# control.sh <pproxy|cproxy|chronos> start|stop|restart|status
#
# Runs a proxy (or the delay service) as a background daemon. Works in the repository (binaries from
# `make build` in bin/) and in a build.sh output directory (output/bin/). All
# paths are relative to the directory of this script (BASE):
#
#   bin/<name>             the binary
#   conf/carrera.yaml      pproxy's bootstrap file (DDMQ used this file name for
#                          both proxies; here cproxy has its own:)
#   conf/cproxy.yaml       cproxy's bootstrap file
#   conf/chronos.yaml      the delay service's configuration
#   run/<name>.pid         pid file
#   logs/<name>.out        the daemon's stdout/stderr; its own log goes where
#                          logDir in its conf says (blank logDir = stderr, so here)
#
# The daemon runs with BASE as its working directory, so relative paths in
# the conf resolve against BASE.
#
# start    refuses to start a second copy; waits until http://<adminAddr>/healthz
#          answers 200 (adminAddr from the conf, default 127.0.0.1:<port+10000>)
#          or the process dies (then prints the end of the log and exits 1)
# stop     SIGTERM, waits up to STOP_TIMEOUT seconds, then SIGKILL
# restart  stop, then start
# status   prints "running (pid N)" (exit 0) or "stopped" (exit 3)
#
# Environment: CONF (another bootstrap file), START_TIMEOUT (seconds, default
# 60), STOP_TIMEOUT (seconds, default 30).
set -euo pipefail

BASE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
START_TIMEOUT=${START_TIMEOUT:-60}
STOP_TIMEOUT=${STOP_TIMEOUT:-30}

usage() {
	echo "usage: $0 <pproxy|cproxy|chronos> start|stop|restart|status" >&2
	exit 2
}

die() {
	echo "$NAME: $*" >&2
	exit 1
}

(($# == 2)) || usage
NAME=$1
ACTION=$2
case $NAME in
pproxy) DEFAULT_CONF=$BASE/conf/carrera.yaml DEFAULT_PORT=9613 ;;
cproxy) DEFAULT_CONF=$BASE/conf/cproxy.yaml DEFAULT_PORT=9713 ;;
chronos) DEFAULT_CONF=$BASE/conf/chronos.yaml DEFAULT_PORT=2222 ;; # admin default 127.0.0.1:12222
*) usage ;;
esac
BIN=$BASE/bin/$NAME
CONF=${CONF:-$DEFAULT_CONF}
[[ $CONF == /* ]] || CONF=$PWD/$CONF # the daemon runs in BASE
PID_FILE=$BASE/run/$NAME.pid
LOG=$BASE/logs/$NAME.out

# yaml_value KEY: the value of a top-level "KEY: value" line of the conf,
# without quotes and trailing comment ("" when absent).
yaml_value() {
	sed -nE "s/^$1:[[:space:]]*//p" "$CONF" | head -n1 |
		sed -E 's/[[:space:]]+#.*$//; s/[[:space:]]+$//; s/^"(.*)"$/\1/'"; s/^'(.*)'\$/\\1/"
}

# admin_addr: host:port of the admin HTTP server, as the daemon computes it.
admin_addr() {
	local addr port host
	addr=$(yaml_value adminAddr)
	if [[ -z $addr ]]; then
		port=$(yaml_value port)
		port=${port:-$DEFAULT_PORT}
		if ((port + 10000 > 65535)); then
			addr=127.0.0.1:$((port - 10000))
		else
			addr=127.0.0.1:$((port + 10000))
		fi
	fi
	host=${addr%:*}
	case $host in
	"" | 0.0.0.0 | "[::]" | "::") addr=127.0.0.1:${addr##*:} ;; # wildcard: probe locally
	esac
	echo "$addr"
}

# healthy ADDR: /healthz answers 200.
healthy() {
	local addr=$1 host port
	if command -v curl >/dev/null 2>&1; then
		curl -fsS -o /dev/null --max-time 2 "http://$addr/healthz" 2>/dev/null
		return
	fi
	host=${addr%:*} port=${addr##*:}
	host=${host#[} host=${host%]}
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" &&
		printf "GET /healthz HTTP/1.0\r\nHost: %s:%s\r\n\r\n" "$0" "$1" >&3 &&
		head -n1 <&3 | grep -q "^HTTP/[0-9.]* 200"' "$host" "$port" 2>/dev/null
}

read_pid() {
	local pid
	[[ -f $PID_FILE ]] || return 1
	pid=$(<"$PID_FILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	echo "$pid"
}

# alive PID: the process exists and is not a zombie (a child that died
# during start stays a zombie until this script exits).
alive() {
	local pid=$1 state
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
	[[ -r /proc/$pid/stat ]] || return 0 # no procfs: trust kill -0
	state=$(sed -E 's/^.*\) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
	[[ $state != Z ]]
}

# running PID: alive and running our binary (guards against a stale pid
# file whose pid was reused by another process).
running() {
	local pid=$1 cmd
	alive "$pid" || return 1
	[[ -r /proc/$pid/cmdline ]] || return 0
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
	[[ $cmd == *"$BIN"* ]]
}

# show_log_tail: the output of the latest start (from the last "===" marker).
show_log_tail() {
	local from
	from=$(grep -n '^=== ' "$LOG" 2>/dev/null | tail -n1 | cut -d: -f1)
	echo "--- $LOG (last lines):" >&2
	tail -n +"${from:-1}" "$LOG" | tail -n 40 >&2 || true
}

start() {
	local pid addr i
	if pid=$(read_pid) && running "$pid"; then
		echo "$NAME is already running (pid $pid)" >&2
		exit 1
	fi
	[[ -x $BIN ]] || die "binary $BIN not found (make build, or build.sh)"
	[[ -f $CONF ]] || die "bootstrap file $CONF not found"
	addr=$(admin_addr)
	mkdir -p "$BASE/run" "$BASE/logs"
	echo "=== $(date '+%F %T') $0 $NAME start" >>"$LOG"
	cd "$BASE"
	nohup "$BIN" -conf "$CONF" >>"$LOG" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$PID_FILE"
	echo "$NAME starting (pid $pid, conf $CONF, log $LOG); waiting for http://$addr/healthz"
	for ((i = 0; i < START_TIMEOUT * 5; i++)); do
		if ! alive "$pid"; then # not running(): the child may not have exec'd yet
			rm -f "$PID_FILE"
			echo "$NAME exited during start" >&2
			show_log_tail
			exit 1
		fi
		if healthy "$addr"; then
			echo "$NAME is running (pid $pid)"
			return 0
		fi
		sleep 0.2
	done
	echo "$NAME (pid $pid) is still not healthy after ${START_TIMEOUT}s; left running" >&2
	show_log_tail
	exit 1
}

stop() {
	local pid i
	if ! pid=$(read_pid) || ! running "$pid"; then
		rm -f "$PID_FILE"
		echo "$NAME is not running"
		return 0
	fi
	echo "stopping $NAME (pid $pid): SIGTERM, waiting up to ${STOP_TIMEOUT}s"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
		running "$pid" || break
		sleep 0.1
	done
	if running "$pid"; then
		echo "$NAME (pid $pid) did not exit within ${STOP_TIMEOUT}s; sending SIGKILL" >&2
		kill -KILL "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			running "$pid" || break
			sleep 0.1
		done
	fi
	rm -f "$PID_FILE"
	echo "$NAME stopped"
}

status() {
	local pid
	if pid=$(read_pid) && running "$pid"; then
		echo "$NAME is running (pid $pid)"
		return 0
	fi
	echo "$NAME is stopped"
	return 3
}

case $ACTION in
start) start ;;
stop) stop ;;
restart)
	stop
	start
	;;
status) status ;;
*) usage ;;
esac
