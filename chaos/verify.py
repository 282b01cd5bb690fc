"""The end of a run, every fault healed: the log read directly from the broker, folded by the
independent oracle, against what the query service serves; and each acknowledged order found
in it exactly once."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from chaos.client import Browse, Order, request_headers
from chaos.streams import expected_groups
from command_service.orders import order_id_for
from query_service.view.partitioning import partition_for
from shared.events import OrderPlaced, decode
from shared.exceptions import EventDecodeError
from shared.tokens import ConsistencyToken
from tests.oracle import ExpectedView, Groups, expected_views, served_groups

CATCH_UP_S = 180.0
SETTLE_READ_S = 60.0


@dataclass
class Verdict:
    events: int = 0
    bad_records: int = 0
    lost: list[str] = field(default_factory=list)  # acknowledged, not in the view
    lost_in_kafka: list[str] = field(default_factory=list)  # acknowledged, not in the log
    duplicates: list[str] = field(default_factory=list)  # listed more than once
    invented: list[str] = field(default_factory=list)  # in the log, never posted
    mismatched_users: list[str] = field(default_factory=list)  # served view != the fold
    not_dead_lettered: list[tuple[int, int]] = field(default_factory=list)
    # Reads without a token: answers that match no prefix of the user's log from their position
    # on (wrong), or that miss an order acknowledged more than a lease before they were asked.
    reads_judged: int = 0
    wrong_reads: list[str] = field(default_factory=list)
    stale_reads: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.wrong_reads
            or self.stale_reads
            or self.lost
            or self.lost_in_kafka
            or self.duplicates
            or self.invented
            or self.mismatched_users
            or self.not_dead_lettered
        )


def read_log(bootstrap: str, topic: str) -> list[tuple[int, int, bytes | None, dict[str, bytes]]]:
    """Every record of `topic`: (partition, offset, value, headers), read up to the end."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "enable.auto.commit": False}
    )
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=30).topics[topic].partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[tuple[int, int, bytes | None, dict[str, bytes]]] = []
        done = {p: ends[p] == 0 for p in partitions}
        deadline = time.monotonic() + 120
        while not all(done.values()) and time.monotonic() < deadline:
            message: Any
            for message in consumer.consume(num_messages=1000, timeout=1.0):
                if message.error() is not None:
                    continue
                p, offset = message.partition(), message.offset()
                headers = {name: value or b"" for name, value in message.headers() or []}
                records.append((p, offset, message.value(), headers))
                done[p] = done[p] or offset + 1 >= ends[p]
        if not all(done.values()):
            raise RuntimeError(f"could not read {topic} to its end offsets {ends}")
        return records
    finally:
        consumer.close()


def _catch_up(query_url: str, ends: dict[int, int]) -> None:
    """Wait until the view has applied every partition up to its end."""
    deadline = time.monotonic() + CATCH_UP_S
    cluster = httpx.get(f"{query_url}/cluster", headers=request_headers(), timeout=20).json()
    partitions = len(cluster["placement"])
    for partition, end in ends.items():
        token = f"v1:{partition}:{end - 1}"
        # A token is only honoured for a user whose events are in its partition.
        user = next(
            f"catch-up-{i}"
            for i in range(10_000)
            if partition_for(f"catch-up-{i}", partitions) == partition
        )
        while True:
            try:
                answer = httpx.get(
                    f"{query_url}/users/{user}/items",
                    params={"consistency_token": token, "wait_ms": 10_000},
                    headers=request_headers(),
                    timeout=20,
                )
                if answer.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the view did not reach {token} in {CATCH_UP_S:.0f}s")
            time.sleep(0.5)


def _read(url: str, params: dict[str, Any]) -> dict[str, Any]:
    """A read without a token, once the run has healed: a 503 (a copy whose lease has not come
    back yet, a partition still moving) is an answer the service may give, so it is asked
    again, for a bounded time; any other failure fails the run."""
    deadline = time.monotonic() + SETTLE_READ_S
    while True:
        answer = httpx.get(url, params=params, headers=request_headers(), timeout=30)
        if answer.status_code != 503 or time.monotonic() > deadline:
            answer.raise_for_status()
            body: dict[str, Any] = answer.json()
            return body
        time.sleep(0.5)


