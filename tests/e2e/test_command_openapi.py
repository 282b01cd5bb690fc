"""Schemathesis against the running command service: no 5xx, and every answer is as documented.

The schema is loaded from the live service's /openapi.json. Each operation's cases come from
schemathesis as a Hypothesis strategy (valid and invalid data), driven by a bounded `@given`;
schemathesis's own lazy pytest loader does not work with this pytest release.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from devtools.environment import unique_topic
from devtools.processes import ServiceProcess
from shared.events import USER_ID_PATTERN
from tests.e2e.openapi_support import CHECKS
from tests.support import test_issuer

pytestmark = pytest.mark.kafka

OPERATIONS = [("/orders", "POST"), ("/health/live", "GET"), ("/health/ready", "GET")]


@pytest.fixture(scope="module")
def command_api(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[schemathesis.BaseSchema]:
    log = Path(tmp_path_factory.mktemp("command-openapi")) / "command.log"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ORDERS_TOPIC": unique_topic(),
        "ORDERS_PER_MINUTE": "1000000",
    }
    service = ServiceProcess("command_service", env, log).start(ready_path="/health/ready")
    try:
        yield schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    finally:
        service.stop()


def test_every_operation_is_fuzzed(command_api: schemathesis.BaseSchema) -> None:
    documented = {(op.ok().path, op.ok().method.upper()) for op in command_api.get_all_operations()}
    assert documented - {("/metrics", "GET")} == set(OPERATIONS)


# Operations without inputs have no invalid data to send, so only /orders gets negative cases.
@pytest.mark.parametrize(
    ("path", "method", "mode"),
    [(path, method, GenerationMode.POSITIVE) for path, method in OPERATIONS]
    + [("/orders", "POST", GenerationMode.NEGATIVE)],
)
def test_operation_conforms_to_its_openapi(
    command_api: schemathesis.BaseSchema, path: str, method: str, mode: GenerationMode
) -> None:
    operation = command_api[path][method]
    statuses: set[int] = set()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=50 if path == "/orders" else 5,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def conforms(case: schemathesis.Case) -> None:
        # A case whose headers are the invalid part (a bad or missing Authorization among them)
        # is sent as generated.
        if not _negative_headers(case):
            sign_as_named_user(case)
        statuses.add(case.call_and_validate(checks=CHECKS, timeout=10).status_code)

    conforms()
    if mode is GenerationMode.NEGATIVE:
        # 401: a generated bearer token; 403: a body naming a user that is not a valid id gets
        # a token for another one.
        assert statuses <= {400, 401, 403, 413, 415, 422}, statuses


def _negative_headers(case: schemathesis.Case) -> bool:
    return any(
        str(getattr(location, "value", location)) == "header" and info.mode.is_negative
        for location, info in case.meta.components.items()
    )


def sign_as_named_user(case: schemathesis.Case) -> None:
    """A valid token for the user the body names (else for one who names no one), so that
    generated orders get past authentication and exercise the rest."""
    named = case.body.get("user_id") if isinstance(case.body, dict) else None
    user = named if isinstance(named, str) and re.fullmatch(USER_ID_PATTERN, named) else "fuzz"
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {test_issuer().mint(user)}"}


def test_a_valid_order_is_accepted_as_documented(command_api: schemathesis.BaseSchema) -> None:
    # Generated "positive" bodies satisfy the JSON Schema, which cannot say everything the
    # validation checks (a trimmed name, at most 2 decimals), so whether one of them gets a 201
    # is chance; this case makes the documented 201 path certain.
    operation = command_api["/orders"]["POST"]
    case = operation.Case(
        body={
            "user_id": "schema-check",
            "currency": "GBP",
            "items": [{"sku": "PEN-1", "name": "Pen", "unit_price": "4.99", "quantity": 2}],
        },
        media_type="application/json",
        headers={"Idempotency-Key": "schema-check-1"},
    )
    sign_as_named_user(case)
    assert case.call_and_validate(checks=CHECKS, timeout=10).status_code == 201
