"""The seeded fault schedule (pure: the same seed gives the same faults, in the same order, of
the same sizes) and how each kind is injected into the stack, and healed."""

from __future__ import annotations

import logging
import random
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from confluent_kafka import Producer

from chaos.stack import Stack

log = logging.getLogger(__name__)

# Each kind at least once, in a seeded order, then seeded picks until the time is used.
# No unknown-schema_version record: such a record is about to pause its partition rather than be
# dead-lettered (a deliberate stop for an operator), which a run that must end healed cannot use.
KINDS = (
    "broker_kill",
    "query_kill",
    "command_kill",
    "latency",
    "reset",
    "partition",
    "disk_full",
    "poison_garbage",
    "poison_schema",
)
# With several query instances: what scale-out added (membership, placement, forwarding, moves).
CLUSTER_KINDS = (
    "peer_partition",  # the others cannot reach one instance (forwards, hand-overs)
    "kafka_partition",  # one instance cut off from Kafka only
    "isolate",  # one instance cut off from both
    "peer_latency",  # slow forwards to one instance
    "rolling_restart",  # every instance in turn, SIGTERM and back, under load
    "pause",  # SIGSTOP past the membership timeout, then SIGCONT
)
# Needs two replicas (and a third instance to keep serving).
TWO_DOWN_KINDS = ("query_kill_two",)
NETWORK = {"latency", "reset", "partition"}
ONE_INSTANCE = {
    "query_kill",
    "disk_full",
    "peer_partition",
    "kafka_partition",
    "isolate",
    "peer_latency",
    "pause",
}
# (low, high) seconds the fault lasts, and about how long its recovery takes beyond that.
DURATION_S = {
    "broker_kill": (1.0, 3.0),
    "query_kill": (0.5, 2.0),
    "command_kill": (0.5, 2.0),
    "latency": (3.0, 6.0),
    "reset": (2.0, 4.0),
    "partition": (2.0, 4.0),
    "disk_full": (3.0, 6.0),
    "poison_garbage": (0.0, 0.0),
    "poison_schema": (0.0, 0.0),
    "query_kill_two": (0.5, 2.0),
    "peer_partition": (2.0, 6.0),
    "kafka_partition": (3.0, 8.0),
    "isolate": (3.0, 8.0),
    "peer_latency": (3.0, 6.0),
    "rolling_restart": (0.0, 0.0),
    # Past the membership timeout the stack runs with (MEMBER_TIMEOUT_S), by 1-3 s.
    "pause": (6.0, 8.0),
}
RECOVERY_S = {
    "broker_kill": 9.0,
    "query_kill": 3.0,
    "command_kill": 2.0,
    "query_kill_two": 4.0,
    "rolling_restart": 15.0,
    "pause": 3.0,
    "isolate": 2.0,
    "kafka_partition": 2.0,
}
WARMUP_S = 4.0
SHORT_RUN_S = 120


def kinds_for(instances: int, replicas: int) -> tuple[str, ...]:
    """The fault kinds a stack of `instances` query instances with `replicas` copies can take."""
    if instances == 1:
        return KINDS
    two_down = TWO_DOWN_KINDS if replicas >= 2 and instances >= 3 else ()
    return (*KINDS, *CLUSTER_KINDS, *two_down)


@dataclass(frozen=True)
class Fault:
    kind: str
    duration_s: float
    gap_s: float  # the quiet time before it
    # A network fault's proxy ("command", a query instance, or "all"); the query instance(s) a
    # fault aims at ("q2", or "q1+q3" for two at once).
    target: str = ""
    size: int = 0  # a latency in ms


