"""Coordination as scenarios: given these facts, on this date, these needs are flagged."""

from __future__ import annotations

import random
from datetime import date, timedelta
from fractions import Fraction
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from casehistory.domain import reference
from casehistory.domain.coordination import (
    Coordination,
    Flag,
    Inflow,
    awaiting_flexjob,
    benefit_months_in_year,
    coordination_on,
    half_year,
    inflows,
    yearly_faellesborger,
)
from casehistory.domain.facts import EventType, Fact
from casehistory.domain.timeline import build_timeline
from tests.factories import fact, started, stopped

BORN = date(1980, 6, 15)


def began(effective: date, intervention: str, **kw: Any) -> Fact:
    return fact(EventType.SOCIAL_INTERVENTION_STARTED, effective, intervention=intervention, **kw)


def ended(effective: date, intervention: str, **kw: Any) -> Fact:
    return fact(EventType.SOCIAL_INTERVENTION_ENDED, effective, intervention=intervention, **kw)


def regrouped(effective: date, to_group: str, **kw: Any) -> Fact:
    return fact(EventType.TARGET_GROUP_CHANGED, effective, to_group=to_group,
                reason="reassessment", **kw)


def coord(facts: list[Fact], day: date, born: date | None = BORN) -> Coordination:
    return coordination_on(build_timeline(facts), day, born)


def flag(facts: list[Fact], day: date, name: str, born: date | None = BORN) -> tuple[str, ...]:
    """The event ids behind flag `name` on `day`; () when it is not raised."""
    return coord(facts, day, born).flags.get(name, ())


def ids(*facts: Fact) -> tuple[str, ...]:
    return tuple(sorted(f.event_id for f in facts))


# --- Fællesborger and support step --------------------------------------------


def test_faellesborger_from_the_intervention_start_to_its_end() -> None:
    support = began(date(2021, 3, 1), "sel_85_support")
    facts = [started(date(2020, 1, 1)), support, ended(date(2021, 9, 1), "sel_85_support")]
    assert not coord(facts, date(2021, 2, 28)).is_faellesborger
    on = coord(facts, date(2021, 3, 1))
    assert on.is_faellesborger and on.interventions == ("sel_85_support",)
    assert on.support_step == 2
    assert coord(facts, date(2021, 8, 31)).is_faellesborger
    off = coord(facts, date(2021, 9, 1))
    assert not off.is_faellesborger and off.interventions == () and off.support_step == 0


def test_faellesborger_ends_with_the_job_centre_benefit() -> None:
    facts = [started(date(2020, 1, 1)), stopped(date(2021, 5, 1)),
             began(date(2020, 6, 1), "drug_treatment")]
    assert coord(facts, date(2021, 4, 30)).is_faellesborger
    after = coord(facts, date(2021, 5, 1))
    assert not after.is_faellesborger
    assert after.interventions == ("drug_treatment",) and after.support_step == 1


def test_aids_extra_costs_one_offs_and_lost_earnings_are_not_coordination_relevant() -> None:
    codes = ["assistive_aids", "extra_costs", "one_off_benefit", "lost_earnings"]
    facts = [started(date(2020, 1, 1)), *(began(date(2020, 2, 1), c) for c in codes)]
    c = coord(facts, date(2020, 3, 1))
    assert not c.is_faellesborger
    assert c.interventions == () and c.support_step == 0 and dict(c.flags) == {}


def test_a_permanent_benefit_is_not_a_job_centre_benefit() -> None:
    facts = [started(date(2020, 1, 1), benefit="foertidspension", target_group="jobparat"),
             began(date(2020, 2, 1), "sel_85_support")]
    c = coord(facts, date(2020, 3, 1))
    assert not c.is_faellesborger
    assert c.target_group is None
    assert c.support_step == 2


def test_childrens_measures_make_a_faellesborger_but_stand_outside_the_steps() -> None:
    facts = [started(date(2020, 1, 1)), began(date(2020, 2, 1), "child_placement")]
    c = coord(facts, date(2020, 2, 1))
    assert c.is_faellesborger
    assert c.interventions == ("child_placement",)
    assert c.support_step == 0


