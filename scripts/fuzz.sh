#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan) and runs each for a
# bounded time; exits non-zero when one of them crashed, leaked or found undefined behaviour.
#
# Usage: scripts/fuzz.sh [TARGET...]          (default: every tests/fuzz/*/fuzz_*.c)
#
# Targets and their seeds (tests/fuzz/<component>/fuzz_<name>.c):
#   fuzz_w2j_decode      wal2json records -> decoder -> router; seeds: the lines of
#                        tests/data/wal2json/outbox.jsonl (real captures), dictionary w2j.dict
#   fuzz_pgo_decode      pgoutput message streams -> decoder -> router; seeds: the capture
#                        tests/data/pgoutput/stream.pgo, each message framed by its length
#                        (2 bytes, big-endian): the whole stream (messages up to 4000 bytes)
#                        and its first 4, 12, 24 messages
#   fuzz_config          config files, -X key=value, environment, --print-config; seeds:
#                        tests/data/config/*.conf
#   fuzz_inbox_message   inbox message ids and Kafka headers (JSON, HTTP header lines); seeds:
#                        tests/fuzz/seeds/fuzz_inbox_message
#   fuzz_http_response   inboxd's HTTP push responses (status, body, Retry-After) and
#                        deliver.headers; seeds: tests/fuzz/seeds/fuzz_http_response
# The corpus of each target grows in $BUILD/corpus/<target> and is kept between runs; a
# crash is written to $BUILD/crashes/<target>-crash-<sha1>. Rerun one input with
# $BUILD/<target> <file>. Every crash found becomes a unit test (tests/unit).
#
# Environment:
#   OUTBOXD_FUZZ_SECONDS    seconds per target (default 20)
#   OUTBOXD_FUZZ_BUILD_DIR  build dir (default <repo>/build-fuzz)
#   OUTBOXD_FUZZ_CC         compiler (default clang-14, else clang)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${OUTBOXD_FUZZ_BUILD_DIR:-$REPO/build-fuzz}
SECONDS_PER=${OUTBOXD_FUZZ_SECONDS:-20}
CC_FUZZ=${OUTBOXD_FUZZ_CC:-$(command -v clang-14 || command -v clang || true)}

say() { printf 'fuzz: %s\n' "$*"; }
die() { printf 'fuzz: ERROR: %s\n' "$*" >&2; exit 1; }

[[ -n $CC_FUZZ ]] || die "clang not found; run scripts/install-deps.sh (clang-14, libclang-rt-14-dev)"
[[ $SECONDS_PER =~ ^[0-9]+$ && $SECONDS_PER -gt 0 ]] || die "OUTBOXD_FUZZ_SECONDS must be a positive number"

mapfile -t ALL < <(cd "$REPO" && find tests/fuzz -name 'fuzz_*.c' | sort)
targets=()
if (($#)); then
  targets=("$@")
else
  for f in "${ALL[@]}"; do targets+=("$(basename "$f" .c)"); done
fi

# A build dir configured with another compiler or generator cannot be reused.
if [[ -f $BUILD/CMakeCache.txt ]] && ! grep -q "^CMAKE_C_COMPILER:.*=$CC_FUZZ\$" "$BUILD/CMakeCache.txt"; then
  rm -rf "$BUILD/CMakeCache.txt" "$BUILD/CMakeFiles"
fi
CC=$CC_FUZZ cmake -S "$REPO" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DOUTBOXD_FUZZ=ON -DOUTBOXD_WERROR=ON \
  >/dev/null || die "cmake failed"
ninja -C "$BUILD" "${targets[@]}" >/dev/null || die "building ${targets[*]} failed (run: ninja -C $BUILD ${targets[*]})"

# seeds TARGET DIR: fills DIR with the target's seed inputs.
seeds() {
  local t=$1 dir=$2 i=0 line
  mkdir -p "$dir"
  case $t in
    fuzz_w2j_decode)
      while IFS= read -r line; do
        printf '%s' "$line" >"$dir/capture-$i"
        i=$((i + 1))
      done <"$REPO/tests/data/wal2json/outbox.jsonl" ;;
    fuzz_pgo_decode)
      python3 - "$REPO/tests/data/pgoutput/stream.pgo" "$dir" <<'PY'
import sys
msgs = [bytes.fromhex(l.split("\t", 1)[1].strip()) for l in open(sys.argv[1]) if "\t" in l]
msgs = [m for m in msgs if len(m) <= 4000]  # the 300 KB row would only slow the fuzzer down
for n in (4, 12, 24, len(msgs)):
    with open(f"{sys.argv[2]}/stream-{n}", "wb") as f:
        f.write(b"".join(len(m).to_bytes(2, "big") + m for m in msgs[:n]))
PY
      ;;
    fuzz_config) cp "$REPO"/tests/data/config/*.conf "$dir/" ;;
    *) [[ -d $REPO/tests/fuzz/seeds/$t ]] && cp "$REPO/tests/fuzz/seeds/$t"/* "$dir/" ;;
  esac
}

failed=()
for t in "${targets[@]}"; do
  src=$(cd "$REPO" && find tests/fuzz -name "$t.c")
  [[ -n $src ]] || die "no target $t in tests/fuzz"
  corpus=$BUILD/corpus/$t
  seeddir=$BUILD/seeds/$t
  rm -rf "$seeddir"
  seeds "$t" "$seeddir"
  mkdir -p "$corpus" "$BUILD/crashes"
  args=(-max_total_time="$SECONDS_PER" -timeout=10 -rss_limit_mb=1024 -max_len=65536 -print_final_stats=1
        -artifact_prefix="$BUILD/crashes/$t-")
  dict=$REPO/$(dirname "$src")/${t#fuzz_}.dict
  [[ $t == fuzz_w2j_decode ]] && dict=$REPO/tests/fuzz/outboxd/w2j.dict
  [[ -f $dict ]] && args+=(-dict="$dict")
  log=$BUILD/$t.log
  say "$t: ${SECONDS_PER} s (corpus $corpus, log $log)"
  # stdin from /dev/null; ASan: leaks count, abort on the first report.
  if ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
     UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
     "$BUILD/$t" "${args[@]}" "$corpus" "$seeddir" </dev/null >"$log" 2>&1; then
    say "$t: ok ($(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo '?') runs, corpus $(find "$corpus" -type f | wc -l) inputs)"
  else
    failed+=("$t")
    grep -E 'ERROR: |runtime error: |SUMMARY: |Test unit written to' "$log" | head -n 8 >&2 || tail -n 20 "$log" >&2
    say "$t: FAILED (log $log); reproduce: $BUILD/$t <the input named above>"
  fi
done
if ((${#failed[@]})); then
  die "${failed[*]} failed: turn each crash into a unit test (tests/unit), fix it, rerun"
fi
say "all ${#targets[@]} targets ran ${SECONDS_PER} s each without a finding"
