"""The engine's Kafka topics, created when missing."""

from __future__ import annotations

import contextlib

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

CHANGELOG_TOPIC = "casehistory.durations.changelog"


def _create_missing(bootstrap_servers: str, wanted: list[NewTopic]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process was first
                admin.create_topics(missing, wait_for_metadata=True)
    finally:
        admin.close()


def changelog_topic(partitions: int = 6, replication: int = 1) -> NewTopic:
    return NewTopic(
        CHANGELOG_TOPIC, partitions, replication, topic_configs={"cleanup.policy": "compact"}
    )


def ensure_topics(
    bootstrap_servers: str,
    events: str,
    dlq: str,
    partitions: int = 6,
    replication: int = 1,
    dlq_retention_days: int | None = None,
) -> None:
    """Create the input topic (keyed by citizen), its DLQ and the compacted changelog.

    Dead letters hold raw CPRs, and Kafka cannot delete single records: a new DLQ
    gets `retention.ms` from `dlq_retention_days` (None: the broker's default).
    """
    retention = (
        {"retention.ms": str(dlq_retention_days * 86_400_000)} if dlq_retention_days else {}
    )
    _create_missing(
        bootstrap_servers,
        [
            NewTopic(events, partitions, replication),
            NewTopic(dlq, 1, replication, topic_configs=retention),
            changelog_topic(partitions, replication),
        ],
    )


def ensure_changelog(bootstrap_servers: str) -> None:
    """Create the compacted changelog topic if it is missing."""
    _create_missing(bootstrap_servers, [changelog_topic()])
