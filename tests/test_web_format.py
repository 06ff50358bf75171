"""Numbers and dates in Danish form (and English on request), and Basic credentials."""

from __future__ import annotations

from datetime import date

from casehistory.entrypoints.api.identity import basic_credentials
from casehistory.entrypoints.api.tables import Table, to_csv
from casehistory.entrypoints.web.i18n import day, label, number, percent


def test_danish_numbers_dates_and_shares() -> None:
    assert number(1234.5, "da") == "1.234,5"
    assert number(1234567, "da") == "1.234.567"
    assert number(1234.5, "en") == "1,234.5"
    assert number(None, "da") == "–"
    assert number(True, "da") == "ja"
    assert day(date(2023, 5, 8), "da") == "08.05.2023"
    assert day(date(2023, 5, 8), "en") == "2023-05-08"
    assert percent(0.125, "da") == "12,5 %"
    assert percent(0.125, "en") == "12.5%"
    assert label("101", "da") == "København (101)"
    assert label("over 3 years", "da") == "Over 3 år"


def test_csv_cells_in_the_danish_convention() -> None:
    table = Table("t", ["name", "share", "day", "breaks"],
                  [["a;b", 0.25, date(2020, 2, 29), {"move": 1}], ["c", None, None, {}]])
    text = to_csv(table).decode("utf-8")
    assert text.startswith("\ufeff")
    assert text[1:].splitlines() == [
        "name;share;day;breaks", '"a;b";0,25;2020-02-29;"{""move"": 1}"', "c;;;{}"]


def test_basic_credentials() -> None:
    assert basic_credentials("Basic YW5hOnNlY3JldDpvaw==") == ("ana", "secret:ok")
    assert basic_credentials("Bearer x") is None
    assert basic_credentials("Basic !!!") is None