def test_support_step_is_the_highest_active_adult_step() -> None:
    facts = [
        started(date(2020, 1, 1)),
        began(date(2020, 1, 1), "housing_advisor"),                 # step 1
        began(date(2020, 3, 1), "sel_107_temporary_residence"),     # step 3
        ended(date(2020, 6, 1), "sel_107_temporary_residence"),
        began(date(2020, 4, 1), "child_preventive_measure"),        # outside the steps
        began(date(2020, 4, 1), "assistive_aids"),                  # outside the steps
    ]
    assert coord(facts, date(2020, 2, 29)).support_step == 1
    assert coord(facts, date(2020, 3, 1)).support_step == 3
    assert coord(facts, date(2020, 5, 31)).support_step == 3
    after = coord(facts, date(2020, 6, 1))
    assert after.support_step == 1
    assert after.interventions == ("child_preventive_measure", "housing_advisor")


def test_an_end_effective_later_is_not_known_yet() -> None:
    facts = [started(date(2020, 1, 1)), began(date(2020, 1, 1), "sel_85_support"),
             ended(date(2020, 7, 1), "sel_85_support")]
    assert coord(facts, date(2020, 6, 30)).support_step == 2
    assert coord(facts, date(2020, 7, 1)).support_step == 0


def test_same_intervention_from_two_sources_is_listed_once() -> None:
    facts = [started(date(2020, 1, 1)), began(date(2020, 1, 1), "sel_85_support"),
             began(date(2020, 2, 1), "sel_85_support", source_system="legacy-sbsys")]
    assert coord(facts, date(2020, 3, 1)).interventions == ("sel_85_support",)


# --- Flags -------------------------------------------------------------------


def test_coordinating_caseworker_due_follows_the_target_group() -> None:
    start = started(date(2020, 1, 1), target_group="jobparat")
    help_ = began(date(2021, 1, 1), "sel_82a_group_help")
    to_active = regrouped(date(2021, 6, 1), "aktivitetsparat_voksen")
    facts = [start, help_, to_active, regrouped(date(2022, 1, 1), "jobparat")]
    name = Flag.COORDINATING_CASEWORKER_DUE
    assert flag(facts, date(2021, 5, 31), name) == ()
    assert flag(facts, date(2021, 6, 1), name) == ids(help_, to_active)
    assert flag(facts, date(2021, 12, 31), name) == ids(help_, to_active)
    assert flag(facts, date(2022, 1, 1), name) == ()


def test_coordinating_caseworker_due_needs_a_relevant_intervention() -> None:
    start = started(date(2020, 1, 1), target_group="ressourceforloeb",
                    benefit="ressourceforloebsydelse")
    help_ = began(date(2021, 1, 1), "sel_99_outreach_contact")
    facts = [start, help_, ended(date(2021, 7, 1), "sel_99_outreach_contact"),
             began(date(2020, 6, 1), "assistive_aids")]
    name = Flag.COORDINATING_CASEWORKER_DUE
    assert flag(facts, date(2020, 12, 31), name) == ()
    assert flag(facts, date(2021, 1, 1), name) == ids(start, help_)
    assert flag(facts, date(2021, 6, 30), name) == ids(start, help_)
    assert flag(facts, date(2021, 7, 1), name) == ()


def test_coordinating_caseworker_due_only_while_the_target_group_is_reported() -> None:
    start = started(date(2020, 1, 1), target_group="jobafklaring", benefit="jobafklaringsydelse")
    help_ = began(date(2020, 2, 1), "sel_85_support")
    facts = [start, help_, stopped(date(2021, 1, 1), benefit="jobafklaringsydelse")]
    name = Flag.COORDINATING_CASEWORKER_DUE
    assert flag(facts, date(2020, 12, 31), name) == ids(start, help_)
    after = coord(facts, date(2021, 1, 1))
    assert after.target_group is None and name not in after.flags


