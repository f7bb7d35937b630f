#!/usr/bin/env bash
# Local stand-ins for the demo's base images, for machines that reach no image registry:
# Debian bookworm from debootstrap (through Debian's package archive), imported with
# `docker import`, and from it local equivalents of debian:12.12-slim, postgres:15.20-bookworm
# and apache/kafka:3.9.1 (docker/local/*). docker-compose.yml takes its image names from
# variables whose defaults are the official images; `scripts/docker-local.sh env` prints the
# settings that point them at these instead.
#
# Usage: scripts/docker-local.sh images   # build (or reuse) the local images
#        scripts/docker-local.sh env      # print the OUTBOXD_*_IMAGE settings (for `eval` or a .env file)
#
# Needs root (debootstrap, chroot), debootstrap, docker and Maven (the Kafka jars).
# The root file system is cached in $OUTBOXD_DOCKER_CACHE
# (default ${XDG_CACHE_HOME:-$HOME/.cache}/outboxd/docker) and rebuilt only when the package
# list below changes.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${OUTBOXD_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outboxd/docker}
MIRROR=${OUTBOXD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${OUTBOXD_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
DOCKER=${DOCKER:-docker}
BASE_TAG=outboxd-local/bookworm:base

# What the stand-ins together need: the build and runtime packages of ./Dockerfile, the
# PostgreSQL server of docker/postgres/Dockerfile, the client of docker/demo/Dockerfile and a
# Java runtime for Kafka. One root file system serves all of them (built once, shared layers).
PACKAGES=(
  ca-certificates
  build-essential cmake ninja-build pkg-config
  libpq-dev librdkafka-dev libjansson-dev libssl-dev libcurl4-openssl-dev libmicrohttpd-dev libsystemd-dev
  libpq5 librdkafka1 libjansson4 libssl3 libcurl4 libmicrohttpd12 libsystemd0
  postgresql-15 postgresql-15-wal2json postgresql-client-15
  openjdk-17-jre-headless
)

say() { printf 'docker-local: %s\n' "$*" >&2; }
die() { printf 'docker-local: ERROR: %s\n' "$*" >&2; exit 1; }

image_env() {
  cat <<ENV
OUTBOXD_DEBIAN_IMAGE=outboxd-local/debian:12.12-slim
OUTBOXD_POSTGRES_IMAGE=outboxd-local/postgres:15.20-bookworm
OUTBOXD_KAFKA_IMAGE=outboxd-local/kafka:3.9.1
ENV
}

# The root file system: debootstrap, then the packages with bookworm's updates and security
# archives (postgresql-15 must be 15.20 or later: docker/postgres/Dockerfile).
build_rootfs() {
  local want=$1 dir=$CACHE/rootfs.tmp
  [[ $EUID -eq 0 ]] || die "debootstrap needs root"
  command -v debootstrap >/dev/null || die "debootstrap is not installed: run scripts/install-deps.sh"
  if [[ ! -f $dir/.debootstrap-done ]]; then  # a failed apt-get step below keeps the debootstrap
    rm -rf "$dir"
    mkdir -p "$dir"
    say "debootstrap bookworm into $dir (a few minutes)"
    debootstrap --variant=minbase bookworm "$dir" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
    touch "$dir/.debootstrap-done"
  fi
  cat >"$dir/etc/apt/sources.list" <<SRC
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY bookworm-security main
SRC
  # No service starts inside the chroot (postgresql's postinst would try).
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod 755 "$dir/usr/sbin/policy-rc.d"
  # No cluster from postgresql-common: the image's entrypoint creates its own.
  mkdir -p "$dir/etc/postgresql-common/createcluster.d"
  echo "create_main_cluster = false" >"$dir/etc/postgresql-common/createcluster.d/no-main.conf"
  say "installing ${#PACKAGES[@]} packages into the root file system"
  mount -t proc proc "$dir/proc"  # Java's postinst runs java
  trap 'while mountpoint -q "$dir/proc"; do umount "$dir/proc" || break; done' EXIT
  if ! chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
      sh -c "apt-get update -q && apt-get upgrade -y -q && apt-get install -y -q --no-install-recommends ${PACKAGES[*]} && apt-get clean" \
      >>"$CACHE/debootstrap.log" 2>&1; then
    tail -20 "$CACHE/debootstrap.log" >&2
    die "apt-get in the root file system failed (log: $CACHE/debootstrap.log)"
  fi
  while mountpoint -q "$dir/proc"; do umount "$dir/proc"; done
  trap - EXIT
  rm -f "$dir/usr/sbin/policy-rc.d" "$dir/.debootstrap-done"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin
  echo "$want" >"$dir/.outboxd-packages"
  rm -rf "$CACHE/rootfs"
  mv "$dir" "$CACHE/rootfs"
}

packages_hash() { printf '%s\n' "${PACKAGES[@]}" "$MIRROR" "$SECURITY" | sha256sum | cut -c1-16; }

cmd_rootfs() {
  mkdir -p "$CACHE"
  local want
  want=$(packages_hash)
  if [[ ! -f $CACHE/rootfs/.outboxd-packages || $(cat "$CACHE/rootfs/.outboxd-packages") != "$want" ]]; then
    build_rootfs "$want"
  fi
}

# The base image: the root file system, imported once per package list.
import_base() {
  local want
  want=$(packages_hash)
  if [[ $("$DOCKER" image inspect -f '{{index .Config.Labels "outboxd.rootfs"}}' "$BASE_TAG" 2>/dev/null) != "$want" ]]; then
    say "docker import $BASE_TAG ($(du -sh "$CACHE/rootfs" | cut -f1))"
    tar -C "$CACHE/rootfs" --one-file-system --exclude=./.outboxd-packages -c . \
      | "$DOCKER" import --change "LABEL outboxd.rootfs=$want" --change 'ENV LANG=C.UTF-8' \
          --change 'CMD ["bash"]' - "$BASE_TAG.partial" >/dev/null
    # Tagged only once a container runs from it: an interrupted import leaves no usable tag.
    "$DOCKER" run --rm --network none "$BASE_TAG.partial" /bin/sh -c 'psql --version && java -version 2>&1' >/dev/null \
      || die "the imported image does not run"
    "$DOCKER" tag "$BASE_TAG.partial" "$BASE_TAG"
    "$DOCKER" rmi "$BASE_TAG.partial" >/dev/null
  fi
}

# Kafka's broker and tool jars for docker/local/kafka (Maven Central).
kafka_jars() {
  local pom=$REPO/docker/local/kafka/pom.xml dir=$CACHE/kafka-libs want
  want=$(sha256sum "$pom" | cut -c1-16)
  if [[ $(cat "$dir/.outboxd-pom" 2>/dev/null) != "$want" ]]; then
    command -v mvn >/dev/null || die "mvn is not installed: run scripts/install-deps.sh"
    say "fetching Kafka's jars with Maven into $dir"
    rm -rf "$dir"
    mvn -B -q -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$dir" >"$CACHE/mvn.log" 2>&1 || { tail -20 "$CACHE/mvn.log" >&2; die "mvn failed"; }
    echo "$want" >"$dir/.outboxd-pom"
  fi
}

# docker build of a stand-in from docker/local/NAME, with extra files (dir) in its context.
build_standin() {
  local name=$1 tag=$2 extra=${3:-} ctx
  ctx=$(mktemp -d)
  cp -a "$REPO/docker/local/$name/." "$ctx/"
  [[ -z $extra ]] || { mkdir -p "$ctx/libs"; cp "$extra"/*.jar "$ctx/libs/"; }
  say "docker build $tag"
  "$DOCKER" build -q --network none --build-arg "BASE_IMAGE=$BASE_TAG" -t "$tag" "$ctx" >/dev/null \
    || { rm -rf "$ctx"; die "docker build of $tag failed"; }
  rm -rf "$ctx"
}

cmd_images() {
  command -v "$DOCKER" >/dev/null || die "docker is not installed: run scripts/install-deps.sh"
  "$DOCKER" info >/dev/null 2>&1 || die "the Docker daemon does not answer: start it (scripts/dockerd.sh start)"
  cmd_rootfs
  import_base
  kafka_jars
  "$DOCKER" tag "$BASE_TAG" outboxd-local/debian:12.12-slim
  build_standin postgres outboxd-local/postgres:15.20-bookworm
  build_standin kafka outboxd-local/kafka:3.9.1 "$CACHE/kafka-libs"
  say "images ready: $(image_env | tr '\n' ' ')"
}

case ${1:-} in
  images) cmd_images ;;
  rootfs) cmd_rootfs ;;
  env) image_env ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
