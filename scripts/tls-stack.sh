#!/usr/bin/env bash
# Throwaway TLS/SASL test servers: PostgreSQL 15 (ssl = on, hostssl-only pg_hba, scram-sha-256)
# and a single-node Kafka 3.9.1 with SASL_SSL listeners (SCRAM-SHA-512), certificates from a
# throwaway CA made with openssl. Runs next to scripts/stack.sh's plain stack.
#
# Usage: scripts/tls-stack.sh COMMAND
#   start          make the certificates and secrets, start both servers (idempotent), wait
#                  until ready, write tls-stack.env
#   stop           kill both servers and delete the state dir
#   status         exit 0 only if both run
#   env            print the exports of tls-stack.env (eval "$(scripts/tls-stack.sh env)")
#   pg-cert NAME   PostgreSQL serves certificate NAME (good | expired) from now on (reload)
#
# What it makes (in <dir>/tls, <dir>/secrets; tls-stack.env names every path):
#   ca.pem         the CA that signed the servers' certificates (give it to the clients)
#   other-ca.pem   a second CA that signed nothing the servers use ("wrong CA")
#   server.pem     the servers' certificate: subjectAltName DNS:localhost only, so a client
#                  that connects to 127.0.0.1 with host name verification fails ("wrong host")
#   expired.pem    the same name and key, valid 2020-01-01..2020-01-02 ("expired")
#   secrets/*      random passwords, one per file (mode 600): pg-postgres, pg-outboxd,
#                  pg-inboxd (PostgreSQL roles postgres, outboxd (REPLICATION), inboxd) and
#                  kafka-admin, kafka-outboxd, kafka-inboxd (SCRAM-SHA-512 users)
# PostgreSQL: TCP only with TLS (hostssl ... scram-sha-256, on 127.0.0.1), plus trust on its
# unix socket (<dir>/pg/run) for the scripts' and tests' own setup as postgres.
# Kafka: SASL_SSL on localhost:PORT with server.pem, SASL_SSL on localhost:PORT+2 with
# expired.pem, the KRaft controller on 127.0.0.1:PORT+1 (PLAINTEXT, broker-internal). The
# brokers' own connection uses SASL_SSL as user admin. No authorizer: any authenticated user
# may do anything.
#
# Environment (first start only; later commands use the values recorded in the state dir):
#   OUTBOXD_STACK_TLS_DIR         state dir              (default /tmp/outboxd-tls-stack)
#   OUTBOXD_STACK_TLS_PG_PORT     PostgreSQL TCP port    (default 15442)
#   OUTBOXD_STACK_TLS_KAFKA_PORT  Kafka SASL_SSL port    (default 19102; +1 controller, +2 expired)
#   OUTBOXD_STACK_KAFKA_LIBS      Kafka jar dir          (default ~/.cache/outboxd/kafka-3.9.1)
#   OUTBOXD_STACK_PGBIN           PostgreSQL binaries    (default /usr/lib/postgresql/15/bin)
# (OUTBOXD_STACK_* variables are not configuration: the daemons skip them.)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/kafka.sh"  # kafka_single_node_props kafka_write_log4j kafka_cluster_id
source "$(dirname "${BASH_SOURCE[0]}")/lib/pg.sh"  # port_open alive wait_ports_free now_ms pg_*

STACK_DIR=${OUTBOXD_STACK_TLS_DIR:-/tmp/outboxd-tls-stack}
STACK_DIR=${STACK_DIR%/}
CONF=$STACK_DIR/stack.conf
MARKER=$STACK_DIR/.outboxd-tls-stack

