"""What the rules produce for one citizen, as rows of the read model's tables.

A citizen's history is turned into a `Timeline` by the domain once, and the
timeline into the rows that any-date SQL reads (`projections.queries`):
benefit periods, runs with the spell each belongs to, target-group intervals,
intervention periods, inflows, the years with two months on benefit, and the
current-state rows dashboards read. Nothing here states a rule of its own: runs
and spells come from `domain.spells`, inflows and yearly months from
`domain.coordination`, current state from `durations_on` / `coordination_on`.

Why stored runs answer *any* as-of date: as of D the periods are cut at D + 1
(a stop after D is not yet known), and cutting commutes with the union into runs;
the month rule joins runs by the gaps between them, which a cut does not move.
So the spell paying D is the stored spell of the run covering D, and its paid
days up to D are the paid days of the spell's earlier runs plus `D - run start + 1`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from casehistory.domain import reference
from casehistory.domain.cadence import COUNTING_MEETINGS, is_visitation
from casehistory.domain.coordination import (
    CHILD_MEASURES,
    MONTHS_FOR_YEARLY,
    benefit_months_in_year,
    coordination_on,
    inflows,
)
from casehistory.domain.exits import exits_on
from casehistory.domain.spells import ONE_DAY, Run, Spell, spells, union
from casehistory.domain.timeline import Period, Timeline

SURELY_TWO_MONTHS = 31 * MONTHS_FOR_YEARLY
PERHAPS_TWO_MONTHS = 28 * MONTHS_FOR_YEARLY
OPEN = date(9999, 12, 31)
EXITS_AS_OF = date(9990, 1, 1)
"""Exits are stored as known on this far date; one is known as of D when its window
ended on or before D, and its spell, destination and group never change after that."""
"""Internal stand-in for an open end while runs are computed; stored as NULL."""
LONG_SPELL_YEARS = 3
"""Years of spell behind `long_duration_with_social_needs` in the stored current state."""

TABLES: dict[str, tuple[str, ...]] = {
    "durations_citizen": (
        "citizen_key", "birth_date", "open_spell_start", "open_cash_spell_start",
        "naive_start", "target_group", "last_effective_date", "findings",
        "first_run_start", "last_run_stop", "first_cash_run_start", "last_cash_run_stop",
    ),
    "coordination_citizen": (
        "citizen_key", "birth_date", "last_effective_date", "is_faellesborger",
        "support_step", "interventions", "flags", "target_group",
    ),
    "benefit_period": (
        "citizen_key", "benefit", "source_system", "municipality", "start_date", "stop_date",
        "stop_reason", "job_centre", "cash_system", "start_event_id", "stop_event_id",
    ),
    "benefit_run": (
        "citizen_key", "scope", "start_date", "stop_date", "spell_start", "paid_before",
    ),
    "target_group_interval": (
        "citizen_key", "valid_from", "valid_to", "target_group", "event_id",
        "coordinating_caseworker_right", "main_group",
    ),
    "intervention_period": (
        "citizen_key", "intervention", "start_date", "stop_date", "start_event_id",
        "support_step", "coordination_relevant", "child_measure",
    ),
    "inflow": ("citizen_key", "benefit", "start_date", "event_id"),
    "benefit_year": ("citizen_key", "year"),
    "caseworker_assignment": (
        "citizen_key", "valid_from", "next_assignment", "caseworker", "unit", "event_id",
    ),
    "visitation": ("citizen_key", "effective_date", "event_id", "ordinal"),
    "counting_meeting": ("citizen_key", "effective_date", "event_id", "kind", "ordinal"),
    "cash_exit": (
        "citizen_key", "spell_start", "exit_date", "window_end", "destination", "target_group",
        "evidence",
    ),
}
"""Every table of the read model and its columns, `citizen_key` first."""


def staff_pseudonym(staff_id: str, staff_key: bytes) -> str:
    """The keyed pseudonym read models carry for a caseworker's staff id (personal data).

    HMAC-SHA256 under the staff key, 16 hex digits: one caseworker, one pseudonym,
    and without the key no list of staff ids can be matched against it.
    """
    if not staff_key:
        raise ValueError("a caseworker pseudonym needs the staff key")
    return hmac.new(staff_key, staff_id.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


@dataclass
class CitizenRows:
    """One citizen's rows, per table, as tuples in `TABLES` column order."""

    citizen_key: str
    tables: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    events: int = 0
    """Stored events the rows were computed from (for progress)."""
    written: dict[str, list[tuple[Any, ...]]] | None = None
    """The citizen's rows already in the copy, when the writer knows them (a live
    follower's cache); None: the store reads them."""


