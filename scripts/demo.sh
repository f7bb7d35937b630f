#!/usr/bin/env bash
# Demo: orders -> outboxd -> Kafka -> inboxd -> inventory on a throwaway local stack; prints each hop, checks the end state.
#
# Usage: scripts/demo.sh [--orders N] [--keep-running]
#   --orders N       orders to write (default 20); one more is written and rolled back
#   --keep-running   then keep writing an order a second; Ctrl-C stops, checks, cleans up
# Environment: DEMO_STACK_DIR (default /tmp/outboxd-demo), DEMO_PG_PORT (15442),
# DEMO_KAFKA_PORT (19102, and the port after it), DEMO_BUILD_DIR (<repo>/build).
# Installs what it needs (scripts/install-deps.sh). Exit 0: every check passed.
# A run that was killed leaves its stack and daemons behind: the next run removes them first.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ORDERS=20
KEEP=0
while (($#)); do
  case $1 in
    --orders) ORDERS=${2:-}; shift $(($# > 1 ? 2 : 1)) ;;
    --keep-running) KEEP=1; shift ;;
    -h|--help) sed -n '4,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if ! [[ $ORDERS =~ ^[0-9]+$ ]] || ((10#$ORDERS == 0)); then
  echo "demo: --orders needs a number of orders, 1 or more" >&2
  exit 2
fi
ORDERS=$((10#$ORDERS))

export OUTBOXD_STACK_DIR=${DEMO_STACK_DIR:-/tmp/outboxd-demo}
export OUTBOXD_STACK_PG_PORT=${DEMO_PG_PORT:-15442}
export OUTBOXD_STACK_KAFKA_PORT=${DEMO_KAFKA_PORT:-19102}
BUILD=${DEMO_BUILD_DIR:-$REPO/build}
WORK=$OUTBOXD_STACK_DIR-run
TOPIC=outbox.event.order
RESEND=$(((ORDERS + 4) / 5))  # events sent to Kafka a second time, on purpose

if [[ -t 1 ]]; then B=$'\033[1m' N=$'\033[0m'; else B='' N=''; fi
say() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }

say "installing what is missing (Debian packages, Kafka jars from Maven Central)"
"$REPO/scripts/install-deps.sh"

say "building outboxd and inboxd in $BUILD"
if [[ -f $BUILD/CMakeCache.txt ]]; then  # keep the build type (and sanitizers) it was made with
  cmake -S "$REPO" -B "$BUILD" >/dev/null
else
  cmake -S "$REPO" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" --target outboxd inboxd >/dev/null

# leftover NAME: the pid in $WORK/NAME.pid when that process still runs what an earlier run of
# the demo started there (and not some other program that got the pid since).
leftover() {
  local pid cmd
  pid=$(cat "$WORK/$1.pid" 2>/dev/null) && [[ $pid =~ ^[0-9]+$ ]] || return 1
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  case $1 in
    outboxd|inboxd) [[ $cmd == *" $WORK/$1.conf"* ]] ;;
    kafka) [[ $cmd == kcat* ]] ;;
    orders) [[ $cmd == *order-service.sh* ]] ;;
    inventory) [[ $cmd == *inventory-service.sh* ]] ;;
    *) false ;;
  esac && echo "$pid"
}
# An earlier run that was killed (SIGKILL, a closed terminal) skipped its cleanup: its
# daemons may still run (each in a session of its own), and its stack holds the slot "demo",
# the topic and the consumer group's offsets, which would spoil this run's counts.
if [[ -e $WORK || -e $OUTBOXD_STACK_DIR ]]; then
  say "cleaning up after an earlier run that did not finish ($OUTBOXD_STACK_DIR)"
  killed=()
  for n in orders inventory inboxd outboxd kafka; do
    if pid=$(leftover "$n"); then
      echo "  killing its $n (pid $pid)"
      if [[ $(ps -o pgid= -p "$pid" | tr -d ' ') == "$pid" ]]; then
        kill -KILL -- "-$pid" 2>/dev/null || true  # with its children (psql)
      else
        kill -KILL "$pid" 2>/dev/null || true
      fi
      killed+=("$pid")
    fi
  done
  for _ in $(seq 100); do  # gone, and their exit codes written to the old $WORK, before removing it
    alive=0
    for pid in "${killed[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  "$REPO/scripts/stack.sh" stop | sed 's/^/  /'
  rm -rf "$WORK"