def _listed_orders(query_url: str, user: str) -> list[str]:
    found: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        body = _read(f"{query_url}/users/{user}/orders", params)
        found += [listed["order_id"] for listed in body["orders"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def verify(
    bootstrap: str,
    topic: str,
    dlq_topic: str,
    query_urls: list[str],
    orders: list[Order],
    poisoned: list[tuple[int, int]],
    browsed: list[Browse] | None = None,
    lease_s: float = 0.0,
) -> tuple[Verdict, dict[str, ExpectedView]]:
    """Every query instance in `query_urls` must serve every user exactly as the log folds;
    the verdict, and each user's view as the log folds it."""
    verdict = Verdict()
    records = read_log(bootstrap, topic)
    events: list[OrderPlaced] = []
    placed: list[tuple[int, int, OrderPlaced]] = []
    ends: dict[int, int] = {}
    for partition, offset, value, _ in sorted(records, key=lambda r: (r[0], r[1])):
        ends[partition] = max(ends.get(partition, 0), offset + 1)
        try:
            event = decode(value)
        except EventDecodeError:
            verdict.bad_records += 1
            continue
        events.append(event)
        placed.append((partition, offset, event))
    verdict.events = len(events)
    judge_reads(verdict, placed, orders, browsed or [], lease_s)
    for query_url in query_urls:
        _catch_up(query_url, ends)

    posted = {str(_order_id(o)): o for o in orders}
    in_log = {str(event.order_id) for event in events}
    verdict.invented = sorted(in_log - posted.keys())
    acknowledged = [o for o in orders if o.acknowledged]
    verdict.lost_in_kafka = sorted(
        o.order_id or "" for o in acknowledged if o.order_id not in in_log
    )

    expected = expected_views(events)
    users = sorted(set(expected) | {o.user_id for o in orders})
    listed_by_user: dict[str, Counter[str]] = {}
    for query_url, user in ((url, user) for url in query_urls for user in users):
        listed = Counter(_listed_orders(query_url, user))
        listed_by_user[user] = listed_by_user.get(user, Counter()) | listed
        verdict.duplicates += sorted(oid for oid, n in listed.items() if n > 1)
        want = expected.get(user)
        want_ids = set(want.order_ids) if want is not None else set()
        if set(listed) != want_ids:
            verdict.mismatched_users.append(f"{user} at {query_url}: orders differ from the log's")

        def get(params: dict[str, Any], user: str = user, url: str = query_url) -> dict[str, Any]:
            return _read(f"{url}/users/{user}/items", params)

        served = served_groups(get)
        if want is not None and served != want.groups:
            verdict.mismatched_users.append(
                f"{user} at {query_url}: items or totals differ from the fold"
            )
    verdict.lost = sorted(
        o.order_id or ""
        for o in acknowledged
        if listed_by_user.get(o.user_id, Counter())[o.order_id or ""] == 0
    )

    letters = read_log(bootstrap, dlq_topic) if poisoned else []
    origins = {
        (int(h["original_partition"]), int(h["original_offset"]))
        for _, _, _, h in letters
        if "original_partition" in h
    }
    verdict.not_dead_lettered = sorted(set(poisoned) - origins)
    return verdict, expected


def judge_reads(
    verdict: Verdict,
    placed: list[tuple[int, int, OrderPlaced]],
    orders: list[Order],
    browsed: list[Browse],
    lease_s: float,
) -> None:
    """Each read without a token against the log: its answer must be the fold of the user's
    events up to some offset at or after the position it says it was read at (a consistent
    view, never one from a copy that lacks what its position claims), and that offset must
    cover every order of the user acknowledged more than `lease_s` before the read was asked
    (the bound a lease gives: a copy answers only while it has reached the log's end as of a
    heartbeat less than `lease_s` old)."""
    by_user: dict[str, list[tuple[int, OrderPlaced]]] = {}
    for _, offset, event in placed:
        by_user.setdefault(event.user_id, []).append((offset, event))
    acknowledged = [o for o in orders if o.acknowledged]
    folds: dict[tuple[str, int], Groups] = {}

    def prefix(user: str, count: int) -> Groups:
        if (user, count) not in folds:
            views = expected_views(event for _, event in by_user.get(user, [])[:count])
            folds[(user, count)] = expected_groups(views, user)
        return folds[(user, count)]

    for read in browsed:
        verdict.reads_judged += 1
        log_of_user = by_user.get(read.user_id, [])
        position = ConsistencyToken.parse(read.position)
        first = sum(1 for offset, _ in log_of_user if offset <= position.offset)
        answer = served_groups(partial(_page, read.groups))
        cut = next(
            (n for n in range(first, len(log_of_user) + 1) if prefix(read.user_id, n) == answer),
            None,
        )
        where = f"{read.user_id} asked {read.asked}, served by {read.served_by} at {read.position}"
        if cut is None:
            verdict.wrong_reads.append(f"{where}: matches no view of the log from its position")
            continue
        included = {str(event.order_id) for _, event in log_of_user[:cut]}
        missed = [
            o.order_id
            for o in acknowledged
            if o.user_id == read.user_id
            and o.acknowledged_at < read.asked_at - lease_s
            and o.order_id not in included
        ]
        if missed:
            age = read.asked_at - min(
                o.acknowledged_at for o in acknowledged if o.order_id in missed
            )
            verdict.stale_reads.append(
                f"{where}: misses {len(missed)} orders acknowledged up to {age:.1f}s before"
            )


def _page(groups: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    """A read's first page as the only page (a chaos user has at most 7 lines: no cursors)."""
    return {"groups": groups}


def _order_id(order: Order) -> uuid.UUID:
    """The id the command service derives from (user_id, Idempotency-Key), as it documents."""
    return order_id_for(order.user_id, order.key)
