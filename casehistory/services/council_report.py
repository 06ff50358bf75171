"""Caseload and cadence reports in the shapes the councils read (domain.md).

Pure over what `projections.council_queries` answers: caseloads per caseworker
and unit against the field's lines (50 target, 70 typical, 110 unfunded), and
the contact clocks by status.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from rich.table import Table

from casehistory.domain.cadence import CadenceStatus
from casehistory.domain.caseload import CASELOAD_TARGET, CASELOAD_TYPICAL, CASELOAD_UNFUNDED
from casehistory.domain.durations import at_least_years
from casehistory.services.access import Identity, shown_count

NO_UNIT = "(none)"
BANDS = (
    f"<= {CASELOAD_TARGET}",
    f"{CASELOAD_TARGET + 1}-{CASELOAD_TYPICAL}",
    f"{CASELOAD_TYPICAL + 1}-{CASELOAD_UNFUNDED}",
    f"> {CASELOAD_UNFUNDED}",
)
"""The distribution's bands, cut at the target, typical and unfunded lines."""


def band(citizens: int) -> str:
    """The band of a caseload of `citizens`."""
    if citizens <= CASELOAD_TARGET:
        return BANDS[0]
    if citizens <= CASELOAD_TYPICAL:
        return BANDS[1]
    if citizens <= CASELOAD_UNFUNDED:
        return BANDS[2]
    return BANDS[3]


@dataclass
class CaseloadReport:
    """Citizens per (caseworker, unit) on `as_of` and how the caseloads fall in the bands."""

    as_of: date
    caseloads: dict[tuple[str, str | None], int]
    distribution: Counter[str] = field(default_factory=Counter)

    @property
    def citizens(self) -> int:
        return sum(self.caseloads.values())


def caseload_report(as_of: date, counts: Mapping[tuple[str, str | None], int]) -> CaseloadReport:
    """The report over `domain.caseload.caseloads`-shaped counts."""
    return CaseloadReport(as_of, dict(counts), Counter(band(n) for n in counts.values()))


CASELOAD_FIELDS = ["caseworker", "unit", "citizens", "band"]


def caseload_rows(report: CaseloadReport) -> list[dict[str, Any]]:
    """One row per caseworker and unit, largest caseload first."""
    ordered = sorted(report.caseloads.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1] or ""))
    return [
        {"caseworker": worker, "unit": unit, "citizens": n, "band": band(n)}
        for (worker, unit), n in ordered
    ]


def distribution_table(report: CaseloadReport, identity: Identity | None = None) -> Table:
    """Caseworker-units per band; counts under 5 show as "<5" when the caller is an analyst."""

    def n(count: int) -> str:
        return shown_count(count, identity)

    table = Table(title=f"Caseloads on {report.as_of}: {n(report.citizens)} citizens, "
                        f"{n(len(report.caseloads))} caseworker-units")
    table.add_column("caseload")
    table.add_column("caseworkers", justify="right")
    for name in BANDS:
        table.add_row(name, n(report.distribution[name]))
    return table


@dataclass
class CadenceSummary:
    """Citizens under the cadence rule on `as_of`, by status and by target group."""

    as_of: date
    by_status: Counter[str] = field(default_factory=Counter)
    by_group_and_status: Counter[tuple[str, str]] = field(default_factory=Counter)


def cadence_summary(as_of: date, records: Iterable[Mapping[str, Any]]) -> CadenceSummary:
    summary = CadenceSummary(as_of)
    for r in records:
        summary.by_status[r["status"]] += 1
        summary.by_group_and_status[r["target_group"], r["status"]] += 1
    return summary


STATUSES = tuple(s.value for s in CadenceStatus)


def cadence_table(summary: CadenceSummary, identity: Identity | None = None) -> Table:
    """Citizens by group and status; "<5" for small counts when the caller is an analyst."""

    def n(count: int) -> str:
        return shown_count(count, identity)

    table = Table(title=f"Contact cadence on {summary.as_of}")
    table.add_column("target group")
    for status in STATUSES:
        table.add_column(status, justify="right")
    groups = sorted({group for group, _ in summary.by_group_and_status})
    for group in groups:
        table.add_row(group, *(n(summary.by_group_and_status[group, s]) for s in STATUSES))
    table.add_row("total", *(n(summary.by_status[s]) for s in STATUSES))
    return table


EXIT_FIELDS = ["half_year", "destination", "target_group", "exits"]


def exit_rows(counts: Iterable[tuple[str, str, str | None, int]]) -> list[dict[str, Any]]:
    """Exits per half-year, destination and target group at exit (`(none)` without one)."""
    return [
        {"half_year": half, "destination": dest, "target_group": group or NO_UNIT, "exits": n}
        for half, dest, group, n in counts
    ]


def exit_tables(rows: list[dict[str, Any]], identity: Identity | None = None) -> list[Table]:
    """Two council tables: half-years by destination, and by target group at exit.

    Counts under 5 show as "<5" when the caller is an analyst.
    """
    tables = []
    for column in ("destination", "target_group"):
        totals: Counter[tuple[str, str]] = Counter()
        for r in rows:
            totals[r["half_year"], r[column]] += r["exits"]
        names = sorted({name for _, name in totals})
        table = Table(title=f"Exits from the cash-benefit system by {column.replace('_', ' ')}")
        table.add_column("half-year")
        for name in names:
            table.add_column(name, justify="right")
        for half in sorted({h for h, _ in totals}):
            table.add_row(half, *(shown_count(totals[half, name], identity) for name in names))
        tables.append(table)
    return tables


@dataclass(frozen=True)
class CohortCriteria:
    """Who is in a cohort on C (`domain.exits.CohortDefinition`).

    `admits` reads one durations record; the municipality (a benefit period paying C
    registered by it) is checked against `projections.council_queries.paying_municipalities`.
    """

    target_groups: frozenset[str] = frozenset()
    min_age: int | None = None
    max_age: int | None = None
    min_years: int | None = None
    cash_system: bool = False
    municipality: str | None = None

    def admits(self, r: Mapping[str, Any], cohort_date: date) -> bool:
        """`domain.exits.in_cohort` over one per-citizen durations record on C, but for the
        municipality."""
        if not r["on_benefit"]:
            return False
        if self.target_groups and r["target_group"] not in self.target_groups:
            return False
        age = r["age"]
        if self.min_age is not None and (age is None or age < self.min_age):
            return False
        if self.max_age is not None and (age is None or age > self.max_age):
            return False
        if self.min_years is not None:
            start = r["cash_system_spell_start" if self.cash_system else "all_benefits_spell_start"]
            if start is None or not at_least_years(
                date.fromisoformat(start), cohort_date, self.min_years
            ):
                return False
        return True


COHORT_FIELDS = ["horizon_months", "horizon_date", "outcome", "destination", "citizens", "share"]


def cohort_rows(
    members: int, horizon_outcomes: Iterable[tuple[int, date, Counter[tuple[str, str | None]]]]
) -> list[dict[str, Any]]:
    """Per horizon: each outcome (exited per destination, on_benefit, neither), count and share."""
    rows = []
    for months, horizon, outcomes in horizon_outcomes:
        for (outcome, destination), n in sorted(outcomes.items(), key=lambda kv: (
                kv[0][0], kv[0][1] or "")):
            rows.append({
                "horizon_months": months, "horizon_date": horizon, "outcome": outcome,
                "destination": destination, "citizens": n,
                "share": round(n / members, 4) if members else 0.0,
            })
    return rows