def test_permanent_support_on_temporary_benefit() -> None:
    temporary = started(date(2020, 1, 1))
    residence = began(date(2021, 1, 1), "sel_108_long_term_residence")
    facts = [
        temporary, residence,
        stopped(date(2022, 1, 1), reason="pension"),
        started(date(2022, 1, 1), benefit="foertidspension"),
        began(date(2020, 6, 1), "sel_107_temporary_residence"),  # step 3 does not raise it
    ]
    name = Flag.PERMANENT_SUPPORT_ON_TEMPORARY_BENEFIT
    assert flag(facts, date(2020, 12, 31), name) == ()
    assert flag(facts, date(2021, 1, 1), name) == ids(temporary, residence)
    assert flag(facts, date(2021, 12, 31), name) == ids(temporary, residence)
    after = coord(facts, date(2022, 1, 1))
    assert name not in after.flags and after.support_step == 4


def test_permanent_support_cleared_when_the_residence_ends() -> None:
    temporary = started(date(2020, 1, 1), benefit="sygedagpenge")
    residence = began(date(2020, 3, 1), "abl_105_long_term_residence")
    facts = [temporary, residence, ended(date(2020, 9, 1), "abl_105_long_term_residence")]
    name = Flag.PERMANENT_SUPPORT_ON_TEMPORARY_BENEFIT
    assert flag(facts, date(2020, 8, 31), name) == ids(temporary, residence)
    assert flag(facts, date(2020, 9, 1), name) == ()


def test_job_ready_in_shelter() -> None:
    start = started(date(2020, 1, 1), target_group="jobparat")
    shelter = began(date(2020, 3, 1), "sel_110_shelter")
    to_active = regrouped(date(2020, 6, 1), "aktivitetsparat_voksen")
    to_education = regrouped(date(2020, 9, 1), "uddannelsesparat")
    facts = [start, shelter, to_active, to_education, ended(date(2020, 12, 1), "sel_110_shelter")]
    name = Flag.JOB_READY_IN_SHELTER
    assert flag(facts, date(2020, 2, 29), name) == ()
    assert flag(facts, date(2020, 3, 1), name) == ids(start, shelter)
    assert flag(facts, date(2020, 6, 1), name) == ()  # aktivitetsparat is not job-ready
    assert flag(facts, date(2020, 9, 1), name) == ids(shelter, to_education)
    assert flag(facts, date(2020, 11, 30), name) == ids(shelter, to_education)
    assert flag(facts, date(2020, 12, 1), name) == ()


def test_job_ready_in_a_crisis_centre_is_not_a_shelter() -> None:
    facts = [started(date(2020, 1, 1), target_group="jobparat"),
             began(date(2020, 3, 1), "sel_109_crisis_centre")]
    assert flag(facts, date(2020, 4, 1), Flag.JOB_READY_IN_SHELTER) == ()


def test_parent_on_a_permanent_pension_is_not_flagged_for_a_childs_measure() -> None:
    """domain.md: every flag but the long-spell one requires a job-centre benefit at D."""
    pension = started(date(2019, 1, 1), benefit="foertidspension")
    measure = began(date(2021, 1, 1), "child_preventive_measure")
    facts = [pension, measure, ended(date(2021, 6, 1), "child_preventive_measure")]
    name = Flag.PARENT_WITH_CHILD_MEASURE
    on = coord(facts, date(2021, 1, 1))
    assert name not in on.flags
    assert not on.is_faellesborger
    # The same parent on ledighedsydelse (a job-centre benefit) beside the pension is flagged,
    # with the job-centre benefit behind the flag, not the pension.
    waiting = started(date(2020, 6, 1), benefit="ledighedsydelse")
    assert flag([*facts, waiting], date(2021, 1, 1), name) == ids(waiting, measure)
    assert flag([*facts, waiting], date(2020, 12, 31), name) == ()
    assert flag([*facts, waiting], date(2021, 6, 1), name) == ()


def test_parent_with_child_measure_needs_a_benefit() -> None:
    benefit = started(date(2020, 1, 1))
    placement = began(date(2020, 2, 1), "child_placement")
    facts = [benefit, placement, stopped(date(2020, 8, 1))]
    name = Flag.PARENT_WITH_CHILD_MEASURE
    assert flag(facts, date(2020, 7, 31), name) == ids(benefit, placement)
    assert flag(facts, date(2020, 8, 1), name) == ()


