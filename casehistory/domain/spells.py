"""Union of periods into runs, and runs into spells by the calendar-month rule.

All intervals are half-open `[start, end)` in days. A spell ends only when a
whole calendar month passes with no benefit at all: a gap between two runs
breaks the spell if and only if some calendar month lies entirely inside it.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import date, timedelta
from typing import NamedTuple

ONE_DAY = timedelta(days=1)


class Run(NamedTuple):
    """Consecutive paid days `[start, end)`."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days


class Spell(NamedTuple):
    """Runs joined across gaps that contain no whole calendar month."""

    runs: tuple[Run, ...]

    @property
    def start(self) -> date:
        return self.runs[0].start

    @property
    def end(self) -> date:
        return self.runs[-1].end

    @property
    def paid_days(self) -> int:
        return sum(run.days for run in self.runs)


def union(intervals: Iterable[tuple[date, date]]) -> list[Run]:
    """Merge overlapping or touching `[start, end)` intervals; days count once."""
    runs: list[Run] = []
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if runs and start <= runs[-1].end:
            if end > runs[-1].end:
                runs[-1] = Run(runs[-1].start, end)
        else:
            runs.append(Run(start, end))
    return runs


def first_of_next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def end_of_first_whole_month(day: date) -> date:
    """The last day of the first whole calendar month on or after `day`.

    15 March gives 30 April; 1 April gives 30 April. A gap starting on `day`
    breaks a spell exactly when it runs past this day.
    """
    month_start = day if day.day == 1 else first_of_next_month(day)
    return first_of_next_month(month_start) - ONE_DAY


def gap_breaks_spell(gap_start: date, gap_end: date) -> bool:
    """Whether the unpaid days `[gap_start, gap_end)` contain a whole calendar month."""
    return end_of_first_whole_month(gap_start) < gap_end


def spells(runs: Iterable[Run]) -> list[Spell]:
    """Group sorted, disjoint runs into spells."""
    grouped: list[list[Run]] = []
    for run in runs:
        if grouped and not gap_breaks_spell(grouped[-1][-1].end, run.start):
            grouped[-1].append(run)
        else:
            grouped.append([run])
    return [Spell(tuple(group)) for group in grouped]


def paid_days_between(runs: Iterable[Run], start: date, end: date) -> int:
    """Paid days of `runs` inside `[start, end)`."""
    total = 0
    for run in runs:
        overlap = (min(run.end, end) - max(run.start, start)).days
        if overlap > 0:
            total += overlap
    return total


def months_later(day: date, months: int) -> date:
    """The same day `months` calendar months later (earlier when negative).

    A day the target month lacks becomes its last day: 31 August + 6 months is
    28 (or 29) February, 29 February + 12 months is 28 February.
    """
    year, month_index = divmod(day.year * 12 + day.month - 1 + months, 12)
    month = month_index + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def years_before(day: date, years: int) -> date:
    """The same calendar day `years` earlier; 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)
