"""The order client: posts at a fixed rate, each order with its own Idempotency-Key, retries
every 503 and network failure with the same key (bounded in time), and reads each acknowledged
order back with its consistency token, each attempt through a random query instance. A browser
reads users' items without a token through a random instance too; every such answer is kept
with when it was asked and the position it says it was read at, for verify to judge against
the log. It records every attempt, for the report."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from devtools.issuer import TestIssuer
from query_service.view.partitioning import partition_for

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
    acknowledged_at: float = 0.0  # monotonic, when its 201 arrived
    read_back: bool = False
    read_lost: bool = False  # the view had reached the token and had no such order
    gave_up: str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.order_id is not None


@dataclass(frozen=True)
class Browse:
    """One read of a user's items without a token, as answered."""

    user_id: str
    asked_at: float  # monotonic, when it was sent
    asked: str  # the instance it was sent to
    served_by: str
    position: str  # the consistency token it was read at
    groups: dict[str, Any]


@dataclass
class Client:
    command_url: str
    query_urls: dict[str, str]  # instance -> its URL
    rng: random.Random
    users: tuple[str, ...]
    order_deadline_s: float
    read_deadline_s: float
    partitions: int
    orders: list[Order] = field(default_factory=list)
    writes: Attempts = field(default_factory=Attempts)
    reads: Attempts = field(default_factory=Attempts)
    # Per partition: every read attempt of its users (with a token or without).
    reads_by_partition: dict[int, Attempts] = field(default_factory=dict)
    # Asked instance -> the instance that answered (X-Served-By) -> 200s.
    served: dict[str, dict[str, int]] = field(default_factory=dict)
    browsed: list[Browse] = field(default_factory=list)
    # Connections an instance refused (it was down); the read went on to another.
    refused: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)

    async def _get(
        self, http: httpx.AsyncClient, user_id: str, path: str, params: dict[str, str | int]
    ) -> tuple[str, httpx.Response] | None:
        """One read attempt through a random instance, as a load balancer would make it: an
        instance that refuses the connection (down) is passed over for another. None when
        every instance refused, or the attempt failed otherwise (recorded)."""
        names = sorted(self.query_urls)
        self.rng.shuffle(names)
        for asked in names:
            try:
                answer = await http.get(
                    self.query_urls[asked] + path,
                    params=params,
                    headers=request_headers(),
                    timeout=READ_WAIT_MS / 1000 + 5,
                )
            except httpx.ConnectError:
                self.refused[asked] = self.refused.get(asked, 0) + 1
                continue
            except httpx.TransportError as exc:
                self._record_read(user_id, type(exc).__name__, ok=False)
                return None
            self._record_read(user_id, str(answer.status_code), ok=answer.status_code == 200)
            return asked, answer
        self._record_read(user_id, "refused by every instance", ok=False)
        return None

    def _record_read(self, user_id: str, outcome: str, ok: bool) -> None:
        self.reads.record(outcome, ok)
        partition = partition_for(user_id, self.partitions)
        self.reads_by_partition.setdefault(partition, Attempts()).record(outcome, ok)

    def _served(self, asked: str, answer: httpx.Response) -> str:
        by = str(answer.headers.get("X-Served-By", "?"))
        row = self.served.setdefault(asked, {})
        row[by] = row.get(by, 0) + 1
        return by

    @property
    def forwards(self) -> int:
        return sum(n for asked, row in self.served.items() for by, n in row.items() if by != asked)

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
                order.acknowledged_at = time.monotonic()
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
        """With its token, through a random instance each attempt: a 200 must hold the order."""
        deadline = time.monotonic() + self.read_deadline_s
        path = f"/users/{order.user_id}/orders/{order.order_id}"
        params: dict[str, str | int] = {
            "consistency_token": order.token or "",
            "wait_ms": READ_WAIT_MS,
        }
        while time.monotonic() < deadline:
            got = await self._get(http, order.user_id, path, params)
            if got is None:
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            asked, answer = got
            by = answer.headers.get("X-Served-By", "?")
            if answer.status_code == 200:
                self._served(asked, answer)
                order.read_back = True
                served = [(i["sku"], i["quantity"]) for i in answer.json()["items"]]
                if served != [(i["sku"], i["quantity"]) for i in order.body["items"]]:
                    self.unexpected.append(f"GET {order.order_id} from {by}: items {served}")
                return
            if answer.status_code == 404:
                order.read_lost = True
                self.unexpected.append(
                    f"GET {order.order_id} from {by}: 404 at its token {order.token}"
                )
                return
            if answer.status_code != 503:
                self.unexpected.append(f"GET {order.order_id} from {by}: {answer.status_code}")
                return
            await asyncio.sleep(RETRY_PAUSE_S)
        order.gave_up = "not readable in time"

    async def browse(self, http: httpx.AsyncClient, rate: float, stop: asyncio.Event) -> None:
        """Reads a random user's items without a token through a random instance, `rate` a
        second, until `stop`; keeps every 200 (verify judges it against the log)."""
        while not stop.is_set():
            user = self.rng.choice(self.users)
            asked_at = time.monotonic()
            got = await self._get(http, user, f"/users/{user}/items", {"wait_ms": READ_WAIT_MS})
            if got is not None:
                asked, answer = got
                if answer.status_code == 200:
                    body = answer.json()
                    by = self._served(asked, answer)
                    self.browsed.append(
                        Browse(user, asked_at, asked, by, body["consistency_token"], body["groups"])
                    )
                elif answer.status_code != 503:
                    self.unexpected.append(f"GET items of {user}: {answer.status_code}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1 / rate)
