"""Event-store recorders that also keep the ingest ledger and the citizens' heads.

The ledger says what became of every input position (a Kafka offset, a line of
a file): stored, duplicate or dead-lettered. It is written in the transaction
that appends the batch's events, so `reconcile` can prove that every offset is
accounted for exactly as the store says.

The heads (`citizen_heads`: each citizen's version and chain hash) and the
event index (`event_index`: which citizen holds an event id, with which
content, both as keyed digests) are written in that transaction too, so
appending to a citizen never reads its history (see `CaseHistory.heads`).
A second writer storing the same event id, under any citizen, fails on the
index's primary key and retries into a duplicate or a conflict.

The writer fence (`writer_fence`: a generation per source, i.e. per Kafka
partition) stops a zombie: a writer that takes a partition over bumps its
generation (`take_over`) before reading where to resume, and every append that
names the partition checks, in its own transaction, that the generation is
still the one it took (`WriterFenced` otherwise). On PostgreSQL the check
holds the fence row (`FOR SHARE`), so a take-over waits for an append in flight
and the append after it is refused.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier

LEDGER_TABLE = "ingest_ledger"
HEADS_TABLE = "citizen_heads"
INDEX_TABLE = "event_index"
FENCE_TABLE = "writer_fence"


class WriterFenced(Exception):
    """A newer writer took these partitions over: this one's append is refused."""


class LedgerEntry(NamedTuple):
    """What became of one input position (a named tuple: one is made per record)."""

    source: str
    """`topic:partition` for Kafka, `file:` and the full resolved path for files."""
    position: int
    outcome: str
    reason: str | None = None


