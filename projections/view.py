"""What every per-citizen read model shares, on SQLite and PostgreSQL.

A view is one table keyed by `citizen_key` beside eventsourcing's tracking
table. Rows and the tracking position are always written in one transaction,
so each notification is applied exactly once; `replace_all` swaps in a rebuilt
copy the same way. `checksum` is a content hash of every row, so "the rebuilt
view equals the live view" is a one-line comparison.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any, ClassVar, Generic, TypeVar

from eventsourcing.persistence import Tracking

from projections.sql import marker, upsert_statement

Row = TypeVar("Row")


class CitizenViewMixin(Generic[Row]):
    """SQL for one per-citizen table; subclasses name the table and map rows."""

    table: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]
    column_types: ClassVar[str]
    """The column definitions for CREATE TABLE (citizen_key first, the primary key)."""

    datastore: Any
    paramstyle = "named"

    def row_params(self, row: Row) -> dict[str, Any]:
        raise NotImplementedError

    def row_from(self, values: dict[str, Any]) -> Row:
        raise NotImplementedError

    @property
    def qualified_table(self) -> str:
        schema = getattr(self.datastore, "schema", None)
        return f'"{schema}".{self.table}' if schema else self.table

    @property
    def tracking_table(self) -> str:
        name = getattr(self, "tracking_table_name", None)
        schema = getattr(self.datastore, "schema", None)
        if name is None:
            return "tracking"  # SQLite's fixed name
        return f'"{schema}".{name}' if schema else name

    def view_tables(self) -> list[str]:
        return [f"CREATE TABLE IF NOT EXISTS {self.qualified_table} ({self.column_types})"]

    def _upsert(self, cursor: Any, rows: list[Row]) -> None:
        statement = upsert_statement(
            self.qualified_table, self.columns, "citizen_key", self.paramstyle
        )
        for row in rows:
            cursor.execute(statement, self.row_params(row))

    def apply_rows(self, rows: list[Row], tracking: Tracking) -> None:
        """Upsert rows and record the tracking position in one transaction."""
        with self.datastore.transaction(commit=True) as cursor:
            self._upsert(cursor, rows)
            self._insert_tracking(cursor, tracking)  # type: ignore[attr-defined]

    def _delete_all(self, cursor: Any, application_name: str) -> None:
        cursor.execute(f"DELETE FROM {self.qualified_table}")
        cursor.execute(
            f"DELETE FROM {self.tracking_table} "
            f"WHERE application_name = {marker('name', self.paramstyle)}",
            {"name": application_name},
        )

    def clear(self, application_name: str) -> None:
        """Forget every row and the tracked position, so the view rebuilds from zero."""
        with self.datastore.transaction(commit=True) as cursor:
            self._delete_all(cursor, application_name)

    def replace_all(self, rows: list[Row], tracking: Tracking) -> None:
        """Swap in a rebuilt copy: every row and its position, in one transaction."""
        with self.datastore.transaction(commit=True) as cursor:
            self._delete_all(cursor, tracking.application_name)
            self._upsert(cursor, rows)
            self._insert_tracking(cursor, tracking)  # type: ignore[attr-defined]

    def select_rows(self, page_size: int = 2000) -> Iterator[Row]:
        """Every row in key order, read page by page so memory stays flat."""
        after = ""
        while True:
            with self.datastore.transaction(commit=False) as cursor:
                cursor.execute(
                    f"SELECT {', '.join(self.columns)} FROM {self.qualified_table} "
                    f"WHERE citizen_key > {marker('after', self.paramstyle)} "
                    f"ORDER BY citizen_key LIMIT {int(page_size)}",
                    {"after": after},
                )
                page = cursor.fetchall()
            for values in page:
                yield self.row_from(_as_dict(self.columns, values))
            if len(page) < page_size:
                return
            after = _as_dict(self.columns, page[-1])["citizen_key"]

    def select_row(self, citizen_key: str) -> Row | None:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT {', '.join(self.columns)} FROM {self.qualified_table} "
                f"WHERE citizen_key = {marker('key', self.paramstyle)}",
                {"key": citizen_key},
            )
            found = cursor.fetchone()
        return self.row_from(_as_dict(self.columns, found)) if found else None

    def checksum(self) -> str:
        """SHA-256 over every row in key order, as canonical JSON."""
        digest = hashlib.sha256()
        for row in self.select_rows():
            text = json.dumps(self.row_params(row), sort_keys=True, separators=(",", ":"))
            digest.update(text.encode("utf-8") + b"\n")
        return digest.hexdigest()


def _as_dict(columns: tuple[str, ...], values: Any) -> dict[str, Any]:
    ordered = values.values() if isinstance(values, dict) else values
    return dict(zip(columns, ordered, strict=True))
