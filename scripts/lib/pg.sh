# Shared shell helpers of scripts/stack.sh and scripts/pgpair.sh (sourced, not run).
# shellcheck shell=bash
#
# Usage: source "$(dirname "${BASH_SOURCE[0]}")/lib/pg.sh"
# Defines functions only (no settings, no side effects); callers run under set -euo pipefail.

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# True if pid $1 exists and is not a zombie (PID 1 in containers may not reap).
alive() {
  local st
  [[ -r /proc/$1/stat ]] || return 1
  st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n $st && $st != Z ]]
}

# $1: seconds to wait; $2...: ports that must stop accepting connections.
wait_ports_free() {
  local deadline=$((SECONDS + $1)) p
  shift
  for p in "$@"; do
    while port_open "$p"; do
      ((SECONDS < deadline)) || return 1
      sleep 0.1
    done
  done
}

now_ms() { date +%s%3N; }

# output_plugin_libraries exists from 15.20/16.15/17.11/18.6 on; wal2json must be listed.
# $@: the command that runs the server binary (e.g. runuser -u postgres -- .../postgres).
# Prints the postgresql.conf line, or nothing on a server without the setting.
pg_opl_line() {
  local gucs
  gucs=$("$@" --describe-config 2>/dev/null || true)
  if [[ $'\n'$gucs == *$'\n'output_plugin_libraries$'\t'* ]]; then
    echo "output_plugin_libraries = 'pgoutput, test_decoding, wal2json'"
  fi
}

# The test servers' postgresql.conf block (appended to initdb's file).
# $1: title; $2: port and $3: socket dir (both omitted when empty); $4: pg_opl_line's output.
pg_test_conf() {
  local title=$1 port=$2 sock=$3 opl=$4
  printf '\n# ---- %s ----\n' "$title"
  echo "listen_addresses = '127.0.0.1'"
  [[ -z $port ]] || echo "port = $port"
  [[ -z $sock ]] || echo "unix_socket_directories = '$sock'"
  cat <<EOF
max_connections = 200
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
$opl
# Throwaway data: durability is not under test here.
fsync = off
full_page_writes = off
log_line_prefix = '%m [%p] %q%u@%d '
log_replication_commands = on
log_min_messages = info
# bench/ and its smoke test read commit times (pg_xact_commit_timestamp).
track_commit_timestamp = on
EOF
}

# The test servers' pg_hba.conf. $1: title.
pg_test_hba() {
  cat <<EOF
# $1: trust, local socket and 127.0.0.1 only.
local   all          all                 trust
local   replication  all                 trust
host    all          all   127.0.0.1/32  trust
host    replication  all   127.0.0.1/32  trust
EOF
}
