#!/usr/bin/env bash
# Stand-in for bin/kafka-broker-api-versions.sh.
exec /opt/kafka/bin/kafka-run-class.sh org.apache.kafka.tools.BrokerApiVersionsCommand "$@"
