"""Prioritisation lists: long durations and the clarification pool (Afklaringspuljen).

domain.md, "Prioritisation lists":

- *Long durations*: on benefit at D with the all-benefits spell (or, chosen,
  the cash-system spell) started before D - N calendar years ("over N years"),
  longest first, with the breaks the spell bridged and the naive measure.
- *Clarification pool*: aktivitetsparat (adult or young), aged 30 or over, with
  `share_last_10y_cash_system` >= 0.8 at D.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType

from casehistory.domain import reference
from casehistory.domain.durations import (
    Durations,
    benefit_spells,
    breaks_bridged,
    current_spell,
    over_years,
)
from casehistory.domain.timeline import Timeline

CLARIFICATION_POOL_GROUPS = frozenset({"aktivitetsparat_voksen", "aktivitetsparat_ung"})
CLARIFICATION_POOL_MIN_AGE = 30
CLARIFICATION_POOL_MIN_SHARE = 0.8


@dataclass(frozen=True, slots=True)
class LongDuration:
    """One citizen's entry on the long-durations list at `as_of`."""

    as_of: date
    spell_start: date
    spell_days: int
    """D - spell start."""
    breaks_bridged: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """Periods that ended inside the spell, by stop reason (for the cash-system spell,
    cash-system periods only)."""
    naive_days: int | None = None
    """D - the latest start among periods still open at D (all benefits)."""


def long_duration(
    timeline: Timeline, day: date, years: int, *, cash_system: bool = False
) -> LongDuration | None:
    """The citizen's entry when on benefit at `day` with a spell over `years` years, else None.

    "Over N years" is a spell started before D - N calendar years (29 February
    minus a year is 28 February). With `cash_system` the spell is the
    cash-benefit-system spell, which must be paying D itself.
    """
    periods = timeline.periods_on(day)
    if cash_system:
        benefits = reference.benefits()
        periods = tuple(p for p in periods if benefits[p.code].in_cash_benefit_system)
    spell = current_spell(benefit_spells(periods, day), day)
    if spell is None or not over_years(spell.start, day, years):
        return None
    open_starts = [p.start for p in timeline.periods_on(day) if p.covers(day)]
    return LongDuration(
        as_of=day,
        spell_start=spell.start,
        spell_days=(day - spell.start).days,
        breaks_bridged=breaks_bridged(periods, spell.start, day),
        naive_days=(day - max(open_starts)).days,
    )


def longest_first(entries: Mapping[str, LongDuration]) -> list[str]:
    """Citizen keys ordered longest spell first; equal spells by key."""
    return sorted(entries, key=lambda key: (entries[key].spell_start, key))


def in_clarification_pool(measures: Durations) -> bool:
    """Aktivitetsparat (adult or young), 30 or over, >= 80% of the last ten years in the system.

    The target group is the reported one (only while on a job-centre benefit);
    an unknown age never qualifies. The share is compared as computed by
    `durations_on` (paid days / window days; the float division is exact enough
    that no integer ratio below 0.8 rounds up to it).
    """
    return (
        measures.target_group in CLARIFICATION_POOL_GROUPS
        and measures.age is not None
        and measures.age >= CLARIFICATION_POOL_MIN_AGE
        and measures.share_last_10y_cash_system >= CLARIFICATION_POOL_MIN_SHARE
    )
