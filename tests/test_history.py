"""The read side's citizen histories and the one-pass follower, on both backends."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from uuid import UUID

import orjson
import pytest

from casehistory import parallel
from casehistory.bootstrap import Engine, build
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.domain.citizen import citizen_id
from casehistory.entrypoints.cli.common import ingest_files
from casehistory.parallel import ShardedRows
from casehistory.projections.follower import Follower
from casehistory.projections.history import HistoryDecoder
from casehistory.projections.source import EventStoreSource
from casehistory.projections.store import PositionMoved, SQLiteReadModel
from casehistory.settings import Settings
from tests.conftest import PSEUDONYM_KEY
from tests.factories import record, started, stopped
from tests.test_coordination_view import population
from tests.test_ingest import CPR, incoming


def test_decoded_history_equals_the_aggregate(engine: Engine, tmp_path: Path) -> None:
    ingest_files(engine, [population(tmp_path, 40, seed=11)], DeadLetterList())
    decoder = HistoryDecoder(engine.app.mapper)
    keys = {n.originator_id for n in engine.app.recorder.select_notifications(start=1, limit=10**6)}
    assert len(keys) == 40
    for key in keys:
        citizen = engine.app.repository.get(key)
        decoded = decoder.advance(None, engine.app.recorder.select_events(key))
        assert (decoded.citizen_key, decoded.birth_date, decoded.version) == (
            citizen.citizen_key,
            citizen.birth_date,
            citizen.version,
        )
        assert decoded.facts == citizen.facts
        assert decoded.timeline() == citizen.timeline()


def test_history_moved_forward_in_pieces_equals_one_read(engine: Engine, tmp_path: Path) -> None:
    ingest_files(engine, [population(tmp_path, 5, seed=2)], DeadLetterList())
    decoder = HistoryDecoder(engine.app.mapper)
    key = engine.app.recorder.select_notifications(start=1, limit=1)[0].originator_id
    events = engine.app.recorder.select_events(key)
    whole = decoder.advance(None, events)
    pieced = decoder.advance(None, events[:1])
    before = pieced.timeline()
    for event in events[1:]:
        pieced = decoder.advance(pieced, [event])
    assert pieced.facts == whole.facts and pieced.version == whole.version == len(events)
    assert pieced.timeline() == whole.timeline() != before
    assert citizen_id(whole.citizen_key) == key


def test_catch_up_in_windows_equals_a_one_pass_rebuild(engine: Engine, tmp_path: Path) -> None:
    """Live batches, a backlog in small windows and a rebuild from zero give the same rows."""
    lines = population(tmp_path, 60, seed=5).read_text().splitlines(keepends=True)
    thirds = [tmp_path / f"part{n}.jsonl" for n in range(3)]
    for n, path in enumerate(thirds):
        path.write_text("".join(lines[n * len(lines) // 3 : (n + 1) * len(lines) // 3]))
    live = engine.follower(follow=True)
    ingest_files(engine, [thirds[0]], DeadLetterList())
    live.catch_up()
    ingest_files(engine, thirds[1:], DeadLetterList())
    live.window = 37  # a backlog passed in many small transactions
    backlog = engine.app.recorder.max_notification_id() - live.position
    assert live.catch_up() == backlog
    assert live.lag() == 0

    fresh = engine.replay_read_model()
    engine.follower(fresh).catch_up()
    assert fresh.position() == engine.read_model().position()
    assert fresh.count() == engine.read_model().count() == 60
    assert fresh.checksum() == engine.read_model().checksum()
    fresh.clear()


@pytest.mark.parametrize("bucketed", [False, True])
def test_a_rebuild_in_worker_processes_equals_one_in_process(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bucketed: bool
) -> None:
    """Worker processes reading in citizen order, or (a store past the threshold) through
    bucket files, give the rows of a rebuild in one process, and report every stored
    event's progress once (through buckets half at the scan, half at the rows)."""
    if bucketed:
        monkeypatch.setattr(parallel, "buckets_from", lambda _source: 0)
    else:
        assert parallel.buckets_from(EventStoreSource(engine.app)) >= 1 << 30
    ingest_files(engine, [population(tmp_path, 80, seed=8)], DeadLetterList())
    engine.project()
    fresh = engine.replay_read_model()
    follower = engine.follower(fresh, workers=3)
    follower.parallel_from = 0  # a small store, so the worker processes run anyway
    seen: list[int] = []
    head = engine.app.recorder.max_notification_id()
    assert follower.catch_up(on_batch=seen.append) == head
    assert sum(seen) == head and all(events > 0 for events in seen)
    assert fresh.count() == 80
    assert fresh.checksum() == engine.read_model().checksum()
    fresh.clear()


