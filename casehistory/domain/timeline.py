"""A citizen's timeline: facts paired into periods, on effective dates.

Pairing follows the precise rules: a start opens a period under the key
(benefit, source system, registering municipality) and the next stop with the
same key closes it. Stops apply before starts on one date, so `stop D` followed
by `start D` joins into one run. A start while the key is open, or a stop with
nothing open, is a data-quality finding and changes no period; a refused start's
target group still counts as an assignment on its date. Interventions pair
the same way. Retractions void the named event (a retracted retraction voids
nothing), whatever their own effective date.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from operator import attrgetter
from typing import NamedTuple

from casehistory.domain import reference
from casehistory.domain.facts import EventType, Fact


class FindingKind(StrEnum):
    STOP_WITHOUT_OPEN_PERIOD = "stop_without_open_period"
    START_OF_OPEN_PERIOD = "start_of_open_period"
    TARGET_GROUP_OUTSIDE_VALIDITY = "target_group_outside_validity"


class Finding(NamedTuple):
    kind: FindingKind
    event_id: str
    effective_date: date


class Period(NamedTuple):
    """A benefit period (or intervention, with `code` the intervention) `[start, stop)`."""

    code: str
    source_system: str
    municipality: str
    start: date
    stop: date | None
    stop_reason: str | None
    start_event_id: str
    stop_event_id: str | None

    def covers(self, day: date) -> bool:
        return self.start <= day and (self.stop is None or day < self.stop)

    def known_on(self, day: date) -> Period:
        """The period as the events effective on or before `day` describe it."""
        if self.stop is not None and self.stop > day:
            return Period(
                self.code,
                self.source_system,
                self.municipality,
                self.start,
                None,
                None,
                self.start_event_id,
                None,
            )
        return self


class GroupAssignment(NamedTuple):
    effective_date: date
    recorded_at: datetime
    event_id: str
    target_group: str
    from_group: str | None = None
    """A `TargetGroupChanged`'s from_group; None for a start's target group."""
    reason: str | None = None
    """A `TargetGroupChanged`'s reason; None for a start's target group."""


class CaseworkerAssignment(NamedTuple):
    """A `CaseworkerAssigned`: this caseworker is responsible from `effective_date`."""

    effective_date: date
    recorded_at: datetime
    event_id: str
    caseworker: str
    unit: str | None = None


class Meeting(NamedTuple):
    """A `MeetingHeld` on `effective_date`, of `kind` (visitation, first, joint, other)."""

    effective_date: date
    event_id: str
    kind: str
    caseworker: str | None = None


@dataclass(frozen=True, slots=True)
class Timeline:
    """Everything the duration and coordination rules read, in effective order."""

    benefit_periods: tuple[Period, ...]
    interventions: tuple[Period, ...]
    group_assignments: tuple[GroupAssignment, ...]
    findings: tuple[Finding, ...]
    caseworker_assignments: tuple[CaseworkerAssignment, ...] = ()
    """By effective date, ties by recorded_at (the later one wins), then event id."""
    meetings: tuple[Meeting, ...] = ()
    """By effective date, then event id."""

    def periods_on(self, day: date) -> tuple[Period, ...]:
        """Benefit periods as known from events effective on or before `day`."""
        return tuple(p.known_on(day) for p in self.benefit_periods if p.start <= day)

    def interventions_on(self, day: date) -> tuple[Period, ...]:
        return tuple(p.known_on(day) for p in self.interventions if p.start <= day)

    def target_group_on(self, day: date) -> str | None:
        """The latest assignment effective on or before `day` (ties: later recorded)."""
        current: str | None = None
        for assignment in self.group_assignments:
            if assignment.effective_date > day:
                break
            current = assignment.target_group
        return current


def effective_facts(facts: Iterable[Fact], known_at: datetime | None = None) -> list[Fact]:
    """Facts that stand: first arrival per event id, known by `known_at`, not retracted."""
    first: dict[str, Fact] = {}
    for fact in facts:
        if known_at is not None and fact.recorded_at > known_at:
            continue
        first.setdefault(fact.event_id, fact)
    void = _voided_ids(first)
    return [
        f
        for f in first.values()
        if f.event_id not in void and f.event_type is not EventType.EVENT_RETRACTED
    ]


def _voided_ids(facts: dict[str, Fact]) -> set[str]:
    retractions: dict[str, list[str]] = {}
    for fact in facts.values():
        if fact.event_type is EventType.EVENT_RETRACTED and fact.retracted_event_id:
            retractions.setdefault(fact.retracted_event_id, []).append(fact.event_id)
    if not retractions:  # most citizens: no closure below, which is a cycle for the collector
        return set()
    decided: dict[str, bool] = {}

    def is_void(event_id: str, visiting: frozenset[str]) -> bool:
        if event_id in decided:
            return decided[event_id]
        if event_id in visiting:  # a retraction cycle: treat as standing
            return False
        inner = visiting | {event_id}
        result = any(not is_void(r, inner) for r in retractions.get(event_id, ()))
        decided[event_id] = result
        return result

    return {event_id for event_id in retractions if is_void(event_id, frozenset())}


_ORDER = attrgetter("order_key")
# The loop below compares each fact's kind with these (a module name is cheaper to look up
# than an enum class's member).
_BENEFIT_STARTED = EventType.BENEFIT_STARTED
_BENEFIT_STOPPED = EventType.BENEFIT_STOPPED
_INTERVENTION_STARTED = EventType.SOCIAL_INTERVENTION_STARTED
_INTERVENTION_ENDED = EventType.SOCIAL_INTERVENTION_ENDED
_GROUP_CHANGED = EventType.TARGET_GROUP_CHANGED
_CASEWORKER_ASSIGNED = EventType.CASEWORKER_ASSIGNED
_MEETING_HELD = EventType.MEETING_HELD


def build_timeline(facts: Iterable[Fact], known_at: datetime | None = None) -> Timeline:
    """Pair a citizen's standing facts into periods and findings."""
    ordered = sorted(effective_facts(facts, known_at), key=_ORDER)
    benefits = _Pairing()
    interventions = _Pairing()
    assignments: list[GroupAssignment] = []
    caseworkers: list[CaseworkerAssignment] = []
    meetings: list[Meeting] = []
    findings: list[Finding] = []
    groups = reference.target_groups()

    for fact in ordered:
        kind = fact.event_type
        if kind is _BENEFIT_STARTED and fact.benefit:
            findings.extend(benefits.start(fact, fact.benefit))
            if fact.target_group:  # also when the start is refused: the assessment happened
                assignments.append(_assignment(fact, fact.target_group))
        elif kind is _BENEFIT_STOPPED and fact.benefit:
            findings.extend(benefits.stop(fact, fact.benefit))
        elif kind is _INTERVENTION_STARTED and fact.intervention:
            findings.extend(interventions.start(fact, fact.intervention))
        elif kind is _INTERVENTION_ENDED and fact.intervention:
            findings.extend(interventions.stop(fact, fact.intervention))
        elif kind is _GROUP_CHANGED and fact.to_group:
            assignments.append(_assignment(fact, fact.to_group))
        elif kind is _CASEWORKER_ASSIGNED and fact.caseworker:
            caseworkers.append(
                CaseworkerAssignment(
                    fact.effective_date,
                    fact.recorded_at,
                    fact.event_id,
                    fact.caseworker,
                    fact.unit,
                )
            )
        elif kind is _MEETING_HELD and fact.meeting_kind:
            meetings.append(
                Meeting(fact.effective_date, fact.event_id, fact.meeting_kind, fact.caseworker)
            )

    for assignment in assignments:
        group = groups.get(assignment.target_group)
        if group is not None and not group.valid_on(assignment.effective_date):
            findings.append(
                Finding(
                    FindingKind.TARGET_GROUP_OUTSIDE_VALIDITY,
                    assignment.event_id,
                    assignment.effective_date,
                )
            )
    assignments.sort(key=lambda a: (a.effective_date, a.recorded_at, a.event_id))
    return Timeline(
        benefit_periods=benefits.periods(),
        interventions=interventions.periods(),
        group_assignments=tuple(assignments),
        findings=tuple(sorted(findings, key=lambda f: (f.effective_date, f.event_id))),
        caseworker_assignments=tuple(
            sorted(caseworkers, key=lambda a: (a.effective_date, a.recorded_at, a.event_id))
        ),
        meetings=tuple(sorted(meetings, key=lambda m: (m.effective_date, m.event_id))),
    )


