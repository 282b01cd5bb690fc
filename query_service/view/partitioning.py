"""Which partition holds a user's events: the producer's murmur2 partitioner, from the client.

The command service's producer uses librdkafka's `murmur2_random`, which is `murmur2` for every
non-empty key (a user id never is empty) and agrees with the Java client's default partitioner.
"""

from __future__ import annotations

import confluent_kafka


def partition_for(user_id: str, partitions: int) -> int:
    return int(confluent_kafka.murmur2(user_id.encode(), partitions))
