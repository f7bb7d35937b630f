#!/usr/bin/env bash
# docker-entrypoint.sh - the part of the official postgres image's entrypoint that
# docker-compose.yml uses: as root, prepare PGDATA and drop to the postgres user; on an empty
# data directory, initdb with POSTGRES_USER / POSTGRES_PASSWORD (scram-sha-256 for every host
# connection), create POSTGRES_DB, run /docker-entrypoint-initdb.d/*.sh and *.sql against a
# server that listens on the Unix socket only; then run the server.
set -Eeuo pipefail
if [[ ${1:0:1} == - ]]; then set -- postgres "$@"; fi
if [[ $1 == postgres && $(id -u) == 0 ]]; then
  mkdir -p "$PGDATA"
  chown -R postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi
if [[ $1 == postgres && ! -s $PGDATA/PG_VERSION ]]; then
  export POSTGRES_USER=${POSTGRES_USER:-postgres}
  export POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
  [[ -n ${POSTGRES_PASSWORD:-} ]] || { echo "docker-entrypoint: POSTGRES_PASSWORD is not set" >&2; exit 1; }
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") -D "$PGDATA" \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  # The temporary server takes the same -c settings (wal_level=logical for the init scripts).
  opts=$(printf "%q " "${@:2}")
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' $opts" start >/dev/null
  export PGPASSWORD=$POSTGRES_PASSWORD
  if [[ $POSTGRES_DB != postgres ]]; then
    psql -v ON_ERROR_STOP=1 -qX -U "$POSTGRES_USER" -d postgres -v db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sh) echo "docker-entrypoint: running $f"; if [[ -x $f ]]; then "$f"; else # shellcheck disable=SC1090
        . "$f"; fi ;;
      *.sql) echo "docker-entrypoint: running $f"; psql -v ON_ERROR_STOP=1 -qX -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$f" ;;
      *) ;;
    esac
  done
  unset PGPASSWORD
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "docker-entrypoint: PostgreSQL init process complete; ready for start up"
fi
exec "$@"
