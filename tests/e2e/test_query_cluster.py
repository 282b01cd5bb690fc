"""Several query instances as one service (real broker, real processes): every instance answers
every user exactly as the independent fold says, an instance can be killed, restarted, added or
removed under load, no read is ever answered 200 by a copy that has not applied its token, and
a forwarded read keeps its ETag (a 304 too).
"""

from __future__ import annotations

import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from devtools.environment import service_env, unique_topic
from devtools.issuer import TestIssuer
from devtools.processes import ServiceProcess
from query_service.view.partitioning import partition_for
from shared.events import OrderPlaced
from shared.lifecycle import EXIT_FAILED
from tests.e2e.query_support import OrderProducer
from tests.factories import order, random_order
from tests.oracle import ExpectedView, expected_views, served_groups
from tests.support import wait_for

pytestmark = pytest.mark.kafka

USERS = 120
PARTITIONS = 6
# Fast failure detection, so that the tests see moves within seconds.
HEARTBEAT_MS = 200
MEMBER_TIMEOUT_MS = 1500
# How long a clean stop with streams open may take here (the grace, and a loaded machine's margin).
SHUTDOWN_BOUND_S = 15.0
# Events a paused instance's copy is behind when it wakes.
BACKLOG = 30_000


@dataclass
class Cluster:
    bootstrap: str
    workdir: Path
    replicas: int
    issuer: TestIssuer
    topic: str = field(default_factory=unique_topic)
    instances: dict[str, ServiceProcess] = field(default_factory=dict)

    def env(self, name: str) -> dict[str, str]:
        return {
            **service_env(self.bootstrap, self.workdir / name, self.topic),
            "QUERY_CONSUMER_GROUP": f"{self.topic}-query",
            "QUERY_INSTANCE_ID": name,
            "QUERY_REPLICAS": str(self.replicas),
            "QUERY_HEARTBEAT_MS": str(HEARTBEAT_MS),
            "QUERY_MEMBER_TIMEOUT_MS": str(MEMBER_TIMEOUT_MS),
            "QUERY_DROP_GRACE_S": "1",
        }

    def launch(self, name: str) -> ServiceProcess:
        process = self.instances.get(name)
        if process is None:
            process = ServiceProcess("query_service", self.env(name), self.workdir / f"{name}.log")
            self.instances[name] = process
        return process.launch()

    def running(self) -> list[ServiceProcess]:
        return [p for p in self.instances.values() if p.popen and p.popen.poll() is None]

    def wait_ready(self, timeout: float = 30) -> float:
        started = time.monotonic()
        for process in self.running():
            process.wait_http("/health/ready", timeout)
        return time.monotonic() - started

    def wait_placed(self, timeout: float = 30) -> None:
        """Until every running instance agrees on the members and each is ready."""

        def settled() -> bool:
            names = {p.env["QUERY_INSTANCE_ID"] for p in self.running()}
            for process in self.running():
                try:
                    cluster = httpx.get(
                        f"{process.url}/cluster", headers=self.operator(), timeout=2
                    ).json()
                    ready = httpx.get(f"{process.url}/health/ready", timeout=2).status_code
                except httpx.HTTPError:
                    return False
                if {m["instance_id"] for m in cluster["members"]} != names or ready != 200:
                    return False
            return True

        wait_for(settled, timeout, "the cluster to settle")

    def operator(self) -> dict[str, str]:
        return self.issuer.headers("ops", ["orders:read-any"])

    def stop(self) -> None:
        for process in self.instances.values():
            process.stop()


@pytest.fixture
def cluster_of(kafka_bootstrap: str, tmp_path: Path, issuer: TestIssuer) -> Iterator[type[Cluster]]:
    made: list[Cluster] = []

    def make(replicas: int) -> Cluster:
        cluster = Cluster(kafka_bootstrap, tmp_path, replicas, issuer)
        made.append(cluster)
        return cluster

    yield make  # type: ignore[misc]
    for cluster in made:
        cluster.stop()


def seed(producer: OrderProducer, users: int, rng: random.Random) -> list[OrderPlaced]:
    events = [random_order(rng, f"user-{i % users}") for i in range(users * 3)]
    for event in events:
        producer.send(event)
    producer.flush()
    return events


