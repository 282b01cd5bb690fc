"""The one place tests get a Kafka broker from.

`KAFKA_BOOTSTRAP_SERVERS` if set; else a local Apache Kafka broker (kafka_local: the release the
project pins, from Maven Central) on free ports with a fresh log dir. A Docker engine, running or
not, changes nothing: the same broker everywhere.
A test that needs Kafka and can get none fails with a message saying how to get one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.issuer import TestIssuer
from kafka_local.broker import BrokerError, LocalBroker, free_port
from kafka_local.secure import SecureBroker
from tests.support import test_issuer

HOW_TO_GET_A_BROKER = (
    "No Kafka broker for the tests. Either set KAFKA_BOOTSTRAP_SERVERS to a running broker, "
    "or install Java 17 and Maven so that kafka_local can fetch and start one (`make kafka` "
    "shows the error)."
)


def start_local_broker(workdir: Path, *, secure: bool = False) -> LocalBroker:
    kind = SecureBroker if secure else LocalBroker
    broker = kind(workdir, port=free_port(), controller_port=free_port())
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"{HOW_TO_GET_A_BROKER}\n\n{exc}", pytrace=False)
    return broker


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    broker = start_local_broker(tmp_path_factory.mktemp("kafka"))
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker of the test's own, which the test may stop and start again (outage tests)."""
    broker = start_local_broker(tmp_path / "kafka")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """A SASL_SSL broker with SCRAM users and ACLs enforced, always a local one (its users and
    certificates are made here); a test grants itself the ACLs for its own topic."""
    broker = start_local_broker(tmp_path_factory.mktemp("kafka-secure"), secure=True)
    assert isinstance(broker, SecureBroker)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def issuer() -> Iterator[TestIssuer]:
    """The tests' OpenID Connect issuer: its JWKS over HTTP, tokens minted for any user."""
    found = test_issuer()
    try:
        yield found
    finally:
        found.close()


@pytest.fixture(scope="session", autouse=True)
def _services_trust_the_test_issuer(issuer: TestIssuer) -> Iterator[None]:
    """Every service a test builds or starts as a process reads AUTH_* from the environment:
    they all trust the test issuer (a test that wants another passes its own)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in issuer.env().items():
            patch.setenv(name, value)
        yield
