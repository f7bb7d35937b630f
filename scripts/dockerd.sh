#!/usr/bin/env bash
# Starts and stops a Docker daemon (Debian's docker.io) for the compose test tier, with
# container networking confined to this machine: its bridges use 10.213.0.0/16, and iptables
# rules drop whatever a container sends to any other address (DOCKER-USER: forwarded traffic)
# and every connection a container opens to the host itself (INPUT). Containers reach each
# other (service names through Docker's embedded DNS) and ports published on 127.0.0.1;
# nothing else, in either direction.
#
# Usage: scripts/dockerd.sh start|stop|status
#
# State (pid file, daemon.json, log, the forwarding settings found before the start, restored
# by stop) lives in $OUTBOXD_DOCKERD_DIR (default /tmp/outboxd-dockerd). When a Docker
# daemon already answers on /var/run/docker.sock, start only adds the rules and stop leaves
# that daemon alone. Needs root.
set -euo pipefail

STATE=${OUTBOXD_DOCKERD_DIR:-/tmp/outboxd-dockerd}
POOL=10.213.0.0/16
DOCKER=${DOCKER:-docker}

say() { printf 'dockerd: %s\n' "$*" >&2; }
die() { printf 'dockerd: ERROR: %s\n' "$*" >&2; exit 1; }

# The confinement rules, each added once (iptables -C tests for it first).
rule() {
  local table=$1 chain=$2
  shift 2
  iptables -t "$table" -C "$chain" "$@" 2>/dev/null || iptables -t "$table" -I "$chain" "$@"
}
confine() {
  iptables -N DOCKER-USER 2>/dev/null || true
  rule filter DOCKER-USER -s "$POOL" ! -d "$POOL" -j DROP
  rule filter DOCKER-USER -d "$POOL" ! -s "$POOL" -m conntrack ! --ctstate ESTABLISHED,RELATED -j DROP
  rule filter INPUT -s "$POOL" -m conntrack ! --ctstate ESTABLISHED,RELATED -j DROP
}
unconfine() {
  iptables -D DOCKER-USER -s "$POOL" ! -d "$POOL" -j DROP 2>/dev/null || true
  iptables -D DOCKER-USER -d "$POOL" ! -s "$POOL" -m conntrack ! --ctstate ESTABLISHED,RELATED -j DROP 2>/dev/null || true
  iptables -D INPUT -s "$POOL" -m conntrack ! --ctstate ESTABLISHED,RELATED -j DROP 2>/dev/null || true
}

answers() { "$DOCKER" info >/dev/null 2>&1; }

cmd_start() {
  [[ $EUID -eq 0 ]] || die "needs root"
  command -v dockerd >/dev/null || die "dockerd is not installed: run scripts/install-deps.sh (docker.io)"
  command -v iptables >/dev/null || die "iptables is not installed: run scripts/install-deps.sh"
  mkdir -p "$STATE"
  if answers; then
    say "a Docker daemon already answers; adding the confinement rules only"
    confine
    return
  fi
  cat /proc/sys/net/ipv4/ip_forward >"$STATE/ip_forward.before"
  iptables -S FORWARD | awk '$1 == "-P" {print $3}' >"$STATE/forward_policy.before"
  # The rules go in before any container can exist: DOCKER-USER is ours, dockerd keeps it.
  confine
  cat >"$STATE/daemon.json" <<JSON
{
  "bip": "10.213.0.1/24",
  "default-address-pools": [{"base": "10.213.64.0/18", "size": 24}],
  "iptables": true,
  "ip-forward": true,
  "dns": ["10.213.0.1"],
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "2"}
}
JSON
  say "starting dockerd (log $STATE/dockerd.log)"
  setsid dockerd --config-file "$STATE/daemon.json" --pidfile "$STATE/dockerd.pid" \
    >"$STATE/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    answers && break
    sleep 0.5
  done
  answers || { tail -20 "$STATE/dockerd.log" >&2; die "dockerd did not answer within 30 s"; }
  confine  # again, in case dockerd rebuilt the chain
  say "dockerd up: $("$DOCKER" version -f '{{.Server.Version}}'), bridges in $POOL, confined"
}

cmd_stop() {
  if [[ -f $STATE/dockerd.pid ]]; then
    local pid
    pid=$(cat "$STATE/dockerd.pid")
    if kill -0 "$pid" 2>/dev/null; then
      say "stopping dockerd (pid $pid)"
      kill -TERM "$pid"
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$STATE/dockerd.pid"
  fi
  unconfine
  if [[ -f $STATE/ip_forward.before ]]; then
    cat "$STATE/ip_forward.before" >/proc/sys/net/ipv4/ip_forward
    iptables -P FORWARD "$(cat "$STATE/forward_policy.before")"
    rm -f "$STATE/ip_forward.before" "$STATE/forward_policy.before"
  fi
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) if answers; then echo "up"; else echo "down"; exit 1; fi ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
