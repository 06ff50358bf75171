"""Durations read model: one row per citizen, kept live from the event store.

Each row stores the citizen's timeline (periods and target-group assignments)
and the start dates of the spells that are open at the latest known date.
Lengths are never stored: they depend on "today", so queries compute them for
any as-of date from the stored starts and timeline, without reprocessing.

The rows and the tracking position are written in one transaction, so each
notification is applied exactly once, and a restart resumes from the stored
position.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder
from psycopg.sql import SQL

from domain.durations import Durations, durations_on
from projections import timeline_codec
from projections.history import CitizenHistory
from projections.view import CitizenViewMixin

TABLE = "durations_citizen"
COLUMNS = (
    "citizen_key",
    "birth_date",
    "open_spell_start",
    "open_cash_spell_start",
    "naive_start",
    "target_group",
    "last_effective_date",
    "findings",
    "timeline",
)


@dataclass(frozen=True, slots=True)
class DurationsRow:
    citizen_key: str
    birth_date: date
    open_spell_start: date | None
    open_cash_spell_start: date | None
    naive_start: date | None
    target_group: str | None
    last_effective_date: date | None
    findings: int
    timeline: str

    def params(self) -> dict[str, Any]:
        return {
            "citizen_key": self.citizen_key,
            "birth_date": self.birth_date.isoformat(),
            "open_spell_start": _iso(self.open_spell_start),
            "open_cash_spell_start": _iso(self.open_cash_spell_start),
            "naive_start": _iso(self.naive_start),
            "target_group": self.target_group,
            "last_effective_date": _iso(self.last_effective_date),
            "findings": self.findings,
            "timeline": self.timeline,
        }

    def durations(self, day: date) -> Durations:
        return durations_on(timeline_codec.loads(self.timeline), day, self.birth_date)


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def row_for(citizen: CitizenHistory) -> DurationsRow:
    """The read-model row of a citizen, from its whole history."""
    timeline = citizen.timeline()
    last = max((f.effective_date for f in citizen.facts), default=None)
    latest = durations_on(timeline, last, citizen.birth_date) if last else None
    open_ended = latest is not None and any(p.stop is None for p in timeline.benefit_periods)
    return DurationsRow(
        citizen_key=citizen.citizen_key,
        birth_date=citizen.birth_date,
        open_spell_start=latest.all_benefits_spell_start if latest and open_ended else None,
        open_cash_spell_start=latest.cash_system_spell_start if latest and open_ended else None,
        naive_start=(
            max((p.start for p in timeline.benefit_periods if p.stop is None), default=None)
        ),
        target_group=latest.target_group if latest else None,
        last_effective_date=last,
        findings=len(timeline.findings),
        timeline=citizen.timeline_json(),
    )


class DurationsViewMixin(CitizenViewMixin[DurationsRow]):
    """The durations table, shared by the SQLite and PostgreSQL views."""

    table = TABLE
    columns = COLUMNS
    column_types = (
        "citizen_key TEXT PRIMARY KEY, birth_date TEXT NOT NULL, "
        "open_spell_start TEXT, open_cash_spell_start TEXT, naive_start TEXT, "
        "target_group TEXT, last_effective_date TEXT, findings INTEGER NOT NULL, "
        "timeline TEXT NOT NULL"
    )

    def row_params(self, row: DurationsRow) -> dict[str, Any]:
        return row.params()

    def row_from(self, values: dict[str, Any]) -> DurationsRow:
        def day(name: str) -> date | None:
            return date.fromisoformat(values[name]) if values[name] else None

        return DurationsRow(
            citizen_key=values["citizen_key"],
            birth_date=date.fromisoformat(values["birth_date"]),
            open_spell_start=day("open_spell_start"),
            open_cash_spell_start=day("open_cash_spell_start"),
            naive_start=day("naive_start"),
            target_group=values["target_group"],
            last_effective_date=day("last_effective_date"),
            findings=values["findings"],
            timeline=values["timeline"],
        )


class SQLiteDurationsView(DurationsViewMixin, SQLiteTrackingRecorder):
    """The durations read model in SQLite (the embedded default)."""

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + self.view_tables()


class PostgresDurationsView(DurationsViewMixin, PostgresTrackingRecorder):
    """The durations read model in PostgreSQL, beside its `durations_tracking` table."""

    paramstyle = "pyformat"

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        for statement in self.view_tables():
            self.sql_create_statements.append(SQL(statement))  # type: ignore[arg-type]


DurationsView = SQLiteDurationsView | PostgresDurationsView