def test_youth_effort_until_the_25th_birthday_on_1_march_for_29_february() -> None:
    born = date(2000, 2, 29)
    benefit = started(date(2020, 1, 1), benefit="uddannelseshjaelp")
    facts = [benefit]
    name = Flag.YOUTH_UNIFIED_EFFORT
    before = coord(facts, date(2025, 2, 28), born)
    assert before.age == 24 and before.flags[name] == ids(benefit)
    after = coord(facts, date(2025, 3, 1), born)
    assert after.age == 25 and name not in after.flags


def test_youth_effort_needs_a_job_centre_benefit_and_a_known_age() -> None:
    born = date(2000, 1, 1)
    pension = [started(date(2020, 1, 1), benefit="foertidspension")]
    assert flag(pension, date(2021, 1, 1), Flag.YOUTH_UNIFIED_EFFORT, born) == ()
    benefit = started(date(2020, 1, 1))
    facts = [benefit, stopped(date(2021, 1, 1))]
    assert flag(facts, date(2019, 12, 31), Flag.YOUTH_UNIFIED_EFFORT, born) == ()
    assert flag(facts, date(2020, 1, 1), Flag.YOUTH_UNIFIED_EFFORT, born) == ids(benefit)
    assert flag(facts, date(2021, 1, 1), Flag.YOUTH_UNIFIED_EFFORT, born) == ()
    assert coord(facts, date(2020, 6, 1), None).age is None
    assert flag(facts, date(2020, 6, 1), Flag.YOUTH_UNIFIED_EFFORT, None) == ()


def test_long_duration_with_social_needs_from_the_third_anniversary() -> None:
    first = started(date(2018, 3, 1))
    gap_stop = stopped(date(2019, 3, 10), reason="no_contact_or_sanction")
    again = started(date(2019, 4, 20))  # no whole month empty: one spell
    support = began(date(2020, 1, 1), "sel_85_support")
    facts = [first, gap_stop, again, support, ended(date(2021, 6, 1), "sel_85_support")]
    name = Flag.LONG_DURATION_WITH_SOCIAL_NEEDS
    assert flag(facts, date(2021, 2, 28), name) == ()
    assert flag(facts, date(2021, 3, 1), name) == ids(again, support)
    assert flag(facts, date(2021, 5, 31), name) == ids(again, support)
    assert flag(facts, date(2021, 6, 1), name) == ()  # step back to 0


def test_long_duration_needs_step_two_and_an_unbroken_spell() -> None:
    light = [started(date(2015, 1, 1)), began(date(2016, 1, 1), "housing_advisor")]
    assert flag(light, date(2020, 1, 1), Flag.LONG_DURATION_WITH_SOCIAL_NEEDS) == ()
    broken = [started(date(2015, 1, 1)), stopped(date(2018, 2, 1)), started(date(2018, 3, 1)),
              began(date(2016, 1, 1), "sel_85_support")]  # February empty: a new spell
    assert flag(broken, date(2021, 2, 28), Flag.LONG_DURATION_WITH_SOCIAL_NEEDS) == ()
    assert flag(broken, date(2021, 3, 1), Flag.LONG_DURATION_WITH_SOCIAL_NEEDS) != ()


def test_long_spell_years_is_a_parameter() -> None:
    facts = [started(date(2018, 3, 1)), began(date(2018, 3, 1), "sel_85_support")]
    day = date(2020, 3, 1)
    assert Flag.LONG_DURATION_WITH_SOCIAL_NEEDS not in coord(facts, day).flags
    short = coordination_on(build_timeline(facts), day, BORN, long_spell_years=2)
    assert Flag.LONG_DURATION_WITH_SOCIAL_NEEDS in short.flags


# --- The yearly figure -------------------------------------------------------


def _yearly(benefit_from: date, benefit_to: date | None, **kw: Any) -> list[Fact]:
    facts = [started(benefit_from, **kw), began(date(2000, 1, 1), "sel_85_support")]
    if benefit_to is not None:
        facts.append(stopped(benefit_to, **kw))
    return facts


def test_two_whole_calendar_months_are_two_months_even_february_and_march() -> None:
    exact = build_timeline(_yearly(date(2021, 2, 1), date(2021, 4, 1)))  # 59 days
    assert benefit_months_in_year(exact, 2021) == 2
    assert yearly_faellesborger(exact, 2021)
    short = build_timeline(_yearly(date(2021, 2, 2), date(2021, 4, 1)))
    assert benefit_months_in_year(short, 2021) == Fraction(27, 28) + 1
    assert not yearly_faellesborger(short, 2021)


