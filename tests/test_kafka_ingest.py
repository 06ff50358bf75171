"""The Kafka path end to end against a real broker: nothing lost, nothing doubled.

Consumers run as separate `casehistory consume` processes in one consumer group,
exactly as deployed; the results are compared with the embedded ingest of the
same generated file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from casehistory.bootstrap import Engine, build
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.consumers.ingest import STORE_BATCH
from casehistory.consumers.kafka_ingest import KafkaDeadLetters, KafkaIngestConsumer
from casehistory.consumers.publisher import Publisher
from casehistory.consumers.reconcile import committed_records, reconcile, routed_ledger
from casehistory.consumers.topics import CHANGELOG_TOPIC, ensure_topics
from casehistory.entrypoints.cli.citizen_view import recorded_facts
from casehistory.entrypoints.cli.common import ingest_files
from casehistory.population import generator
from casehistory.projections.queries import durations_records
from casehistory.schemas import wire
from casehistory.schemas.contract import ContractEvent, validate
from casehistory.services.replay import checksum, replay_from_kafka, replay_target
from casehistory.settings import Settings
from tests.factories import meeting, record, started

pytestmark = pytest.mark.kafka

AS_OF = date(2026, 11, 1)
PSEUDONYM_KEY = "ab" * 32


def kafka_env(bootstrap: str, base: dict[str, str] | Path, topic: str) -> dict[str, str]:
    store = base if isinstance(base, dict) else {"CASEHISTORY_DATA_DIR": str(base)}
    return {
        **store,
        "CASEHISTORY_PSEUDONYM_KEY": PSEUDONYM_KEY,
        "CASEHISTORY_KAFKA_BOOTSTRAP": bootstrap,
        "CASEHISTORY_KAFKA_TOPIC": topic,
        "CASEHISTORY_KAFKA_DLQ_TOPIC": topic + ".dlq",
        "CASEHISTORY_KAFKA_GROUP": topic + ".ingest",
        "CASEHISTORY_KAFKA_HISTORY_TOPIC": topic + ".history",
        "CASEHISTORY_KAFKA_ROUTER_GROUP": topic + ".router",
        "CASEHISTORY_KAFKA_STORE_GROUP": topic + ".store",
    }


def per_citizen(engine: Engine) -> dict[str, dict]:
    engine.project()
    return {
        record["citizen_key"]: record for record in durations_records(engine.read_model(), AS_OF)
    }


def consumer_process(env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "casehistory.entrypoints.cli",
         "consume", "--partitions", "3", *extra],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def router_process(env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "casehistory.entrypoints.cli", "route", "--partitions", "3", *extra],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def history_values(bootstrap: str, topic: str) -> list[bytes]:
    """Every committed record value of a topic, from offset 0 to its current end."""
    return [record.value for record in committed_records(bootstrap, topic)]


def publish_file(env: dict[str, str], path: Path) -> None:
    settings = Settings.load(env)
    assert settings.kafka_bootstrap
    ensure_topics(settings.kafka_bootstrap, settings.kafka_topic, settings.kafka_dlq_topic, 3)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    with Publisher(settings.kafka_bootstrap, settings.kafka_topic, settings.pseudonym_key) as p:
        report = p.publish(records)
    assert report.sent > 0 and not report.failed


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    """A generated municipality and its per-citizen durations from the embedded ingest."""
    folder = tmp_path_factory.mktemp("embedded")
    path = folder / "population.jsonl"
    generator.write_jsonl(generator.generate_population(400, seed=11, until=AS_OF), path)
    engine = build(
        Settings.load(
            {
                "CASEHISTORY_DATA_DIR": str(folder / "store"),
                "CASEHISTORY_PSEUDONYM_KEY": PSEUDONYM_KEY,
            }
        )
    )
    try:
        ingest_files(engine, [path], DeadLetterList())
        return path, per_citizen(engine)
    finally:
        engine.close()


def finish(processes: list[subprocess.Popen[bytes]]) -> list[str]:
    outputs = []
    for process in processes:
        out, _ = process.communicate(timeout=180)
        outputs.append(out.decode())
        assert process.returncode == 0, out.decode()[-3000:]
    return outputs


@pytest.fixture
def published(
    kafka_bootstrap: str, store_env: dict[str, str], population: tuple[Path, dict[str, dict]]
) -> tuple[dict[str, str], str]:
    """The population published to a fresh topic; the settings env and the topic."""
    topic = f"events-{uuid.uuid4().hex[:8]}"
    env = kafka_env(kafka_bootstrap, store_env, topic)
    publish_file(env, population[0])
    return env, topic


def test_two_consumers_in_one_group_equal_the_embedded_ingest(
    kafka_bootstrap: str,
    published: tuple[dict[str, str], str],
    population: tuple[Path, dict[str, dict]],
) -> None:
    env, topic = published
    expected = population[1]
    # One member lets the broker answer at once: the same outcome, in smaller batches.
    finish([consumer_process(env, "--idle-exit", "6", *wait)
            for wait in ([], ["--batch-wait-ms", "0"])])
    engine = build(Settings.load(env))
    try:
        assert per_citizen(engine) == expected
        result = reconcile(kafka_bootstrap, topic, topic + ".ingest", engine.app.recorder.ledger)
    finally:
        engine.close()
    assert result.unaccounted == 0 and result.not_yet_consumed == 0
    assert result.outcomes["stored"] > 0 and result.outcomes["duplicate"] > 0


def test_a_consumer_killed_mid_stream_loses_and_doubles_nothing(
    kafka_bootstrap: str,
    published: tuple[dict[str, str], str],
    population: tuple[Path, dict[str, dict]],
) -> None:
    env, topic = published
    expected = population[1]
    slow = ("--max-poll-records", "50")
    victim, survivor = consumer_process(env, *slow), consumer_process(env, *slow)
    ledger = build(Settings.load(env))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(ledger.app.recorder.ledger()):
            time.sleep(0.1)
        assert any(ledger.app.recorder.ledger()), "consumers made no progress"
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        restarted = consumer_process(env, *slow)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            progress = reconcile(
                kafka_bootstrap, topic, topic + ".ingest", ledger.app.recorder.ledger
            )
            if progress.not_yet_consumed == 0:
                break
            time.sleep(1)
    finally:
        ledger.close()
    for process in (survivor, restarted):
        process.send_signal(signal.SIGTERM)  # a clean shutdown
    finish([survivor, restarted])

    engine = build(Settings.load(env))
    try:
        assert per_citizen(engine) == expected
        stored_ids = [
            f.event_id
            for key in engine.read_model().citizen_keys()
            if (c := engine.app.find(key))
            for f in c.facts
        ]
        result = reconcile(kafka_bootstrap, topic, topic + ".ingest", engine.app.recorder.ledger)
    finally:
        engine.close()
    assert len(stored_ids) == len(set(stored_ids))  # no event stored twice
    assert result.unaccounted == 0 and result.not_yet_consumed == 0


def test_invalid_and_undecodable_records_land_in_the_dlq_with_reasons(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = f"events-{uuid.uuid4().hex[:8]}"
    env = kafka_env(kafka_bootstrap, tmp_path, topic)
    ensure_topics(kafka_bootstrap, topic, topic + ".dlq", 3)
    good = record(started(date(2020, 1, 1)))
    event = validate(good)
    assert isinstance(event, ContractEvent)
    bad_cpr = wire.encode({**event.avro_datum(), "cpr": "6113901234"})  # month 13
    unknown_schema = b"\xc3\x01" + b"\x00" * 8 + b"\x02"
    garbage = b"not avro at all"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for value in (wire.encode(event.avro_datum()), bad_cpr, unknown_schema, garbage):
        producer.send(topic, key=b"k", value=value, headers=[("trace", b"t-1")])
    producer.flush()
    producer.close()

    engine = build(Settings.load(env))
    dlq_producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    consumer = KafkaIngestConsumer(
        engine.ingest_service(KafkaDeadLetters(dlq_producer, topic + ".dlq")),
        kafka_bootstrap,
        topic,
        topic + ".ingest",
        max_poll_records=1,
    )
    lags = []
    try:
        deadline = time.monotonic() + 30
        while consumer.counters.consumed < 4 and time.monotonic() < deadline:
            if consumer.poll_once():
                lags.append(consumer.counters.lag)
    finally:
        consumer.close()
        dlq_producer.close()
        engine.close()
    assert (consumer.counters.stored, consumer.counters.dead_lettered) == (1, 3)
    assert lags[0] > 0 and lags[-1] == 0  # behind the high watermark, then caught up

    dlq = KafkaConsumer(
        topic + ".dlq",
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    letters = list(dlq)
    dlq.close()
    by_reason = {dict(m.headers)["dlq.reason"].decode(): m for m in letters}
    assert set(by_reason) == {"invalid_cpr", "undecodable"} and len(letters) == 3
    assert {m.value for m in letters} == {bad_cpr, unknown_schema, garbage}  # original bytes
    for message in letters:
        headers = dict(message.headers)
        assert headers["trace"] == b"t-1"  # original headers kept
        assert headers["dlq.source.topic"].decode() == topic
        assert headers["dlq.source.offset"].isdigit()
        assert headers["dlq.exception"]
        assert b"6113901234" not in headers["dlq.message"]
    exceptions = {dict(m.headers)["dlq.exception"] for m in letters}
    assert {b"UnknownSchema", b"UndecodableMessage", b"ValidationError"} == exceptions


def test_a_record_written_with_an_older_schema_is_read_by_the_current_reader(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = f"events-{uuid.uuid4().hex[:8]}"
    env = kafka_env(kafka_bootstrap, tmp_path, topic)
    ensure_topics(kafka_bootstrap, topic, topic + ".dlq", 3)
    settings = Settings.load(env)
    old, new = record(started(date(2019, 1, 1))), record(started(date(2021, 1, 1)))
    held = record(meeting(date(2021, 1, 5), "first", "jc-4711"))
    with Publisher(kafka_bootstrap, topic, settings.pseudonym_key, schema_version=1) as v1:
        assert v1.publish([old]).sent == 1
    with Publisher(kafka_bootstrap, topic, settings.pseudonym_key, schema_version=2) as v2:
        refused = v2.publish([held])  # v2 knows no MeetingHeld: refused before sending
        assert refused.sent == 0
        assert [r.reason for _, r in refused.rejected] == ["not_in_schema_version"]
    with Publisher(kafka_bootstrap, topic, settings.pseudonym_key) as current:
        batch = {**new, "migration_batch": "fasit-conversion-2018"}
        assert current.publish([batch, held]).sent == 2

    engine = build(settings)
    consumer = KafkaIngestConsumer(
        engine.ingest_service(DeadLetterList()), kafka_bootstrap, topic, topic + ".ingest"
    )
    try:
        deadline = time.monotonic() + 30
        while consumer.counters.consumed < 3 and time.monotonic() < deadline:
            consumer.poll_once()
        citizen = engine.app.find(engine.vault.citizen_key("6101901234"))
        assert citizen is not None
        assert [f.effective_date for f in citizen.facts] == [
            date(2019, 1, 1),
            date(2021, 1, 1),
            date(2021, 1, 5),
        ]
        assert citizen.timeline().meetings[0].caseworker == "jc-4711"
        provenance = [e.provenance for e in recorded_facts(engine.app, citizen)]
        assert [p["schema_version"] for p in provenance] == [1, 3, 3]
        assert provenance[1]["migration_batch"] == "fasit-conversion-2018"
    finally:
        consumer.close()
        engine.close()


def test_router_and_store_writers_equal_the_embedded_ingest_and_replay_from_history(
    kafka_bootstrap: str,
    published: tuple[dict[str, str], str],
    population: tuple[Path, dict[str, dict]],
    tmp_path: Path,
) -> None:
    """Issue #14 item 1: input topic -> router -> history topic (no CPR) -> store writers;
    the store equals the embedded ingest, and a replay of the history topic equals it."""
    env, topic = published
    routed = finish([router_process(env, "--idle-exit", "10")])
    finish([consumer_process(env, "--from-history", "--idle-exit", "6") for _ in range(2)])
    values = history_values(kafka_bootstrap, topic + ".history")
    records = [json.loads(line) for line in population[0].read_text().splitlines()]
    cprs = {r["cpr"] for r in records if isinstance(r.get("cpr"), str) and len(r["cpr"]) == 10}
    everything = b"\n".join(values)
    assert values and [c for c in cprs if c.encode() in everything] == []
    assert f"forwarded {len(values):,}" in routed[0]
    original = build(Settings.load(env))
    recovered = build(replay_target(Settings.load(env), str(tmp_path / "recovered")))
    try:
        assert per_citizen(original) == population[1]
        counts = replay_from_kafka(recovered, kafka_bootstrap, topic + ".history")
        recovered.project()
        assert counts.received == len(values) and counts.stored > 0 and counts.duplicate > 0
        assert checksum(recovered).checksum == checksum(original).checksum
    finally:
        original.close()
        recovered.close()


def test_a_store_writer_and_a_replay_take_a_backlog_in_batches_of_store_batch_records(
    kafka_bootstrap: str, published: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    """A backlog on the history topic is stored `STORE_BATCH` records per transaction, not
    as many as kafka-python's defaults fetch (1 MiB of a partition, 500 records a poll)."""
    env, topic = published
    finish([router_process(env, "--partitions", "1", "--idle-exit", "6")])
    values = history_values(kafka_bootstrap, topic + ".history")
    assert sum(map(len, values)) > 1024 * 1024 and len(values) <= STORE_BATCH
    engine = build(Settings.load(env))
    consumer = KafkaIngestConsumer(
        engine.ingest_service(DeadLetterList()), kafka_bootstrap, topic + ".history",
        topic + ".store", history=True,
    )  # fmt: skip
    recovered = build(replay_target(Settings.load(env), str(tmp_path / "recovered")))
    try:
        deadline = time.monotonic() + 60
        while not (first := consumer.poll_once()) and time.monotonic() < deadline:
            pass
        assert first == len(values)
        assert consumer.counters.batches == 1 and consumer.counters.received == len(values)
        assert consumer.counters.stored > 0
        batches: list[int] = []
        replay_from_kafka(recovered, kafka_bootstrap, topic + ".history", on_batch=batches.append)
        assert batches == [len(values)]
    finally:
        consumer.close()
        engine.close()
        recovered.close()