def _ledger_ddl(table: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {table} ("
        "source TEXT NOT NULL, position BIGINT NOT NULL, outcome TEXT NOT NULL, reason TEXT, "
        "PRIMARY KEY (source, position))"
    )


def _heads_ddl(heads: str, index: str) -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {heads} (citizen_key TEXT PRIMARY KEY, "
        "version BIGINT NOT NULL, chain_hash TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {index} (event_key TEXT PRIMARY KEY, "
        "citizen_key TEXT NOT NULL, content_key TEXT NOT NULL)",
    ]


def _fence_ddl(table: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {table} "
        "(source TEXT PRIMARY KEY, generation BIGINT NOT NULL)"
    )


Columns = tuple[tuple[str, str], ...]
"""A table's columns written by the writers: name and PostgreSQL type."""
LEDGER_COLUMNS: Columns = (
    ("source", "text"), ("position", "bigint"), ("outcome", "text"), ("reason", "text"),
)
HEADS_COLUMNS: Columns = (("citizen_key", "text"), ("version", "bigint"), ("chain_hash", "text"))
INDEX_COLUMNS: Columns = (
    ("event_key", "text"), ("citizen_key", "text"), ("content_key", "text"),
)


def _tuples(rows: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
    """Rows as tuples, whether the driver gives tuples or dicts."""
    return (tuple(row.values()) if isinstance(row, dict) else tuple(row) for row in rows)


class IndexEntry(NamedTuple):
    """Who holds an event id, and with which content (keyed digests of id and content; a
    named tuple: one is made per stored event)."""

    event_key: str
    citizen_key: str
    content_key: str


class LedgerMixin:
    """Writes `ledger=`, `heads=` and `index=` passed to `Application.save` beside the events."""

    datastore: Any
    ledger_marker = "?"
    ledger_table = LEDGER_TABLE
    """The table's name as written in SQL (on PostgreSQL, in the store's schema)."""
    heads_table = HEADS_TABLE
    index_table = INDEX_TABLE
    fence_table = FENCE_TABLE
    hold_row = ""
    """Appended to the fence check's SELECT to hold the rows until commit."""
    notification_ids_contiguous = True
    """Whether a skipped notification id means a removed record (see `services.verify`)."""

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        fence: dict[str, int] | None = kwargs.get("fence")
        if fence:
            self._check_fence(c, fence)
        result = super()._insert_events(c, stored_events, **kwargs)  # type: ignore[misc]
        entries: list[LedgerEntry] = kwargs.get("ledger") or []
        self._insert_rows(
            c, self.ledger_table, LEDGER_COLUMNS,
            list(entries),
            " ON CONFLICT (source, position) DO NOTHING",
        )
        self._write_heads(c, kwargs.get("heads") or {}, kwargs.get("index") or [])
        return result

    def _check_fence(self, c: Any, fence: dict[str, int]) -> None:
        held = {
            source: int(generation)
            for source, generation in self._where_in(
                c, f"SELECT source, generation FROM {self.fence_table}", "source", list(fence),
                self.hold_row,
            )
        }
        lost = sorted(source for source, generation in fence.items()
                      if held.get(source) != generation)
        if lost:
            raise WriterFenced(f"a newer writer took over {', '.join(lost)}")

    def check_fence(self, fence: dict[str, int]) -> None:
        """Raise `WriterFenced` if a newer writer took any of these sources over."""
        with self.datastore.transaction(commit=False) as c:
            self._check_fence(c, fence)

    def take_over(self, sources: Sequence[str]) -> dict[str, int]:
        """Become these sources' writer: bump and return each one's generation."""
        m = self.ledger_marker
        with self.datastore.transaction(commit=True) as c:
            for source in sources:
                c.execute(
                    f"INSERT INTO {self.fence_table} (source, generation) VALUES ({m}, 0) "
                    "ON CONFLICT (source) DO NOTHING",
                    (source,),
                )
                c.execute(
                    f"UPDATE {self.fence_table} SET generation = generation + 1 "
                    f"WHERE source = {m}",
                    (source,),
                )
        return {
            source: int(generation)
            for source, generation in self._select_in(
                f"SELECT source, generation FROM {self.fence_table}", "source", sources
            )
        }

    def ledger_ends(self, sources: Sequence[str]) -> dict[str, int]:
        """The last position the ledger holds for each of these sources that has any."""
        m = self.ledger_marker
        ends: dict[str, int] = {}
        with self.datastore.transaction(commit=False) as c:
            for source in sources:
                c.execute(
                    f"SELECT max(position) AS end FROM {self.ledger_table} WHERE source = {m}",
                    (source,),
                )
                row = c.fetchone()
                end = (tuple(row.values()) if isinstance(row, dict) else tuple(row))[0]
                if end is not None:
                    ends[source] = int(end)
        return ends

    def _write_heads(
        self, c: Any, heads: dict[str, tuple[int, str]], index: Sequence[IndexEntry],
        *, backfill: bool = False,
    ) -> None:
        self._insert_rows(
            c, self.heads_table, HEADS_COLUMNS,
            [(key, version, chain) for key, (version, chain) in heads.items()],
            " ON CONFLICT (citizen_key) DO UPDATE SET "
            "version = excluded.version, chain_hash = excluded.chain_hash",
        )
        # A backfill keeps the first holder of an id that an older store gave twice.
        self._insert_rows(
            c, self.index_table, INDEX_COLUMNS,
            list(index),
            " ON CONFLICT (event_key) DO NOTHING" if backfill else "",
        )

    def backfill_heads(
        self, heads: dict[str, tuple[int, str]], index: Sequence[IndexEntry]
    ) -> None:
        """Write heads and index entries derived from stored events (an older store)."""
        with self.datastore.transaction(commit=True) as c:
            self._write_heads(c, heads, index, backfill=True)

    def has_heads(self) -> bool:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT 1 FROM {self.heads_table} LIMIT 1")
            return bool(c.fetchall())

    def heads(self, citizen_keys: Sequence[str]) -> dict[str, tuple[int, str]]:
        """Version and chain hash of those of these citizens that have events."""
        return {
            key: (int(version), chain)
            for key, version, chain in self._select_in(
                f"SELECT citizen_key, version, chain_hash FROM {self.heads_table}",
                "citizen_key", citizen_keys,
            )
        }

    def index_entries(self, event_keys: Sequence[str]) -> list[IndexEntry]:
        return [
            IndexEntry(*row)
            for row in self._select_in(
                f"SELECT event_key, citizen_key, content_key FROM {self.index_table}",
                "event_key", event_keys,
            )
        ]

    def _select_in(self, select: str, column: str, values: Sequence[str]) -> list[tuple[Any, ...]]:
        with self.datastore.transaction(commit=False) as c:
            return self._where_in(c, select, column, list(dict.fromkeys(values)))

    def _where_in(
        self, c: Any, select: str, column: str, values: list[Any], tail: str = ""
    ) -> list[tuple[Any, ...]]:
        """The rows of `select` whose `column` is one of `values`, as tuples."""
        rows: list[tuple[Any, ...]] = []
        for first in range(0, len(values), 500):
            chunk = values[first : first + 500]
            marks = ", ".join([self.ledger_marker] * len(chunk))
            c.execute(f"{select} WHERE {column} IN ({marks}){tail}", chunk)
            rows.extend(_tuples(c.fetchall()))
        return rows

    def _insert_rows(
        self, c: Any, table: str, columns: Columns, rows: list[tuple[Any, ...]], tail: str = ""
    ) -> None:
        """INSERT these rows into `table` (`tail`: an ON CONFLICT clause)."""
        if rows:
            marks = ", ".join([self.ledger_marker] * len(columns))
            names = ", ".join(name for name, _ in columns)
            c.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks}){tail}", rows)

    def ledger(self, source_prefix: str = "") -> Iterator[LedgerEntry]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT source, position, outcome, reason FROM {self.ledger_table} "
                f"WHERE source LIKE {self.ledger_marker} ORDER BY source, position",
                (source_prefix + "%",),
            )
            rows = c.fetchall()
        for row in rows:
            values = tuple(row.values()) if isinstance(row, dict) else tuple(row)
            yield LedgerEntry(*values)


