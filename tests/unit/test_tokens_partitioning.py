"""Consistency tokens and the murmur2 partitioner, checked against Kafka's own vectors."""

from __future__ import annotations

import contextlib

import confluent_kafka
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.exceptions import MalformedToken
from shared.partitioning import murmur2, partition_for
from shared.tokens import ConsistencyToken

# From Apache Kafka's UtilsTest.testMurmur2: Utils.murmur2 as Java's signed int.
KAFKA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def _signed(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


@pytest.mark.parametrize(("key", "expected"), KAFKA_MURMUR2.items())
def test_murmur2_matches_the_java_client(key: bytes, expected: int) -> None:
    assert _signed(murmur2(key)) == expected


@given(st.text(min_size=1, max_size=64), st.integers(min_value=1, max_value=1000))
def test_partition_for_agrees_with_librdkafka_murmur2(key: str, partitions: int) -> None:
    assert partition_for(key, partitions) == confluent_kafka.murmur2(key.encode(), partitions)


@given(st.integers(min_value=0, max_value=999_999), st.integers(min_value=-1, max_value=2**63 - 1))
def test_token_round_trips(partition: int, offset: int) -> None:
    token = ConsistencyToken(partition, offset)
    assert ConsistencyToken.parse(token.encode()) == token


@pytest.mark.parametrize(
    "text", ["", "v1", "v1:0", "v2:0:1", "v1:a:1", "v1:0:-2", "v1:0:1:2", "v1:1234567:0"]
)
def test_malformed_tokens_raise_a_clear_error(text: str) -> None:
    with pytest.raises(MalformedToken, match="malformed consistency token"):
        ConsistencyToken.parse(text)


@given(st.text(max_size=40))
def test_parse_never_raises_anything_but_malformed_token(text: str) -> None:
    with contextlib.suppress(MalformedToken):
        ConsistencyToken.parse(text)
