#!/usr/bin/env bash
# Stand-in for the release tarball's bin/kafka-run-class.sh (the tarball is not on Maven Central):
# the same classpath (every jar in libs/) and the same option variables, without its other hooks.
set -euo pipefail
base_dir=/opt/kafka
: "${KAFKA_HEAP_OPTS:=-Xmx256M}"
: "${KAFKA_LOG4J_OPTS:=-Dlog4j2.configurationFile=$base_dir/config/tools-log4j2.yaml}"
: "${KAFKA_JVM_PERFORMANCE_OPTS:=-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}"
# shellcheck disable=SC2086 # each variable holds several options
exec java $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS ${KAFKA_JMX_OPTS:-} $KAFKA_LOG4J_OPTS \
  ${KAFKA_OPTS:-} -cp "$base_dir/libs/*" "$@"
