"""Reports as plain tables, and tables as Danish CSV or XLSX.

One table shape serves the API's CSV and XLSX, the dashboard's "vis som tabel"
and its charts, so a chart, its table and an export never disagree. Column names
are stable machine keys; the dashboard translates them.

CSV follows the Danish convention Excel expects here: `;` between fields, a
decimal comma, UTF-8 with a byte-order mark. Dates stay ISO 8601 (`2026-11-01`),
which Excel reads as a date in every locale.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from casehistory.domain import reference
from casehistory.domain.coordination import INFLOW_BENEFITS
from casehistory.domain.durations import COHORT_YEARS, Durations
from casehistory.domain.facts import BreakKind
from casehistory.services.access import SUPPRESSED, Identity, is_suppressed, small_counts_hidden
from casehistory.services.coordination_report import (
    FLAGS,
    NO_TARGET_GROUP,
    STEPS,
    CoordinationSummary,
    Flows,
)
from casehistory.services.council_report import (
    BANDS,
    CASELOAD_FIELDS,
    COHORT_FIELDS,
    EXIT_FIELDS,
    STATUSES,
    CadenceSummary,
    CaseloadReport,
    caseload_rows,
)
from casehistory.services.report import DURATION_BUCKETS, Headline
from casehistory.services.reports import CoordinationPage, DurationsPage, TrendPoint

BOM = "\ufeff"


@dataclass(frozen=True)
class Table:
    name: str
    columns: list[str]
    rows: list[list[Any]]

    def as_json(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": [[as_plain(v) for v in r] for r in self.rows]}


NOT_COUNTS = frozenset({"horizon_months", "support_step"})
"""Whole-number columns of aggregate tables that do not count people."""


def seen_by(table: Table, identity: Identity) -> Table:
    """An aggregate table as this caller may see it: for an analyst each count of 1 to 4 is
    "<5", and a row holding one loses its shares (`access.suppressed_rows`, the CLI's rule)."""
    if not small_counts_hidden(identity):
        return table
    rows = []
    for row in table.rows:
        hidden = {
            i for i, (column, value) in enumerate(zip(table.columns, row, strict=True))
            if i and column not in NOT_COUNTS and isinstance(value, int)
            and not isinstance(value, bool) and is_suppressed(value, identity)
        }
        if hidden:
            row = [SUPPRESSED if i in hidden else None if isinstance(v, float) else v
                   for i, v in enumerate(row)]
        rows.append(row)
    return Table(table.name, table.columns, rows)


def count_seen_by(count: int, identity: Identity) -> int | str:
    """One count as this caller may see it ("<5" for an analyst when it is 1 to 4)."""
    return SUPPRESSED if is_suppressed(count, identity) else count


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def headline_tables(h: Headline) -> list[Table]:
    kinds = list(BreakKind)
    return [
        Table("summary", ["citizens", "on_benefit"], [[h.citizens, h.on_benefit]]),
        Table("buckets", ["bucket", "true", "naive"],
              [[b, h.true_buckets[b], h.naive_buckets[b]] for b in DURATION_BUCKETS]),
        Table("cohorts", ["over_years", "true", "cash_system", "naive", "missed_by_naive"],
              [[n, h.true_cohorts[n], h.cash_cohorts[n], h.naive_cohorts[n], h.missed[n]]
               for n in COHORT_YEARS]),
        Table("missed_by_break", ["over_years", *(k.value for k in kinds)],
              [[n, *(h.missed_by_break[n][k] for k in kinds)] for n in COHORT_YEARS]),
    ]


def _groups(s: CoordinationSummary) -> list[str]:
    return [g for g in [*reference.target_groups(), NO_TARGET_GROUP] if s.by_group[g]]


def coordination_tables(s: CoordinationSummary) -> list[Table]:
    groups = _groups(s)
    shared_all = sum(s.faellesborgere_by_group.values())
    by_group = [
        [g, s.by_group[g], s.faellesborgere_by_group[g],
         _share(s.faellesborgere_by_group[g], s.by_group[g])]
        for g in groups
    ]
    by_group.append(["all", s.citizens, shared_all, _share(shared_all, s.citizens)])
    return [
        Table("by_target_group", ["target_group", "citizens", "faellesborgere", "share"], by_group),
        Table("by_step", ["support_step", "faellesborgere", "edge_of_labour_market_share"],
              [[step, s.faellesborgere_by_step[step],
                _share(s.edge_by_step[step], s.faellesborgere_by_step[step])] for step in STEPS]),
        Table("flags", ["flag", "citizens"], [[f, s.flags[f]] for f in FLAGS]),
        Table("by_intervention", ["target_group", "intervention", "citizens"],
              [[g, i, n] for (g, i), n in sorted(s.by_group_and_intervention.items())]),
    ]


COORDINATION_COLUMNS = [
    "citizen_key", "is_faellesborger", "support_step", "interventions", "flags", "target_group",
    "age",
]


def coordination_citizens_table(page: CoordinationPage) -> Table:
    """One row per citizen, as `casehistory coordination --per-citizen` writes it."""
    return Table("coordination_citizens", COORDINATION_COLUMNS, [
        [key, c.is_faellesborger, c.support_step, list(c.interventions), sorted(c.flags),
         c.target_group, c.age]
        for key, c in page.rows
    ])


def flows_tables(f: Flows) -> list[Table]:
    benefits = sorted(INFLOW_BENEFITS)
    return [
        Table("inflow", ["half_year", *benefits],
              [[label, *(counts[b] for b in benefits)] for label, counts in f.inflow.items()]),
        Table("awaiting_flexjob", ["month", "citizens"],
              [[day, n] for day, n in f.awaiting_flexjob.items()]),
    ]


def trend_tables(points: list[TrendPoint]) -> list[Table]:
    columns = ["month", "on_benefit",
               *(f"true_over_{n}" for n in COHORT_YEARS),
               *(f"naive_over_{n}" for n in COHORT_YEARS)]
    return [Table("trend", columns, [
        [p.day, p.on_benefit, *(p.true_over[n] for n in COHORT_YEARS),
         *(p.naive_over[n] for n in COHORT_YEARS)] for p in points
    ])]


# --- The councils' reports -----------------------------------------------------------


def exits_tables(rows: list[dict[str, Any]]) -> list[Table]:
    """Exits per half-year, destination and target group at exit; the same by destination and
    by target group (half-years down, one column each)."""
    found = [Table("exits", EXIT_FIELDS, [[r[c] for c in EXIT_FIELDS] for r in rows])]
    halves = sorted({r["half_year"] for r in rows})
    for column in ("destination", "target_group"):
        totals: Counter[tuple[str, str]] = Counter()
        for r in rows:
            totals[r["half_year"], r[column]] += r["exits"]
        names = sorted({name for _, name in totals})
        found.append(Table(f"by_{column}", ["half_year", *names],
                           [[half, *(totals[half, n] for n in names)] for half in halves]))
    return found


def cohort_tables(cohort_date: date, members: int, rows: list[dict[str, Any]]) -> list[Table]:
    """The cohort's size on C, and per horizon each outcome's count and share."""
    return [
        Table("cohort", ["cohort_date", "citizens"], [[cohort_date, members]]),
        Table("outcomes", COHORT_FIELDS, [[r[c] for c in COHORT_FIELDS] for r in rows]),
    ]


def caseload_tables(report: CaseloadReport) -> list[Table]:
    """How the caseloads fall in the bands (target, typical, unfunded lines), and each one."""
    rows = caseload_rows(report)
    return [
        Table("distribution", ["band", "caseworkers"],
              [[name, report.distribution[name]] for name in BANDS]),
        Table("caseloads", CASELOAD_FIELDS, [[r[c] for c in CASELOAD_FIELDS] for r in rows]),
    ]


def cadence_tables(summary: CadenceSummary) -> list[Table]:
    """Citizens under the contact cadence by status, per target group and in total."""
    groups = sorted({group for group, _ in summary.by_group_and_status})
    return [Table("by_status", ["target_group", *STATUSES], [
        *([g, *(summary.by_group_and_status[g, s] for s in STATUSES)] for g in groups),
        ["all", *(summary.by_status[s] for s in STATUSES)],
    ])]


def continuity_tables(records: list[dict[str, Any]]) -> list[Table]:
    """Citizens by how many caseworkers they had in the window."""
    counts = Counter(r["caseworkers"] for r in records)
    return [Table("by_caseworkers", ["caseworkers", "citizens"],
                  [[n, counts[n]] for n in sorted(counts)])]


DURATION_COLUMNS = [
    "citizen_key", "on_benefit", "all_benefits_spell_start", "all_benefits_spell_days",
    "cash_system_spell_start", "cash_system_spell_days", "benefit_days_in_spell",
    "breaks_bridged", "naive_days", "share_last_10y_cash_system", "age", "target_group",
]


def duration_record(citizen_key: str, d: Durations) -> dict[str, Any]:
    return {
        "citizen_key": citizen_key,
        **{c: getattr(d, c) for c in DURATION_COLUMNS[1:]},
        "breaks_bridged": dict(d.breaks_bridged),
        "share_last_10y_cash_system": round(d.share_last_10y_cash_system, 6),
    }


def durations_table(page: DurationsPage) -> Table:
    records = [duration_record(k, d) for k, d in page.rows]
    return Table("durations", DURATION_COLUMNS,
                 [[r[c] for c in DURATION_COLUMNS] for r in records])


# --- Formats -----------------------------------------------------------------------


def as_plain(value: Any) -> Any:
    """Dates as ISO text, tuples as lists, recursively: what JSON can carry."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): as_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_plain(v) for v in value]
    return value


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value).replace(".", ",")
    if isinstance(value, Mapping | list):
        return json.dumps(as_plain(value), ensure_ascii=False)
    return str(as_plain(value))


def to_csv(table: Table) -> bytes:
    """One table as Danish CSV: `;`, decimal comma, UTF-8 with BOM."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(table.columns)
    writer.writerows([_csv_cell(v) for v in row] for row in table.rows)
    return out.getvalue().encode("utf-8")


def to_xlsx(tables: Iterable[Table]) -> bytes:
    """Every table on its own sheet, numbers as numbers and dates as dates."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.remove(book.active)
    for table in tables:
        sheet = book.create_sheet(table.name[:31])
        sheet.append(table.columns)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in table.rows:
            sheet.append([
                json.dumps(as_plain(v), ensure_ascii=False) if isinstance(v, Mapping | list) else v
                for v in row
            ])
        for column in sheet.iter_cols(min_row=2):
            for cell in column:
                if isinstance(cell.value, date):
                    cell.number_format = "DD.MM.YYYY"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
