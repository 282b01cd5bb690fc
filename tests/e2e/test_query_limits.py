"""No client starves the rest: thousands of read-your-writes waiters and hundreds of streams
opened at once against a real query service process. Past the caps the answer comes at once
(never a queue), /health/live keeps answering within 100 ms throughout, and once the clients
are gone nothing is left behind (the waiter and subscriber gauges are back to 0)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from devtools.environment import service_env
from devtools.issuer import TestIssuer
from devtools.processes import ServiceProcess
from tests.e2e.query_support import metric
from tests.support import wait_for

pytestmark = pytest.mark.kafka

WAITERS = 5_000
MAX_WAITERS = 1_000
STREAMS = 500
MAX_STREAMS = 300
USERS = 100
WAIT_MS = 4_000
# A token the view never reaches: each waiter waits its whole wait_ms.
AHEAD = "v1:0:999999999"
HEALTH_WITHIN_S = 0.100


@pytest.fixture(scope="module")
def service(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = Path(tmp_path_factory.mktemp("query-limits"))
    env = {
        **service_env(kafka_bootstrap, workdir / "state"),
        "QUERY_MAX_WAITERS": str(MAX_WAITERS),
        "QUERY_MAX_STREAMS": str(MAX_STREAMS),
        "QUERY_MAX_STREAMS_PER_USER": "5",
    }
    process = ServiceProcess("query_service", env, workdir / "query.log").start("/health/ready")
    try:
        yield process.url
    finally:
        process.stop()


@dataclass
class Answer:
    status: int
    seconds: float
    detail: str = ""


@dataclass
class Probe:
    """/health/live, asked every 20 ms on a connection of its own."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


async def _probe(
    session: aiohttp.ClientSession, url: str, probe: Probe, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        try:
            async with session.get(f"{url}/health/live") as response:
                await response.read()
                if response.status != 200:
                    probe.failures.append(f"status {response.status}")
        except aiohttp.ClientError as exc:
            probe.failures.append(repr(exc))
        probe.latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.02)


async def _wait(
    session: aiohttp.ClientSession, url: str, user: str, token: str, started: float
) -> Answer:
    async with session.get(
        f"{url}/users/{user}/items",
        params={"consistency_token": AHEAD, "wait_ms": str(WAIT_MS)},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        body = await response.json()
        return Answer(response.status, time.perf_counter() - started, str(body.get("detail")))


async def _stream(
    session: aiohttp.ClientSession,
    url: str,
    user: str,
    token: str,
    started: float,
    opened: asyncio.Event,
    release: asyncio.Event,
) -> Answer:
    async with session.get(
        f"{url}/users/{user}/items/stream", headers={"Authorization": f"Bearer {token}"}
    ) as response:
        answer = Answer(response.status, time.perf_counter() - started)
        if response.status == 200:
            await response.content.readline()  # the snapshot has begun
            opened.set()
            await release.wait()
        else:
            answer.detail = str((await response.json()).get("detail"))
        return answer


async def _storm(url: str, issuer: TestIssuer) -> tuple[list[Answer], list[Answer], Probe]:
    tokens = {f"crowd-{n}": issuer.mint(f"crowd-{n}") for n in range(USERS)}
    users = list(tokens)
    probe = Probe()
    stop, release = asyncio.Event(), asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as crowd,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as health,
    ):
        probing = asyncio.create_task(_probe(health, url, probe, stop))
        await asyncio.sleep(0.2)
        started = time.perf_counter()
        opened = [asyncio.Event() for _ in range(STREAMS)]
        streams = [
            asyncio.create_task(
                _stream(crowd, url, users[n % USERS], tokens[users[n % USERS]], started, e, release)
            )
            for n, e in enumerate(opened)
        ]
        waiters = [
            asyncio.create_task(
                _wait(crowd, url, users[n % USERS], tokens[users[n % USERS]], started)
            )
            for n in range(WAITERS)
        ]
        waited = await asyncio.gather(*waiters)
        release.set()
        streamed = await asyncio.gather(*streams)
        await asyncio.sleep(0.2)
        stop.set()
        await probing
    return waited, streamed, probe


def test_past_the_caps_the_answer_is_immediate_and_health_stays_fast(
    service: str, issuer: TestIssuer
) -> None:
    waited, streamed, probe = asyncio.run(_storm(service, issuer))

    waiter_outcomes = Counter((a.status, "too many" in a.detail) for a in waited)
    assert waiter_outcomes == {(503, False): MAX_WAITERS, (503, True): WAITERS - MAX_WAITERS}
    refused = [a.seconds for a in waited if "too many" in a.detail]
    kept = [a.seconds for a in waited if "too many" not in a.detail]
    # Refused at once, not after waiting: well before the first kept waiter gave up.
    assert max(refused) < min(kept), (max(refused), min(kept))
    assert min(kept) >= WAIT_MS / 1000

    stream_outcomes = Counter(a.status for a in streamed)
    assert stream_outcomes[200] == MAX_STREAMS, stream_outcomes
    assert stream_outcomes[200] + stream_outcomes[503] == STREAMS, stream_outcomes

    assert probe.failures == []
    assert len(probe.latencies) > 20
    slowest = max(probe.latencies)
    print(
        f"\nrefused waiters answered within {max(refused) * 1000:.0f} ms "
        f"(kept ones after {min(kept):.2f}-{max(kept):.2f} s); "
        f"/health/live p50 {sorted(probe.latencies)[len(probe.latencies) // 2] * 1000:.1f} ms, "
        f"max {slowest * 1000:.1f} ms over {len(probe.latencies)} probes"
    )
    assert slowest < HEALTH_WITHIN_S, f"/health/live took {slowest * 1000:.0f} ms"

    wait_for(lambda: metric(service, "query_read_your_writes_waiters") == 0, 10, "no waiters")
    wait_for(lambda: metric(service, "query_sse_subscribers") == 0, 10, "no subscribers")
