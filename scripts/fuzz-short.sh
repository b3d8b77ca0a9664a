#!/usr/bin/env bash
# fuzz-short.sh - run every Fuzz target of the module for FUZZTIME (default
# 10s) each (`make fuzz-short`). Go can fuzz only one target per run, so the
# targets are found by name and run one after the other.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}

mapfile -t files < <(grep -rlE --include='*_test.go' --exclude-dir=.demo --exclude-dir=gen-go \
	--exclude-dir=.git '^func Fuzz[A-Za-z0-9_]*\(' . | sort)
if ((${#files[@]} == 0)); then
	echo "no Fuzz targets found"
	exit 0
fi

n=0
for f in "${files[@]}"; do
	dir=$(dirname "$f")
	while read -r name; do
		echo "== $dir $name ($FUZZTIME)"
		"$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$dir"
		n=$((n + 1))
	done < <(sed -nE 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/p' "$f")
done
echo "fuzzed $n targets"
