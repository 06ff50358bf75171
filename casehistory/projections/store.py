"""The read model's tables on SQLite or PostgreSQL, written with their position.

Every write replaces the rows of the citizens it carries and records the new
position in the same transaction. The transaction is fenced: it first locks the
tracking row and checks that the position is still the one the writer started
from, so a second writer (a stale worker, a switched-in rebuild) can never
overwrite newer rows with older ones; the loser gets `PositionMoved` and
starts again from the stored position.

A rebuild writes into an empty copy without secondary indexes and creates them
at the end (bulk load), then may be switched in: rows and position replace the
live ones in one fenced transaction, entirely inside the database.

A copy tracks one position per event store (partition group, `stores`): each
store's follower writes its citizens' rows under its own tracking row, and the
rows of different stores never meet (a citizen lives in one store).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import orjson

from casehistory.pg_schema import create_schema
from casehistory.projections.checkpoint import WalCheckpointer
from casehistory.projections.rows import TABLES, CitizenRows

TRACKING_TABLE = "history_tracking"
OUTBOX_TABLE = "changelog_outbox"
"""Citizens whose current row is committed but not yet confirmed on the changelog topic."""
INDEXES = (
    # Runs covering a recent day are the open ones and the few stopping after it: this
    # index finds them without walking every run that started before the day.
    "CREATE INDEX IF NOT EXISTS benefit_run_scope_stop "
    "ON benefit_run (scope, stop_date, start_date)",
    # Per-citizen lookups (citizen, then the date they range over) that cover every column
    # the reports read: the per-citizen export walks the citizens in key order and reads
    # only these indexes' pages, in order, never a table row (at 100,000 citizens the table
    # rows were random reads through the page cache). (citizen, scope, start) also keeps
    # per-citizen lookups off the (scope, stop) index, which would scan every citizen's runs.
    # The export's walk over every citizen in key order reads the citizen's birth date and
    # the bounds of its runs from this index alone, not from the table's rows.
    "CREATE INDEX IF NOT EXISTS durations_citizen_covering ON durations_citizen "
    "(citizen_key, birth_date, first_run_start, last_run_stop, first_cash_run_start, "
    "last_cash_run_stop)",
    "CREATE INDEX IF NOT EXISTS benefit_run_citizen_covering "
    "ON benefit_run (citizen_key, scope, start_date, stop_date, spell_start, paid_before)",
    "CREATE INDEX IF NOT EXISTS benefit_period_citizen_covering "
    "ON benefit_period (citizen_key, start_date, stop_date, job_centre, stop_reason)",
    "CREATE INDEX IF NOT EXISTS benefit_period_start ON benefit_period (start_date)",
    "CREATE INDEX IF NOT EXISTS target_group_interval_citizen_covering "
    "ON target_group_interval (citizen_key, valid_from, valid_to, target_group)",
    "CREATE INDEX IF NOT EXISTS intervention_period_citizen "
    "ON intervention_period (citizen_key, start_date)",
    "CREATE INDEX IF NOT EXISTS intervention_period_start ON intervention_period (start_date)",
    "CREATE INDEX IF NOT EXISTS inflow_start ON inflow (start_date)",
    "CREATE INDEX IF NOT EXISTS inflow_citizen ON inflow (citizen_key)",
    "CREATE INDEX IF NOT EXISTS benefit_year_year ON benefit_year (year, citizen_key)",
    # A live write reads each table's rows of the citizens it replaces by citizen key.
    "CREATE INDEX IF NOT EXISTS benefit_year_citizen ON benefit_year (citizen_key)",
    "CREATE INDEX IF NOT EXISTS caseworker_assignment_citizen "
    "ON caseworker_assignment (citizen_key, valid_from)",
    "CREATE INDEX IF NOT EXISTS visitation_citizen ON visitation (citizen_key, ordinal)",
    "CREATE INDEX IF NOT EXISTS counting_meeting_citizen "
    "ON counting_meeting (citizen_key, ordinal)",
    "CREATE INDEX IF NOT EXISTS cash_exit_citizen ON cash_exit (citizen_key, exit_date)",
    "CREATE INDEX IF NOT EXISTS cash_exit_date ON cash_exit (exit_date)",
)
INDEX_NAMES = tuple(statement.split()[5] for statement in INDEXES)
RETIRED_INDEXES = ("benefit_run_citizen", "benefit_period_citizen", "target_group_interval_citizen")
"""Indexes an earlier version created, replaced by the covering ones above (dropped on create)."""
_TYPES = {
    "birth_date": "TEXT NOT NULL",
    "findings": "INTEGER NOT NULL",
    "is_faellesborger": "BOOLEAN NOT NULL",
    "support_step": "INTEGER NOT NULL",
    "paid_before": "INTEGER NOT NULL",
    "job_centre": "INTEGER NOT NULL",
    "cash_system": "INTEGER NOT NULL",
    "coordinating_caseworker_right": "INTEGER NOT NULL",
    "coordination_relevant": "INTEGER NOT NULL",
    "child_measure": "INTEGER NOT NULL",
    "year": "INTEGER NOT NULL",
    "ordinal": "INTEGER NOT NULL",
    "interventions": "TEXT NOT NULL",
    "flags": "TEXT NOT NULL",
}
_KEYED = ("durations_citizen", "coordination_citizen")
ADDED_COLUMNS: dict[str, dict[str, str]] = {
    TRACKING_TABLE: {"writer": "BIGINT NOT NULL DEFAULT 0"},
    "durations_citizen": {
        "first_run_start": "TEXT", "last_run_stop": "TEXT", "first_cash_run_start": "TEXT",
        "last_cash_run_stop": "TEXT",
    },
}
"""Columns a later version added to a table an earlier one created: `create` adds the missing
ones (a table keeps its columns' order, so they come last in `TABLES` too)."""


def _bound(scope: str, first: bool) -> str:
    """A citizen's first run's start or last run's stop in `scope`, from its stored runs."""
    column = "min(r.start_date)" if first else "r.stop_date"
    last = "" if first else " ORDER BY r.start_date DESC LIMIT 1"
    return (
        f"(SELECT {column} FROM benefit_run r WHERE r.citizen_key = durations_citizen.citizen_key"
        f" AND r.scope = '{scope}'{last})"
    )


FILL_RUN_BOUNDS = (
    f"UPDATE durations_citizen SET first_run_start = {_bound('all', True)}, "
    f"last_run_stop = {_bound('all', False)}, first_cash_run_start = {_bound('cash', True)}, "
    f"last_cash_run_stop = {_bound('cash', False)}"
)
"""The run bounds of a read model written before `durations_citizen` held them, from its
runs (what `rows._bounds` stores)."""
FILL_ADDED: dict[str, str] = {"durations_citizen": FILL_RUN_BOUNDS}
"""What fills the columns added to a table (`ADDED_COLUMNS`) in rows written before them."""
WRITE_CHUNK = 200
"""Citizens per executemany round inside one write transaction. Small, so the rows held
at once stay few: the collector walks every young object, and with 2,000 citizens (about
75,000 rows) a rebuild worker spent 5% of its CPU there (0.25-0.3 s of 5 for half the
10,000 store, 200: 0.05 s) and peaked 20 MB higher."""


INSERT_ROWS = 50
"""Rows per multi-row INSERT on SQLite (a rebuild worker's rows cost 1.5-2.9 µs each so,
3.5-3.9 by `executemany` of one row per statement)."""


class PositionMoved(RuntimeError):
    """Another writer moved the read model's position since this writer read it."""


def table_statements() -> list[str]:
    statements = []
    for table, columns in TABLES.items():
        defs = []
        for column in columns:
            kind = _TYPES.get(column, "TEXT")
            if column == "citizen_key":
                kind = "TEXT PRIMARY KEY" if table in _KEYED else "TEXT NOT NULL"
            defs.append(f"{column} {kind}")
        statements.append(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(defs)})")
    statements.append(
        f"CREATE TABLE IF NOT EXISTS {TRACKING_TABLE} "
        "(application_name TEXT PRIMARY KEY, notification_id BIGINT NOT NULL, "
        "writer BIGINT NOT NULL DEFAULT 0)"
    )
    statements.append(f"CREATE TABLE IF NOT EXISTS {OUTBOX_TABLE} (citizen_key TEXT PRIMARY KEY)")
    return statements


