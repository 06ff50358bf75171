"""Exits from the cash-benefit system, their destinations, and cohort follow-up.

Rules (domain.md, "Exits and cohort follow-up"):

- A cash-system spell ends at exit day E, its last run's end (the first unpaid
  day). W is the days from E to the end of the first whole calendar month on or
  after E (`end_of_first_whole_month`). The exit is known as of any D on or
  after W's last day; W then holds no cash-system benefit, or the spell would
  have gone on (the spell rule and W are the same month rule).
- Destination: `died` or `emigrated` when that is the stop reason of a benefit
  period that ended at E; otherwise the benefit paid earliest in W decides
  (`disability_pension`, `senior_pension`, `flexjob` for fleksløntilskud and
  ledighedsydelse, `other_benefit`); otherwise the first present of `job`,
  `education`, `self_support`, `moved_municipality` among the stop reasons of
  periods that ended at E; otherwise `unknown`.
- The target group at exit is the one reported on E - 1 (a cash-system benefit
  is paid that day, so a group is reported if one was ever assigned).

Everything is read as of D: events effective on or before D. Plain values in
and out, so a SQL implementation can be held equal to these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from casehistory.domain.durations import at_least_years, benefit_spells, durations_on
from casehistory.domain.spells import ONE_DAY, end_of_first_whole_month, months_later
from casehistory.domain.timeline import Period, Timeline


class Destination(StrEnum):
    DIED = "died"
    EMIGRATED = "emigrated"
    DISABILITY_PENSION = "disability_pension"
    SENIOR_PENSION = "senior_pension"
    FLEXJOB = "flexjob"
    OTHER_BENEFIT = "other_benefit"
    JOB = "job"
    EDUCATION = "education"
    SELF_SUPPORT = "self_support"
    MOVED_MUNICIPALITY = "moved_municipality"
    UNKNOWN = "unknown"


FINAL_REASONS = (Destination.DIED, Destination.EMIGRATED)
"""Stop reasons that decide before any benefit in W, in this order."""
REASON_DESTINATIONS = (
    Destination.JOB,
    Destination.EDUCATION,
    Destination.SELF_SUPPORT,
    Destination.MOVED_MUNICIPALITY,
)
"""Stop reasons that decide when no benefit is paid in W: the first present wins."""
BENEFIT_DESTINATIONS: dict[str, Destination] = {
    "foertidspension": Destination.DISABILITY_PENSION,
    "seniorpension": Destination.SENIOR_PENSION,
    "fleksloentilskud": Destination.FLEXJOB,
    "ledighedsydelse": Destination.FLEXJOB,  # approved for a flexjob
}
_BENEFIT_RANK = (
    Destination.DISABILITY_PENSION,
    Destination.SENIOR_PENSION,
    Destination.FLEXJOB,
    Destination.OTHER_BENEFIT,
)
"""Tie-break when several benefits are first paid on the same earliest day of W."""


@dataclass(frozen=True, slots=True)
class Exit:
    """One exit from the cash-benefit system, known as of any D >= `window_end`."""

    spell_start: date
    exit_date: date
    """E: the first day not paid in the cash-benefit system."""
    window_end: date
    """The last day of W."""
    destination: str
    target_group: str | None
    """The target group reported on E - 1."""
    evidence: tuple[str, ...]
    """Event ids behind the destination: the deciding stops, or the starts of the
    benefit paid earliest in W; empty for `unknown`. Sorted."""


def exits_on(timeline: Timeline, day: date) -> tuple[Exit, ...]:
    """Every exit from the cash-benefit system known as of `day`, oldest first."""
    periods = timeline.periods_on(day)
    found: list[Exit] = []
    for spell in benefit_spells(periods, day, cash_system_only=True):
        exit_date = spell.end
        window_end = end_of_first_whole_month(exit_date)
        if window_end > day:  # the spell still pays `day`, or W has not passed yet
            continue
        destination, evidence = destination_of(periods, exit_date, window_end)
        found.append(
            Exit(
                spell_start=spell.start,
                exit_date=exit_date,
                window_end=window_end,
                destination=destination,
                target_group=timeline.target_group_on(exit_date - ONE_DAY),
                evidence=evidence,
            )
        )
    return tuple(found)


def destination_of(
    periods: Iterable[Period], exit_date: date, window_end: date
) -> tuple[str, tuple[str, ...]]:
    """Where an exit at `exit_date` went, with the event ids behind it.

    `periods` are the benefit periods as known on some D >= `window_end`.
    """
    periods = list(periods)
    ended = [p for p in periods if p.stop == exit_date]
    for final in FINAL_REASONS:
        stops = [p.stop_event_id for p in ended if p.stop_reason == final and p.stop_event_id]
        if stops:
            return final.value, tuple(sorted(stops))
    paid_in_window = [
        (max(p.start, exit_date), _benefit_destination(p.code), p.start_event_id)
        for p in periods
        if p.start <= window_end and (p.stop is None or p.stop > exit_date)
    ]
    if paid_in_window:
        first_day = min(d for d, _, _ in paid_in_window)
        chosen = min(
            (dest for d, dest, _ in paid_in_window if d == first_day), key=_BENEFIT_RANK.index
        )
        starts = {i for d, dest, i in paid_in_window if d == first_day and dest is chosen}
        return chosen.value, tuple(sorted(starts))
    for reason in REASON_DESTINATIONS:
        stops = [p.stop_event_id for p in ended if p.stop_reason == reason and p.stop_event_id]
        if stops:
            return reason.value, tuple(sorted(stops))
    return Destination.UNKNOWN.value, ()


def _benefit_destination(code: str) -> Destination:
    return BENEFIT_DESTINATIONS.get(code, Destination.OTHER_BENEFIT)


# --- Cohort follow-up ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CohortDefinition:
    """Who is in a cohort on date C; an empty or None criterion matches everyone."""

    target_groups: frozenset[str] = frozenset()
    """The target group reported on C (only while on a job-centre benefit)."""
    min_age: int | None = None
    max_age: int | None = None
    """Inclusive age band on C."""
    min_years: int | None = None
    """A current spell of N years or more: started on or before C - N calendar years."""
    cash_system: bool = False
    """`min_years` reads the cash-system spell instead of the all-benefits spell."""
    municipality: str | None = None
    """A benefit period paying C was registered by this municipality."""


def in_cohort(
    timeline: Timeline, born: date | None, cohort_date: date, definition: CohortDefinition
) -> bool:
    """Whether the citizen matches `definition` on `cohort_date`; always on benefit on C."""
    measures = durations_on(timeline, cohort_date, born)
    if not measures.on_benefit:
        return False
    if definition.target_groups and measures.target_group not in definition.target_groups:
        return False
    if definition.min_age is not None or definition.max_age is not None:
        if measures.age is None:
            return False
        if definition.min_age is not None and measures.age < definition.min_age:
            return False
        if definition.max_age is not None and measures.age > definition.max_age:
            return False
    if definition.min_years is not None:
        start = (
            measures.cash_system_spell_start
            if definition.cash_system
            else measures.all_benefits_spell_start
        )
        if start is None or not at_least_years(start, cohort_date, definition.min_years):
            return False
    return definition.municipality is None or any(
        p.municipality == definition.municipality and p.covers(cohort_date)
        for p in timeline.periods_on(cohort_date)
    )


class CohortOutcome(StrEnum):
    EXITED = "exited"
    ON_BENEFIT = "on_benefit"
    NEITHER = "neither"


DEFAULT_HORIZONS = (6, 12, 18)


@dataclass(frozen=True, slots=True)
class FollowUp:
    """A cohort member's outcome at cohort date C + `horizon_months`."""

    horizon_months: int
    horizon_date: date
    outcome: str
    destination: str | None = None
    """For `exited`: the destination of the first exit after C known by the horizon."""
    exit_date: date | None = None