SQLITE_CACHE_KIB = 64 * 1024
"""Page cache of each connection to a SQLite event store (SQLite's default is 2 MiB).

Appends land at random places of the primary-key, heads and event-index B-trees (keyed
by pseudonyms and digests), so once a store outgrows the cache nearly every append
reads its pages from the file again: on a 100,000-citizen ingest with the default cache,
system time per event rose from 47 to 131 us between 0.2M and 1.7M stored events. On a
copy of that store this cache took system time from 76 to 54 us per event; total CPU
per event stayed within noise, since the dirtied pages are still written."""


SQLITE_CHECKPOINT_PAGES = 64 * 1024
"""Pages the write-ahead log of a SQLite event store grows to before a commit copies them
into the store (`wal_autocheckpoint`; SQLite's default is 1,000).

A batch of appends dirties pages all over the store's keyed B-trees (tens of thousands
once the store is large), so with a short log every commit copied its whole batch into
the file again; with a longer one a page dirtied by several batches (the heads' and
anchors' are, every batch) is copied once. 1,000 to 16,384 pages: a commit's CPU per
appended event 37 to 23-25 us (a copy of a 268,000-event store). 16,384 to 65,536: a
100,000-citizen file ingest 5% less time per event (87.7 and 89.6 against 93.8 and 93.1
us, alternating runs; bench/NOTES.md). The log grows to this many pages plus one commit's
and keeps that size while the store is open: 503 MiB in that ingest's batches of 50,000."""


class SQLiteEventsAtOnce:
    """eventsourcing's SQLite insert of a batch's events as one `executemany` (it executes
    one statement per event, through its cursor wrapper, for each row id).

    The writer holds the store's write lock, so the rows of one statement take consecutive
    row ids ending at the last one inserted: the notification ids are computed from it.
    """

    insert_events_statement: str

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **_: Any) -> Any:
        if not stored_events:
            return []
        c.executemany(self.insert_events_statement, [
            (e.originator_id.hex if isinstance(e.originator_id, UUID) else e.originator_id,
             e.originator_version, e.topic, e.state)
            for e in stored_events
        ])  # fmt: skip
        c.execute("SELECT last_insert_rowid()")
        last = int(c.fetchone()[0])
        return list(range(last - len(stored_events) + 1, last + 1))


class SQLiteLedgerRecorder(LedgerMixin, SQLiteEventsAtOnce, SQLiteApplicationRecorder):
    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        pool = datastore.pool
        create = pool._create_connection

        def create_with_cache() -> Any:
            connection = create()
            connection._sqlite_conn.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            connection._sqlite_conn.execute(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")
            return connection

        # The datastore opens its connections lazily, after the recorder is made.
        pool._create_connection = create_with_cache

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            *map(without_rowid, [
                _ledger_ddl(LEDGER_TABLE), *_heads_ddl(HEADS_TABLE, INDEX_TABLE),
                _fence_ddl(FENCE_TABLE),
            ]),
        ]  # fmt: skip


def without_rowid(ddl: str) -> str:
    """A SQLite table kept as one B-tree on its primary key (`WITHOUT ROWID`).

    A rowid table with a text primary key is two B-trees: the rows in rowid order and
    an index on the key. The event index's and the heads' keys are keyed digests, so
    every append lands at a random place of the index; one tree halves the pages each
    batch dirties and the store's size on them (measured in bench/NOTES.md). Stores
    made before keep their tables: the statements that read and write them are the same.
    """
    return f"{ddl} WITHOUT ROWID"


SEPARATOR, NULL = "\x1f", "\x1e"


