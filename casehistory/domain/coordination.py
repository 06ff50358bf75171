"""Cross-administration coordination and flows of one citizen, read off a timeline.

Vocabulary (domain.md, "Precise rules" and "Cross-administration coordination"):

- *Job-centre benefit* (also "temporary benefit"): any benefit outside the
  `permanent` family, paid on day D (a period covering D).
- *Active intervention on D*: an intervention period covering D, as known from
  events effective on or before D.
- *Fællesborger*: on a job-centre benefit on D with at least one active
  coordination-relevant intervention; children's measures count.
- *Support step*: the highest `support_step` among active adult interventions;
  children's measures and non-step interventions stand outside the steps; 0 when
  there is none.

Every flag carries the event ids behind it: the start events of the periods and
the target-group assignment its condition names, sorted and without repeats.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from types import MappingProxyType

from casehistory.domain import reference
from casehistory.domain.cpr import age_on
from casehistory.domain.durations import at_least_years, benefit_spells, current_spell
from casehistory.domain.spells import first_of_next_month, paid_days_between, union
from casehistory.domain.timeline import GroupAssignment, Period, Timeline

READY_FOR_JOB_OR_EDUCATION = "ready_for_job_or_education"
SHELTER = "sel_110_shelter"
CHILD_MEASURES = frozenset({"child_preventive_measure", "child_placement"})
MASSIVE_STEP = 4
LONG_SPELL_MIN_STEP = 2
YOUTH_AGE_LIMIT = 25
AWAITING_FLEXJOB_BENEFIT = "ledighedsydelse"
INFLOW_BENEFITS = frozenset({"fleksloentilskud", "foertidspension", "seniorpension"})


class Flag:
    """Names of the coordination needs the engine flags."""

    COORDINATING_CASEWORKER_DUE = "coordinating_caseworker_due"
    PERMANENT_SUPPORT_ON_TEMPORARY_BENEFIT = "permanent_support_on_temporary_benefit"
    JOB_READY_IN_SHELTER = "job_ready_in_shelter"
    PARENT_WITH_CHILD_MEASURE = "parent_with_child_measure"
    YOUTH_UNIFIED_EFFORT = "youth_unified_effort"
    LONG_DURATION_WITH_SOCIAL_NEEDS = "long_duration_with_social_needs"


@dataclass(frozen=True, slots=True)
class Coordination:
    """What the coordination read model reports for one citizen on `as_of`."""

    as_of: date
    is_faellesborger: bool
    support_step: int
    interventions: tuple[str, ...]
    """Active coordination-relevant intervention codes (children's measures included), sorted."""
    flags: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    """Raised flag name -> the event ids behind it; absent flags are not raised."""
    target_group: str | None = None
    """As the durations report it: only while on a job-centre benefit."""
    age: int | None = None


def active_interventions(timeline: Timeline, day: date) -> list[Period]:
    """Intervention periods covering `day`, as known from events effective on or before it."""
    return [p for p in timeline.interventions_on(day) if p.covers(day)]


def benefits_covering(timeline: Timeline, day: date, *, job_centre_only: bool) -> list[Period]:
    """Benefit periods paying `day` (all benefits, or job-centre benefits only)."""
    benefits = reference.benefits()
    return [
        p
        for p in timeline.periods_on(day)
        if p.covers(day) and (not job_centre_only or benefits[p.code].is_job_centre_benefit)
    ]


def support_step(interventions: Iterable[Period]) -> int:
    """The highest step among adult interventions; 0 when there is none."""
    catalogue = reference.interventions()
    return max((_step(catalogue, p.code) for p in interventions), default=0)


def assignment_on(timeline: Timeline, day: date) -> GroupAssignment | None:
    """The target-group assignment in force on `day` (same rule as `target_group_on`)."""
    current: GroupAssignment | None = None
    for assignment in timeline.group_assignments:
        if assignment.effective_date > day:
            break
        current = assignment
    return current


def coordination_on(
    timeline: Timeline, day: date, born: date | None, *, long_spell_years: int = 3
) -> Coordination:
    """Fællesborger status, support step and coordination flags of one citizen on `day`."""
    catalogue = reference.interventions()
    active = active_interventions(timeline, day)
    relevant = [p for p in active if _relevant(catalogue, p.code)]
    job_centre = benefits_covering(timeline, day, job_centre_only=True)
    assignment = assignment_on(timeline, day) if job_centre else None
    age = age_on(born, day) if born else None
    situation = _Situation(
        timeline=timeline,
        day=day,
        active=active,
        relevant=relevant,
        job_centre=job_centre,
        assignment=assignment,
        age=age,
        step=support_step(active),
        long_spell_years=long_spell_years,
    )
    return Coordination(
        as_of=day,
        is_faellesborger=bool(job_centre and relevant),
        support_step=situation.step,
        interventions=tuple(sorted({p.code for p in relevant})),
        flags=_flags(situation),
        target_group=assignment.target_group if assignment else None,
        age=age,
    )


@dataclass(frozen=True, slots=True)
class _Situation:
    """The facts on one day that the flag rules read."""

    timeline: Timeline
    day: date
    active: list[Period]
    relevant: list[Period]
    job_centre: list[Period]
    assignment: GroupAssignment | None
    age: int | None
    step: int
    long_spell_years: int


def _flags(s: _Situation) -> Mapping[str, tuple[str, ...]]:
    rules = (
        (Flag.COORDINATING_CASEWORKER_DUE, _coordinating_caseworker_due),
        (Flag.PERMANENT_SUPPORT_ON_TEMPORARY_BENEFIT, _permanent_support_on_temporary_benefit),
        (Flag.JOB_READY_IN_SHELTER, _job_ready_in_shelter),
        (Flag.PARENT_WITH_CHILD_MEASURE, _parent_with_child_measure),
        (Flag.YOUTH_UNIFIED_EFFORT, _youth_unified_effort),
        (Flag.LONG_DURATION_WITH_SOCIAL_NEEDS, _long_duration_with_social_needs),
    )
    raised: dict[str, tuple[str, ...]] = {}
    for name, rule in rules:
        ids = rule(s)
        if ids:
            raised[name] = ids
    return MappingProxyType(raised)


def _coordinating_caseworker_due(s: _Situation) -> tuple[str, ...]:
    """A target group with a right to a coordinating caseworker plus a relevant intervention.

    The target group counts only while it is reported (on a job-centre benefit).
    Any active coordination-relevant intervention counts, children's measures
    included, as for fællesborgere. Behind it: the group assignment and the
    intervention starts.
    """
    group = reference.target_groups().get(s.assignment.target_group) if s.assignment else None
    if s.assignment is None or group is None or not group.right_to_coordinating_caseworker:
        return ()
    if not s.relevant:
        return ()
    return _ids([s.assignment.event_id], s.relevant)


def _permanent_support_on_temporary_benefit(s: _Situation) -> tuple[str, ...]:
    """An active step-4 intervention while on a job-centre benefit.

    Behind it: the step-4 intervention starts and the covering job-centre benefit starts.
    """
    catalogue = reference.interventions()
    massive = [p for p in s.active if _step(catalogue, p.code) == MASSIVE_STEP]
    if not massive or not s.job_centre:
        return ()
    return _ids([], massive, s.job_centre)


def _job_ready_in_shelter(s: _Situation) -> tuple[str, ...]:
    """Main group `ready_for_job_or_education` while in a shelter (`sel_110_shelter`).

    The target group counts only while reported (on a job-centre benefit).
    Behind it: the group assignment and the shelter starts.
    """
    group = reference.target_groups().get(s.assignment.target_group) if s.assignment else None
    shelters = [p for p in s.active if p.code == SHELTER]
    if s.assignment is None or group is None or group.main_group != READY_FOR_JOB_OR_EDUCATION:
        return ()
    if not shelters:
        return ()
    return _ids([s.assignment.event_id], shelters)


def _parent_with_child_measure(s: _Situation) -> tuple[str, ...]:
    """On a job-centre benefit with an active preventive measure or placement.

    A parent on a permanent pension is not flagged. Behind it: the child-measure
    starts and the covering job-centre benefit starts.
    """
    measures = [p for p in s.active if p.code in CHILD_MEASURES]
    if not measures or not s.job_centre:
        return ()
    return _ids([], measures, s.job_centre)


def _youth_unified_effort(s: _Situation) -> tuple[str, ...]:
    """Under 25 on D and on a job-centre benefit; no intervention needed.

    Unknown age raises nothing. Behind it: the covering job-centre benefit starts.
    """
    if s.age is None or s.age >= YOUTH_AGE_LIMIT or not s.job_centre:
        return ()
    return _ids([], s.job_centre)


def _long_duration_with_social_needs(s: _Situation) -> tuple[str, ...]:
    """A current all-benefits spell started on or before D - N calendar years, step >= 2.

    N is `long_spell_years` (3). Behind it: the benefit periods paying D (not every
    period of the spell, which may be dozens) and the starts of the active adult
    interventions with step 2 or more.
    """
    if s.step < LONG_SPELL_MIN_STEP:
        return ()
    spell = current_spell(benefit_spells(s.timeline.periods_on(s.day), s.day), s.day)
    if spell is None or not at_least_years(spell.start, s.day, s.long_spell_years):
        return ()
    catalogue = reference.interventions()
    needs = [p for p in s.active if _step(catalogue, p.code) >= LONG_SPELL_MIN_STEP]
    paying = benefits_covering(s.timeline, s.day, job_centre_only=False)
    return _ids([], needs, paying)


def _ids(extra: Iterable[str], *groups: Iterable[Period]) -> tuple[str, ...]:
    ids = set(extra)
    for periods in groups:
        ids.update(p.start_event_id for p in periods)
    return tuple(sorted(ids))


def _step(catalogue: Mapping[str, reference.Intervention], code: str) -> int:
    intervention = catalogue.get(code)
    if intervention is None or intervention.support_step is None:
        return 0
    return intervention.support_step


def _relevant(catalogue: Mapping[str, reference.Intervention], code: str) -> bool:
    intervention = catalogue.get(code)
    return intervention is not None and intervention.coordination_relevant


# --- The yearly figure -------------------------------------------------------

MONTHS_FOR_YEARLY = 2


def benefit_months_in_year(timeline: Timeline, year: int) -> Fraction:
    """Months on benefit in `year`: each calendar month adds the share of its days paid.

    Any benefit counts; overlapping periods (sources, municipalities) count once;
    a period spanning New Year counts only its days inside the year.
    """
    first, end = date(year, 1, 1), date(year + 1, 1, 1)
    runs = union((max(p.start, first), min(p.stop or end, end)) for p in timeline.periods_on(end))
    months = Fraction(0)
    for month in range(1, 13):
        month_start = date(year, month, 1)
        paid = paid_days_between(runs, month_start, first_of_next_month(month_start))
        months += Fraction(paid, calendar.monthrange(year, month)[1])
    return months


def yearly_faellesborger(timeline: Timeline, year: int) -> bool:
    """On a benefit for at least two months of the year and a relevant intervention in it.

    "Two months" is measured in months, not in a day threshold: every calendar
    month contributes the share of its days that are paid (`benefit_months_in_year`),
    and the sum must reach 2. So any two whole calendar months qualify whatever
    their lengths (February and March, 59 days, as much as July and August, 62),
    and scattered periods add up. A day threshold (60 or 61 days) would reject
    someone paid all of February and March. Paid days 1 February to 31 March of
    a non-leap year qualify; 2 February to 31 March does not.

    The intervention must be coordination-relevant (children's measures count)
    and active on at least one day of the year: an intervention ending on
    1 January (its first day without) is not; one starting on 31 December is.
    The benefit is any benefit, as the domain words the yearly figure ("a
    benefit"), unlike the daily status, which needs a job-centre benefit.
    """
    if benefit_months_in_year(timeline, year) < MONTHS_FOR_YEARLY:
        return False
    catalogue = reference.interventions()
    first, end = date(year, 1, 1), date(year + 1, 1, 1)
    return any(
        _relevant(catalogue, p.code) and p.start < end and (p.stop is None or p.stop > first)
        for p in timeline.interventions_on(end)
    )


# --- Flows -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Inflow:
    """A citizen entering `benefit` on `start`, proven by the start event `event_id`."""

    benefit: str
    start: date
    event_id: str


def inflows(timeline: Timeline, benefits: frozenset[str] = INFLOW_BENEFITS) -> list[Inflow]:
    """Each first day on one of `benefits` after a day not on it, sorted by date and benefit.

    Periods of one benefit are unioned over sources and municipalities: a second
    source reporting the same days, or a stop and a start of the same benefit on
    one date, is no new inflow. Any gap of at least one day is. Switching to
    another benefit and back is a new inflow. The event id is the earliest
    start event of the run (ties: the smallest id).
    """
    found: list[Inflow] = []
    for code in sorted(benefits):
        periods = sorted(
            (p for p in timeline.benefit_periods if p.code == code),
            key=lambda p: (p.start, p.start_event_id),
        )
        run_end: date | None = None
        for index, period in enumerate(periods):
            if index == 0 or (run_end is not None and period.start > run_end):
                found.append(Inflow(code, period.start, period.start_event_id))
                run_end = period.stop
            elif run_end is not None:
                run_end = None if period.stop is None else max(run_end, period.stop)
    return sorted(found, key=lambda i: (i.start, i.benefit, i.event_id))


def half_year(day: date) -> str:
    """The half-year a day falls in, e.g. '2020H1' (January-June) or '2020H2'."""
    return f"{day.year}H{1 if day.month <= 6 else 2}"


def awaiting_flexjob(timeline: Timeline, day: date) -> bool:
    """Approved for a flexjob but without one (ledig fleksjobvisiteret): on ledighedsydelse on D."""
    return any(
        p.code == AWAITING_FLEXJOB_BENEFIT
        for p in benefits_covering(timeline, day, job_centre_only=False)
    )
