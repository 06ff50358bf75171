"""Caseload, continuity and contact cadence as any-date SQL over the read model.

The rules are `domain.caseload` and `domain.cadence`; the differential test
(`tests/test_council_sql.py`) holds these answers equal to them citizen by citizen.

As of D an assignment made on A is in force on X when it is the latest
assignment on or before X (`caseworker_assignment.next_assignment` > X) and no
all-benefits spell ends in (A, X] as known on D. A stored run ending at E is a
spell end as of D unless a later run of the same stored spell starts on or
before D (the month rule joins runs by their gaps, which D does not move).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

from casehistory.domain.cadence import BETWEEN_MEETINGS_DAYS, FIRST_MEETING_DAYS, cadence_status
from casehistory.domain.spells import ONE_DAY, months_later
from casehistory.projections.queries import Dialect, covers


def _spell_ends_between(after: str, until: str) -> str:
    """An all-benefits spell of `a`'s citizen ends, as of :d, in (`after`, `until`]."""
    return f"""EXISTS (SELECT 1 FROM benefit_run r
     WHERE r.citizen_key = a.citizen_key AND r.scope = 'all'
       AND r.stop_date > {after} AND r.stop_date <= {until}
       AND NOT EXISTS (SELECT 1 FROM benefit_run n
         WHERE n.citizen_key = r.citizen_key AND n.scope = 'all'
           AND n.spell_start = r.spell_start AND n.start_date > r.stop_date
           AND n.start_date <= :d))"""


def in_force() -> str:
    """The assignment `a` is in force on day :d (as known on :d)."""
    return (
        "a.valid_from <= :d AND (a.next_assignment IS NULL OR a.next_assignment > :d) "
        f"AND NOT {_spell_ends_between('a.valid_from', ':d')}"
    )


def _on_job_centre_benefit(alias: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM benefit_period p WHERE p.citizen_key = {alias}.citizen_key "
        f"AND p.job_centre = 1 AND {covers('p')})"
    )


CASELOAD_COLUMNS = ("citizen_key", "caseworker", "unit", "since", "event_id")


def caseload_records(store: Any, day: date) -> Iterator[dict[str, Any]]:
    """Each citizen in a caseload on `day`: on a job-centre benefit, with an assignment in force."""
    sql = f"""
SELECT a.citizen_key, a.caseworker, a.unit, a.valid_from, a.event_id
FROM caseworker_assignment a
WHERE {in_force()} AND {_on_job_centre_benefit('a')}
ORDER BY a.citizen_key"""
    with store.read() as cursor:
        cursor.execute(Dialect(store.dialect).bind(sql), {"d": day.isoformat()})
        for row in cursor.fetchall():
            yield dict(zip(CASELOAD_COLUMNS, row, strict=True))


def caseload_counts(store: Any, day: date) -> Mapping[tuple[str, str | None], int]:
    """Citizens per (caseworker, unit) on `day` (`domain.caseload.caseloads`)."""
    sql = f"""
SELECT a.caseworker, a.unit, count(*) FROM caseworker_assignment a
WHERE {in_force()} AND {_on_job_centre_benefit('a')}
GROUP BY a.caseworker, a.unit"""
    with store.read() as cursor:
        cursor.execute(Dialect(store.dialect).bind(sql), {"d": day.isoformat()})
        return {(worker, unit): n for worker, unit, n in cursor.fetchall()}


def continuity_records(store: Any, day: date, months: int) -> Iterator[tuple[str, list[str]]]:
    """Per citizen, the caseworkers in force on some day of (D - months, D], sorted.

    `domain.caseload.caseworkers_in_last_months`; citizens with none are left out.
    """
    first = months_later(day, -months) + ONE_DAY
    sql = f"""
SELECT DISTINCT a.citizen_key, a.caseworker FROM caseworker_assignment a
WHERE a.valid_from <= :d AND (a.next_assignment IS NULL OR a.next_assignment > :first)
  AND NOT {_spell_ends_between('a.valid_from', ':first')}
ORDER BY a.citizen_key, a.caseworker"""
    found: dict[str, list[str]] = {}
    with store.read() as cursor:
        cursor.execute(
            Dialect(store.dialect).bind(sql), {"d": day.isoformat(), "first": first.isoformat()}
        )
        for key, worker in cursor.fetchall():
            found.setdefault(key, []).append(worker)
    yield from found.items()


CADENCE_COLUMNS = (
    "citizen_key", "target_group", "visitation", "visitation_event_id", "last_meeting",
    "last_meeting_event_id", "deadline", "days_left",
)


def _plus_days(dialect: Dialect, day: str, days: int) -> str:
    if dialect.name == "sqlite":
        return f"date({day}, '+{days} days')"
    return f"to_char(CAST({day} AS date) + {days}, 'YYYY-MM-DD')"


