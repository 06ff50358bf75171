"""Prioritisation lists: long durations and the clarification pool, as domain.md's scenarios."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from casehistory.domain.durations import durations_on
from casehistory.domain.facts import Fact
from casehistory.domain.priorities import (
    LongDuration,
    in_clarification_pool,
    long_duration,
    longest_first,
)
from casehistory.domain.timeline import build_timeline
from tests.factories import started, stopped


def entry(facts: list[Fact], day: date, years: int, cash: bool = False) -> LongDuration | None:
    return long_duration(build_timeline(facts), day, years, cash_system=cash)


@pytest.mark.parametrize(
    ("start", "day", "years", "listed"),
    [
        (date(2005, 3, 1), date(2020, 3, 1), 15, False),  # exactly 15 years: not over
        (date(2005, 3, 1), date(2020, 3, 2), 15, True),
        (date(2022, 2, 27), date(2024, 2, 29), 2, True),  # 29 Feb - 2 years = 28 Feb
        (date(2022, 2, 28), date(2024, 2, 29), 2, False),
    ],
)
def test_over_n_years_means_started_before_d_minus_n(
    start: date, day: date, years: int, listed: bool
) -> None:
    assert (entry([started(start)], day, years) is not None) is listed


def test_the_spell_bridges_breaks_and_the_naive_measure_stands_beside_it() -> None:
    reform = started(date(2014, 1, 1), benefit="uddannelseshjaelp")
    facts = [
        started(date(2003, 1, 1)),
        stopped(date(2008, 5, 10), reason="no_contact_or_sanction"),
        started(date(2008, 6, 1)),  # no whole month empty: bridged
        stopped(date(2014, 1, 1), reason="target_group_change"),
        reform,
    ]
    day = date(2020, 6, 1)
    assert entry(facts, day, 15) == LongDuration(
        as_of=day,
        spell_start=date(2003, 1, 1),
        spell_days=(day - date(2003, 1, 1)).days,
        breaks_bridged={"no_contact_or_sanction": 1, "target_group_change": 1},
        naive_days=(day - reform.effective_date).days,
    )


def test_not_on_benefit_at_d_is_not_listed() -> None:
    facts = [started(date(2000, 1, 1)), stopped(date(2020, 5, 20), reason="other")]
    assert entry(facts, date(2020, 5, 19), 15) is not None
    assert entry(facts, date(2020, 5, 25), 15) is None  # a short gap: no current spell


def test_the_cash_system_spell_counts_only_cash_system_periods() -> None:
    facts = [
        started(date(2000, 1, 1), benefit="sygedagpenge"),
        stopped(date(2004, 1, 15), benefit="sygedagpenge", reason="benefit_change"),
        started(date(2004, 1, 15)),
        started(date(2010, 1, 1), benefit="sygedagpenge"),
        stopped(date(2011, 1, 1), benefit="sygedagpenge", reason="other"),
    ]
    day = date(2020, 1, 1)
    all_benefits = entry(facts, day, 17)
    assert all_benefits is not None and all_benefits.spell_start == date(2000, 1, 1)
    assert dict(all_benefits.breaks_bridged) == {"benefit_change": 1, "other": 1}
    assert entry(facts, day, 17, cash=True) is None
    cash = entry(facts, day, 15, cash=True)
    assert cash is not None and cash.spell_start == date(2004, 1, 15)
    assert dict(cash.breaks_bridged) == {}
    assert cash.naive_days == (day - date(2004, 1, 15)).days


def test_longest_first_ties_by_key() -> None:
    day = date(2020, 1, 1)
    entries = {
        key: LongDuration(day, start, (day - start).days)
        for key, start in (
            ("b", date(2001, 1, 1)),
            ("c", date(2003, 1, 1)),
            ("a", date(2001, 1, 1)),
        )
    }
    assert longest_first(entries) == ["a", "b", "c"]


# --- Clarification pool ---------------------------------------------------------

D = date(2020, 1, 1)  # the window (2010-01-01, 2020-01-01] has 3,652 days; 80% is 2,921.6


def pool(paid_days: int, group: str = "aktivitetsparat_voksen", born: date = date(1980, 1, 1),
         day: date = D) -> bool:
    """On kontanthjælp for the last `paid_days` days up to and including `day`."""
    facts = [started(day - timedelta(days=paid_days - 1), target_group=group)]
    return in_clarification_pool(durations_on(build_timeline(facts), day, born))


def test_at_least_80_percent_of_the_last_ten_years() -> None:
    assert pool(2922)
    assert not pool(2921)


@pytest.mark.parametrize(
    ("group", "member"),
    [
        ("aktivitetsparat_voksen", True),
        ("aktivitetsparat_ung", True),
        ("jobparat", False),
        ("ressourceforloeb", False),
    ],
)
def test_aktivitetsparat_adult_or_young(group: str, member: bool) -> None:
    assert pool(3652, group) is member


def test_aged_30_or_over_born_on_29_february() -> None:
    born = date(1992, 2, 29)
    assert not pool(3652, born=born, day=date(2022, 2, 28))
    assert pool(3652, born=born, day=date(2022, 3, 1))


def test_no_reported_group_off_a_job_centre_benefit() -> None:
    facts = [
        started(date(2008, 1, 1), target_group="aktivitetsparat_voksen"),
        stopped(date(2019, 12, 1), reason="pension"),
        started(date(2019, 12, 1), benefit="foertidspension"),
    ]
    measures = durations_on(build_timeline(facts), D, date(1970, 1, 1))
    assert measures.share_last_10y_cash_system >= 0.8 and measures.target_group is None
    assert not in_clarification_pool(measures)
