"""Citizens' stored histories, streamed from the event store one citizen at a time.

A rebuild or a catch-up never walks the notification log batch by batch: it asks
the store for the events of every citizen concerned, ordered by citizen and
version, up to one notification id, and reads the result as a stream. Each
citizen's history is read once, memory holds one citizen, and the database does
the grouping through its primary key (originator id, version).

- `histories(until)`: every citizen with events up to `until` (a rebuild).
- `histories(until, after=P)`: the citizens with a notification in `(P, until]`,
  each with its whole history up to `until` (a catch-up).
- `histories(until, after=P, whole=False)`: only the events in `(P, until]`, by
  citizen; `histories(until, of=[...])`: these citizens' whole histories (a live
  follower reads the new events, and whole histories only of citizens it does not hold).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from itertools import chain
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.application import Application

FETCH = 5000
SNAPSHOT_SECONDS = 1.0
"""Longest one SQLite read of histories holds a snapshot of the event store (`in_snapshots`)."""
MAPPED_BYTES = 1 << 40
"""How much of a SQLite event store a read of every history maps into memory (SQLite caps
it at its build's limit, 2 GiB for Debian's). Read in citizen order, each event is a
random page of the events table: through the page cache's `read` calls 5.8-6.1 us an
event at 40,000 citizens, mapped 2.9-3.2 (bench/NOTES.md). Small reads (a live
follower's) stay unmapped: for them the mapping cost more than it saved."""


def shard_range(index: int, count: int) -> tuple[UUID | None, UUID | None]:
    """The originator ids `[low, high)` of shard `index` of `count` (None: unbounded)."""
    size = 2**128 // count
    low = UUID(int=index * size) if index else None
    high = UUID(int=(index + 1) * size) if index + 1 < count else None
    return low, high


def _shard_conditions(
    shard: tuple[int, int], placeholder: str, value: Callable[[UUID], Any]
) -> tuple[str, list[Any]]:
    """SQL conditions (each led by AND) keeping the originator ids of `shard`, and their
    parameters (`value` of each bound)."""
    conditions, params = "", []
    low, high = shard_range(*shard)
    if low is not None:
        conditions += f" AND originator_id >= {placeholder}"
        params.append(value(low))
    if high is not None:
        conditions += f" AND originator_id < {placeholder}"
        params.append(value(high))
    return conditions, params


class StoredEvent(NamedTuple):
    originator_version: int
    topic: str
    state: bytes


class EventStoreSource:
    """Reads histories from the application's recorder (SQLite or PostgreSQL)."""

    def __init__(self, app: Application[Any]) -> None:
        recorder: Any = app.recorder
        self.recorder = recorder
        self.table: str = recorder.events_table_name
        self.postgres = hasattr(self.recorder.datastore, "schema")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.recorder.datastore.pool.db_name, uri=True, timeout=60)

    def head(self) -> int:
        """The newest notification id in the store (0 when empty)."""
        return int(self.recorder.max_notification_id() or 0)

    def histories(
        self, until: int, after: int | None = None, shard: tuple[int, int] = (0, 1),
        *, whole: bool = True, of: Sequence[Any] = (),
    ) -> Iterator[tuple[Any, list[StoredEvent]]]:
        """(originator id, its stored events in version order), one citizen at a time.

        `shard` (index, count) keeps one of `count` equal ranges of originator ids;
        `whole=False` keeps only the events after `after` (what a live follower has not
        seen); `of` keeps only these originators.
        """
        read = self._postgres_rows if self.postgres else self._sqlite_rows
        rows = read(until, after, shard, whole, list(of))
        current: str | None = None
        events: list[StoredEvent] = []
        for originator_id, version, topic, state in rows:
            if originator_id != current:
                if current is not None:
                    yield current, events
                current, events = originator_id, []
            events.append(StoredEvent(version, topic, state))
        if current is not None:
            yield current, events

    def stored_bytes(self, until: int) -> int:
        """About how many bytes the stored events up to notification `until` take: the
        events table's pages (SQLite: the file's), in proportion to `until` of the newest
        notification."""
        if self.postgres:
            with self.recorder.datastore.get_connection() as connection:
                row = connection.execute(
                    f"SELECT pg_relation_size(%s::regclass) AS size, "
                    f"(SELECT max(notification_id) FROM {self._postgres_table}) AS newest",
                    [self._postgres_table],
                ).fetchone()
            size, newest = row["size"], row["newest"]
        else:
            connection = self._connect()
            try:
                pages, page_size = (connection.execute(f"PRAGMA {name}").fetchone()[0]
                                    for name in ("page_count", "page_size"))  # fmt: skip
                newest = connection.execute(f"SELECT max(rowid) FROM {self.table}").fetchone()[0]
            finally:
                connection.close()
            size = pages * page_size
        return int(size * min(1.0, until / newest)) if newest else 0

    def cache_bytes(self) -> int:
        """The PostgreSQL server's `effective_cache_size`, in bytes."""
        with self.recorder.datastore.get_connection() as connection:
            row = connection.execute(
                "SELECT setting::bigint * pg_size_bytes(unit) AS size FROM pg_settings "
                "WHERE name = 'effective_cache_size'"
            ).fetchone()
        return int(row["size"])

    def in_notification_order(
        self, until: int, shard: tuple[int, int] = (0, 1)
    ) -> Iterator[tuple[str, int, str, bytes, int]]:
        """Every stored event up to notification `until` of the citizens of `shard`, in
        notification order: (originator id as text, version, topic, state, notification
        id), the events table read in the order its rows were written
        (`projections.buckets`). SQLite reads it in snapshots of at most
        `SNAPSHOT_SECONDS` (see `in_snapshots`), PostgreSQL through one server-side cursor."""
        if self.postgres:
            yield from self._postgres_in_order(until, shard)
            return
        where, params = _shard_conditions(shard, "?", _hex)
        select = (
            f"SELECT originator_id, originator_version, topic, state, rowid "
            f"FROM {self.table} NOT INDEXED WHERE rowid > ? AND rowid <= ?{where} ORDER BY rowid"
        )
        connection = self._connect()  # unmapped: read in order, a mapping saved nothing
        try:
            done = 0
            while done < until:
                cursor = connection.execute(select, [done, until, *params])
                deadline = time.monotonic() + SNAPSHOT_SECONDS
                try:
                    for rows in iter(partial(cursor.fetchmany, FETCH), []):
                        yield from rows
                        done = rows[-1][4]
                        if time.monotonic() > deadline:
                            break
                    else:
                        return
                finally:
                    cursor.close()
        finally:
            connection.close()

    def _postgres_in_order(
        self, until: int, shard: tuple[int, int]
    ) -> Iterator[tuple[str, int, str, bytes, int]]:
        from psycopg.rows import tuple_row

        in_shard, params = _shard_conditions(shard, "%s", _same)
        with (
            self.recorder.datastore.get_connection() as connection,
            connection.transaction(),
            connection.cursor(name="in_order", row_factory=tuple_row) as cursor,
        ):
            cursor.itersize = FETCH
            cursor.execute(
                f"SELECT originator_id::text, originator_version, topic, state, notification_id "
                f"FROM {self._postgres_table} WHERE notification_id <= %s{in_shard} "
                f"ORDER BY notification_id",
                [until, *params],
            )
            yield from cursor

    @property
    def _postgres_table(self) -> str:
        return f'"{self.recorder.datastore.schema}"."{self.table}"'

    def _sqlite_rows(
        self, until: int, after: int | None, shard: tuple[int, int], whole: bool, of: list[Any]
    ) -> Iterator[tuple[Any, ...]]:
        in_shard, params = _shard_conditions(shard, "?", _hex)
        where = "rowid <= ?" + in_shard
        params.insert(0, until)
        if after is not None and not whole:
            where += " AND rowid > ?"
            params.append(after)
        if of:
            where += f" AND originator_id IN ({', '.join('?' * len(of))})"
            params += of
        connection = self._connect()
        try:
            if after is None and not of:  # every history: most of the file, at random
                connection.execute(f"PRAGMA mmap_size={MAPPED_BYTES}")
            if after is not None and whole:
                # The citizens touched after `after`, kept apart so that each snapshot
                # below does not scan the backlog again.
                connection.execute(
                    f"CREATE TEMP TABLE touched AS SELECT DISTINCT originator_id "
                    f"FROM {self.table} WHERE rowid > ? AND rowid <= ?",
                    [after, until],
                )
                where += " AND originator_id IN (SELECT originator_id FROM temp.touched)"
            yield from in_snapshots(
                connection,
                f"SELECT originator_id, originator_version, topic, state FROM {self.table} "
                f"WHERE {where}",
                params,
            )
        finally:
            connection.close()

    def _postgres_rows(
        self, until: int, after: int | None, shard: tuple[int, int], whole: bool, of: list[Any]
    ) -> Iterator[tuple[Any, ...]]:
        table = self._postgres_table
        in_shard, params = _shard_conditions(shard, "%s", _same)
        where = "notification_id <= %s" + in_shard
        params.insert(0, until)
        if after is not None and not whole:
            where += " AND notification_id > %s"
            params.append(after)
        elif after is not None:
            where += (
                f" AND originator_id IN (SELECT originator_id FROM {table} "
                "WHERE notification_id > %s AND notification_id <= %s)"
            )
            params += [after, until]
        if of:
            where += " AND originator_id = ANY(%s)"
            params.append(of)
        with (
            self.recorder.datastore.get_connection() as connection,
            connection.transaction(),
            connection.cursor(name="histories") as cursor,
        ):
            cursor.itersize = FETCH
            cursor.execute(
                f"SELECT originator_id, originator_version, topic, state FROM {table} "
                f"WHERE {where} ORDER BY originator_id, originator_version",
                params,
            )
            for row in cursor:
                yield (row["originator_id"], row["originator_version"], row["topic"], row["state"])