def _array(values: list[Any], kind: str) -> tuple[str, Any]:
    """A column of values as one parameter, and its expression (an array of `kind`).

    psycopg dumps an array element by element in Python; the values joined in one text
    (split again by the server) cost a fraction. Values holding the separator, or equal to
    the null mark, go as a binary array.
    """
    if None in values:
        texts = [NULL if value is None else str(value) for value in values]
    else:  # a text column holds str already
        texts = values if kind == "text" else list(map(str, values))
    joined = SEPARATOR.join(texts)
    if joined and joined.count(SEPARATOR) == len(texts) - 1 and NULL not in values:
        return f"string_to_array(%s, chr(31), chr(30))::{kind}[]", joined
    return f"%b::{kind}[]", values


class PostgresLedgerRecorder(LedgerMixin, PostgresApplicationRecorder):  # type: ignore[misc]
    ledger_marker = "%s"
    hold_row = " FOR SHARE"
    notification_ids_contiguous = False  # a rolled-back append spends sequence values

    def _where_in(
        self, c: Any, select: str, column: str, values: list[Any], tail: str = ""
    ) -> list[tuple[Any, ...]]:
        """One statement, whatever the number of values (the same text for every batch)."""
        if not values:
            return []
        c.execute(f"{select} WHERE {column} = ANY(%b){tail}", (values,))
        return list(_tuples(c.fetchall()))

    def _insert_rows(
        self, c: Any, table: str, columns: Columns, rows: list[tuple[Any, ...]], tail: str = ""
    ) -> None:
        """One INSERT of every row (a column an array), not one statement per row."""
        if rows:
            names = ", ".join(name for name, _ in columns)
            arrays, params = zip(*(
                _array(list(values), kind)
                for (_, kind), values in zip(columns, zip(*rows, strict=True), strict=True)
            ), strict=True)
            c.execute(
                f"INSERT INTO {table} ({names}) SELECT * FROM unnest({', '.join(arrays)}){tail}",
                params,
            )

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """eventsourcing's insert (the same statements, retries and errors) in one
        transaction without pipeline mode.

        In pipeline mode a batch's large parameters could stay in the client's send
        buffer while client and server each waited for the other (psycopg issue 685):
        a test's ingest hung in `Pipeline.sync`, its server in `ClientRead`, for 11
        minutes. Without the pipeline each statement is one round trip to the server, a
        handful per batch."""
        with self.datastore.get_connection() as conn, conn.transaction():
            with conn.cursor() as curs:
                self._insert_events(curs, stored_events, **kwargs)
            if not stored_events:
                return None
            with conn.cursor() as curs:
                self._insert_stored_events(curs, stored_events, **kwargs)
                ids: Sequence[int] | None = self._fetch_ids_after_insert_events(
                    curs, stored_events, **kwargs
                )
                return ids

    def _insert_stored_events(self, curs: Any, stored_events: Sequence[StoredEvent],
                              **kwargs: Any) -> None:
        """eventsourcing's insert (after its table lock), with the events as one array per
        column: its array of composite values is dumped as text in Python, bytes escaped."""
        self._lock_table(curs)
        self._notify_channel(curs)
        ids = {i: str(i) for i in dict.fromkeys(e.originator_id for e in stored_events)}
        columns = [
            _array([ids[e.originator_id] for e in stored_events],
                   self.datastore.originator_id_type),
            _array([e.originator_version for e in stored_events], "bigint"),
            _array([e.topic for e in stored_events], "text"),
            ("%b::bytea[]", [e.state for e in stored_events]),
        ]
        arrays = ", ".join(array for array, _ in columns)
        curs.execute(
            f"{self._insert_columns}SELECT * FROM unnest({arrays}) RETURNING notification_id",
            [values for _, values in columns],
        )

    def _notify_channel(self, curs: Any) -> None:
        """Send no NOTIFY: nothing LISTENs (read models poll the store), and every
        notifying transaction takes one instance-wide lock at commit, which the
        writers of different partition groups' stores would otherwise queue on."""

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        # In the schema POSTGRES_SCHEMA names, beside the events table.
        self.ledger_table, self.heads_table, self.index_table, self.fence_table = (
            SQL("{}.{}").format(Identifier(datastore.schema), Identifier(name)).as_string(None)
            for name in (LEDGER_TABLE, HEADS_TABLE, INDEX_TABLE, FENCE_TABLE)
        )
        self._insert_columns = SQL(
            "INSERT INTO {}.{} (originator_id, originator_version, topic, state) "
        ).format(Identifier(datastore.schema), Identifier(self.events_table_name)).as_string(None)
        self.sql_create_statements.extend(
            SQL(statement)  # type: ignore[misc]
            for statement in [
                _ledger_ddl(self.ledger_table), *_heads_ddl(self.heads_table, self.index_table),
                _fence_ddl(self.fence_table),
            ]
        )
