# The two commands a newcomer needs: `make run` (the whole system) and `make test` (everything CI checks).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install browser bench-tools toxiproxy jaeger compose-plugin compose-test promtool oidc schema-registry run test trace-test bench chaos screenshot lint format typecheck kafka kafka-secure kafka-stop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(STAMP)

# The local OpenID Connect provider (oidc-provider, pinned in oidc/package-lock.json) for
# `make run` and the tests; reinstalled only when the lock file changes.
OIDC_STAMP := oidc/node_modules/.installed
$(OIDC_STAMP): oidc/package.json oidc/package-lock.json
	cd oidc && npm ci --no-audit --no-fund --loglevel=error
	touch $@

oidc: $(OIDC_STAMP)

# Debian's Chromium for the browser test (Playwright drives it; its own browser download cannot work here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

# wrk, the HTTP load generator the benchmarks drive the services with (Debian package).
bench-tools:
	@command -v wrk >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk; }

# Toxiproxy (the chaos run's network faults), built by Go from its pinned release into
# .cache/toxiproxy/ once; later runs reuse it.
TOXIPROXY_VERSION := v2.12.0
TOXIPROXY_STAMP := .cache/toxiproxy/.$(TOXIPROXY_VERSION)

$(TOXIPROXY_STAMP):
	mkdir -p .cache/toxiproxy
	GOBIN=$(CURDIR)/.cache/toxiproxy go install \
	  github.com/Shopify/toxiproxy/v2/cmd/server@$(TOXIPROXY_VERSION) \
	  github.com/Shopify/toxiproxy/v2/cmd/cli@$(TOXIPROXY_VERSION)
	touch $@

toxiproxy: $(TOXIPROXY_STAMP)

# Jaeger (the development trace viewer of `TRACING=1 make run`), built by Go from its pinned
# release into .cache/jaeger/ once. Its go.mod has replace directives, so it is built as a tool
# of a module of our own there rather than by `go install pkg@version`.
JAEGER_VERSION := v1.76.0
JAEGER_STAMP := .cache/jaeger/.$(JAEGER_VERSION)

$(JAEGER_STAMP):
	mkdir -p .cache/jaeger/module
	cd .cache/jaeger/module && { [ -f go.mod ] || go mod init local/jaeger-tool; } && \
	  go get -tool github.com/jaegertracing/jaeger/cmd/jaeger@$(JAEGER_VERSION) && \
	  go build -o ../jaeger github.com/jaegertracing/jaeger/cmd/jaeger
	touch $@

jaeger: $(JAEGER_STAMP)

# The compose v2 plugin (docker/compose, pinned), built by Go into .cache/compose/cli-plugins/
# once; `DOCKER_CONFIG=.cache/compose docker compose ...` finds it there. Its go.mod has exclude
# directives, so `go install pkg@version` is refused: it is built in its downloaded module.
COMPOSE_VERSION := v2.40.3
COMPOSE_STAMP := .cache/compose/.$(COMPOSE_VERSION)

