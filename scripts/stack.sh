#!/usr/bin/env bash
# Local throwaway test stack: a PostgreSQL 15 (wal2json) and a single-node Kafka 3.9.1 (KRaft).
#
# Usage: scripts/stack.sh COMMAND
#   start        start PostgreSQL and Kafka (idempotent), wait until ready, write stack.env
#   stop         stop both (hard: state is thrown away) and remove the state dir
#   status       print what is running; exit 0 only if both are up
#   env          print stack.env (shell exports), e.g.  eval "$(scripts/stack.sh env)"
#   pg-start     start PostgreSQL only (same data dir)
#   pg-stop      stop PostgreSQL (pg_ctl -m fast: clean shutdown)
#   pg-restart   pg-stop + pg-start
#   pg-kill      crash PostgreSQL (pg_ctl -m immediate: crash recovery on next start)
#   kafka-start  start Kafka only (same data dir: topics and offsets survive)
#   kafka-stop   stop Kafka gracefully (SIGTERM, wait)
#   kafka-kill   kill -9 Kafka
#
# Environment (read on the first `start`; later commands use the values recorded in
# the state dir):
#   OUTBOXD_STACK_DIR         state dir              (default /tmp/outboxd-stack)
#   OUTBOXD_STACK_PG_PORT     PostgreSQL TCP port    (default 15432)
#   OUTBOXD_STACK_KAFKA_PORT  Kafka PLAINTEXT port   (default 19092; controller = port+1)
#   OUTBOXD_STACK_KAFKA_LIBS  Kafka jar dir          (default ~/.cache/outboxd/kafka-3.9.1)
#   OUTBOXD_STACK_PGBIN       PostgreSQL binaries    (default /usr/lib/postgresql/15/bin)
# (outboxd reads OUTBOXD_<KEY> variables as config; the test harness removes these
# OUTBOXD_STACK_* variables from outboxd's environment.)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/kafka.sh"  # kafka_single_node_props kafka_write_log4j kafka_cluster_id
source "$(dirname "${BASH_SOURCE[0]}")/lib/pg.sh"  # port_open alive wait_ports_free now_ms pg_*

STACK_DIR=${OUTBOXD_STACK_DIR:-/tmp/outboxd-stack}
STACK_DIR=${STACK_DIR%/}
CONF=$STACK_DIR/stack.conf
MARKER=$STACK_DIR/.outboxd-stack

say() { printf 'stack: %s\n' "$*"; }
die() { printf 'stack: ERROR: %s\n' "$*" >&2; exit 1; }

# Settings: recorded ones (from the first start) win over the environment.
if [[ -f $CONF ]]; then
  # shellcheck source=/dev/null
  source "$CONF"
  for v in PG_PORT KAFKA_PORT; do
    envv="OUTBOXD_STACK_$v"
    if [[ -n ${!envv:-} && ${!envv} != "${!v}" ]]; then
      die "$envv=${!envv} but the stack in $STACK_DIR uses $v=${!v}; run '$0 stop' first"
    fi
  done
else
  PG_PORT=${OUTBOXD_STACK_PG_PORT:-15432}
  KAFKA_PORT=${OUTBOXD_STACK_KAFKA_PORT:-19092}
  KAFKA_LIBS=${OUTBOXD_STACK_KAFKA_LIBS:-${OUTBOXD_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outboxd}/kafka-3.9.1}
  PGBIN=${OUTBOXD_STACK_PGBIN:-/usr/lib/postgresql/15/bin}
fi
CTRL_PORT=$((KAFKA_PORT + 1))

PG_DIR=$STACK_DIR/pg
PG_DATA=$PG_DIR/data
PG_SOCK=$PG_DIR/run
PG_LOG=$PG_DIR/postgresql.log
K_DIR=$STACK_DIR/kafka
K_DATA=$K_DIR/data
K_PROPS=$K_DIR/server.properties
K_LOG4J=$K_DIR/log4j.properties
K_LOG=$K_DIR/kafka.log
K_PID=$K_DIR/kafka.pid
ENV_FILE=$STACK_DIR/stack.env

PG_CONNINFO="host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres"
KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

# --- helpers -------------------------------------------------------------------

