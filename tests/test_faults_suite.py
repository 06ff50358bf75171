"""The fault suite: real `casehistory consume` processes, a real broker and a real PostgreSQL.

Consumers are SIGKILLed again and again mid-stream; the broker and the database
restart under them; bad input of every kind arrives through files and through
Kafka. Afterwards every read model equals a clean run's, `reconcile` finds no
gap, nothing is stored twice, and every bad record is dead-lettered with its
reason.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer

from casehistory.bootstrap import READ_MODEL, Engine, build
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.consumers.publisher import Publisher
from casehistory.consumers.reconcile import Reconciliation, reconcile
from casehistory.consumers.topics import ensure_topics
from casehistory.devservices import kafka as devkafka
from casehistory.devservices import postgres as devpostgres
from casehistory.entrypoints.cli.common import ingest_files
from casehistory.population import generator
from casehistory.projections.queries import durations_records
from casehistory.schemas import wire
from casehistory.schemas.contract import REJECTION_REASONS, ContractEvent, validate
from casehistory.services.replay import checksum
from casehistory.settings import Settings
from tests.factories import record, started, stopped

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

AS_OF = date(2026, 11, 1)
PSEUDONYM_KEY = "ab" * 32
STAFF_KEY = "cd" * 32  # caseworker pseudonyms in the read model: equal in every run compared
KILLS = 20


@dataclass(frozen=True)
class CleanRun:
    """A population file and what an undisturbed embedded ingest made of it."""

    records: list[dict[str, Any]]
    checksums: dict[str, str]
    durations: dict[str, dict[str, Any]]
    stored: int


def per_citizen(engine: Engine) -> dict[str, dict[str, Any]]:
    return {r["citizen_key"]: r for r in durations_records(engine.read_model(), AS_OF)}


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> CleanRun:
    return clean_run(tmp_path_factory.mktemp("clean"), citizens=160)


@pytest.fixture(scope="module")
def small_clean(tmp_path_factory: pytest.TempPathFactory) -> CleanRun:
    """A smaller population, for the runs that wait on a restarting server."""
    return clean_run(tmp_path_factory.mktemp("small"), citizens=60)


def clean_run(folder: Path, citizens: int) -> CleanRun:
    path = folder / "population.jsonl"
    generator.write_jsonl(generator.generate_population(citizens, seed=23, until=AS_OF), path)
    engine = build(Settings.load({"CASEHISTORY_DATA_DIR": str(folder / "store"),
                                  "CASEHISTORY_PSEUDONYM_KEY": PSEUDONYM_KEY,
                                  "CASEHISTORY_STAFF_KEY": STAFF_KEY}))
    try:
        report = ingest_files(engine, [path], DeadLetterList())
        engine.project()
        return CleanRun(
            [json.loads(line) for line in path.read_text().splitlines()],
            {READ_MODEL: checksum(engine).checksum},
            per_citizen(engine),
            report.stored,
        )
    finally:
        engine.close()


def settings_env(bootstrap: str, store: str, data_dir: Path) -> dict[str, str]:
    topic = f"suite-{uuid.uuid4().hex[:8]}"
    return {
        "CASEHISTORY_DATA_DIR": str(data_dir),
        "CASEHISTORY_STORE": store,
        "CASEHISTORY_PSEUDONYM_KEY": PSEUDONYM_KEY,
        "CASEHISTORY_STAFF_KEY": STAFF_KEY,
        "CASEHISTORY_KAFKA_BOOTSTRAP": bootstrap,
        "CASEHISTORY_KAFKA_TOPIC": topic,
        "CASEHISTORY_KAFKA_DLQ_TOPIC": topic + ".dlq",
        "CASEHISTORY_KAFKA_GROUP": topic + ".ingest",
    }


def consumer(env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "casehistory.entrypoints.cli", "consume", "--partitions", "3",
             "--max-poll-records", "40", "--session-timeout-ms", "6000", *extra],
            env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
        )


def publish(env: dict[str, str], records: list[dict[str, Any]]) -> None:
    settings = Settings.load(env)
    assert settings.kafka_bootstrap
    with Publisher(settings.kafka_bootstrap, settings.kafka_topic, settings.pseudonym_key,
                   retries=20) as publisher:
        report = publisher.publish(records)
    assert not report.failed, report.failed[:3]


def chunks(items: list[Any], count: int) -> Iterator[list[Any]]:
    size = -(-len(items) // count)
    for first in range(0, len(items), size):
        yield items[first : first + size]


def drained(env: dict[str, str], seconds: float = 240) -> Reconciliation:
    """Wait until the group has committed every record; the final reconciliation."""
    settings = Settings.load(env)
    assert settings.kafka_bootstrap
    engine = build(settings)
    recorder: Any = engine.app.recorder
    try:
        deadline = time.monotonic() + seconds
        while True:
            result = reconcile(settings.kafka_bootstrap, settings.kafka_topic,
                               settings.kafka_group, recorder.ledger)
            if result.not_yet_consumed == 0 and result.partitions:
                return result
            assert time.monotonic() < deadline, f"not drained: {result}"
            time.sleep(1)
    finally:
        engine.close()


def stop_all(processes: list[subprocess.Popen[bytes]], log: Path) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=120)
        assert process.returncode == 0, log.read_text()[-4000:]


def assert_equals_clean_run(env: dict[str, str], clean: CleanRun) -> None:
    engine = build(Settings.load(env))
    try:
        engine.project()
        assert per_citizen(engine) == clean.durations
        assert {READ_MODEL: checksum(engine).checksum} == clean.checksums
        ids = [
            f.event_id
            for key in clean.durations
            if (citizen := engine.app.find(key)) is not None
            for f in citizen.facts
        ]
        assert len(ids) == len(set(ids)) == clean.stored  # nothing lost, nothing doubled
    finally:
        engine.close()


def test_twenty_sigkills_of_consumer_group_members_lose_and_double_nothing(
    kafka_bootstrap: str, postgres_dsn: str, clean: CleanRun, tmp_path: Path
) -> None:
    env = settings_env(kafka_bootstrap, postgres_dsn, tmp_path)
    ensure_topics(kafka_bootstrap, env["CASEHISTORY_KAFKA_TOPIC"],
                  env["CASEHISTORY_KAFKA_DLQ_TOPIC"], 3)
    log = tmp_path / "consumers.log"
    rng = random.Random(15)
    members = [consumer(env, log) for _ in range(3)]
    retired = []
    kills = 0
    for part in chunks(clean.records, KILLS):  # kills land while records still arrive
        publish(env, part)
        time.sleep(rng.uniform(0.3, 1.2))
        victim = members.pop(rng.randrange(len(members)))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        retired.append(victim)
        kills += 1
        members.append(consumer(env, log))
    assert kills == KILLS and all(v.returncode == -signal.SIGKILL for v in retired)
    result = drained(env)
    stop_all(members, log)
    assert result.unaccounted == 0 and result.not_yet_consumed == 0
    assert_equals_clean_run(env, clean)


def restart_broker(broker: devkafka.KafkaBroker, down_for: float) -> devkafka.KafkaBroker:
    """Stop the broker, wait, and start it again on the same ports and data."""
    os.kill(broker.pid, signal.SIGTERM)
    assert broker._process is not None
    broker._process.wait(60)
    time.sleep(down_for)
    lib = devkafka.ensure_jars(devkafka.default_cache_dir())
    logs = broker.workdir / "logs"
    command = [*devkafka._java(devkafka.HEAP, broker.workdir / "log4j2.properties", logs, lib),
               "kafka.Kafka", str(broker.workdir / "server.properties")]
    with (logs / "kafka.out").open("ab") as out:
        process = subprocess.Popen(command, cwd=broker.workdir, stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    restarted = devkafka.KafkaBroker(broker.bootstrap_servers, process.pid, broker.workdir,
                                     broker.log_file, broker.temporary, process)
    deadline = time.monotonic() + 120
    while not devkafka._bootstrap_ok(broker.bootstrap_servers, 5.0):
        assert process.poll() is None and time.monotonic() < deadline, "broker did not return"
    return restarted


def test_a_broker_restart_mid_stream_is_waited_out(
    small_clean: CleanRun, tmp_path: Path
) -> None:
    clean = small_clean
    broker = devkafka.start(tmp_path / "kafka", partitions=3)
    try:
        env = settings_env(broker.bootstrap_servers, "sqlite", tmp_path / "store")
        ensure_topics(broker.bootstrap_servers, env["CASEHISTORY_KAFKA_TOPIC"],
                      env["CASEHISTORY_KAFKA_DLQ_TOPIC"], 3)
        log = tmp_path / "consumer.log"
        half = len(clean.records) // 2
        publish(env, clean.records[:half])
        member = consumer(env, log)
        wait_for_ledger(env, at_least=100)
        broker = restart_broker(broker, down_for=3)
        assert member.poll() is None, log.read_text()[-3000:]
        publish(env, clean.records[half:])
        result = drained(env)
        stop_all([member], log)
        assert result.unaccounted == 0
        assert_equals_clean_run(env, clean)
    finally:
        devkafka.stop(broker)


def wait_for_ledger(env: dict[str, str], at_least: int) -> None:
    engine = build(Settings.load(env))
    recorder: Any = engine.app.recorder
    try:
        deadline = time.monotonic() + 120
        while sum(1 for _ in recorder.ledger()) < at_least:
            assert time.monotonic() < deadline, "consumers made no progress"
            time.sleep(0.2)
    finally:
        engine.close()


def pg_ctl(server: devpostgres.PostgresServer, *args: str) -> None:
    assert server.workdir is not None
    datadir = server.workdir / "data"
    done = devpostgres._run(
        [devpostgres._bindir_for(datadir) / "pg_ctl", *args, "-D", datadir, "-w", "-t", "60",
         "-l", server.workdir / "postgres.log"],
        server.workdir, timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_postgres_restart_and_refused_connections_mid_batch_are_waited_out(
    kafka_bootstrap: str, small_clean: CleanRun, tmp_path: Path
) -> None:
    clean = small_clean
    server = devpostgres.start()
    try:
        store = devpostgres.create_database(server, "faults")
        env = settings_env(kafka_bootstrap, store, tmp_path / "store")
        ensure_topics(kafka_bootstrap, env["CASEHISTORY_KAFKA_TOPIC"],
                      env["CASEHISTORY_KAFKA_DLQ_TOPIC"], 3)
        log = tmp_path / "consumer.log"
        third = len(clean.records) // 3
        publish(env, clean.records[:third])
        member = consumer(env, log)
        wait_for_ledger(env, at_least=60)
        pg_ctl(server, "restart", "-m", "fast")  # connections dropped mid-stream
        publish(env, clean.records[third : 2 * third])
        time.sleep(1)
        # Refused while batches arrive. A fast stop, not an immediate one: the throwaway
        # server runs with synchronous_commit=off, so a crash could lose commits it had
        # acknowledged, which no client can make up for.
        pg_ctl(server, "stop", "-m", "fast")
        time.sleep(4)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(store, connect_timeout=2)
        pg_ctl(server, "start")
        assert member.poll() is None, log.read_text()[-3000:]
        publish(env, clean.records[2 * third :])
        result = drained(env)
        stop_all([member], log)
        assert result.unaccounted == 0
        assert_equals_clean_run(env, clean)
        output = " ".join(log.read_text().split())  # the summary may wrap
        assert "transient fault while" in output  # logged
        waited = int(output.rsplit("transient faults waited out ", 1)[1].split(",")[0])
        assert waited > 0  # counted
    finally:
        devpostgres.stop(server)


# --- bad input of every kind --------------------------------------------------------------

BASE_TIME = "2021-03-01T09:00:00Z"


def _envelope(event_type: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "event_type": event_type, "cpr": "0202801234",
            "effective_date": "2021-03-01", "recorded_at": BASE_TIME, "source_system": "fasit",
            "municipality": "101", **fields}


def bad_records() -> list[tuple[object, str]]:
    """(record, expected reason) for every rejection the contract names (JSON form)."""
    start = record(started(date(2021, 1, 1)), cpr="0202801234")
    stop = record(stopped(date(2021, 2, 1)), cpr="0202801234")
    meeting = _envelope("MeetingHeld", meeting_kind="joint")
    assignment = _envelope("CaseworkerAssigned", caseworker="cw-17")
    intervention = _envelope("SocialInterventionStarted", intervention="misbrugsbehandling")
    for valid in (start, stop, meeting, assignment):
        assert isinstance(validate(valid), ContractEvent), valid
    cases: list[tuple[object, str]] = [
        ({**start, "event_id": str(uuid.uuid4()), "cpr": "6113901234"}, "invalid_cpr"),
        ({**start, "event_id": "not-a-uuid"}, "invalid_event_id"),
        ({**start, "event_id": str(uuid.uuid4()), "event_type": "BenefitPaused"},
         "unknown_event_type"),
        ({**start, "event_id": str(uuid.uuid4()), "effective_date": "2015-03-01T00:00:00Z"},
         "invalid_date"),
        ({**start, "event_id": str(uuid.uuid4()), "effective_date": "9999-12-31"},
         "date_out_of_range"),
        ({**start, "event_id": str(uuid.uuid4()), "recorded_at": "2021-01-01T09:00:00"},
         "invalid_timestamp"),
        ({**start, "event_id": str(uuid.uuid4()), "municipality": "999"}, "unknown_municipality"),
        ({**start, "event_id": str(uuid.uuid4()), "benefit": "lottery"}, "unknown_benefit"),
        ({**start, "event_id": str(uuid.uuid4()), "target_group": "nobody"},
         "unknown_target_group"),
        ({**intervention, "intervention": "magic"}, "unknown_intervention"),
        ({**stop, "event_id": str(uuid.uuid4()), "reason": "bored"}, "unknown_reason"),
        ({**start, "event_id": str(uuid.uuid4()), "source_system": " "}, "invalid_source_system"),
        ({**start, "event_id": str(uuid.uuid4()), "source_case_ref": 5},
         "invalid_source_case_ref"),
        ({**assignment, "caseworker": "1234567890"}, "invalid_caseworker"),
        ({**_envelope("CaseworkerAssigned", caseworker="cw-1"), "unit": 5}, "invalid_unit"),
        ({**meeting, "meeting_kind": "lunch"}, "unknown_meeting_kind"),
        ({**start, "event_id": str(uuid.uuid4()), "migration_batch": 5}, "invalid_field"),
        ({k: v for k, v in {**start, "event_id": str(uuid.uuid4())}.items()
          if k != "municipality"}, "missing_field"),
        ([1, 2], "not_a_record"),
        (b"{not json", "undecodable"),
        ({**start, "effective_date": "2021-01-15"}, "event_id_conflict"),
    ]
    return [(start, "stored"), (stop, "stored"), (meeting, "stored"), (assignment, "stored"),
            *cases]


def test_bad_input_of_every_kind_through_files_is_dead_lettered_with_its_reason(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    cases = bad_records()
    expected = Counter(reason for _, reason in cases if reason != "stored")
    assert set(expected) == REJECTION_REASONS  # every reason the contract names
    path = tmp_path / "bad.jsonl"
    with path.open("wb") as out:
        for item, _ in cases:
            out.write((item if isinstance(item, bytes) else json.dumps(item).encode()) + b"\n")
    letters = tmp_path / "dead-letters.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "casehistory.entrypoints.cli", "ingest", str(path), "--dead-letters",
         str(letters)],
        env={**os.environ, **store_env}, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    dead = [json.loads(line) for line in letters.read_text().splitlines()]
    assert Counter(d["reason"] for d in dead) == expected
    lines = {d["provenance"]["line"]: d["reason"] for d in dead}
    assert lines == {n: r for n, (_, r) in enumerate(cases, start=1) if r != "stored"}
    engine = build(Settings.load(store_env))
    try:
        outcomes = Counter(e.outcome for e in engine.app.recorder.ledger())  # type: ignore[attr-defined]
    finally:
        engine.close()
    assert outcomes == {"stored": 4, "dead_lettered": len(cases) - 4}


def kafka_bad_values() -> list[tuple[bytes, str]]:
    """(message, expected reason) for every rejection a Kafka message can carry.

    Avro enums (event type, benefit, target group, intervention, meeting kind) cannot
    carry an unknown value, and a record is always a record; the rest can arrive.
    """
    def datum(r: dict[str, Any]) -> dict[str, Any]:
        event = validate(r)
        assert isinstance(event, ContractEvent)
        return event.avro_datum()

    start = record(started(date(2021, 1, 1)), cpr="0202801234")
    stop = record(stopped(date(2021, 2, 1)), cpr="0202801234")
    meeting = _envelope("MeetingHeld", meeting_kind="joint")
    assignment = _envelope("CaseworkerAssigned", caseworker="cw-17")
    fresh = lambda r: {**datum(r), "event_id": str(uuid.uuid4())}  # noqa: E731
    good = wire.encode(datum(start))
    cases = [
        (wire.encode({**fresh(start), "cpr": "6113901234"}), "invalid_cpr"),
        # The reader's uuid logical type refuses it before validation does.
        (wire.encode({**fresh(start), "event_id": "not-a-uuid"}), "undecodable"),
        (wire.encode({**fresh(start), "effective_date": date(9999, 12, 31)}),
         "date_out_of_range"),
        (wire.encode({**fresh(start), "recorded_at": datetime(1800, 1, 1, tzinfo=UTC)}),
         "date_out_of_range"),
        (wire.encode({**fresh(start), "municipality": "999"}), "unknown_municipality"),
        (wire.encode({**fresh(stop), "reason": "bored"}), "unknown_reason"),
        (wire.encode({**fresh(stop), "reason": None}), "missing_field"),
        (wire.encode({**fresh(start), "source_system": ""}), "invalid_source_system"),
        (wire.encode({**fresh(assignment), "caseworker": "1234567890"}), "invalid_caseworker"),
        (b"not avro at all", "undecodable"),
        (b"\xc3\x01" + b"\x00" * 8 + b"\x02", "undecodable"),  # unknown writer schema
        (good[:-3], "undecodable"),  # cut short
        (wire.encode({**datum(start), "effective_date": date(2021, 1, 15)}),
         "event_id_conflict"),
    ]
    return [(good, "stored"), (wire.encode(datum(stop)), "stored"), *cases,
            (wire.encode(datum(meeting)), "stored")]


def test_bad_input_of_every_kind_through_kafka_is_dead_lettered_and_the_consumer_runs_on(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = settings_env(kafka_bootstrap, "sqlite", tmp_path / "store")
    topic, dlq = env["CASEHISTORY_KAFKA_TOPIC"], env["CASEHISTORY_KAFKA_DLQ_TOPIC"]
    ensure_topics(kafka_bootstrap, topic, dlq, 3)
    cases = kafka_bad_values()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for value, _ in cases:  # one key: one partition, in this order
        producer.send(topic, key=b"one-citizen", value=value).get(timeout=30)
    producer.close()
    log = tmp_path / "consumer.log"
    member = consumer(env, log, "--idle-exit", "5")
    member.wait(timeout=180)
    assert member.returncode == 0, log.read_text()[-3000:]
    expected = Counter(reason for _, reason in cases if reason != "stored")
    summary = log.read_text().rsplit("consumed ", 1)[1]
    assert summary.startswith(f"{len(cases)}: stored 3, duplicate 0, dead-lettered "
                              f"{sum(expected.values())}")
    reader = KafkaConsumer(dlq, bootstrap_servers=kafka_bootstrap,
                           auto_offset_reset="earliest", consumer_timeout_ms=5000)
    letters = list(reader)
    reader.close()
    assert Counter(dict(m.headers)["dlq.reason"].decode() for m in letters) == expected
    assert {m.value for m in letters} == {v for v, r in cases if r != "stored"}
    result = drained(env)
    assert result.unaccounted == 0
    assert result.outcomes == {"stored": 3, "dead_lettered": sum(expected.values())}
