#!/bin/sh
# kafka-broker-api-versions.sh - as in the Kafka distribution: kafka.admin.BrokerApiVersionsCommand.
export KAFKA_LOG4J_FILE=tools-log4j.properties
exec /opt/kafka/bin/kafka-run-class.sh kafka.admin.BrokerApiVersionsCommand "$@"