fi

say "starting PostgreSQL (wal2json) and Kafka (KRaft) on loopback"
"$REPO/scripts/stack.sh" start
# shellcheck source=/dev/null
source "$OUTBOXD_STACK_DIR/stack.env"
PG="host=127.0.0.1 port=$OUTBOXD_STACK_PG_PORT user=postgres"
export ORDERS_DB="$PG dbname=orders" INVENTORY_DB="$PG dbname=inventory"
KAFKA=$OUTBOXD_STACK_KAFKA

# run NAME CMD...: runs CMD in the background; its output goes to the terminal, each line
# prefixed with NAME, and to $WORK/NAME.log; its pid to NAME.pid, its exit code to NAME.rc.
run() {
  local name=$1 label
  shift
  label=$(printf '  %-9s | ' "$name")
  rm -f "$WORK/$name.pid" "$WORK/$name.rc"
  # setsid: a Ctrl-C in the terminal reaches only this script, which stops the others in order.
  { setsid "$@" & echo $! >"$WORK/$name.pid"; wait $! && echo 0 >"$WORK/$name.rc" || echo $? >"$WORK/$name.rc"; } 2>&1 \
    | tee "$WORK/$name.log" | sed -u "s/^/$label/" &
  until [[ -s $WORK/$name.pid ]]; do sleep 0.05; done
}
running() { [[ -s $WORK/$1.pid && ! -e $WORK/$1.rc ]]; }
# stop NAME: SIGTERM, wait up to 60 s, print the exit code.
stop() {
  running "$1" && kill -TERM "$(cat "$WORK/$1.pid")" 2>/dev/null
  for _ in $(seq 600); do [[ -s $WORK/$1.rc ]] && break; sleep 0.1; done
  cat "$WORK/$1.rc" 2>/dev/null || echo "timeout"
}
# wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds, or fail the demo.
wait_for() {
  local what=$1 secs=$2
  shift 2
  for _ in $(seq $((secs * 10))); do
    "$@" && return 0
    for n in outboxd inboxd inventory kafka; do
      [[ -s $WORK/$n.rc ]] && fail "$n exited with code $(cat "$WORK/$n.rc") while waiting for $what: $(tail -n 1 "$WORK/$n.log")"
    done
    sleep 0.1
  done
  fail "timed out after $secs s waiting for $what"
}
fail() {
  echo "demo FAILED: $*" >&2
  rm -rf "$OUTBOXD_STACK_DIR-logs" && cp -r "$WORK" "$OUTBOXD_STACK_DIR-logs"
  echo "demo: logs kept in $OUTBOXD_STACK_DIR-logs" >&2
  exit 1
}
sql() { PGOPTIONS='-c client_min_messages=warning' psql "$PG dbname=$1" -qAtX -v ON_ERROR_STOP=1 -c "$2"; }

