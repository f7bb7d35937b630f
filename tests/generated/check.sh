#!/bin/sh
# check.sh - the files generated from a daemon's key table have not drifted from it (ctest:
# generated_<daemon>): the shipped example configuration equals what the binary prints; its
# "#key = default" lines, uncommented, load and give exactly the defaults; the man page built
# from it lists every key and renders without a groff warning.
#
# Usage: tests/generated/check.sh BINARY EXAMPLE_FILE MAN_PAGE
set -eu
bin=$1 example=$2 man=$3
name=$(basename "$bin")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$bin" --print-example-config >"$tmp/generated.conf"
diff -u "$example" "$tmp/generated.conf" >"$tmp/diff" ||
  { cat "$tmp/diff" >&2; fail "$example differs from '$name --print-example-config': regenerate it with
  $name --print-example-config > $example"; }

# Every key of the table (the kafka.* examples aside), uncommented at its default.
sed -n 's/^#\([a-z][a-z0-9_.]*\) = /\1 = /p' "$example" | grep -v '^kafka\.' >"$tmp/uncommented.conf"
nkeys=$(wc -l <"$tmp/uncommented.conf")
[ "$nkeys" -ge 10 ] || fail "only $nkeys keys in $example"
# The keys the daemon refuses to start without (--print-config fails as the daemon would).
required="-X kafka.bootstrap.servers=localhost:9092"
[ "$name" = inboxd ] && required="$required -X inbox.topics=example"
# shellcheck disable=SC2086
env -i PATH="$PATH" "$bin" $required --print-config >"$tmp/defaults" 2>&1 ||
  fail "--print-config with the defaults: $(cat "$tmp/defaults")"
env -i PATH="$PATH" "$bin" -c "$tmp/uncommented.conf" $required --print-config \
  >"$tmp/loaded" 2>&1 || fail "$example with every key uncommented does not load: $(cat "$tmp/loaded")"
diff -u "$tmp/defaults" "$tmp/loaded" >&2 || fail "$example's defaults differ from the binary's"

[ -s "$man" ] || fail "$man was not built"
cut -d' ' -f1 "$tmp/uncommented.conf" >"$tmp/keys"
while read -r key; do
  grep -qxF ".B $key" "$man" || fail "$man does not describe $key"
done <"$tmp/keys"
warnings=$(groff -man -Tutf8 -ww -z "$man" 2>&1)
[ -z "$warnings" ] || fail "groff warns about $man: $warnings"
grep -q '@KEYS@\|@VERSION@' "$man" && fail "$man still holds a template placeholder"
echo "$name: $example and $man match the key table ($nkeys keys)"
