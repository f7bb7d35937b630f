#!/usr/bin/env bash
# A cached Debian 13 (trixie) root with PostgreSQL 17 and wal2json 2.6, to run PG17 on a Debian 12 host.
#
# Usage: scripts/pg17-root.sh COMMAND
#   ensure     build the root once (debootstrap --variant=minbase trixie, then apt-get install
#              postgresql-17 postgresql-17-wal2json inside it); prints the root's path.
#              Cached: later calls only check the stamp file and print the path.
#   path       print the root's path (does not build)
#   status     exit 0 if the root is built and current (prints its PostgreSQL version)
#   run [-u USER] [-b HOSTDIR:INNERDIR]... [--] CMD [ARG...]
#              run CMD inside the root (chroot) as USER (default root), in a private mount
#              namespace with /dev, /proc and the given bind mounts (INNERDIR is created
#              in the root). The mounts live only as long as the processes started there
#              (a postmaster keeps its namespace alive), so the host never sees them and
#              no unmount is ever needed. Environment: PATH, LANG=C.UTF-8, HOME only.
#   remove     delete the root (refused while anything is mounted inside it)
#
# Environment:
#   OUTBOXD_TEST_CACHE   cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/outboxd);
#                        the root is $OUTBOXD_TEST_CACHE/trixie-root
#   PG17_ROOT_MIRROR     Debian mirror (default: the host's Debian archive URI from
#                        /etc/apt/sources.list(.d), else http://deb.debian.org/debian)
#   PG17_ROOT_SECURITY   security mirror (default: the host's debian-security URI, else
#                        http://deb.debian.org/debian-security)
#
# Needs root (debootstrap, chroot, unshare). debootstrap is installed on the host with apt-get
# the first time `ensure` builds; trixie is never added to the host's apt sources. The chroot
# shares the host's network namespace: a server in it listening on 127.0.0.1 is reachable
# from the host.
set -euo pipefail

CACHE=${OUTBOXD_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outboxd}
CACHE=${CACHE%/}
ROOT=$CACHE/trixie-root
STAMP=$ROOT/.outboxd-trixie-root
LOCK=$CACHE/trixie-root.lock
SUITE=trixie
PACKAGES=(postgresql-17 postgresql-17-wal2json)
# Change this string to force a rebuild of existing roots.
SPEC="v1 $SUITE minbase ${PACKAGES[*]}"

say() { printf 'pg17-root: %s\n' "$*" >&2; }
die() { printf 'pg17-root: ERROR: %s\n' "$*" >&2; exit 1; }
now_ms() { date +%s%3N; }

need_root() { [[ $EUID -eq 0 ]] || die "must run as root (debootstrap, chroot, unshare)"; }

built() { [[ -f $STAMP && $(head -n 1 "$STAMP") == "$SPEC" ]]; }

# The host's Debian archive URI ($1 = debian or debian-security), from one-line .list and
# deb822 .sources files; empty if none.
host_uri() {
  local want=$1 f uri
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    if [[ $f == *.sources ]]; then
      uri=$(sed -n 's/^URIs:[[:space:]]*//p' "$f" | tr ' ' '\n')
    else
      uri=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\{0,1\}\([^[:space:]]\+\).*/\2/p' "$f")
    fi
    uri=$(grep -E "^https?://[^ ]+/${want}/?\$" <<<"$uri" | head -n 1 || true)
    if [[ -n $uri ]]; then
      echo "${uri%/}"
      return 0
    fi
  done
}