say() { printf 'tls-stack: %s\n' "$*"; }
die() { printf 'tls-stack: ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -f $CONF ]]; then
  # shellcheck source=/dev/null
  source "$CONF"
  for v in PG_PORT KAFKA_PORT; do
    envv="OUTBOXD_STACK_TLS_$v"
    if [[ -n ${!envv:-} && ${!envv} != "${!v}" ]]; then
      die "$envv=${!envv} but the stack in $STACK_DIR uses $v=${!v}; run '$0 stop' first"
    fi
  done
else
  PG_PORT=${OUTBOXD_STACK_TLS_PG_PORT:-15442}
  KAFKA_PORT=${OUTBOXD_STACK_TLS_KAFKA_PORT:-19102}
  KAFKA_LIBS=${OUTBOXD_STACK_KAFKA_LIBS:-${OUTBOXD_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outboxd}/kafka-3.9.1}
  PGBIN=${OUTBOXD_STACK_PGBIN:-/usr/lib/postgresql/15/bin}
fi
CTRL_PORT=$((KAFKA_PORT + 1))
EXPIRED_PORT=$((KAFKA_PORT + 2))

TLS=$STACK_DIR/tls
SECRETS=$STACK_DIR/secrets
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
ENV_FILE=$STACK_DIR/tls-stack.env

as_pg() {
  if [[ $EUID -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

take_lock() {
  mkdir -p "$(dirname "$STACK_DIR")"
  exec 9>"$STACK_DIR.lock"
  flock -w 300 9 || die "could not lock $STACK_DIR.lock"
}

ensure_state_dir() {
  if [[ -e $STACK_DIR && ! -f $MARKER && -n $(ls -A "$STACK_DIR" 2>/dev/null) ]]; then
    die "$STACK_DIR exists, is not empty and is not an outboxd TLS stack dir"
  fi
  mkdir -p "$STACK_DIR"
  chmod 755 "$STACK_DIR"
  touch "$MARKER"
  [[ -f $CONF ]] || cat >"$CONF" <<EOF
# Written by scripts/tls-stack.sh on first start; later commands read it.
PG_PORT=$PG_PORT
KAFKA_PORT=$KAFKA_PORT
KAFKA_LIBS='$KAFKA_LIBS'
PGBIN='$PGBIN'
EOF
}

secret() { cat "$SECRETS/$1"; }

# --- certificates and secrets -------------------------------------------------------

# $1: CA name (file prefix), $2: subject CN
make_ca() {
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TLS/$1.key" -out "$TLS/$1.pem" -days 3650 \
    -subj "/CN=$2" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    >/dev/null 2>&1 || die "openssl could not make the CA $1"
}

# $1: output certificate, $2, $3: validity (openssl ca -startdate/-enddate, YYYYMMDDHHMMSSZ)
sign_server() {
  openssl ca -batch -config "$TLS/ca.cnf" -cert "$TLS/ca.pem" -keyfile "$TLS/ca.key" -in "$TLS/server.csr" \
    -out "$1" -startdate "$2" -enddate "$3" -extfile "$TLS/server-ext.cnf" -notext >/dev/null 2>&1 \
    || die "openssl could not sign $1"
}

make_certs() {
  [[ -f $TLS/.complete ]] && return 0
  say "making a throwaway CA and server certificates in $TLS"
  rm -rf "$TLS"
  mkdir -p "$TLS"
  make_ca ca "outboxd TLS test CA"
  make_ca other-ca "outboxd TLS test CA (another one)"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$TLS/server.key" -out "$TLS/server.csr" -subj /CN=localhost \
    >/dev/null 2>&1 || die "openssl could not make the server key"
  printf 'subjectAltName = DNS:localhost\nextendedKeyUsage = serverAuth\n' >"$TLS/server-ext.cnf"
  : >"$TLS/index.txt"
  echo 01 >"$TLS/serial"
  cat >"$TLS/ca.cnf" <<EOF
[ca]
default_ca = test_ca
[test_ca]
database = $TLS/index.txt
new_certs_dir = $TLS
serial = $TLS/serial
default_md = sha256
policy = any_name
unique_subject = no
[any_name]
commonName = supplied
EOF
  sign_server "$TLS/server.pem" "$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)" "$(date -u -d '+3650 days' +%Y%m%d%H%M%SZ)"
  sign_server "$TLS/expired.pem" 20200101000000Z 20200102000000Z
  # Kafka's PEM keystore: the key as PKCS#8 encrypted with a legacy PBE scheme (Java 17 has
  # no PBES2 SecretKeyFactory), then the certificate.
  openssl rand -hex 16 >"$TLS/keystore.pass"
  local kp; kp=$(<"$TLS/keystore.pass")
  openssl pkcs8 -topk8 -v1 PBE-SHA1-3DES -in "$TLS/server.key" -out "$TLS/server-pkcs8.key" -passout "pass:$kp" \
    || die "openssl could not convert the key for Kafka"
  cat "$TLS/server-pkcs8.key" "$TLS/server.pem" >"$TLS/kafka-keystore.pem"
  cat "$TLS/server-pkcs8.key" "$TLS/expired.pem" >"$TLS/kafka-expired-keystore.pem"
  chmod 644 "$TLS"/*.pem
  chmod 600 "$TLS"/*.key "$TLS/keystore.pass"
  touch "$TLS/.complete"
}

make_secrets() {
  [[ -f $SECRETS/.complete ]] && return 0
  rm -rf "$SECRETS"
  mkdir -p "$SECRETS"
  local s
  for s in pg-postgres pg-outboxd pg-inboxd kafka-admin kafka-outboxd kafka-inboxd; do
    # A recognisable prefix and a random tail: a test can look for it in every output.
    printf 'S3cr3t-%s-%s' "$s" "$(openssl rand -hex 8)" >"$SECRETS/$s"
  done
  chmod 700 "$SECRETS"
  chmod 600 "$SECRETS"/*
  touch "$SECRETS/.complete"
}

# --- PostgreSQL ---------------------------------------------------------------------

pg_running() {
  [[ -f $PG_DATA/PG_VERSION ]] && as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

psql_socket() {
  "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -At -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres "$@"
}

pg_init() {
  [[ -x $PGBIN/initdb ]] || die "$PGBIN/initdb not found; run scripts/install-deps.sh"
  [[ -f $PG_DATA/PG_VERSION ]] && return 0
  say "initdb $PG_DATA"
  rm -rf "$PG_DIR"
  mkdir -p "$PG_DATA" "$PG_SOCK"
  chmod 700 "$PG_DATA"
  install -m 600 "$TLS/server.key" "$PG_DIR/server.key"
  install -m 644 "$TLS/server.pem" "$PG_DIR/server.crt"
  if [[ $EUID -eq 0 ]]; then
    chown -R postgres:postgres "$PG_DIR"
    runuser -u postgres -- test -x "$PG_DIR" \
      || die "user postgres cannot reach $PG_DIR; pick an OUTBOXD_STACK_TLS_DIR outside private dirs"
  fi
  as_pg "$PGBIN/initdb" -D "$PG_DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 \
    --locale=C.UTF-8 --no-sync --no-instructions >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
  local opl; opl=$(pg_opl_line as_pg "$PGBIN/postgres")
  {
    pg_test_conf "outboxd TLS test stack (scripts/tls-stack.sh)" "$PG_PORT" "$PG_SOCK" "$opl"
    cat <<EOF
ssl = on
ssl_cert_file = '$PG_DIR/server.crt'
ssl_key_file = '$PG_DIR/server.key'
ssl_min_protocol_version = 'TLSv1.2'
password_encryption = 'scram-sha-256'
EOF
  } | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
  as_pg tee "$PG_DATA/pg_hba.conf" >/dev/null <<EOF
# outboxd TLS test stack: TCP only with TLS and SCRAM; the unix socket (in the state dir)
# trusts everyone, for the scripts' and tests' own setup.
local    all          all                 trust
local    replication  all                 trust
hostssl  all          all   127.0.0.1/32  scram-sha-256
hostssl  replication  all   127.0.0.1/32  scram-sha-256
EOF
}

# Login roles with the stack's passwords (idempotent).
pg_roles() {
  local sql=""
  sql+="ALTER ROLE postgres PASSWORD '$(secret pg-postgres)';"
  sql+="DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'outboxd') THEN CREATE ROLE outboxd LOGIN REPLICATION; END IF;"
  sql+=" IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'inboxd') THEN CREATE ROLE inboxd LOGIN; END IF; END \$\$;"
  sql+="ALTER ROLE outboxd PASSWORD '$(secret pg-outboxd)';"
  sql+="ALTER ROLE inboxd PASSWORD '$(secret pg-inboxd)';"
  psql_socket -c "$sql" >/dev/null || die "could not create the PostgreSQL roles"
}

pg_start() {
  if pg_running; then
    say "PostgreSQL already running on 127.0.0.1:$PG_PORT (TLS)"
    return 0
  fi
  pg_init
  port_open "$PG_PORT" && die "port $PG_PORT is in use by another process (set OUTBOXD_STACK_TLS_PG_PORT)"
  local t0; t0=$(now_ms)
  if [[ ! -e $PG_LOG ]]; then
    as_pg touch "$PG_LOG"; chmod 644 "$PG_LOG"
  fi
  if ! as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 120 start >/dev/null 9>&-; then
    tail -n 30 "$PG_LOG" >&2 || true
    die "PostgreSQL did not start (log: $PG_LOG)"
  fi
  pg_roles
  # The self-check goes the way the clients go: TLS, verify-full, SCRAM.
  local out
  out=$(PGPASSWORD=$(secret pg-postgres) "$PGBIN/psql" -X -At -d \
    "host=localhost hostaddr=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres sslmode=verify-full sslrootcert=$TLS/ca.pem" \
    -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()" 2>&1) \
    || die "PostgreSQL self-check over TLS failed: $out"
  [[ $out == t ]] || die "PostgreSQL self-check: the connection is not encrypted ($out)"
  say "PostgreSQL up on 127.0.0.1:$PG_PORT, TLS only ($(($(now_ms) - t0)) ms)"
}

# $1: good | expired
pg_cert() {
  local src
  case ${1:-} in
    good) src=$TLS/server.pem ;;
    expired) src=$TLS/expired.pem ;;
    *) die "pg-cert: expected good or expired, not '${1:-}'" ;;
  esac
  pg_running || die "PostgreSQL is not running; run: $0 start"
  install -m 644 "$src" "$PG_DIR/server.crt.new"
  [[ $EUID -ne 0 ]] || chown postgres:postgres "$PG_DIR/server.crt.new"
  mv "$PG_DIR/server.crt.new" "$PG_DIR/server.crt"
  psql_socket -c "SELECT pg_reload_conf()" >/dev/null
  # The postmaster loads the new certificate on SIGHUP; wait until a handshake shows it.
  local want got deadline=$((SECONDS + 20))
  want=$(openssl x509 -in "$src" -noout -fingerprint -sha256)
  while :; do
    got=$(openssl s_client -connect "127.0.0.1:$PG_PORT" -starttls postgres </dev/null 2>/dev/null \
      | openssl x509 -noout -fingerprint -sha256 2>/dev/null || true)
    [[ $got == "$want" ]] && break
    ((SECONDS < deadline)) || die "PostgreSQL does not serve $src 20 s after the reload"
    sleep 0.1
  done
  say "PostgreSQL serves $(basename "$src")"
}

pg_stop() {
  pg_running || return 0
  as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 60 stop >/dev/null
}

# --- Kafka ------------------------------------------------------------------------------

kafka_pid() {
  local pid cmdline
  [[ -f $K_PID ]] || return 1
  pid=$(<"$K_PID")
  [[ -n $pid ]] && alive "$pid" || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"kafka.Kafka $K_PROPS"* ]] || return 1
  echo "$pid"
}

kafka_init() {
  [[ -f $KAFKA_LIBS/.outboxd-complete ]] \
    || die "Kafka jars not found in $KAFKA_LIBS; run scripts/install-deps.sh"
  command -v java >/dev/null || die "java not found; run scripts/install-deps.sh"
  mkdir -p "$K_DATA"
  local kp admin jaas
  kp=$(<"$TLS/keystore.pass")
  admin=$(secret kafka-admin)
  jaas="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$admin\";"
  (umask 077; cat >"$K_PROPS" <<EOF
# outboxd TLS test stack: single-node KRaft broker+controller with SASL_SSL (scripts/tls-stack.sh).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CTRL_PORT
listeners=SASL_SSL://localhost:$KAFKA_PORT,EXPIRED://localhost:$EXPIRED_PORT,CONTROLLER://127.0.0.1:$CTRL_PORT
advertised.listeners=SASL_SSL://localhost:$KAFKA_PORT,EXPIRED://localhost:$EXPIRED_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=SASL_SSL:SASL_SSL,EXPIRED:SASL_SSL,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=$jaas
listener.name.expired.scram-sha-512.sasl.jaas.config=$jaas
ssl.keystore.type=PEM
ssl.keystore.location=$TLS/kafka-keystore.pem
ssl.key.password=$kp
ssl.truststore.type=PEM
ssl.truststore.location=$TLS/ca.pem
listener.name.expired.ssl.keystore.type=PEM
listener.name.expired.ssl.keystore.location=$TLS/kafka-expired-keystore.pem
listener.name.expired.ssl.key.password=$kp
log.dirs=$K_DATA
$(kafka_single_node_props)
EOF
  )
  kafka_write_log4j "$K_LOG4J"
  if [[ ! -f $K_DATA/meta.properties ]]; then
    local cid
    cid=$(kafka_cluster_id)
    say "formatting Kafka storage $K_DATA with SCRAM-SHA-512 users admin, outboxd, inboxd"
    java -cp "$KAFKA_LIBS/*" -Dlog4j.configuration="file:$K_LOG4J" \
      kafka.tools.StorageTool format -t "$cid" -c "$K_PROPS" \
      --add-scram "SCRAM-SHA-512=[name=admin,password=$admin]" \
      --add-scram "SCRAM-SHA-512=[name=outboxd,password=$(secret kafka-outboxd)]" \
      --add-scram "SCRAM-SHA-512=[name=inboxd,password=$(secret kafka-inboxd)]" >>"$K_LOG" 2>&1 \
      || { tail -n 30 "$K_LOG" >&2; die "Kafka storage format failed"; }
  fi
}

# kcat as admin over SASL_SSL with full verification. $@: kcat arguments.
kcat_admin() {
  kcat -b "localhost:$KAFKA_PORT" -X security.protocol=SASL_SSL -X sasl.mechanisms=SCRAM-SHA-512 \
    -X sasl.username=admin -X "sasl.password=$(secret kafka-admin)" -X "ssl.ca.location=$TLS/ca.pem" "$@"
}

kafka_answers() {
  local md
  md=$(kcat_admin -L -m 3 2>/dev/null) || return 1
  [[ $md == *"broker 1 at localhost:$KAFKA_PORT"* ]]
}

kafka_start() {
  if kafka_pid >/dev/null; then
    local deadline=$((SECONDS + 90))
    until kafka_answers; do
      ((SECONDS < deadline)) || die "Kafka (pid $(kafka_pid)) runs but does not answer (log: $K_LOG)"
      sleep 0.2
    done
    say "Kafka already running on localhost:$KAFKA_PORT (SASL_SSL)"
    return 0
  fi
  kafka_init
  wait_ports_free 5 "$KAFKA_PORT" "$CTRL_PORT" "$EXPIRED_PORT" \
    || die "port $KAFKA_PORT, $CTRL_PORT or $EXPIRED_PORT is in use (set OUTBOXD_STACK_TLS_KAFKA_PORT)"
  local t0 from pid
  t0=$(now_ms)
  from=$(($(stat -c %s "$K_LOG" 2>/dev/null || echo 0) + 1))
  rm -f "$K_PID"
  # shellcheck disable=SC2016  # $$ and $0 belong to the inner bash
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$K_PID" \
    java -Xms256m -Xmx512m -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$K_LOG4J" -cp "$KAFKA_LIBS/*" \
    kafka.Kafka "$K_PROPS" </dev/null >>"$K_LOG" 2>&1 9>&- &
  local deadline=$((SECONDS + 120))
  while :; do
    if pid=$(kafka_pid) && tail -c +"$from" "$K_LOG" | grep -q "Kafka Server started" && kafka_answers; then
      break
    fi
    if [[ -s $K_PID ]] && ! alive "$(<"$K_PID")"; then
      tail -c +"$from" "$K_LOG" | tail -n 30 >&2
      die "Kafka exited during startup (log: $K_LOG)"
    fi
    if ((SECONDS >= deadline)); then
      tail -c +"$from" "$K_LOG" | tail -n 30 >&2
      die "Kafka not ready after 120 s (log: $K_LOG)"
    fi
    sleep 0.3
  done
  say "Kafka up on localhost:$KAFKA_PORT, SASL_SSL (pid $pid, $(($(now_ms) - t0)) ms)"
}

kafka_stop() {
  local pid
  if pid=$(kafka_pid); then
    kill -KILL "$pid"
    local deadline=$((SECONDS + 20))
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    wait_ports_free 20 "$KAFKA_PORT" "$CTRL_PORT" "$EXPIRED_PORT" || say "warning: Kafka ports still open"
  fi
  rm -f "$K_PID"
}

# --- commands -----------------------------------------------------------------------

write_env() {
  cat >"$ENV_FILE.tmp" <<EOF
# outboxd TLS test stack (scripts/tls-stack.sh); load with: eval "\$(scripts/tls-stack.sh env)"
export OUTBOXD_STACK_TLS_DIR='$STACK_DIR'
export OUTBOXD_STACK_TLS_PG_HOST='localhost'
export OUTBOXD_STACK_TLS_PG_PORT='$PG_PORT'
export OUTBOXD_STACK_TLS_PG_SOCKET_DIR='$PG_SOCK'
export OUTBOXD_STACK_TLS_PGBIN='$PGBIN'
export OUTBOXD_STACK_TLS_KAFKA='localhost:$KAFKA_PORT'
export OUTBOXD_STACK_TLS_KAFKA_PORT='$KAFKA_PORT'
export OUTBOXD_STACK_TLS_KAFKA_EXPIRED='localhost:$EXPIRED_PORT'
export OUTBOXD_STACK_TLS_CA='$TLS/ca.pem'
export OUTBOXD_STACK_TLS_OTHER_CA='$TLS/other-ca.pem'
export OUTBOXD_STACK_TLS_SECRETS='$SECRETS'
export OUTBOXD_STACK_TLS_KAFKA_LIBS='$KAFKA_LIBS'
EOF
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

cmd_start() {
  command -v openssl >/dev/null || die "openssl not found; run scripts/install-deps.sh"
  ensure_state_dir
  make_certs
  make_secrets
  pg_start
  kafka_start
  write_env
  say "PostgreSQL: host=localhost port=$PG_PORT sslmode=verify-full sslrootcert=$TLS/ca.pem (log $PG_LOG)"
  say "Kafka:      localhost:$KAFKA_PORT SASL_SSL SCRAM-SHA-512 (log $K_LOG)"
  say "env:        $ENV_FILE   (eval \"\$($0 env)\")"
}

cmd_stop() {
  if [[ ! -e $STACK_DIR ]]; then
    say "no TLS stack in $STACK_DIR"
    return 0
  fi
  [[ -f $MARKER ]] || die "$STACK_DIR is not an outboxd TLS stack dir; not touching it"
  kafka_stop
  pg_stop
  rm -rf "$STACK_DIR"
  say "removed $STACK_DIR"
}

cmd_status() {
  local rc=0
  if pg_running; then say "PostgreSQL: running on 127.0.0.1:$PG_PORT (TLS)"; else say "PostgreSQL: not running"; rc=1; fi
  if kafka_pid >/dev/null; then say "Kafka:      running on localhost:$KAFKA_PORT (SASL_SSL)"; else say "Kafka:      not running"; rc=1; fi
  return $rc
}

need_stack() { [[ -f $MARKER ]] || die "no TLS stack in $STACK_DIR; run: $0 start"; }

cmd=${1:-}
case $cmd in
  start)   take_lock; cmd_start ;;
  stop)    take_lock; cmd_stop ;;
  status)  cmd_status ;;
  env)     [[ -f $ENV_FILE ]] || die "no $ENV_FILE; run: $0 start"; cat "$ENV_FILE" ;;
  pg-cert) need_stack; take_lock; pg_cert "${2:-}" ;;
  -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) echo "tls-stack: unknown command: ${cmd:-(none)}" >&2; sed -n '6,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