def test_a_rebuild_in_worker_processes_fills_the_changelog_outbox(
    engine: Engine, tmp_path: Path
) -> None:
    """With a changelog, every citizen of a parallel rebuild waits for the publisher, the
    progress callback sees every stored event once, and shard files of a rebuild whose
    process is gone are deleted (not those of a running one)."""
    ingest_files(engine, [population(tmp_path, 30, seed=9)], DeadLetterList())
    fresh = engine.replay_read_model()
    source = EventStoreSource(engine.app)
    follower = Follower(
        source, fresh, HistoryDecoder(engine.app.mapper), engine.settings.staff_key,
        after_commit=lambda: None, fresh_load=ShardedRows(engine.settings, source, 2),
    )  # fmt: skip
    follower.parallel_from = 0
    gone = subprocess.Popen(["true"])
    gone.wait()
    abandoned = []  # shards of a rebuild killed mid-load, and of a rebuild still running
    if isinstance(fresh, SQLiteReadModel):
        for pid in (gone.pid, os.getpid()):
            abandoned.append(fresh.path.parent / f".rebuild-{pid}-abc")
            abandoned[-1].mkdir()
            (abandoned[-1] / "shard-0.db").write_bytes(b"")
    seen: list[int] = []
    head = engine.app.recorder.max_notification_id()
    assert follower.catch_up(on_batch=seen.append) == head
    assert sorted(fresh.outbox(limit=100)) == fresh.citizen_keys() and fresh.count() == 30
    assert sum(seen) == head
    assert [f.exists() for f in abandoned] == [False, True][: len(abandoned)]
    fresh.clear()


def test_a_failing_rebuild_worker_fails_the_rebuild_and_leaves_nothing_behind(
    engine: Engine, tmp_path: Path
) -> None:
    """A worker's error reaches the caller, the copy stays empty at position 0, and no
    shard files remain (workers that cannot decrypt the store: a wrong store key)."""
    ingest_files(engine, [population(tmp_path, 20, seed=4)], DeadLetterList())
    fresh = engine.replay_read_model()
    wrong_key = replace(engine.settings, store_key=bytes(32))
    source = EventStoreSource(engine.app)
    follower = Follower(
        source, fresh, HistoryDecoder(engine.app.mapper), engine.settings.staff_key,
        fresh_load=ShardedRows(wrong_key, source, 2),
    )  # fmt: skip
    follower.parallel_from = 0
    with pytest.raises(RuntimeError, match=r"rebuild worker \(\d, 2\)"):
        follower.catch_up()
    assert fresh.position() == 0 and fresh.count() == 0
    if isinstance(fresh, SQLiteReadModel):
        assert not list(fresh.path.parent.glob(".rebuild-*"))
    fresh.clear()


_KILLED_WHILE_FILLING = """
import os, sys
from casehistory.bootstrap import build
from casehistory.projections import store
from casehistory.settings import Settings

def die(*_args, **_kwargs):  # the rows are copied in, not yet committed
    os._exit(9)

store._create_indexes = die
engine = build(Settings.load({"CASEHISTORY_DATA_DIR": sys.argv[1],
                              "CASEHISTORY_PSEUDONYM_KEY": sys.argv[2]}))
follower = engine.follower(engine.replay_read_model(), workers=2)
follower.parallel_from = 0
follower.catch_up()
"""


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Engine]:
    """An engine on the embedded default (SQLite files under `tmp_path / "data"`)."""
    engine = build(Settings.load({"CASEHISTORY_DATA_DIR": str(tmp_path / "data"),
                                  "CASEHISTORY_PSEUDONYM_KEY": PSEUDONYM_KEY}))  # fmt: skip
    yield engine
    engine.close()


