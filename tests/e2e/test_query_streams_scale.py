"""Live pages for many (issue 18) at test size: hundreds of items streams on distinct users of one
real query instance, each opened with a stream ticket as the page opens it. Every order's delta
reaches its own user's stream and no other, while one client that stopped reading (its receive
buffer full, the server's sends to it stalled) delays none of them; once it reads again it
catches up, through a fresh snapshot. The 5,000-stream figures come from bench/streams.py."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from bench.streams import SseEvent, SseStream
from devtools.environment import service_env
from devtools.issuer import TestIssuer
from devtools.processes import ServiceProcess
from shared.events import MAX_ITEMS, MAX_NAME_LENGTH
from shared.events import LineItemV1 as LineItem
from shared.events import OrderPlacedV1 as OrderPlaced
from tests.e2e.query_support import OrderProducer, metric
from tests.factories import order
from tests.support import wait_for

pytestmark = pytest.mark.kafka

STREAMS = 300
# Users of the streams who place orders; the first tenth of them two each.
ORDERING = 200
STALLED = "stalled-reader"
# Each stream's queue of changes (QUERY_SSE_QUEUE_SIZE).
QUEUE_SIZE = 4
# Changes to the stalled user after the flood, each in a batch of its own: the first may share
# the flood's last batch, and the stream takes at most one more before its send waits; the rest
# overflow its queue, twice over.
STALL_CHANGES = 2 * QUEUE_SIZE + 2
# Generous: on a loaded 2-core machine the deltas come within tens of milliseconds, not seconds.
ARRIVE_WITHIN_S = 10.0
# The stalled client's socket: the kernel's smallest receive buffer, more or less.
RECEIVE_BUFFER = 4096
# A lower bound on the bytes one flood line adds to a delta: its name, and the JSON around it.
LINE_BYTES_AT_LEAST = MAX_NAME_LENGTH + 80


@pytest.fixture(scope="module")
def env(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return service_env(kafka_bootstrap, tmp_path_factory.mktemp("streams") / "state")


@pytest.fixture(scope="module")
def producer(kafka_bootstrap: str, env: dict[str, str]) -> OrderProducer:
    return OrderProducer(kafka_bootstrap, env["ORDERS_TOPIC"])


@pytest.fixture(scope="module")
def service(
    env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    caps = {"QUERY_MAX_STREAMS": str(STREAMS + 10), "QUERY_SSE_QUEUE_SIZE": str(QUEUE_SIZE)}
    log = tmp_path_factory.mktemp("logs") / "query.log"
    process = ServiceProcess("query_service", {**env, **caps}, log).start("/health/ready")
    try:
        yield process
    finally:
        process.stop()


@dataclass
class Follower:
    """One user's stream, read as it comes: every event kept, and the skus its deltas name."""

    user: str
    stream: SseStream
    # Set on every event of any follower sharing it.
    changed: asyncio.Event
    events: list[SseEvent] = field(default_factory=list)
    skus: list[str] = field(default_factory=list)

    async def follow(self) -> None:
        async for event in self.stream.events():
            self.events.append(event)
            if event.event == "delta":
                self.skus.extend(line["sku"] for line in json.loads(event.data)["lines"])
            self.changed.set()

    def reached(self, offset: int) -> bool:
        return any(e.id and offset_of(e.id) >= offset for e in self.events)


async def until(condition: Callable[[], bool], changed: asyncio.Event) -> None:
    while not condition():
        changed.clear()
        await changed.wait()


def tickets(url: str, issuer: TestIssuer, users: list[str]) -> dict[str, str]:
    """A stream ticket for each user, asked for with the user's own token, as the page asks."""
    with httpx.Client(base_url=url, timeout=20) as client:
        return {
            user: client.post(
                f"/users/{user}/items/stream-ticket", headers=issuer.headers(user)
            ).json()["ticket"]
            for user in users
        }


def flood_orders() -> list[OrderPlaced]:
    """Orders whose deltas add up to more than the server's socket send buffer can ever grow to
    (net.ipv4.tcp_wmem's maximum) and a margin: a client that reads none of them stalls the
    server's sends to it, whatever the kernel's tuning."""
    send_buffer_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    count = math.ceil((send_buffer_max + (2 << 20)) / (MAX_ITEMS * LINE_BYTES_AT_LEAST))
    return [
        OrderPlaced(
            event_id=uuid.uuid4(),
            order_id=uuid.uuid4(),
            user_id=STALLED,
            placed_at=datetime.now(UTC),
            items=tuple(
                LineItem(
                    sku=f"F-{n}-{i}", name="N" * MAX_NAME_LENGTH, unit_price_minor=999, quantity=1
                )
                for i in range(MAX_ITEMS)
            ),
        )
        for n in range(count)
    ]


