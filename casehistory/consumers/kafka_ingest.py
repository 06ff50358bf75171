"""The Kafka ingest consumer: a consumer-group member feeding the shared ingest path.

Error policy, per record and per batch:
- a record that does not decode (no single-object header, unknown writer
  schema, corrupt body) or does not validate is dead-lettered to the DLQ topic
  with the original bytes and headers plus the reason; the consumer goes on. A
  null header value is sent as empty and a copy too large for the producer is
  truncated, each noted in a `dlq.*` header;
- only records of committed upstream transactions are read (`read_committed`);
- offsets are committed only after the broker acknowledged every dead letter of
  the batch and its events and ledger are committed to the event store; on
  assignment a member resumes after the last offset the store's ledger holds
  (`ResumeFromStore`), so the group's committed offsets are an optimisation and a
  stored batch is not read again; a member that lost its partitions mid-batch
  is fenced: taking a partition over bumps its writer generation in the store,
  and an append under an older generation is refused (`recorders.WriterFenced`);
- a transient fault (store, broker or DLQ down, restarting or refusing) is
  waited out with backoff, logged and counted (`consumers.retry`), and the batch
  retried; nothing is committed meanwhile;
- a commit refused because the group rebalanced during a long batch is logged
  and counted; the member rejoins, and whoever now owns the partitions re-reads
  the batch from the last commit (as duplicates).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, MessageSizeTooLargeError
from kafka.structs import OffsetAndMetadata

from casehistory.bootstrap import collections_after_batch
from casehistory.consumers.deadletter import DeadLetter
from casehistory.consumers.files import Incoming
from casehistory.consumers.ingest import STORE_BATCH, IngestReport, IngestService
from casehistory.consumers.retry import REBALANCED, Backoff, DeadLetterNotSent, Stopped
from casehistory.recorders import WriterFenced
from casehistory.schemas import wire

log = logging.getLogger(__name__)

BATCH_BYTES = 256 * 1024
"""With a batch wait, what a fetch waits for (about 1,000 contract records)."""
FETCH_BYTES = 32 * 1024 * 1024
"""What one fetch takes of every partition together."""
PARTITION_FETCH_BYTES = 8 * 1024 * 1024
"""What one fetch takes of a partition (kafka-python's default, 1 MiB, holds about 1,300
history records: a poll over 3 partitions returned about 4,000, not `STORE_BATCH`)."""
STORE_FETCH = {
    "max_poll_records": STORE_BATCH,
    "fetch_max_bytes": FETCH_BYTES,
    "max_partition_fetch_bytes": PARTITION_FETCH_BYTES,
}
"""kafka-python's fetch settings of a consumer that stores each poll in one transaction."""
IDLE_FENCE_CHECK_S = 2.0
"""How often an idle partition group's writer checks that it is still the group's writer."""


@dataclass
class ConsumerCounters(IngestReport):
    """What one consumer process has done since it started."""

    batches: int = 0
    lag: int = 0
    transient_faults: int = 0
    """Faults waited out (each retry of a batch, poll or commit counts once)."""
    commits_refused: int = 0
    """Batches whose offsets the group refused after a rebalance (re-read as duplicates)."""
    batches_fenced: int = 0
    """Batches refused by the store because a newer member took their partitions over."""

    @property
    def consumed(self) -> int:
        return self.received

    @property
    def dead_lettered(self) -> int:
        return self.rejected

    def add(self, other: IngestReport) -> None:
        super().add(other)
        self.batches += 1


SMALL_COPY = 64 * 1024
"""Bytes of the original kept when the broker refuses even a copy that fits the producer."""
ENVELOPE = 4096
"""Room left in a request for the record's framing and the `dlq.*` headers."""


def dead_letter_producer(bootstrap_servers: str, **config: Any) -> KafkaProducer:
    """A producer for dead letters: every letter acknowledged by all replicas.

    Not idempotent: kafka-python's idempotent producer treats a refused record
    (too large for the topic, say) as fatal and fails every later send, while a
    plain one recovers once the topic takes letters again. A repeated letter is
    harmless; a lost one is not, and `put` checks every acknowledgement.
    """
    return KafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=False,
        reconnect_backoff_max_ms=5000, **config,
    )


