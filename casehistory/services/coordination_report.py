"""Coordination and flow reports in the shapes the councils read (domain.md).

Pure over computed results: `Coordination` values for one date, or timelines for
the yearly figure and the flows. The rich tables never show a CPR number.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from typing import Any

from rich.table import Table

from casehistory.domain import reference
from casehistory.domain.coordination import (
    AWAITING_FLEXJOB_BENEFIT,
    INFLOW_BENEFITS,
    MONTHS_FOR_YEARLY,
    Coordination,
    Flag,
    awaiting_flexjob,
    benefit_months_in_year,
    half_year,
    inflows,
    yearly_faellesborger,
)
from casehistory.domain.spells import first_of_next_month
from casehistory.domain.timeline import Timeline
from casehistory.projections.queries import (
    Dialect,
    awaiting_flexjob_sql,
    coordination_records,
    inflow_sql,
    yearly_sql,
)
from casehistory.projections.store import ReadModelStore
from casehistory.services.access import Identity, is_suppressed, shown_count

NO_TARGET_GROUP = "(none)"
EDGE_OF_LABOUR_MARKET = "edge_of_labour_market"
STEPS = range(5)
FLAGS = tuple(value for name, value in vars(Flag).items() if name.isupper())


@dataclass
class CoordinationSummary:
    """Counts over every citizen on `as_of`; target group `(none)` when none is reported."""

    as_of: date
    citizens: int = 0
    by_group: Counter[str] = field(default_factory=Counter)
    faellesborgere_by_group: Counter[str] = field(default_factory=Counter)
    by_group_and_intervention: Counter[tuple[str, str]] = field(default_factory=Counter)
    faellesborgere_by_step: Counter[int] = field(default_factory=Counter)
    edge_by_step: Counter[int] = field(default_factory=Counter)
    """Fællesborgere on each step whose target group is at the edge of the labour market."""
    flags: Counter[str] = field(default_factory=Counter)


def summarise(results: Iterable[Coordination], as_of: date) -> CoordinationSummary:
    groups = reference.target_groups()
    summary = CoordinationSummary(as_of)
    for c in results:
        group = c.target_group or NO_TARGET_GROUP
        summary.citizens += 1
        summary.by_group[group] += 1
        summary.by_group_and_intervention.update((group, code) for code in c.interventions)
        summary.flags.update(c.flags.keys())
        if c.is_faellesborger:
            summary.faellesborgere_by_group[group] += 1
            summary.faellesborgere_by_step[c.support_step] += 1
            known = groups.get(c.target_group) if c.target_group else None
            if known is not None and known.main_group == EDGE_OF_LABOUR_MARKET:
                summary.edge_by_step[c.support_step] += 1
    return summary


@dataclass(frozen=True, slots=True)
class YearlyMapping:
    """The yearly figure as the city mapped it (`domain.coordination.yearly_faellesborger`)."""

    year: int
    on_benefit: int
    """Citizens on a benefit for at least two months of the year."""
    faellesborgere: int


def yearly_mapping(timelines: Iterable[Timeline], year: int) -> YearlyMapping:
    on_benefit = faellesborgere = 0
    for timeline in timelines:
        on_benefit += benefit_months_in_year(timeline, year) >= MONTHS_FOR_YEARLY
        faellesborgere += yearly_faellesborger(timeline, year)
    return YearlyMapping(year, on_benefit, faellesborgere)


@dataclass
class Flows:
    """Flows between `first` and `last`, both included.

    `inflow`: half-year -> benefit -> citizens with at least one inflow into it
    on a day of the half-year inside the range. `awaiting_flexjob`: first of each
    month in the range -> citizens on ledighedsydelse that day.
    """

    first: date
    last: date
    inflow: dict[str, Counter[str]] = field(default_factory=dict)
    awaiting_flexjob: dict[date, int] = field(default_factory=dict)


def half_years(first: date, last: date) -> list[str]:
    """The half-years from the one holding `first` to the one holding `last`."""
    labels: list[str] = []
    day = date(first.year, 1 if first.month <= 6 else 7, 1)
    while day <= last:
        labels.append(half_year(day))
        day = date(day.year, 7, 1) if day.month == 1 else date(day.year + 1, 1, 1)
    return labels


def months(first: date, last: date) -> list[date]:
    """The first days of months that lie in `[first, last]`."""
    day = first if first.day == 1 else first_of_next_month(first)
    found: list[date] = []
    while day <= last:
        found.append(day)
        day = first_of_next_month(day)
    return found


def flows(timelines: Iterable[Timeline], first: date, last: date) -> Flows:
    result = Flows(first, last, {label: Counter() for label in half_years(first, last)})
    firsts = months(first, last)
    awaiting: Counter[date] = Counter()
    for timeline in timelines:
        entered = {
            (half_year(i.start), i.benefit) for i in inflows(timeline) if first <= i.start <= last
        }
        for label, benefit in entered:
            result.inflow[label][benefit] += 1
        awaiting.update(day for day in firsts if awaiting_flexjob(timeline, day))
    result.awaiting_flexjob = {day: awaiting[day] for day in firsts}
    return result


FLOW_FIELDS = ["flow", "period", "benefit", "citizens"]


def flow_records(result: Flows) -> Iterator[dict[str, Any]]:
    """The flows in long form (one record per period and benefit), zeros included."""
    for label, counts in result.inflow.items():
        for benefit in sorted(INFLOW_BENEFITS):
            yield {"flow": "inflow", "period": label, "benefit": benefit,
                   "citizens": counts[benefit]}
    for day, count in result.awaiting_flexjob.items():
        yield {"flow": "awaiting_flexjob", "period": day.isoformat(),
               "benefit": AWAITING_FLEXJOB_BENEFIT, "citizens": count}


# --- Tables ------------------------------------------------------------------


def _share(part: int, whole: int, identity: Identity | None) -> str:
    """The share as a percentage; blank when either count is shown only as "<5"."""
    if is_suppressed(part, identity) or is_suppressed(whole, identity):
        return ""
    return f"{part / whole:.1%}" if whole else "-"


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title)
    table.add_column(columns[0])
    for column in columns[1:]:
        table.add_column(column, justify="right")
    return table


def _groups(summary: CoordinationSummary) -> list[str]:
    ordered = [*reference.target_groups(), NO_TARGET_GROUP]
    return [g for g in ordered if summary.by_group[g]]


def group_table(summary: CoordinationSummary, identity: Identity | None = None) -> Table:
    """Per target group: citizens, fællesborgere and their share.

    Here and in the other tables, counts under 5 show as "<5" to an analyst.
    """
    n = partial(shown_count, identity=identity)
    table = _table(f"Fællesborgere by target group on {summary.as_of}",
                   "target group", "citizens", "fællesborgere", "share")
    for group in _groups(summary):
        citizens, shared = summary.by_group[group], summary.faellesborgere_by_group[group]
        table.add_row(group, n(citizens), n(shared), _share(shared, citizens, identity))
    shared = sum(summary.faellesborgere_by_group.values())
    table.add_row("all citizens", n(summary.citizens), n(shared),
                  _share(shared, summary.citizens, identity))
    table.caption = (
        f"{NO_TARGET_GROUP}: no target group reported (no job-centre benefit, or none assigned)"
    )
    return table


def intervention_table(summary: CoordinationSummary, identity: Identity | None = None) -> Table:
    """Per target group and active coordination-relevant intervention: citizens."""
    table = _table(f"Citizens by target group and intervention on {summary.as_of}",
                   "target group", "intervention", "citizens")
    for group in _groups(summary):
        counts = {i: n for (g, i), n in summary.by_group_and_intervention.items() if g == group}
        for code, count in sorted(counts.items()):
            table.add_row(group, code, shown_count(count, identity))
    return table


def step_table(summary: CoordinationSummary, identity: Identity | None = None) -> Table:
    """Fællesborgere per support step, with the share at the edge of the labour market."""
    table = _table(f"Support steps of fællesborgere on {summary.as_of}",
                   "support step", "fællesborgere", "at the edge of the labour market")
    for step in STEPS:
        count = summary.faellesborgere_by_step[step]
        table.add_row(str(step) if step else "0 (none)", shown_count(count, identity),
                      _share(summary.edge_by_step[step], count, identity))
    table.caption = "step 0: only children's measures, which stand outside the steps"
    return table


def flag_table(summary: CoordinationSummary, identity: Identity | None = None) -> Table:
    table = _table(f"Coordination flags on {summary.as_of}", "flag", "citizens")
    for name in FLAGS:
        table.add_row(name, shown_count(summary.flags[name], identity))
    return table


def yearly_table(mapping: YearlyMapping, identity: Identity | None = None) -> Table:
    n = partial(shown_count, identity=identity)
    table = _table(f"Yearly mapping {mapping.year}", "citizens", "count", "share")
    table.add_row(f"on a benefit for at least {MONTHS_FOR_YEARLY} months",
                  n(mapping.on_benefit), "")
    table.add_row("fællesborgere (and an intervention in the year)",
                  n(mapping.faellesborgere),
                  _share(mapping.faellesborgere, mapping.on_benefit, identity))
    return table


def flow_tables(result: Flows, identity: Identity | None = None) -> list[Table]:
    n = partial(shown_count, identity=identity)
    names = reference.benefits()
    benefits = sorted(INFLOW_BENEFITS)
    inflow = _table(f"Inflow per half-year, {result.first} to {result.last}", "half-year",
                    *(names[b].danish_name for b in benefits))
    for label, counts in result.inflow.items():
        inflow.add_row(label, *(n(counts[b]) for b in benefits))
    inflow.caption = "citizens entering each benefit in the half-year"
    awaiting = _table("Approved for a flexjob but without one (ledighedsydelse)",
                      "first of month", "citizens")
    for day, count in result.awaiting_flexjob.items():
        awaiting.add_row(day.isoformat(), n(count))
    return [inflow, awaiting]


# --- From the read model (SQL) -------------------------------------------------


def summary_from(store: ReadModelStore, as_of: date, long_spell_years: int) -> CoordinationSummary:
    """`summarise` over the per-citizen values SQL computes for `as_of`."""
    summary = CoordinationSummary(as_of)
    for c in coordination_records(store, as_of, long_spell_years):
        group = c["target_group"] or NO_TARGET_GROUP
        summary.citizens += 1
        summary.by_group[group] += 1
        summary.by_group_and_intervention.update((group, code) for code in c["interventions"])
        summary.flags.update(c["flags"])
        if c["is_faellesborger"]:
            summary.faellesborgere_by_group[group] += 1
            summary.faellesborgere_by_step[c["support_step"]] += 1
            summary.edge_by_step[c["support_step"]] += c["edge"]
    return summary


def yearly_from(store: ReadModelStore, year: int) -> YearlyMapping:
    dialect = Dialect(store.dialect)
    params = {"year": year, "first": f"{year}-01-01", "end": f"{year + 1}-01-01"}
    with store.read() as cursor:
        cursor.execute(dialect.bind(yearly_sql()), params)
        on_benefit, faellesborgere = cursor.fetchone()
    return YearlyMapping(year, int(on_benefit or 0), int(faellesborgere or 0))


def flows_from(store: ReadModelStore, first: date, last: date) -> Flows:
    dialect = Dialect(store.dialect)
    result = Flows(first, last, {label: Counter() for label in half_years(first, last)})
    firsts = months(first, last)
    with store.read() as cursor:
        cursor.execute(
            dialect.bind(inflow_sql()), {"first": first.isoformat(), "last": last.isoformat()}
        )
        for label, benefit, citizens in cursor.fetchall():
            result.inflow[label][benefit] += int(citizens)
        awaiting: dict[str, int] = {}
        if firsts:
            cursor.execute(awaiting_flexjob_sql(firsts))
            awaiting = {day: int(n) for day, n in cursor.fetchall()}
    result.awaiting_flexjob = {day: awaiting.get(day.isoformat(), 0) for day in firsts}
    return result
