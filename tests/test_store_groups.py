"""One event store per partition group of the history topic (issue #14 item 2).

Real Kafka and a real PostgreSQL server: the router fills the history topic, one
store writer per group appends its partitions to its own store (its own schema,
or its own database), the writers never wait for a lock, and the stores together
hold every event of the embedded ingest exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
import zlib
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from casehistory.application import CaseHistory
from casehistory.bootstrap import Engine, build
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.consumers.files import Incoming
from casehistory.consumers.reconcile import reconcile
from casehistory.devservices.postgres import PostgresServer, create_database
from casehistory.entrypoints.api.server import stored_at
from casehistory.entrypoints.cli.common import ingest_files
from casehistory.population import generator
from casehistory.recorders import WriterFenced
from casehistory.services.identity import SQLiteKeyStore
from casehistory.services.replay import rebuild, replay_from_kafka
from casehistory.settings import Settings
from tests.factories import record, started
from tests.test_kafka_ingest import AS_OF, PSEUDONYM_KEY, finish, kafka_env, publish_file

PARTITIONS = 4
WAITS = (
    "SELECT (SELECT string_agg(concat_ws(' ', l.locktype, l.mode, l.relation::regclass, "
    "l.objid, 'behind', (SELECT string_agg(b.backend_type, ',') FROM pg_stat_activity b "
    "WHERE b.pid = ANY(pg_blocking_pids(l.pid)))), ';') FROM pg_locks l WHERE NOT l.granted), "
    "count(*) FILTER (WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()) "
    "FROM pg_stat_activity WHERE datname = current_database()"
)
"""The lock requests waiting anywhere on the server, each with the kinds of process it
waits behind (none: NULL), and how many of this database's sessions are writing (hold a
transaction id) right now."""
BEHIND_AUTOVACUUM = " behind autovacuum worker"
"""A writer's table lock waiting for the server's own ANALYZE of its events table: no
other writer's doing."""


def heads(app: CaseHistory) -> dict[str, tuple[int, str]]:
    """Every citizen's version (events stored) and chain hash in one store."""
    recorder: Any = app.recorder
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT citizen_key, version, chain_hash FROM {recorder.heads_table}")
        rows = [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in cursor.fetchall()]
    return {key: (int(version), chain) for key, version, chain in rows}


def versions(stores: dict[int, CaseHistory]) -> dict[str, int]:
    """Each citizen's events stored, over all stores; a citizen in two stores fails the test.

    (Chain hashes cover the events' provenance: a file line is not a topic offset.)
    """
    together: dict[str, int] = {}
    for store in stores.values():
        for key, (version, _chain) in heads(store).items():
            assert key not in together, "a citizen is in two stores"
            together[key] = version
    return together


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A generated municipality and every citizen's version after the embedded ingest."""
    folder = tmp_path_factory.mktemp("groups")
    path = folder / "population.jsonl"
    generator.write_jsonl(generator.generate_population(300, seed=5, until=AS_OF), path)
    engine = build(Settings.load({"CASEHISTORY_DATA_DIR": str(folder / "store"),
                                  "CASEHISTORY_PSEUDONYM_KEY": PSEUDONYM_KEY}))
    try:
        ingest_files(engine, [path], DeadLetterList())
        return path, versions(engine.stores)
    finally:
        engine.close()


def cli(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "casehistory.entrypoints.cli", *args],
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