# Run a PostgreSQL binary as the postgres OS user (PostgreSQL refuses to run as root).
as_pg() {
  if [[ $EUID -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

ensure_state_dir() {
  if [[ -e $STACK_DIR && ! -f $MARKER ]]; then
    if [[ -n $(ls -A "$STACK_DIR" 2>/dev/null) ]]; then
      die "$STACK_DIR exists, is not empty and is not an outboxd stack dir"
    fi
  fi
  mkdir -p "$STACK_DIR"
  chmod 755 "$STACK_DIR"
  touch "$MARKER"
  if [[ ! -f $CONF ]]; then
    cat >"$CONF" <<EOF
# Written by scripts/stack.sh on first start; later commands read it.
PG_PORT=$PG_PORT
KAFKA_PORT=$KAFKA_PORT
KAFKA_LIBS='$KAFKA_LIBS'
PGBIN='$PGBIN'
EOF
  fi
}

write_env() {
  cat >"$ENV_FILE.tmp" <<EOF
# outboxd test stack (scripts/stack.sh); load with: eval "\$(scripts/stack.sh env)"
export OUTBOXD_STACK_DIR='$STACK_DIR'
export OUTBOXD_STACK_PG_PORT='$PG_PORT'
export OUTBOXD_STACK_PG_CONNINFO='$PG_CONNINFO'
export OUTBOXD_STACK_PG_SOCKET_DIR='$PG_SOCK'
export OUTBOXD_STACK_PGBIN='$PGBIN'
export OUTBOXD_STACK_KAFKA='$KAFKA_BOOTSTRAP'
export OUTBOXD_STACK_KAFKA_PORT='$KAFKA_PORT'
export OUTBOXD_STACK_KAFKA_LIBS='$KAFKA_LIBS'
EOF
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

# Serialise commands on one stack (tests may call kafka-stop/-start concurrently
# with a human running status). The lock lives next to the state dir, which `stop`
# deletes.
take_lock() {
  mkdir -p "$(dirname "$STACK_DIR")"
  exec 9>"$STACK_DIR.lock"
  flock -w 300 9 || die "could not lock $STACK_DIR.lock"
}

# --- PostgreSQL ---------------------------------------------------------------------

pg_running() {
  [[ -f $PG_DATA/PG_VERSION ]] && as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

# output_plugin_libraries exists from 15.20/16.15/17.11/18.6 on; wal2json must be listed.
# Prints the postgresql.conf line, or nothing on a server without the setting.
opl_setting() { pg_opl_line as_pg "$PGBIN/postgres"; }

# A data dir made by an older point release lacks the line once the server has the
# setting (scripts/install-deps.sh upgrades PostgreSQL): add it before starting.
pg_conf_upgrade() {
  local opl; opl=$(opl_setting)
  [[ -n $opl ]] || return 0
  grep -q '^output_plugin_libraries' "$PG_DATA/postgresql.conf" && return 0
  say "adding output_plugin_libraries to $PG_DATA/postgresql.conf (the server has the setting now)"
  echo "$opl" | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

pg_init() {
  [[ -x $PGBIN/initdb ]] || die "$PGBIN/initdb not found; run scripts/install-deps.sh"
  [[ -f $PG_DATA/PG_VERSION ]] && return 0
  say "initdb $PG_DATA"
  rm -rf "$PG_DIR"
  mkdir -p "$PG_DATA" "$PG_SOCK"
  chmod 700 "$PG_DATA"
  if [[ $EUID -eq 0 ]]; then
    chown -R postgres:postgres "$PG_DIR"
    runuser -u postgres -- test -x "$PG_DIR" \
      || die "user postgres cannot reach $PG_DIR; pick an OUTBOXD_STACK_DIR outside private dirs"
  fi
  as_pg "$PGBIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
    --no-sync --no-instructions >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }

  local opl; opl=$(opl_setting)
  pg_test_conf "outboxd test stack (scripts/stack.sh)" "$PG_PORT" "$PG_SOCK" "$opl" \
    | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
  pg_test_hba "outboxd test stack" | as_pg tee "$PG_DATA/pg_hba.conf" >/dev/null
}

pg_selfcheck() {
  # wal2json must be usable as an output plugin (output_plugin_libraries).
  local out
  if ! out=$("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -At -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c \
      "SELECT 'ok' FROM pg_create_logical_replication_slot('outboxd_stack_selfcheck', 'wal2json', true);" 2>&1); then
    die "PostgreSQL self-check failed (wal2json slot): $out"
  fi
  [[ $out == ok ]] || die "PostgreSQL self-check: unexpected output: $out"
}

pg_start() {
  if pg_running; then
    say "PostgreSQL already running on 127.0.0.1:$PG_PORT"
    return 0
  fi
  pg_init
  pg_conf_upgrade
  if port_open "$PG_PORT"; then
    die "port $PG_PORT is in use by another process (set OUTBOXD_STACK_PG_PORT)"
  fi
  local t0; t0=$(now_ms)
  if [[ ! -e $PG_LOG ]]; then  # readable by the test harness (pg_ctl would make it 0600)
    as_pg touch "$PG_LOG"; chmod 644 "$PG_LOG"
  fi
  # 9>&-: the server must not inherit the lock fd (it would hold the lock forever).
  if ! as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 120 start >/dev/null 9>&-; then
    tail -n 30 "$PG_LOG" >&2 || true
    die "PostgreSQL did not start (log: $PG_LOG)"
  fi
  pg_selfcheck
  say "PostgreSQL up on 127.0.0.1:$PG_PORT ($(($(now_ms) - t0)) ms)"
}

# $1: fast (clean) or immediate (crash)
pg_stop() {
  local mode=${1:-fast}
  if ! pg_running; then
    say "PostgreSQL not running"
    return 0
  fi
  local t0; t0=$(now_ms)
  if ! as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -m "$mode" -w -t 120 stop >/dev/null; then
    say "PostgreSQL did not stop in 120 s (-m $mode); stopping it -m immediate"
    as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 60 stop >/dev/null
  fi
  say "PostgreSQL stopped (-m $mode, $(($(now_ms) - t0)) ms)"
}

# --- Kafka ------------------------------------------------------------------------------

kafka_pid() {
  local pid cmdline
  [[ -f $K_PID ]] || return 1
  pid=$(<"$K_PID")
  [[ -n $pid ]] && alive "$pid" || return 1
  # Guard against pid reuse: it must be our broker.
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"kafka.Kafka $K_PROPS"* ]] || return 1
  echo "$pid"
}

kafka_running() { kafka_pid >/dev/null; }

kafka_init() {
  [[ -f $KAFKA_LIBS/.outboxd-complete ]] \
    || die "Kafka jars not found in $KAFKA_LIBS; run scripts/install-deps.sh"
  command -v java >/dev/null || die "java not found; run scripts/install-deps.sh"
  mkdir -p "$K_DATA"
  cat >"$K_PROPS" <<EOF
# outboxd test stack: single-node KRaft broker+controller (scripts/stack.sh).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CTRL_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CTRL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$K_DATA
$(kafka_single_node_props)
EOF
  kafka_write_log4j "$K_LOG4J"
  if [[ ! -f $K_DATA/meta.properties ]]; then
    local cid
    cid=$(kafka_cluster_id)
    say "formatting Kafka storage $K_DATA (cluster id $cid)"
    java -cp "$KAFKA_LIBS/*" -Dlog4j.configuration="file:$K_LOG4J" \
      kafka.tools.StorageTool format -t "$cid" -c "$K_PROPS" >>"$K_LOG" 2>&1 \
      || { tail -n 30 "$K_LOG" >&2; die "Kafka storage format failed"; }
  fi
}

# $1: byte offset in kafka.log where this start's output begins.
kafka_ready() {
  local log md
  log=$(tail -c +"$1" "$K_LOG" 2>/dev/null) || return 1
  [[ $log == *"Kafka Server started"* ]] || return 1
  md=$(kcat -b "$KAFKA_BOOTSTRAP" -L -m 3 2>/dev/null) || return 1
  [[ $md == *"broker 1 at 127.0.0.1:$KAFKA_PORT"* ]]
}

kafka_start() {
  if kafka_running; then
    # It may still be starting (an interrupted kafka-start): wait for metadata.
    local deadline=$((SECONDS + 90)) md
    until md=$(kcat -b "$KAFKA_BOOTSTRAP" -L -m 3 2>/dev/null) &&
          [[ $md == *"broker 1 at 127.0.0.1:$KAFKA_PORT"* ]]; do
      ((SECONDS < deadline)) || die "Kafka (pid $(kafka_pid)) runs but does not answer (log: $K_LOG)"
      sleep 0.2
    done
    say "Kafka already running on $KAFKA_BOOTSTRAP (pid $(kafka_pid))"
    return 0
  fi
  kafka_init
  wait_ports_free 5 "$KAFKA_PORT" "$CTRL_PORT" \
    || die "port $KAFKA_PORT or $CTRL_PORT is in use by another process (set OUTBOXD_STACK_KAFKA_PORT)"
  local t0 from pid
  t0=$(now_ms)
  from=$(($(stat -c %s "$K_LOG" 2>/dev/null || echo 0) + 1))
  rm -f "$K_PID"
  # setsid: own session, so a Ctrl-C in the caller's terminal does not reach it.
  # All fds redirected: callers capturing our output must not wait for the broker;
  # 9>&-: it must not inherit the lock fd.
  # shellcheck disable=SC2016  # $$ and $0 belong to the inner bash
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$K_PID" \
    java -Xms256m -Xmx512m -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$K_LOG4J" -cp "$KAFKA_LIBS/*" \
    kafka.Kafka "$K_PROPS" </dev/null >>"$K_LOG" 2>&1 9>&- &
  local deadline=$((SECONDS + 90))
  while :; do
    if pid=$(kafka_pid) && kafka_ready "$from"; then
      break
    fi
    if [[ -s $K_PID ]] && ! alive "$(<"$K_PID")"; then
      tail -c +"$from" "$K_LOG" | tail -n 30 >&2
      die "Kafka exited during startup (log: $K_LOG)"
    fi
    if ((SECONDS >= deadline)); then
      tail -c +"$from" "$K_LOG" | tail -n 30 >&2
      die "Kafka not ready after 90 s (log: $K_LOG)"
    fi
    sleep 0.2
  done
  say "Kafka up on $KAFKA_BOOTSTRAP (pid $pid, $(($(now_ms) - t0)) ms)"
}

# $1: TERM (graceful) or KILL
kafka_stop() {
  local sig=${1:-TERM} pid t0
  if ! pid=$(kafka_pid); then
    say "Kafka not running"
    rm -f "$K_PID"
    return 0
  fi
  t0=$(now_ms)
  kill "-$sig" "$pid"
  local deadline=$((SECONDS + 60))
  while alive "$pid"; do
    if ((SECONDS >= deadline)); then
      say "Kafka (pid $pid) did not exit 60 s after SIG$sig; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
      sig=KILL
    fi
    sleep 0.1
  done
  # The main thread can be gone (zombie) while other threads still hold the sockets.
  wait_ports_free 20 "$KAFKA_PORT" "$CTRL_PORT" || say "warning: Kafka ports still open"
  rm -f "$K_PID"
  say "Kafka stopped (SIG$sig, $(($(now_ms) - t0)) ms)"
}

# --- commands -----------------------------------------------------------------------

cmd_start() {
  ensure_state_dir
  pg_start
  kafka_start
  write_env
  say "PostgreSQL: $PG_CONNINFO   (log $PG_LOG)"
  say "Kafka:      $KAFKA_BOOTSTRAP   (log $K_LOG)"
  say "env:        $ENV_FILE   (eval \"\$($0 env)\")"
}

cmd_stop() {
  if [[ ! -e $STACK_DIR ]]; then
    say "no stack in $STACK_DIR"
    return 0
  fi
  [[ -f $MARKER ]] || die "$STACK_DIR is not an outboxd stack dir; not touching it"
  # The state is thrown away: no need for graceful shutdowns.
  kafka_stop KILL
  pg_stop immediate
  rm -rf "$STACK_DIR"
  say "removed $STACK_DIR"
}

cmd_status() {
  local rc=0 pid
  if pg_running; then
    say "PostgreSQL: running on 127.0.0.1:$PG_PORT (data $PG_DATA)"
  else
    say "PostgreSQL: not running"; rc=1
  fi
  if pid=$(kafka_pid); then
    say "Kafka:      running on $KAFKA_BOOTSTRAP (pid $pid)"
  else
    say "Kafka:      not running"; rc=1
  fi
  return $rc
}

cmd_env() {
  [[ -f $ENV_FILE ]] || die "no $ENV_FILE; run: scripts/stack.sh start"
  cat "$ENV_FILE"
}

need_stack() { [[ -f $MARKER ]] || die "no stack in $STACK_DIR; run: scripts/stack.sh start"; }

cmd=${1:-}
case $cmd in
  start)       take_lock; cmd_start ;;
  stop)        take_lock; cmd_stop ;;
  status)      cmd_status ;;
  env)         cmd_env ;;
  pg-start)    need_stack; take_lock; pg_start ;;
  pg-stop)     need_stack; take_lock; pg_stop fast ;;
  pg-restart)  need_stack; take_lock; pg_stop fast; pg_start ;;
  pg-kill)     need_stack; take_lock; pg_stop immediate ;;
  kafka-start) need_stack; take_lock; kafka_start ;;
  kafka-stop)  need_stack; take_lock; kafka_stop TERM ;;
  kafka-kill)  need_stack; take_lock; kafka_stop KILL ;;
  -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) echo "stack: unknown command: ${cmd:-(none)}" >&2; sed -n '4,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
