"""Read-your-writes as a browser sees it: POST an order, then GET the user's items with the
consistency token, open loop at a fixed rate, through one query instance or a random one of
several."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from bench.harness import percentiles_ms
from query_service.cluster.forwarding import SERVED_BY_HEADER


async def read_your_writes(
    command_url: str, query_urls: Sequence[str], rate: int, seconds: float
) -> dict[str, Any]:
    """Open loop at `rate` orders/s: each one POSTs, then GETs its user's items with the token
    from one of `query_urls` at random; counts the GETs another instance served (forwarded).

    aiohttp rather than httpx: on these machines httpx spent ~1.8 ms of CPU per request, which
    made the generator, not the system, the bottleneck at 400 requests/s.
    """
    latencies: list[float] = []
    failures: list[str] = []
    forwarded = 0
    choose = random.Random(5).choice
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as http:
        instance_ids = {}
        for url in query_urls:
            async with http.get(f"{url}/health/ready") as ready:
                instance_ids[url] = (await ready.json())["instance_id"]

        async def one(i: int) -> None:
            nonlocal forwarded
            user = f"ryw-{i % 500}"
            order = {
                "user_id": user,
                "items": [
                    {
                        "sku": f"R-{i}",
                        "name": "Read your write",
                        "unit_price": "7.50",
                        "quantity": 1,
                    }
                ],
            }
            started = time.perf_counter()
            async with http.post(f"{command_url}/orders", json=order) as placed:
                await placed.read()
                token = placed.headers.get("X-Consistency-Token", "")
            params = {"consistency_token": token, "wait_ms": "5000"}
            query_url = choose(query_urls)
            async with http.get(f"{query_url}/users/{user}/items", params=params) as view:
                answer = await view.read()
            if placed.status != 201 or view.status != 200:
                failures.append(f"{placed.status}/{view.status} {answer[:300]!r}")
                return
            latencies.append(time.perf_counter() - started)
            forwarded += view.headers.get(SERVED_BY_HEADER) != instance_ids[query_url]

        for warmup in range(20):
            await one(-1 - warmup)
        latencies.clear()
        forwarded = 0
        count = max(1, round(rate * seconds))
        start = time.perf_counter()
        cpu_start = time.process_time()
        tasks = []
        for i in range(count):
            # Open loop: each order starts on its schedule, whether or not earlier ones finished.
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
    if failures:
        raise RuntimeError(f"read-your-writes requests failed: {failures[:5]}")
    return {
        "rate": rate,
        "instances": len(query_urls),
        "forwarded_share": round(forwarded / len(latencies), 3),
        "achieved_rate": round(count / wall, 1),
        "generator_cpu": round(cpu / wall, 3),
        **percentiles_ms(latencies),
    }
