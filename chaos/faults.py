"""The seeded fault schedule (pure: the same seed gives the same faults, in the same order, of
the same sizes) and how each kind is injected into the stack, and healed."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from confluent_kafka import Producer

from chaos.stack import SERVICES, Stack

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
NETWORK = {"latency", "reset", "partition"}
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
}
RECOVERY_S = {"broker_kill": 9.0, "query_kill": 3.0, "command_kill": 2.0}
WARMUP_S = 4.0
SHORT_RUN_S = 120


@dataclass(frozen=True)
class Fault:
    kind: str
    duration_s: float
    gap_s: float  # the quiet time before it
    target: str = ""  # a network fault's proxy: "command", "query" or "both"
    size: int = 0  # a latency in ms


def schedule(seconds: float, seed: int) -> list[Fault]:
    rng = random.Random(seed)
    first = list(KINDS)
    rng.shuffle(first)
    faults: list[Fault] = []
    planned = WARMUP_S
    while True:
        kind = first[len(faults)] if len(faults) < len(first) else rng.choice(KINDS)
        gap = rng.uniform(1.0, 2.5) if seconds <= SHORT_RUN_S else rng.uniform(4.0, 15.0)
        low, high = DURATION_S[kind]
        fault = Fault(
            kind,
            round(rng.uniform(low, high), 2),
            round(gap, 2),
            target=rng.choice(("command", "query", "both")) if kind in NETWORK else "",
            size=rng.randint(200, 1000) if kind == "latency" else 0,
        )
        cost = fault.gap_s + fault.duration_s + RECOVERY_S.get(kind, 0.5)
        if len(faults) >= len(first) and planned + cost > seconds - 5:
            return faults
        faults.append(fault)
        planned += cost


@dataclass
class Injector:
    """Applies faults to the stack; every one is healed before `inject` returns."""

    stack: Stack
    poison_user: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    # Where each bad record landed: (partition, offset).
    poisoned: list[tuple[int, int]] = field(default_factory=list)

    def inject(self, fault: Fault, pause: Callable[[float], None]) -> None:
        log.info("fault: %s", fault)
        getattr(self, f"_{fault.kind}")(fault, pause)
        self.counts[fault.kind] += 1

    def _broker_kill(self, fault: Fault, pause: Callable[[float], None]) -> None:
        self.stack.broker.kill()
        pause(fault.duration_s)
        self.stack.broker.start()

    def _service_kill(self, name: str, fault: Fault, pause: Callable[[float], None]) -> None:
        self.stack.held_down.add(name)
        try:
            self.stack.kill(name)
            pause(fault.duration_s)
            self.stack.launch(name)
        finally:
            self.stack.held_down.discard(name)

    def _query_kill(self, fault: Fault, pause: Callable[[float], None]) -> None:
        self._service_kill("query", fault, pause)

    def _command_kill(self, fault: Fault, pause: Callable[[float], None]) -> None:
        self._service_kill("command", fault, pause)

    def _proxies(self, fault: Fault) -> list[str]:
        names = SERVICES if fault.target == "both" else (fault.target,)
        return [self.stack.listeners[name].proxy for name in names]

    def _toxic(
        self,
        fault: Fault,
        pause: Callable[[float], None],
        kind: str,
        attributes: dict[str, int],
    ) -> None:
        toxiproxy, proxies = self.stack.toxiproxy, self._proxies(fault)
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

    def _partition(self, fault: Fault, pause: Callable[[float], None]) -> None:
        toxiproxy, proxies = self.stack.toxiproxy, self._proxies(fault)
        try:
            for proxy in proxies:
                toxiproxy.set_enabled(proxy, False)
            pause(fault.duration_s)
        finally:
            for proxy in proxies:
                toxiproxy.set_enabled(proxy, True)

    def _disk_full(self, fault: Fault, pause: Callable[[float], None]) -> None:
        try:
            written = self.stack.disk.fill()
            log.info("the query service's disk is full (%d MB of ballast)", written >> 20)
            pause(fault.duration_s)
        finally:
            self.stack.disk.heal()

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