def assert_exact(
    process: ServiceProcess, events: list[OrderPlaced], users: int, issuer: TestIssuer
) -> Counter[str]:
    """Every user's view through `process` equals the fold; returns who served the answers."""
    expected = expected_views(events)
    served_by: Counter[str] = Counter()
    with httpx.Client(base_url=process.url, timeout=10, auth=issuer.auth()) as client:
        for i in range(users):
            user = f"user-{i}"

            def get(params: dict[str, object], u: str = user) -> dict[str, object]:
                response = client.get(f"/users/{u}/items", params={"wait_ms": 5000, **params})
                assert response.status_code == 200, response.text
                served_by[response.headers["X-Served-By"]] += 1
                body: dict[str, object] = response.json()
                return body

            wanted = expected.get(user, ExpectedView()).groups
            assert served_groups(get) == wanted, f"{user} through {process.url}"
    return served_by


def test_three_instances_serve_every_user_exactly_and_share_the_work(
    cluster_of: type[Cluster], kafka_bootstrap: str
) -> None:
    cluster = cluster_of(2)  # type: ignore[call-arg]
    for name in ("q1", "q2", "q3"):
        cluster.launch(name)
    # Started together on an empty topic: all serve within 10 s.
    assert cluster.wait_ready(timeout=10) <= 10
    producer = OrderProducer(kafka_bootstrap, cluster.topic)
    events = seed(producer, USERS, random.Random(9))
    cluster.wait_placed()
    everyone: Counter[str] = Counter()
    for process in cluster.running():
        everyone += assert_exact(process, events, USERS, cluster.issuer)
    assert set(everyone) == {"q1", "q2", "q3"}
    placement = httpx.get(
        f"{cluster.instances['q1'].url}/cluster", headers=cluster.operator(), timeout=5
    ).json()["placement"]
    assert all(len(holders) == 2 for holders in placement.values())


def test_a_forwarded_read_is_never_forwarded_again(
    cluster_of: type[Cluster], kafka_bootstrap: str
) -> None:
    cluster = cluster_of(1)  # type: ignore[call-arg]
    for name in ("q1", "q2"):
        cluster.launch(name)
    cluster.wait_placed()
    q1 = cluster.instances["q1"]
    held = httpx.get(f"{q1.url}/health/ready", timeout=5).json()["partitions"]
    user = next(f"u{i}" for i in range(1000) if str(partition_for(f"u{i}", PARTITIONS)) not in held)
    # As if q2 had forwarded it here, believing q1 holds the partition: q1 must not send it on.
    looped = httpx.get(
        f"{q1.url}/users/{user}/items",
        params={"wait_ms": 30_000},
        headers={"X-Query-Forwarded-By": "q2", **cluster.issuer.headers(user)},
        timeout=5,
    )
    assert looped.status_code == 503
    assert looped.headers["Retry-After"] == "1"
    # Said at once, so that the sender asks another copy instead of waiting on this one.
    assert looped.headers["X-Query-Not-Held"] == "1"
    answer = httpx.get(
        f"{q1.url}/users/{user}/items", headers=cluster.issuer.headers(user), timeout=5
    )
    assert answer.headers["X-Served-By"] == "q2"


@dataclass
class Outcomes:
    ok: int = 0
    unavailable: int = 0
    wrong: list[str] = field(default_factory=list)

    @property
    def reads(self) -> int:
        return self.ok + self.unavailable + len(self.wrong)


