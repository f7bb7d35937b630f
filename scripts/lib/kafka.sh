# Shared shell helpers of scripts/stack.sh and scripts/tls-stack.sh for their single-node
# KRaft broker (sourced, not run).
# shellcheck shell=bash
#
# Usage: source "$(dirname "${BASH_SOURCE[0]}")/lib/kafka.sh"
# Defines functions only (no settings, no side effects); callers run under set -euo pipefail.

# The broker settings both test brokers share (after their listeners), for server.properties.
kafka_single_node_props() {
  cat <<'EOF_PROPS'
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
group.initial.rebalance.delay.ms=0
# After a kill -9 the restarted broker cannot register until its old session
# expires (DUPLICATE_BROKER_REGISTRATION); the default 9 s makes kafka-start slow.
broker.session.timeout.ms=2000
broker.heartbeat.interval.ms=500
EOF_PROPS
}

# Writes the broker's log4j configuration to $1: to stdout (the scripts append it to the
# broker's log), chatty loggers at WARN.
kafka_write_log4j() {
  cat >"$1" <<'EOF_LOG4J'
# outboxd test stacks: the broker logs to stdout, which the script appends to kafka.log.
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.controller=WARN
log4j.logger.kafka.log.LogCleaner=WARN
EOF_LOG4J
}

# A new cluster id: base64url (no padding) of 16 random bytes, without a leading '-'.
kafka_cluster_id() {
  local cid
  cid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  echo "A${cid:1}"
}
