#!/usr/bin/env bash
# `make compose-test`: the committed docker-compose.yml started and driven end to end on this
# machine (tests/compose). Provides what that needs and is missing: Debian's Docker engine
# (installed if absent; started if none answers, and then stopped again, that one only, by its
# pid), and local stand-ins for the public base images when they cannot be pulled. Fails, never
# skips, where Docker cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."

LOG_DIR=.cache/compose
mkdir -p "$LOG_DIR"
fail() { echo "compose/test.sh: $*" >&2; exit 1; }

engine_pid=""
stop_engine() {
  if [ -n "$engine_pid" ] && kill -0 "$engine_pid" 2>/dev/null; then
    echo "compose/test.sh: stopping the Docker engine it started (pid $engine_pid)" >&2
    kill "$engine_pid"
    for _ in $(seq 100); do kill -0 "$engine_pid" 2>/dev/null || return 0; sleep 0.2; done
    echo "compose/test.sh: the Docker engine (pid $engine_pid) did not stop in 20 s" >&2
  fi
}

if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || fail "no Docker engine answers, dockerd is not installed, and only root may install it"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  fi
  [ "$(id -u)" = 0 ] || fail "no Docker engine answers, and only root may start one (dockerd)"
  echo "compose/test.sh: starting a Docker engine (dockerd; its log in $LOG_DIR/dockerd.log)" >&2
  dockerd >"$LOG_DIR/dockerd.log" 2>&1 &
  started=$!
  trap stop_engine EXIT
  for _ in $(seq 150); do
    if docker info >/dev/null 2>&1; then break; fi
    kill -0 "$started" 2>/dev/null || { tail -20 "$LOG_DIR/dockerd.log" >&2; fail "dockerd exited"; }
    sleep 0.2
  done
  docker info >/dev/null 2>&1 || { tail -20 "$LOG_DIR/dockerd.log" >&2; fail "dockerd did not answer in 30 s"; }
  engine_pid=$(cat /var/run/docker.pid)
  [ "$engine_pid" = "$started" ] || fail "/var/run/docker.pid ($engine_pid) is not the dockerd started ($started)"
fi

# The public base images where they can be pulled; else the local stand-ins (their names in
# PYTHON_IMAGE, NODE_IMAGE and KAFKA_IMAGE, which the compose file's defaults give way to).
# COMPOSE_PUBLIC_IMAGES=1 keeps the public ones, on a machine that can pull them.
if [ -z "${COMPOSE_PUBLIC_IMAGES:-}" ]; then
  assignments=$(compose/standins.sh)
  for assignment in $assignments; do export "${assignment?}"; done
fi

DOCKER_CONFIG="$PWD/$LOG_DIR" docker compose version
status=0
.venv/bin/pytest -m compose tests/compose "$@" || status=$?
tail -n 2 "$LOG_DIR/timings.log" 2>/dev/null || true
exit $status
