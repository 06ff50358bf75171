"""The duration measures of one citizen on a date D, read off a timeline.

Day counts follow the precise rules: `spell_days = D - spell start`;
`benefit_days_in_spell` counts paid days from the spell start up to and
including D; spell fields are empty unless day D itself is paid.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType

from casehistory.domain import reference
from casehistory.domain.cpr import age_on
from casehistory.domain.spells import (
    ONE_DAY,
    Run,
    Spell,
    paid_days_between,
    spells,
    union,
    years_before,
)
from casehistory.domain.timeline import Period, Timeline

COHORT_YEARS = (2, 3, 6, 10, 15)
WEEKS_26 = 182


@dataclass(frozen=True, slots=True)
class Durations:
    """What the durations read model reports for one citizen on `as_of`."""

    as_of: date
    on_benefit: bool
    all_benefits_spell_start: date | None
    all_benefits_spell_days: int | None
    cash_system_spell_start: date | None
    cash_system_spell_days: int | None
    benefit_days_in_spell: int | None
    breaks_bridged: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    naive_days: int | None = None
    share_last_10y_cash_system: float = 0.0
    age: int | None = None
    target_group: str | None = None


def benefit_spells(
    periods: Iterable[Period], day: date, *, cash_system_only: bool = False
) -> list[Spell]:
    """Spells of the given periods, paid days counted up to and including `day`."""
    benefits = reference.benefits()
    end = day + ONE_DAY
    intervals = [
        (p.start, min(p.stop or end, end))
        for p in periods
        if not cash_system_only or benefits[p.code].in_cash_benefit_system
    ]
    return spells(union(intervals))


def current_spell(all_spells: list[Spell], day: date) -> Spell | None:
    """The spell that pays day `day`, if any."""
    if all_spells and all_spells[-1].end == day + ONE_DAY:
        return all_spells[-1]
    return None


def durations_on(timeline: Timeline, day: date, born: date | None) -> Durations:
    """All duration measures of one citizen as of `day`."""
    periods = timeline.periods_on(day)
    benefits = reference.benefits()
    spell = current_spell(benefit_spells(periods, day), day)
    cash_spells = benefit_spells(periods, day, cash_system_only=True)
    cash_spell = current_spell(cash_spells, day)
    open_periods = [p for p in periods if p.covers(day)]
    on_job_centre_benefit = any(benefits[p.code].is_job_centre_benefit for p in open_periods)
    return Durations(
        as_of=day,
        on_benefit=spell is not None,
        all_benefits_spell_start=spell.start if spell else None,
        all_benefits_spell_days=(day - spell.start).days if spell else None,
        cash_system_spell_start=cash_spell.start if cash_spell else None,
        cash_system_spell_days=(day - cash_spell.start).days if cash_spell else None,
        benefit_days_in_spell=spell.paid_days if spell else None,
        breaks_bridged=breaks_bridged(periods, spell.start, day) if spell else MappingProxyType({}),
        naive_days=(day - max(p.start for p in open_periods)).days if open_periods else None,
        share_last_10y_cash_system=share_in_window(
            [run for s in cash_spells for run in s.runs], day, years=10
        ),
        age=age_on(born, day) if born else None,
        target_group=timeline.target_group_on(day) if on_job_centre_benefit else None,
    )


def breaks_bridged(periods: Iterable[Period], spell_start: date, day: date) -> Mapping[str, int]:
    """Benefit periods that ended inside the spell (after its start, on or before D), by reason."""
    counts = Counter(
        p.stop_reason or "other"
        for p in periods
        if p.stop is not None and spell_start < p.stop <= day
    )
    return MappingProxyType(dict(sorted(counts.items())))


def share_in_window(runs: list[Run], day: date, *, years: int) -> float:
    """Paid days in `(D - years, D]` over the window's days."""
    window_start = years_before(day, years)
    window_days = (day - window_start).days
    paid = paid_days_between(runs, window_start + ONE_DAY, day + ONE_DAY)
    return paid / window_days


def over_years(spell_start: date, day: date, years: int) -> bool:
    """'Over N years': the spell started before D minus N calendar years."""
    return spell_start < years_before(day, years)


def at_least_years(spell_start: date, day: date, years: int) -> bool:
    """'N years or more': the spell started on or before D minus N calendar years."""
    return spell_start <= years_before(day, years)


DURATION_BUCKETS = ("0-26 weeks", "26-52 weeks", "1-2 years", "2-3 years", "over 3 years")


def duration_bucket(spell_start: date, day: date) -> str:
    """The field's buckets; 26 weeks is 182 days, 52 weeks 364 days."""
    days = (day - spell_start).days
    if days < WEEKS_26:
        return DURATION_BUCKETS[0]
    if days < 2 * WEEKS_26:
        return DURATION_BUCKETS[1]
    if not over_years(spell_start, day, 2):
        return DURATION_BUCKETS[2]
    if not over_years(spell_start, day, 3):
        return DURATION_BUCKETS[3]
    return DURATION_BUCKETS[4]
