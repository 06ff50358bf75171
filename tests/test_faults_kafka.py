"""Faults on the Kafka path, each against a real broker (and a real store).

A dead letter the broker refuses, a record no producer call may copy as it is,
a batch that outlasts the group's patience, upstream transactions that abort,
and a reconciliation that races running consumers.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from casehistory.bootstrap import Engine, build
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.consumers.kafka_ingest import (
    KafkaDeadLetters,
    KafkaIngestConsumer,
    dead_letter_producer,
)
from casehistory.consumers.reconcile import reconcile
from casehistory.consumers.retry import Backoff, DeadLetterNotSent
from casehistory.schemas import wire
from casehistory.schemas.contract import ContractEvent, validate
from casehistory.settings import Settings
from tests.factories import record, started, stopped

pytestmark = pytest.mark.kafka

PSEUDONYM_KEY = "ab" * 32
CPR = "6101901234"


def encoded(r: dict) -> bytes:
    event = validate(r)
    assert isinstance(event, ContractEvent)
    return wire.encode(event.avro_datum())


def new_topic(bootstrap: str, partitions: int = 1, **configs: str) -> str:
    name = f"faults-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [NewTopic(name, partitions, 1, topic_configs=configs)], wait_for_metadata=True
        )
    finally:
        admin.close()
    return name


def set_topic_config(bootstrap: str, topic: str, **configs: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)])
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, *values: bytes, **config: object) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **config)
    for value in values:
        producer.send(topic, key=b"k", value=value).get(timeout=30)
    producer.close()


def read_all(bootstrap: str, topic: str) -> list:
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        consumer_timeout_ms=4000, fetch_max_bytes=8 * 1024 * 1024,
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


def committed(bootstrap: str, topic: str, group: str) -> int | None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    try:
        return consumer.committed(TopicPartition(topic, 0))
    finally:
        consumer.close()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = build(
        Settings.load(
            {"CASEHISTORY_DATA_DIR": str(tmp_path), "CASEHISTORY_PSEUDONYM_KEY": PSEUDONYM_KEY}
        )
    )
    yield engine
    engine.close()


REFUSING = {"max.message.bytes": "64"}
"""A DLQ topic that refuses every letter (each is larger), even a cut copy."""
TAKING = {"max.message.bytes": str(1024 * 1024)}


def dlq_producer(bootstrap: str) -> KafkaProducer:
    """A dead-letter producer that gives up on a refused send within seconds."""
    return dead_letter_producer(
        bootstrap, request_timeout_ms=1500, delivery_timeout_ms=3000, retry_backoff_ms=100
    )


def run_in_thread(step: object) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(step())  # type: ignore[operator]
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def wait_for(condition: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def test_a_refused_dead_letter_fails_the_batch_until_the_dlq_takes_it(
    kafka_bootstrap: str, sqlite_engine: Engine
) -> None:
    """Issue 15 item 1: the batch is not committed, and not in the ledger, while the DLQ refuses."""
    topic = new_topic(kafka_bootstrap)
    dlq = new_topic(kafka_bootstrap, **REFUSING)
    produce(kafka_bootstrap, topic, encoded(record(started(date(2020, 1, 1)))), b"garbage")
    producer = dlq_producer(kafka_bootstrap)
    consumer = KafkaIngestConsumer(
        sqlite_engine.ingest_service(KafkaDeadLetters(producer, dlq, ack_timeout=10)),
        kafka_bootstrap, topic, topic + ".ingest",
        backoff=Backoff(first=0.5, longest=1.0),
    )
    stop = threading.Event()
    try:
        thread, outcome = run_in_thread(lambda: consumer.poll_once(timeout_ms=5000, stop=stop))
        wait_for(lambda: consumer.backoff.faults >= 1)
        assert committed(kafka_bootstrap, topic, topic + ".ingest") is None
        assert list(sqlite_engine.app.recorder.ledger()) == []  # type: ignore[attr-defined]
        progress = reconcile(kafka_bootstrap, topic, topic + ".ingest",
                             sqlite_engine.app.recorder.ledger)  # type: ignore[attr-defined]
        assert progress.outcomes["dead_lettered"] == 0 and progress.unaccounted == 0
        assert progress.not_yet_consumed == 2

        set_topic_config(kafka_bootstrap, dlq, **TAKING)
        thread.join(60)
        assert outcome == [2]
    finally:
        stop.set()
        consumer.close()
        producer.close()
    assert committed(kafka_bootstrap, topic, topic + ".ingest") == 2
    assert consumer.counters.transient_faults >= 1
    assert (consumer.counters.stored, consumer.counters.dead_lettered) == (1, 1)
    letters = read_all(kafka_bootstrap, dlq)
    assert [m.value for m in letters] == [b"garbage"]  # sent again by the retry, once taken
    result = reconcile(kafka_bootstrap, topic, topic + ".ingest",
                       sqlite_engine.app.recorder.ledger)  # type: ignore[attr-defined]
    assert result.outcomes == {"stored": 1, "dead_lettered": 1} and result.unaccounted == 0


def test_after_a_refused_dead_letter_the_cache_holds_no_unsaved_fact(
    kafka_bootstrap: str, sqlite_engine: Engine
) -> None:
    """Issue 15 item 4: a failed attempt must not leave a recorded-but-unsaved fact cached."""
    dlq = new_topic(kafka_bootstrap, **REFUSING)
    producer = dlq_producer(kafka_bootstrap)
    service = sqlite_engine.ingest_service(KafkaDeadLetters(producer, dlq, ack_timeout=10))
    from tests.test_ingest import incoming

    first = record(started(date(2020, 1, 1)))
    try:
        assert service.ingest(incoming(first)).stored == 1  # the citizen is now cached
        later = record(stopped(date(2021, 1, 1)))
        conflicting = {**first, "effective_date": "2020-02-01"}
        with pytest.raises(DeadLetterNotSent):
            service.ingest(incoming(later, conflicting))
        set_topic_config(kafka_bootstrap, dlq, **TAKING)
        again = service.ingest(incoming(later, conflicting))
    finally:
        producer.close()
    assert (again.stored, again.duplicate, again.rejected) == (1, 0, 1)
    other = build(sqlite_engine.settings)  # nothing cached: what the store holds
    try:
        citizen = other.app.find(other.vault.citizen_key(CPR))
        assert citizen is not None
        assert [f.event_id for f in citizen.facts] == [first["event_id"], later["event_id"]]
    finally:
        other.close()


class _Null(bytes):
    """Stands for a null header value where kafka-python's producer checks for bytes."""


