"""Numbers and dates in Danish form (and English on request), and the access log's chain."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

from casehistory.api.access_log import AccessLog
from casehistory.api.identity import Identity, Role, basic_credentials
from casehistory.api.tables import Table, to_csv
from casehistory.web.i18n import day, label, number, percent


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


def test_the_access_log_chain_shows_an_edit(tmp_path: Path) -> None:
    log = AccessLog(tmp_path / "access.jsonl")
    who = Identity("kim", frozenset({Role.CASEWORKER}), "local")
    log.lookup(who, "sag 1", "ab" * 16, "cpr", "history")
    log.refusal(who, "operations", "/drift")
    assert AccessLog(tmp_path / "access.jsonl").verify()
    lines = (tmp_path / "access.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["purpose"] = "something else"
    (tmp_path / "access.jsonl").write_text("\n".join([json.dumps(first), lines[1]]) + "\n")
    assert not AccessLog(tmp_path / "access.jsonl").verify()
    (tmp_path / "access.jsonl").write_text(lines[1] + "\n")  # the first record removed
    assert not AccessLog(tmp_path / "access.jsonl").verify()
    assert datetime.fromisoformat(json.loads(lines[1])["at"]).tzinfo == UTC