def test_a_killed_router_and_store_writer_leave_every_input_offset_accounted_for_once(
    kafka_bootstrap: str,
    published: tuple[dict[str, str], str],
    population: tuple[Path, dict[str, dict]],
) -> None:
    """Issue #14 items 3 and 6: SIGKILL a router and a store writer mid-stream, restart them;
    each input offset is forwarded or dead-lettered exactly once, each history offset stored,
    duplicate or dead-lettered, and the store equals the embedded ingest."""
    env, topic = published
    with KafkaProducer(bootstrap_servers=kafka_bootstrap) as producer:  # an undecodable one
        producer.send(topic, b"not a contract record").get(timeout=30)
    slow = ("--max-poll-records", "50")
    router, writer = router_process(env, *slow), consumer_process(env, "--from-history", *slow)
    engine = build(Settings.load(env))
    try:
        ledger = engine.app.recorder.ledger  # type: ignore[attr-defined]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(ledger(topic + ".history:")):
            time.sleep(0.1)
        assert any(ledger(topic + ".history:")), "no progress"
        for victim in (router, writer):
            victim.send_signal(signal.SIGKILL)
            victim.wait()
        # The restarted members wait out the dead ones' sessions and open transaction.
        finish([router_process(env, "--idle-exit", "30"),
                consumer_process(env, "--from-history", "--idle-exit", "40")])
        assert per_citizen(engine) == population[1]
        routed = routed_ledger(kafka_bootstrap, topic, topic + ".history", topic + ".dlq",
                               engine.app.mapper.cipher)
        positions = [(entry.source, entry.position) for entry in routed]
        assert len(positions) == len(set(positions))  # no input record routed twice
        inputs = reconcile(kafka_bootstrap, topic, topic + ".router", lambda: routed)
        stored = reconcile(kafka_bootstrap, topic + ".history", topic + ".store",
                           lambda: ledger(topic + ".history:"))
    finally:
        engine.close()
    assert inputs.unaccounted == 0 and inputs.not_yet_consumed == 0
    assert inputs.outcomes["forwarded"] > 0 and inputs.outcomes["dead_lettered"] == 1
    assert sum(inputs.outcomes.values()) == sum(p.end - p.log_start - p.no_record
                                                for p in inputs.partitions)
    assert stored.unaccounted == 0 and stored.not_yet_consumed == 0
    assert sum(stored.outcomes.values()) == inputs.outcomes["forwarded"]


def test_project_changelog_publishes_current_rows_to_a_compacted_topic(
    kafka_bootstrap: str, tmp_path: Path, population: tuple[Path, dict[str, dict]]
) -> None:
    path, expected = population
    env = kafka_env(kafka_bootstrap, tmp_path, f"events-{uuid.uuid4().hex[:8]}")
    engine = build(Settings.load(env))
    try:
        ingest_files(engine, [path], DeadLetterList())
    finally:
        engine.close()
    done = subprocess.run(
        [sys.executable, "-m", "casehistory.entrypoints.cli", "project", "--changelog"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, CHANGELOG_TOPIC)])
    admin.close()
    assert "cleanup.policy" in str(configs) and "compact" in str(configs)
    changelog = KafkaConsumer(
        CHANGELOG_TOPIC,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    latest = {m.key.decode(): json.loads(m.value) for m in changelog}
    changelog.close()
    assert set(expected) <= set(latest)  # the topic is shared by this module's tests
    engine = build(Settings.load(env))
    try:
        for key in expected:
            assert latest[key] == engine.read_model().row("durations_citizen", key)
    finally:
        engine.close()