def _iso(day: date | None) -> str | None:
    return None if day is None or day == OPEN else day.isoformat()


@dataclass(frozen=True)
class Earlier:
    """A citizen's rows computed before (same key, birth date and staff key): the timeline
    and latest effective date they came from, and the rows per table."""

    timeline: Timeline
    last: date | None
    tables: dict[str, list[tuple[Any, ...]]]


PERIOD_TABLES = ("benefit_period", "benefit_run", "inflow", "benefit_year")
"""The tables read off the benefit periods alone."""


def rows_for(
    citizen_key: str,
    birth_date: date,
    timeline: Timeline,
    last: date | None,
    *,
    staff_key: bytes,
    earlier: Earlier | None = None,
) -> CitizenRows:
    """Every table's rows for one citizen; `last` is its latest effective date.

    Caseworkers appear by their pseudonym under `staff_key` (`staff_pseudonym`). With
    `earlier`, a table whose inputs (the parts of the timeline it reads, and `last`) are
    equal to those it was computed from takes its rows from there, as the same list: a
    live event changes one part of a citizen's timeline, and its other tables are not
    computed again (held equal to a computation from scratch by a test).
    """
    benefits = reference.benefits()
    key = citizen_key
    periods = timeline.benefit_periods
    out = CitizenRows(key)

    def same(*parts: str) -> bool:
        return earlier is not None and all(
            getattr(earlier.timeline, part) == getattr(timeline, part) for part in parts
        )

    kept = earlier.tables if earlier is not None else {}

    def take(*tables: str) -> None:
        for table in tables:
            out.tables[table] = kept[table]

    same_periods, same_groups = same("benefit_periods"), same("group_assignments")
    spelled: list[tuple[list[Run], list[Spell], list[Spell]]] = []

    def runs_and_spells() -> tuple[list[Run], list[Spell], list[Spell]]:
        """The runs of every benefit, and the spells of every benefit and of the cash
        system (computed once, when a table needs them)."""
        if not spelled:
            all_runs = union((p.start, p.stop or OPEN) for p in periods)
            cash_runs = union(
                (p.start, p.stop or OPEN)
                for p in periods
                if benefits[p.code].in_cash_benefit_system
            )
            spelled.append((all_runs, spells(all_runs), spells(cash_runs)))
        return spelled[0]

    if same_periods:
        take(*PERIOD_TABLES)
    else:
        out.tables["benefit_period"] = [
            (
                key, p.code, p.source_system, p.municipality, p.start.isoformat(), _iso(p.stop),
                p.stop_reason, int(benefits[p.code].is_job_centre_benefit),
                int(benefits[p.code].in_cash_benefit_system), p.start_event_id, p.stop_event_id,
            )
            for p in periods
        ]
        all_runs, all_spells, cash_spells = runs_and_spells()
        out.tables["benefit_run"] = _run_rows(key, "all", all_spells) + _run_rows(
            key, "cash", cash_spells
        )
        out.tables["inflow"] = [
            (key, i.benefit, i.start.isoformat(), i.event_id) for i in inflows(timeline)
        ]
        out.tables["benefit_year"] = [
            (key, year) for year in _years_with_two_months(timeline, all_runs)
        ]
    if same_groups:
        take("target_group_interval", "visitation")
    else:
        out.tables["target_group_interval"] = _group_rows(key, timeline)
        out.tables["visitation"] = [
            (key, a.effective_date.isoformat(), a.event_id, n)
            for n, a in enumerate(timeline.group_assignments)
            if is_visitation(a)
        ]
    if same("interventions"):
        take("intervention_period")
    else:
        out.tables["intervention_period"] = _intervention_rows(key, timeline.interventions)
    if same("caseworker_assignments"):
        take("caseworker_assignment")
    else:
        out.tables["caseworker_assignment"] = _assignment_rows(key, timeline, staff_key)
    if same("meetings"):
        take("counting_meeting")
    else:
        out.tables["counting_meeting"] = [
            (key, m.effective_date.isoformat(), m.event_id, m.kind, n)
            for n, m in enumerate(timeline.meetings)
            if m.kind in COUNTING_MEETINGS
        ]
    if same_periods and same_groups:
        take("cash_exit")
    else:
        out.tables["cash_exit"] = [
            (key, e.spell_start.isoformat(), e.exit_date.isoformat(), e.window_end.isoformat(),
             e.destination, e.target_group, ",".join(e.evidence))
            for e in exits_on(timeline, EXITS_AS_OF)
        ]
    same_last = earlier is not None and earlier.last == last
    if same_last and same_periods and same_groups and same("findings"):
        take("durations_citizen")
    else:
        out.tables["durations_citizen"] = [
            _durations_row(key, birth_date, timeline, last, *runs_and_spells()[1:])
        ]
    if same_last and earlier is not None and earlier.timeline == timeline:
        take("coordination_citizen")
    else:
        out.tables["coordination_citizen"] = [_coordination_row(key, birth_date, timeline, last)]
    return out


