"""Caseload and continuity: which caseworker is responsible for a citizen, and when.

domain.md, "Caseload, continuity and contact cadence": a `CaseworkerAssigned` is
in force from its date until the next assignment or the end of the all-benefits
spell it was made in, whichever comes first.

Read as of D (events effective on or before D), an assignment made on A is in
force on a day X (A <= X <= D) when it is the latest assignment effective on or
before X (same-day ties: the later recorded) and no all-benefits spell ends in
(A, X]. A spell ends at its last run's end (the first unpaid day); the spell
paying D has not ended. An assignment made in a gap between spells belongs to
the spell that follows (a caseworker assigned on the application day, before
the first payment), and one made after the last spell stays in force until the
next assignment.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType

from casehistory.domain.coordination import benefits_covering
from casehistory.domain.durations import benefit_spells
from casehistory.domain.spells import ONE_DAY, months_later
from casehistory.domain.timeline import Timeline

CASELOAD_TARGET = 50
CASELOAD_TYPICAL = 70
CASELOAD_UNFUNDED = 110
"""The field's figures: 50 per caseworker as the target, about 70 for vulnerable
young people, 110 without funding."""
CONTINUITY_MONTHS = 12


@dataclass(frozen=True, slots=True)
class Responsibility:
    """The days `[start, end)` an assignment was in force, as of the day asked."""

    caseworker: str
    unit: str | None
    start: date
    end: date | None
    """The first day no longer in force; None while still in force on the day asked."""
    event_id: str

    def in_force_on(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)


def responsibilities(timeline: Timeline, day: date) -> tuple[Responsibility, ...]:
    """Each assignment effective on or before `day` with the days it was in force.

    Assignments superseded on their own date (a later-recorded one the same day)
    are never in force and are left out. Ends after `day` are not yet known and
    read as None.
    """
    assignments = [a for a in timeline.caseworker_assignments if a.effective_date <= day]
    spell_ends = [
        s.end for s in benefit_spells(timeline.periods_on(day), day) if s.end <= day
    ]
    found: list[Responsibility] = []
    for index, assignment in enumerate(assignments):
        later = assignments[index + 1].effective_date if index + 1 < len(assignments) else None
        if later == assignment.effective_date:
            continue
        ends = [e for e in spell_ends if e > assignment.effective_date]
        if later is not None:
            ends.append(later)
        end = min(ends, default=None)
        found.append(
            Responsibility(
                assignment.caseworker,
                assignment.unit,
                assignment.effective_date,
                end,
                assignment.event_id,
            )
        )
    return tuple(found)


def responsible_on(timeline: Timeline, day: date) -> Responsibility | None:
    """The assignment in force on `day`, whether or not the citizen is on benefit."""
    return next((r for r in responsibilities(timeline, day) if r.in_force_on(day)), None)


def caseload_entry(timeline: Timeline, day: date) -> Responsibility | None:
    """The assignment that puts the citizen in a caseload on `day`.

    Only citizens on a job-centre benefit on `day` are in a caseload.
    """
    if not benefits_covering(timeline, day, job_centre_only=True):
        return None
    return responsible_on(timeline, day)


def caseloads(timelines: Iterable[Timeline], day: date) -> Mapping[tuple[str, str | None], int]:
    """Citizens per (caseworker, unit) on `day`, from each citizen's caseload entry."""
    counts: Counter[tuple[str, str | None]] = Counter()
    for timeline in timelines:
        entry = caseload_entry(timeline, day)
        if entry is not None:
            counts[entry.caseworker, entry.unit] += 1
    return MappingProxyType(dict(counts))


def caseworkers_in_last_months(
    timeline: Timeline, day: date, months: int = CONTINUITY_MONTHS
) -> tuple[str, ...]:
    """Distinct caseworkers whose assignment was in force on some day of (D - months, D].

    D - 12 months of 29 February is 28 February. Sorted.
    """
    first = months_later(day, -months) + ONE_DAY
    return tuple(
        sorted(
            {
                r.caseworker
                for r in responsibilities(timeline, day)
                if r.start <= day and (r.end is None or r.end > first)
            }
        )
    )


def continuity(timeline: Timeline, day: date) -> int:
    """The number of different caseworkers in force on some day of (D - 12 months, D]."""
    return len(caseworkers_in_last_months(timeline, day))