$(COMPOSE_STAMP):
	mkdir -p .cache/compose/cli-plugins
	dir=$$(go mod download -json github.com/docker/compose/v2@$(COMPOSE_VERSION) \
	  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p') && \
	  cd "$$dir" && go build -trimpath -o $(CURDIR)/.cache/compose/cli-plugins/docker-compose \
	  -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$(COMPOSE_VERSION)" ./cmd
	touch $@

compose-plugin: $(COMPOSE_STAMP)

# docker-compose.yml started for real and driven end to end (tests/compose; 4 to 8 minutes warm):
# starts a Docker engine if none runs (stopping it after), builds local stand-ins for the public
# base images when they cannot be pulled (compose/standins.sh), and always ends with `down -v`.
# CI runs it after `make test`. Fails, never skips, where Docker cannot run.
compose-test: $(STAMP) compose-plugin
	compose/test.sh

# A local Apache Kafka broker on 127.0.0.1:9092 in the background (reused if already running);
# skipped when KAFKA_BOOTSTRAP_SERVERS names one.
kafka: $(STAMP)
	@if [ -n "$$KAFKA_BOOTSTRAP_SERVERS" ]; then echo "using Kafka at $$KAFKA_BOOTSTRAP_SERVERS"; \
	else $(BIN)/python -m kafka_local start; fi

# The same broker over SASL_SSL with SCRAM users and ACLs on 127.0.0.1:9093 (instead of the plain
# one: its controller port is 9093); client settings in .cache/kafka-secure/credentials.env.
kafka-secure: $(STAMP)
	$(BIN)/python -m kafka_local start-secure

# Stops the plain and the secure broker.
kafka-stop: $(STAMP)
	$(BIN)/python -m kafka_local stop

# Broker (unless KAFKA_BOOTSTRAP_SERVERS is set), the OIDC provider on :3999, command service on
# :8000, query service on :8001.
# KAFKA_SECURE=1 make run: over the SASL_SSL broker, each service with its own user's rights.
# TRACING=1: with a Jaeger on 127.0.0.1 (UI :16686, OTLP :4318) that both services export to.
run: $(STAMP) oidc $(if $(TRACING),jaeger)
	$(BIN)/python -m kafka_local.stack

# ruff is the project's linter and formatter: `make format` rewrites, `make lint` only checks.
lint: $(STAMP) promtool
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python -m shared.schema --check
	promtool check rules ops/alerts.yml
	cd ops && promtool test rules alerts.test.yml

# promtool checks and tests the alerting rules (ops/alerts.yml); Debian's prometheus package has it.
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    $$SUDO apt-get install -y -qq --no-install-recommends prometheus; }

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# tests/query_fakes.py too: its fakes must satisfy the query service's ports.
# mypy's cache lives beside the machine's other caches (pip's, Go's, Maven's), so that a fresh
# clone does not check every module from cold (23 s here, 2 s warm); mypy validates each entry
# against its source's hash, so a changed file is always checked again.
MYPY_CACHE ?= $(HOME)/.cache/orders-cqrs/mypy
typecheck: $(STAMP)
	$(BIN)/mypy --cache-dir $(MYPY_CACHE) shared command_service query_service kafka_local bench devtools chaos tests/query_fakes.py

test: lint typecheck browser bench-tools toxiproxy oidc schema-registry
	$(BIN)/pytest

# Apicurio Registry, unpacked from Maven Central into .cache/registry the first time (Java 11+):
# the real schema registry of tests/integration/test_registry.py; registry/run.sh PORT runs one.
schema-registry:
	registry/run.sh --build-only

# The real trace backend: both services export to a Jaeger of the test's own (tests/e2e/test_jaeger.py).
trace-test: $(STAMP) jaeger
	$(BIN)/pytest -m jaeger tests/e2e/test_jaeger.py

# Refresh docs/screenshot.png (the README's picture) from the browser test.
screenshot: $(STAMP) browser oidc
	UPDATE_SCREENSHOT=1 $(BIN)/pytest tests/e2e/test_web_page.py

# The full benchmarks (about 10 minutes): results in bench/results/latest.{json,png}.
bench: $(STAMP) bench-tools
	$(BIN)/python -m bench.run

# The chaos run (CHAOS.md): the whole system under a seeded schedule of crashes, network faults,
# a full disk and bad records for CHAOS_SECONDS (10 minutes); fails on any lost or doubled order.
# Needs root (the query service's disk is a tmpfs it fills) and the machine to itself.
# By default on a cluster: three query instances, two copies of each partition (also proxied from
# each other, so that an instance can be cut off from its peers); CHAOS_QUERY_INSTANCES=1
# CHAOS_REPLICAS=1 runs the one-instance mode.
CHAOS_SECONDS ?= 600
CHAOS_SEED ?= 1
CHAOS_QUERY_INSTANCES ?= 3
CHAOS_REPLICAS ?= 2
chaos: $(STAMP) toxiproxy
	$(BIN)/python -m chaos --seconds $(CHAOS_SECONDS) --seed $(CHAOS_SEED) \
	  --instances $(CHAOS_QUERY_INSTANCES) --replicas $(CHAOS_REPLICAS)

clean:
	rm -rf $(VENV) .cache .mypy_cache .pytest_cache .ruff_cache oidc/node_modules
