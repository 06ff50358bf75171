"""The durations current state as a compacted Kafka topic, for dashboards without database access.

Every write of the read model records the citizens it changed in an outbox table,
in the same transaction (`ReadModelStore.write(..., outbox=True)`). The publisher
sends those citizens' `durations_citizen` rows, keyed by `citizen_key`, waits for
every acknowledgement and only then takes them off the outbox. A process that
dies between the commit and the acknowledgement leaves them in the outbox, and
the next run publishes them first: nothing is lost, and a repeated row is
harmless on a compacted topic.
"""

from __future__ import annotations

import json

from kafka import KafkaProducer

from casehistory.consumers.topics import CHANGELOG_TOPIC, ensure_changelog
from casehistory.projections.rows import TABLES
from casehistory.projections.store import ReadModelStore

COLUMNS = TABLES["durations_citizen"]


class DurationsChangelog:
    def __init__(
        self, bootstrap_servers: str, store: ReadModelStore, topic: str = CHANGELOG_TOPIC
    ) -> None:
        ensure_changelog(bootstrap_servers)
        self.topic = topic
        self.store = store
        self.producer = KafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")

    def publish(self) -> None:
        """Publish the current rows of every citizen in the outbox, confirmed, then clear it."""
        while citizen_keys := self.store.outbox():
            self._send(citizen_keys)
            self.store.published(citizen_keys)

    def _send(self, citizen_keys: list[str]) -> None:
        futures = []
        for values in self.store.rows_of("durations_citizen", citizen_keys):
            value = dict(zip(COLUMNS, values, strict=True))
            futures.append(
                self.producer.send(
                    self.topic,
                    key=str(value["citizen_key"]).encode("ascii"),
                    value=json.dumps(value, separators=(",", ":")).encode("utf-8"),
                )
            )
        self.producer.flush()
        for future in futures:
            future.get(timeout=30)

    def close(self) -> None:
        self.producer.close()