def schedule(
    seconds: float, seed: int, kinds: tuple[str, ...] = KINDS, queries: tuple[str, ...] = ("q1",)
) -> list[Fault]:
    rng = random.Random(seed)
    first = list(kinds)
    rng.shuffle(first)
    faults: list[Fault] = []
    planned = WARMUP_S
    while True:
        kind = first[len(faults)] if len(faults) < len(first) else rng.choice(kinds)
        short = seconds <= SHORT_RUN_S
        gap = rng.uniform(0.3, 1.0) if short else rng.uniform(4.0, 15.0)
        low, high = DURATION_S[kind]
        # A short run (make test) keeps to the short end of each kind's range.
        high = low + (high - low) / 4 if short else high
        fault = Fault(
            kind,
            round(rng.uniform(low, high), 2),
            round(gap, 2),
            target=_target(kind, rng, queries),
            size=rng.randint(200, 1500) if kind in ("latency", "peer_latency") else 0,
        )
        cost = fault.gap_s + fault.duration_s + RECOVERY_S.get(kind, 0.5)
        if len(faults) >= len(first) and planned + cost > seconds - 5:
            return faults
        faults.append(fault)
        planned += cost


def _target(kind: str, rng: random.Random, queries: tuple[str, ...]) -> str:
    if kind in NETWORK:
        return rng.choice(("command", *queries, "all"))
    if kind in ONE_INSTANCE:
        return rng.choice(queries)
    if kind == "query_kill_two":
        return "+".join(sorted(rng.sample(queries, 2)))
    return ""


