"""Analysts see counts under 5 as "<5" in every exported aggregate of the council and
coordination reports (issue #16 item 6); other roles see them whole.

One generated municipality is ingested; each report is asked by an auditor and by an
analyst, and the analyst's rows must be the auditor's with each count of 1 to 4
replaced by "<5" (and the shares of those rows left out).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from casehistory.services.access import Identity, Role, suppressed_rows
from tests.conftest import PSEUDONYM_KEY
from tests.test_coordination_view import AS_OF, population
from tests.test_end_to_end import casehistory

AUDITOR = {"CASEHISTORY_USER": "au-1", "CASEHISTORY_ROLE": "auditor"}
ANALYST = {"CASEHISTORY_USER": "an-3", "CASEHISTORY_ROLE": "analyst"}

REPORTS: list[tuple[list[str], str, str | None]] = [
    (["caseload", "--as-of", AS_OF.isoformat()], "citizens", None),
    (["exits", "--from", "2015-01-01", "--to", "2026-06-30", "--as-of", AS_OF.isoformat()],
     "exits", None),
    (["cohort", "--on", "2024-01-01", "--horizons", "6,12,18"], "citizens", "share"),
    (["flows", "--from", "2019-01-01", "--to", "2026-06-30"], "citizens", None),
]


def test_suppressed_rows_hide_small_counts_and_their_shares_from_analysts_only() -> None:
    rows = [{"n": n, "share": n / 10} for n in (0, 1, 4, 5, 10)]
    analyst = Identity("an", frozenset({Role.ANALYST}))
    auditor = Identity("au", frozenset({Role.AUDITOR}))
    assert list(suppressed_rows(rows, analyst, ["n"], ["share"])) == [
        {"n": 0, "share": 0.0}, {"n": "<5", "share": None}, {"n": "<5", "share": None},
        {"n": 5, "share": 0.5}, {"n": 10, "share": 1.0}]
    assert list(suppressed_rows(rows, auditor, ["n"], ["share"])) == rows
    assert list(suppressed_rows(rows, None, ["n"], ["share"])) == rows


def _as_an_analyst_sees(row: dict[str, Any], count: str, share: str | None) -> dict[str, Any]:
    if 0 < row[count] < 5:
        return {**row, count: "<5", **({share: None} if share else {})}
    return row


@pytest.fixture(scope="module")
def municipality(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp_path = tmp_path_factory.mktemp("suppression")
    env = {"CASEHISTORY_DATA_DIR": str(tmp_path), "CASEHISTORY_PSEUDONYM_KEY": PSEUDONYM_KEY}
    casehistory(env, "ingest", str(population(tmp_path, 120, seed=3)))
    return env


@pytest.mark.parametrize(("args", "count", "share"), REPORTS, ids=lambda v: str(v)[:12])
def test_exported_council_aggregates_show_small_counts_as_under_5_to_analysts(
    municipality: dict[str, str], args: list[str], count: str, share: str | None
) -> None:
    def rows(role: dict[str, str]) -> list[dict[str, Any]]:
        out = casehistory({**municipality, **role}, *args, "--format", "jsonl")
        return [json.loads(line) for line in out.splitlines()]

    whole, shown = rows(AUDITOR), rows(ANALYST)
    assert any(0 < r[count] < 5 for r in whole), "the case needs small counts to hide"
    assert shown == [_as_an_analyst_sees(r, count, share) for r in whole]


def test_council_and_coordination_tables_show_small_counts_as_under_5_to_analysts(
    municipality: dict[str, str],
) -> None:
    commands = [["caseload", "--as-of", AS_OF.isoformat(), "--format", "table"],
                ["exits", "--from", "2015-01-01", "--to", "2026-06-30"],
                ["cadence", "--as-of", AS_OF.isoformat(), "--format", "jsonl"],  # summary only
                ["coordination", "--as-of", AS_OF.isoformat(), "--year", "2025"],
                ["flows", "--from", "2019-01-01", "--to", "2026-06-30"]]

    def cells(role: dict[str, str], command: list[str]) -> set[str]:
        out = casehistory({**municipality, **role}, *command)
        tables = [line for line in out.splitlines() if not line.startswith("{")]
        return {cell.strip() for line in tables for cell in line.split("│")[2:]}  # not labels

    for command in commands:
        whole, shown = cells(AUDITOR, command), cells(ANALYST, command)
        assert whole & {"1", "2", "3", "4"}, command
        assert "<5" in shown and not shown & {"1", "2", "3", "4"}, command
