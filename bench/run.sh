#!/usr/bin/env bash
# Runs the outboxd benchmark suite on a local stack: backlog drain (vs pg_recvlogical, Debezium
# and a polling relay), live latency, one big transaction, footprint. Prints a table, writes
# <out>/results.json, <out>/table.md and PNG plots. See docs/benchmarks.md.
#
# Usage: bench/run.sh [--quick] [--repeats N] [--no-debezium] [--debezium-latency]
#                     [--out DIR] [--keep-stack] [-- bench.py options]
#   --quick             tiny sizes (2,000-event backlogs, 20,000-event transaction, 2 s at
#                       200 and 1000 ev/s), 1 repeat, no Debezium unless --debezium; ~1 min
#   --repeats N         repeat every workload N times, report medians (default 3; quick 1)
#   --no-debezium       skip the Debezium peer (no Maven download, no JVM)
#   --debezium          run Debezium also with --quick
#   --debezium-latency  also measure Debezium's live latency (slow)
#   --out DIR           output dir (default <repo>/build-bench/out)
#   --keep-stack        leave a stack this script started running
#   anything after --   passed to bench/bench.py (e.g. -- --events 50000 --rates 1000,5000)
#
# Environment:
#   OUTBOXD_STACK_DIR / _PG_PORT / _KAFKA_PORT  the stack (default /tmp/outboxd-bench-stack,
#                        15532, 19172: not the test stack's). Reused if it runs; a stack this
#                        script started is stopped at the end.
#   OUTBOXD_BENCH_BUILD_DIR  build dir (default <repo>/build-bench, RelWithDebInfo)
#   OUTBOXD_BENCH_SKIP_DEPS=1  do not run scripts/install-deps.sh (it is idempotent but
#                        rebuilds the shared test venv when tests/integration/requirements.txt differs)
#   BENCH_OUTBOXD_WRAP       a profiler command line outboxd runs under, e.g.
#                        "perf record -g -o /tmp/perf.data" (its CPU/RSS figures are then perf's)
#   OUTBOXD_TEST_CACHE       cache dir (default ~/.cache/outboxd): bench-venv (matplotlib,
#                        psycopg, confluent-kafka from PyPI) and debezium-<version> jars (Maven)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${OUTBOXD_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outboxd}
BUILD=${OUTBOXD_BENCH_BUILD_DIR:-$REPO/build-bench}
VENV=$CACHE/bench-venv
POM=$REPO/bench/debezium/pom.xml
REQS=$REPO/bench/requirements.txt
export OUTBOXD_STACK_DIR=${OUTBOXD_STACK_DIR:-/tmp/outboxd-bench-stack}
export OUTBOXD_STACK_PG_PORT=${OUTBOXD_STACK_PG_PORT:-15532}
export OUTBOXD_STACK_KAFKA_PORT=${OUTBOXD_STACK_KAFKA_PORT:-19172}

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: ERROR: %s\n' "$*" >&2; exit 1; }

quick=0 repeats="" debezium=1 force_debezium=0 dbz_latency=0 out=$BUILD/out keep=0 extra=()
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    --repeats) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--repeats needs a positive number"; repeats=$2; shift ;;
    --no-debezium) debezium=0 ;;
    --debezium) force_debezium=1 ;;
    --debezium-latency) dbz_latency=1 ;;
    --out) [[ -n ${2:-} ]] || die "--out needs a directory"; out=$2; shift ;;
    --keep-stack) keep=1 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see bench/run.sh --help)" ;;
  esac
  shift
done
if ((quick)) && ((!force_debezium)); then debezium=0; fi

sha() { sha256sum "$1" | cut -d' ' -f1; }

# --- dependencies: apt packages and Kafka jars (scripts/install-deps.sh), the venv, Debezium
[[ ${OUTBOXD_BENCH_SKIP_DEPS:-0} == 1 ]] || "$REPO/scripts/install-deps.sh"
req_hash="$(sha "$REQS") $(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ ! -x $VENV/bin/python || $(cat "$VENV/.outboxd-requirements" 2>/dev/null) != "$req_hash" ]]; then
  say "creating Python venv $VENV from bench/requirements.txt (PyPI)"
  rm -rf "$VENV"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQS"
  echo "$req_hash" >"$VENV/.outboxd-requirements"
fi
DBZ_LIBS=$CACHE/debezium-$(sed -n 's:.*<debezium.version>\(.*\)</debezium.version>.*:\1:p' "$POM")
if ((debezium)); then
  DBZ_LIBS=$("$REPO/scripts/debezium-libs.sh") || die "could not fetch the Debezium jars"
fi

# --- build outboxd and the polling baseline
cmake -S "$REPO" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$BUILD" -j "$(nproc)" outboxd baseline_polling_relay baseline_producer >/dev/null || die "build failed"

# --- the stack, with track_commit_timestamp (the latency workload reads commit times)
started=0
if ! "$REPO/scripts/stack.sh" status >/dev/null 2>&1; then
  started=1
  "$REPO/scripts/stack.sh" start >&2
fi
cleanup() { if ((started && !keep)); then "$REPO/scripts/stack.sh" stop >&2 || true; fi; }
trap cleanup EXIT
# shellcheck source=/dev/null
source "$OUTBOXD_STACK_DIR/stack.env"
psql_() { "$OUTBOXD_STACK_PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$OUTBOXD_STACK_PG_CONNINFO" -c "$1"; }
if [[ $(psql_ "SHOW track_commit_timestamp") != on ]]; then
  psql_ "ALTER SYSTEM SET track_commit_timestamp = on" 
  "$REPO/scripts/stack.sh" pg-restart >&2
fi

args=(--out "$out" --outboxd "$BUILD/outboxd" --poller "$BUILD/baseline_polling_relay" --producer "$BUILD/baseline_producer"
      --debezium-libs "$DBZ_LIBS")
((debezium)) && args+=(--debezium)
((dbz_latency)) && args+=(--debezium-latency)
if ((quick)); then
  args+=(--config quick --repeats "${repeats:-1}" --events 2000 --small-events 500 --big 20000
         --rates 200,1000 --latency-secs 2 --timeout 60)
else
  args+=(--config full --repeats "${repeats:-3}")
fi
mkdir -p "$out"
"$VENV/bin/python" "$REPO/bench/bench.py" "${args[@]}" "${extra[@]}"