# run_in ROOTDIR USER BIND... -- CMD...: see `run` above.
run_in() {
  local root=$1 user=$2 uid gid
  shift 2
  local binds=()
  while (($#)) && [[ $1 != -- ]]; do binds+=("$1"); shift; done
  [[ ${1:-} == -- ]] && shift
  (($#)) || die "run: no command"
  if [[ $user == root ]]; then
    uid=0 gid=0
  else
    uid=$(awk -F: -v u="$user" '$1 == u { print $3 }' "$root/etc/passwd")
    gid=$(awk -F: -v u="$user" '$1 == u { print $4 }' "$root/etc/passwd")
    [[ -n $uid && -n $gid ]] || die "no user $user in $root/etc/passwd"
  fi
  # shellcheck disable=SC2016  # expanded by the inner sh
  local b setup='set -e; mount --rbind /dev "$R/dev"; mount -t proc proc "$R/proc"'
  local args=()
  for b in "${binds[@]}"; do
    [[ $b == /*:/* ]] || die "bad bind $b (want /HOSTDIR:/INNERDIR)"
    [[ -d ${b%%:*} ]] || die "bind source ${b%%:*} is not a directory"
    mkdir -p "$root/${b#*:}"
    args+=("${b%%:*}" "${b#*:}")
  done
  # shellcheck disable=SC2016  # expanded by the inner sh
  setup+='; while [ "$1" != -- ]; do mount --bind "$1" "$R$2"; shift 2; done; shift'
  # --userspec with numeric ids: no name lookup in the host's passwd.
  # shellcheck disable=SC2016
  setup+='; exec chroot --userspec="$U" "$R" /usr/bin/env -i PATH=/usr/lib/postgresql/17/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME="$H" "$@"'
  local home=/root
  [[ $user == root ]] || home=$(awk -F: -v u="$user" '$1 == u { print $6 }' "$root/etc/passwd")
  R=$root U="$uid:$gid" H=$home unshare --mount --propagation private -- \
    sh -c "$setup" sh "${args[@]}" -- "$@"
}

cmd_ensure() {
  need_root
  mkdir -p "$CACHE"
  exec 9>"$LOCK"
  flock -w 1800 9 || die "could not lock $LOCK"
  if built; then
    echo "$ROOT"
    return 0
  fi
  local t0; t0=$(now_ms)
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap on the host (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends debootstrap >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends debootstrap >/dev/null; } \
      || die "could not install debootstrap"
  fi
  local mirror security
  mirror=${PG17_ROOT_MIRROR:-$(host_uri debian)}
  mirror=${mirror:-http://deb.debian.org/debian}
  security=${PG17_ROOT_SECURITY:-$(host_uri debian-security)}
  security=${security:-http://deb.debian.org/debian-security}
  local tmp=$ROOT.tmp log=$CACHE/trixie-root.log
  if [[ -e $tmp ]]; then
    say "removing a half-built $tmp"
    rm -rf --one-file-system "$tmp"
  fi
  : >"$log"
  say "debootstrap --variant=minbase $SUITE from $mirror into $tmp (log $log)"
  # In a private mount namespace: whatever debootstrap mounts (/proc, /sys, devices) goes
  # away with it, also when it fails.
  if ! unshare --mount --propagation private -- \
      debootstrap --variant=minbase "$SUITE" "$tmp" "$mirror" >>"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "debootstrap failed (log $log)"
  fi
  say "debootstrap done ($(($(now_ms) - t0)) ms); installing ${PACKAGES[*]}"
  cat >"$tmp/etc/apt/sources.list" <<EOF
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb $security $SUITE-security main
EOF
  # Never start services inside the root; no docs/manpages.
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
  chmod 755 "$tmp/usr/sbin/policy-rc.d"
  cat >"$tmp/etc/dpkg/dpkg.cfg.d/01-outboxd-nodoc" <<'EOF'
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
EOF
  mkdir -p "$tmp/etc/postgresql-common"
  echo "create_main_cluster = false" >"$tmp/etc/postgresql-common/createcluster.conf"
  cp -L /etc/resolv.conf "$tmp/etc/resolv.conf"
  if ! run_in "$tmp" root -- sh -c '
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q &&
        apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold "$@" &&
        apt-get clean && rm -rf /var/lib/apt/lists/*' sh "${PACKAGES[@]}" >>"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "apt-get install in the root failed (log $log)"
  fi
  local ver
  ver=$(run_in "$tmp" postgres -- /usr/lib/postgresql/17/bin/postgres --version) \
    || die "postgres 17 does not run in the root"
  [[ -f $tmp/usr/lib/postgresql/17/lib/wal2json.so ]] || die "wal2json.so missing in the root"
  local w2j
  # shellcheck disable=SC2016  # a dpkg-query format
  w2j=$(run_in "$tmp" root -- dpkg-query -W -f='${Version}' postgresql-17-wal2json)
  {
    echo "$SPEC"
    echo "built $(date -u +%FT%TZ) from $mirror in $(($(now_ms) - t0)) ms"
    echo "$ver; postgresql-17-wal2json $w2j"
  } >"$tmp/.outboxd-trixie-root"
  if [[ -e $ROOT ]]; then
    say "replacing an outdated $ROOT"
    rm -rf --one-file-system "$ROOT"
  fi
  mv "$tmp" "$ROOT"
  say "$ver, wal2json $w2j: $ROOT ($(du -sh "$ROOT" | cut -f1), $(($(now_ms) - t0)) ms)"
  echo "$ROOT"
}

cmd_status() {
  if built; then
    sed -n '2,$p' "$STAMP"
    return 0
  fi
  echo "not built: $ROOT (run: $0 ensure)"
  return 1
}

cmd_run() {
  need_root
  built || die "no trixie root in $ROOT; run: $0 ensure"
  local user=root binds=()
  while (($#)); do
    case $1 in
      -u) user=$2; shift 2 ;;
      -b) binds+=("$2"); shift 2 ;;
      --) shift; break ;;
      *) break ;;
    esac
  done
  run_in "$ROOT" "$user" "${binds[@]}" -- "$@"
}

cmd_remove() {
  need_root
  [[ -e $ROOT || -e $ROOT.tmp ]] || { say "nothing to remove"; return 0; }
  if findmnt -rn -o TARGET | grep -q "^$ROOT"; then
    die "something is mounted under $ROOT in this namespace; not removing"
  fi
  rm -rf --one-file-system "$ROOT" "$ROOT.tmp"
  say "removed $ROOT"
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case $cmd in
  ensure) cmd_ensure ;;
  path)   echo "$ROOT" ;;
  status) cmd_status ;;
  run)    cmd_run "$@" ;;
  remove) cmd_remove ;;
  -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) echo "pg17-root: unknown command: ${cmd:-(none)}" >&2; sed -n '4,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