class LockSampler(threading.Thread):
    """Samples the server's lock waits and concurrent writers until stopped."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.stopped = threading.Event()
        self.samples = self.waits = self.both_writing = 0
        self.kinds: list[str] = []

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as monitor:
            while not self.stopped.is_set():
                row = monitor.execute(WAITS).fetchone()
                assert row is not None
                self.samples += 1
                if row[0]:
                    self.kinds.append(row[0])
                    self.waits += any(
                        not wait.endswith(BEHIND_AUTOVACUUM) for wait in row[0].split(";")
                    )
                self.both_writing += int(row[1]) >= 2


@pytest.mark.kafka
@pytest.mark.postgres
def test_two_store_writers_on_two_groups_never_wait_and_hold_every_event_once(
    kafka_bootstrap: str,
    postgres_dsn: str,
    embedded: tuple[Path, dict[str, int]],
    tmp_path: Path,
) -> None:
    topic = f"groups-{uuid.uuid4().hex[:8]}"
    env = {**kafka_env(kafka_bootstrap, {"CASEHISTORY_DATA_DIR": str(tmp_path),
                                         "CASEHISTORY_STORE": postgres_dsn}, topic),
           "CASEHISTORY_STORE_GROUPS": "2"}
    publish_file(env, embedded[0])
    finish([cli(env, "route", "--partitions", str(PARTITIONS), "--idle-exit", "8")])
    engine = build(Settings.load(env))  # creates both groups' schemas before the writers
    sampler = LockSampler(postgres_dsn)
    sampler.start()
    try:
        outputs = finish([
            cli(env, "consume", "--from-history", "--store-group", str(group),
                "--max-poll-records", "100", "--idle-exit", "6")
            for group in (0, 1)
        ])
    finally:
        sampler.stopped.set()
        sampler.join()
    try:
        assert all("stored " in out for out in outputs)
        assert sampler.waits == 0, (
            f"{sampler.waits} of {sampler.samples} samples saw lock waits: {set(sampler.kinds)}"
        )
        assert sampler.both_writing > 0, "the two writers never wrote at the same time"
        assert versions(engine.stores) == embedded[1]
        schemas = [s.recorder.datastore.schema for s in engine.stores.values()]  # type: ignore[attr-defined]
        assert schemas == ["casehistory_g0", "casehistory_g1"]
        for group, store in engine.stores.items():  # each store holds its partitions only
            recorder: Any = store.recorder
            sources = {entry.source for entry in recorder.ledger(topic + ".history:")}
            assert sources == {f"{topic}.history:{p}" for p in range(PARTITIONS) if p % 2 == group}
        account = reconcile(kafka_bootstrap, topic + ".history", topic + ".store",
                            lambda: engine.ledger(topic + ".history:"))
        assert account.unaccounted == 0 and account.not_yet_consumed == 0
        assert sum(account.outcomes.values()) == sum(
            p.committed - p.log_start - p.no_record for p in account.partitions
        )
    finally:
        engine.close()


@pytest.mark.kafka
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_replay_from_the_history_topic_fills_each_group_in_its_own_store(
    backend: str,
    kafka_bootstrap: str,
    postgres_server: PostgresServer,
    embedded: tuple[Path, dict[str, int]],
    tmp_path: Path,
) -> None:
    """Group 1 on a database of its own (PostgreSQL) or in a file of its own (SQLite)."""
    topic = f"groups-{uuid.uuid4().hex[:8]}"
    env = kafka_env(kafka_bootstrap, tmp_path / "source", topic)
    publish_file(env, embedded[0])
    finish([cli(env, "route", "--partitions", str(PARTITIONS), "--idle-exit", "8")])
    target = {"CASEHISTORY_DATA_DIR": str(tmp_path / "target"),
              "CASEHISTORY_PSEUDONYM_KEY": PSEUDONYM_KEY,
              "CASEHISTORY_KEY_STORE": str(tmp_path / "source" / "keys.db"),
              "CASEHISTORY_STORE_KEY_FILE": str(tmp_path / "source" / "store.key"),
              "CASEHISTORY_STORE_GROUPS": "2"}
    if backend == "postgres":
        suffix = uuid.uuid4().hex[:8]
        target["CASEHISTORY_STORE"] = create_database(postgres_server, f"groups_a_{suffix}")
        target["CASEHISTORY_GROUP_1_STORE"] = create_database(postgres_server, f"groups_b_{suffix}")
        target["CASEHISTORY_GROUP_1_SCHEMA"] = "public"
    engine = build(Settings.load(target))
    try:
        report = replay_from_kafka(engine, kafka_bootstrap, topic + ".history")
        assert report.stored > 0
        assert versions(engine.stores) == embedded[1]
        assert all(heads(store) for store in engine.stores.values())
        if backend == "postgres":
            datastores = [s.recorder.datastore for s in engine.stores.values()]  # type: ignore[attr-defined]
            assert [d.pool.kwargs["dbname"] for d in datastores] == [
                f"groups_a_{suffix}", f"groups_b_{suffix}"
            ]
            assert [d.schema for d in datastores] == ["casehistory_g0", "public"]
        else:
            assert sorted(p.name for p in (tmp_path / "target").glob("events*.db")) == [
                "events-g0.db", "events-g1.db"
            ]
        key = next(iter(embedded[1]))
        found = engine.find(key)
        assert found is not None and found.version == embedded[1][key]
    finally:
        engine.close()


def incoming(fact_record: dict[str, Any], offset: int) -> Incoming:
    return Incoming(fact_record, b"", {"topic": "history", "partition": 0, "offset": offset})


def test_a_writer_whose_partition_was_taken_over_cannot_append(store_env: dict[str, str]) -> None:
    """Issue #14 item 3, the fence: two writers of one store; the older generation's
    append is refused and stores nothing, the newer one's goes through."""
    older, newer = build(Settings.load(store_env)), build(Settings.load(store_env))
    try:
        first = older.ingest_service(DeadLetterList())
        first.take_over(["history:0"])
        assert first.ingest([incoming(record(started(date(2020, 1, 1))), 0)]).stored == 1
        first.check_still_writer()
        second = newer.ingest_service(DeadLetterList())
        second.take_over(["history:0"])
        with pytest.raises(WriterFenced, match="history:0"):
            first.check_still_writer()  # an idle zombie learns it too
        second.check_still_writer()
        late = incoming(record(started(date(2021, 1, 1)), cpr="0101901234"), 1)
        with pytest.raises(WriterFenced, match="history:0"):
            first.ingest([late])
        assert second.stored_ends(["history:0"]) == {"history:0": 0}
        assert second.ingest([late]).stored == 1
        assert second.stored_ends(["history:0"]) == {"history:0": 1}
        unfenced = older.ingest_service(DeadLetterList())  # files: no partition to fence
        assert unfenced.ingest([incoming(record(started(date(2022, 1, 1))), 2)]).stored == 1
    finally:
        older.close()
        newer.close()