def follow_up(
    timeline: Timeline, cohort_date: date, horizons: Sequence[int] = DEFAULT_HORIZONS
) -> tuple[FollowUp, ...]:
    """The outcome at each horizon of a citizen in a cohort taken on `cohort_date`.

    The horizon date is C + h calendar months (`months_later`: 31 August + 6
    months is the end of February). At each horizon H, as of H: `exited` when
    an exit with E after C is known as of H (the first such exit decides, even
    if the citizen has come back since); else `on_benefit` when day H is paid
    (any benefit); else `neither` (a gap, or an exit whose W has not passed).
    """
    outcomes: list[FollowUp] = []
    for months in horizons:
        horizon = months_later(cohort_date, months)
        exited = next((e for e in exits_on(timeline, horizon) if e.exit_date > cohort_date), None)
        if exited is not None:
            outcome = CohortOutcome.EXITED.value
            outcomes.append(
                FollowUp(months, horizon, outcome, exited.destination, exited.exit_date)
            )
        elif any(p.covers(horizon) for p in timeline.periods_on(horizon)):
            outcomes.append(FollowUp(months, horizon, CohortOutcome.ON_BENEFIT.value))
        else:
            outcomes.append(FollowUp(months, horizon, CohortOutcome.NEITHER.value))
    return tuple(outcomes)