def test_a_rebuild_killed_while_filling_its_copy_leaves_it_empty_for_the_next(
    embedded: Engine, tmp_path: Path
) -> None:
    """The blue/green copy is filled under a rollback journal: a process killed in the
    middle of the fill leaves a hot journal, the next connection rolls the fill back
    (an empty copy at position 0, in its write-ahead-log mode again), and the next
    rebuild gives the live rows."""
    ingest_files(embedded, [population(tmp_path, 30, seed=6)], DeadLetterList())
    embedded.project()
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_WHILE_FILLING, str(tmp_path / "data"), PSEUDONYM_KEY],
        check=False,
    )
    assert killed.returncode == 9
    copy_path = tmp_path / "data" / "replay" / "history.db"
    journal = copy_path.with_name("history.db-journal")
    assert journal.exists() and journal.stat().st_size > 0  # killed mid-fill
    copy = SQLiteReadModel(copy_path, embedded.app.name, private=True)
    assert copy.count() == 0 and copy.position() == 0
    assert copy.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    copy.close()

    fresh = embedded.replay_read_model()
    follower = embedded.follower(fresh, workers=2)
    follower.parallel_from = 0
    assert follower.catch_up() == embedded.app.recorder.max_notification_id()
    assert fresh.checksum() == embedded.read_model().checksum() and fresh.count() == 30
    assert isinstance(fresh, SQLiteReadModel)
    assert fresh.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert not list(copy_path.parent.glob(".rebuild-*"))  # the killed run's shards
    fresh.clear()


def test_a_copy_another_connection_holds_open_is_filled_through_its_log(
    embedded: Engine, tmp_path: Path
) -> None:
    """A private copy that someone else has open keeps its write-ahead log for the fill
    (the switch to a rollback journal is refused at once), and that reader sees the
    rows when the fill commits."""

    ingest_files(embedded, [population(tmp_path, 25, seed=12)], DeadLetterList())
    embedded.project()
    fresh = embedded.replay_read_model()
    assert isinstance(fresh, SQLiteReadModel)
    reader = sqlite3.connect(fresh.path, isolation_level=None)
    assert reader.execute("SELECT count(*) FROM durations_citizen").fetchone() == (0,)
    follower = embedded.follower(fresh, workers=2)
    follower.parallel_from = 0
    assert follower.catch_up() == embedded.app.recorder.max_notification_id()
    assert fresh.path.with_name("history.db-wal").stat().st_size > 0  # through the log
    assert reader.execute("SELECT count(*) FROM durations_citizen").fetchone() == (25,)
    assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    reader.close()
    assert fresh.checksum() == embedded.read_model().checksum()
    fresh.clear()


def test_a_copy_whose_columns_are_in_another_order_takes_the_shards_column_by_column(
    embedded: Engine, tmp_path: Path
) -> None:
    """Shard rows are copied as whole records only into a table with the same columns in
    the same order; a copy made with another order gets every value in its column."""

    from casehistory.projections.store import table_statements

    ingest_files(embedded, [population(tmp_path, 20, seed=7)], DeadLetterList())
    embedded.project()
    live = embedded.read_model()
    assert isinstance(live, SQLiteReadModel)
    statement = next(s for s in table_statements() if " benefit_period (" in s)
    head, columns = statement.rstrip(")").split(" (", 1)
    reordered = tmp_path / "reordered.db"
    with sqlite3.connect(reordered) as connection:
        connection.execute(f"{head} ({', '.join(reversed(columns.split(', ')))})")
    copy = SQLiteReadModel(reordered, embedded.app.name, private=True)
    copy.create()
    copy.load_shards([live.path], since=0, until=live.position())
    assert copy.count("benefit_period") == live.count("benefit_period") > 0
    assert copy.checksum() == live.checksum()
    copy.close()


def test_read_ahead_passes_the_whole_event_store_file_unless_memory_is_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.db"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    monkeypatch.setattr(parallel, "READ_AHEAD_CHUNK", 1024 * 1024)  # several rounds
    assert parallel.read_ahead(path) == path.stat().st_size
    monkeypatch.setattr(parallel, "_memory_available", lambda: 2 * path.stat().st_size - 2)
    assert parallel.read_ahead(path) == 0


