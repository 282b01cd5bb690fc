"""kill -9 the query service again and again while it ingests; the view must end up exactly the
fold of every event, as the oracle folds them."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from devtools.environment import service_env
from devtools.processes import ServiceProcess
from shared.events import OrderPlaced
from tests.e2e.query_support import OrderProducer
from tests.factories import random_order
from tests.oracle import ExpectedView, expected_views, served_groups
from tests.support import as_named_user, wait_for

pytestmark = pytest.mark.kafka

EVENTS = 40_000  # six kills land mid-ingest: each restart replays from its last durable batch
USERS = 3_000
KILLS = 6


def applied_count(service: ServiceProcess) -> int:
    try:
        body = httpx.get(f"{service.url}/health/ready", timeout=2).json()
    except httpx.TransportError:
        return 0
    return sum(offset + 1 for offset in body["applied_offsets"].values())


def test_kill_9_during_ingest_leaves_exactly_the_fold(kafka_bootstrap: str, tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    env = service_env(kafka_bootstrap, tmp_path / "state")
    producer = OrderProducer(kafka_bootstrap, env["ORDERS_TOPIC"])
    users = [f"crash-{i}" for i in range(USERS)]
    placed: dict[str, list[OrderPlaced]] = defaultdict(list)
    events: list[OrderPlaced] = []
    for _ in range(EVENTS):
        user = rng.choice(users)
        earlier = placed[user]
        if earlier and rng.random() < 0.03:
            # A retried order: the same order_id again, even with other items, changes nothing.
            event = random_order(rng, user, order_id=rng.choice(earlier).order_id)
        else:
            event = random_order(rng, user)
            earlier.append(event)
        events.append(event)
        producer.send(event)
    producer.flush()
    assert len(producer.landed) == EVENTS

    kills = 0
    service = ServiceProcess("query_service", env, tmp_path / "query.log").start("/health/live")
    try:
        for k in range(KILLS):
            threshold = int(EVENTS * (k + rng.uniform(0.2, 0.9)) / (KILLS + 1))
            # Polling lands the kill at an arbitrary point of the runner's batch cycle.
            wait_for(lambda t=threshold: applied_count(service) >= t, 120, f"{threshold} applied")
            if applied_count(service) >= EVENTS:
                break
            service.kill()
            kills += 1
            service.start("/health/live")
        wait_for(lambda: applied_count(service) >= EVENTS, 180, "every event applied")
        wait_for(
            lambda: httpx.get(f"{service.url}/health/ready", timeout=2).status_code == 200,
            60,
            "ready",
        )
        assert kills >= 5, f"only {kills} kills landed during ingest (seed {seed})"

        expected = expected_views(events)
        with httpx.Client(base_url=service.url, timeout=10, auth=as_named_user()) as client:
            for user in users:
                url = f"/users/{user}/items"
                served = served_groups(lambda params, u=url: client.get(u, params=params).json())
                wanted = expected.get(user, ExpectedView()).groups
                assert served == wanted, f"{user} differs (seed {seed})"
    finally:
        service.stop()
