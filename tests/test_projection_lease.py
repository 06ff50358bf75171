"""The projection lease: one-shot commands do not compete with a worker, and a lost lease is
noticed; the changelog outbox survives a crash between commit and publish."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from casehistory.bootstrap import Engine, build
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.entrypoints.cli.common import ingest_files
from casehistory.settings import Settings
from tests.test_coordination_view import population


def test_a_one_shot_projection_waits_for_the_lease_holder(
    engine: Engine, store_env: dict[str, str], tmp_path: Path
) -> None:
    ingest_files(engine, [population(tmp_path, 20, seed=4)], DeadLetterList())
    other = build(Settings.load(store_env))
    try:
        with engine.projection_lease(threading.Event()) as lease:
            assert lease and lease.held()
            with pytest.raises(TimeoutError):
                other.project(patience=0.5)  # does not write behind the holder's back
            assert other.read_model().position() == 0
            engine.follower().catch_up()  # the holder brings the read model up to date
            assert other.project(patience=5) == 0  # and the one-shot command sees it done
        assert other.read_model().position() == engine.app.recorder.max_notification_id()
    finally:
        other.close()


@pytest.mark.postgres
def test_a_lost_postgres_lease_is_noticed(postgres_dsn: str, tmp_path: Path) -> None:
    env = {"CASEHISTORY_DATA_DIR": str(tmp_path), "CASEHISTORY_STORE": postgres_dsn,
           "CASEHISTORY_PSEUDONYM_KEY": "cd" * 32}
    engine = build(Settings.load(env))
    try:
        with engine.projection_lease(threading.Event()) as lease:
            assert lease.held()
            with psycopg.connect(postgres_dsn, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
                )
            assert not lease.held()
    finally:
        engine.close()


def test_the_changelog_outbox_keeps_what_was_not_confirmed(
    engine: Engine, tmp_path: Path
) -> None:
    ingest_files(engine, [population(tmp_path, 15, seed=6)], DeadLetterList())
    follower = engine.follower()
    follower.outbox = True  # as `project --changelog` runs it, but the process "dies" here
    follower.catch_up()
    store = engine.read_model()
    pending = store.outbox()
    assert sorted(pending) == store.citizen_keys()
    store.published(pending[:5])
    assert sorted(store.outbox()) == sorted(pending[5:])


@pytest.mark.kafka
def test_a_restart_republishes_what_a_crash_left_in_the_outbox(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    from kafka import KafkaConsumer, TopicPartition

    from casehistory.consumers.topics import CHANGELOG_TOPIC
    from tests.test_end_to_end import casehistory
    from tests.test_kafka_ingest import kafka_env

    env = kafka_env(kafka_bootstrap, tmp_path, "unused")
    casehistory(env, "ingest", str(population(tmp_path, 12, seed=12)))
    engine = build(Settings.load(env))
    try:
        store = engine.read_model()
        crashed = store.citizen_keys()[:4]
        with store._write() as cursor:  # committed rows whose publish never happened
            cursor.executemany(
                f"INSERT INTO changelog_outbox (citizen_key) VALUES ({store.paramstyle})",
                [[key] for key in crashed],
            )
    finally:
        engine.close()
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, consumer_timeout_ms=5000)
    partitions = [TopicPartition(CHANGELOG_TOPIC, p)
                  for p in consumer.partitions_for_topic(CHANGELOG_TOPIC) or ()]
    before = consumer.end_offsets(partitions) if partitions else {}
    casehistory(env, "project", "--changelog")  # nothing new to project; the outbox drains
    if not partitions:
        partitions = [TopicPartition(CHANGELOG_TOPIC, p)
                      for p in consumer.partitions_for_topic(CHANGELOG_TOPIC) or ()]
    consumer.assign(partitions)
    for tp in partitions:
        consumer.seek(tp, before.get(tp, 0))
    republished = {m.key.decode() for m in consumer}
    consumer.close()
    assert set(crashed) <= republished
    engine = build(Settings.load(env))
    try:
        assert engine.read_model().outbox() == []
    finally:
        engine.close()