def test_read_ahead_leaves_this_process_s_sqlite_locks_and_commits_in_place(
    tmp_path: Path,
) -> None:
    """Closing a descriptor of a SQLite file drops every POSIX lock the process holds on
    it: then another process closing its connection deletes the write-ahead log under
    this one's open connection, and what that connection commits afterwards is lost."""
    path = tmp_path / "events.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE stored (n INTEGER)")
    writer.execute("INSERT INTO stored VALUES (1)")
    assert parallel.read_ahead(path) == path.stat().st_size
    count = (
        f"import sqlite3; connection = sqlite3.connect({str(path)!r}); "
        "print(connection.execute('SELECT count(*) FROM stored').fetchone()[0])"
    )
    subprocess.run([sys.executable, "-c", count], check=True, capture_output=True)
    assert path.with_name("events.db-wal").exists()
    writer.execute("INSERT INTO stored VALUES (2)")
    seen = subprocess.run([sys.executable, "-c", count], check=True, capture_output=True, text=True)
    assert seen.stdout.strip() == "2"
    writer.close()


def test_a_stale_writer_is_fenced_off(engine: Engine, tmp_path: Path) -> None:
    """A write that starts from a position another writer has moved is refused."""
    ingest_files(engine, [population(tmp_path, 10, seed=3)], DeadLetterList())
    engine.project()
    store = engine.read_model()
    before = store.checksum()
    with pytest.raises(PositionMoved):
        store.write([], since=0, until=store.position() + 5)
    assert store.checksum() == before


