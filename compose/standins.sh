#!/usr/bin/env bash
# Builds a local stand-in for each public base image docker-compose.yml uses, for a machine that
# cannot pull from a public image registry (compose/test.sh): Debian from Debian's own mirror by
# debootstrap, imported into Docker, then Python, Node.js or Kafka on it as the official images
# carry them. Prints the variables that make the compose file use them. Docker's image cache is
# machine-wide, so a later run (even from a fresh clone) reuses what an earlier one built.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=orders-compose-test
# The tags the compose file names by default; a stand-in is that name under $PREFIX/.
PYTHON_TAG=python:3.11-slim
NODE_TAG=node:20-slim
KAFKA_TAG=apache/kafka:4.1.1

log() { echo "compose/standins.sh: $*" >&2; }

# Debian $1 (a suite) as $PREFIX/debian:$1, debootstrapped once.
debian() {
  local suite=$1 image="$PREFIX/debian:$1" rootfs
  if docker image inspect "$image" >/dev/null 2>&1; then return; fi
  command -v debootstrap >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }
  rootfs=$(mktemp -d)
  log "debootstrap $suite (minbase) ..."
  debootstrap --variant=minbase "$suite" "$rootfs" >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; rm -rf "$rootfs" "$rootfs.log"; exit 1; }
  tar -C "$rootfs" -c . | docker import - "$image" >/dev/null
  rm -rf "$rootfs" "$rootfs.log"
}

# docker build $2 (a folder of compose/standins) as $1, on Debian $3. Its context also holds
# this machine's own certificate authorities (/usr/local/share/ca-certificates): where egress to
# the package registries passes a TLS proxy, pip and npm inside the builds must trust it as the
# host does. The public images need none of this, so it lives in the stand-ins only.
standin() {
  local image=$1 name=$2 suite=$3 context=".cache/compose/$2-image"
  log "building $image ..."
  mkdir -p "$context/ca-certificates"
  rm -f "$context/ca-certificates/"*.crt
  cp -R "compose/standins/$name/." "$context/"
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$context/ca-certificates/"
  fi
  docker build -q -t "$image" --build-arg "DEBIAN_IMAGE=$PREFIX/debian:$suite" "$context" >/dev/null
}

debian bookworm # Python 3.11, as python:3.11-slim
debian trixie   # Node.js 20 and Java 21, as node:20-slim and apache/kafka:4.1.1
standin "$PREFIX/$PYTHON_TAG" python bookworm
standin "$PREFIX/$NODE_TAG" node trixie

# The Kafka stand-in also needs the release's jars, fetched by Maven (which honours a user's
# ~/.m2/settings.xml mirrors, and caches in ~/.m2).
libs=.cache/compose/kafka-image/libs
if [ ! -f "$libs/.complete" ]; then
  rm -rf "$libs" && mkdir -p "$libs"
  mvn -B -q -f compose/standins/kafka/pom.xml dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$PWD/$libs" >&2
  touch "$libs/.complete"
fi
standin "$PREFIX/$KAFKA_TAG" kafka trixie

echo "PYTHON_IMAGE=$PREFIX/$PYTHON_TAG"
echo "NODE_IMAGE=$PREFIX/$NODE_TAG"
echo "KAFKA_IMAGE=$PREFIX/$KAFKA_TAG"
