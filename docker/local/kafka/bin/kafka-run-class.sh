#!/bin/sh
# kafka-run-class.sh CLASS ARGS... - runs a Kafka class with the image's jars (as Kafka's own script does).
# shellcheck disable=SC2086 # KAFKA_HEAP_OPTS holds several options
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} -XX:+UseSerialGC -Djava.awt.headless=true \
  -Dlog4j.configuration=file:/opt/kafka/config/${KAFKA_LOG4J_FILE:-log4j.properties} \
  -cp '/opt/kafka/libs/*' "$@"
