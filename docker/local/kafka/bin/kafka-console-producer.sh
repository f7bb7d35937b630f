#!/bin/sh
# kafka-console-producer.sh - as in the Kafka distribution: org.apache.kafka.tools.ConsoleProducer.
export KAFKA_LOG4J_FILE=tools-log4j.properties
exec /opt/kafka/bin/kafka-run-class.sh org.apache.kafka.tools.ConsoleProducer "$@"