cleanup() {
  for n in orders inventory inboxd outboxd kafka; do running "$n" && kill -TERM "$(cat "$WORK/$n.pid")" 2>/dev/null; done
  wait 2>/dev/null || true
  "$REPO/scripts/stack.sh" stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$WORK" && mkdir -p "$WORK"
say "creating two databases: orders (outbox) and inventory (inbox)"
sql postgres "DROP DATABASE IF EXISTS orders" >/dev/null
sql postgres "DROP DATABASE IF EXISTS inventory" >/dev/null
sql postgres "CREATE DATABASE orders" >/dev/null
sql postgres "CREATE DATABASE inventory" >/dev/null
for f in sql/outbox.sql demo/orders/schema.sql; do
  psql "$ORDERS_DB" -qX -v ON_ERROR_STOP=1 -f "$REPO/$f" >/dev/null
done
for f in sql/inbox.sql demo/inventory/schema.sql; do
  psql "$INVENTORY_DB" -qX -v ON_ERROR_STOP=1 -f "$REPO/$f" >/dev/null
done
echo "  orders    : sql/outbox.sql + demo/orders/schema.sql"
echo "  inventory : sql/inbox.sql + demo/inventory/schema.sql; stock $(sql inventory \
  "SELECT string_agg(sku || ' ' || on_hand, ', ' ORDER BY sku) FROM stock")"

cat >"$WORK/outboxd.conf" <<CONF
# outboxd demo configuration (see docs/configuration.md)
postgres.conninfo = $ORDERS_DB
postgres.slot = demo
outbox.table = public.outbox
outbox.topic = outbox.event.\${aggregate_type}
kafka.bootstrap.servers = $KAFKA
CONF
cat >"$WORK/inboxd.conf" <<CONF
# inboxd demo configuration (see docs/inboxd.md)
postgres.conninfo = $INVENTORY_DB
inbox.topics = $TOPIC
kafka.bootstrap.servers = $KAFKA
kafka.group.id = inventory
CONF

say "starting outboxd -c $WORK/outboxd.conf"
run outboxd "$BUILD/outboxd" -c "$WORK/outboxd.conf"
wait_for "outboxd to stream" 30 grep -q "streaming slot" "$WORK/outboxd.log"

say "order service: $ORDERS orders, each with its outbox event in one transaction"
run orders "$REPO/demo/orders/order-service.sh" --orders "$ORDERS" --interval 0.2
# outboxd's first event creates the topic (auto-creation); inboxd subscribes to it then.
topic_ready() { kcat -b "$KAFKA" -L -t "$TOPIC" 2>/dev/null | grep -q 'partition 0'; }
wait_for "topic $TOPIC" 60 topic_ready

say "Kafka: what outboxd publishes to $TOPIC (kcat: partition, offset, key, headers, value)"
run kafka kcat -b "$KAFKA" -C -t "$TOPIC" -o beginning -u -q \
  -f 'p%p o%o key=%k headers=%h %s\n'
say "inboxd -c $WORK/inboxd.conf: Kafka -> the inventory database's inbox table"
run inboxd "$BUILD/inboxd" -c "$WORK/inboxd.conf"
say "inventory service: claims inbox messages, updates the stock, marks them done (one transaction)"
run inventory "$REPO/demo/inventory/inventory-service.sh" --interval 0.2

wait_for "the order service" 120 test -s "$WORK/orders.rc"
psql "$ORDERS_DB" -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
BEGIN;
INSERT INTO orders (customer, sku, qty) VALUES ('mallory', 'A-100', 99);
INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload)
VALUES ('order', 'rolled-back', 'OrderPlaced', '{"note": "this transaction rolls back"}');
ROLLBACK;
SQL
echo "  orders    | one more order rolled back: neither it nor its event may show up anywhere"

in_kafka() { grep -c '^p' "$WORK/kafka.log" || true; }
kafka_has() { [[ $(in_kafka) -ge $1 ]]; }
wait_for "$ORDERS events in Kafka" 60 kafka_has "$ORDERS"

say "re-sending $RESEND events to Kafka with their id header, as a relay does after a crash (at least once)"
kcat -b "$KAFKA" -C -t "$TOPIC" -o beginning -e -q -c "$RESEND" -f '%p\t%k\t%h\t%s\n' >"$WORK/resend.tsv"
while IFS=$'\t' read -r part key headers value; do
  hargs=()
  IFS=',' read -ra hs <<<"$headers"
  for h in "${hs[@]}"; do hargs+=(-H "$h"); done
  printf '%s\n' "$value" | kcat -b "$KAFKA" -P -t "$TOPIC" -p "$part" -k "$key" "${hargs[@]}"
  echo "  resend    | order $key again (partition $part, ${hs[0]})"
done <"$WORK/resend.tsv"

inbox_caught_up() {
  local pos
  pos=$(sql inventory "SELECT coalesce(sum(next_offset), 0) FROM inbox_offsets WHERE topic = '$TOPIC'")
  [[ $pos -ge $((ORDERS + RESEND)) && $(sql inventory "SELECT count(*) FROM stock_changes") -ge $ORDERS ]]
}
wait_for "inboxd and the inventory service to catch up" 60 inbox_caught_up
sleep 1  # let anything unexpected (a duplicate applied twice) show up before counting

