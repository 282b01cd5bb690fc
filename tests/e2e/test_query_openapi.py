"""Schemathesis against the running query service: no 5xx, and every answer is as documented.

As for the command service (tests/e2e/test_command_openapi.py): the schema comes from the live
/openapi.json and each operation's cases from schemathesis's strategies under a bounded `@given`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from devtools.environment import service_env
from devtools.processes import ServiceProcess
from shared.events import USER_ID_PATTERN
from tests.e2e.openapi_support import CHECKS
from tests.e2e.query_support import OrderProducer
from tests.factories import order
from tests.support import as_named_user, test_issuer

pytestmark = pytest.mark.kafka

OPERATIONS = [
    ("/users/{user_id}/items", "GET"),
    ("/users/{user_id}/orders", "GET"),
    ("/users/{user_id}/orders/{order_id}", "GET"),
    ("/users/{user_id}/items/stream-ticket", "POST"),
    ("/config.json", "GET"),
    ("/cluster", "GET"),
    ("/health/live", "GET"),
    ("/health/ready", "GET"),
]
# The stream never ends and /metrics is text: both are checked by their own tests.
UNFUZZED = {("/users/{user_id}/items/stream", "GET"), ("/metrics", "GET")}


@pytest.fixture(scope="module")
def query_api(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[schemathesis.BaseSchema]:
    workdir = Path(tmp_path_factory.mktemp("query-openapi"))
    env = service_env(kafka_bootstrap, workdir / "state")
    producer = OrderProducer(kafka_bootstrap, env["ORDERS_TOPIC"])
    token = producer.place(order("schema-check", ("PEN-1", 499, 2), ("POT", 5001, 1)))
    service = ServiceProcess("query_service", env, workdir / "query.log").start("/health/ready")
    try:
        url = f"{service.url}/users/schema-check/items"
        read = httpx.get(url, params={"consistency_token": token}, timeout=10, auth=as_named_user())
        assert read.status_code == 200
        yield schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    finally:
        service.stop()


def test_every_operation_is_fuzzed(query_api: schemathesis.BaseSchema) -> None:
    documented = {(op.ok().path, op.ok().method.upper()) for op in query_api.get_all_operations()}
    assert documented - UNFUZZED == set(OPERATIONS)


@pytest.mark.parametrize(
    ("path", "method", "mode"),
    [(path, method, GenerationMode.POSITIVE) for path, method in OPERATIONS]
    + [(path, "GET", GenerationMode.NEGATIVE) for path, _ in OPERATIONS[:3]],
)
def test_operation_conforms_to_its_openapi(
    query_api: schemathesis.BaseSchema, path: str, method: str, mode: GenerationMode
) -> None:
    operation = query_api[path][method]
    declared = {p.name for p in operation.query}
    statuses: set[int] = set()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=40 if path.startswith("/users") else 5,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def conforms(case: schemathesis.Case) -> None:
        wait_ms = (case.query or {}).get("wait_ms")
        if isinstance(wait_ms, int) and 50 < wait_ms <= 30_000:
            # A valid wait for a token the view never reaches would only slow the run down (an
            # invalid one stays as generated: it may be what makes a negative case negative).
            case.query["wait_ms"] = 50
        # A case whose headers are the invalid part (a bad or missing Authorization among them)
        # is sent as generated.
        if not _negative_headers(case):
            sign_as_path_user(case)
        status = case.call_and_validate(checks=CHECKS, timeout=10).status_code
        if mode is GenerationMode.NEGATIVE and status == 200:
            # Query parameters the API does not declare are ignored, as HTTP APIs do; any
            # other invalid input must be refused.
            assert set(case.query or {}) - declared, (case.path_parameters, case.query)
        statuses.add(status)

    conforms()
    if mode is GenerationMode.NEGATIVE:
        # 401: a generated bearer token; 403: a path user that is not a valid id gets a token
        # for another one.
        assert statuses <= {200, 400, 401, 403, 404, 422}, statuses


def _negative_headers(case: schemathesis.Case) -> bool:
    return any(
        str(getattr(location, "value", location)) == "header" and info.mode.is_negative
        for location, info in case.meta.components.items()
    )


def sign_as_path_user(case: schemathesis.Case) -> None:
    """A valid token for the user the path names (else for another), so that generated reads
    get past authentication and exercise the rest."""
    named = (case.path_parameters or {}).get("user_id")
    user = named if isinstance(named, str) and re.fullmatch(USER_ID_PATTERN, named) else "fuzz"
    # The ops routes (/cluster) answer an operator on the API port.
    scopes = ["orders:read-any"] if case.operation.path == "/cluster" else None
    token = test_issuer().mint(user, scopes) if scopes else test_issuer().mint(user)
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
