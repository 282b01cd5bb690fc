"""Hand-off between real processes over a real broker: an instance added beside a caught-up one
takes its partitions as checkpoints (its metrics and log say so, nothing is replayed) and
answers every user exactly as the fold says, then goes on applying; with the wrong cluster
secret it is refused, falls back to the log, and its views are exact all the same.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from devtools.issuer import TestIssuer
from devtools.processes import ServiceProcess
from shared.events import OrderPlaced
from tests.e2e.query_support import OrderProducer
from tests.e2e.test_query_cluster import USERS, Cluster, assert_exact, seed
from tests.support import wait_for

pytestmark = pytest.mark.kafka

SECRET = "a-cluster-secret-of-at-least-32-characters"


@dataclass
class HandoffCluster(Cluster):
    secrets: dict[str, str] = field(default_factory=dict)
    # QUERY_HANDOFF_RATE_BYTES of an instance (read when it is first launched).
    throttled: dict[str, str] = field(default_factory=dict)

    def env(self, name: str) -> dict[str, str]:
        return {
            **super().env(name),
            "QUERY_CLUSTER_SECRET": self.secrets.get(name, SECRET),
            "QUERY_HANDOFF_RATE_BYTES": self.throttled.get(name, "0"),
            # Long enough that the joining instance finds the copies let go still on disk.
            "QUERY_DROP_GRACE_S": "60",
        }


@pytest.fixture
def cluster(kafka_bootstrap: str, tmp_path: Path, issuer: TestIssuer) -> Iterator[HandoffCluster]:
    made = HandoffCluster(kafka_bootstrap, tmp_path, 1, issuer)
    yield made
    made.stop()


def metric(process: ServiceProcess, name: str, labels: str = "") -> float:
    text = httpx.get(f"{process.ops_url}/metrics", timeout=5).text
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def held(process: ServiceProcess) -> set[int]:
    partitions = httpx.get(f"{process.url}/health/ready", timeout=5).json()["partitions"]
    return {int(p) for p in partitions}


def joined(
    cluster: HandoffCluster, kafka_bootstrap: str
) -> tuple[OrderProducer, list[OrderPlaced]]:
    producer = OrderProducer(kafka_bootstrap, cluster.topic)
    events = seed(producer, USERS, random.Random(19))
    cluster.launch("q1")
    cluster.wait_placed()
    cluster.launch("q2")
    cluster.wait_placed(timeout=60)
    return producer, events


def test_an_added_instance_takes_its_partitions_by_hand_off(
    cluster: HandoffCluster, kafka_bootstrap: str
) -> None:
    producer, events = joined(cluster, kafka_bootstrap)
    q1, q2 = cluster.instances["q1"], cluster.instances["q2"]
    taken = held(q2)
    assert taken
    assert metric(q2, "query_handoffs_total", '{outcome="installed"}') == len(taken)
    assert metric(q2, "query_events_applied_total") == 0  # nothing replayed
    assert metric(q1, "query_handoff_bytes_total", '{direction="sent"}') > 0
    log = q2.log_path.read_text()
    for partition in taken:
        assert f"partition {partition} handed over by q1" in log
    assert "falling back" not in log
    served = assert_exact(q2, events, USERS, cluster.issuer)
    assert served["q2"] > 0
    # It goes on applying the log from the checkpoint's offset.
    more = seed(producer, USERS, random.Random(20))
    assert_exact(q2, events + more, USERS, cluster.issuer)
    wait_for(lambda: metric(q2, "query_events_applied_total") > 0, 10, "q2 to apply new events")


def test_a_wrong_cluster_secret_falls_back_to_the_log(
    cluster: HandoffCluster, kafka_bootstrap: str
) -> None:
    cluster.secrets["q2"] = "another-secret-that-is-long-enough-too-32"
    _, events = joined(cluster, kafka_bootstrap)
    q2 = cluster.instances["q2"]
    taken = held(q2)
    assert metric(q2, "query_handoffs_total", '{outcome="refused"}') == len(taken)
    assert metric(q2, "query_handoffs_total", '{outcome="installed"}') == 0
    log = q2.log_path.read_text()
    assert "403" in log
    assert "falling back to replay" in log
    assert_exact(q2, events, USERS, cluster.issuer)


def handing_over(process: ServiceProcess) -> dict[str, object] | None:
    try:
        found: dict[str, object] = httpx.get(f"{process.ops_url}/cluster", timeout=2).json()
    except httpx.HTTPError:
        return None
    return found if found.get("handoffs") else None


def incoming_dirs(cluster: HandoffCluster, name: str) -> list[Path]:
    return list((cluster.workdir / name).rglob("partition-*.incoming-*"))


def test_a_sender_killed_mid_transfer_leaves_the_receiver_replaying(
    cluster: HandoffCluster, kafka_bootstrap: str
) -> None:
    cluster.throttled["q1"] = "4000"  # bytes/s: the transfer lasts seconds
    producer = OrderProducer(kafka_bootstrap, cluster.topic)
    events = seed(producer, USERS, random.Random(21))
    cluster.launch("q1")
    cluster.wait_placed()
    q2 = cluster.launch("q2")
    wait_for(lambda: handing_over(q2), 30, "q2 to start receiving a checkpoint")
    cluster.instances["q1"].kill()
    cluster.wait_placed(timeout=60)
    assert metric(q2, "query_handoffs_total", '{outcome="failed"}') >= 1
    assert "falling back to replay" in q2.log_path.read_text()
    assert not incoming_dirs(cluster, "q2")
    assert_exact(q2, events, USERS, cluster.issuer)


def test_a_receiver_killed_mid_transfer_never_opens_the_partial_copy(
    cluster: HandoffCluster, kafka_bootstrap: str
) -> None:
    cluster.throttled["q1"] = "4000"
    producer = OrderProducer(kafka_bootstrap, cluster.topic)
    events = seed(producer, USERS, random.Random(22))
    cluster.launch("q1")
    cluster.wait_placed()
    q2 = cluster.launch("q2")
    wait_for(lambda: incoming_dirs(cluster, "q2"), 30, "q2 to start receiving a checkpoint")
    q2.kill()
    assert incoming_dirs(cluster, "q2")  # the partial copy, left by the kill
    # Back without the secret: it builds its partitions from the log instead of asking q1 for
    # them again at q1's throttled pace (the partial copy is what this test is about).
    q2.env = {k: v for k, v in q2.env.items() if k != "QUERY_CLUSTER_SECRET"}
    q2.launch()
    cluster.wait_placed(timeout=90)
    assert "a hand-off that never finished" in q2.log_path.read_text()
    assert not incoming_dirs(cluster, "q2")
    assert_exact(q2, events, USERS, cluster.issuer)
