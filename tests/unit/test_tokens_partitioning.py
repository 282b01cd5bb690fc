"""Consistency tokens, and the partitioner checked against Kafka's own murmur2 vectors."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from query_service.view.partitioning import partition_for
from shared.exceptions import MalformedToken
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


@pytest.mark.parametrize(("key", "hashed"), KAFKA_MURMUR2.items())
@pytest.mark.parametrize("partitions", [1, 6, 7, 1000, 2**31 - 1])
def test_partition_for_matches_the_java_client(key: bytes, hashed: int, partitions: int) -> None:
    # The Java client's default partitioner: toPositive(murmur2(key)) % partitions.
    assert partition_for(key.decode(), partitions) == (hashed & 0x7FFFFFFF) % partitions


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