def _run_rows(key: str, scope: str, all_spells: list[Spell]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for spell in all_spells:
        paid_before = 0
        for run in spell.runs:
            rows.append(
                (key, scope, run.start.isoformat(), _iso(run.end), spell.start.isoformat(),
                 paid_before)
            )
            if run.end != OPEN:
                paid_before += run.days
    return rows


def _group_rows(key: str, timeline: Timeline) -> list[tuple[Any, ...]]:
    """Intervals in which each assignment is the one in force (the last one of its date)."""
    groups = reference.target_groups()
    latest = {a.effective_date: a for a in timeline.group_assignments}  # sorted: last wins
    days = sorted(latest)
    rows: list[tuple[Any, ...]] = []
    for index, day in enumerate(days):
        assignment = latest[day]
        group = groups.get(assignment.target_group)
        rows.append(
            (
                key,
                day.isoformat(),
                days[index + 1].isoformat() if index + 1 < len(days) else None,
                assignment.target_group, assignment.event_id,
                int(group is not None and group.right_to_coordinating_caseworker),
                group.main_group if group is not None else None,
            )
        )
    return rows


def _assignment_rows(key: str, timeline: Timeline, staff_key: bytes) -> list[tuple[Any, ...]]:
    """Each caseworker assignment that is the last of its date, with the next one's date,
    the caseworker by pseudonym.

    Where a spell end cuts it short depends on the as-of date; queries read that
    off `benefit_run` (`projections.queries.in_force`).
    """
    latest = {a.effective_date: a for a in timeline.caseworker_assignments}  # last wins
    days = sorted(latest)
    return [
        (
            key, day.isoformat(), days[index + 1].isoformat() if index + 1 < len(days) else None,
            staff_pseudonym(latest[day].caseworker, staff_key), latest[day].unit,
            latest[day].event_id,
        )
        for index, day in enumerate(days)
    ]


def _intervention_rows(key: str, interventions: tuple[Period, ...]) -> list[tuple[Any, ...]]:
    catalogue = reference.interventions()
    rows: list[tuple[Any, ...]] = []
    for p in interventions:
        known = catalogue.get(p.code)
        rows.append(
            (
                key, p.code, p.start.isoformat(), _iso(p.stop), p.start_event_id,
                (known.support_step or 0) if known else 0,
                int(known is not None and known.coordination_relevant),
                int(p.code in CHILD_MEASURES),
            )
        )
    return rows


def _years_with_two_months(timeline: Timeline, all_runs: list[Run]) -> list[int]:
    """Years with at least two months on benefit, up to the year an open run starts.

    Years after the start year of an open run are wholly paid; queries count them
    from the open run itself, so no row is needed for the open-ended future.

    Each month adds its paid share (`benefit_months_in_year`), so a year with P paid
    days holds between P/31 and P/28 months: 62 or more paid days are two months
    for certain, fewer than 56 never; only the years in between need the exact sum.
    """
    if not all_runs:
        return []
    final = all_runs[-1]
    last = final.start.year if final.end == OPEN else (final.end - ONE_DAY).year
    paid: dict[int, int] = {}
    for run in all_runs:
        first_year, last_year = run.start.year, min((run.end - ONE_DAY).year, last)
        if last_year < first_year:
            continue
        end = min(run.end, date(first_year + 1, 1, 1))
        paid[first_year] = paid.get(first_year, 0) + (end - run.start).days
        for year in range(first_year + 1, last_year):
            paid[year] = 365  # at least: the run pays the whole year
        if last_year > first_year:
            end = min(run.end, date(last_year + 1, 1, 1))
            paid[last_year] = paid.get(last_year, 0) + (end - date(last_year, 1, 1)).days
    return [
        year
        for year, days in sorted(paid.items())
        if days >= SURELY_TWO_MONTHS
        or (days >= PERHAPS_TWO_MONTHS
            and benefit_months_in_year(timeline, year) >= MONTHS_FOR_YEARLY)
    ]


def _durations_row(
    key: str,
    born: date,
    timeline: Timeline,
    last: date | None,
    all_spells: list[Spell],
    cash_spells: list[Spell],
) -> tuple[Any, ...]:
    """The measures on the latest known date L, read off the spells, and the bounds of
    the runs (the first all-benefits and cash-system run's start, the last one's stop),
    which spare an any-date query the run lookups of a date no run can cover.

    Every stop is on or before L, so a period covers L exactly when it is still
    open: then the last run is open and pays L, and so does the last cash run if
    it is open; the target group is the latest assignment, while a job-centre
    benefit is open (`durations_on(timeline, L)` gives the same; tested).
    """
    benefits = reference.benefits()
    still_open = [p for p in timeline.benefit_periods if p.stop is None]
    paying_cash = bool(cash_spells) and cash_spells[-1].end == OPEN
    on_job_centre = any(benefits[p.code].is_job_centre_benefit for p in still_open)
    groups = timeline.group_assignments
    return (
        key,
        born.isoformat(),
        _iso(all_spells[-1].start) if still_open else None,
        _iso(cash_spells[-1].start) if still_open and paying_cash else None,
        _iso(max((p.start for p in still_open), default=None)),
        groups[-1].target_group if on_job_centre and groups else None,
        _iso(last),
        len(timeline.findings),
        *_bounds(all_spells),
        *_bounds(cash_spells),
    )


def _bounds(scope_spells: list[Spell]) -> tuple[str | None, str | None]:
    """The first run's start and the last run's stop (NULL while open; both NULL: no run)."""
    if not scope_spells:
        return None, None
    return scope_spells[0].start.isoformat(), _iso(scope_spells[-1].end)


def _coordination_row(
    key: str, born: date, timeline: Timeline, last: date | None
) -> tuple[Any, ...]:
    benefits = reference.benefits()
    concerned = any(
        p.stop is None and benefits[p.code].is_job_centre_benefit for p in timeline.benefit_periods
    ) or any(p.stop is None for p in timeline.interventions)
    # Without an open job-centre benefit or intervention nothing is active on L.
    latest = (
        coordination_on(timeline, last, born, long_spell_years=LONG_SPELL_YEARS)
        if last and concerned
        else None
    )
    return (
        key,
        born.isoformat(),
        _iso(last),
        latest is not None and latest.is_faellesborger,
        latest.support_step if latest else 0,
        json.dumps(list(latest.interventions) if latest else []),
        json.dumps(
            {name: list(ids) for name, ids in latest.flags.items()} if latest else {},
            sort_keys=True,
        ),
        latest.target_group if latest else None,
    )


