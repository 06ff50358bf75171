"""Event-store recorders that also keep the ingest ledger, in the same transaction.

The ledger says what became of every input position (a Kafka offset, a line of
a file): stored, duplicate or dead-lettered. It is written in the transaction
that appends the batch's events, so `reconcile` can prove that every offset is
accounted for exactly as the store says.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier

LEDGER_TABLE = "ingest_ledger"


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


class LedgerMixin:
    """Writes `ledger=` entries passed to `Application.save` beside the events."""

    datastore: Any
    ledger_marker = "?"
    ledger_table = LEDGER_TABLE
    """The table's name as written in SQL (on PostgreSQL, in the store's schema)."""
    notification_ids_contiguous = True
    """Whether a skipped notification id means a removed record (see `casehistory.verify`)."""

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        result = super()._insert_events(c, stored_events, **kwargs)  # type: ignore[misc]
        entries: list[LedgerEntry] = kwargs.get("ledger") or []
        if entries:
            m = self.ledger_marker
            c.executemany(
                f"INSERT INTO {self.ledger_table} (source, position, outcome, reason) "
                f"VALUES ({m}, {m}, {m}, {m}) ON CONFLICT (source, position) DO NOTHING",
                [(e.source, e.position, e.outcome, e.reason) for e in entries],
            )
        return result

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
        return [*super().construct_create_table_statements(), _ledger_ddl(LEDGER_TABLE)]

    def existing_originators(self, originator_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these aggregates have stored events (one query per 500 ids)."""
        found: set[UUID] = set()
        for first in range(0, len(originator_ids), 500):
            chunk = [i.hex for i in originator_ids[first : first + 500]]
            with self.datastore.transaction(commit=False) as c:
                c.execute(
                    f"SELECT DISTINCT originator_id FROM {self.events_table_name} "
                    f"WHERE originator_id IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                found.update(UUID(hex=row["originator_id"]) for row in c.fetchall())
        return found


class PostgresLedgerRecorder(LedgerMixin, PostgresApplicationRecorder):  # type: ignore[misc]
    ledger_marker = "%s"
    notification_ids_contiguous = False  # a rolled-back append spends sequence values

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        # In the schema POSTGRES_SCHEMA names, beside the events table.
        self.ledger_table = SQL("{}.{}").format(
            Identifier(datastore.schema), Identifier(LEDGER_TABLE)
        ).as_string(None)
        self.sql_create_statements.append(SQL(_ledger_ddl(self.ledger_table)))  # type: ignore[arg-type]

    def existing_originators(self, originator_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these aggregates have stored events (one query)."""
        statement = SQL(
            "SELECT DISTINCT originator_id FROM {schema}.{table} WHERE originator_id = ANY(%s)"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, [list(originator_ids)])
            return {row["originator_id"] for row in curs.fetchall()}