def cadence_sql(dialect: Dialect) -> str:
    """The contact clock on :d of every citizen the cadence rule applies to."""
    latest_visitation = """(SELECT {column} FROM visitation v
       WHERE v.citizen_key = g.citizen_key AND v.effective_date <= :d
       ORDER BY v.ordinal DESC LIMIT 1)"""
    last_meeting = """(SELECT {column} FROM counting_meeting m
       WHERE m.citizen_key = b.citizen_key AND m.effective_date >= b.visitation
         AND m.effective_date <= :d ORDER BY m.ordinal DESC LIMIT 1)"""
    deadline = (
        f"CASE WHEN last_meeting IS NULL "
        f"THEN {_plus_days(dialect, 'visitation', FIRST_MEETING_DAYS)} "
        f"ELSE {_plus_days(dialect, 'last_meeting', BETWEEN_MEETINGS_DAYS)} END"
    )
    return f"""
WITH base AS (
  SELECT g.citizen_key, g.target_group,
    {latest_visitation.format(column='v.effective_date')} AS visitation,
    {latest_visitation.format(column='v.event_id')} AS visitation_event_id
  FROM target_group_interval g
  WHERE g.coordinating_caseworker_right = 1 AND {covers('g', 'valid_from', 'valid_to')}
    AND {_on_job_centre_benefit('g')}
), met AS (
  SELECT b.*, {last_meeting.format(column='m.effective_date')} AS last_meeting,
    {last_meeting.format(column='m.event_id')} AS last_meeting_event_id
  FROM base b WHERE b.visitation IS NOT NULL
), due AS (
  SELECT met.*, {deadline} AS deadline FROM met
)
SELECT citizen_key, target_group, visitation, visitation_event_id, last_meeting,
  last_meeting_event_id, deadline, {dialect.days('deadline', ':d')} AS days_left
FROM due"""


def cadence_records(store: Any, day: date) -> Iterator[dict[str, Any]]:
    """Per citizen under the cadence rule on `day`: the deadline, days left and status."""
    dialect = Dialect(store.dialect)
    with store.read() as cursor:
        cursor.execute(
            dialect.bind(cadence_sql(dialect) + " ORDER BY days_left, citizen_key"),
            {"d": day.isoformat()},
        )
        while page := cursor.fetchmany(5000):
            for row in page:
                record = dict(zip(CADENCE_COLUMNS, row, strict=True))
                days_left = int(record["days_left"])
                record["days_left"] = days_left
                record["status"] = cadence_status(days_left).value
                yield record


# --- exits and cohort follow-up ----------------------------------------------------

EXIT_COLUMNS = (
    "citizen_key", "spell_start", "exit_date", "window_end", "destination", "target_group",
)


def exit_records(store: Any, day: date) -> Iterator[dict[str, Any]]:
    """Every exit known as of `day` (its window ended on or before it), per citizen oldest first.

    `domain.exits.exits_on`: an exit is stored as known on a far date, and as of
    D the same exit is known exactly when its window's last day is on or before D.
    """
    sql = f"""SELECT {', '.join(EXIT_COLUMNS)} FROM cash_exit WHERE window_end <= :d
ORDER BY citizen_key, exit_date"""
    with store.read() as cursor:
        cursor.execute(Dialect(store.dialect).bind(sql), {"d": day.isoformat()})
        while page := cursor.fetchmany(5000):
            for row in page:
                yield dict(zip(EXIT_COLUMNS, row, strict=True))


def exit_counts(
    store: Any, first: date, last: date, as_of: date
) -> list[tuple[str, str, str | None, int]]:
    """Exits with E in [first, last] known as of `as_of`: (half-year, destination, group, n)."""
    sql = """
SELECT substr(exit_date, 1, 4) || 'H' ||
       CASE WHEN substr(exit_date, 6, 2) <= '06' THEN '1' ELSE '2' END AS half_year,
       destination, target_group, count(*)
FROM cash_exit WHERE exit_date >= :first AND exit_date <= :last AND window_end <= :d
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""
    params = {"first": first.isoformat(), "last": last.isoformat(), "d": as_of.isoformat()}
    with store.read() as cursor:
        cursor.execute(Dialect(store.dialect).bind(sql), params)
        return [(half, dest, group, int(n)) for half, dest, group, n in cursor.fetchall()]


def outcome_records(
    store: Any, cohort_date: date, horizon: date
) -> Iterator[tuple[str, str | None, str | None, bool]]:
    """Per citizen at `horizon`: the first exit after C known by then (destination, E),
    and whether any benefit pays the horizon day (`domain.exits.follow_up`)."""
    first_exit = """(SELECT x.{column} FROM cash_exit x
   WHERE x.citizen_key = c.citizen_key AND x.exit_date > :c AND x.window_end <= :d
   ORDER BY x.exit_date LIMIT 1)"""
    sql = f"""
SELECT c.citizen_key, {first_exit.format(column='destination')},
  {first_exit.format(column='exit_date')},
  CASE WHEN EXISTS (SELECT 1 FROM benefit_period p
    WHERE p.citizen_key = c.citizen_key AND {covers('p')}) THEN 1 ELSE 0 END
FROM durations_citizen c ORDER BY c.citizen_key"""
    params = {"c": cohort_date.isoformat(), "d": horizon.isoformat()}
    with store.read() as cursor:
        cursor.execute(Dialect(store.dialect).bind(sql), params)
        for key, destination, exit_date, paid in cursor.fetchall():
            yield key, destination, exit_date, bool(paid)


def paying_municipalities(store: Any, day: date) -> dict[str, set[str]]:
    """Per citizen paid on `day`, the municipalities that registered a benefit period paying it
    (`domain.exits.CohortDefinition.municipality`)."""
    sql = f"SELECT DISTINCT p.citizen_key, p.municipality FROM benefit_period p WHERE {covers('p')}"
    found: dict[str, set[str]] = {}
    with store.read() as cursor:
        cursor.execute(Dialect(store.dialect).bind(sql), {"d": day.isoformat()})
        for key, municipality in cursor.fetchall():
            found.setdefault(key, set()).add(municipality)
    return found
