"""Pairing facts into periods and assignments: the precise rules' scenarios."""

from __future__ import annotations

from datetime import UTC, date, datetime

from casehistory.domain.citizen import Citizen, Outcome
from casehistory.domain.timeline import CaseworkerAssignment, FindingKind, Meeting, build_timeline
from tests.factories import assigned, meeting, regrouped, retraction, started, stopped


def test_a_start_while_the_key_is_open_changes_no_period_but_its_group_counts() -> None:
    """domain.md: the start's target group still counts as an assignment on its date."""
    first = started(date(2020, 1, 1), target_group="jobparat")
    again = started(date(2020, 3, 1), target_group="aktivitetsparat_voksen")
    timeline = build_timeline([first, again, stopped(date(2020, 6, 1))])
    assert [(p.start, p.stop, p.start_event_id) for p in timeline.benefit_periods] == [
        (date(2020, 1, 1), date(2020, 6, 1), first.event_id)
    ]
    assert [(f.kind, f.event_id) for f in timeline.findings] == [
        (FindingKind.START_OF_OPEN_PERIOD, again.event_id)
    ]
    assert [(a.effective_date, a.target_group) for a in timeline.group_assignments] == [
        (date(2020, 1, 1), "jobparat"),
        (date(2020, 3, 1), "aktivitetsparat_voksen"),
    ]
    assert timeline.target_group_on(date(2020, 2, 29)) == "jobparat"
    assert timeline.target_group_on(date(2020, 3, 1)) == "aktivitetsparat_voksen"


def test_a_refused_start_without_a_group_keeps_the_previous_one() -> None:
    first = started(date(2020, 1, 1), target_group="jobparat")
    timeline = build_timeline([first, started(date(2020, 3, 1))])
    assert timeline.target_group_on(date(2020, 4, 1)) == "jobparat"
    assert len(timeline.group_assignments) == 1


def test_stop_and_start_on_one_date_join_into_one_run() -> None:
    timeline = build_timeline(
        [started(date(2020, 1, 1)), stopped(date(2020, 3, 1)), started(date(2020, 3, 1))]
    )
    assert not timeline.findings
    assert [(p.start, p.stop) for p in timeline.benefit_periods] == [
        (date(2020, 1, 1), date(2020, 3, 1)),
        (date(2020, 3, 1), None),
    ]


def test_caseworker_assignments_and_meetings_in_effective_order_retractions_honoured() -> None:
    later = datetime(2020, 6, 1, 12, tzinfo=UTC)
    first = assigned(date(2020, 2, 1), "jc-1", "Team Nord")
    same_day = assigned(date(2020, 2, 1), "jc-2", recorded=later)
    void = assigned(date(2020, 3, 1), "jc-3")
    joint = meeting(date(2020, 2, 10), "joint", "jc-2")
    cancelled = meeting(date(2020, 2, 5), "first")
    timeline = build_timeline(
        [void, joint, same_day, cancelled, first, retraction(void), retraction(cancelled)]
    )
    assert timeline.caseworker_assignments == (
        CaseworkerAssignment(
            date(2020, 2, 1), first.recorded_at, first.event_id, "jc-1", "Team Nord"
        ),
        CaseworkerAssignment(date(2020, 2, 1), later, same_day.event_id, "jc-2", None),
    )
    assert timeline.meetings == (Meeting(date(2020, 2, 10), joint.event_id, "joint", "jc-2"),)


def test_the_citizen_aggregate_records_the_new_types() -> None:
    citizen = Citizen.register("0" * 32, date(1990, 1, 1), "sealed")
    facts = [assigned(date(2020, 2, 1), "jc-1", "Team Nord"), meeting(date(2020, 2, 3), "first")]
    for f in facts:
        assert citizen.record(f, f.event_id, {}) is Outcome.STORED
    assert citizen.facts == facts
    assert [type(e).__name__ for e in citizen.collect_events()][1:] == [
        "CaseworkerAssigned",
        "MeetingHeld",
    ]
    timeline = citizen.timeline()
    assert [a.caseworker for a in timeline.caseworker_assignments] == ["jc-1"]
    assert [m.kind for m in timeline.meetings] == ["first"]


def test_a_group_change_keeps_its_reason_and_from_group() -> None:
    change = regrouped(date(2020, 5, 1), "aktivitetsparat_ung", "aktivitetsparat_voksen", "age")
    start = started(date(2020, 1, 1), target_group="aktivitetsparat_ung")
    timeline = build_timeline([start, change])
    assert [(a.from_group, a.reason) for a in timeline.group_assignments] == [
        (None, None),
        ("aktivitetsparat_ung", "age"),
    ]