def place_and_read(
    issuer: TestIssuer,
    command: ServiceProcess,
    readers: list[ServiceProcess],
    seconds: float,
    rng: random.Random,
    during: list[tuple[float, object]],
) -> Outcomes:
    """POST orders at ~25/s and read each back with its token through a random reader, running
    each (at, action) of `during` at its time."""
    outcomes = Outcomes()
    pending = sorted(during, key=lambda step: step[0])
    started = time.monotonic()
    with httpx.Client(timeout=15, auth=issuer.auth()) as client:
        while time.monotonic() - started < seconds:
            while pending and time.monotonic() - started >= pending[0][0]:
                pending.pop(0)[1]()  # type: ignore[operator]
            user = f"user-{rng.randrange(USERS)}"
            body = {
                "user_id": user,
                "items": [{"sku": "LIVE", "name": "Live", "unit_price": "1.00", "quantity": 1}],
            }
            posted = client.post(
                f"{command.url}/orders", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
            )
            assert posted.status_code == 201, posted.text
            token, order_id = posted.json()["consistency_token"], posted.json()["order_id"]
            live = [r for r in readers if r.popen and r.popen.poll() is None]
            reader = rng.choice(live)
            try:
                answer = client.get(
                    f"{reader.url}/users/{user}/orders/{order_id}",
                    params={"consistency_token": token, "wait_ms": 4000},
                )
            except httpx.TransportError:
                continue  # the reader was killed under this request: not an answer
            if answer.status_code == 200 and answer.json()["order_id"] == order_id:
                outcomes.ok += 1
            elif answer.status_code == 503 and answer.headers.get("Retry-After"):
                outcomes.unavailable += 1
            else:
                outcomes.wrong.append(f"{answer.status_code} {answer.text[:200]}")
            time.sleep(0.04)
    return outcomes


@pytest.fixture
def command(kafka_bootstrap: str, tmp_path: Path) -> Iterator[ServiceProcess]:
    # Started per test on the cluster's topic by `command_for`.
    started: list[ServiceProcess] = []
    yield started  # type: ignore[misc]
    for process in started:
        process.stop()


def command_for(cluster: Cluster, started: list[ServiceProcess]) -> ServiceProcess:
    env = service_env(cluster.bootstrap, None, cluster.topic)
    process = ServiceProcess("command_service", env, cluster.workdir / "command.log")
    started.append(process)
    return process.start("/health/ready")


@pytest.mark.parametrize("replicas", [2, 1])
def test_kill_9_under_load_gives_no_wrong_answer(
    cluster_of: type[Cluster], command: list[ServiceProcess], replicas: int
) -> None:
    cluster = cluster_of(replicas)  # type: ignore[call-arg]
    for name in ("q1", "q2", "q3"):
        cluster.launch(name)
    cluster.wait_placed()
    poster = command_for(cluster, command)
    victim = cluster.instances["q3"]
    readers = [cluster.instances["q1"], cluster.instances["q2"]]
    outcomes = place_and_read(
        cluster.issuer,
        poster,
        readers,
        seconds=10,
        rng=random.Random(replicas),
        during=[(3.0, victim.kill)],
    )
    assert not outcomes.wrong, outcomes.wrong[:5]
    assert outcomes.reads >= 100
    if replicas == 2:
        assert outcomes.ok >= 0.99 * outcomes.reads, outcomes
    # Once moved, every view is whole again: the survivors agree with each other.
    cluster.wait_placed()
    for process in cluster.running():
        held = httpx.get(f"{process.url}/health/ready", timeout=5).json()
        assert held["status"] == "ready"


def test_rolling_restart_and_scaling_keep_views_exact(
    cluster_of: type[Cluster], command: list[ServiceProcess], kafka_bootstrap: str
) -> None:
    cluster = cluster_of(1)  # type: ignore[call-arg]
    cluster.launch("q1")
    cluster.wait_placed()
    producer = OrderProducer(kafka_bootstrap, cluster.topic)
    events = seed(producer, USERS, random.Random(3))
    assert_exact(cluster.instances["q1"], events, USERS, cluster.issuer)
    # 1 -> 3
    cluster.launch("q2")
    cluster.launch("q3")
    cluster.wait_placed()
    extra = [order(f"user-{i}", ("SCALE", 600, 1)) for i in range(USERS)]
    for event in extra:
        producer.send(event)
    producer.flush()
    events += extra
    for process in cluster.running():
        wait_for(
            lambda p=process: _applied(p, events, cluster.issuer), 30, "the new events applied"
        )
        assert_exact(process, events, USERS, cluster.issuer)
    # A rolling restart under load: no wrong answer, and the views are whole afterwards.
    poster = command_for(cluster, command)
    steps: list[tuple[float, object]] = []
    for i, name in enumerate(("q1", "q2", "q3")):
        process = cluster.instances[name]
        steps.append((1.0 + 4 * i, process.stop))
        steps.append((2.5 + 4 * i, process.launch))
    outcomes = place_and_read(
        cluster.issuer, poster, list(cluster.instances.values()), 14, random.Random(4), steps
    )
    assert not outcomes.wrong, outcomes.wrong[:5]
    cluster.wait_placed()
    # 3 -> 1
    cluster.instances["q2"].stop()
    cluster.instances["q3"].stop()
    cluster.wait_placed()
    assert_totals_match_a_survivor(cluster.instances["q1"], events, cluster.issuer)