def test_a_period_across_new_year_counts_only_its_days_inside_the_year() -> None:
    to_leap_day = build_timeline(_yearly(date(2019, 11, 1), date(2020, 2, 29)))
    assert yearly_faellesborger(to_leap_day, 2019)  # November and December
    assert not yearly_faellesborger(to_leap_day, 2020)  # January and 28 of 29 February days
    through_february = build_timeline(_yearly(date(2019, 11, 2), date(2020, 3, 1)))
    assert not yearly_faellesborger(through_february, 2019)
    assert yearly_faellesborger(through_february, 2020)


def test_scattered_periods_add_up_and_overlapping_sources_count_once() -> None:
    scattered = [started(date(2021, 1, 1)), stopped(date(2021, 2, 1)),
                 started(date(2021, 10, 1)), stopped(date(2021, 11, 1)),
                 began(date(2021, 5, 1), "youth_mentor")]
    assert yearly_faellesborger(build_timeline(scattered), 2021)
    twice = [started(date(2021, 1, 1)), stopped(date(2021, 2, 1)),
             started(date(2021, 1, 1), source_system="legacy"),
             stopped(date(2021, 2, 1), source_system="legacy"),
             began(date(2021, 5, 1), "youth_mentor")]
    assert benefit_months_in_year(build_timeline(twice), 2021) == 1
    assert not yearly_faellesborger(build_timeline(twice), 2021)


def test_yearly_intervention_active_at_some_time_in_the_year() -> None:
    benefit = [started(date(2020, 1, 1))]
    ended_new_year = [*benefit, began(date(2020, 3, 1), "sel_85_support"),
                      ended(date(2021, 1, 1), "sel_85_support")]
    assert yearly_faellesborger(build_timeline(ended_new_year), 2020)
    assert not yearly_faellesborger(build_timeline(ended_new_year), 2021)
    new_years_eve = [*benefit, began(date(2021, 12, 31), "sel_85_support")]
    assert yearly_faellesborger(build_timeline(new_years_eve), 2021)
    assert not yearly_faellesborger(build_timeline(new_years_eve), 2020)
    aids_only = [*benefit, began(date(2020, 3, 1), "assistive_aids")]
    assert not yearly_faellesborger(build_timeline(aids_only), 2020)


def test_yearly_figure_counts_any_benefit() -> None:
    pension = build_timeline(_yearly(date(2020, 1, 1), None, benefit="foertidspension"))
    assert yearly_faellesborger(pension, 2020)


# --- Flows -------------------------------------------------------------------


def test_inflow_is_the_first_day_on_the_benefit_over_all_sources() -> None:
    legacy = started(date(2020, 4, 1), benefit="foertidspension", source_system="legacy")
    facts = [
        started(date(2020, 5, 1), benefit="foertidspension"),
        legacy,
        stopped(date(2020, 9, 1), benefit="foertidspension", source_system="legacy",
                reason="system_conversion"),
        started(date(2020, 1, 1), benefit="ledighedsydelse"),  # not an inflow benefit
    ]
    assert inflows(build_timeline(facts)) == [Inflow("foertidspension", date(2020, 4, 1),
                                                     legacy.event_id)]


def test_split_flexjob_periods_are_one_inflow_and_a_gap_is_a_new_one() -> None:
    first = started(date(2020, 1, 1), benefit="fleksloentilskud")
    later = started(date(2021, 6, 1), benefit="fleksloentilskud")
    facts = [
        first,
        stopped(date(2021, 3, 1), benefit="fleksloentilskud", reason="moved_municipality"),
        started(date(2021, 3, 1), benefit="fleksloentilskud", municipality="147"),
        stopped(date(2021, 5, 31), benefit="fleksloentilskud", municipality="147"),
        later,
        started(date(2020, 10, 1), benefit="seniorpension"),
    ]
    found = inflows(build_timeline(facts))
    assert [(i.benefit, i.start) for i in found] == [
        ("fleksloentilskud", date(2020, 1, 1)),
        ("seniorpension", date(2020, 10, 1)),
        ("fleksloentilskud", date(2021, 6, 1)),
    ]
    assert found[0].event_id == first.event_id and found[2].event_id == later.event_id
    assert [half_year(i.start) for i in found] == ["2020H1", "2020H2", "2021H1"]
    only_pension = inflows(build_timeline(facts), frozenset({"seniorpension"}))
    assert [i.benefit for i in only_pension] == ["seniorpension"]


