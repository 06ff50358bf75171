"""The headline durations report: buckets and cohorts, true versus naive.

The naive measure is what case systems show today (days since the start of the
most recent open period). A citizen is *missed* for a cohort when the true
all-benefits spell is over N years but the naive measure is not; the misses are
broken down by the kinds of break the spell bridged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

from casehistory.domain.durations import (
    COHORT_YEARS,
    DURATION_BUCKETS,
    Durations,
    duration_bucket,
    over_years,
)
from casehistory.domain.facts import BREAK_KIND_OF_REASON, BreakKind
from casehistory.projections.queries import Dialect, date_params, headline_sql
from casehistory.projections.store import ReadModelStore


@dataclass
class Headline:
    as_of: date
    citizens: int = 0
    on_benefit: int = 0
    true_buckets: Counter[str] = field(default_factory=Counter)
    naive_buckets: Counter[str] = field(default_factory=Counter)
    true_cohorts: Counter[int] = field(default_factory=Counter)
    cash_cohorts: Counter[int] = field(default_factory=Counter)
    naive_cohorts: Counter[int] = field(default_factory=Counter)
    missed: Counter[int] = field(default_factory=Counter)
    missed_by_break: dict[int, Counter[BreakKind]] = field(default_factory=dict)


def break_kinds(durations: Durations) -> set[BreakKind]:
    return {
        BREAK_KIND_OF_REASON[reason]
        for reason in durations.breaks_bridged
        if reason in BREAK_KIND_OF_REASON
    }


def headline(all_durations: Iterable[Durations], as_of: date) -> Headline:
    report = Headline(as_of, missed_by_break={n: Counter() for n in COHORT_YEARS})
    for d in all_durations:
        report.citizens += 1
        if not d.on_benefit or d.all_benefits_spell_start is None:
            continue
        report.on_benefit += 1
        naive_start = as_of - timedelta(days=d.naive_days or 0)
        report.true_buckets[duration_bucket(d.all_benefits_spell_start, as_of)] += 1
        report.naive_buckets[duration_bucket(naive_start, as_of)] += 1
        kinds = break_kinds(d)
        for years in COHORT_YEARS:
            true_over = over_years(d.all_benefits_spell_start, as_of, years)
            naive_over = over_years(naive_start, as_of, years)
            report.true_cohorts[years] += true_over
            report.naive_cohorts[years] += naive_over
            if d.cash_system_spell_start is not None:
                report.cash_cohorts[years] += over_years(d.cash_system_spell_start, as_of, years)
            if true_over and not naive_over:
                report.missed[years] += 1
                report.missed_by_break[years].update(kinds)
    return report


__all__ = ["DURATION_BUCKETS", "Headline", "break_kinds", "headline", "headline_from"]


def headline_from(store: ReadModelStore, as_of: date) -> Headline:
    """The headline report on `as_of`, counted by SQL over the read model."""
    dialect = Dialect(store.dialect)
    with store.read() as cursor:
        cursor.execute(dialect.bind(headline_sql()), date_params(as_of))
        values = iter([int(v or 0) for v in cursor.fetchone()])
    report = Headline(as_of, missed_by_break={n: Counter() for n in COHORT_YEARS})
    report.on_benefit = next(values)
    for bucket in DURATION_BUCKETS:
        report.true_buckets[bucket] = next(values)
        report.naive_buckets[bucket] = next(values)
    for years in COHORT_YEARS:
        report.true_cohorts[years] = next(values)
        report.cash_cohorts[years] = next(values)
        report.naive_cohorts[years] = next(values)
        report.missed[years] = next(values)
        for kind in BreakKind:
            report.missed_by_break[years][kind] = next(values)
    report.citizens = next(values)
    return report