def _applied(process: ServiceProcess, events: list[OrderPlaced], issuer: TestIssuer) -> bool:
    user = events[-1].user_id
    body = httpx.get(f"{process.url}/users/{user}/items", headers=issuer.headers(user), timeout=5)
    return body.status_code == 200 and "SCALE" in body.text


def assert_totals_match_a_survivor(
    process: ServiceProcess, seeded: list[OrderPlaced], issuer: TestIssuer
) -> None:
    """After live orders of unknown content, the seeded users' item counts can only have grown
    by whole LIVE items; the seeded part of each view is exact."""
    expected = expected_views(seeded)
    with httpx.Client(base_url=process.url, timeout=10, auth=issuer.auth()) as client:
        for i in range(USERS):
            user = f"user-{i}"
            body = client.get(f"/users/{user}/items", params={"limit": 500}).json()
            cheap = {ln["sku"]: ln for ln in body["groups"]["cheap"]["lines"]}
            live = cheap.get("LIVE", {"quantity": 0})["quantity"]
            wanted = expected.get(user, ExpectedView()).groups
            assert body["groups"]["cheap"]["item_count"] == wanted["cheap"].item_count + live
            assert body["groups"]["affordable"]["item_count"] == wanted["affordable"].item_count
            assert body["groups"]["expensive"]["item_count"] == wanted["expensive"].item_count


def test_two_processes_with_one_instance_id_are_reported_by_name(
    cluster_of: type[Cluster],
) -> None:
    cluster = cluster_of(1)  # type: ignore[call-arg]
    first = cluster.launch("same")
    first.wait_http("/health/ready", 30)
    # A state dir of its own: the clash is the id, not the disk.
    env = {**cluster.env("same"), "QUERY_STATE_DIR": str(cluster.workdir / "same-2")}
    second = ServiceProcess("query_service", env, cluster.workdir / "same-2.log")
    cluster.instances["same-2"] = second
    second.launch()

    def one_exited() -> bool:
        return any(p.popen is not None and p.popen.poll() is not None for p in (first, second))

    wait_for(one_exited, 30, "one of the two to stop")
    gone = first if first.popen and first.popen.poll() is not None else second
    assert gone.popen is not None
    # A failure for good: the status a supervisor restarts on (not the SIGTERM it ends itself by).
    assert gone.popen.returncode == EXIT_FAILED
    assert "'same'" in gone.log_tail(50)
    assert "QUERY_INSTANCE_ID" in gone.log_tail(50)


