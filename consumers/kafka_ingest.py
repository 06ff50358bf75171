"""The Kafka ingest consumer: a consumer-group member feeding the shared ingest path.

Error policy, per record and per batch:
- a record that does not decode (no single-object header, unknown writer
  schema, corrupt body) or does not validate is dead-lettered to the DLQ topic
  with the original bytes and headers plus the reason; the consumer goes on;
- offsets are committed only after the batch's dead letters are flushed and its
  events and ledger are committed to the event store, so a crash or rebalance
  redelivers at most the last batch, whose events then count as duplicates;
- an infrastructure failure (store or broker down) stops the consumer without
  committing, so nothing is skipped; restarting resumes from the last commit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from consumers.deadletter import DeadLetter
from consumers.files import Incoming
from consumers.ingest import IngestReport, IngestService
from schemas import wire

log = logging.getLogger(__name__)


@dataclass
class ConsumerCounters(IngestReport):
    """What one consumer process has done since it started."""

    batches: int = 0
    lag: int = 0

    @property
    def consumed(self) -> int:
        return self.received

    @property
    def dead_lettered(self) -> int:
        return self.rejected

    def add(self, other: IngestReport) -> None:
        super().add(other)
        self.batches += 1


class KafkaDeadLetters:
    """Dead-letter sink on a Kafka topic: original key, bytes and headers, plus why."""

    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    def put(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        for letter in letters:
            origin = letter.provenance
            headers = [
                *letter.headers,
                ("dlq.reason", letter.reason.encode()),
                ("dlq.message", letter.message.encode()),
                ("dlq.exception", letter.error_class.encode()),
                ("dlq.source.topic", str(origin.get("topic", "")).encode()),
                ("dlq.source.partition", str(origin.get("partition", "")).encode()),
                ("dlq.source.offset", str(origin.get("offset", "")).encode()),
            ]
            self.producer.send(self.topic, key=letter.key, value=letter.raw, headers=headers)
        self.producer.flush()


def to_incoming(record: Any) -> Incoming:
    """A consumed record, decoded once at the edge; decode failures become dead letters."""
    provenance = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
    headers = tuple(record.headers or ())
    raw: bytes = record.value if record.value is not None else b""
    try:
        datum, version = wire.decode(raw)
    except wire.UndecodableMessage as error:
        return Incoming(
            None, raw, provenance, str(error), type(error).__name__, record.key, headers
        )
    provenance["schema_version"] = version
    return Incoming(datum, raw, provenance, key=record.key, headers=headers)


class KafkaIngestConsumer:
    """One member of the ingest consumer group."""

    def __init__(
        self,
        service: IngestService,
        bootstrap_servers: str,
        topic: str,
        group_id: str,
        *,
        max_poll_records: int = 2000,
        client_id: str | None = None,
    ) -> None:
        self.service = service
        self.topic = topic
        self.counters = ConsumerCounters()
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            client_id=client_id or f"casehistory-ingest-{threading.get_native_id()}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_poll_records,
            fetch_max_bytes=32 * 1024 * 1024,
            # A crashed member's partitions move to the others after this long.
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
        )
        self.consumer.subscribe([topic])

    def poll_once(self, timeout_ms: int = 500) -> int:
        """Process one poll's records as one batch; returns how many were consumed."""
        polled = self.consumer.poll(timeout_ms=timeout_ms)
        records = [record for batch in polled.values() for record in batch]
        if not records:
            return 0
        report = self.service.ingest([to_incoming(r) for r in records])
        self.counters.add(report)
        offsets = {
            TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(batch[-1].offset + 1, "", -1)
            for tp, batch in polled.items()
            if batch
        }
        self.consumer.commit(offsets=offsets)
        self.counters.lag = self._lag()
        return len(records)

    def _lag(self) -> int:
        """Records behind the partitions' high watermarks, as of the last fetch (no request)."""
        lag = 0
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            position = self.consumer.position(tp)
            if end is not None and position is not None:
                lag += max(0, end - position)
        return lag

    def run(
        self,
        stop: threading.Event,
        idle_exit_seconds: float | None = None,
        on_batch: Callable[[ConsumerCounters], None] | None = None,
    ) -> ConsumerCounters:
        """Consume until `stop` is set (or, if given, after that long without records)."""
        last_record = time.monotonic()
        while not stop.is_set():
            if self.poll_once():
                last_record = time.monotonic()
                if on_batch is not None:
                    on_batch(self.counters)
            elif idle_exit_seconds is not None and (
                time.monotonic() - last_record > idle_exit_seconds
            ):
                break
        return self.counters

    def close(self) -> None:
        self.consumer.close()
