"""Coordination read model: one row per citizen, kept live from the event store.

Each row stores what as-of queries need (birth date and the timeline as JSON),
so fællesborger status, support step and flags for any date are computed at
query time by `domain.coordination.coordination_on`, as are the yearly figure
and the flows. Beside them, current-state columns for plain-SQL dashboards:
the values on the citizen's latest known effective date, flags as a JSON
object of flag name to the event ids behind it.

Rows and the tracking position are written in one transaction
(`projections.view`), in a table of its own beside its own tracking.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder
from psycopg.sql import SQL

from domain.coordination import Coordination, coordination_on
from domain.timeline import Timeline
from projections import timeline_codec
from projections.history import CitizenHistory
from projections.view import CitizenViewMixin

LONG_SPELL_YEARS = 3
"""Default years of spell behind `long_duration_with_social_needs` (stored columns use it)."""
TABLE = "coordination_citizen"
COLUMNS = (
    "citizen_key",
    "birth_date",
    "last_effective_date",
    "is_faellesborger",
    "support_step",
    "interventions",
    "flags",
    "target_group",
    "timeline",
)


@dataclass(frozen=True, slots=True)
class CoordinationRow:
    citizen_key: str
    birth_date: date
    last_effective_date: date | None
    is_faellesborger: bool
    support_step: int
    interventions: str
    """JSON list of the active coordination-relevant interventions on the latest known date."""
    flags: str
    """JSON object: raised flag name -> event ids behind it, on the latest known date."""
    target_group: str | None
    timeline: str

    def params(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in COLUMNS}
        values["birth_date"] = self.birth_date.isoformat()
        values["last_effective_date"] = (
            self.last_effective_date.isoformat() if self.last_effective_date else None
        )
        return values

    def history(self) -> Timeline:
        return timeline_codec.loads(self.timeline)

    def coordination(self, day: date, long_spell_years: int = LONG_SPELL_YEARS) -> Coordination:
        """The citizen's coordination on `day`, from events effective on or before it."""
        return coordination_on(
            self.history(), day, self.birth_date, long_spell_years=long_spell_years
        )


def row_for(citizen: CitizenHistory) -> CoordinationRow:
    """The read-model row of a citizen, from its whole history."""
    timeline = citizen.timeline()
    last = max((f.effective_date for f in citizen.facts), default=None)
    latest = (
        coordination_on(timeline, last, citizen.birth_date, long_spell_years=LONG_SPELL_YEARS)
        if last
        else None
    )
    return CoordinationRow(
        citizen_key=citizen.citizen_key,
        birth_date=citizen.birth_date,
        last_effective_date=last,
        is_faellesborger=latest is not None and latest.is_faellesborger,
        support_step=latest.support_step if latest else 0,
        interventions=json.dumps(list(latest.interventions) if latest else []),
        flags=json.dumps(
            {name: list(ids) for name, ids in latest.flags.items()} if latest else {},
            sort_keys=True,
        ),
        target_group=latest.target_group if latest else None,
        timeline=citizen.timeline_json(),
    )


class CoordinationViewMixin(CitizenViewMixin[CoordinationRow]):
    """The coordination table, shared by the SQLite and PostgreSQL views."""

    table = TABLE
    columns = COLUMNS
    column_types = (
        "citizen_key TEXT PRIMARY KEY, birth_date TEXT NOT NULL, last_effective_date TEXT, "
        "is_faellesborger BOOLEAN NOT NULL, support_step INTEGER NOT NULL, "
        "interventions TEXT NOT NULL, flags TEXT NOT NULL, target_group TEXT, "
        "timeline TEXT NOT NULL"
    )

    def row_params(self, row: CoordinationRow) -> dict[str, Any]:
        return row.params()

    def row_from(self, values: dict[str, Any]) -> CoordinationRow:
        last = values["last_effective_date"]
        return CoordinationRow(
            **{
                **values,
                "birth_date": date.fromisoformat(values["birth_date"]),
                "last_effective_date": date.fromisoformat(last) if last else None,
                "is_faellesborger": bool(values["is_faellesborger"]),
            }
        )


class SQLiteCoordinationView(CoordinationViewMixin, SQLiteTrackingRecorder):
    """The coordination read model in SQLite (its own `coordination.db`)."""

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + self.view_tables()


class PostgresCoordinationView(CoordinationViewMixin, PostgresTrackingRecorder):
    """The coordination read model in PostgreSQL, beside its `coordination_tracking` table."""

    paramstyle = "pyformat"

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        for statement in self.view_tables():
            self.sql_create_statements.append(SQL(statement))  # type: ignore[arg-type]


CoordinationView = SQLiteCoordinationView | PostgresCoordinationView