class KafkaDeadLetters:
    """Dead-letter sink on a Kafka topic: original key, bytes and headers, plus why.

    `put` returns only when the broker acknowledged every letter; otherwise it
    raises `DeadLetterNotSent`, so the batch is not committed (and is retried).
    """

    def __init__(self, producer: KafkaProducer, topic: str, ack_timeout: float = 60.0) -> None:
        self.producer = producer
        self.topic = topic
        self.ack_timeout = ack_timeout

    def put(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        limit = int(self.producer.config["max_request_size"]) - ENVELOPE
        pending = [(letter, self._send(letter, limit)) for letter in letters]
        self.producer.flush(timeout=self.ack_timeout)
        failed: list[str] = []
        for letter, future in pending:
            try:
                future.get(timeout=self.ack_timeout)
            except MessageSizeTooLargeError:
                # The topic takes less than the producer allows: send a small copy.
                try:
                    self._send(letter, SMALL_COPY).get(timeout=self.ack_timeout)
                except Exception as error:
                    failed.append(f"{type(error).__name__}: {error}")
            except Exception as error:
                failed.append(f"{type(error).__name__}: {error}")
        if failed:
            raise DeadLetterNotSent(
                f"{len(failed)} of {len(letters)} dead letters not acknowledged, "
                f"first: {failed[0][:200]}"
            )

    def _send(self, letter: DeadLetter, limit: int) -> Any:
        key, value, headers = dead_letter_record(letter, limit)
        try:
            return self.producer.send(self.topic, key=key, value=value, headers=headers)
        except MessageSizeTooLargeError:
            key, value, headers = dead_letter_record(letter, min(limit, SMALL_COPY))
            return self.producer.send(self.topic, key=key, value=value, headers=headers)


def dead_letter_record(
    letter: DeadLetter, limit: int
) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """The letter's key, value and headers for the DLQ topic, sanitised, about `limit` bytes.

    Kafka allows null header values, which the producer refuses: they are sent
    empty and named in `dlq.null-headers`. A value (and original headers) too large
    for `limit` are cut, with the original size and SHA-256 in `dlq.truncated`.
    """
    origin = letter.provenance
    original = [(name, b"" if value is None else value) for name, value in letter.headers]
    nulls = [name for name, value in letter.headers if value is None]
    extra: list[tuple[str, bytes]] = []
    if nulls:
        extra.append(("dlq.null-headers", ",".join(nulls).encode()))
    value, key = letter.raw, letter.key
    if key is not None and len(key) > limit // 4:
        extra.append(("dlq.truncated-key", f"{len(key)} bytes".encode()))
        key = key[:1024]
    header_bytes = sum(len(name) + len(v) for name, v in original)
    key_bytes = len(key or b"")
    if header_bytes + key_bytes > limit // 2:
        extra.append(("dlq.dropped-headers", ",".join(n for n, _ in original).encode()[:1024]))
        original, header_bytes = [], 0
    room = max(0, limit - header_bytes - key_bytes)
    if len(value) > room:
        digest = hashlib.sha256(value).hexdigest()
        extra.append(("dlq.truncated", f"{len(value)} bytes, sha256 {digest}".encode()))
        value = value[:room]
    headers = [
        *original,
        ("dlq.reason", letter.reason.encode()),
        ("dlq.message", letter.message.encode("utf-8", "replace")[:2048]),
        ("dlq.exception", letter.error_class.encode()),
        ("dlq.source.topic", str(origin.get("topic", "")).encode()),
        ("dlq.source.partition", str(origin.get("partition", "")).encode()),
        ("dlq.source.offset", str(origin.get("offset", "")).encode()),
        *extra,
    ]
    return key, value, headers


def to_incoming(record: Any) -> Incoming:
    """A consumed record, decoded once at the edge; decode failures become dead letters."""
    provenance, raw, headers = _origin(record)
    try:
        datum, version = wire.decode(raw)
    except wire.UndecodableMessage as error:
        return Incoming(
            None, raw, provenance, str(error), type(error).__name__, record.key, headers
        )
    provenance["schema_version"] = version
    return Incoming(datum, raw, provenance, key=record.key, headers=headers)


def history_incoming(record: Any) -> Incoming:
    """A consumed history-topic record (decoded by `IngestService.store`)."""
    provenance, raw, headers = _origin(record)
    return Incoming(None, raw, provenance, key=record.key, headers=headers)


def _origin(record: Any) -> tuple[dict[str, Any], bytes, tuple[tuple[str, bytes | None], ...]]:
    provenance = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
    raw: bytes = record.value if record.value is not None else b""
    return provenance, raw, tuple(record.headers or ())


class ResumeFromStore(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, take the partitions over in the store (fencing their previous
    writer), then seek each to the offset after the last one the store holds.

    The ledger rows are committed with the events, so the store, not the group's
    committed offsets, says where to go on: a batch stored but not yet committed
    to Kafka is not read again.
    """

    def __init__(self, consumer: KafkaConsumer, service: IngestService, backoff: Backoff) -> None:
        self.consumer = consumer
        self.service = service
        self.backoff = backoff

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.service.release([f"{tp.topic}:{tp.partition}" for tp in revoked])

    def on_partitions_assigned(self, assigned: Any) -> None:
        sources = [f"{tp.topic}:{tp.partition}" for tp in assigned]
        # A store away now is waited for: without the take-over every append is refused.
        self.backoff.retry(lambda: self.service.take_over(sources), "taking partitions over")
        ends = self.backoff.retry(lambda: self.service.stored_ends(sources),
                                  "reading where the store stands")
        for tp in assigned:
            end = ends.get(f"{tp.topic}:{tp.partition}")
            if end is not None:
                self.consumer.seek(tp, end + 1)


def group_partitions(partitions: Any, group: int, groups: int) -> list[int]:
    """The partitions of partition group `group` of `groups` (see `Settings.group_of`)."""
    return sorted(p for p in partitions if p % groups == group)


class KafkaIngestConsumer:
    """One member of the ingest consumer group (of the input topic, or of the history topic).

    With `history`, the topic is the router's history topic and its records are
    stored as routed (the store writer); otherwise contract records are ingested
    directly. With `store_group` (group, groups), the member is assigned that
    partition group's partitions (its one store writer) instead of joining the
    group's rebalancing; it still commits its offsets under `group_id`.
    """

    def __init__(
        self,
        service: IngestService,
        bootstrap_servers: str,
        topic: str,
        group_id: str,
        *,
        max_poll_records: int = STORE_BATCH,
        client_id: str | None = None,
        max_poll_interval_ms: int = 300_000,
        session_timeout_ms: int = 10_000,
        backoff: Backoff | None = None,
        history: bool = False,
        store_group: tuple[int, int] | None = None,
        batch_wait_ms: int = 0,
    ) -> None:
        self.service = service
        self.topic = topic
        self.history = history
        self.store_group = store_group
        self.counters = ConsumerCounters()
        self.backoff = backoff or Backoff()
        self._fence_checked = time.monotonic()
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            client_id=client_id or f"casehistory-ingest-{threading.get_native_id()}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Records of aborted upstream transactions are never ingested.
            isolation_level="read_committed",
            **{**STORE_FETCH, "max_poll_records": max_poll_records},
            # With `batch_wait_ms`, the broker holds a fetch until a batch's worth of
            # records is there or that long has passed: a batch costs a fixed part (lookups,
            # a transaction, a commit) that a trickle of records would pay every few events.
            fetch_min_bytes=BATCH_BYTES if batch_wait_ms else 1,
            fetch_max_wait_ms=batch_wait_ms or 500,
            # A crashed member's partitions move to the others after this long.
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(500, session_timeout_ms // 5),
            max_poll_interval_ms=max_poll_interval_ms,
            # After a broker restart, try again within seconds rather than half a minute.
            reconnect_backoff_max_ms=5000,
        )
        resume = ResumeFromStore(self.consumer, service, self.backoff)
        if store_group is None:
            self.consumer.subscribe([topic], listener=resume)
        else:  # a partition group's one store writer: no rebalancing, offsets under group_id
            partitions = group_partitions(self.consumer.partitions_for_topic(topic), *store_group)
            if not partitions:
                raise ValueError(f"{topic} has no partition in store group {store_group[0]}")
            assigned = [TopicPartition(topic, p) for p in partitions]
            self.consumer.assign(assigned)
            resume.on_partitions_assigned(assigned)

    def poll_once(self, timeout_ms: int = 500, stop: threading.Event | None = None) -> int:
        """Process one poll's records as one batch; returns how many were consumed.

        Transient faults are waited out (see the module's error policy); raises
        `Stopped` if `stop` is set meanwhile, with nothing of the batch committed.
        """
        polled = self.backoff.retry(lambda: self.consumer.poll(timeout_ms=timeout_ms),
                                    "polling", stop)
        records = [record for batch in polled.values() for record in batch]
        if not records:
            self._check_fence_when_idle(stop)
            return 0
        try:
            if self.history:
                report = self.service.store(
                    [history_incoming(r) for r in records], self.backoff, stop
                )
            else:
                report = self.service.ingest([to_incoming(r) for r in records], self.backoff, stop)
        except WriterFenced:
            if self.store_group is not None:
                raise  # another writer runs this group: this one must stop
            # This member lost partitions of the batch in a rebalance it has not seen yet;
            # their new owner stores them. Read again whatever is still assigned here.
            self.counters.batches_fenced += 1
            log.warning("batch refused: a newer member took over its partitions")
            assigned = self.consumer.assignment()
            for tp, batch in polled.items():
                if batch and tp in assigned:
                    self.consumer.seek(tp, batch[0].offset)
            return 0
        finally:
            self.counters.transient_faults = self.backoff.faults
        self.counters.add(report)
        offsets = {
            TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(batch[-1].offset + 1, "", -1)
            for tp, batch in polled.items()
            if batch
        }
        self._commit(offsets, stop)
        self.counters.lag = self._lag()
        return len(records)

    def _commit(
        self, offsets: dict[TopicPartition, OffsetAndMetadata], stop: threading.Event | None
    ) -> None:
        try:
            self.backoff.retry(lambda: self.consumer.commit(offsets=offsets),
                               "committing offsets", stop)
        except REBALANCED as error:
            # The batch took longer than the group waits (e.g. a lock); its events are
            # stored, and the next owner of its partitions re-reads it as duplicates.
            self.counters.commits_refused += 1
            log.warning("offsets not committed, the group rebalanced (%s); rejoining",
                        type(error).__name__)
        finally:
            self.counters.transient_faults = self.backoff.faults

    def _lag(self) -> int:
        """Records behind the partitions' high watermarks, as of the last fetch (no request)."""
        lag = 0
        try:
            for tp in self.consumer.assignment():
                end = self.consumer.highwater(tp)
                position = self.consumer.position(tp)
                if end is not None and position is not None:
                    lag += max(0, end - position)
        except KafkaError:  # partitions moved or the broker is away: keep the last figure
            return self.counters.lag
        return lag

    def _check_fence_when_idle(self, stop: threading.Event | None) -> None:
        """A partition group's writer with nothing to append still learns, within
        `IDLE_FENCE_CHECK_S`, that a newer writer took its group over (`WriterFenced`)."""
        now = time.monotonic()
        if self.store_group is None or now - self._fence_checked < IDLE_FENCE_CHECK_S:
            return
        self._fence_checked = now
        self.backoff.retry(self.service.check_still_writer, "checking the writer fence", stop)

    def run(
        self,
        stop: threading.Event,
        idle_exit_seconds: float | None = None,
        on_batch: Callable[[ConsumerCounters], None] | None = None,
    ) -> ConsumerCounters:
        """Consume until `stop` is set (or, if given, after that long without records)."""
        run_batches(lambda: self.poll_once(stop=stop), stop, idle_exit_seconds,
                    None if on_batch is None else lambda: on_batch(self.counters))
        return self.counters

    def close(self) -> None:
        self.consumer.close()


def run_batches(
    poll: Callable[[], int],
    stop: threading.Event,
    idle_exit_seconds: float | None,
    after_batch: Callable[[], None] | None,
) -> None:
    """Call `poll` (records handled) until `stop` is set, it raises `Stopped`, or, if given,
    `idle_exit_seconds` pass without records; `after_batch` follows each batch with records."""
    last_record = time.monotonic()
    while not stop.is_set():
        try:
            with collections_after_batch():
                consumed = poll()
        except Stopped:
            return
        if consumed:
            last_record = time.monotonic()
            if after_batch is not None:
                after_batch()
        elif idle_exit_seconds is not None and (
            time.monotonic() - last_record > idle_exit_seconds
        ):
            return