def test_etags_pass_through_a_forward_and_change_exactly_when_the_page_does(
    cluster_of: type[Cluster], kafka_bootstrap: str
) -> None:
    cluster = cluster_of(1)  # type: ignore[call-arg]
    for name in ("q1", "q2"):
        cluster.launch(name)
    cluster.wait_placed(timeout=60)
    q1 = cluster.instances["q1"]
    held = httpx.get(f"{q1.url}/health/ready", timeout=5).json()["partitions"]
    # A buyer and a neighbour in one partition q1 does not hold: every read through q1 is
    # forwarded to q2, and the new order's token is good for both.
    elsewhere = [
        f"u{i}" for i in range(1000) if str(partition_for(f"u{i}", PARTITIONS)) not in held
    ]
    buyer = elsewhere[0]
    neighbour = next(
        u for u in elsewhere[1:] if partition_for(u, PARTITIONS) == partition_for(buyer, PARTITIONS)
    )
    producer = OrderProducer(kafka_bootstrap, cluster.topic)
    first = order(buyer, ("TEA", 250, 2), ("LAMP", 9900, 1))
    producer.send(first)
    producer.send(order(neighbour, ("MUG", 800, 1)))
    token = producer.flush()
    pages = {
        "items": (f"/users/{buyer}/items", {}),
        "cheap": (f"/users/{buyer}/items", {"group": "cheap"}),
        "affordable": (f"/users/{buyer}/items", {"group": "affordable"}),
        "expensive": (f"/users/{buyer}/items", {"group": "expensive"}),
        "orders": (f"/users/{buyer}/orders", {}),
        "order": (f"/users/{buyer}/orders/{first.order_id}", {}),
        "neighbour": (f"/users/{neighbour}/items", {}),
    }

    with httpx.Client(base_url=q1.url, timeout=30, auth=cluster.issuer.auth()) as client:

        def read(page: str, at: str, tag: str | None = None) -> httpx.Response:
            path, params = pages[page]
            answer = client.get(
                path,
                params={**params, "consistency_token": at, "wait_ms": 20_000},
                headers={} if tag is None else {"If-None-Match": tag},
            )
            assert answer.status_code in (200, 304), (page, answer.status_code, answer.text)
            assert answer.headers["X-Served-By"] == "q2", page
            assert answer.headers["Cache-Control"] == "private, no-cache", page
            return answer

        before = {page: read(page, token) for page in pages}
        for page, answer in before.items():
            assert answer.status_code == 200, page
            again = read(page, token, answer.headers["ETag"])
            assert again.status_code == 304, page
            assert again.headers["ETag"] == answer.headers["ETag"], page
            assert again.content == b"", page

        # A cheap order: the buyer's cheap group changes; the other groups show only the
        # buyer's new version (their consistency token); the neighbour's page nothing.
        later = producer.place(order(buyer, ("TEA", 250, 1), ("CUP", 300, 1)))
        after = {page: read(page, later) for page in pages}
        for page in pages:
            old, new = before[page], after[page]
            assert new.status_code == 200, page
            same_tag = new.headers["ETag"] == old.headers["ETag"]
            assert same_tag == (new.content == old.content), page
            stale = read(page, later, old.headers["ETag"])
            assert stale.status_code == (304 if same_tag else 200), page
            assert stale.headers["ETag"] == new.headers["ETag"], page
        changed = {p for p in pages if after[p].headers["ETag"] != before[p].headers["ETag"]}
        assert changed == set(pages) - {"neighbour"}
        for page in ("affordable", "expensive"):
            old_body, new_body = before[page].json(), after[page].json()
            assert old_body.pop("consistency_token") != new_body.pop("consistency_token")
            assert old_body == new_body, page
        cheap = after["cheap"].json()["groups"]["cheap"]
        assert {line["sku"] for line in cheap["lines"]} == {"TEA", "CUP"}
        assert after["order"].json()["consistency_token"] == later


