#!/usr/bin/env bash
# Stand-in for bin/kafka-storage.sh.
exec /opt/kafka/bin/kafka-run-class.sh kafka.tools.StorageTool "$@"