def in_snapshots(
    connection: sqlite3.Connection, select: str, params: list[Any]
) -> Iterator[tuple[Any, ...]]:
    """The rows of `select` (originator id first) in (originator, version) order, read in
    snapshots of at most `SNAPSHOT_SECONDS`, each ending at a citizen's last row.

    A snapshot of a SQLite database in WAL mode keeps the writer's checkpoints from
    copying the log past it: a catch-up that held one for minutes let the event store's
    log grow to gigabytes, then one ingest commit copied all of it. The rows read stay
    exact across snapshots, as the events up to `until` (the bound in `select`) are
    committed and never change.
    """
    done: Any = None
    while True:
        keyset = "" if done is None else " AND originator_id > ?"
        cursor = connection.execute(
            f"{select}{keyset} ORDER BY originator_id, originator_version",
            params if done is None else [*params, done],
        )
        deadline = time.monotonic() + SNAPSHOT_SECONDS
        current: Any = None
        try:
            for row in chain.from_iterable(iter(partial(cursor.fetchmany, FETCH), [])):
                if row[0] != current:
                    if current is not None and time.monotonic() > deadline:
                        done = current  # go on from the next citizen in a new snapshot
                        break
                    current = row[0]
                yield row
            else:
                return
        finally:
            cursor.close()


def _hex(uuid: UUID) -> str:
    return uuid.hex


def _same(uuid: UUID) -> UUID:
    return uuid
