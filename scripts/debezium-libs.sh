#!/usr/bin/env bash
# Fetches the jars of Kafka Connect 3.9.1 and the Debezium PostgreSQL connector (the versions
# in bench/debezium/pom.xml) from Maven Central into the cache, once per pom, and prints the
# directory. Used by bench/run.sh and by the tests that run the real Debezium
# (tests/integration/test_dropin.py, docs/dropin.md). Never commit jars.
#
# Environment: OUTBOXD_TEST_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/outboxd)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${OUTBOXD_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outboxd}
POM=$REPO/bench/debezium/pom.xml
DIR=$CACHE/debezium-$(sed -n 's:.*<debezium.version>\(.*\)</debezium.version>.*:\1:p' "$POM")

pom_hash=$(sha256sum "$POM" | cut -d' ' -f1)
if [[ $(cat "$DIR/.outboxd-complete" 2>/dev/null) != "$pom_hash" ]]; then
  echo "debezium-libs: fetching Kafka Connect and Debezium jars with Maven into $DIR" >&2
  mkdir -p "$CACHE"
  tmp=$DIR.tmp.$$
  rm -rf "$tmp"
  if ! mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
    cat "$tmp.log" >&2
    rm -rf "$tmp" "$tmp.log"
    echo "debezium-libs: ERROR: mvn failed (Maven Central reachable?)" >&2
    exit 1
  fi
  rm -f "$tmp.log"
  echo "$pom_hash" >"$tmp/.outboxd-complete"
  rm -rf "$DIR"
  mv "$tmp" "$DIR"
fi
echo "$DIR"
