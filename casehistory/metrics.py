"""Prometheus metrics of a running engine: ingest, dead letters, lag, freshness.

Figures that live in the stores are read when Prometheus scrapes (the ingest
ledger counts every input record's outcome, so ingest counters and dead letters
by reason survive restarts and cover every consumer process; a scrape reuses a
reading for `STORE_TTL` seconds). Consumer lag per partition is read from Kafka
when it is configured. Projection batch time and freshness are measured by the
projection loop of the process that serves them (`casehistory serve`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from casehistory.bootstrap import Engine

log = logging.getLogger("casehistory.metrics")
STORE_TTL = 10.0
KAFKA_TTL = 15.0
FRESHNESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True)
class LedgerCount:
    source: str
    """The topic, or `file` for file ingests."""
    partition: str
    outcome: str
    reason: str
    records: int


def ledger_counts(engine: Engine) -> list[LedgerCount]:
    """Input records by source, partition, outcome and reason, from the ingest ledgers
    (of every partition group's store)."""
    rows: list[tuple[Any, ...]] = []
    for app in engine.stores.values():
        recorder: Any = app.recorder
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT source, outcome, reason, COUNT(*) AS n FROM {recorder.ledger_table} "
                "GROUP BY source, outcome, reason"
            )
            rows += [tuple(r.values()) if isinstance(r, dict) else tuple(r)
                     for r in cursor.fetchall()]
    found = []
    for source, outcome, reason, count in rows:
        text = str(source)
        name, _, partition = ("file", "", "") if text.startswith("file:") else text.rpartition(":")
        found.append(LedgerCount(name or text, partition, outcome, reason or "", count))
    return found


def consumer_lag(bootstrap: str, topic: str, group: str) -> dict[int, int]:
    """Per partition: records of `topic` after the group's committed offset."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(partitions)
        return {tp.partition: ends[tp] - (consumer.committed(tp) or 0) for tp in partitions}
    finally:
        consumer.close()


class _Cached:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.at = 0.0
        self.value: Any = None

    def get(self, read: Any) -> Any:
        if time.monotonic() - self.at > self.ttl:
            self.value = read()
            self.at = time.monotonic()
        return self.value


class StoreCollector(Collector):
    """Reads the event store, the ledger, the read models' positions and Kafka at scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._ledger = _Cached(STORE_TTL)
        self._kafka = _Cached(KAFKA_TTL)

    def collect(self) -> Iterator[Metric]:
        from casehistory.services.reports import read_model_status

        with self._lock:
            head, statuses = read_model_status(self.engine)
            counts: list[LedgerCount] = self._ledger.get(lambda: ledger_counts(self.engine))
            lag = self._kafka.get(self._read_kafka_lag)
        yield GaugeMetricFamily(
            "casehistory_events_stored", "Events in the event store (last notification id)",
            value=head,
        )
        records = CounterMetricFamily(
            "casehistory_ingest_records", "Input records by outcome (ingest ledger)",
            labels=["source", "partition", "outcome"],
        )
        dead = CounterMetricFamily(
            "casehistory_dead_letters", "Dead-lettered input records by reason (ingest ledger)",
            labels=["source", "reason"],
        )
        by_outcome: dict[tuple[str, str, str], int] = {}
        by_reason: dict[tuple[str, str], int] = {}
        for c in counts:
            key = (c.source, c.partition, c.outcome)
            by_outcome[key] = by_outcome.get(key, 0) + c.records
            if c.outcome == "dead_lettered":
                by_reason[(c.source, c.reason)] = by_reason.get((c.source, c.reason), 0) + c.records
        for (source, partition, outcome), n in sorted(by_outcome.items()):
            records.add_metric([source, partition, outcome], n)
        for (source, reason), n in sorted(by_reason.items()):
            dead.add_metric([source, reason], n)
        yield records
        yield dead
        position = GaugeMetricFamily(
            "casehistory_projection_position", "Last notification id applied, per read model",
            labels=["read_model"],
        )
        behind = GaugeMetricFamily(
            "casehistory_projection_lag_events", "Events stored but not yet in the read model",
            labels=["read_model"],
        )
        for s in statuses:
            position.add_metric([s.name], s.position)
            behind.add_metric([s.name], s.lag)
        yield position
        yield behind
        if lag is not None:
            kafka = GaugeMetricFamily(
                "casehistory_consumer_lag_records",
                "Records after the ingest group's committed offset, per partition",
                labels=["topic", "partition"],
            )
            for partition, n in sorted(lag.items()):
                kafka.add_metric([self.engine.settings.kafka_topic, str(partition)], n)
            yield kafka

    def _read_kafka_lag(self) -> dict[int, int] | None:
        settings = self.engine.settings
        if not settings.kafka_bootstrap:
            return None
        try:
            return consumer_lag(settings.kafka_bootstrap, settings.kafka_topic,
                                settings.kafka_group)
        except Exception:
            return None


class EngineMetrics:
    """The registry `/metrics` serves, and what the projection loop records into it."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(StoreCollector(engine))
        self.batch_seconds = Histogram(
            "casehistory_projection_batch_seconds", "Time to apply one batch to every read model",
            registry=self.registry,
        )
        self.applied = Counter(
            "casehistory_projection_applied_events", "Events applied by this process's projector",
            registry=self.registry,
        )
        self.freshness = Histogram(
            "casehistory_freshness_seconds",
            "From an event's storage to its visibility in every read model",
            buckets=FRESHNESS_BUCKETS, registry=self.registry,
        )

    def record_batch(self, seconds: float, applied: int, stored_at: datetime | None) -> None:
        self.batch_seconds.observe(seconds)
        self.applied.inc(applied)
        if stored_at is not None:
            self.freshness.observe(max(0.0, (datetime.now(UTC) - stored_at).total_seconds()))
