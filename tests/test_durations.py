"""Duration measures as scenarios: given these facts, on this date, the spell is this long."""

from __future__ import annotations

from datetime import UTC, date, datetime

from casehistory.domain.durations import (
    at_least_years,
    duration_bucket,
    durations_on,
    over_years,
)
from casehistory.domain.facts import EventType
from casehistory.domain.timeline import FindingKind, build_timeline
from tests.factories import fact, retraction, started, stopped

BORN = date(1980, 6, 15)


def measures(facts, day, known_at=None):
    return durations_on(build_timeline(facts, known_at), day, BORN)


def test_narrated_citizen_through_move_conversion_data_break_and_reform() -> None:
    """One citizen, four breaks, one spell; the case system shows only the last case."""
    facts = [
        # 2012: kontanthjælp in Copenhagen, match group 2.
        started(
            date(2012, 3, 1), target_group="match_2_indsatsklar", source_system="legacy-fasit-2018"
        ),
        # 2014 reform: a new target group on the same case (not a break) ...
        fact(
            EventType.TARGET_GROUP_CHANGED,
            date(2014, 1, 1),
            from_group="match_2_indsatsklar",
            to_group="aktivitetsparat_voksen",
            reason="reform",
            source_system="legacy-fasit-2018",
        ),
        # 2015: a data break: sanctioned, reopened three weeks later in a new case.
        stopped(
            date(2015, 5, 10), reason="no_contact_or_sanction", source_system="legacy-fasit-2018"
        ),
        started(date(2015, 6, 1), source_system="legacy-fasit-2018"),
        # 2018: conversion to the new system on the same day.
        stopped(date(2018, 4, 1), reason="system_conversion", source_system="legacy-fasit-2018"),
        started(date(2018, 4, 1), source_system="fasit"),
        # 2020: moves to Frederiksberg and applies again two weeks later.
        stopped(date(2020, 9, 1), reason="moved_municipality", source_system="fasit"),
        fact(
            EventType.CITIZEN_MOVED,
            date(2020, 9, 1),
            from_municipality="101",
            to_municipality="147",
        ),
        started(date(2020, 9, 15), source_system="fasit", municipality="147"),
    ]
    day = date(2026, 11, 1)
    m = measures(facts, day)
    assert m.on_benefit
    assert m.all_benefits_spell_start == date(2012, 3, 1)
    assert m.all_benefits_spell_days == (day - date(2012, 3, 1)).days
    unpaid = (date(2015, 6, 1) - date(2015, 5, 10)).days + (
        date(2020, 9, 15) - date(2020, 9, 1)
    ).days
    assert m.benefit_days_in_spell == m.all_benefits_spell_days + 1 - unpaid
    assert dict(m.breaks_bridged) == {
        "moved_municipality": 1,
        "no_contact_or_sanction": 1,
        "system_conversion": 1,
    }
    assert m.naive_days == (day - date(2020, 9, 15)).days
    assert over_years(m.all_benefits_spell_start, day, 10)
    assert not over_years(day.replace(year=2020, month=9, day=15), day, 10)
    assert m.target_group == "aktivitetsparat_voksen"
    assert m.age == 46


def test_day_counts_for_a_spell_started_today() -> None:
    m = measures([started(date(2024, 1, 10))], date(2024, 1, 10))
    assert m.all_benefits_spell_days == 0
    assert m.benefit_days_in_spell == 1
    assert m.naive_days == 0


def test_in_a_short_gap_there_is_no_current_spell() -> None:
    facts = [started(date(2020, 1, 1)), stopped(date(2020, 3, 15)), started(date(2020, 4, 20))]
    gap = measures(facts, date(2020, 4, 1))
    assert not gap.on_benefit
    assert gap.all_benefits_spell_start is None and gap.naive_days is None
    assert gap.breaks_bridged == {}
    after = measures(facts, date(2020, 4, 20))
    assert after.all_benefits_spell_start == date(2020, 1, 1)
    assert after.naive_days == 0