def test_an_event_stored_with_a_class_version_goes_through_the_mapper(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = engine.ingest_service(DeadLetterList())
    service.ingest(incoming(record(started(date(2020, 1, 1))), record(stopped(date(2020, 6, 1)))))
    events = engine.app.recorder.select_events(citizen_id(engine.vault.citizen_key(CPR)))
    mapper = engine.app.mapper
    cipher = mapper.cipher  # the event store is encrypted with the store key
    assert cipher is not None
    versioned = [
        replace(
            e,
            state=cipher.encrypt(
                orjson.dumps({**orjson.loads(cipher.decrypt(e.state)), "class_version": 1})
            ),
        )
        for e in events
    ]
    through_mapper: list[object] = []
    to_domain_event = mapper.to_domain_event
    monkeypatch.setattr(
        mapper, "to_domain_event", lambda e: through_mapper.append(e) or to_domain_event(e)
    )
    decoder = HistoryDecoder(mapper)
    plain = decoder.advance(None, events)
    assert through_mapper == []
    assert decoder.advance(None, versioned).facts == plain.facts
    assert len(through_mapper) == len(events) == 3


@pytest.mark.postgres
def test_a_history_stream_outlasts_a_pause_longer_than_eventsourcings_idle_timeout(
    postgres_dsn: str, tmp_path: Path
) -> None:
    """A rebuild writes rows between fetches of one streaming read transaction; on a busy
    server that pause can pass eventsourcing's default of 5 s idle in a transaction."""
    from time import sleep

    from casehistory.bootstrap import build
    from casehistory.settings import Settings
    from tests.conftest import PSEUDONYM_KEY

    engine = build(Settings.load({"CASEHISTORY_DATA_DIR": str(tmp_path),
                                  "CASEHISTORY_PSEUDONYM_KEY": PSEUDONYM_KEY,
                                  "CASEHISTORY_STORE": postgres_dsn}))  # fmt: skip
    try:
        ingest_files(engine, [population(tmp_path, 6, seed=3)], DeadLetterList())
        source = EventStoreSource(engine.app)
        citizens = source.histories(source.head())
        first = next(citizens)
        sleep(6)
        assert len([first, *citizens]) == 6
    finally:
        engine.close()


def _read_all(source: EventStoreSource, head: int, middle: int) -> list[object]:
    """Every kind of read the followers make, as plain values."""
    keys = [key for key, _ in source.histories(head)][::3]
    reads = [
        source.histories(head),
        source.histories(head, after=middle),
        source.histories(head, after=middle, whole=False),
        source.histories(middle, shard=(1, 3)),
        source.histories(head, of=keys),
    ]
    return [[(key, list(events)) for key, events in read] for read in reads]


def test_histories_read_in_many_snapshots_equal_one_read(
    embedded: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that starts a new snapshot after every citizen gives what one snapshot gives."""
    from casehistory.projections import source as module

    ingest_files(embedded, [population(tmp_path, 40, seed=13)], DeadLetterList())
    source = EventStoreSource(embedded.app)
    head = source.head()
    one = _read_all(source, head, head // 2)
    statements: list[str] = []
    connect = sqlite3.connect

    def traced(*args: object, **kwargs: object) -> sqlite3.Connection:
        connection = connect(*args, **kwargs)  # type: ignore[arg-type]
        connection.set_trace_callback(statements.append)
        return connection

    monkeypatch.setattr(module.sqlite3, "connect", traced)
    monkeypatch.setattr(module, "SNAPSHOT_SECONDS", -1.0)
    monkeypatch.setattr(module, "FETCH", 7)
    assert _read_all(source, head, head // 2) == one
    assert len(one[0]) == 40 and sum(s.startswith("SELECT") for s in statements) > 100


def test_a_long_read_of_histories_lets_the_writer_checkpoint_its_whole_log(
    embedded: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catch-up that reads for longer than `SNAPSHOT_SECONDS` moves to a new snapshot,
    so the event store's checkpoints can copy the whole write-ahead log meanwhile."""
    from casehistory.projections import source as module

    monkeypatch.setattr(module, "SNAPSHOT_SECONDS", 0.2)
    monkeypatch.setattr(module, "FETCH", 5)  # the read stays open between pages
    lines = population(tmp_path, 30, seed=14).read_text().splitlines(keepends=True)
    first, later = tmp_path / "first.jsonl", tmp_path / "later.jsonl"
    first.write_text("".join(lines[: len(lines) // 2]))
    later.write_text("".join(lines[len(lines) // 2 :]))
    ingest_files(embedded, [first], DeadLetterList())
    source = EventStoreSource(embedded.app)
    reading = source.histories(source.head())
    next(reading)
    ingest_files(embedded, [later], DeadLetterList())  # the log grows past the snapshot
    checkpointer = sqlite3.connect(tmp_path / "data" / "events.db", isolation_level=None)

    def checkpoint() -> tuple[int, int]:
        _busy, log, copied = checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return log, copied

    log, copied = checkpoint()
    assert copied < log  # held back by the reader's snapshot
    time.sleep(0.3)
    next(reading)  # the next citizen is read in a new snapshot
    log, copied = checkpoint()
    assert copied == log > 0
    assert len(list(reading)) > 0
    checkpointer.close()


def test_histories_read_through_buckets_equal_those_read_in_citizen_order(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read in notification order spread over many bucket files (and, on SQLite, many
    snapshots) gives every citizen of the shard its whole history in version order, as a
    read in citizen order does, and leaves no bucket file behind, read to the end or not."""
    from casehistory.projections import buckets
    from casehistory.projections import source as module

    ingest_files(engine, [population(tmp_path, 60, seed=15)], DeadLetterList())
    source = EventStoreSource(engine.app)
    head = source.head()
    monkeypatch.setattr(buckets, "BUCKET_BYTES", source.stored_bytes(head) // 7)
    monkeypatch.setattr(buckets, "PENDING_ROWS", 20)  # frames of 16 rows
    monkeypatch.setattr(module, "SNAPSHOT_SECONDS", -1.0)
    monkeypatch.setattr(module, "FETCH", 11)
    folder = tmp_path / "buckets"
    folder.mkdir()
    for shard, until in (((0, 1), head), ((1, 3), head), ((0, 2), head // 2)):
        spread = buckets.histories_by_bucket(source, until, shard, folder)
        by_bucket = {UUID(str(key)): events for key, events in spread}
        in_order = {UUID(str(key)): events for key, events in source.histories(until, shard=shard)}
        assert by_bucket == in_order and len(in_order) >= 5
        assert not list(folder.iterdir())
    partly = buckets.histories_by_bucket(source, head, (0, 1), folder)
    next(partly)
    assert len(list(folder.iterdir())) > 1
    partly.close()
    assert not list(folder.iterdir())
