"""The chaos run's stream watcher against a real query service and broker, no fault injected:
orders placed before and while it watches, it settles on the oracle's view of each user (one
with no orders too)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest

from chaos.streams import StreamWatcher, expected_groups
from devtools.environment import service_env
from devtools.processes import ServiceProcess
from shared.events import OrderPlaced
from tests.e2e.query_support import OrderProducer
from tests.factories import order
from tests.oracle import expected_views
from tests.support import operator_headers

pytestmark = pytest.mark.kafka

SETTLE_S = 30.0


@pytest.fixture(scope="module")
def env(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return service_env(kafka_bootstrap, tmp_path_factory.mktemp("chaos-streams") / "state")


@pytest.fixture(scope="module")
def producer(kafka_bootstrap: str, env: dict[str, str]) -> OrderProducer:
    return OrderProducer(kafka_bootstrap, env["ORDERS_TOPIC"])


@pytest.fixture(scope="module")
def service(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process = ServiceProcess("query_service", env, tmp_path_factory.mktemp("logs") / "query.log")
    process.start("/health/ready")
    try:
        yield process.url
    finally:
        process.stop()


def test_watchers_settle_on_the_oracles_views(service: str, producer: OrderProducer) -> None:
    users = ("watch-a", "watch-b", "watch-idle")
    placed: list[OrderPlaced] = [
        order("watch-a", ("PEN", 99, 2), ("DESK", 24_999, 1)),
        order("watch-b", ("MUG", 500, 1)),
    ]
    for event in placed:
        producer.send(event)
    producer.flush()
    later = [
        order("watch-a", ("PEN", 99, 1), ("LAMP", 2599, 3)),
        order("watch-b", ("KETTLE", 5000, 2), ("MUG", 500, 4), ("MUG", 500, 1)),
        order("watch-a", ("CHAIR", 5001, 1)),
        order("watch-b", ("PAD", 499, 5)),
    ]
    rng = random.Random(7)
    watchers = {u: StreamWatcher(u, [service], rng, operator_headers) for u in users}

    async def scenario() -> dict[str, bool]:
        stop = asyncio.Event()
        running = [asyncio.create_task(w.run(stop)) for w in watchers.values()]
        # Each stream's snapshot first, then the rest of the orders arrive as deltas.
        first = expected_views(placed)
        for user, watcher in watchers.items():
            assert await watcher.settle(expected_groups(first, user), SETTLE_S), user
        for event in later:
            producer.place(event)  # one batch each, most likely: a delta each
        want = expected_views(placed + later)
        settled = {
            u: await w.settle(expected_groups(want, u), SETTLE_S) for u, w in watchers.items()
        }
        stop.set()
        await asyncio.wait_for(asyncio.gather(*running), 5)
        return settled

    settled = asyncio.run(scenario())

    assert settled == dict.fromkeys(users, True), {u: w.view.groups() for u, w in watchers.items()}
    for user, watcher in watchers.items():
        assert watcher.violations == [], user
        assert watcher.errors == {}, user
        assert sum(watcher.connects.values()) == 1, user
        assert "?" not in watcher.connects, user
        assert watcher.view.snapshots == 1, user
    assert watchers["watch-a"].view.deltas >= 1
    assert watchers["watch-b"].view.deltas >= 1
