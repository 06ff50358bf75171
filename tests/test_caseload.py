"""Caseload and continuity: domain.md's rules as scenarios."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from casehistory.domain.caseload import (
    caseload_entry,
    caseloads,
    caseworkers_in_last_months,
    continuity,
    responsibilities,
    responsible_on,
)
from casehistory.domain.facts import Fact
from casehistory.domain.timeline import build_timeline
from tests.factories import assigned, retraction, started, stopped


def on(facts: list[Fact], day: date) -> str | None:
    entry = caseload_entry(build_timeline(facts), day)
    return entry.caseworker if entry else None


NORD = "Team Nord"
BASE = [started(date(2020, 1, 1)), assigned(date(2020, 2, 1), "jc-1", NORD)]


def test_in_force_from_its_date_until_the_next_assignment() -> None:
    facts = [*BASE, assigned(date(2020, 5, 1), "jc-2")]
    assert on(facts, date(2020, 1, 31)) is None
    assert on(facts, date(2020, 2, 1)) == "jc-1"
    assert on(facts, date(2020, 4, 30)) == "jc-1"
    assert on(facts, date(2020, 5, 1)) == "jc-2"
    entry = caseload_entry(build_timeline(facts), date(2020, 3, 1))
    assert entry is not None and (entry.unit, entry.start, entry.end) == (
        "Team Nord",
        date(2020, 2, 1),
        None,  # as of 1 March the next assignment is not yet effective
    )
    first, second = responsibilities(build_timeline(facts), date(2020, 6, 1))
    assert (first.caseworker, first.end, second.caseworker, second.end) == (
        "jc-1",
        date(2020, 5, 1),
        "jc-2",
        None,
    )


def test_until_the_end_of_the_all_benefits_spell_it_was_made_in() -> None:
    ended = [*BASE, stopped(date(2020, 6, 15)), started(date(2020, 8, 1))]  # July empty
    assert on(ended, date(2020, 6, 14)) == "jc-1"
    assert on(ended, date(2020, 8, 10)) is None
    timeline = build_timeline(ended)
    assert responsible_on(timeline, date(2020, 8, 10)) is None
    again = [*ended, assigned(date(2020, 8, 1), "jc-3")]
    assert on(again, date(2020, 8, 10)) == "jc-3"


def test_a_gap_the_spell_bridges_does_not_end_it() -> None:
    bridged = [*BASE, stopped(date(2020, 6, 15)), started(date(2020, 7, 10))]
    assert on(bridged, date(2020, 7, 20)) == "jc-1"
    assert on(bridged, date(2020, 6, 20)) is None  # not on benefit on D: no caseload


def test_an_assignment_ahead_of_the_first_payment_belongs_to_the_spell_that_follows() -> None:
    facts = [
        started(date(2019, 1, 1)),
        stopped(date(2019, 6, 1)),
        assigned(date(2020, 8, 25), "jc-1"),
        started(date(2020, 9, 1)),
    ]
    assert on(facts, date(2020, 9, 10)) == "jc-1"


def test_only_citizens_on_a_job_centre_benefit_are_in_a_caseload() -> None:
    facts = [
        started(date(2020, 1, 1), benefit="foertidspension"),
        assigned(date(2020, 2, 1), "jc-1"),
    ]
    assert on(facts, date(2020, 3, 1)) is None
    responsible = responsible_on(build_timeline(facts), date(2020, 3, 1))
    assert responsible is not None and responsible.caseworker == "jc-1"


def test_a_same_day_reassignment_the_later_recorded_wins() -> None:
    late = datetime(2020, 2, 1, 15, tzinfo=UTC)
    facts = [*BASE, assigned(date(2020, 2, 1), "jc-2", recorded=late)]
    assert on(facts, date(2020, 2, 1)) == "jc-2"
    assert caseworkers_in_last_months(build_timeline(facts), date(2020, 3, 1)) == ("jc-2",)


def test_a_retracted_assignment_never_happened() -> None:
    second = assigned(date(2020, 5, 1), "jc-2")
    facts = [*BASE, second, retraction(second, date(2020, 9, 1))]
    assert on(facts, date(2020, 6, 1)) == "jc-1"
    assert continuity(build_timeline(facts), date(2020, 6, 1)) == 1


def test_caseloads_per_caseworker_and_unit() -> None:
    timelines = [
        build_timeline(BASE),
        build_timeline([started(date(2020, 1, 1)), assigned(date(2020, 1, 5), "jc-1", NORD)]),
        build_timeline([started(date(2020, 1, 1)), assigned(date(2020, 1, 5), "jc-2")]),
        build_timeline([started(date(2020, 1, 1))]),
        build_timeline([assigned(date(2020, 1, 5), "jc-2")]),  # not on benefit
    ]
    assert dict(caseloads(timelines, date(2020, 3, 1))) == {
        ("jc-1", "Team Nord"): 2,
        ("jc-2", None): 1,
    }


@pytest.mark.parametrize(
    ("reassigned", "counted"),
    [
        (date(2020, 3, 2), ("jc-2",)),  # jc-1's last day 1 March 2020 lies outside the window
        (date(2020, 3, 3), ("jc-1", "jc-2")),
    ],
)
def test_continuity_counts_caseworkers_in_force_on_some_day_of_the_last_12_months(
    reassigned: date, counted: tuple[str, ...]
) -> None:
    facts = [*BASE, assigned(reassigned, "jc-2")]
    timeline = build_timeline(facts)
    assert caseworkers_in_last_months(timeline, date(2021, 3, 1)) == counted
    assert continuity(timeline, date(2021, 3, 1)) == len(counted)


@pytest.mark.parametrize(
    ("reassigned", "count"),
    [(date(2020, 2, 29), 1), (date(2020, 3, 1), 2)],
)
def test_continuity_window_from_29_february(reassigned: date, count: int) -> None:
    """D = 28 February 2021: the window (28 February 2020, D] starts on 29 February."""
    facts = [*BASE, assigned(reassigned, "jc-2")]
    assert continuity(build_timeline(facts), date(2021, 2, 28)) == count


def test_continuity_counts_a_lapsed_assignment_and_a_later_one() -> None:
    facts = [
        *BASE,
        stopped(date(2020, 6, 15)),
        started(date(2020, 9, 1)),
        assigned(date(2020, 9, 1), "jc-1"),  # the same caseworker again: one
        assigned(date(2020, 10, 1), "jc-5"),
    ]
    assert caseworkers_in_last_months(build_timeline(facts), date(2020, 12, 1)) == ("jc-1", "jc-5")
