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
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier

LEDGER_TABLE = "ingest_ledger"
HEADS_TABLE = "citizen_heads"
INDEX_TABLE = "event_index"
FENCE_TABLE = "writer_fence"


class WriterFenced(Exception):
    """A newer writer took these partitions over: this one's append is refused."""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """What became of one input position."""

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


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """Who holds an event id, and with which content (keyed digests of id and content)."""

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
        if entries:
            m = self.ledger_marker
            c.executemany(
                f"INSERT INTO {self.ledger_table} (source, position, outcome, reason) "
                f"VALUES ({m}, {m}, {m}, {m}) ON CONFLICT (source, position) DO NOTHING",
                [(e.source, e.position, e.outcome, e.reason) for e in entries],
            )
        self._write_heads(c, kwargs.get("heads") or {}, kwargs.get("index") or [])
        return result

    def _check_fence(self, c: Any, fence: dict[str, int]) -> None:
        m = self.ledger_marker
        marks = ", ".join([m] * len(fence))
        c.execute(
            f"SELECT source, generation FROM {self.fence_table} "
            f"WHERE source IN ({marks}){self.hold_row}",
            list(fence),
        )
        held = {
            source: int(generation)
            for source, generation in (
                tuple(row.values()) if isinstance(row, dict) else tuple(row)
                for row in c.fetchall()
            )
        }
        lost = sorted(source for source, generation in fence.items()
                      if held.get(source) != generation)
        if lost:
            raise WriterFenced(f"a newer writer took over {', '.join(lost)}")

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
        m = self.ledger_marker
        if heads:
            c.executemany(
                f"INSERT INTO {self.heads_table} (citizen_key, version, chain_hash) "
                f"VALUES ({m}, {m}, {m}) ON CONFLICT (citizen_key) DO UPDATE SET "
                "version = excluded.version, chain_hash = excluded.chain_hash",
                [(key, version, chain) for key, (version, chain) in heads.items()],
            )
        if index:
            # A backfill keeps the first holder of an id that an older store gave twice.
            tail = " ON CONFLICT (event_key) DO NOTHING" if backfill else ""
            c.executemany(
                f"INSERT INTO {self.index_table} (event_key, citizen_key, content_key) "
                f"VALUES ({m}, {m}, {m}){tail}",
                [(e.event_key, e.citizen_key, e.content_key) for e in index],
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
        rows: list[tuple[Any, ...]] = []
        unique = list(dict.fromkeys(values))
        with self.datastore.transaction(commit=False) as c:
            for first in range(0, len(unique), 500):
                chunk = unique[first : first + 500]
                marks = ", ".join([self.ledger_marker] * len(chunk))
                c.execute(f"{select} WHERE {column} IN ({marks})", chunk)
                rows.extend(
                    tuple(row.values()) if isinstance(row, dict) else tuple(row)
                    for row in c.fetchall()
                )
        return rows

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


class SQLiteLedgerRecorder(LedgerMixin, SQLiteApplicationRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            _ledger_ddl(LEDGER_TABLE),
            *_heads_ddl(HEADS_TABLE, INDEX_TABLE),
            _fence_ddl(FENCE_TABLE),
        ]


class PostgresLedgerRecorder(LedgerMixin, PostgresApplicationRecorder):  # type: ignore[misc]
    ledger_marker = "%s"
    hold_row = " FOR SHARE"
    notification_ids_contiguous = False  # a rolled-back append spends sequence values

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
        self.sql_create_statements.extend(
            SQL(statement)  # type: ignore[misc]
            for statement in [
                _ledger_ddl(self.ledger_table), *_heads_ddl(self.heads_table, self.index_table),
                _fence_ddl(self.fence_table),
            ]
        )
