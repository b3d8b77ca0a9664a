#!/usr/bin/env bash
# build.sh [pproxy|cproxy|chronos ...] - build the daemons for deployment into output/:
#
#   output/bin/<binary>   pproxy, cproxy, chronos
#   output/conf/          a copy of conf/ (carrera.yaml for pproxy, cproxy.yaml for cproxy)
#   output/control.sh     control.sh <pproxy|cproxy|chronos> start|stop|restart|status
#
# Without arguments everything is built and output/ is recreated; with
# arguments only those binaries are rebuilt (conf/ and control.sh are always
# refreshed). The version comes from `git describe --always --dirty`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
OUT=output
VERSION=$(git describe --always --dirty 2>/dev/null || echo unknown)

if (($# == 0)); then
	targets=(pproxy cproxy chronos)
	rm -rf "$OUT"
else
	targets=("$@")
fi
for t in "${targets[@]}"; do
	case $t in
	pproxy | cproxy | chronos) ;;
	*)
		echo "build.sh: unknown target $t (pproxy, cproxy or chronos)" >&2
		exit 2
		;;
	esac
	if [[ ! -d cmd/$t ]]; then
		echo "build.sh: cmd/$t does not exist yet" >&2
		exit 1
	fi
done

mkdir -p "$OUT/bin"
for t in "${targets[@]}"; do
	echo "go build $t ($VERSION)"
	go build -ldflags "-X main.version=$VERSION" -o "$OUT/bin/$t" "./cmd/$t"
done
rm -rf "$OUT/conf"
cp -R conf "$OUT/conf"
cp control.sh "$OUT/control.sh"
chmod +x "$OUT/control.sh"

echo "built into $OUT/:"
(cd "$OUT" && find bin conf control.sh -type f | sort | sed 's/^/  /')
