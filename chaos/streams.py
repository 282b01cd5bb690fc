"""The chaos run's stream watchers: one per user keeps GET /users/{id}/items/stream open across
the query instances while faults land, folds what it is sent into the oracle's shape
(`tests.oracle.Groups`), and at verify time must reach the oracle's view of that user."""

from __future__ import annotations

import asyncio
import copy
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

import httpx
import orjson

from tests.oracle import ExpectedGroup, ExpectedView, Groups, Lines

# The service pings every 15 s: a connection silent for longer than this is dead (a SIGKILLed
# instance behind a cut network sends no FIN).
READ_TIMEOUT_S: Final = 20.0
CONNECT_TIMEOUT_S: Final = 3.0
PAUSE_S: Final = (0.2, 0.5)
MAX_RETRY_AFTER_S: Final = 1.0
VIOLATIONS_KEPT: Final = 20


class StreamViolation(Exception):
    """What the stream sent breaks its contract (or the watcher's assumption of one page)."""


def expected_groups(views: Mapping[str, ExpectedView], user_id: str) -> Groups:
    """The oracle's groups for `user_id`; a user with no events has the empty view."""
    view = views.get(user_id)
    return copy.deepcopy(view.groups if view is not None else ExpectedView().groups)


@dataclass
class StreamView:
    """A pure fold of one user's stream events (event loop only)."""

    user_id: str
    last_event_id: str | None = None
    snapshots: int = 0
    deltas: int = 0
    reconnects: int = 0
    moved: int = 0
    # Lines a delta sent again at the value held (a delta of a batch the snapshot had already
    # read): harmless, as a delta carries new values, not increments.
    repeated_lines: int = 0
    _groups: Groups | None = field(default=None, repr=False)

    def groups(self) -> Groups:
        """What the stream has told so far; the empty view before the first snapshot."""
        return copy.deepcopy(self._groups if self._groups is not None else ExpectedView().groups)

    def apply(self, event_name: str, data: Mapping[str, Any], event_id: str | None = None) -> None:
        if event_name == "snapshot":
            self._groups = _snapshot_groups(self.user_id, data)
            self.snapshots += 1
        elif event_name == "delta":
            self._apply_delta(data, event_id)
            self.deltas += 1
        elif event_name == "moved":
            self.moved += 1
        else:
            raise StreamViolation(f"unknown event {event_name!r}")
        if event_id is not None:
            self.last_event_id = event_id

    def _apply_delta(self, data: Mapping[str, Any], event_id: str | None) -> None:
        if self._groups is None:
            raise StreamViolation("a delta before any snapshot")
        if event_id is None or _offset(event_id) <= _offset(self.last_event_id):
            # Delta ids are the partition's position: each one past the last one seen.
            raise StreamViolation(f"delta {event_id} after {self.last_event_id}: sent twice?")
        for line in data["lines"]:
            lines = self._groups[line["group"]].lines
            key, value = _line(line)
            old = lines.get(key)
            if old == value:
                self.repeated_lines += 1
            # Orders only add: a line appears, or grows in quantity and orders.
            elif old is not None and (value[1] <= old[1] or value[2] < old[2]):
                raise StreamViolation(f"delta {event_id}: line {key} went from {old} to {value}")
            lines[key] = value
        for name, summary in data["groups"].items():
            group = self._groups[name]
            group.item_count, group.total_minor = summary["item_count"], _pence(summary["total"])
            _check_group(name, group, summary["line_count"], f"delta {event_id}")