def _drop_indexes(cursor: Any) -> None:
    for name in INDEX_NAMES:
        cursor.execute(f"DROP INDEX IF EXISTS {name}")


def _create_indexes(cursor: Any, analyze: str = "ANALYZE") -> None:
    for statement in INDEXES:
        cursor.execute(statement)
    cursor.execute(analyze)  # statistics for the planner, once per bulk load


@dataclass
class _TableChange:
    """A write's changes to one table: rows to insert, citizens whose rows all go, stored
    rows to delete by their values (one each) and by their row ids."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    cleared: list[list[Any]] = field(default_factory=list)
    gone: list[tuple[Any, ...]] = field(default_factory=list)
    gone_ids: list[list[Any]] = field(default_factory=list)


def _difference(
    old: list[tuple[Any, ...]], new: list[tuple[Any, ...]]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Rows to delete from `old` and to insert so that it holds the multiset `new`: the
    rows of `old` not in `new` and those of `new` not in `old`, or, where `new` keeps every
    old row but the last (a period or interval closed, rows after it), that row and those
    after it (comparing slices costs less than hashing every row)."""
    last = len(old) - 1
    if new[:last] == old[:last]:
        return old[last:], new[last:]
    old_set, new_set = set(old), set(new)
    if len(old_set) == len(old) and len(new_set) == len(new):  # no repeated rows: sets do
        return [r for r in old if r not in new_set], [r for r in new if r not in old_set]
    added = Counter(new)
    added.subtract(old)
    return list((-added).elements()), list((+added).elements())


