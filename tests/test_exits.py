"""Exits from the cash-benefit system and cohort follow-up: domain.md's rules as scenarios."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from casehistory.domain.exits import (
    CohortDefinition,
    Exit,
    FollowUp,
    exits_on,
    follow_up,
    in_cohort,
)
from casehistory.domain.facts import Fact
from casehistory.domain.spells import first_of_next_month
from casehistory.domain.timeline import build_timeline
from tests import oracle
from tests.factories import regrouped, retraction, started, stopped

SINCE = date(2018, 1, 1)


def exits(facts: list[Fact], day: date) -> tuple[Exit, ...]:
    return exits_on(build_timeline(facts), day)


def on_cash_until(stop: date, reason: str = "job", **kw: Any) -> list[Fact]:
    return [
        started(SINCE, target_group="aktivitetsparat_voksen"),
        stopped(stop, reason=reason, **kw),
    ]


def test_the_month_window_after_an_exit_mid_month() -> None:
    """E = 15 March: W runs to 30 April; the exit is known from 30 April on."""
    facts = on_cash_until(date(2020, 3, 15))
    assert exits(facts, date(2020, 4, 29)) == ()
    (found,) = exits(facts, date(2020, 4, 30))
    assert (found.spell_start, found.exit_date, found.window_end) == (
        SINCE,
        date(2020, 3, 15),
        date(2020, 4, 30),
    )
    assert found.destination == "job"
    assert found.evidence == (facts[1].event_id,)
    assert found.target_group == "aktivitetsparat_voksen"
    assert exits(facts, date(2030, 1, 1)) == (found,)


def test_the_month_window_after_an_exit_on_the_first() -> None:
    """E = 1 April: W runs to 30 April too."""
    facts = on_cash_until(date(2020, 4, 1))
    assert exits(facts, date(2020, 4, 29)) == ()
    assert [e.window_end for e in exits(facts, date(2020, 4, 30))] == [date(2020, 4, 30)]


@pytest.mark.parametrize(
    ("restart", "an_exit"),
    [(date(2020, 4, 30), False), (date(2020, 5, 1), True)],
)
def test_a_restart_inside_w_means_the_spell_goes_on(restart: date, an_exit: bool) -> None:
    facts = [*on_cash_until(date(2020, 3, 15)), started(restart)]
    found = exits(facts, date(2020, 12, 31))
    assert [e.exit_date for e in found] == ([date(2020, 3, 15)] if an_exit else [])


@pytest.mark.parametrize(
    ("exit_date", "window_end"),
    [
        (date(2020, 2, 29), date(2020, 3, 31)),  # 29 February: the first whole month is March
        (date(2020, 2, 1), date(2020, 2, 29)),  # a whole leap February
        (date(2019, 2, 1), date(2019, 2, 28)),
        (date(2020, 12, 2), date(2021, 1, 31)),
    ],
)
def test_window_ends_around_february_and_new_year(exit_date: date, window_end: date) -> None:
    facts = on_cash_until(exit_date)
    before = window_end.replace(day=window_end.day - 1)
    assert exits(facts, before) == ()
    assert [e.window_end for e in exits(facts, window_end)] == [window_end]


def exit_with(*after: Fact, reason: str = "other", exit_day: date = date(2020, 3, 15)) -> Exit:
    (found,) = exits([*on_cash_until(exit_day, reason), *after], date(2021, 1, 1))
    return found


@pytest.mark.parametrize("reason", ["died", "emigrated"])
def test_died_and_emigrated_decide_first(reason: str) -> None:
    later = started(date(2020, 3, 20), benefit="sygedagpenge")
    assert exit_with(later, reason=reason).destination == reason


@pytest.mark.parametrize(
    ("benefit", "destination"),
    [
        ("foertidspension", "disability_pension"),
        ("seniorpension", "senior_pension"),
        ("fleksloentilskud", "flexjob"),
        ("ledighedsydelse", "flexjob"),
        ("sygedagpenge", "other_benefit"),
        ("ressourceforloebsydelse", "other_benefit"),
    ],
)
def test_a_benefit_paid_in_w_decides(benefit: str, destination: str) -> None:
    on_it = started(date(2020, 4, 30), benefit=benefit)  # W's last day
    found = exit_with(on_it, reason="job")
    assert (found.destination, found.evidence) == (destination, (on_it.event_id,))


def test_the_benefit_paid_earliest_in_w_decides() -> None:
    sick = started(date(2020, 3, 18), benefit="sygedagpenge")
    pension = started(date(2020, 4, 1), benefit="foertidspension")
    assert exit_with(pension, sick, reason="pension").destination == "other_benefit"


def test_a_benefit_running_across_e_is_paid_from_e() -> None:
    sick = started(date(2020, 1, 1), benefit="sygedagpenge")
    pension = started(date(2020, 3, 16), benefit="foertidspension")
    found = exit_with(pension, sick, reason="pension")
    assert (found.destination, found.evidence) == ("other_benefit", (sick.event_id,))


def test_benefits_first_paid_on_the_same_day_rank_pensions_then_flexjob() -> None:
    """A tie the rules leave open: the listed order decides (pension, senior, flexjob, other)."""
    sick = started(date(2020, 1, 1), benefit="sygedagpenge")
    pension = started(date(2020, 3, 15), benefit="foertidspension")
    waiting = started(date(2020, 3, 15), benefit="ledighedsydelse")
    assert exit_with(sick, waiting, pension, reason="pension").destination == "disability_pension"
    assert exit_with(sick, waiting, reason="pension").destination == "flexjob"


def test_a_benefit_after_w_does_not_count_a_pension_stop_is_unknown() -> None:
    late = started(date(2020, 5, 1), benefit="foertidspension")
    assert exit_with(late, reason="pension").destination == "unknown"
    assert exit_with(reason="no_contact_or_sanction").destination == "unknown"


@pytest.mark.parametrize("reason", ["job", "education", "self_support", "moved_municipality"])
def test_the_stop_reason_decides_when_w_is_empty(reason: str) -> None:
    assert exit_with(reason=reason).destination == reason


def test_of_two_stops_at_e_the_first_present_reason_wins() -> None:
    legacy = {"source_system": "legacy-fasit-2018"}
    facts = [
        *on_cash_until(date(2020, 3, 15), "education"),
        started(date(2019, 6, 1), **legacy),
        stopped(date(2020, 3, 15), reason="job", **legacy),
        started(date(2019, 7, 1), municipality="147"),
        stopped(date(2020, 3, 15), reason="moved_municipality", municipality="147"),
    ]
    (found,) = exits(facts, date(2021, 1, 1))
    assert (found.destination, found.evidence) == ("job", (facts[3].event_id,))


def test_the_target_group_at_exit_is_the_one_on_e_minus_1() -> None:
    change = regrouped(date(2020, 3, 15), "aktivitetsparat_voksen", "jobparat", "reassessment")
    assert exit_with(change).target_group == "aktivitetsparat_voksen"
    earlier = regrouped(date(2020, 3, 14), "aktivitetsparat_voksen", "jobparat", "reassessment")
    assert exit_with(earlier).target_group == "jobparat"


def test_a_retracted_stop_is_no_exit() -> None:
    facts = on_cash_until(date(2020, 3, 15))
    assert exits([*facts, retraction(facts[1])], date(2021, 1, 1)) == ()


def test_each_spell_that_ended_is_one_exit_other_benefits_do_not_end_one() -> None:
    facts = [
        *on_cash_until(date(2019, 3, 1), "no_contact_or_sanction"),
        started(date(2019, 6, 1), benefit="uddannelseshjaelp"),
        stopped(date(2020, 1, 1), benefit="uddannelseshjaelp", reason="education"),
        started(date(2020, 1, 31), benefit="sygedagpenge"),  # W's last day; not cash system
    ]
    found = exits(facts, date(2021, 1, 1))
    assert [(e.spell_start, e.exit_date, e.destination) for e in found] == [
        (SINCE, date(2019, 3, 1), "unknown"),
        (date(2019, 6, 1), date(2020, 1, 1), "other_benefit"),  # sygedagpenge in W
    ]


# --- Cohort follow-up ---------------------------------------------------------


def test_outcomes_at_each_horizon() -> None:
    """C = 10 January 2020; exit to a job on 10 May, known from 30 June."""
    facts = on_cash_until(date(2020, 5, 10))
    cohort = date(2020, 1, 10)
    assert follow_up(build_timeline(facts), cohort, (3, 5, 6, 18)) == (
        FollowUp(3, date(2020, 4, 10), "on_benefit"),
        FollowUp(5, date(2020, 6, 10), "neither"),  # in W: not yet known
        FollowUp(6, date(2020, 7, 10), "exited", "job", date(2020, 5, 10)),
        FollowUp(18, date(2021, 7, 10), "exited", "job", date(2020, 5, 10)),
    )


def test_the_first_exit_after_c_decides_even_after_a_return() -> None:
    facts = [
        *on_cash_until(date(2019, 3, 1), "job"),  # before C: not counted
        started(date(2019, 9, 1)),
        stopped(date(2020, 5, 10), reason="education"),
        started(date(2020, 9, 1)),
    ]
    outcomes = follow_up(build_timeline(facts), date(2020, 1, 10), (6, 12))
    assert [(f.outcome, f.destination) for f in outcomes] == [
        ("exited", "education"),
        ("exited", "education"),
    ]


def test_horizons_from_29_february_and_31_august() -> None:
    facts = [started(SINCE)]
    leap = follow_up(build_timeline(facts), date(2020, 2, 29), (12, 6))
    assert [f.horizon_date for f in leap] == [date(2021, 2, 28), date(2020, 8, 29)]
    assert [f.horizon_date for f in follow_up(build_timeline(facts), date(2019, 8, 31), (6,))] == [
        date(2020, 2, 29)
    ]
    assert {f.outcome for f in leap} == {"on_benefit"}


C = date(2020, 1, 1)


def member(facts: list[Fact], born: date = date(1985, 6, 1), **definition: Any) -> bool:
    return in_cohort(build_timeline(facts), born, C, CohortDefinition(**definition))


def test_a_cohort_member_is_on_benefit_on_c() -> None:
    assert member([started(date(2017, 1, 1))])
    assert not member([started(date(2017, 1, 1)), stopped(date(2019, 12, 20))])
    assert not member([started(date(2020, 1, 2))])


def test_cohort_by_target_group_and_age_band() -> None:
    facts = [started(date(2017, 1, 1), target_group="aktivitetsparat_voksen")]
    groups = frozenset({"aktivitetsparat_voksen", "aktivitetsparat_ung"})
    assert member(facts, target_groups=groups)
    assert not member(facts, target_groups=frozenset({"jobparat"}))
    assert member(facts, born=date(1990, 1, 1), min_age=30, max_age=30)
    assert not member(facts, born=date(1990, 1, 2), min_age=30)
    assert not member(facts, born=date(1989, 1, 1), max_age=30)


def test_cohort_by_minimum_spell_and_municipality() -> None:
    facts = [
        started(date(2016, 1, 1), benefit="sygedagpenge", municipality="147"),
        stopped(date(2017, 1, 2), "sygedagpenge", reason="benefit_change", municipality="147"),
        started(date(2017, 1, 2), municipality="147"),
    ]
    assert member(facts, min_years=4)
    assert not member(facts, min_years=5)
    assert not member(facts, min_years=3, cash_system=True)  # cash system since 2 January 2017
    assert member(facts, min_years=2, cash_system=True)
    assert member(facts, municipality="147")
    assert not member(facts, municipality="101")


# --- Against a day-by-day reading --------------------------------------------------

EXIT_BENEFITS = [
    "kontanthjaelp",
    "uddannelseshjaelp",
    "sygedagpenge",
    "foertidspension",
    "seniorpension",
    "ledighedsydelse",
    "fleksloentilskud",
]
EXIT_REASONS = [
    "job",
    "education",
    "self_support",
    "moved_municipality",
    "died",
    "emigrated",
    "pension",
    "no_contact_or_sanction",
    "other",
]
ORIGIN = date(2015, 1, 1)


@st.composite
def benefit_histories(draw: st.DrawFn) -> list[Fact]:
    """Periods of several benefits, sources and municipalities, with gaps around a month."""
    facts: list[Fact] = []
    for _ in range(draw(st.integers(1, 4))):
        key = {
            "benefit": draw(st.sampled_from(EXIT_BENEFITS)),
            "source_system": draw(st.sampled_from(["fasit", "legacy-fasit-2018"])),
            "municipality": draw(st.sampled_from(["101", "147"])),
        }
        day = ORIGIN + timedelta(days=draw(st.integers(0, 200)))
        for _ in range(draw(st.integers(1, 3))):
            facts.append(started(day, **key))
            day += timedelta(days=draw(st.integers(1, 120)))
            if draw(st.booleans()):  # stop on a first of month: the window's edge
                day = first_of_next_month(day)
            facts.append(stopped(day, reason=draw(st.sampled_from(EXIT_REASONS)), **key))
            day += timedelta(days=draw(st.integers(0, 70)))
        if draw(st.booleans()):
            facts.pop()
    return facts


@given(
    benefit_histories(),
    st.integers(0, 800).map(lambda n: ORIGIN + timedelta(days=n)),
    st.booleans(),
)
def test_exits_agree_with_the_day_by_day_reading(
    facts: list[Fact], day: date, month_end: bool
) -> None:
    if month_end:  # the day a window closes
        day = first_of_next_month(day) - timedelta(days=1)
    found = exits_on(build_timeline(facts), day)
    assert [(e.exit_date, e.window_end, e.destination) for e in found] == oracle.exits(facts, day)