def offset_of(token: str) -> int:
    return int(token.rsplit(":", 1)[1])


def stall(service: ServiceProcess, producer: OrderProducer, issuer: TestIssuer) -> int:
    """Flood the stalled user's stream, then change its view once per batch more times than its
    queue holds; the offset of the last change."""
    for each in flood_orders():
        producer.send(each)
    producer.flush()
    token = ""
    with httpx.Client(base_url=service.url, timeout=20, headers=issuer.headers(STALLED)) as client:
        for n in range(STALL_CHANGES):
            token = producer.place(order(STALLED, (f"S-{n}", 250, 1)))
            # Applied before the next is produced: each change comes in a batch of its own.
            answer = client.get(f"/users/{STALLED}/items", params={"consistency_token": token})
            assert answer.status_code == 200, answer.text
    return offset_of(token)


def planned(users: list[str]) -> dict[str, list[str]]:
    """The skus of each user's orders: one order for each (two for the first tenth), each order
    with a sku of its own."""
    return {
        user: [f"{user}.{k}" for k in range(2 if n < len(users) // 10 else 1)]
        for n, user in enumerate(users)
    }


def place(producer: OrderProducer, plan: dict[str, list[str]]) -> None:
    for user, skus in plan.items():
        for k, sku in enumerate(skus):
            producer.send(order(user, (sku, 499 + k, 1)))
    producer.flush()


async def _scenario(
    service: ServiceProcess, producer: OrderProducer, issuer: TestIssuer
) -> tuple[list[Follower], dict[str, list[str]], float, Follower]:
    users = [f"page-{n}" for n in range(STREAMS)]
    given = await asyncio.to_thread(tickets, service.url, issuer, [*users, STALLED])
    stalled = SseStream(
        service.url,
        f"/users/{STALLED}/items/stream?ticket={given[STALLED]}",
        receive_buffer=RECEIVE_BUFFER,
    )
    assert await stalled.open() == 200
    changed = asyncio.Event()
    followers = [
        Follower(
            user,
            SseStream(service.url, f"/users/{user}/items/stream?ticket={given[user]}"),
            changed,
        )
        for user in users
    ]
    for follower in followers:
        assert await follower.stream.open() == 200
    tasks = [asyncio.create_task(f.follow()) for f in followers]
    catching_up = Follower(STALLED, stalled, changed)
    plan = planned(users[:ORDERING])
    expected = sum(len(skus) for skus in plan.values())
    try:
        # Every stream has had its snapshot.
        await asyncio.wait_for(until(lambda: all(f.events for f in followers), changed), 30)
        last_stalled = await asyncio.to_thread(stall, service, producer, issuer)
        await asyncio.to_thread(place, producer, plan)
        acked = time.perf_counter()
        await asyncio.wait_for(
            until(lambda: sum(len(f.skus) for f in followers) >= expected, changed),
            ARRIVE_WITHIN_S,
        )
        arrived_s = max(e.at for f in followers for e in f.events) - acked
        # Only now does the stalled client read again.
        tasks.append(asyncio.create_task(catching_up.follow()))
        await asyncio.wait_for(until(lambda: catching_up.reached(last_stalled), changed), 30)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(f.stream.close() for f in followers), stalled.close())
    return followers, plan, arrived_s, catching_up


def test_each_delta_reaches_its_own_stream_and_a_stalled_reader_delays_none(
    service: ServiceProcess, producer: OrderProducer, issuer: TestIssuer
) -> None:
    followers, placed, arrived_s, stalled = asyncio.run(_scenario(service, producer, issuer))

    for follower in followers:
        assert sorted(follower.skus) == sorted(placed.get(follower.user, [])), follower.user
        assert [e.event for e in follower.events if e.event != "delta"] == ["snapshot"]
    print(f"\nevery delta of {len(placed)} users arrived {arrived_s * 1000:.0f} ms after the acks")

    # The stalled reader fell behind while the others were served: its queue overflowed, and
    # reading again it got a fresh snapshot rather than every change it had missed.
    kinds = [e.event for e in stalled.events]
    assert kinds[0] == "snapshot"
    assert "snapshot" in kinds[1:], [(e.event, e.id, len(e.data)) for e in stalled.events]
    wait_for(lambda: metric(service.url, "query_sse_subscribers") == 0, 10, "no subscribers")
