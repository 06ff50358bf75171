"""The durations read model as a compacted Kafka topic, for dashboards without database access.

Every row the projection writes is also published, keyed by `citizen_key`, after
the row and its tracking position are committed. Compaction keeps the latest
row per citizen; a re-publish after a crash repeats a value, which is harmless.
The value is JSON: the stored row without the timeline document.
"""

from __future__ import annotations

import json

from kafka import KafkaProducer

from consumers.topics import CHANGELOG_TOPIC, ensure_changelog
from projections.durations import DurationsRow


class DurationsChangelog:
    def __init__(self, bootstrap_servers: str, topic: str = CHANGELOG_TOPIC) -> None:
        ensure_changelog(bootstrap_servers)
        self.topic = topic
        self.producer = KafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")

    def publish(self, rows: list[DurationsRow]) -> None:
        for row in rows:
            value = {k: v for k, v in row.params().items() if k != "timeline"}
            self.producer.send(
                self.topic,
                key=row.citizen_key.encode("ascii"),
                value=json.dumps(value, separators=(",", ":")).encode("utf-8"),
            )
        self.producer.flush()

    def close(self) -> None:
        self.producer.close()
