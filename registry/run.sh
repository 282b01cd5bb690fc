#!/usr/bin/env bash
# Apicurio Registry in the foreground on 127.0.0.1:PORT (default 8081): Confluent's Schema
# Registry API at http://127.0.0.1:PORT/apis/ccompat/v7, in-memory storage, no auth.
#   usage: registry/run.sh [PORT]      (registry/run.sh --build-only: unpack it, do not run it)
#   env:   REGISTRY_JAVA       the java to run it with (default: java; 11 or later)
#          REGISTRY_JAVA_OPTS  JVM options (default: a small heap, quick start)
# Unpacked from Maven Central (registry/pom.xml) into .cache/registry the first time.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(sed -n "s:.*<apicurio.version>\(.*\)</apicurio.version>.*:\1:p" "$here/pom.xml")"
cache="$here/../.cache/registry"
jar="$cache/apicurio-registry-$version/apicurio-registry-app-$version-runner.jar"
# Written by maven-dependency-plugin once the whole archive is unpacked.
marker="$cache/target/dependency-maven-plugin-markers/io.apicurio-apicurio-registry-app-tar.gz-all-$version.marker"
port="${1:-8081}"

if [ ! -f "$jar" ] || [ ! -f "$marker" ]; then
  rm -rf "$cache"
  mkdir -p "$cache"
  if ! mvn -B -q -f "$here/pom.xml" package > "$cache/build.log" 2>&1; then
    cat "$cache/build.log" >&2
    exit 1
  fi
fi

[ "$port" = "--build-only" ] && exit 0

# shellcheck disable=SC2086
exec "${REGISTRY_JAVA:-java}" ${REGISTRY_JAVA_OPTS:--Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1} \
  -Dquarkus.http.host=127.0.0.1 \
  -Dquarkus.http.port="$port" \
  -jar "$jar"
