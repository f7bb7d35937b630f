#!/bin/sh
# Generates a man page: BINARY's key table (BINARY --print-man-keys) and version put into the
# template's @KEYS@ and @VERSION@ lines. Run by the build (CMakeLists.txt, target man).
#
# Usage: scripts/man.sh BINARY TEMPLATE OUTPUT
set -eu
[ $# -eq 3 ] || { echo "usage: $0 BINARY TEMPLATE OUTPUT" >&2; exit 2; }
bin=$1 template=$2 out=$3
version=$("$bin" --version | awk '{print $2}')
keys=$(mktemp)
trap 'rm -f "$keys" "$out.tmp"' EXIT
"$bin" --print-man-keys >"$keys"
mkdir -p "$(dirname "$out")"
awk -v keys="$keys" -v version="$version" '
  $0 == "@KEYS@" { while ((getline line < keys) > 0) print line; next }
  { gsub(/@VERSION@/, version); print }
' "$template" >"$out.tmp"
mv "$out.tmp" "$out"