def test_an_event_id_reused_under_a_citizen_of_another_group_is_a_conflict(
    store_env: dict[str, str],
) -> None:
    """Issue #14 item 3 across partition groups: the first delivery of an event id stands,
    whichever group's store took it; the id under a citizen of another group is a conflict
    (dead-lettered, stored nowhere), in any order, and a redelivery of the first is a
    duplicate."""
    engine = build(Settings.load({**store_env, "CASEHISTORY_STORE_GROUPS": "2"}))
    try:
        letters = DeadLetterList()
        group = [engine.ingest_service(letters, g) for g in (0, 1)]
        cprs = ("6101901234", "0101901234")  # a citizen of group 0, one of group 1
        for first, other in ((0, 1), (1, 0)):
            fact = started(date(2020, 1, 1))
            assert group[first].ingest([incoming(record(fact, cprs[first]), 0)]).stored == 1
            reused = incoming(record(fact, cprs[other]), 1)
            report = group[other].ingest([reused, reused])
            assert (report.stored, report.duplicate) == (0, 0)
            assert report.rejected_by_reason == {"event_id_conflict": 2}
            assert group[first].ingest([incoming(record(fact, cprs[first]), 2)]).duplicate == 1
        assert [letter.reason for letter in letters.letters] == ["event_id_conflict"] * 4
        assert [{key: version for key, (version, _) in heads(app).items()}
                for app in engine.stores.values()] == [
            {engine.vault.citizen_key(cpr): 2} for cpr in cprs
        ]  # fmt: skip
    finally:
        engine.close()