@dataclass
class Injector:
    """Applies faults to the stack; every one is healed before `inject` returns."""

    stack: Stack
    poison_user: str
    kinds: tuple[str, ...] = KINDS
    counts: dict[str, int] = field(default_factory=dict)
    # Where each bad record landed: (partition, offset).
    poisoned: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.counts = dict.fromkeys(self.kinds, 0)

    def inject(self, fault: Fault, pause: Callable[[float], None]) -> None:
        log.info("fault: %s", fault)
        getattr(self, f"_{fault.kind}")(fault, pause)
        self.counts[fault.kind] += 1

    def _broker_kill(self, fault: Fault, pause: Callable[[float], None]) -> None:
        self.stack.broker.kill()
        pause(fault.duration_s)
        self.stack.broker.start()

    def _service_kill(self, names: list[str], fault: Fault, pause: Callable[[float], None]) -> None:
        for name in names:
            self.stack.hold_down(name)
        try:
            for name in names:
                self.stack.kill(name)
            pause(fault.duration_s)
            for name in names:
                self.stack.launch(name)
        finally:
            for name in names:
                self.stack.release(name)

    def _query_kill(self, fault: Fault, pause: Callable[[float], None]) -> None:
        self._service_kill([fault.target], fault, pause)

    def _query_kill_two(self, fault: Fault, pause: Callable[[float], None]) -> None:
        self._service_kill(fault.target.split("+"), fault, pause)

    def _command_kill(self, fault: Fault, pause: Callable[[float], None]) -> None:
        self._service_kill(["command"], fault, pause)

    def _proxies(self, fault: Fault) -> list[str]:
        names = self.stack.names if fault.target == "all" else (fault.target,)
        return [self.stack.listeners[name].proxy for name in names]

    def _toxic(
        self,
        fault: Fault,
        pause: Callable[[float], None],
        kind: str,
        attributes: dict[str, int],
        proxies: list[str] | None = None,
    ) -> None:
        toxiproxy = self.stack.toxiproxy
        proxies = self._proxies(fault) if proxies is None else proxies
        added: list[str] = []
        try:
            for proxy in proxies:
                toxiproxy.add_toxic(proxy, fault.kind, kind, "downstream", attributes)
                added.append(proxy)
            pause(fault.duration_s)
        finally:
            for proxy in added:
                toxiproxy.remove_toxic(proxy, fault.kind)

    def _latency(self, fault: Fault, pause: Callable[[float], None]) -> None:
        self._toxic(fault, pause, "latency", {"latency": fault.size, "jitter": fault.size // 4})

    def _reset(self, fault: Fault, pause: Callable[[float], None]) -> None:
        self._toxic(fault, pause, "reset_peer", {"timeout": 100})

    def _partition(
        self, fault: Fault, pause: Callable[[float], None], proxies: list[str] | None = None
    ) -> None:
        toxiproxy = self.stack.toxiproxy
        proxies = self._proxies(fault) if proxies is None else proxies
        try:
            for proxy in proxies:
                toxiproxy.set_enabled(proxy, False)
            pause(fault.duration_s)
        finally:
            for proxy in proxies:
                toxiproxy.set_enabled(proxy, True)

    def _disk_full(self, fault: Fault, pause: Callable[[float], None]) -> None:
        disk = self.stack.disks[fault.target]
        try:
            written = disk.fill()
            log.info("%s's disk is full (%d MB of ballast)", fault.target, written >> 20)
            pause(fault.duration_s)
        finally:
            disk.heal()

    def _peer_partition(self, fault: Fault, pause: Callable[[float], None]) -> None:
        self._partition(fault, pause, [self.stack.peers[fault.target].proxy])

    def _kafka_partition(self, fault: Fault, pause: Callable[[float], None]) -> None:
        self._partition(fault, pause, [self.stack.listeners[fault.target].proxy])

    def _isolate(self, fault: Fault, pause: Callable[[float], None]) -> None:
        proxies = [self.stack.peers[fault.target].proxy, self.stack.listeners[fault.target].proxy]
        self._partition(fault, pause, proxies)

    def _peer_latency(self, fault: Fault, pause: Callable[[float], None]) -> None:
        attributes = {"latency": fault.size, "jitter": fault.size // 4}
        proxy = self.stack.peers[fault.target].proxy
        self._toxic(fault, pause, "latency", attributes, [proxy])

    def _rolling_restart(self, fault: Fault, pause: Callable[[float], None]) -> None:
        """Each query instance in turn: SIGTERM (a clean leave), started again, and ready
        before the next one goes, as an orchestrator's rolling update does."""
        for name in self.stack.queries:
            service = self.stack.services[name]
            self.stack.hold_down(name)
            try:
                service.stop(30)
                self.stack.launch(name)
            finally:
                self.stack.release(name)
            service.wait_http("/health/ready", timeout=120)

    def _pause(self, fault: Fault, pause: Callable[[float], None]) -> None:
        """SIGSTOP past the membership timeout: the others take its partitions over; then
        SIGCONT, and it must not answer from what moved away while it slept."""
        service = self.stack.services[fault.target]
        self.stack.hold_down(fault.target)
        try:
            if service.popen is not None and service.popen.poll() is None:
                service.popen.send_signal(signal.SIGSTOP)
            pause(fault.duration_s)
        finally:
            if service.popen is not None and service.popen.poll() is None:
                service.popen.send_signal(signal.SIGCONT)
            self.stack.release(fault.target)

    def _poison(self, value: bytes) -> None:
        producer = Producer({"bootstrap.servers": self.stack.broker.bootstrap_servers})
        landed: list[tuple[int, int]] = []

        def delivered(err: object, msg: object) -> None:
            if err is None:
                landed.append((msg.partition(), msg.offset()))  # type: ignore[attr-defined]

        deadline = time.monotonic() + 60
        while not landed and time.monotonic() < deadline:
            producer.produce(self.stack.topic, value, key=self.poison_user, on_delivery=delivered)
            producer.flush(20)
        if not landed:
            raise RuntimeError("could not produce a bad record within 60 s")
        self.poisoned += landed

    def _poison_garbage(self, fault: Fault, pause: Callable[[float], None]) -> None:
        self._poison(b"\x00\xff chaos garbage " + uuid.uuid4().bytes)

    def _poison_schema(self, fault: Fault, pause: Callable[[float], None]) -> None:
        self._poison(
            orjson.dumps({"schema_version": 1, "user_id": self.poison_user, "surprise": True})
        )