NULL = _Null()


@pytest.fixture
def null_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let this process's producers write null header values, as other Kafka clients can.

    kafka-python's `send()` accepts only bytes, and its batch builder writes a
    value of None as a null header: `NULL` passes the check and becomes None here.
    """
    from kafka.producer.producer_batch import ProducerBatch

    append = ProducerBatch.try_append

    def try_append(self: ProducerBatch, timestamp_ms: int, key: bytes, value: bytes,
                   headers: list, now: float | None = None) -> object:
        records = self.records
        real = records.append

        class Nulling:
            def __getattr__(self, name: str) -> object:
                return getattr(records, name)

            def append(self, t: int, k: bytes, v: bytes, h: list) -> object:
                return real(t, k, v, [(n, None if x is NULL else x) for n, x in h])

        self.records = Nulling()
        try:
            return append(self, timestamp_ms, key, value, headers, now)
        finally:
            self.records = records

    monkeypatch.setattr(ProducerBatch, "try_append", try_append)


def test_a_null_header_and_an_oversize_copy_are_dead_lettered_and_the_consumer_goes_on(
    kafka_bootstrap: str, sqlite_engine: Engine, null_headers: None
) -> None:
    """Issue 15 item 2: neither may stop the group; the DLQ gets a sanitised or cut copy."""
    big = 2 * 1024 * 1024
    topic = new_topic(kafka_bootstrap, **{"max.message.bytes": str(big + 4096)})
    dlq = new_topic(kafka_bootstrap)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all",
                             max_request_size=big + 4096)
    producer.send(topic, key=b"k", value=b"not avro", headers=[("trace", NULL), ("ok", b"1")])
    producer.flush()
    oversize = b"\xc3\x01" + b"x" * (big - 10)  # undecodable, larger than a DLQ send allows
    producer.send(topic, key=b"k", value=oversize).get(timeout=30)
    producer.send(topic, key=b"k", value=encoded(record(started(date(2020, 1, 1))))).get(30)
    producer.close()

    dlq_out = dead_letter_producer(kafka_bootstrap)
    consumer = KafkaIngestConsumer(
        sqlite_engine.ingest_service(KafkaDeadLetters(dlq_out, dlq)),
        kafka_bootstrap, topic, topic + ".ingest", max_poll_records=1,
    )
    try:
        deadline = time.monotonic() + 60
        while consumer.counters.consumed < 3 and time.monotonic() < deadline:
            consumer.poll_once()
    finally:
        consumer.close()
        dlq_out.close()
    assert (consumer.counters.stored, consumer.counters.dead_lettered) == (1, 2)
    letters = {dict(m.headers)["dlq.source.offset"]: m for m in read_all(kafka_bootstrap, dlq)}
    nulled, cut = letters[b"0"], letters[b"1"]
    assert nulled.value == b"not avro"
    assert dict(nulled.headers)["trace"] == b"" and dict(nulled.headers)["ok"] == b"1"
    assert dict(nulled.headers)["dlq.null-headers"] == b"trace"
    assert dict(cut.headers)["dlq.reason"] == b"undecodable"
    assert dict(cut.headers)["dlq.truncated"].startswith(f"{len(oversize)} bytes".encode())
    assert 0 < len(cut.value) < len(oversize) and oversize.startswith(cut.value)


def test_a_commit_refused_after_a_long_batch_rejoins_and_goes_on(
    kafka_bootstrap: str, postgres_dsn: str, tmp_path: Path
) -> None:
    """Issue 15 item 4: a batch that waits on a lock past max.poll.interval does not end the
    member. Issue 14 item 3: on rejoining it resumes after the offset the store holds, so
    the stored batch whose commit the group refused is not read again."""
    topic = new_topic(kafka_bootstrap)
    events = [record(started(date(2020, 1, 1))), record(stopped(date(2021, 1, 1)))]
    produce(kafka_bootstrap, topic, *(encoded(e) for e in events))
    settings = Settings.load({"CASEHISTORY_DATA_DIR": str(tmp_path),
                              "CASEHISTORY_PSEUDONYM_KEY": PSEUDONYM_KEY,
                              "CASEHISTORY_STORE": postgres_dsn})
    engine = build(settings)
    consumer = KafkaIngestConsumer(
        engine.ingest_service(DeadLetterList()), kafka_bootstrap, topic, topic + ".ingest",
        max_poll_records=1, max_poll_interval_ms=3000, session_timeout_ms=6000,
    )
    lock = psycopg.connect(postgres_dsn)
    try:
        lock.execute("LOCK TABLE casehistory_events IN EXCLUSIVE MODE")  # another writer's lock
        thread, outcome = run_in_thread(lambda: consumer.poll_once(timeout_ms=10_000))
        time.sleep(8)  # past max.poll.interval: the member is dropped from the group
        lock.rollback()
        thread.join(60)
        assert outcome == [1], outcome
        assert consumer.counters.commits_refused == 1
        deadline = time.monotonic() + 60
        while consumer.counters.stored < 2 and time.monotonic() < deadline:
            consumer.poll_once()
    finally:
        lock.close()
        consumer.close()
    try:
        assert consumer.counters.stored == 2 and consumer.counters.duplicate == 0
        result = reconcile(kafka_bootstrap, topic, topic + ".ingest",
                           engine.app.recorder.ledger)  # type: ignore[attr-defined]
        assert result.unaccounted == 0 and result.not_yet_consumed == 0
        assert result.outcomes == {"stored": 2}
    finally:
        engine.close()


def test_records_of_aborted_transactions_are_not_ingested_nor_their_markers_gaps(
    kafka_bootstrap: str, sqlite_engine: Engine
) -> None:
    """Issue 15 item 5: read_committed; transaction markers are no reconcile gaps."""
    topic = new_topic(kafka_bootstrap)
    kept = [record(started(date(2020, 1, 1))), record(stopped(date(2020, 6, 1)))]
    aborted = [record(started(date(2022, 1, 1)))]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap,
                             transactional_id=f"upstream-{uuid.uuid4().hex[:6]}")
    producer.init_transactions()
    for events, commit in ((kept[:1], True), (aborted, False), (kept[1:], True)):
        producer.begin_transaction()
        for event in events:
            producer.send(topic, key=b"k", value=encoded(event))
        producer.flush()
        producer.commit_transaction() if commit else producer.abort_transaction()
    producer.close()

    consumer = KafkaIngestConsumer(
        sqlite_engine.ingest_service(DeadLetterList()), kafka_bootstrap, topic, topic + ".ingest"
    )
    try:
        deadline = time.monotonic() + 30
        while consumer.counters.consumed < 2 and time.monotonic() < deadline:
            consumer.poll_once()
        consumer.poll_once(timeout_ms=2000)
    finally:
        consumer.close()
    citizen = sqlite_engine.app.find(sqlite_engine.vault.citizen_key(CPR))
    assert citizen is not None
    assert [f.event_id for f in citizen.facts] == [e["event_id"] for e in kept]
    result = reconcile(kafka_bootstrap, topic, topic + ".ingest",
                       sqlite_engine.app.recorder.ledger)  # type: ignore[attr-defined]
    assert result.outcomes == {"stored": 2}
    assert result.unaccounted == 0 and result.not_yet_consumed == 0
    # offsets 0 (kept), 1 marker, 2 aborted, 3 marker, 4 kept, 5 marker
    assert result.partitions[0].no_record == 3 and result.partitions[0].end == 6


def test_reconcile_never_reports_lost_records_while_consumers_commit(
    kafka_bootstrap: str, sqlite_engine: Engine
) -> None:
    """Issue 15 item 7: a batch committed between reading the ledger and the commits is no gap.

    The ledger given to `reconcile` lets the consumer ingest and commit one more
    batch right after the ledger's rows were read: the interleaving that, with
    the ledger read first, showed that batch as lost.
    """
    topic = new_topic(kafka_bootstrap)
    produce(kafka_bootstrap, topic,
            *(encoded(record(started(date(2020, m, 1)))) for m in range(1, 7)))
    consumer = KafkaIngestConsumer(
        sqlite_engine.ingest_service(DeadLetterList()), kafka_bootstrap, topic,
        topic + ".ingest", max_poll_records=2,
    )
    recorder = sqlite_engine.app.recorder

    def ledger_then_a_commit() -> Iterator:
        rows = list(recorder.ledger())  # type: ignore[attr-defined]
        while not consumer.poll_once():
            pass
        yield from rows

    try:
        while not consumer.poll_once():
            pass
        racing = reconcile(kafka_bootstrap, topic, topic + ".ingest", ledger_then_a_commit)
    finally:
        consumer.close()
    assert racing.unaccounted == 0
    assert sum(racing.outcomes.values()) == 2 and racing.not_yet_consumed == 4
