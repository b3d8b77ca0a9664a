# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables are used by the scripts that source this file
# demo-lib.sh - shared by demo.sh and demo-stop.sh (sourced, not run).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
DEMO=$ROOT/.demo
DEMO_RUN=$DEMO/run
DEMO_LOGS=$DEMO/logs
DEMO_BIN=$DEMO/bin

ZK_PORT=2181
KAFKA_PORT=19092
PPROXY_PORT=9613
PPROXY_ADMIN=127.0.0.1:19613
CPROXY_PORT=9713
CPROXY_ADMIN=127.0.0.1:19713
DEMO_GROUP=cg_demo_pull
ZK_ADDR=127.0.0.1:$ZK_PORT/carrera/v4/config

# Services in start order; demo-stop.sh stops them in reverse.
DEMO_SERVICES=(zookeeper kfakeserver pproxy cproxy)

# What each service's command line contains (guards against reused pids).
demo_cmd_marker() {
	case $1 in
	zookeeper) echo "$DEMO/zk/zoo.cfg" ;;
	*) echo "$DEMO_BIN/$1" ;;
	esac
}

step() { printf '\n==> %s\n' "$*"; }

# demo_pid NAME: the pid of a running demo service, or failure.
demo_pid() {
	local f=$DEMO_RUN/$1.pid pid state cmd
	[[ -f $f ]] || return 1
	pid=$(<"$f")
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	state=$(sed -E 's/^.*\) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
	[[ $state != Z ]] || return 1
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
	[[ $cmd == *"$(demo_cmd_marker "$1")"* ]] || return 1
	echo "$pid"
}

# spawn NAME CMD...: start CMD detached (own session, so a Ctrl-C in the
# terminal does not reach it), output to .demo/logs/NAME.log, pid file in
# .demo/run. setsid does not fork here (a script's background job is no
# process group leader), so $! is the service's pid.
spawn() {
	local name=$1
	shift
	local pre=(nohup)
	command -v setsid >/dev/null 2>&1 && pre=(setsid nohup)
	"${pre[@]}" "$@" >>"$DEMO_LOGS/$name.log" 2>&1 </dev/null &
	echo $! >"$DEMO_RUN/$name.pid"
	echo "$name started (pid $!, log ${DEMO_LOGS#"$ROOT"/}/$name.log)"
}

# wait_for NAME SECONDS PROBE...: poll PROBE until it succeeds; fail early
# with the log when the service died.
wait_for() {
	local name=$1 secs=$2 i
	shift 2
	for ((i = 0; i < secs * 20; i++)); do
		if ! demo_pid "$name" >/dev/null; then
			echo "$name died during start; last lines of its log:" >&2
			tail -n 30 "$DEMO_LOGS/$name.log" >&2 || true
			return 1
		fi
		if "$@"; then
			return 0
		fi
		sleep 0.05
	done
	echo "$name not ready after ${secs}s; last lines of its log:" >&2
	tail -n 30 "$DEMO_LOGS/$name.log" >&2 || true
	return 1
}

# Probes use bash's /dev/tcp (there is no nc on the build machines).
tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

zk_serving() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$ZK_PORT"
		printf srvr >&3
		timeout 1 cat <&3 | grep -q '^Mode: '
	) 2>/dev/null
}

# log_has NAME TEXT...: the service's log has a line containing every TEXT.
log_has() {
	local name=$1 line
	shift
	while IFS= read -r line; do
		local t all=1
		for t in "$@"; do
			[[ $line == *"$t"* ]] || { all=0; break; }
		done
		((all)) && return 0
	done <"$DEMO_LOGS/$name.log"
	return 1
}

http_ok() {
	if command -v curl >/dev/null 2>&1; then
		curl -fsS -o /dev/null --max-time 2 "http://$1$2" 2>/dev/null
		return
	fi
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 3 bash -c 'exec 3<>"/dev/tcp/${0%:*}/${0##*:}" &&
		printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$1" "$0" >&3 &&
		head -n1 <&3 | grep -q "^HTTP/[0-9.]* 200"' "$1" "$2" 2>/dev/null
}

# stop_service NAME SECONDS: SIGTERM, wait, then SIGKILL. Idempotent.
stop_service() {
	local name=$1 secs=$2 pid i
	if ! pid=$(demo_pid "$name"); then
		rm -f "$DEMO_RUN/$name.pid"
		echo "$name: not running"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < secs * 10; i++)); do
		demo_pid "$name" >/dev/null || break
		sleep 0.1
	done
	if demo_pid "$name" >/dev/null; then
		echo "$name (pid $pid) still running after ${secs}s; sending SIGKILL" >&2
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.2
	fi
	rm -f "$DEMO_RUN/$name.pid"
	echo "$name: stopped (pid $pid)"
}
