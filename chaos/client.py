"""The order client: posts at a fixed rate, each order with its own Idempotency-Key, retries
every 503 and network failure with the same key (bounded in time), and reads each acknowledged
order back with its consistency token. It records every attempt, for the report."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from devtools.issuer import TestIssuer

# (sku, name, unit price in pence): every price group, both of its edges included.
CATALOGUE = (
    ("PEN", "Pen", 99),
    ("PAD", "Notepad", 499),
    ("MUG", "Mug", 500),
    ("LAMP", "Desk lamp", 2599),
    ("KETTLE", "Kettle", 5000),
    ("CHAIR", "Chair", 5001),
    ("DESK", "Desk", 24_999),
)
POST_TIMEOUT_S = 10.0
READ_WAIT_MS = 5000
RETRY_PAUSE_S = 0.5


# The issuer the services trust in a chaos run (a real JWKS served over HTTP, real JWTs).
_issuer: TestIssuer | None = None


def sign_with(issuer: TestIssuer | None) -> None:
    global _issuer
    _issuer = issuer


def request_headers(
    extra: Mapping[str, str] | None = None, user: str | None = None
) -> dict[str, str]:
    """Every request's headers: a bearer token as `user` (an order is placed as its user), or as
    an operator allowed to read anyone (reads and checks)."""
    headers = dict(extra or {})
    if _issuer is not None:
        headers.update(
            _issuer.headers(user) if user else _issuer.headers("chaos", ["orders:read-any"])
        )
    return headers


@dataclass
class Attempts:
    """Every attempt of one kind (write or read): when, and whether it succeeded."""

    timeline: list[tuple[float, bool]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    def record(self, outcome: str, ok: bool) -> None:
        self.timeline.append((time.monotonic(), ok))
        self.statuses[outcome] = self.statuses.get(outcome, 0) + 1

    def longest_unavailability(self) -> float:
        """The longest time from a failed attempt to the next success (or the last attempt)."""
        longest, failing_since = 0.0, None
        for at, ok in sorted(self.timeline):
            if ok:
                if failing_since is not None:
                    longest = max(longest, at - failing_since)
                failing_since = None
            elif failing_since is None:
                failing_since = at
        if failing_since is not None and self.timeline:
            longest = max(longest, max(at for at, _ in self.timeline) - failing_since)
        return longest


@dataclass
class Order:
    key: str
    user_id: str
    body: dict[str, Any]
    attempts: int = 0
    order_id: str | None = None
    token: str | None = None
    read_back: bool = False
    read_lost: bool = False  # the view had reached the token and had no such order
    gave_up: str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.order_id is not None


@dataclass
class Client:
    command_url: str
    query_url: str
    rng: random.Random
    users: tuple[str, ...]
    order_deadline_s: float
    read_deadline_s: float
    orders: list[Order] = field(default_factory=list)
    writes: Attempts = field(default_factory=Attempts)
    reads: Attempts = field(default_factory=Attempts)
    unexpected: list[str] = field(default_factory=list)

    def new_order(self, run_id: str) -> Order:
        items = [
            {"sku": sku, "name": name, "unit_price": f"{pence / 100:.2f}", "quantity": qty}
            for (sku, name, pence), qty in (
                (self.rng.choice(CATALOGUE), self.rng.randint(1, 5))
                for _ in range(self.rng.randint(1, 3))
            )
        ]
        user = self.rng.choice(self.users)
        order = Order(f"{run_id}-{len(self.orders)}", user, {"user_id": user, "items": items})
        self.orders.append(order)
        return order

    async def place_and_read(self, http: httpx.AsyncClient, order: Order) -> None:
        if await self._place(http, order):
            await self._read_back(http, order)

    async def _place(self, http: httpx.AsyncClient, order: Order) -> bool:
        deadline = time.monotonic() + self.order_deadline_s
        while time.monotonic() < deadline:
            order.attempts += 1
            try:
                answer = await http.post(
                    f"{self.command_url}/orders",
                    json=order.body,
                    headers=request_headers({"Idempotency-Key": order.key}, order.user_id),
                    timeout=POST_TIMEOUT_S,
                )
            except httpx.TransportError as exc:
                self.writes.record(type(exc).__name__, ok=False)
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            if answer.status_code == 201:
                self.writes.record("201", ok=True)
                body = answer.json()
                order.order_id, order.token = body["order_id"], body["consistency_token"]
                return True
            self.writes.record(str(answer.status_code), ok=False)
            if answer.status_code != 503:
                self.unexpected.append(f"POST {order.key}: {answer.status_code} {answer.text}")
                order.gave_up = f"status {answer.status_code}"
                return False
            await asyncio.sleep(min(float(answer.headers.get("Retry-After", 1)), 1.0))
        order.gave_up = "no acknowledgement in time"
        return False

    async def _read_back(self, http: httpx.AsyncClient, order: Order) -> None:
        deadline = time.monotonic() + self.read_deadline_s
        url = f"{self.query_url}/users/{order.user_id}/orders/{order.order_id}"
        params: dict[str, str | int] = {
            "consistency_token": order.token or "",
            "wait_ms": READ_WAIT_MS,
        }
        while time.monotonic() < deadline:
            try:
                answer = await http.get(
                    url, params=params, headers=request_headers(), timeout=READ_WAIT_MS / 1000 + 5
                )
            except httpx.TransportError as exc:
                self.reads.record(type(exc).__name__, ok=False)
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            if answer.status_code == 200:
                self.reads.record("200", ok=True)
                order.read_back = True
                served = [(i["sku"], i["quantity"]) for i in answer.json()["items"]]
                if served != [(i["sku"], i["quantity"]) for i in order.body["items"]]:
                    self.unexpected.append(f"GET {order.order_id}: items {served}")
                return
            self.reads.record(str(answer.status_code), ok=False)
            if answer.status_code == 404:
                order.read_lost = True
                self.unexpected.append(f"GET {order.order_id}: 404 at its token {order.token}")
                return
            if answer.status_code != 503:
                self.unexpected.append(f"GET {order.order_id}: {answer.status_code}")
                return
            await asyncio.sleep(RETRY_PAUSE_S)
        order.gave_up = "not readable in time"