@dataclass
class StreamWatcher:
    """Keeps one user's stream open against `urls` (any query instance: one that does not hold
    the partition forwards), reconnecting with Last-Event-ID after anything that ends it.

    Event loop only. `transport` is for tests; the run leaves it None (real HTTP)."""

    user_id: str
    urls: Sequence[str]
    rng: random.Random
    headers: Callable[[], dict[str, str]]
    transport: httpx.AsyncBaseTransport | None = None
    read_timeout_s: float = READ_TIMEOUT_S
    view: StreamView = field(init=False)
    connects: Counter[str] = field(default_factory=Counter)  # X-Served-By -> 200s
    errors: Counter[str] = field(default_factory=Counter)  # what ended or refused a connection
    # Must stay empty: the first VIOLATIONS_KEPT (errors["violation"] counts them all).
    violations: list[str] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def __post_init__(self) -> None:
        self.view = StreamView(self.user_id)

    async def run(self, stop: asyncio.Event) -> None:
        timeout = httpx.Timeout(self.read_timeout_s, connect=CONNECT_TIMEOUT_S)
        async with httpx.AsyncClient(timeout=timeout, transport=self.transport) as http:
            while True:
                pause = await _until_stopped(stop, self._connect_once(http))
                await _until_stopped(stop, asyncio.sleep(pause or 0.0))
                if stop.is_set():
                    return
                self.view.reconnects += 1

    async def settle(self, want: Groups, timeout_s: float) -> bool:
        """Whether the view reaches `want` within `timeout_s` (while `run` is running). Only a
        view the stream has sent counts: a user with no orders must have had a snapshot too."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self._holds(want):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return self._holds(want)
        return True

    def _holds(self, want: Groups) -> bool:
        return self.view.snapshots > 0 and self.view.groups() == want

    async def _connect_once(self, http: httpx.AsyncClient) -> float:
        """One connection, to its end; how long to pause before the next."""
        pause = self.rng.uniform(*PAUSE_S)
        url = f"{self.rng.choice(self.urls)}/users/{self.user_id}/items/stream"
        headers = {**self.headers(), "Accept": "text/event-stream"}
        if self.view.last_event_id is not None:
            headers["Last-Event-ID"] = self.view.last_event_id
        try:
            async with http.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    self.errors[f"status {response.status_code}"] += 1
                    return max(pause, _retry_after(response.headers.get("Retry-After")))
                self.connects[response.headers.get("X-Served-By", "?")] += 1
                async for name, data, event_id, retry in _events(response.aiter_lines()):
                    if not self._apply(name, data, event_id):
                        self.errors["violation"] += 1
                        return pause
                    if name == "moved":
                        self.errors["moved"] += 1
                        return max(pause, min(retry or 0.0, MAX_RETRY_AFTER_S))
                self.errors["end of stream"] += 1
        except httpx.HTTPError as exc:  # a transport error, mostly (a ReadTimeout: silence)
            self.errors[type(exc).__name__] += 1
        return pause

    def _apply(self, name: str, data: str, event_id: str | None) -> bool:
        """Whether the event could be folded; if not, the next connection starts afresh (no
        Last-Event-ID, so a snapshot) rather than fold more into a view known to be wrong."""
        try:
            self.view.apply(name, orjson.loads(data), event_id)
        except (StreamViolation, ValueError, KeyError, TypeError) as exc:  # ValueError: bad JSON
            if len(self.violations) < VIOLATIONS_KEPT:
                self.violations.append(f"{name} {event_id}: {type(exc).__name__}: {exc}")
            self.view.last_event_id = None
            return False
        finally:
            self._changed.set()
        return True


async def _until_stopped(stop: asyncio.Event, work: Awaitable[float | None]) -> float | None:
    """`work`'s result, or None once `stop` is set first (`work` is then cancelled)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
    for pending in (task, stopped):
        pending.cancel()
    await asyncio.gather(task, stopped, return_exceptions=True)
    return task.result() if task.done() and not task.cancelled() else None


async def _events(
    lines: AsyncIterator[str],
) -> AsyncIterator[tuple[str, str, str | None, float | None]]:
    """(event, data, id, retry seconds) per event of a text/event-stream; comments skipped."""
    name, data = "message", list[str]()
    event_id: str | None = None
    retry: float | None = None
    async for line in lines:
        if not line:
            if data:
                yield name, "\n".join(data), event_id, retry
            name, data, event_id, retry = "message", [], None, None
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)
        elif key == "id":
            event_id = value
        elif key == "retry" and value.isdigit():
            retry = int(value) / 1000


def _snapshot_groups(user_id: str, data: Mapping[str, Any]) -> Groups:
    if data["user_id"] != user_id:
        raise StreamViolation(f"a snapshot of {data['user_id']!r}, not of {user_id!r}")
    groups: Groups = {}
    for name, served in data["groups"].items():
        if served["next_cursor"] is not None:
            # The snapshot carries each group's first page only; the chaos catalogue fits one.
            raise StreamViolation(f"group {name} has more lines than its snapshot page")
        lines: Lines = dict(_line(line) for line in served["lines"])
        group = ExpectedGroup(lines, served["item_count"], _pence(served["total"]))
        _check_group(name, group, served["line_count"], "snapshot")
        groups[name] = group
    return groups


def _check_group(name: str, group: ExpectedGroup, line_count: int, where: str) -> None:
    """A group's summary agrees with its lines: the stream lost or doubled no change."""
    lines = group.lines
    items = sum(quantity for _, quantity, _ in lines.values())
    total = sum(price * quantity for (_, price), (_, quantity, _) in lines.items())
    if (line_count, group.item_count, group.total_minor) != (len(lines), items, total):
        raise StreamViolation(
            f"{where}: group {name} says {line_count} lines, {group.item_count} items, "
            f"{group.total_minor}p; its lines make {len(lines)}, {items}, {total}p"
        )


def _line(line: Mapping[str, Any]) -> tuple[tuple[str, int], tuple[str, int, int]]:
    key = (line["sku"], _pence(line["unit_price"]))
    return key, (line["name"], line["quantity"], line["order_count"])


def _offset(event_id: str | None) -> int:
    return -1 if event_id is None else int(event_id.rpartition(":")[2])


def _pence(pounds: str) -> int:
    amount = Decimal(pounds) * 100
    if amount != amount.to_integral_value():
        raise StreamViolation(f"{pounds!r} is not a whole number of pence")
    return int(amount)


def _retry_after(value: str | None) -> float:
    try:
        return min(float(value or 0), MAX_RETRY_AFTER_S)
    except ValueError:
        return MAX_RETRY_AFTER_S