def _assignment(fact: Fact, group: str) -> GroupAssignment:
    return GroupAssignment(
        fact.effective_date, fact.recorded_at, fact.event_id, group, fact.from_group, fact.reason
    )


class _Pairing:
    """Opens and closes periods per (code, source system, municipality)."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str, str], Fact] = {}
        self._closed: list[Period] = []

    def start(self, fact: Fact, code: str) -> list[Finding]:
        key = (code, fact.source_system, fact.municipality)
        if key in self._open:
            return [Finding(FindingKind.START_OF_OPEN_PERIOD, fact.event_id, fact.effective_date)]
        self._open[key] = fact
        return []

    def stop(self, fact: Fact, code: str) -> list[Finding]:
        key = (code, fact.source_system, fact.municipality)
        started = self._open.pop(key, None)
        if started is None:
            return [
                Finding(FindingKind.STOP_WITHOUT_OPEN_PERIOD, fact.event_id, fact.effective_date)
            ]
        self._closed.append(
            Period(
                code,
                fact.source_system,
                fact.municipality,
                started.effective_date,
                fact.effective_date,
                fact.reason,
                started.event_id,
                fact.event_id,
            )
        )
        return []

    def periods(self) -> tuple[Period, ...]:
        still_open = [
            Period(code, system, municipality, f.effective_date, None, None, f.event_id, None)
            for (code, system, municipality), f in self._open.items()
        ]
        return tuple(sorted(self._closed + still_open, key=lambda p: (p.start, p.start_event_id)))
