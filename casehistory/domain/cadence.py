"""Contact cadence for citizens with a right to a coordinating caseworker.

domain.md, "Caseload, continuity and contact cadence":

- It applies on D to a citizen whose reported target group (on a job-centre
  benefit at D) has a right to a coordinating caseworker (aktivitetsparat adult
  or young, jobafklaring, ressourceforløb).
- *Visitation* is the effective date of the latest group assignment (a start's
  target group or a `TargetGroupChanged`, also when it restates the group),
  except a `TargetGroupChanged` with reason `age` between two such groups (ung
  to voksen at 30), which is no visitation.
- The *deadline* is visitation + 14 days until a `first` or `joint` meeting is
  held on or after the visitation, and from then the latest such meeting + 28
  days; `visitation` and `other` meetings never count. A retracted meeting never
  happened (the timeline has already dropped it).
- At D: `overdue` when D is after the deadline, `due_soon` when 0 to 7 days
  remain (the deadline day included), otherwise `ok`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from casehistory.domain import reference
from casehistory.domain.coordination import assignment_on, benefits_covering
from casehistory.domain.facts import GroupChangeReason, MeetingKind
from casehistory.domain.timeline import GroupAssignment, Timeline

FIRST_MEETING_DAYS = 14
BETWEEN_MEETINGS_DAYS = 28
DUE_SOON_DAYS = 7
COUNTING_MEETINGS = frozenset({MeetingKind.FIRST.value, MeetingKind.JOINT.value})


class CadenceStatus(StrEnum):
    OVERDUE = "overdue"
    DUE_SOON = "due_soon"
    OK = "ok"


@dataclass(frozen=True, slots=True)
class Cadence:
    """A citizen's contact clock on `as_of`."""

    as_of: date
    target_group: str
    visitation: date
    visitation_event_id: str
    deadline: date
    days_left: int
    """deadline - D; negative when overdue."""
    status: str
    last_meeting: date | None = None
    """The latest `first` or `joint` meeting on or after the visitation, if any."""
    last_meeting_event_id: str | None = None


def cadence_on(timeline: Timeline, day: date) -> Cadence | None:
    """The contact clock on `day`, or None when the rule does not apply.

    None also when every assignment so far is an `age` change between two
    groups with the right (no visitation to count from).
    """
    if not benefits_covering(timeline, day, job_centre_only=True):
        return None
    current = assignment_on(timeline, day)
    if current is None or not _has_right(current.target_group):
        return None
    visitation = latest_visitation(timeline, day)
    if visitation is None:
        return None
    meetings = [
        m
        for m in timeline.meetings
        if m.kind in COUNTING_MEETINGS and visitation.effective_date <= m.effective_date <= day
    ]
    last = meetings[-1] if meetings else None
    if last is None:
        deadline = visitation.effective_date + timedelta(days=FIRST_MEETING_DAYS)
    else:
        deadline = last.effective_date + timedelta(days=BETWEEN_MEETINGS_DAYS)
    days_left = (deadline - day).days
    return Cadence(
        as_of=day,
        target_group=current.target_group,
        visitation=visitation.effective_date,
        visitation_event_id=visitation.event_id,
        deadline=deadline,
        days_left=days_left,
        status=cadence_status(days_left).value,
        last_meeting=last.effective_date if last else None,
        last_meeting_event_id=last.event_id if last else None,
    )


def cadence_status(days_left: int) -> CadenceStatus:
    """Overdue after the deadline; due soon with 0 to 7 days left; otherwise ok."""
    if days_left < 0:
        return CadenceStatus.OVERDUE
    if days_left <= DUE_SOON_DAYS:
        return CadenceStatus.DUE_SOON
    return CadenceStatus.OK


def latest_visitation(timeline: Timeline, day: date) -> GroupAssignment | None:
    """The latest group assignment on or before `day` that is a visitation."""
    found: GroupAssignment | None = None
    for assignment in timeline.group_assignments:
        if assignment.effective_date > day:
            break
        if is_visitation(assignment):
            found = assignment
    return found


def is_visitation(assignment: GroupAssignment) -> bool:
    """Every assignment is one, except an `age` change between two groups with the right."""
    return not (
        assignment.reason == GroupChangeReason.AGE.value
        and assignment.from_group is not None
        and _has_right(assignment.from_group)
        and _has_right(assignment.target_group)
    )


def _has_right(code: str) -> bool:
    group = reference.target_groups().get(code)
    return group is not None and group.right_to_coordinating_caseworker