def test_half_year() -> None:
    assert half_year(date(2020, 1, 1)) == "2020H1"
    assert half_year(date(2020, 6, 30)) == "2020H1"
    assert half_year(date(2020, 7, 1)) == "2020H2"
    assert half_year(date(2020, 12, 31)) == "2020H2"


def test_awaiting_flexjob_while_on_ledighedsydelse() -> None:
    facts = [started(date(2020, 1, 1), benefit="ledighedsydelse"),
             stopped(date(2020, 6, 1), benefit="ledighedsydelse"),
             started(date(2020, 6, 1), benefit="fleksloentilskud")]
    timeline = build_timeline(facts)
    assert not awaiting_flexjob(timeline, date(2019, 12, 31))
    assert awaiting_flexjob(timeline, date(2020, 1, 1))
    assert awaiting_flexjob(timeline, date(2020, 5, 31))
    assert not awaiting_flexjob(timeline, date(2020, 6, 1))


# --- Property: support step whatever the arrival order ------------------------

CODES = sorted(reference.interventions())
ORIGIN = date(2018, 1, 1)
Interval = tuple[str, date, date | None]


@st.composite
def intervention_histories(draw: st.DrawFn) -> tuple[list[Fact], list[Interval]]:
    """Interventions under distinct keys, some left open; returns facts and their intervals."""
    facts: list[Fact] = [started(ORIGIN)]
    intervals: list[Interval] = []
    for index in range(draw(st.integers(0, 6))):
        code = draw(st.sampled_from(CODES))
        key = {"source_system": f"sbsys-{index}"}
        start = ORIGIN + timedelta(days=draw(st.integers(0, 800)))
        facts.append(began(start, code, **key))
        stop: date | None = None
        if draw(st.booleans()):
            stop = start + timedelta(days=draw(st.integers(1, 400)))
            facts.append(ended(stop, code, **key))
        intervals.append((code, start, stop))
    return facts, intervals


@given(intervention_histories(), st.integers(0, 1300), st.randoms(use_true_random=False),
       st.lists(st.integers(0, 50), max_size=5))
def test_support_step_is_the_max_active_adult_step_whatever_the_order(
    history: tuple[list[Fact], list[Interval]],
    offset: int,
    rng: random.Random,
    duplicates: list[int],
) -> None:
    facts, intervals = history
    day = ORIGIN + timedelta(days=offset)
    catalogue = reference.interventions()
    expected = max(
        (
            catalogue[code].support_step or 0
            for code, start, stop in intervals
            if start <= day and (stop is None or day < stop)
        ),
        default=0,
    )
    delivered = facts + [facts[i % len(facts)] for i in duplicates]
    rng.shuffle(delivered)
    assert coord(delivered, day).support_step == expected


@given(intervention_histories(), st.integers(0, 1300), st.sampled_from(["foertidspension",
                                                                        "seniorpension"]))
def test_without_a_job_centre_benefit_only_the_long_spell_flag_can_be_raised(
    history: tuple[list[Fact], list[Interval]], offset: int, pension: str
) -> None:
    """domain.md: every flag except the long-spell one requires a job-centre benefit at D.

    A young citizen with a group that has the right to a coordinating caseworker,
    on a permanent benefit, with any interventions (children's measures, shelters,
    step 4 included): youth, parent, caseworker, shelter and step-4 flags stay down.
    """
    facts, _ = history
    on_pension = started(ORIGIN - timedelta(days=2000), benefit=pension,
                         target_group="aktivitetsparat_ung")
    on = coord([on_pension, *facts[1:]], ORIGIN + timedelta(days=offset), born=date(2000, 1, 1))
    assert set(on.flags) <= {Flag.LONG_DURATION_WITH_SOCIAL_NEEDS}
    assert not on.is_faellesborger and on.target_group is None