def test_a_whole_empty_month_starts_a_new_spell() -> None:
    facts = [started(date(2020, 1, 1)), stopped(date(2020, 3, 15)), started(date(2020, 5, 1))]
    assert measures(facts, date(2020, 6, 1)).all_benefits_spell_start == date(2020, 5, 1)


def test_stop_and_start_on_one_date_join_into_one_run() -> None:
    facts = [
        started(date(2020, 1, 1)),
        stopped(date(2020, 6, 1), reason="benefit_change"),
        started(date(2020, 6, 1), benefit="uddannelseshjaelp"),
    ]
    m = measures(facts, date(2020, 12, 31))
    assert m.benefit_days_in_spell == m.all_benefits_spell_days + 1
    assert dict(m.breaks_bridged) == {"benefit_change": 1}


def test_overlapping_sources_are_unioned_and_never_close_each_other() -> None:
    legacy = [
        started(date(2016, 1, 1), source_system="legacy-fasit-2018"),
        stopped(date(2018, 6, 1), source_system="legacy-fasit-2018", reason="system_conversion"),
    ]
    converted = [started(date(2018, 1, 1), source_system="fasit")]  # start set to a conversion date
    m = measures(legacy + converted, date(2019, 1, 1))
    assert m.all_benefits_spell_start == date(2016, 1, 1)
    assert m.benefit_days_in_spell == (date(2019, 1, 1) - date(2016, 1, 1)).days + 1
    assert m.naive_days == (date(2019, 1, 1) - date(2018, 1, 1)).days


def test_cash_system_spell_ignores_other_families() -> None:
    facts = [
        started(date(2015, 1, 1), benefit="sygedagpenge"),
        stopped(date(2017, 1, 1), benefit="sygedagpenge", reason="benefit_change"),
        started(date(2017, 1, 1), benefit="kontanthjaelp"),
    ]
    m = measures(facts, date(2020, 1, 1))
    assert m.all_benefits_spell_start == date(2015, 1, 1)
    assert m.cash_system_spell_start == date(2017, 1, 1)
    assert m.cash_system_spell_days == (date(2020, 1, 1) - date(2017, 1, 1)).days


def test_share_of_last_ten_years_in_cash_system() -> None:
    day = date(2024, 2, 29)
    window_start = date(2014, 2, 28)  # 29 February minus ten years
    facts = [started(date(2010, 1, 1))]
    assert measures(facts, day).share_last_10y_cash_system == 1.0
    half = [started(date(2019, 3, 1))]
    paid = (day - date(2019, 3, 1)).days + 1
    assert measures(half, day).share_last_10y_cash_system == paid / (day - window_start).days


def test_as_of_ignores_later_effective_events_whenever_they_arrived() -> None:
    late_stop = stopped(date(2021, 1, 1), recorded=datetime(2019, 1, 1, tzinfo=UTC))
    facts = [started(date(2018, 1, 1)), late_stop]
    assert measures(facts, date(2020, 6, 1)).on_benefit
    assert not measures(facts, date(2021, 1, 1)).on_benefit


def test_as_known_at_drops_events_recorded_later() -> None:
    facts = [
        started(date(2018, 1, 1)),
        stopped(date(2019, 1, 1), recorded=datetime(2020, 5, 1, tzinfo=UTC)),
    ]
    day = date(2019, 6, 1)
    assert measures(facts, day, known_at=datetime(2020, 1, 1, tzinfo=UTC)).on_benefit
    assert not measures(facts, day, known_at=datetime(2020, 6, 1, tzinfo=UTC)).on_benefit


def test_retraction_voids_whatever_its_own_effective_date() -> None:
    stop = stopped(date(2019, 1, 1))
    facts = [started(date(2018, 1, 1)), stop, retraction(stop, effective=date(2025, 1, 1))]
    assert measures(facts, date(2020, 1, 1)).on_benefit


def test_a_retracted_retraction_voids_nothing() -> None:
    stop = stopped(date(2019, 1, 1))
    first = retraction(stop)
    facts = [started(date(2018, 1, 1)), stop, first, retraction(first)]
    assert not measures(facts, date(2020, 1, 1)).on_benefit


