#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian 12 machine: deps, build, unit tests (plain + ASan/UBSan), integration tests.
#
# Usage: scripts/test.sh [--long] [pytest args...]      e.g.  scripts/test.sh -k partition -x
#   --long   also run the long tier (pytest marker `long`: fault tests of minutes each;
#            OUTBOXD_TEST_LONG=1 does the same). CI (.ci/run) runs without it.
#
# Stages:
#   1. scripts/install-deps.sh (apt packages, Kafka jars, Python venv)
#   2. build/       cmake -G Ninja, RelWithDebInfo, -Werror; scripts/lint.sh (clang-format,
#                   clang-tidy); ctest
#   3. build-asan/  cmake -G Ninja, Debug, -DOUTBOXD_SANITIZE=ON; ctest
#   3b. scripts/fuzz.sh: the libFuzzer targets of tests/fuzz under ASan+UBSan, 20 s each
#   4. scripts/stack.sh start (reused if it already runs; stopped at the end only if
#      this script started it), then pytest tests/integration -v against build/outboxd
# A failing ctest stage does not stop the run (the integration tests still run); the
# exit status is non-zero if any stage failed. pytest's summary line is the last output.
#
# Environment:
#   OUTBOXD_TEST_BUILD_DIR       build dir        (default <repo>/build)
#   OUTBOXD_TEST_ASAN_BUILD_DIR  ASan build dir   (default <repo>/build-asan)
#   OUTBOXD_TEST_SKIP_ASAN=1     skip stage 3
#   OUTBOXD_TEST_SKIP_UNIT=1     skip ctest in stages 2 and 3 (still builds stage 2)
#   OUTBOXD_TEST_SKIP_FUZZ=1     skip stage 3b;  OUTBOXD_FUZZ_SECONDS: seconds per fuzz target
#   OUTBOXD_BIN                  binary under integration test (default $OUTBOXD_TEST_BUILD_DIR/outboxd)
#   OUTBOXD_STACK_*              see scripts/stack.sh;  OUTBOXD_TEST_VENV: see scripts/install-deps.sh
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

if [[ ${1:-} == --long ]]; then
  export OUTBOXD_TEST_LONG=1
  shift
fi

BUILD=${OUTBOXD_TEST_BUILD_DIR:-$REPO/build}
BUILD_ASAN=${OUTBOXD_TEST_ASAN_BUILD_DIR:-$REPO/build-asan}
VENV=${OUTBOXD_TEST_VENV:-${OUTBOXD_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outboxd}/venv}
STACK_DIR=${OUTBOXD_STACK_DIR:-/tmp/outboxd-stack}
JOBS=$(nproc 2>/dev/null || echo 2)
T0=$SECONDS

stage() { printf '\n==== test.sh: %s (%ds)\n' "$*" $((SECONDS - T0)); }
die() { printf 'test.sh: ERROR: %s\n' "$*" >&2; exit 1; }

failed=()

# cmake_build DIR BUILD_TYPE [cmake args...]
cmake_build() {
  local dir=$1 type=$2
  shift 2
  # A build dir configured with another generator cannot be reused by -G Ninja.
  if [[ -f $dir/CMakeCache.txt ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$dir/CMakeCache.txt"; then
    echo "test.sh: $dir was configured with another generator; reconfiguring"
    rm -rf "$dir/CMakeCache.txt" "$dir/CMakeFiles"
  fi
  # Explicit returns: callers test the status, which disables set -e in here.
  cmake -S "$REPO" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" "$@" >/dev/null || return 1
  ninja -C "$dir" -j "$JOBS" || return 1
}

# run_ctest DIR NAME: records a failure instead of stopping the run.
run_ctest() {
  if ! ctest --test-dir "$1" --output-on-failure --no-tests=ignore -j "$JOBS" --timeout 300; then
    failed+=("$2")
    echo "test.sh: $2 FAILED; continuing with the remaining stages (the exit status will be non-zero)"
  fi
}

stage "install dependencies"
"$REPO/scripts/install-deps.sh"

stage "build ($BUILD, RelWithDebInfo)"
cmake_build "$BUILD" RelWithDebInfo -DOUTBOXD_WERROR=ON -DCMAKE_EXPORT_COMPILE_COMMANDS=ON || die "build failed"

stage "lint (clang-format, clang-tidy)"
if ! "$REPO/scripts/lint.sh" "$BUILD"; then
  failed+=("lint")
  echo "test.sh: lint FAILED; continuing with the remaining stages (the exit status will be non-zero)"
fi
if [[ ${OUTBOXD_TEST_SKIP_UNIT:-0} != 1 ]]; then
  stage "unit tests ($BUILD)"
  run_ctest "$BUILD" "ctest ($BUILD)"
fi

if [[ ${OUTBOXD_TEST_SKIP_ASAN:-0} != 1 ]]; then
  stage "build ($BUILD_ASAN, Debug, ASan+UBSan)"
  if cmake_build "$BUILD_ASAN" Debug -DOUTBOXD_SANITIZE=ON -DOUTBOXD_WERROR=ON; then
    if [[ ${OUTBOXD_TEST_SKIP_UNIT:-0} != 1 ]]; then
      stage "unit tests ($BUILD_ASAN)"
      ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
      UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        run_ctest "$BUILD_ASAN" "ctest ($BUILD_ASAN)"
    fi
  else
    failed+=("ASan build")
    echo "test.sh: ASan build FAILED; continuing with the integration tests (the exit status will be non-zero)"
  fi
fi

if [[ ${OUTBOXD_TEST_SKIP_FUZZ:-0} != 1 ]]; then
  stage "fuzz (libFuzzer, ASan+UBSan, ${OUTBOXD_FUZZ_SECONDS:-20} s per target)"
  if ! "$REPO/scripts/fuzz.sh"; then
    failed+=("fuzz")
    echo "test.sh: fuzz FAILED; continuing with the remaining stages (the exit status will be non-zero)"
  fi
fi

stage "test stack"
started_stack=0
if OUTBOXD_STACK_DIR=$STACK_DIR "$REPO/scripts/stack.sh" status >/dev/null 2>&1; then
  echo "test.sh: reusing the running stack in $STACK_DIR"
else
  [[ -e $STACK_DIR ]] || started_stack=1  # only stop what this run created
  # shellcheck disable=SC2317  # called by the EXIT trap
  stop_stack() {
    OUTBOXD_STACK_DIR=$STACK_DIR "$REPO/scripts/stack.sh" stop >/dev/null 2>&1 \
      || echo "test.sh: warning: scripts/stack.sh stop failed" >&2
  }
  if ((started_stack)); then
    trap stop_stack EXIT
    trap 'exit 130' INT   # make sure EXIT runs on Ctrl-C / kill too
    trap 'exit 143' TERM
  fi
  OUTBOXD_STACK_DIR=$STACK_DIR "$REPO/scripts/stack.sh" start
fi

if ((${#failed[@]})); then
  echo "test.sh: failed so far: ${failed[*]}"
fi
stage "integration tests (pytest tests/integration)"
export OUTBOXD_STACK_DIR=$STACK_DIR
export OUTBOXD_BIN=${OUTBOXD_BIN:-$BUILD/outboxd}
export OUTBOXD_TEST_INBOXD_BIN=${OUTBOXD_TEST_INBOXD_BIN:-$BUILD/inboxd}
export PYTHONDONTWRITEBYTECODE=1
rc=0
"$VENV/bin/python" -m pytest "$REPO/tests/integration" -v "$@" || rc=$?

if ((rc == 0 && ${#failed[@]})); then
  rc=1
fi
exit "$rc"
