#!/usr/bin/env bash
# demo-stop.sh - stop the stack of scripts/demo.sh (`make demo-stop`):
# cproxy, then pproxy, then kfakeserver, then ZooKeeper, each by its pid file in
# .demo/run (SIGTERM, wait, SIGKILL as a last resort). Idempotent; data in
# .demo/ is kept until the next `make demo`.
set -euo pipefail

# shellcheck source=scripts/demo-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/demo-lib.sh"

stop_service cproxy 30
stop_service pproxy 30
stop_service kfakeserver 10
stop_service zookeeper 10