def test_findings_change_nothing() -> None:
    facts = [
        started(date(2018, 1, 1)),
        started(date(2018, 6, 1)),
        stopped(date(2017, 1, 1)),
        fact(
            EventType.TARGET_GROUP_CHANGED,
            date(2012, 1, 1),
            from_group="jobparat",
            to_group="aktivitetsparat_voksen",
            reason="reassessment",
        ),
    ]
    timeline = build_timeline(facts)
    assert {f.kind for f in timeline.findings} == set(FindingKind)
    m = durations_on(timeline, date(2019, 1, 1), BORN)
    assert m.all_benefits_spell_start == date(2018, 1, 1)  # the period keeps its first start
    assert m.naive_days == (date(2019, 1, 1) - date(2018, 1, 1)).days


def test_target_group_latest_by_effective_date_ties_to_later_recorded() -> None:
    early = datetime(2020, 1, 1, tzinfo=UTC)
    late = datetime(2020, 2, 1, tzinfo=UTC)
    facts = [
        started(date(2019, 1, 1), target_group="jobparat"),
        fact(
            EventType.TARGET_GROUP_CHANGED,
            date(2019, 6, 1),
            recorded=late,
            from_group="jobparat",
            to_group="aktivitetsparat_voksen",
            reason="reassessment",
        ),
        fact(
            EventType.TARGET_GROUP_CHANGED,
            date(2019, 6, 1),
            recorded=early,
            from_group="jobparat",
            to_group="ressourceforloeb",
            reason="reassessment",
        ),
        started(date(2019, 9, 1), benefit="sygedagpenge"),  # no group: keeps the previous
    ]
    assert measures(facts, date(2019, 5, 1)).target_group == "jobparat"
    assert measures(facts, date(2019, 10, 1)).target_group == "aktivitetsparat_voksen"


def test_a_start_of_an_open_period_still_assigns_its_target_group() -> None:
    """domain.md: the assessment happened, whatever the case system did."""
    facts = [started(date(2019, 1, 1), target_group="jobparat"),
             started(date(2019, 6, 1), target_group="aktivitetsparat_voksen")]
    assert measures(facts, date(2019, 5, 31)).target_group == "jobparat"
    assert measures(facts, date(2019, 7, 1)).target_group == "aktivitetsparat_voksen"
    assert measures(facts, date(2019, 7, 1)).all_benefits_spell_start == date(2019, 1, 1)


def test_target_group_reported_only_on_a_job_centre_benefit() -> None:
    facts = [
        started(date(2019, 1, 1), target_group="jobparat"),
        stopped(date(2020, 1, 1), reason="pension"),
        started(date(2020, 1, 1), benefit="foertidspension"),
    ]
    assert measures(facts, date(2019, 6, 1)).target_group == "jobparat"
    on_pension = measures(facts, date(2020, 6, 1))
    assert on_pension.on_benefit and on_pension.target_group is None


def test_cohort_and_bucket_boundaries() -> None:
    day = date(2026, 11, 1)
    assert over_years(date(2023, 10, 31), day, 3)
    assert not over_years(date(2023, 11, 1), day, 3)
    assert at_least_years(date(2023, 11, 1), day, 3)
    assert duration_bucket(date(2026, 5, 4), day) == "0-26 weeks"  # 181 days
    assert duration_bucket(date(2026, 5, 3), day) == "26-52 weeks"  # 182 days
    assert duration_bucket(date(2025, 11, 3), day) == "26-52 weeks"  # 363 days
    assert duration_bucket(date(2025, 11, 2), day) == "1-2 years"  # 364 days: 52 weeks done
    assert duration_bucket(date(2025, 11, 1), day) == "1-2 years"
    assert duration_bucket(date(2024, 11, 1), day) == "1-2 years"
    assert duration_bucket(date(2024, 10, 31), day) == "2-3 years"
    assert duration_bucket(date(2023, 10, 31), day) == "over 3 years"
