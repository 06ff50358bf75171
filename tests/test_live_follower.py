"""A live follower's held citizens (`projections.live`), on both backends.

Catching up after every few events, the follower reads whole histories only of the
citizens it does not hold, and its rows equal a rebuild's. Rows it holds are trusted
only while it is the copy's last writer: after any other write they are read again.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

from casehistory.bootstrap import Engine
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.consumers.files import read_records
from casehistory.domain.citizen import citizen_id
from casehistory.projections import live
from casehistory.projections.follower import Follower
from casehistory.projections.rows import TABLES, CitizenRows
from casehistory.projections.source import EventStoreSource
from tests.test_coordination_view import population


class CountingSource(EventStoreSource):
    """The real source, counting the whole histories it reads, by citizen."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.whole_reads: Counter[Any] = Counter()

    def histories(self, *args: Any, **kwargs: Any) -> Any:
        for originator, events in super().histories(*args, **kwargs):
            if kwargs.get("whole", True):
                self.whole_reads[originator] += 1
            yield originator, events


def _live_follower(engine: Engine) -> tuple[Follower, CountingSource]:
    follower = engine.follower(follow=True).members[0]
    assert follower.live is not None
    follower.source = source = CountingSource(engine.app)
    return follower, source


def _ingest_in_steps(engine: Engine, path: Path, step: int, follower: Follower) -> int:
    """Ingest `path` `step` records at a time, catching up after each; returns steps."""
    records = list(read_records(path))
    for first in range(0, len(records), step):
        engine.ingest_service(DeadLetterList()).ingest(records[first : first + step])
        follower.catch_up()
    return -(-len(records) // step)


def _rebuilt_checksum(engine: Engine) -> str:
    fresh = engine.replay_read_model()
    engine.follower(fresh).catch_up()
    checksum = fresh.checksum()
    fresh.clear()
    return checksum


def test_live_catch_ups_read_only_new_events_and_equal_a_rebuild(
    engine: Engine, tmp_path: Path
) -> None:
    follower, source = _live_follower(engine)
    steps = _ingest_in_steps(engine, population(tmp_path, 30, seed=21), 7, follower)
    assert engine.read_model().count() == 30
    assert follower.live is not None and len(follower.live) == 30
    # each citizen is read whole once by the live path (and by the first catch-up, a
    # rebuild from zero), later only its new events
    assert max(source.whole_reads.values()) <= 2
    assert source.whole_reads.total() < 30 + 7 < steps
    assert engine.read_model().checksum() == _rebuilt_checksum(engine)


def test_rows_written_by_another_writer_are_read_again(engine: Engine, tmp_path: Path) -> None:
    follower, source = _live_follower(engine)
    lines = population(tmp_path, 12, seed=4).read_bytes().splitlines(keepends=True)
    first = _jsonl(tmp_path / "first.jsonl", lines[: len(lines) // 2])
    rest = _jsonl(tmp_path / "rest.jsonl", lines[len(lines) // 2 :])
    _ingest_in_steps(engine, first, 5, follower)
    store = engine.read_model()
    keys = _citizen_keys(engine)
    # another writer empties every citizen's rows without moving the position
    position = store.position()
    store.write([CitizenRows(key) for key in keys], since=position, until=position)
    assert follower.live is not None
    held = {originator for originator in source.whole_reads if originator in follower.live}
    before = source.whole_reads.copy()
    _ingest_in_steps(engine, rest, 5, follower)
    assert held and not held & set(source.whole_reads - before)  # held histories serve...
    touched = _citizen_keys(engine)  # citizens with events after the other write
    assert touched
    fresh = engine.replay_read_model()
    engine.follower(fresh).catch_up()
    for table in TABLES:  # ...but not the held rows
        assert Counter(store.rows_of(table, touched)) == Counter(fresh.rows_of(table, touched))
    fresh.clear()


def _citizen_keys(engine: Engine) -> list[str]:
    with engine.read_model().read() as cursor:
        cursor.execute("SELECT citizen_key FROM durations_citizen")
        return [str(row[0]) for row in cursor.fetchall()]


def test_a_long_backlog_holds_the_citizens_it_reads_whole(
    engine: Engine, tmp_path: Path, monkeypatch: Any
) -> None:
    """A catch-up past `LIVE_WINDOW` reads its citizens whole and holds them, their rows
    trusted: the live catch-ups after it neither read those citizens whole nor read
    their stored rows back (a worker back from a backlog is not left cold)."""
    monkeypatch.setattr(live, "LIVE_WINDOW", 10)
    follower, source = _live_follower(engine)
    store = engine.read_model()
    read_back: list[str] = []
    stored_rows = store._stored_rows

    def counted(cursor: Any, table: str, columns: Any, chunk: Any) -> Any:
        read_back.extend(citizen.citizen_key for citizen in chunk)
        return stored_rows(cursor, table, columns, chunk)

    monkeypatch.setattr(store, "_stored_rows", counted)
    lines = population(tmp_path, 25, seed=8).read_bytes().splitlines(keepends=True)
    first, backlog, rest = lines[:60], lines[60:-40], lines[-40:]
    service = engine.ingest_service(DeadLetterList())
    service.ingest(list(read_records(_jsonl(tmp_path / "first.jsonl", first))))
    follower.catch_up()  # a rebuild from zero: holds nothing
    service.ingest(list(read_records(_jsonl(tmp_path / "backlog.jsonl", backlog))))
    follower.catch_up()  # one catch-up past the window
    assert follower.live is not None
    backlog_keys = {
        key for key in _citizen_keys(engine)
        if key in follower.live or citizen_id(key) in follower.live
    }  # fmt: skip
    assert len(backlog_keys) >= 20
    whole_before, read_back[:] = source.whole_reads.copy(), []
    _ingest_in_steps(engine, _jsonl(tmp_path / "rest.jsonl", rest), 3, follower)
    assert not {UUID(str(o)).hex for o in source.whole_reads - whole_before} & backlog_keys
    assert not set(read_back) & backlog_keys
    assert store.checksum() == _rebuilt_checksum(engine)


def _jsonl(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


def test_only_a_long_running_follower_holds_citizens(engine: Engine) -> None:
    """A one-shot catch-up (a report, `project` without --follow) holds no citizens, so a
    backlog does not take a long-running worker's memory in a command."""
    assert all(member.live is None for member in engine.follower().members)
    assert all(member.live is not None for member in engine.follower(follow=True).members)
