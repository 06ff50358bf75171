"""The engine's Kafka topics, created when missing."""

from __future__ import annotations

import contextlib

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

CHANGELOG_TOPIC = "casehistory.durations.changelog"


def ensure_topics(
    bootstrap_servers: str, events: str, dlq: str, partitions: int = 6, replication: int = 1
) -> None:
    """Create the input topic (keyed by citizen), its DLQ and the compacted changelog."""
    wanted = [
        NewTopic(events, partitions, replication),
        NewTopic(dlq, 1, replication),
        NewTopic(
            CHANGELOG_TOPIC, partitions, replication, topic_configs={"cleanup.policy": "compact"}
        ),
    ]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process was first
                admin.create_topics(missing, wait_for_metadata=True)
    finally:
        admin.close()
