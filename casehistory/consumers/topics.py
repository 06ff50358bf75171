"""The engine's Kafka topics, created when missing, and checked where it matters.

The pipeline (docs/upstream.md, README "Deployment"): upstream publishes to the
input topic (any key, a short explicit retention); the router writes each valid
record to the history topic (keyed by pseudonym, kept forever: it is the log a
store is rebuilt from) and each invalid one to the dead-letter topic.
"""

from __future__ import annotations

import contextlib

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
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


HISTORY_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
"""The history topic keeps every record forever; compaction would drop all but a
citizen's newest record, deletion by age or size would lose history."""


class TopicMisconfigured(RuntimeError):
    """A topic exists with a configuration the engine cannot run on."""


def ensure_pipeline_topics(
    bootstrap_servers: str,
    input_topic: str,
    history_topic: str,
    dlq: str,
    partitions: int = 6,
    replication: int = 1,
    input_retention_hours: int = 168,
    dlq_retention_days: int | None = None,
) -> None:
    """Create the input, history and dead-letter topics (and the changelog) when missing.

    The input topic gets an explicit `retention.ms` (raw CPRs stay only that
    long); the history topic `HISTORY_CONFIG`. An existing history topic is
    checked (`check_history_topic`).
    """
    _create_missing(
        bootstrap_servers,
        [
            NewTopic(input_topic, partitions, replication,
                     topic_configs={"retention.ms": str(input_retention_hours * 3_600_000)}),
            NewTopic(history_topic, partitions, replication, topic_configs=HISTORY_CONFIG),
        ],
    )
    ensure_topics(bootstrap_servers, input_topic, dlq, partitions, replication,
                  dlq_retention_days)
    check_history_topic(bootstrap_servers, history_topic)


def check_history_topic(bootstrap_servers: str, topic: str) -> None:
    """Raise `TopicMisconfigured` unless the history topic keeps every record forever."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
        )
    finally:
        admin.close()
    configs = described.get("topic", {}).get(topic, {})
    wrong = {
        name: (configs.get(name) or {}).get("value")
        for name, wanted in HISTORY_CONFIG.items()
        if (configs.get(name) or {}).get("value") != wanted
    }
    if wrong:
        found = ", ".join(f"{name}={value}" for name, value in wrong.items())
        raise TopicMisconfigured(
            f"history topic {topic} must keep every record forever "
            f"({', '.join(f'{k}={v}' for k, v in HISTORY_CONFIG.items())}); it has {found}. "
            f"Fix with kafka-configs --alter --entity-type topics --entity-name {topic} "
            "--add-config retention.ms=-1,retention.bytes=-1,cleanup.policy=delete"
        )
