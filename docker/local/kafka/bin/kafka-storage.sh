#!/bin/sh
# kafka-storage.sh - as in the Kafka distribution: kafka.tools.StorageTool.
export KAFKA_LOG4J_FILE=tools-log4j.properties
exec /opt/kafka/bin/kafka-run-class.sh kafka.tools.StorageTool "$@"