if ((KEEP)); then
  say "--keep-running: an order a second; Ctrl-C stops the orders, then the demo checks and removes everything"
  interrupted=0
  trap 'interrupted=1' INT TERM
  run orders "$REPO/demo/orders/order-service.sh" --interval 1
  while ((!interrupted)) && running orders; do sleep 1 || true; done
  trap 'exit 130' INT TERM
  ((interrupted)) || fail "the order service stopped: $(tail -n 1 "$WORK/orders.log")"
  echo
  stop orders >/dev/null
  ORDERS=$(sql orders "SELECT count(*) FROM orders")
  wait_for "inboxd and the inventory service to catch up" 60 inbox_caught_up
fi

say "stopping (SIGTERM: each daemon finishes its batch, confirms or commits, exits 0)"
rc_inventory=$(stop inventory)
rc_inboxd=$(stop inboxd)
rc_outboxd=$(stop outboxd)
stop kafka >/dev/null
sleep 0.2

orders=$(sql orders "SELECT count(*) FROM orders")
records=$(in_kafka)
leaked=$(grep -c 'rolled-back' "$WORK/kafka.log" || true)
published=$((records - RESEND))
inbox=$(sql inventory "SELECT count(*) FROM inbox")
inbox_done=$(sql inventory "SELECT count(*) FROM inbox WHERE status = 'done'")
applied=$(sql inventory "SELECT count(*) FROM stock_changes")
stopline=$(grep -o 'recorded [0-9]* messages, [0-9]* duplicates skipped' "$WORK/inboxd.log" | tail -n 1 || true)
recorded=$(sed -E 's/recorded ([0-9]+) .*/\1/' <<<"$stopline")
dups=$(sed -E 's/.*, ([0-9]+) duplicates.*/\1/' <<<"$stopline")
# Expected stock: 1000 minus every committed order's quantity, from the orders database.
expected=$(sql orders "SELECT string_agg(s.sku || '=' || (1000 - coalesce(o.q, 0)), ' ' ORDER BY s.sku)
  FROM (VALUES ('A-100'), ('B-200'), ('C-300')) s(sku)
  LEFT JOIN (SELECT sku, sum(qty) q FROM orders GROUP BY sku) o USING (sku)")
actual=$(sql inventory "SELECT string_agg(sku || '=' || on_hand, ' ' ORDER BY sku) FROM stock")

say "summary"
printf '  orders written          %d (+1 rolled back)\n' "$orders"
printf '  events published        %d to %s (rolled-back events seen: %d)\n' "$published" "$TOPIC" "$leaked"
printf '  events re-sent          %d (the same id, at new offsets)\n' "$RESEND"
printf '  messages in the inbox   %d, %d done (inboxd recorded %s, duplicates skipped %s)\n' \
  "$inbox" "$inbox_done" "${recorded:-?}" "${dups:-?}"
printf '  stock updated           %d orders applied once each\n' "$applied"
printf '  stock now               %s\n' "$actual"
printf '  stock expected          %s (1000 each minus the committed orders)\n' "$expected"
printf '  exit codes              outboxd %s, inboxd %s, inventory service %s\n' \
  "$rc_outboxd" "$rc_inboxd" "$rc_inventory"

problems=()
((orders == ORDERS)) || problems+=("$orders orders in the database, expected $ORDERS")
((published == ORDERS)) || problems+=("$published events published, expected $ORDERS")
((leaked == 0)) || problems+=("the rolled-back event reached Kafka")
((inbox == ORDERS && inbox_done == ORDERS)) || problems+=("$inbox messages in the inbox ($inbox_done done), expected $ORDERS")
[[ $recorded == "$ORDERS" && $dups == "$RESEND" ]] \
  || problems+=("inboxd recorded ${recorded:-?} and skipped ${dups:-?} duplicates, expected $ORDERS and $RESEND")
((applied == ORDERS)) || problems+=("$applied stock changes, expected $ORDERS")
[[ $actual == "$expected" ]] || problems+=("stock is '$actual', expected '$expected'")
[[ "$rc_outboxd $rc_inboxd $rc_inventory" == "0 0 0" ]] || problems+=("a process did not exit 0")
if ((${#problems[@]})); then
  fail "$(printf '%s; ' "${problems[@]}")"
fi
say "demo OK: each committed order reached the inventory exactly once; duplicates and the rollback changed nothing"