class ReadModelStore:
    """One copy of the read model (live or rebuilt) on one backend."""

    paramstyle = "?"
    dialect = "sqlite"
    row_id = "rowid"
    """The column naming a stored row within a transaction."""
    same = "IS"
    """Equality under which NULL equals NULL."""

    def __init__(self, application_name: str, stores: Sequence[str] = ()) -> None:
        self.application_name = application_name
        self.stores = list(stores) or [application_name]
        """The event stores this copy follows, by tracking name (one position each)."""
        self.bulk_indexes = True
        """Whether a bulk load may drop and recreate the indexes (needs owning them)."""

    # --- backend hooks -------------------------------------------------------

    @contextmanager
    def _bulk_load(self, cursor: Any) -> Iterator[None]:
        """Around a bulk load into the empty copy: its indexes dropped, built once after."""
        _drop_indexes(cursor)
        yield
        _create_indexes(cursor)

    @contextmanager
    def _write(self, bulk: bool = False) -> Iterator[Any]:
        """A cursor in a transaction that holds the write lock from its start; `bulk`
        marks a transaction that rewrites much of the copy (a fill, a clear, a switch)."""
        raise NotImplementedError
        yield

    @contextmanager
    def read(self) -> Iterator[Any]:
        """A cursor in a read-only transaction (one consistent snapshot)."""
        raise NotImplementedError
        yield

    def _lock_position(self, cursor: Any, store: str) -> int:
        raise NotImplementedError

    def _columns(self, cursor: Any, table: str) -> set[str]:
        """The names of `table`'s columns."""
        raise NotImplementedError

    def _copy_statements(self, source: ReadModelStore) -> Iterator[str]:
        raise NotImplementedError
        yield ""

    def close(self) -> None:
        raise NotImplementedError

    # --- shared --------------------------------------------------------------

    def create(self, *, indexes: bool = True) -> None:
        with self._write() as cursor:
            for name in RETIRED_INDEXES:
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
            for statement in table_statements():
                cursor.execute(statement)
            self._add_columns(cursor)
            for statement in INDEXES if indexes else ():
                cursor.execute(statement)
            cursor.executemany(
                f"INSERT INTO {TRACKING_TABLE} (application_name, notification_id) "
                f"VALUES ({self.paramstyle}, 0) ON CONFLICT (application_name) DO NOTHING",
                [[store] for store in self.stores],
            )

    def _add_columns(self, cursor: Any) -> None:
        """Give tables an earlier version created the columns added since (`ADDED_COLUMNS`):
        the tracking table its `writer`, `durations_citizen` its run bounds, filled from the
        stored runs. Looked up first: on PostgreSQL, ALTER TABLE locks the table even when
        the column is there."""
        for table, added in ADDED_COLUMNS.items():
            missing = added.keys() - self._columns(cursor, table)
            for name in sorted(missing, key=list(added).index):
                cursor.execute(f"ALTER TABLE {table} ADD COLUMN {name} {added[name]}")
            if missing and table in FILL_ADDED:
                cursor.execute(FILL_ADDED[table])

    def positions(self) -> dict[str, int]:
        """Each followed store's last applied notification id."""
        with self.read() as cursor:
            cursor.execute(
                f"SELECT application_name, notification_id FROM {TRACKING_TABLE} WHERE "
                f"application_name IN ({', '.join([self.paramstyle] * len(self.stores))})",
                self.stores,
            )
            found = {str(name): int(position) for name, position in cursor.fetchall()}
        return {store: found.get(store, 0) for store in self.stores}

    def writer(self, store: str) -> int:
        """The token of the follower that last wrote `store`'s citizens (0: another kind
        of write, such as a rebuild, a switch or a clear)."""
        with self.read() as cursor:
            return self._last_writer(cursor, store)

    def _last_writer(self, cursor: Any, store: str) -> int:
        cursor.execute(
            f"SELECT writer FROM {TRACKING_TABLE} WHERE application_name = {self.paramstyle}",
            [store],
        )
        found = cursor.fetchone()
        return int(found[0]) if found else 0

    def position(self, store: str | None = None) -> int:
        """`store`'s position; by default the sum over every store (notifications applied)."""
        positions = self.positions()
        return positions.get(store, 0) if store is not None else sum(positions.values())

    def max_tracking_id(self, application_name: str) -> int | None:
        """eventsourcing's name for the position (used by followers and benchmarks)."""
        return self.position(application_name if application_name in self.stores else None) or None

    def write(
        self,
        citizens: Iterable[CitizenRows],
        *,
        since: int,
        until: int,
        replace: bool = True,
        outbox: bool = False,
        store: str | None = None,
        writer: tuple[int, int] | None = None,
    ) -> int:
        """Replace the rows of `citizens` and move `store`'s position (default: the first
        store's) from `since` to `until`.

        One transaction. `replace=False` skips deleting earlier rows (a rebuild into an
        empty copy); `outbox` also records the citizens for the changelog publisher.
        `writer` is (the last writer's token the caller saw, its own token): the write is
        fenced on both, so rows the caller holds as written (`CitizenRows.written`) are
        the copy's rows. Returns how many citizens were written.
        """
        store = store or self.stores[0]
        written = 0
        with self._write(bulk=not replace) as cursor:
            current = self._lock_position(cursor, store)
            if current != since:
                raise PositionMoved(f"read model at {current}, writer expected {since}")
            if writer is not None and (last := self._last_writer(cursor, store)) != writer[0]:
                raise PositionMoved(f"read model last written by {last}, not {writer[0]}")
            with self._bulk_load(cursor) if not replace and self.bulk_indexes else nullcontext():
                chunk: list[CitizenRows] = []
                for citizen in citizens:
                    chunk.append(citizen)
                    if len(chunk) >= WRITE_CHUNK:
                        self._write_chunk(cursor, chunk, replace, outbox)
                        written += len(chunk)
                        chunk = []
                if chunk:
                    self._write_chunk(cursor, chunk, replace, outbox)
                    written += len(chunk)
            self._set_position(cursor, until, store, writer[1] if writer else 0)
        return written

    def _write_chunk(
        self, cursor: Any, chunk: Sequence[CitizenRows], replace: bool, outbox: bool
    ) -> None:
        p = self.paramstyle
        if outbox:
            cursor.executemany(
                f"INSERT INTO {OUTBOX_TABLE} (citizen_key) VALUES ({p}) "
                "ON CONFLICT (citizen_key) DO NOTHING",
                [[c.citizen_key] for c in chunk],
            )
        for table, columns in TABLES.items():
            if replace:
                change = self._changes(cursor, table, columns, chunk)
                if change.cleared:
                    cursor.executemany(f"DELETE FROM {table} WHERE citizen_key = {p}",
                                       change.cleared)  # fmt: skip
                if change.gone:
                    cursor.executemany(self._delete_one(table, columns), change.gone)
                if change.gone_ids:
                    cursor.executemany(
                        f"DELETE FROM {table} WHERE {self.row_id} = {p}", change.gone_ids
                    )
                rows = change.rows
            else:
                rows = [row for c in chunk for row in c.tables.get(table, ())]
            if rows:
                self._insert(cursor, table, columns, rows,
                             self._upsert(table, columns) if replace and table in _KEYED else "")

    def _upsert(self, table: str, columns: tuple[str, ...]) -> str:
        """The conflict clause that changes a keyed table's row in place: one statement where
        a delete and an insert were two, and the key's own index is left as it is."""
        return (" ON CONFLICT (citizen_key) DO UPDATE SET "
                + ", ".join(f"{column} = excluded.{column}" for column in columns[1:]))

    def _delete_one(self, table: str, columns: tuple[str, ...]) -> str:
        """Deletes one stored row equal to the bound values (NULL equal to NULL)."""
        p, same = self.paramstyle, self.same
        match = " AND ".join(
            [f"citizen_key = {p}"] + [f"{column} {same} {p}" for column in columns[1:]]
        )
        return (f"DELETE FROM {table} WHERE {self.row_id} = "
                f"(SELECT {self.row_id} FROM {table} WHERE {match} LIMIT 1)")  # fmt: skip

    def _changes(
        self, cursor: Any, table: str, columns: tuple[str, ...], chunk: Sequence[CitizenRows]
    ) -> _TableChange:
        """What turns `table`'s stored rows of the chunk's citizens into their new rows. A
        row stored and still wanted stays where it is (a live event changes a few of a
        citizen's rows, and every row rewritten costs its indexes). Where the writer knows
        the rows already there (`CitizenRows.written`), nothing is read: a citizen whose
        rows all went is cleared by key, and each other row gone is deleted by its values;
        the others' stored rows are read and the ones gone deleted by row id."""
        change = _TableChange()
        unknown: list[CitizenRows] = []
        keyed = table in _KEYED  # one row per citizen, changed in place (`_upsert`)
        for citizen in chunk:
            new = citizen.tables.get(table, [])
            if citizen.written is None:
                unknown.append(citizen)
                continue
            old = citizen.written.get(table, [])
            if new is old:  # taken from the rows last computed (`rows.Earlier`)
                continue
            if keyed:
                if new != old:
                    self._keyed_change(change, citizen.citizen_key, new)
                continue
            if new[: len(old)] == old:  # unchanged, or rows added after the old ones
                change.rows.extend(new[len(old) :])
                continue
            gone, added = _difference(old, new)
            if len(gone) == len(old):
                change.cleared.append([citizen.citizen_key])
            else:
                change.gone.extend(gone)
            change.rows.extend(added)
        if not unknown:
            return change
        stored: dict[str, list[tuple[Any, tuple[Any, ...]]]] = {}
        for row_id, *values in self._stored_rows(cursor, table, columns, unknown):
            stored.setdefault(values[0], []).append((row_id, tuple(values)))
        for citizen in unknown:
            new = citizen.tables.get(table, [])
            rows = stored.get(citizen.citizen_key, [])
            if len(rows) == len(new) and all(r[1] == n for r, n in zip(rows, new, strict=True)):
                continue  # unchanged, stored in the order computed (most tables of a touch)
            if keyed:
                self._keyed_change(change, citizen.citizen_key, new)
                continue
            wanted = Counter(new)
            for row_id, stored_row in rows:
                if wanted[stored_row] > 0:
                    wanted[stored_row] -= 1
                else:
                    change.gone_ids.append([row_id])
            change.rows.extend(wanted.elements())
        return change

    @staticmethod
    def _keyed_change(change: _TableChange, citizen_key: str, new: list[tuple[Any, ...]]) -> None:
        """A keyed table's row, changed: upserted (`_upsert`), or cleared if none is left."""
        if new:
            change.rows.extend(new)
        else:
            change.cleared.append([citizen_key])

    def _insert(
        self,
        cursor: Any,
        table: str,
        columns: tuple[str, ...],
        rows: list[tuple[Any, ...]],
        conflict: str = "",
    ) -> None:
        """Insert `rows`, `INSERT_ROWS` to a statement (binding them costs less than a
        statement each), the rest one by one; `conflict` ends each statement."""
        one = f"({', '.join([self.paramstyle] * len(columns))})"
        insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        whole = len(rows) - len(rows) % INSERT_ROWS
        if whole:
            cursor.executemany(
                insert + ", ".join([one] * INSERT_ROWS) + conflict,
                (list(chain.from_iterable(rows[n : n + INSERT_ROWS]))
                 for n in range(0, whole, INSERT_ROWS)),
            )  # fmt: skip
        if whole < len(rows):
            cursor.executemany(insert + one + conflict, rows[whole:])

    def _stored_rows(
        self, cursor: Any, table: str, columns: tuple[str, ...], chunk: Sequence[CitizenRows]
    ) -> Iterable[Sequence[Any]]:
        """`table`'s stored rows of the chunk's citizens, each led by its row id."""
        cursor.execute(
            f"SELECT {self.row_id}, {', '.join(columns)} FROM {table} "
            f"WHERE citizen_key = ANY({self.paramstyle})",
            [[c.citizen_key for c in chunk]],
        )
        rows: list[Sequence[Any]] = cursor.fetchall()
        return rows

    def _set_position(self, cursor: Any, position: int, store: str, writer: int = 0) -> None:
        p = self.paramstyle
        cursor.execute(
            f"UPDATE {TRACKING_TABLE} SET notification_id = {p}, writer = {p} "
            f"WHERE application_name = {p}",
            [position, writer, store],
        )

    def clear(self) -> None:
        """Forget every row and position, so the copy rebuilds from zero."""
        with self._write(bulk=True) as cursor:
            for table in TABLES:
                cursor.execute(f"DELETE FROM {table}")
            for store in self.stores:
                self._set_position(cursor, 0, store)

    def switch_from(self, source: ReadModelStore) -> int:
        """Replace every row and position with `source`'s, in one fenced transaction.

        Refused (`PositionMoved`) when the live copy is already further than `source`
        in any store: the caller catches `source` up and tries again.
        """
        targets = source.positions()
        with self._write(bulk=True) as cursor:
            for store in self.stores:
                current = self._lock_position(cursor, store)
                if current > targets.get(store, 0):
                    raise PositionMoved(
                        f"live read model at {current} of {store}, rebuilt copy at "
                        f"{targets.get(store, 0)}"
                    )
            for statement in self._copy_statements(source):
                cursor.execute(statement)
            for store in self.stores:
                self._set_position(cursor, targets.get(store, 0), store)
        return sum(targets.values())

    def checksum(self) -> str:
        """SHA-256 over every table's rows in a total order, as canonical JSON."""
        digest = hashlib.sha256()
        with self.read() as cursor:
            for table, columns in TABLES.items():
                digest.update(f"{table}\n".encode())
                cursor.execute(
                    f"SELECT {', '.join(columns)} FROM {table} ORDER BY {', '.join(columns)}"
                )
                while page := cursor.fetchmany(5000):
                    for row in page:
                        values = [int(v) if isinstance(v, bool) else v for v in row]
                        digest.update(orjson.dumps(values) + b"\n")
        return digest.hexdigest()

    def rows_of(self, table: str, citizen_keys: Sequence[str]) -> list[tuple[Any, ...]]:
        """The rows of `table` for these citizens (by citizen key)."""
        found: list[tuple[Any, ...]] = []
        with self.read() as cursor:
            for first in range(0, len(citizen_keys), 500):
                chunk = list(citizen_keys[first : first + 500])
                cursor.execute(
                    f"SELECT {', '.join(TABLES[table])} FROM {table} WHERE citizen_key IN "
                    f"({', '.join([self.paramstyle] * len(chunk))}) ORDER BY citizen_key",
                    chunk,
                )
                found.extend(tuple(row) for row in cursor.fetchall())
        return found

    def outbox(self, limit: int = 1000) -> list[str]:
        """Citizens waiting for the changelog publisher."""
        with self.read() as cursor:
            cursor.execute(f"SELECT citizen_key FROM {OUTBOX_TABLE} LIMIT {int(limit)}")
            return [str(row[0]) for row in cursor.fetchall()]

    def published(self, citizen_keys: Sequence[str]) -> None:
        """Take confirmed citizens off the outbox."""
        with self._write() as cursor:
            cursor.executemany(
                f"DELETE FROM {OUTBOX_TABLE} WHERE citizen_key = {self.paramstyle}",
                [[key] for key in citizen_keys],
            )

    def citizen_keys(self) -> list[str]:
        """Every citizen's key, in order."""
        with self.read() as cursor:
            cursor.execute("SELECT citizen_key FROM durations_citizen ORDER BY citizen_key")
            return [str(row[0]) for row in cursor.fetchall()]

    def row(self, table: str, citizen_key: str) -> dict[str, Any] | None:
        """A citizen's current-state row (`durations_citizen`, `coordination_citizen`)."""
        found = self.rows_of(table, [citizen_key])
        return dict(zip(TABLES[table], found[0], strict=True)) if found else None

    def count(self, table: str = "durations_citizen") -> int:
        with self.read() as cursor:
            cursor.execute(f"SELECT count(*) FROM {table}")
            return int(cursor.fetchone()[0])