def test_a_writer_that_died_after_claiming_its_event_ids_stores_them_when_run_again(
    store_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The claims are committed before the append: a store writer that dies between the
    two finds its own claims standing when it stores the batch again."""
    engine = build(Settings.load({**store_env, "CASEHISTORY_STORE_GROUPS": "2"}))
    try:
        writer = engine.ingest_service(DeadLetterList(), 1)
        fact = started(date(2020, 1, 1))
        batch = [incoming(record(fact), 0)]
        with monkeypatch.context() as patched:
            patched.setattr(engine.stores[1], "append", _die)
            with pytest.raises(SystemExit):
                writer.ingest(batch)
        assert heads(engine.stores[1]) == {}
        assert writer.ingest(batch).stored == 1
        assert writer.ingest(batch).duplicate == 1
        assert engine.ingest_service(DeadLetterList(), 0).ingest(
            [incoming(record(fact, "0101901234"), 1)]
        ).rejected_by_reason == {"event_id_conflict": 1}
    finally:
        engine.close()


def test_threads_sharing_a_sqlite_key_store_claim_and_add_keys_side_by_side(
    tmp_path: Path,
) -> None:
    """A SQLite key store's one connection serves every thread of its process: their write
    transactions (claims, new keys) take turns, and none fails on another's."""
    store = SQLiteKeyStore(tmp_path / "keys.db")
    failures: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for n in range(200):
                store.claim_events({f"{thread}-{n}": "first"})
                store.add({f"{thread}-{n}": b"k" * 32})
        except BaseException as error:  # reported by the assertion below
            failures.append(error)

    threads = [threading.Thread(target=work, args=(thread,)) for thread in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert failures == []
        keys = [f"{thread}-{n}" for thread in range(4) for n in range(200)]
        assert store.claim_events(dict.fromkeys(keys, "later")) == dict.fromkeys(keys, "first")
        assert len(store.keys_for(keys)) == len(keys)
    finally:
        store.close()


def _die(*_: Any, **__: Any) -> None:
    raise SystemExit("the writer died before its append")


@pytest.mark.kafka
@pytest.mark.postgres
def test_a_second_store_writer_of_a_group_fences_the_first_and_nothing_is_lost(
    kafka_bootstrap: str,
    postgres_dsn: str,
    embedded: tuple[Path, dict[str, int]],
    tmp_path: Path,
) -> None:
    """A store writer still running when a newer one of its group starts (a zombie) is
    refused at its next append and stops; the newer one stores the rest, once."""
    topic = f"fence-{uuid.uuid4().hex[:8]}"
    env = {**kafka_env(kafka_bootstrap, {"CASEHISTORY_DATA_DIR": str(tmp_path),
                                         "CASEHISTORY_STORE": postgres_dsn}, topic),
           "CASEHISTORY_STORE_GROUPS": "2"}
    publish_file(env, embedded[0])
    finish([cli(env, "route", "--partitions", str(PARTITIONS), "--idle-exit", "8")])
    engine = build(Settings.load(env))
    slow = ("consume", "--from-history", "--store-group", "0", "--max-poll-records", "20")
    try:
        zombie = cli(env, *slow)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(engine.ledger(topic)):
            time.sleep(0.1)
        newer = cli(env, *slow, "--idle-exit", "6")
        out, _ = zombie.communicate(timeout=180)
        assert zombie.returncode == 2, out.decode()[-2000:]
        assert "stopped: a newer writer took over" in out.decode()
        finish([newer, cli(env, "consume", "--from-history", "--store-group", "1",
                           "--idle-exit", "6")])
        assert versions(engine.stores) == embedded[1]
        account = reconcile(kafka_bootstrap, topic + ".history", topic + ".store",
                            lambda: engine.ledger(topic + ".history:"))
        assert account.unaccounted == 0 and account.not_yet_consumed == 0
    finally:
        engine.close()


def ingest_split(engine: Engine, path: Path) -> None:
    """Ingest a contract file into the engine's stores, each citizen into one group
    (by its CPR, as a history-topic partition would pick it)."""
    groups = engine.settings.store_groups
    parts: dict[int, list[Incoming]] = {}
    for n, line in enumerate(path.read_bytes().splitlines()):
        payload = orjson.loads(line)
        group = zlib.crc32(str(payload.get("cpr")).encode()) % groups
        parts.setdefault(group, []).append(
            Incoming(payload, line, {"file": path.name, "path": str(path), "line": n})
        )
    for group, records in parts.items():
        engine.ingest_service(DeadLetterList(), group).ingest(records)


def test_the_read_model_follows_every_store_and_equals_one_store(
    request: pytest.FixtureRequest,
    store_env: dict[str, str],
    embedded: tuple[Path, dict[str, int]],
    tmp_path: Path,
) -> None:
    """Issue #14 item 5: one position per store, caught up one worker per store; the
    read model over two stores equals the one over a single store, rebuilt or not."""
    same_staff = {**store_env, "CASEHISTORY_STAFF_KEY": "5a" * 32}
    single = build(Settings.load(same_staff))
    other = {"CASEHISTORY_DATA_DIR": str(tmp_path / "split"), "CASEHISTORY_STORE_GROUPS": "2"}
    if "CASEHISTORY_STORE" in store_env:  # a database of its own, read model included
        server: PostgresServer = request.getfixturevalue("postgres_server")
        other["CASEHISTORY_STORE"] = create_database(server, f"split_{uuid.uuid4().hex[:8]}")
    split = build(Settings.load({**same_staff, **other}))
    try:
        ingest_split(single, embedded[0])
        ingest_split(split, embedded[0])
        assert all(app.recorder.max_notification_id() for app in split.stores.values())
        single.project()
        follower = split.follower()
        assert follower.lag() == follower.head() > 0
        assert follower.catch_up() == follower.head()
        positions = split.read_model().positions()
        assert positions == {
            f"casehistory-g{g}": app.recorder.max_notification_id()
            for g, app in split.stores.items()
        }
        assert split.read_model().checksum() == single.read_model().checksum()
        assert split.read_model().count() == len(embedded[1])
        rebuilt = rebuild(split, switch=True)
        assert rebuilt.equal and rebuilt.rebuilt.position == sum(positions.values())
        assert split.read_model().positions() == positions
        late = incoming(record(started(date(2026, 10, 1))), 0)
        group = zlib.crc32(b"6101901234") % 2
        split.ingest_service(DeadLetterList(), group).ingest([late])
        single.ingest_service(DeadLetterList()).ingest([late])
        assert split.project() == 2 and single.project() == 2  # the citizen registered too
        moved = split.read_model().positions()
        assert {g: moved[g] - positions[g] for g in moved} == {
            name: 2 if n == group else 0 for n, name in enumerate(sorted(positions))
        }
        assert split.read_model().checksum() == single.read_model().checksum()
    finally:
        single.close()
        split.close()


def test_freshness_takes_the_newest_stored_event_of_every_store(tmp_path: Path) -> None:
    """The serve follower's freshness metric reads each store at its own position."""
    engine = build(Settings.load({"CASEHISTORY_DATA_DIR": str(tmp_path),
                                  "CASEHISTORY_PSEUDONYM_KEY": PSEUDONYM_KEY,
                                  "CASEHISTORY_STORE_GROUPS": "2"}))
    try:
        engine.ingest_service(DeadLetterList(), 0).ingest(
            [incoming(record(started(date(2020, 1, 1))), 0)])
        later = incoming(record(started(date(2021, 1, 1)), cpr="0101901234"), 1)
        engine.ingest_service(DeadLetterList(), 1).ingest([later])
        follower = engine.follower()
        follower.catch_up()
        last = {g: app.mapper.to_domain_event(app.recorder.select_notifications(
            start=app.recorder.max_notification_id(), limit=1)[0]).timestamp
            for g, app in engine.stores.items()}
        assert follower.positions() == {"casehistory-g0": 2, "casehistory-g1": 2}
        assert stored_at(engine, follower.positions()) == last[1] > last[0]
    finally:
        engine.close()
