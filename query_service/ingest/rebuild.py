"""`python -m query_service rebuild`: fold the whole topic into a fresh database, then swap it in.

The new version is built beside the live one, up to the end offsets seen when the rebuild
starts, and becomes `current` in one atomic rename. A service that is running keeps serving and
updating the version it has open; it opens the new one on its next start and resumes from the
new version's own stored offsets. Old versions are left on disk for the operator to remove.
Records that are not valid events are counted, not dead-lettered again: the live service did
that when it first met them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from tqdm import tqdm

from query_service.ingest.batch import Ingest
from query_service.ingest.dead_letters import CountedDeadLetters, dead_letter_topic
from query_service.metrics import QueryMetrics
from query_service.settings import QuerySettings
from query_service.store import statedir
from query_service.store.rocks import RocksPartitionStores
from shared.kafka import consumer_config, ensure_topics, orders_topic, topic_id

log = logging.getLogger(__name__)


def rebuild(settings: QuerySettings, *, progress: bool = True) -> Path:
    """Build a new version from offset 0 and make it current; returns its directory."""
    topic = settings.orders_topic
    ensure_topics(settings, [orders_topic(settings), dead_letter_topic(settings)])
    version = statedir.new_version(settings.query_state_dir)
    stores = RocksPartitionStores(version, topic)
    dead_letters = CountedDeadLetters()
    consumer = Consumer(
        consumer_config(settings, "query-rebuild", f"{settings.query_consumer_group}-rebuild")
    )
    try:
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        partitions = sorted(metadata.partitions)
        bounds = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            for p in partitions
        }
        ends = {p: high for p, (_, high) in bounds.items()}
        ingest = Ingest(stores, dead_letters, QueryMetrics())
        orders_topic_id = topic_id(settings, topic)
        applied = {p: ingest.take(p, orders_topic_id) for p in partitions}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        total = sum(high - low for low, high in bounds.values())
        done = {p: low for p, (low, _) in bounds.items()}
        with tqdm(
            total=total,
            unit="events",
            unit_scale=True,
            desc="rebuild",
            disable=not progress,
            smoothing=0.1,
        ) as bar:
            while any(done[p] < ends[p] for p in partitions):
                messages = consumer.consume(num_messages=settings.query_batch_max, timeout=1.0)
                batch = ingest.process(messages, partitions) if messages else None
                if batch is None:
                    continue
                applied.update(batch.offsets)
                for p in partitions:
                    reached = min(applied[p] + 1, ends[p])
                    if reached > done[p]:
                        bar.update(reached - done[p])
                        done[p] = reached
    finally:
        consumer.close()
        dead_letters.close()
        stores.close()
    statedir.swap(settings.query_state_dir, version)
    log.info("rebuilt the view up to %s in %s and made it current", ends, version)
    log.info("the rebuild met %s", dead_letters.summary())
    return version
