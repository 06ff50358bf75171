"""Pairing facts into periods and assignments: the precise rules' scenarios."""

from __future__ import annotations

from datetime import date

from domain.timeline import FindingKind, build_timeline
from tests.factories import started, stopped


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