class _PerThread:
    """One connection per thread (a server reads while its follower thread writes)."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def get(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
            with self._lock:
                self._all.append(connection)
        return connection

    def __len__(self) -> int:
        """Connections open (one per thread that used the store)."""
        with self._lock:
            return len(self._all)

    def close(self) -> None:
        with self._lock:
            for connection in self._all:
                connection.close()
            self._all.clear()
        self._local = threading.local()


SQLITE_CACHE_KIB = 64 * 1024
"""Page cache of each connection to a SQLite read model (SQLite's default is 2 MiB). A live
catch-up replaces a few dozen citizens' rows in every table and index, pages spread over
the whole file: with the default cache each catch-up read most of them from the file again
(50 citizens at a time: executemany 1.5 -> 0.8 s over 60 catch-ups, under load)."""
SORT_THREADS = 2
"""Helper threads of SQLite's sorter for a bulk load's index builds (`PRAGMA threads`)."""
SQLITE_TIMEOUT_S = 60
"""How long a connection waits for another's lock before giving up."""


def _copy_from(cursor: Any, shard: str, table: str, columns: Sequence[str]) -> str:
    """The INSERT of a shard's rows of `table` into the copy's. `SELECT *` when both
    tables have the same columns in the same order: SQLite then copies each row's record
    as it is, without decoding it (its transfer optimisation, taken when the copy's table
    has no index: at 100,000 citizens 1.9 -> 1.0 s of CPU); else column by column."""
    listed = ", ".join(columns)
    same = [cursor.execute(f"PRAGMA {schema}.table_info({table})").fetchall()
            for schema in ("main", shard)]  # fmt: skip
    if same[0] == same[1]:
        return f"INSERT INTO main.{table} SELECT * FROM {shard}.{table}"
    return f"INSERT INTO main.{table} ({listed}) SELECT {listed} FROM {shard}.{table}"


def _refresh_statistics(cursor: Any) -> None:
    """Statistics that keep up with a copy grown by live writes (most often a no-op), in
    the live write's transaction.

    A copy filled from a small store keeps the statistics of its bulk load: with them,
    reading 50 citizens' rows by key looked cheaper as a scan of every table (42 rows
    then, 27,000 later: 2.7 ms per table instead of 0.1). SQLite analyses again a table
    the connection has read that has grown 25-fold since: a whole ANALYZE each time (a
    sampled one misleads the planner where an index leads with a column of few values,
    see bench/NOTES.md), so its cost over the copy's growth stays linear in its size."""
    cursor.execute("PRAGMA optimize")


class SQLiteReadModel(ReadModelStore):
    """The read model in one SQLite file (the embedded default).

    `scratch` is for a file that is thrown away if anything fails (a rebuild worker's
    shard): no journal and no syncing, so every page is written once.

    `private` is for a copy that only its rebuild opens (the blue/green copy): filled
    from empty while it has no other connection, it takes its rows under a rollback
    journal (`load_shards`).
    """

    def __init__(
        self, path: Path, application_name: str, stores: Sequence[str] = (), *,
        scratch: bool = False, private: bool = False,
    ) -> None:
        super().__init__(application_name, stores)
        self.path = path
        self.scratch = scratch
        self.private = private
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connections = _PerThread(self._connect)
        self._checkpointer = WalCheckpointer(path)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False,
            timeout=SQLITE_TIMEOUT_S,
        )
        connection.execute(f"PRAGMA journal_mode={'OFF' if self.scratch else 'WAL'}")
        connection.execute(f"PRAGMA synchronous={'OFF' if self.scratch else 'NORMAL'}")
        connection.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        connection.execute("PRAGMA wal_autocheckpoint=0")  # see `WalCheckpointer`
        return connection

    @property
    def connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection = self._connections.get()
        return connection

    @contextmanager
    def _write(self, bulk: bool = False) -> Iterator[Any]:
        cursor = self.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
            if not bulk and not self.scratch:
                _refresh_statistics(cursor)
        except BaseException:
            self.connection.rollback()
            raise
        self.connection.commit()
        if bulk:  # the writer pays for copying its own bulk into the file, as before
            self.connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        elif not self.scratch:  # a scratch file has no log to copy
            self._checkpointer.committed()

    @contextmanager
    def read(self) -> Iterator[Any]:
        cursor = self.connection.cursor()
        cursor.execute("BEGIN")
        try:
            yield cursor
        finally:
            self.connection.rollback()

    def _stored_rows(
        self, cursor: Any, table: str, columns: tuple[str, ...], chunk: Sequence[CitizenRows]
    ) -> Iterable[Sequence[Any]]:
        """One lookup per citizen: a list of keys (`IN`) is planned from statistics, and
        those of a copy still growing made a scan of the whole table look cheaper."""
        select = f"SELECT rowid, {', '.join(columns)} FROM {table} WHERE citizen_key = ?"
        for citizen in chunk:
            yield from cursor.execute(select, [citizen.citizen_key])

    def _columns(self, cursor: Any, table: str) -> set[str]:
        cursor.execute(f"PRAGMA table_info({table})")
        return {str(row[1]) for row in cursor.fetchall()}

    def _lock_position(self, cursor: Any, store: str) -> int:  # BEGIN IMMEDIATE: write lock
        cursor.execute(
            f"SELECT notification_id FROM {TRACKING_TABLE} WHERE application_name = ?",
            [store],
        )
        found = cursor.fetchone()
        return int(found[0]) if found else 0

    def load_shards(
        self, shards: Sequence[Path], *, since: int, until: int, outbox: bool = False,
        store: str | None = None,
    ) -> None:
        """Take every row of the shard files (read models written without indexes, one
        per rebuild worker) and move `store`'s position from `since` to `until`, in one
        fenced transaction; the store's citizens must have no rows yet. Indexes are
        built once, at the end (`_filling`)."""
        store = store or self.stores[0]
        names = [f"shard{index}" for index in range(len(shards))]
        with self._filling():
            for name, path in zip(names, shards, strict=True):
                self.connection.execute(f"ATTACH DATABASE ? AS {name}", [str(path)])
            try:
                with self._write(bulk=True) as cursor:
                    current = self._lock_position(cursor, store)
                    if current != since:
                        raise PositionMoved(f"read model at {current}, writer expected {since}")
                    if self.bulk_indexes:
                        _drop_indexes(cursor)
                    for name in names:
                        for table, columns in TABLES.items():
                            cursor.execute(_copy_from(cursor, name, table, columns))
                        if outbox:
                            cursor.execute(
                                f"INSERT OR IGNORE INTO main.{OUTBOX_TABLE} (citizen_key) "
                                f"SELECT citizen_key FROM {name}.durations_citizen"
                            )
                    if self.bulk_indexes:  # statistics of this copy only, not of the shards
                        cursor.execute(f"PRAGMA threads={SORT_THREADS}")
                        _create_indexes(cursor, "ANALYZE main")
                    self._set_position(cursor, until, store)
            finally:
                for name in names:
                    self.connection.execute(f"DETACH DATABASE {name}")

    @contextmanager
    def _filling(self) -> Iterator[None]:
        """One transaction that fills the copy. A private copy with no other connection
        is filled under a rollback journal: every page goes into the file once, not into
        the write-ahead log and then again by a checkpoint (at 100,000 citizens a 657 MB
        log, 2.5-4.3 s of checkpoint). A crash leaves the journal, and the next
        connection rolls the fill back (an empty copy at its old position). The commit
        syncs (`synchronous=FULL`); the copy goes back to its write-ahead log after it."""
        connection = self.connection
        rollback = False
        try:
            if self.private and len(self._connections) == 1:
                with self._checkpointer.stopped():
                    rollback = self._journal("TRUNCATE")
            if rollback:
                connection.execute("PRAGMA synchronous=FULL")
            yield
        finally:
            if rollback:
                with self._checkpointer.stopped():
                    self._journal("WAL", wait=True)
                connection.execute("PRAGMA synchronous=NORMAL")

    def _journal(self, mode: str, wait: bool = False) -> bool:
        """Switch the file's journal mode; without `wait`, give up at once if another
        connection holds it open. Returns whether the switch was made."""
        connection = self.connection
        if not wait:
            connection.execute("PRAGMA busy_timeout=0")
        try:
            found = connection.execute(f"PRAGMA main.journal_mode={mode}").fetchone()
        except sqlite3.OperationalError:
            if wait:
                raise
            return False
        finally:
            connection.execute(f"PRAGMA busy_timeout={SQLITE_TIMEOUT_S * 1000}")
        return str(found[0]).upper() == mode

    def switch_from(self, source: ReadModelStore) -> int:
        assert isinstance(source, SQLiteReadModel)
        self.connection.execute("ATTACH DATABASE ? AS fresh", [str(source.path)])
        try:
            return super().switch_from(source)
        finally:
            self.connection.execute("DETACH DATABASE fresh")

    def _copy_statements(self, source: ReadModelStore) -> Iterator[str]:
        for table in TABLES:
            yield f"DELETE FROM main.{table}"
            yield f"INSERT INTO main.{table} SELECT * FROM fresh.{table}"

    def close(self) -> None:
        self._checkpointer.close()
        self._connections.close()


