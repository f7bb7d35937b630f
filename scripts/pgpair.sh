#!/usr/bin/env bash
# A throwaway PostgreSQL primary + streaming physical standby for failover tests (PG 15 on the host, or PG 17 in a trixie root).
#
# Usage: scripts/pgpair.sh [--pg17] COMMAND [ARG...]
#   start [DIR [PORT]]   create node n1 (primary, port PORT) and n2 (port PORT+1, a standby of n1:
#                        pg_basebackup -R with the physical slot pgpair_n2), start both, wait until
#                        n2 streams; write DIR/pair.env. Idempotent: restarts stopped nodes.
#   stop                 stop both nodes (-m immediate) and remove DIR
#   status               roles, ports, recovery state, replication and slots; exit 0 if the
#                        primary (and the standby, when there is one) runs
#   env                  print DIR/pair.env (shell exports), e.g.  eval "$(scripts/pgpair.sh env)"
#   promote              promote the standby (pg_ctl promote), wait until it accepts writes; it
#                        becomes the primary, the old primary is left as it is (kill it first)
#   kill-primary         crash the primary (pg_ctl -m immediate): "the old primary is gone"
#   reseed               after a promotion: stop the other node, wipe it and make it a fresh
#                        standby of the current primary (new slot, basebackup); a pair again
#   node-start NODE      start a node again (same data dir)
#   node-stop NODE       stop a node cleanly (pg_ctl -m fast)
#   node-kill NODE       crash a node (pg_ctl -m immediate)
#   psql NODE [ARG...]   psql -X -At to NODE as postgres, db postgres (e.g. psql primary -c 'SELECT 1')
#   wait-synced SLOT [SECONDS]  (PG 17) wait (default 60 s) until the standby has the failover
#                        slot SLOT synced, not temporary, not invalidated (usable after promotion).
#                        PG 17 keeps a new slot's synced copy temporary until the primary's slot
#                        has advanced past the standby's catalog xmin: consume from it first.
# NODE: primary, standby (the current roles), n1 or n2. After `promote`, the primary is n2 and
# there is no standby until `reseed`. pair.env is rewritten on every role change.
#
# What the pair looks like:
#   - both nodes: wal_level=logical, wal2json allowed (output_plugin_libraries when the
#     server has it), hot_standby_feedback=on, the settings of scripts/stack.sh's server;
#     node-specific port/socket in DATA/pgpair-node.conf (included last).
#   - standby: primary_conninfo (application_name=pgpair_nX, dbname=postgres) and
#     primary_slot_name=pgpair_nX from pg_basebackup -R.
#   - PG 17 (--pg17): postgresql.conf also has sync_replication_slots=on and
#     synchronized_standby_slots='pgpair_n2' (the standby's physical slot). As in production,
#     pg_basebackup copies it to the standby, so after `promote` the new primary still names
#     a slot it does not have (logical walsenders then wait with a WARNING) until `reseed`
#     (which sets it to the new standby's slot) or an ALTER SYSTEM by the test.
#     Binaries: PostgreSQL 17 + wal2json 2.6 from the trixie root of scripts/pg17-root.sh
#     (built on first use, cached); DIR is bind-mounted at /pgpair inside the root.
#
# Environment (read on the first `start`; later commands use the values in DIR/pair.conf):
#   PGPAIR_DIR       state dir (default /tmp/outboxd-pgpair; `start DIR` wins)
#   PGPAIR_PORT      n1's port; n2 gets PORT+1 (default 25460; `start DIR PORT` wins)
#   PGPAIR_VERSION   15 (host binaries) or 17 (trixie root); --pg17 = PGPAIR_VERSION=17
#   PGPAIR_PGBIN     PG 15 binaries (default /usr/lib/postgresql/15/bin)
#   OUTBOXD_TEST_CACHE  where scripts/pg17-root.sh keeps the trixie root
# pair.env exports PGPAIR_DIR, PGPAIR_VERSION, PGPAIR_PRIMARY / _STANDBY (node names),
# PGPAIR_{N1,N2,PRIMARY,STANDBY}_PORT and _CONNINFO, PGPAIR_STANDBY_SLOT, PGPAIR_PSQL and
# PGPAIR_CONNINFO = 'host=127.0.0.1,127.0.0.1 port=P1,P2 user=postgres dbname=postgres
# target_session_attrs=read-write' (libpq picks whichever node is read-write).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/pg.sh"  # port_open now_ms pg_opl_line pg_test_conf pg_test_hba

SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PG17_ROOT_SH=$SCRIPTS/pg17-root.sh

say() { printf 'pgpair: %s\n' "$*"; }
die() { printf 'pgpair: ERROR: %s\n' "$*" >&2; exit 1; }

# --- arguments ------------------------------------------------------------------------

want_version=${PGPAIR_VERSION:-}
while [[ ${1:-} == --* ]]; do
  case $1 in
    --pg17) want_version=17; shift ;;
    --pg15) want_version=15; shift ;;
    --help) set -- help; break ;;
    *) die "unknown option $1" ;;
  esac
done
cmd=${1:-}
[[ $# -gt 0 ]] && shift
if [[ $cmd == start ]]; then
  while [[ ${1:-} == --pg1[57] ]]; do want_version=${1#--pg}; shift; done
  [[ -n ${1:-} ]] && PGPAIR_DIR=$1
  [[ -n ${2:-} ]] && PGPAIR_PORT=$2
fi

DIR=${PGPAIR_DIR:-/tmp/outboxd-pgpair}
[[ $DIR == /* ]] || DIR=$PWD/$DIR
DIR=${DIR%/}
CONF=$DIR/pair.conf
ROLES=$DIR/roles
MARKER=$DIR/.outboxd-pgpair
ENV_FILE=$DIR/pair.env

if [[ -f $CONF ]]; then
  # shellcheck source=/dev/null
  source "$CONF"
  if [[ -n $want_version && $want_version != "$VERSION" ]]; then
    die "the pair in $DIR runs PostgreSQL $VERSION; run '$0 stop' first to get $want_version"
  fi
  if [[ $cmd == start && -n ${PGPAIR_PORT:-} && $PGPAIR_PORT != "$PORT1" ]]; then
    die "the pair in $DIR uses port $PORT1; run '$0 stop' first"
  fi
else
  VERSION=${want_version:-15}
  PORT1=${PGPAIR_PORT:-25460}
  PORT2=$((PORT1 + 1))
  PGBIN=${PGPAIR_PGBIN:-/usr/lib/postgresql/15/bin}
fi
[[ $VERSION == 15 || $VERSION == 17 ]] || die "PGPAIR_VERSION must be 15 or 17, not $VERSION"
PRIMARY=n1 STANDBY=n2
# shellcheck source=/dev/null
[[ -f $ROLES ]] && source "$ROLES"

# Paths as the servers see them: DIR itself (15) or its bind mount in the trixie root (17).
if [[ $VERSION == 17 ]]; then INNER=/pgpair; else INNER=$DIR; fi
PSQL=$PGBIN/psql  # the host's psql also talks to the PG 17 servers
[[ -x $PSQL ]] || PSQL=$(command -v psql) || die "no psql found; run scripts/install-deps.sh"

# --- running PostgreSQL programs ---------------------------------------------------------

# Run PostgreSQL program $1 (initdb, pg_ctl, postgres, ...) of the pair's version as postgres.
pgx() {
  if [[ $VERSION == 17 ]]; then
    "$PG17_ROOT_SH" run -u postgres -b "$DIR:$INNER" -- "/usr/lib/postgresql/17/bin/$1" "${@:2}"
  elif [[ $EUID -eq 0 ]]; then
    runuser -u postgres -- "$PGBIN/$1" "${@:2}"
  else
    "$PGBIN/$1" "${@:2}"
  fi
}

# uid:gid the servers run as (chown of DIR's node dirs from the host).
pg_owner() {
  local pw=/etc/passwd
  [[ $VERSION == 17 ]] && pw=$("$PG17_ROOT_SH" path)/etc/passwd
  awk -F: '$1 == "postgres" { print $3 ":" $4 }' "$pw"
}

port_of() { if [[ $1 == n1 ]]; then echo "$PORT1"; else echo "$PORT2"; fi; }
other_of() { if [[ $1 == n1 ]]; then echo n2; else echo n1; fi; }
conninfo_of() { echo "host=127.0.0.1 port=$(port_of "$1") user=postgres dbname=postgres"; }
slot_of() { echo "pgpair_$1"; }  # the physical slot node $1 streams from, on its primary

# node NAME -> n1/n2
node_of() {
  case ${1:-} in
    n1|n2) echo "$1" ;;
    primary) echo "$PRIMARY" ;;
    standby) [[ -n $STANDBY ]] || die "there is no standby (promoted; run: $0 reseed)"; echo "$STANDBY" ;;
    *) die "NODE must be primary, standby, n1 or n2, not '${1:-}'" ;;
  esac
}

# q NODE SQL: one query, unaligned output.
q() {
  PGCONNECT_TIMEOUT=5 "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(port_of "$1")" \
    -U postgres -d postgres -c "$2"
}

node_running() {
  [[ -f $DIR/$1/data/PG_VERSION ]] && pgx pg_ctl -D "$INNER/$1/data" status >/dev/null 2>&1
}

# $1: node; $2: seconds; $3: SQL; $4: expected output.
wait_sql() {
  local deadline=$((SECONDS + $2)) out=''
  while :; do
    out=$(q "$1" "$3" 2>&1) && [[ $out == "$4" ]] && return 0
    ((SECONDS < deadline)) || { say "waited $2 s for [$3] = '$4' on $1; last: $out"; return 1; }
    sleep 0.1
  done
}

# --- state --------------------------------------------------------------------------------

ensure_state_dir() {
  if [[ -e $DIR && ! -f $MARKER && -n $(ls -A "$DIR" 2>/dev/null) ]]; then
    die "$DIR exists, is not empty and is not a pgpair dir"
  fi
  mkdir -p "$DIR"
  chmod 755 "$DIR"
  touch "$MARKER"
  if [[ $VERSION == 15 && $EUID -eq 0 ]]; then
    runuser -u postgres -- test -x "$DIR" \
      || die "user postgres cannot reach $DIR; pick a PGPAIR_DIR outside private dirs"
  fi
  [[ -f $CONF ]] || cat >"$CONF" <<EOF
# Written by scripts/pgpair.sh on first start; later commands read it.
VERSION=$VERSION
PORT1=$PORT1
PORT2=$PORT2
PGBIN='$PGBIN'
EOF
}

save_roles() {
  printf 'PRIMARY=%s\nSTANDBY=%s\n' "$PRIMARY" "$STANDBY" >"$ROLES"
  write_env
}

write_env() {
  local s_port='' s_ci=''
  if [[ -n $STANDBY ]]; then s_port=$(port_of "$STANDBY"); s_ci=$(conninfo_of "$STANDBY"); fi
  cat >"$ENV_FILE.tmp" <<EOF
# outboxd failover pair (scripts/pgpair.sh); load with: eval "\$(scripts/pgpair.sh env)"
export PGPAIR_DIR='$DIR'
export PGPAIR_VERSION='$VERSION'
export PGPAIR_PRIMARY='$PRIMARY'
export PGPAIR_STANDBY='$STANDBY'
export PGPAIR_N1_PORT='$PORT1'
export PGPAIR_N2_PORT='$PORT2'
export PGPAIR_N1_CONNINFO='$(conninfo_of n1)'
export PGPAIR_N2_CONNINFO='$(conninfo_of n2)'
export PGPAIR_PRIMARY_PORT='$(port_of "$PRIMARY")'
export PGPAIR_PRIMARY_CONNINFO='$(conninfo_of "$PRIMARY")'
export PGPAIR_STANDBY_PORT='$s_port'
export PGPAIR_STANDBY_CONNINFO='$s_ci'
export PGPAIR_STANDBY_SLOT='$([[ -z $STANDBY ]] || slot_of "$STANDBY")'
export PGPAIR_CONNINFO='host=127.0.0.1,127.0.0.1 port=$PORT1,$PORT2 user=postgres dbname=postgres target_session_attrs=read-write'
export PGPAIR_PSQL='$PSQL'
EOF
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

take_lock() {
  mkdir -p "$(dirname "$DIR")"
  exec 9>"$DIR.lock"
  flock -w 300 9 || die "could not lock $DIR.lock"
}

# --- nodes ----------------------------------------------------------------------------------

# A fresh node dir: $1 node. Owned by the servers' user; logs readable by everyone.
new_node_dir() {
  local n=$1 owner
  owner=$(pg_owner) || die "no postgres user"
  rm -rf "${DIR:?}/$n"
  mkdir -p "$DIR/$n/run"
  touch "$DIR/$n/postgresql.log"
  chmod 644 "$DIR/$n/postgresql.log"
  chown -R "$owner" "$DIR/$n"
}

# pgpair-node.conf: what differs between the nodes.
write_node_conf() {
  local n=$1
  cat >"$DIR/$n/data/pgpair-node.conf" <<EOF
# scripts/pgpair.sh: node $n (included last by postgresql.conf)
port = $(port_of "$n")
unix_socket_directories = '$INNER/$n/run'
EOF
  chown "$(pg_owner)" "$DIR/$n/data/pgpair-node.conf"
}

init_primary() {
  local n=$1 opl t0
  t0=$(now_ms)
  new_node_dir "$n"
  pgx initdb -D "$INNER/$n/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
    --no-sync --no-instructions >"$DIR/$n/initdb.log" 2>&1 \
    || { cat "$DIR/$n/initdb.log" >&2; die "initdb ($n) failed"; }
  opl=$(pg_opl_line pgx postgres)
  {
    pg_test_conf "outboxd failover pair (scripts/pgpair.sh)" "" "" "$opl"
    echo "hot_standby_feedback = on"
    echo "wal_receiver_status_interval = 1s"
    if [[ $VERSION == 17 ]]; then
      echo "# PostgreSQL 17 failover slots: the standby syncs failover slots from the primary;"
      echo "# logical walsenders on the primary wait for the standby's slot to have the WAL."
      echo "sync_replication_slots = on"
      echo "synchronized_standby_slots = '$(slot_of "$(other_of "$n")")'"
    fi
    echo "include_if_exists = 'pgpair-node.conf'"
  } >>"$DIR/$n/data/postgresql.conf"
  pg_test_hba "outboxd failover pair" >"$DIR/$n/data/pg_hba.conf"
  write_node_conf "$n"
  say "initdb $n ($(($(now_ms) - t0)) ms)"
}

start_node() {
  local n=$1 t0
  if node_running "$n"; then
    say "$n already running on 127.0.0.1:$(port_of "$n")"
    return 0
  fi
  [[ -f $DIR/$n/data/PG_VERSION ]] || die "$n has no data dir"
  port_open "$(port_of "$n")" && die "port $(port_of "$n") is in use by another process (set PGPAIR_PORT)"
  t0=$(now_ms)
  # 9>&-: the server must not inherit the lock fd.
  if ! pgx pg_ctl -D "$INNER/$n/data" -l "$INNER/$n/postgresql.log" -w -t 120 start >/dev/null 9>&-; then
    tail -n 30 "$DIR/$n/postgresql.log" >&2 || true
    die "$n did not start (log: $DIR/$n/postgresql.log)"
  fi
  say "$n up on 127.0.0.1:$(port_of "$n") ($(($(now_ms) - t0)) ms)"
}

# $1 node; $2 fast or immediate
stop_node() {
  local n=$1 mode=$2 t0
  if ! node_running "$n"; then
    say "$n not running"
    return 0
  fi
  t0=$(now_ms)
  if ! pgx pg_ctl -D "$INNER/$n/data" -m "$mode" -w -t 120 stop >/dev/null; then
    say "$n did not stop in 120 s (-m $mode); stopping it -m immediate"
    pgx pg_ctl -D "$INNER/$n/data" -m immediate -w -t 60 stop >/dev/null
  fi
  say "$n stopped (-m $mode, $(($(now_ms) - t0)) ms)"
}

# Wait until standby $2 streams from primary $1.
wait_streaming() {
  local p=$1 s=$2 t0
  t0=$(now_ms)
  wait_sql "$s" 60 "SELECT pg_is_in_recovery()" t || die "$s is not a standby (log: $DIR/$s/postgresql.log)"
  wait_sql "$p" 60 "SELECT state FROM pg_stat_replication WHERE application_name = 'pgpair_$s'" streaming \
    || die "$s does not stream from $p (logs: $DIR/$s/postgresql.log, $DIR/$p/postgresql.log)"
  wait_sql "$s" 60 "SELECT status FROM pg_stat_wal_receiver" streaming \
    || die "$s's WAL receiver does not stream (log: $DIR/$s/postgresql.log)"
  say "$s streams from $p ($(($(now_ms) - t0)) ms)"
}

# Make node $2 a fresh standby of running primary $1: physical slot, pg_basebackup -R, start.
make_standby() {
  local p=$1 s=$2 slot t0
  slot=$(slot_of "$s")
  [[ ! -f $DIR/$s/data/PG_VERSION ]] || stop_node "$s" immediate
  q "$p" "SELECT pg_create_physical_replication_slot('$slot', true)
          WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '$slot')" >/dev/null
  if [[ $VERSION == 17 ]]; then
    # The primary's logical walsenders wait for this standby's slot (not for a slot of a
    # former pair member, e.g. after a promotion: the inherited setting names its own slot).
    q "$p" "ALTER SYSTEM SET synchronized_standby_slots = '$slot'" >/dev/null
    q "$p" "SELECT pg_reload_conf()" >/dev/null
  fi
  new_node_dir "$s"
  t0=$(now_ms)
  # dbname in the conninfo: pg_basebackup 17 writes it into primary_conninfo (slot sync needs it).
  if ! pgx pg_basebackup -D "$INNER/$s/data" -R -S "$slot" -X stream -c fast --no-sync \
      -d "host=127.0.0.1 port=$(port_of "$p") user=postgres dbname=postgres application_name=pgpair_$s" \
      >"$DIR/$s/basebackup.log" 2>&1; then
    cat "$DIR/$s/basebackup.log" >&2
    die "pg_basebackup $p -> $s failed"
  fi
  say "pg_basebackup $p -> $s ($(($(now_ms) - t0)) ms)"
  write_node_conf "$s"
  if [[ $VERSION == 17 ]] && ! grep -q "^primary_conninfo = '.*dbname=postgres" "$DIR/$s/data/postgresql.auto.conf"; then
    die "pg_basebackup -R did not put dbname into primary_conninfo (slot sync needs it)"
  fi
  start_node "$s"
  wait_streaming "$p" "$s"
}

# --- commands -----------------------------------------------------------------------------

cmd_start() {
  if [[ $VERSION == 17 ]]; then
    local t0; t0=$(now_ms)
    "$PG17_ROOT_SH" ensure >/dev/null
    say "trixie root ready ($(($(now_ms) - t0)) ms)"
  else
    [[ -x $PGBIN/initdb ]] || die "$PGBIN/initdb not found; run scripts/install-deps.sh"
  fi
  ensure_state_dir
  if [[ ! -f $DIR/$PRIMARY/data/PG_VERSION ]]; then
    init_primary "$PRIMARY"
  fi
  start_node "$PRIMARY"
  if [[ -n $STANDBY ]]; then
    if [[ -f $DIR/$STANDBY/data/standby.signal ]]; then
      start_node "$STANDBY"
      wait_streaming "$PRIMARY" "$STANDBY"
    else
      make_standby "$PRIMARY" "$STANDBY"
    fi
  fi
  save_roles
  say "PostgreSQL $VERSION pair in $DIR: primary $PRIMARY (port $(port_of "$PRIMARY"))${STANDBY:+, standby $STANDBY (port $(port_of "$STANDBY"))}"
  say "env: $ENV_FILE   (eval \"\$($0 env)\")"
}

cmd_stop() {
  if [[ ! -e $DIR ]]; then
    say "no pair in $DIR"
    return 0
  fi
  [[ -f $MARKER ]] || die "$DIR is not a pgpair dir; not touching it"
  local n
  for n in n1 n2; do stop_node "$n" immediate; done
  rm -rf "$DIR"
  say "removed $DIR"
}

cmd_status() {
  local rc=0 n role out ident
  [[ -f $MARKER ]] || { say "no pair in $DIR"; return 1; }
  say "PostgreSQL $VERSION pair in $DIR"
  for n in n1 n2; do
    role=other
    [[ $n == "$PRIMARY" ]] && role=primary
    [[ $n == "$STANDBY" ]] && role=standby
    if node_running "$n"; then
      out=$(q "$n" "SELECT CASE WHEN pg_is_in_recovery() THEN 'in recovery' ELSE 'read-write' END" 2>&1) || true
      # IDENTIFY_SYSTEM: systemid|timeline|xlogpos|dbname (the timeline is current, unlike
      # pg_control_checkpoint()'s right after a promotion).
      ident=$(PGCONNECT_TIMEOUT=5 "$PSQL" -X -At -c IDENTIFY_SYSTEM \
        "$(conninfo_of "$n") replication=database" 2>/dev/null) || true
      [[ -z $ident ]] || out+=", system $(cut -d'|' -f1 <<<"$ident"), timeline $(cut -d'|' -f2 <<<"$ident")"
      say "$n ($role): running on 127.0.0.1:$(port_of "$n"): $out"
      q "$n" "SELECT '  replication to ' || application_name || ': ' || state
                FROM pg_stat_replication ORDER BY 1" 2>/dev/null | sed 's/^/pgpair: /' || true
      if [[ $VERSION == 17 ]]; then
        q "$n" "SELECT format('  slot %s: %s %s, active %s, failover %s, synced %s, invalidation %s',
                  slot_name, slot_type, coalesce(plugin, ''), active, failover, synced,
                  coalesce(invalidation_reason, '-')) FROM pg_replication_slots ORDER BY 1" 2>/dev/null \
          | sed 's/^/pgpair: /' || true
      else
        q "$n" "SELECT format('  slot %s: %s %s, active %s, wal_status %s',
                  slot_name, slot_type, coalesce(plugin, ''), active, coalesce(wal_status, '-'))
                  FROM pg_replication_slots ORDER BY 1" 2>/dev/null | sed 's/^/pgpair: /' || true
      fi
    else
      say "$n ($role): not running"
      [[ $role == other ]] || rc=1
    fi
  done
  return $rc
}

cmd_env() {
  [[ -f $ENV_FILE ]] || die "no $ENV_FILE; run: $0 start"
  cat "$ENV_FILE"
}

cmd_promote() {
  [[ -n $STANDBY ]] || die "there is no standby to promote (run: $0 reseed)"
  local s=$STANDBY t0
  node_running "$s" || die "the standby $s is not running"
  t0=$(now_ms)
  pgx pg_ctl -D "$INNER/$s/data" -w -t 60 promote >/dev/null || die "pg_ctl promote ($s) failed"
  # Read-write means a transaction id can be assigned (an error while in recovery).
  wait_sql "$s" 60 "SELECT pg_current_xact_id() IS NOT NULL" t \
    || die "$s does not accept writes after promotion (log: $DIR/$s/postgresql.log)"
  say "promoted $s: read-write on 127.0.0.1:$(port_of "$s") ($(($(now_ms) - t0)) ms)"
  PRIMARY=$s STANDBY=''
  save_roles
}

cmd_reseed() {
  local p=$PRIMARY s
  s=$(other_of "$p")
  node_running "$p" || die "the primary $p is not running"
  [[ $(q "$p" "SELECT pg_is_in_recovery()") == f ]] || die "$p is in recovery; promote first"
  make_standby "$p" "$s"
  STANDBY=$s
  save_roles
  say "reseeded: primary $p (port $(port_of "$p")), standby $s (port $(port_of "$s"))"
}

cmd_psql() {
  local n
  n=$(node_of "${1:-}")
  shift
  PGCONNECT_TIMEOUT=5 exec "$PSQL" -X -At -h 127.0.0.1 -p "$(port_of "$n")" -U postgres -d postgres "$@"
}

cmd_wait_synced() {
  local slot=${1:-} secs=${2:-60} t0
  [[ $VERSION == 17 ]] || die "wait-synced needs a PostgreSQL 17 pair (failover slots)"
  [[ $slot =~ ^[a-z0-9_]+$ ]] || die "usage: $0 wait-synced SLOT [SECONDS]"
  [[ -n $STANDBY ]] || die "there is no standby (run: $0 reseed)"
  t0=$(now_ms)
  wait_sql "$STANDBY" "$secs" "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot'
      AND synced AND NOT temporary AND invalidation_reason IS NULL" 1 \
    || die "slot $slot is not synced to $STANDBY after $secs s (log: $DIR/$STANDBY/postgresql.log)"
  say "slot $slot synced to $STANDBY ($(($(now_ms) - t0)) ms)"
}

need_pair() { [[ -f $MARKER ]] || die "no pair in $DIR; run: $0 start"; }

case $cmd in
  start)        take_lock; cmd_start ;;
  stop)         take_lock; cmd_stop ;;
  status)       cmd_status ;;
  env)          cmd_env ;;
  promote)      need_pair; take_lock; cmd_promote ;;
  kill-primary) need_pair; take_lock; stop_node "$PRIMARY" immediate ;;
  reseed)       need_pair; take_lock; cmd_reseed ;;
  node-start)   need_pair; n=$(node_of "${1:-}"); take_lock; start_node "$n" ;;
  node-stop)    need_pair; n=$(node_of "${1:-}"); take_lock; stop_node "$n" fast ;;
  node-kill)    need_pair; n=$(node_of "${1:-}"); take_lock; stop_node "$n" immediate ;;
  psql)         need_pair; cmd_psql "$@" ;;
  wait-synced)  need_pair; cmd_wait_synced "$@" ;;
  -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) echo "pgpair: unknown command: ${cmd:-(none)}" >&2; sed -n '4,26p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
