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

from domain.cadence import CadenceStatus
from domain.caseload import CASELOAD_TARGET, CASELOAD_TYPICAL, CASELOAD_UNFUNDED

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


def distribution_table(report: CaseloadReport) -> Table:
    table = Table(title=f"Caseloads on {report.as_of}: {report.citizens:,} citizens, "
                        f"{len(report.caseloads):,} caseworker-units")
    table.add_column("caseload")
    table.add_column("caseworkers", justify="right")
    for name in BANDS:
        table.add_row(name, f"{report.distribution[name]:,}")
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


def cadence_table(summary: CadenceSummary) -> Table:
    table = Table(title=f"Contact cadence on {summary.as_of}")
    table.add_column("target group")
    for status in STATUSES:
        table.add_column(status, justify="right")
    groups = sorted({group for group, _ in summary.by_group_and_status})
    for group in groups:
        table.add_row(group, *(f"{summary.by_group_and_status[group, s]:,}" for s in STATUSES))
    table.add_row("total", *(f"{summary.by_status[s]:,}" for s in STATUSES))
    return table
