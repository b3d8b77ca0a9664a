#!/usr/bin/env bash
# thrift-gen.sh VERSION GENOPTS OUTDIR IDL... - generate Go code from the IDL
# files into OUTDIR (used by `make generate` and `make check-generate`).
# Clears OUTDIR/carrera first so that removed definitions disappear.
set -euo pipefail

if (($# < 4)); then
	echo "usage: $0 THRIFT_VERSION GENOPTS OUTDIR IDL..." >&2
	exit 2
fi
want=$1 gen=$2 out=$3
shift 3

if ! command -v thrift >/dev/null 2>&1; then
	echo "thrift compiler not found: run scripts/deps.sh (apt-get install -y thrift-compiler)" >&2
	exit 1
fi
have=$(thrift --version | awk '{print $3}')
if [[ $have != "$want" ]]; then
	echo "thrift $want required (checked-in gen-go/ was generated with it), found $have" >&2
	exit 1
fi

rm -rf "$out/carrera"
mkdir -p "$out"
for idl in "$@"; do
	echo "thrift --gen $gen -out $out $idl"
	thrift --gen "$gen" -out "$out" "$idl"
done
