#!/usr/bin/env bash
# Stand-in for bin/kafka-acls.sh.
exec /opt/kafka/bin/kafka-run-class.sh org.apache.kafka.tools.AclCommand "$@"
