"""The router names each history record's partition itself: exactly the partition
kafka-python's (and the Java client's) default partitioner gives the same key."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_murmur2

from casehistory.consumers.partitioning import murmur2, partition_of


@given(st.binary(max_size=80))
def test_the_hash_is_kafkas_for_any_bytes(data: bytes) -> None:
    assert murmur2(data) == kafka_murmur2(data)


@given(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32), st.integers(1, 64))
def test_a_pseudonym_goes_to_the_partition_kafka_would_choose(key: str, partitions: int) -> None:
    raw = key.encode()
    assert partition_of(raw, partitions) == (kafka_murmur2(raw) & 0x7FFFFFFF) % partitions


def test_the_java_clients_published_values() -> None:
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2, as signed 32-bit integers.
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
             b"a-little-bit-longer-string": -1486304829,
             b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, b"abc": 479470107}
    for data, signed in cases.items():
        assert murmur2(data) == signed & 0xFFFFFFFF, data