class PostgresReadModel(ReadModelStore):
    """The read model in one PostgreSQL schema (`public` live, another for a rebuild)."""

    paramstyle = "%s"
    dialect = "postgres"
    row_id = "ctid"
    same = "IS NOT DISTINCT FROM"

    def __init__(
        self, url: str, application_name: str, schema: str = "public", stores: Sequence[str] = ()
    ) -> None:
        super().__init__(application_name, stores)
        self.schema = schema
        self.url = url
        if schema != "public":
            create_schema(url, schema)
        self._connections = _PerThread(self._connect)
        self._loading = threading.local()

    def _connect(self) -> Any:
        import psycopg

        connection = psycopg.connect(self.url, autocommit=True)
        connection.execute(f'SET search_path TO "{self.schema}"')
        return connection

    @property
    def connection(self) -> Any:
        return self._connections.get()

    @contextmanager
    def _write(self, bulk: bool = False) -> Iterator[Any]:
        """A bulk transaction commits synchronously whatever the server's setting: until
        its commit is flushed, a vacuum cannot mark the pages it wrote all-visible."""
        with self.connection.transaction(), self.connection.cursor() as cursor:
            if bulk:
                cursor.execute("SET LOCAL synchronous_commit = on")
            yield cursor

    @contextmanager
    def _bulk_load(self, cursor: Any) -> Iterator[None]:
        """The copy's tables, when empty, truncated in the load's transaction, so that its
        rows are copied in frozen (`COPY ... FREEZE`: its pages marked all-visible, so the
        reports' index-only scans read no table row; at 100,000 citizens without it the
        durations export took 0.88 s until a VACUUM, 0.52-0.57 s after one). They are
        locked first: another store's load that found the copy empty too may have filled
        it since (one follower thread per store)."""
        tables = ", ".join(TABLES)
        cursor.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
        cursor.execute("SELECT " + " OR ".join(f"EXISTS (SELECT FROM {t})" for t in TABLES))
        if not cursor.fetchone()[0]:
            cursor.execute(f"TRUNCATE {tables}")
            self._loading.frozen = True
        try:
            with super()._bulk_load(cursor):
                yield
        finally:
            self._loading.frozen = False

    @contextmanager
    def read(self) -> Iterator[Any]:
        """A read-only snapshot without JIT compilation: the reports' per-citizen sub-plans
        make the planner's estimates high, and compiling them took longer than running
        them (10,000 citizens: the per-citizen coordination 4.1-4.7 s with JIT, 0.5 s
        without; the durations export 2.1-2.8 s, 0.23-0.39 s)."""
        with (
            self.connection.transaction(),
            self.connection.cursor() as cursor,
        ):
            cursor.execute(
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL jit = off"
            )
            yield cursor

    def _columns(self, cursor: Any, table: str) -> set[str]:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = %s",
            [self.schema, table],
        )
        return {str(row[0]) for row in cursor.fetchall()}

    def _lock_position(self, cursor: Any, store: str) -> int:
        cursor.execute(
            f"SELECT notification_id FROM {TRACKING_TABLE} WHERE application_name = %s "
            "FOR UPDATE",
            [store],
        )
        found = cursor.fetchone()
        return int(found[0]) if found else 0

    def _insert(
        self,
        cursor: Any,
        table: str,
        columns: tuple[str, ...],
        rows: list[tuple[Any, ...]],
        conflict: str = "",
    ) -> None:
        if conflict:  # COPY has no conflict clause
            super()._insert(cursor, table, columns, rows, conflict)
            return
        frozen = " (FREEZE)" if getattr(self._loading, "frozen", False) else ""
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN{frozen}") as copy:
            for row in rows:
                copy.write_row(row)

    def switch_from(self, source: ReadModelStore) -> int:
        """As on every backend, then each table vacuumed: the rows the switch deleted go,
        and the pages it filled are marked all-visible, so the reports' index-only scans
        read no table row (at 100,000 citizens the durations export 0.76-0.86 s after a
        switch, 0.52-0.54 s after the vacuum, which took 0.45 s)."""
        moved = super().switch_from(source)
        for table in TABLES:
            self.connection.execute(f"VACUUM {table}")
        return moved

    def _copy_statements(self, source: ReadModelStore) -> Iterator[str]:
        assert isinstance(source, PostgresReadModel)
        for table in TABLES:
            yield f'DELETE FROM "{self.schema}".{table}'
            yield f'INSERT INTO "{self.schema}".{table} SELECT * FROM "{source.schema}".{table}'

    def close(self) -> None:
        self._connections.close()
