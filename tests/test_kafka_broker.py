"""Round trip through a real Kafka broker: admin, idempotent producer, consumer group."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.serializer import DefaultSerializer

pytestmark = pytest.mark.kafka

KEYS = [f"case-{i}" for i in range(8)]
PER_KEY = 5
UTF8 = DefaultSerializer()  # str <-> UTF-8 bytes


def test_round_trip_keeps_keys_on_one_partition(kafka_bootstrap: str) -> None:
    topic = f"test-roundtrip-{uuid.uuid4().hex[:12]}"
    group = f"test-group-{uuid.uuid4().hex[:12]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, bootstrap_timeout_ms=10_000)
    try:
        admin.create_topics(
            {topic: {"num_partitions": 3, "replication_factor": 1}}, wait_for_metadata=True
        )
        [described] = admin.describe_topics([topic])
        assert described["error_code"] == 0
        assert len(described["partitions"]) == 3

        sent: list[tuple[str, str, int, int]] = []  # key, value, partition, offset
        with KafkaProducer(
            bootstrap_servers=kafka_bootstrap,
            acks="all",
            key_serializer=UTF8,
            value_serializer=UTF8,
        ) as producer:
            futures = [
                (key, value, producer.send(topic, key=key, value=value))
                for n in range(PER_KEY)
                for key in KEYS
                for value in [f"{key}:{n}"]
            ]
            producer.flush(timeout=30)
            for key, value, future in futures:
                meta = future.get(timeout=30)
                sent.append((key, value, meta.partition, meta.offset))

        sent_partitions = {key: {p for k, _, p, _ in sent if k == key} for key in KEYS}
        assert all(len(ps) == 1 for ps in sent_partitions.values()), sent_partitions
        assert len({p for _, _, p, _ in sent}) > 1, "all keys hashed to one partition"

        received: list[tuple[str, str, int, int]] = []
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            key_deserializer=UTF8,
            value_deserializer=UTF8,
        )
        try:
            deadline = time.monotonic() + 60
            while len(received) < len(sent) and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=1000).values():
                    received.extend((r.key, r.value, r.partition, r.offset) for r in records)
            consumer.commit()
        finally:
            consumer.close()

        assert sorted(received) == sorted(sent)
        by_key: dict[str, list[str]] = defaultdict(list)
        for key, value, _, _ in sorted(received, key=lambda r: (r[2], r[3])):
            by_key[key].append(value)
        assert by_key == {key: [f"{key}:{n}" for n in range(PER_KEY)] for key in KEYS}

        committed = admin.list_group_offsets({group: None})[group]
        end: dict[int, int] = defaultdict(int)
        for _, _, partition, offset in sent:
            end[partition] = max(end[partition], offset + 1)
        assert {tp.partition: om.offset for tp, om in committed.items()} == dict(end)
        assert all(isinstance(tp, TopicPartition) and tp.topic == topic for tp in committed)
    finally:
        try:
            admin.delete_topics([topic])
        finally:
            admin.close()


def test_record_crcs_are_checked_by_the_c_extension() -> None:
    """kafka-python falls back to a pure-Python CRC-32C silently; we depend on the C one."""
    import crc32c
    from kafka.record import util

    assert util.calc_crc32c.__defaults__ == (crc32c.crc32c,)
    assert util.calc_crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
