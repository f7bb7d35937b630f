#!/usr/bin/env bash
# Demo: outboxd on a throwaway local stack with a demo order writer; prints each hop, then exits.
#
# Usage: scripts/demo.sh [--orders N] [--keep-running]
#   --orders N       orders to write (default 20); one more is written and rolled back
#   --keep-running   keep writing an order a second until Ctrl-C (then stop everything)
# Environment: DEMO_STACK_DIR (default /tmp/outboxd-demo), DEMO_PG_PORT (15442),
# DEMO_KAFKA_PORT (19102). Installs what it needs (scripts/install-deps.sh).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ORDERS=20
KEEP=0
while (($#)); do
  case $1 in
    --orders) ORDERS=$2; shift 2 ;;
    --keep-running) KEEP=1; shift ;;
    -h|--help) sed -n '3,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $ORDERS =~ ^[0-9]+$ ]] || { echo "demo: --orders needs a number" >&2; exit 2; }

export OUTBOXD_STACK_DIR=${DEMO_STACK_DIR:-/tmp/outboxd-demo}
export OUTBOXD_STACK_PG_PORT=${DEMO_PG_PORT:-15442}
export OUTBOXD_STACK_KAFKA_PORT=${DEMO_KAFKA_PORT:-19102}
WORK=$OUTBOXD_STACK_DIR-run
TOPIC=outbox.event.order

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "installing what is missing (Debian packages, Kafka jars from Maven Central)"
"$REPO/scripts/install-deps.sh"

say "building outboxd"
cmake -S "$REPO" -B "$REPO/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$REPO/build" outboxd >/dev/null
OUTBOXD=$REPO/build/outboxd

say "starting PostgreSQL (wal2json) and Kafka (KRaft) on loopback"
"$REPO/scripts/stack.sh" start
# shellcheck source=/dev/null
source "$OUTBOXD_STACK_DIR/stack.env"
PG="host=127.0.0.1 port=$OUTBOXD_STACK_PG_PORT user=postgres"
KAFKA=$OUTBOXD_STACK_KAFKA

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$REPO/scripts/stack.sh" stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$WORK" && mkdir -p "$WORK"
psql "$PG dbname=postgres" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS demo" -c "CREATE DATABASE demo" >/dev/null
psql "$PG dbname=demo" -qX -v ON_ERROR_STOP=1 -f "$REPO/sql/outbox.sql" >/dev/null
psql "$PG dbname=demo" -qX -v ON_ERROR_STOP=1 -c \
  "CREATE TABLE orders (id bigserial PRIMARY KEY, customer text NOT NULL, item text NOT NULL, qty int NOT NULL)" >/dev/null

cat > "$WORK/outboxd.conf" <<CONF
# outboxd demo configuration (see docs/configuration.md)
postgres.conninfo = $PG dbname=demo
postgres.slot = demo
outbox.table = public.outbox
outbox.topic = outbox.event.\${aggregate_type}
kafka.bootstrap.servers = $KAFKA
status.interval.ms = 500
CONF

say "starting outboxd -c $WORK/outboxd.conf"
env -u OUTBOXD_STACK_DIR -u OUTBOXD_STACK_PG_PORT -u OUTBOXD_STACK_KAFKA_PORT \
  "$OUTBOXD" -c "$WORK/outboxd.conf" >"$WORK/outboxd.log" 2>&1 &
pids+=($!)
OUTBOXD_PID=$!
for _ in $(seq 100); do
  grep -q "streaming slot" "$WORK/outboxd.log" && break
  kill -0 "$OUTBOXD_PID" 2>/dev/null || { cat "$WORK/outboxd.log"; exit 1; }
  sleep 0.1
done
sed 's/^/  outboxd | /' "$WORK/outboxd.log"

write_order() { # n -> one transaction: the order row and its event
  local n=$1 customer=c$(( $1 % 5 )) item=widget-$(( $1 % 3 ))
  psql "$PG dbname=demo" -qX -v ON_ERROR_STOP=1 >/dev/null <<SQL
BEGIN;
WITH o AS (INSERT INTO orders (customer, item, qty) VALUES ('$customer', '$item', $n) RETURNING id)
INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers)
SELECT 'order', '$customer', 'OrderPlaced',
       jsonb_build_object('order_id', o.id, 'customer', '$customer', 'item', '$item', 'qty', $n),
       jsonb_build_object('source', 'demo')
FROM o;
COMMIT;
SQL
  printf '  writer  | order %d for %s committed\n' "$n" "$customer"
}

watch_topic() { # the topic exists once outboxd published the first event to it
  for _ in $(seq 100); do
    kcat -b "$KAFKA" -L -t "$TOPIC" 2>/dev/null | grep -q 'partition 0' && break
    sleep 0.1
  done
  say "watching $TOPIC with kcat: partition, key, headers, value"
  kcat -b "$KAFKA" -C -t "$TOPIC" -o beginning -u -q \
    -f '  kafka   | p%p key=%k headers=[%h] value=%s\n' >"$WORK/kafka.txt" 2>"$WORK/kcat.err" &
  pids+=($!)
  tail -n +1 -f "$WORK/kafka.txt" &
  pids+=($!)
}

say "writing $ORDERS orders, each with its outbox event in the same transaction"
: >"$WORK/kafka.txt"
for n in $(seq 1 "$ORDERS"); do
  write_order "$n"
  ((n == 1)) && watch_topic
  sleep 0.2
done
psql "$PG dbname=demo" -qX >/dev/null <<'SQL'
BEGIN;
INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload)
VALUES ('order', 'c-rollback', 'OrderPlaced', '{"note": "this transaction rolls back"}');
ROLLBACK;
SQL
echo "  writer  | one more order rolled back: its event must never reach Kafka"

if ((KEEP)); then
  say "--keep-running: an order a second; Ctrl-C stops everything"
  n=$ORDERS
  while :; do n=$((n + 1)); write_order "$n"; sleep 1; done
fi

for _ in $(seq 150); do
  [[ $(wc -l <"$WORK/kafka.txt") -ge $ORDERS ]] && break
  sleep 0.2
done
sleep 1
published=$(wc -l <"$WORK/kafka.txt")
leaked=$(grep -c c-rollback "$WORK/kafka.txt" || true)
kill -TERM "$OUTBOXD_PID"
wait "$OUTBOXD_PID" && rc=0 || rc=$?
slot=$(psql "$PG dbname=demo" -AtqX -c "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'demo'")

say "summary"
printf '  orders committed        %d\n' "$ORDERS"
printf '  events in Kafka         %d (topic %s)\n' "$published" "$TOPIC"
printf '  rolled-back events seen %d\n' "$leaked"
printf '  slot demo confirmed at  %s\n' "$slot"
printf '  outboxd exit code       %d (SIGTERM: flush, confirm, exit)\n' "$rc"
tail -n 2 "$WORK/outboxd.log" | sed 's/^/  outboxd | /'
if [[ $published -eq $ORDERS && $leaked -eq 0 && $rc -eq 0 ]]; then
  say "demo OK: every committed order's event reached Kafka, the rolled-back one did not"
else
  rm -rf /tmp/outboxd-demo-logs && cp -r "$WORK" /tmp/outboxd-demo-logs
  echo "demo FAILED: logs kept in /tmp/outboxd-demo-logs" >&2
  exit 1
fi