def test_an_instance_paused_past_the_timeout_never_answers_from_what_moved_away(
    cluster_of: type[Cluster], kafka_bootstrap: str
) -> None:
    """SIGSTOP beyond QUERY_MEMBER_TIMEOUT_MS, then SIGCONT with reads already queued at it: the
    others have taken its partitions over and moved on, and its copy has not. Its lease lapsed
    while it slept, so until it has heard its own heartbeat back (and so the others') it answers
    a read without a token from a current copy or not at all, never from its own."""
    cluster = cluster_of(1)  # type: ignore[call-arg]
    sleeper, other = cluster.launch("q1"), cluster.launch("q2")
    cluster.wait_placed()
    placement = httpx.get(f"{other.url}/cluster", headers=cluster.operator(), timeout=5).json()
    mine = {int(p) for p, holders in placement["placement"].items() if holders == ["q1"]}
    user = next(f"paused-{i}" for i in range(10_000) if partition_for(f"paused-{i}", 6) in mine)
    producer = OrderProducer(kafka_bootstrap, cluster.topic)
    producer.send(order(user, ("PEN", 99, 1)))
    producer.flush()
    read = f"/users/{user}/items"

    def items(process: ServiceProcess) -> httpx.Response:
        return httpx.get(process.url + read, headers=cluster.operator(), timeout=30)

    wait_for(
        lambda: items(sleeper).json()["groups"]["cheap"]["item_count"] == 1, 20, "the first order"
    )
    assert sleeper.popen is not None
    sleeper.popen.send_signal(signal.SIGSTOP)
    try:
        # The other takes the partition over, and an order lands that only it has applied.
        wait_for(
            lambda: items(other).status_code == 200 and items(other).headers["X-Served-By"] == "q2",
            30,
            "q2 to serve the sleeper's partition",
        )
        # A backlog in that partition first, so that the sleeper's copy cannot catch up with
        # the user's order in the moment it wakes.
        fillers = [f"filler-{i}" for i in range(20_000) if partition_for(f"filler-{i}", 6) in mine]
        for n in range(BACKLOG):
            producer.send(order(fillers[n % len(fillers)], ("PEN", 99, 1)))
        producer.send(order(user, ("MUG", 500, 2)))
        producer.flush()
        wait_for(
            lambda: items(other).json()["groups"]["affordable"]["item_count"] == 2, 60, "the order"
        )
        with ThreadPoolExecutor(8) as pool:
            queued = [pool.submit(items, sleeper) for _ in range(8)]
            time.sleep(0.5)  # in the sleeper's accept queue, answered the moment it wakes
            sleeper.popen.send_signal(signal.SIGCONT)
            answers = [future.result() for future in queued]
    finally:
        sleeper.popen.send_signal(signal.SIGCONT)
    assert answers
    for answer in answers:
        assert answer.status_code in (200, 503), answer.text
        if answer.status_code == 200:
            # Forwarded to the current copy, or read here once this one caught up: never stale.
            served = answer.json()["groups"]["affordable"]["item_count"]
            assert served == 2, (answer.headers["X-Served-By"], served)


def test_a_clean_stop_is_not_held_up_by_the_streams_it_serves_or_relays(
    cluster_of: type[Cluster],
) -> None:
    """SIGTERM with an item stream open on the instance, one it serves and one it relays from
    the other: it still leaves within the shutdown grace, and the streams end (their clients
    reconnect elsewhere), instead of waiting for them until it is killed."""
    cluster = cluster_of(1)  # type: ignore[call-arg]
    leaving, other = cluster.launch("q1"), cluster.launch("q2")
    cluster.wait_placed()
    placement = httpx.get(f"{other.url}/cluster", headers=cluster.operator(), timeout=5).json()
    held = {
        name: {int(p) for p, h in placement["placement"].items() if h == [name]}
        for name in ("q1", "q2")
    }
    served = next(f"s-{i}" for i in range(10_000) if partition_for(f"s-{i}", 6) in held["q1"])
    relayed = next(f"r-{i}" for i in range(10_000) if partition_for(f"r-{i}", 6) in held["q2"])
    ended: dict[str, float] = {}

    def watch(user: str) -> None:
        url = f"{leaving.url}/users/{user}/items/stream"
        with httpx.stream("GET", url, headers=cluster.operator(), timeout=60) as answer:
            assert answer.status_code == 200
            for _ in answer.iter_lines():
                pass
        ended[user] = time.monotonic()

    assert leaving.popen is not None
    with ThreadPoolExecutor(2) as pool:
        streams = [pool.submit(watch, user) for user in (served, relayed)]
        time.sleep(2)  # both open (a snapshot each)
        asked = time.monotonic()
        leaving.popen.terminate()
        try:
            code = leaving.popen.wait(SHUTDOWN_BOUND_S * 2)
        finally:
            leaving.kill()  # if it hung: the streams end, and the failure is reported
        took = time.monotonic() - asked
        for stream in streams:
            stream.result(10)
    # uvicorn ends a clean stop by raising the SIGTERM again once it has shut down.
    assert code in (0, -signal.SIGTERM), code
    assert took < SHUTDOWN_BOUND_S, took
    assert set(ended) == {served, relayed}
