# Dockerfile - outboxd and inboxd: built on Debian 12 (bookworm), shipped in a slim Debian 12
# image that holds only the two binaries, their runtime libraries and sql/, run as a non-root user.
#
#   docker build -t outboxd:0.1.0 .
#   docker run --rm -e OUTBOXD_POSTGRES_CONNINFO=... -e OUTBOXD_KAFKA_BOOTSTRAP_SERVERS=... outboxd:0.1.0
#   docker run --rm -e INBOXD_POSTGRES_CONNINFO=... -e INBOXD_INBOX_TOPICS=... outboxd:0.1.0 inboxd
#
# Configuration: OUTBOXD_<KEY> / INBOXD_<KEY> environment variables (docs/configuration.md),
# or a file mounted read-only and passed with -c. docker-compose.yml runs the whole demo.

# The base image; docker-compose.yml passes OUTBOXD_DEBIAN_IMAGE (scripts/docker-local.sh builds a
# local equivalent where no registry is reachable).
ARG DEBIAN_IMAGE=debian:12.12-slim

FROM ${DEBIAN_IMAGE} AS build
# The build dependencies of CMakeLists.txt (scripts/install-deps.sh installs the same on a
# developer machine); no cmocka: the image does not run the unit tests.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libpq-dev librdkafka-dev libjansson-dev libssl-dev \
      libcurl4-openssl-dev libmicrohttpd-dev libsystemd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY src/ src/
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr/local \
 && cmake --build build --target outboxd inboxd \
 && DESTDIR=/out cmake --install build --strip \
 && /out/usr/local/bin/outboxd --version && /out/usr/local/bin/inboxd --version

FROM ${DEBIAN_IMAGE}
# Runtime libraries only: libpq, librdkafka, jansson, and curl / microhttpd / libsystemd
# for the HTTP push, the health endpoint and sd_notify. The healthcheck is a bash script
# (bash's /dev/tcp: no HTTP client in the image).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates libpq5 librdkafka1 libjansson4 libssl3 libcurl4 libmicrohttpd12 libsystemd0 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 outboxd \
 && useradd --system --uid 10001 --gid outboxd --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin outboxd
COPY --from=build /out/usr/local/bin/outboxd /out/usr/local/bin/inboxd /usr/local/bin/
COPY sql/ /usr/local/share/outboxd/sql/
COPY docker/outboxd-healthcheck /usr/local/bin/
USER 10001:10001
# For outboxd and inboxd alike, whatever their -c FILE, -X or environment: GET /readyz on the
# daemon's http.listen (outboxd 127.0.0.1:9632, inboxd 127.0.0.1:9633 by default: inside the
# container, nothing to publish). Ready: outboxd streams its slot / inboxd consumes, and a
# Kafka broker answers. `outboxd-healthcheck --live` asks /healthz (a standby passes).
HEALTHCHECK --interval=15s --timeout=10s --start-period=30s --retries=3 \
  CMD ["outboxd-healthcheck"]
CMD ["outboxd"]
