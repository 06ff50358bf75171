"""The council reports' pure shaping: caseload bands at the field's lines, exit rows, and
cohort shares (hand-computed)."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from casehistory.services.council_report import band, caseload_report, cohort_rows, exit_rows


@pytest.mark.parametrize(("citizens", "expected"), [
    (1, "<= 50"), (50, "<= 50"), (51, "51-70"), (70, "51-70"), (71, "71-110"),
    (110, "71-110"), (111, "> 110"),
])
def test_caseload_bands_cut_at_50_70_and_110(citizens: int, expected: str) -> None:
    assert band(citizens) == expected


def test_the_distribution_counts_caseworker_units_per_band() -> None:
    report = caseload_report(date(2026, 1, 1), {("a", None): 50, ("a", "u"): 51, ("b", "u"): 120})
    assert report.citizens == 221
    assert report.distribution == Counter({"<= 50": 1, "51-70": 1, "> 110": 1})


def test_exit_rows_name_a_missing_group() -> None:
    assert exit_rows([("2025H1", "job", None, 3), ("2025H2", "died", "jobparat", 1)]) == [
        {"half_year": "2025H1", "destination": "job", "target_group": "(none)", "exits": 3},
        {"half_year": "2025H2", "destination": "died", "target_group": "jobparat", "exits": 1},
    ]


def test_cohort_shares_are_of_the_cohort_at_each_horizon() -> None:
    at_6 = Counter({("exited", "job"): 1, ("on_benefit", None): 2})
    rows = cohort_rows(3, [(6, date(2024, 7, 1), at_6)])
    assert [(r["outcome"], r["destination"], r["citizens"], r["share"]) for r in rows] == [
        ("exited", "job", 1, 0.3333), ("on_benefit", None, 2, 0.6667)]
    assert cohort_rows(0, [(6, date(2024, 7, 1), Counter())]) == []
