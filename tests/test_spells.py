"""The calendar-month spell rule, with the examples from domain.md."""

from datetime import date

import pytest

from casehistory.domain.spells import Run, gap_breaks_spell, spells, union, years_before


@pytest.mark.parametrize(
    ("stop", "restart", "breaks"),
    [
        (date(2020, 3, 15), date(2020, 4, 20), False),  # no whole month empty: one spell
        (date(2020, 3, 15), date(2020, 5, 1), True),  # April was empty: two spells
        (date(2020, 4, 1), date(2020, 4, 30), False),  # 1-29 April unpaid, not all of April
        (date(2020, 4, 1), date(2020, 5, 1), True),  # exactly April unpaid
        (date(2020, 2, 1), date(2020, 3, 1), True),  # February of a leap year
        (date(2020, 12, 2), date(2021, 2, 1), True),  # January across the year boundary
        (date(2020, 12, 2), date(2021, 1, 31), False),
    ],
)
def test_month_rule(stop: date, restart: date, breaks: bool) -> None:
    assert gap_breaks_spell(stop, restart) is breaks
    runs = [Run(date(2020, 1, 1), stop), Run(restart, date(2021, 6, 1))]
    assert len(spells(runs)) == (2 if breaks else 1)


def test_union_counts_overlapping_days_once_and_joins_touching() -> None:
    runs = union(
        [
            (date(2020, 1, 1), date(2020, 3, 1)),
            (date(2020, 2, 1), date(2020, 4, 1)),  # overlap: a second source
            (date(2020, 4, 1), date(2020, 5, 1)),  # touching: stop D + start D
            (date(2020, 6, 1), date(2020, 6, 1)),  # empty
        ]
    )
    assert runs == [Run(date(2020, 1, 1), date(2020, 5, 1))]
    assert runs[0].days == 121


def test_years_before_moves_29_february_to_28() -> None:
    assert years_before(date(2024, 2, 29), 1) == date(2023, 2, 28)
    assert years_before(date(2024, 2, 29), 4) == date(2020, 2, 29)
    assert years_before(date(2026, 11, 1), 10) == date(2016, 11, 1)
