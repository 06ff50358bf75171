"""Contact cadence: visitation, deadline and status, as domain.md's scenarios."""

from __future__ import annotations

from datetime import date

import pytest

from casehistory.domain.cadence import Cadence, cadence_on
from casehistory.domain.caseload import caseload_entry
from casehistory.domain.facts import Fact
from casehistory.domain.timeline import build_timeline
from tests.factories import assigned, meeting, regrouped, retraction, started, stopped

VISITATION = date(2020, 3, 2)
START = started(VISITATION, target_group="aktivitetsparat_voksen")


def clock(facts: list[Fact], day: date) -> Cadence | None:
    return cadence_on(build_timeline(facts), day)


def status(facts: list[Fact], day: date) -> tuple[str, date] | None:
    found = clock(facts, day)
    return (found.status, found.deadline) if found else None


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2020, 3, 8), "ok"),  # 8 days left
        (date(2020, 3, 9), "due_soon"),  # 7 days left
        (date(2020, 3, 16), "due_soon"),  # the deadline day
        (date(2020, 3, 17), "overdue"),
    ],
)
def test_visitation_plus_14_days_until_a_first_meeting(day: date, expected: str) -> None:
    assert status([START], day) == (expected, date(2020, 3, 16))


def test_a_first_then_a_joint_meeting_move_the_deadline_28_days_on() -> None:
    first = meeting(date(2020, 3, 10), "first")
    joint = meeting(date(2020, 4, 1), "joint")
    facts = [START, first, joint]
    found = clock(facts, date(2020, 3, 20))
    assert found is not None
    assert (found.deadline, found.last_meeting, found.last_meeting_event_id) == (
        date(2020, 4, 7),
        date(2020, 3, 10),
        first.event_id,
    )
    assert status(facts, date(2020, 4, 2)) == ("ok", date(2020, 4, 29))
    assert status(facts, date(2020, 4, 30)) == ("overdue", date(2020, 4, 29))


@pytest.mark.parametrize("kind", ["visitation", "other"])
def test_visitation_and_other_meetings_never_count(kind: str) -> None:
    assert status([START, meeting(date(2020, 3, 10), kind)], date(2020, 3, 17)) == (
        "overdue",
        date(2020, 3, 16),
    )


def test_a_meeting_before_the_visitation_does_not_count_one_on_it_does() -> None:
    before = [START, started(date(2020, 1, 1), benefit="sygedagpenge"),
              meeting(date(2020, 3, 1), "joint")]
    assert status(before, date(2020, 3, 10)) == ("due_soon", date(2020, 3, 16))
    assert status([START, meeting(VISITATION, "first")], date(2020, 3, 10)) == (
        "ok",
        date(2020, 3, 30),
    )


def test_a_retracted_meeting_never_happened() -> None:
    held = meeting(date(2020, 3, 10), "first")
    facts = [START, held, retraction(held, date(2020, 6, 1))]
    assert status(facts, date(2020, 3, 20)) == ("overdue", date(2020, 3, 16))


def test_a_restated_group_is_a_new_visitation() -> None:
    facts = [
        START,
        meeting(date(2020, 3, 10), "joint"),
        regrouped(date(2020, 4, 1), "aktivitetsparat_voksen", "aktivitetsparat_voksen",
                  "reassessment"),
    ]
    found = clock(facts, date(2020, 4, 10))
    assert found is not None
    assert (found.visitation, found.deadline, found.last_meeting) == (
        date(2020, 4, 1),
        date(2020, 4, 15),
        None,
    )


def test_a_refused_start_restating_the_group_is_a_visitation() -> None:
    again = started(date(2020, 4, 1), target_group="aktivitetsparat_voksen")  # key still open
    found = clock([START, meeting(date(2020, 3, 10), "joint"), again], date(2020, 4, 10))
    assert found is not None and (found.visitation, found.visitation_event_id) == (
        date(2020, 4, 1),
        again.event_id,
    )


def test_an_age_change_between_two_groups_with_the_right_is_no_visitation() -> None:
    young = started(VISITATION, target_group="aktivitetsparat_ung")
    joint = meeting(date(2020, 3, 20), "joint")
    grown = regrouped(date(2020, 4, 1), "aktivitetsparat_ung", "aktivitetsparat_voksen", "age")
    found = clock([young, joint, grown], date(2020, 4, 10))
    assert found is not None
    assert (found.target_group, found.visitation, found.deadline) == (
        "aktivitetsparat_voksen",
        VISITATION,
        date(2020, 4, 17),
    )


@pytest.mark.parametrize(
    ("from_group", "reason"),
    [("uddannelsesparat", "age"), ("aktivitetsparat_ung", "reassessment")],
)
def test_other_changes_into_a_group_with_the_right_are_visitations(
    from_group: str, reason: str
) -> None:
    facts = [
        started(VISITATION, target_group=from_group),
        meeting(date(2020, 3, 20), "joint"),
        regrouped(date(2020, 4, 1), from_group, "aktivitetsparat_voksen", reason),
    ]
    assert status(facts, date(2020, 4, 10)) == ("due_soon", date(2020, 4, 15))


def test_only_groups_with_the_right_on_a_job_centre_benefit() -> None:
    assert clock([started(VISITATION, target_group="jobparat")], date(2020, 3, 10)) is None
    facts = [START, stopped(date(2020, 3, 5), reason="pension"),
             started(date(2020, 3, 5), benefit="foertidspension")]
    assert clock(facts, date(2020, 3, 10)) is None
    assert clock([START], date(2020, 3, 1)) is None  # before the start


@pytest.mark.parametrize("group", ["jobafklaring", "ressourceforloeb", "aktivitetsparat_ung"])
def test_each_group_with_the_right(group: str) -> None:
    facts = [started(VISITATION, benefit="jobafklaringsydelse", target_group=group)]
    assert status(facts, date(2020, 3, 10)) == ("due_soon", date(2020, 3, 16))


def test_a_reassignment_on_the_deadline_day_changes_nothing_in_the_clock() -> None:
    deadline = date(2020, 3, 16)
    facts = [START, assigned(date(2020, 3, 3), "jc-1")]
    moved = [*facts, assigned(deadline, "jc-2")]
    assert clock(moved, deadline) == clock(facts, deadline)
    assert status(moved, deadline) == ("due_soon", deadline)
    assert status(moved, date(2020, 3, 17)) == ("overdue", deadline)
    entry = caseload_entry(build_timeline(moved), deadline)
    assert entry is not None and entry.caseworker == "jc-2"


def test_29_february() -> None:
    start = started(date(2020, 2, 15), target_group="aktivitetsparat_voksen")
    assert status([start], date(2020, 2, 29)) == ("due_soon", date(2020, 2, 29))
    assert status([start], date(2020, 3, 1)) == ("overdue", date(2020, 2, 29))
    held = [start, meeting(date(2020, 2, 29), "joint")]
    assert status(held, date(2020, 3, 1)) == ("ok", date(2020, 3, 28))
