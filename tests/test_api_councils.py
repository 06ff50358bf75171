"""The councils' reports in the read API, against a real server, equal to the CLI's exports."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections import Counter
from typing import Any

from openpyxl import load_workbook

from tests.fixtures_serve import AS_OF, Served

FIRST, LAST = "2019-01-01", "2026-06-30"
COHORT_DATE = "2024-11-01"


CASEWORKER = "caseworker"
"""Rows per citizen: the caseworker's, each read with a purpose."""
ROWS = "&purpose=opf%C3%B8lgning"
AUDITOR = "auditor"
"""Aggregates unsuppressed: the CLI and the API asked by an auditor must agree to the unit."""


def cli(served: Served, *args: str, role: str = AUDITOR) -> list[dict[str, Any]]:
    """The CLI's own JSON Lines export of a report (the numbers the API must agree with)."""
    out = subprocess.run(
        [sys.executable, "-m", "casehistory.entrypoints.cli", *args, "--format", "jsonl"],
        env={**os.environ, **served.env, "CASEHISTORY_USER": role, "CASEHISTORY_ROLE": role},
        capture_output=True, check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


def as_records(table: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(table["columns"], row, strict=True)) for row in table["rows"]]


def test_exits_equal_the_cli_and_their_pivots_add_up(served: Served) -> None:
    report = served.json(f"/api/v1/exits?from={FIRST}&to={LAST}&as_of={AS_OF}",
                         AUDITOR)["tables"]
    rows = as_records(report["exits"])
    assert rows == cli(served, "exits", "--from", FIRST, "--to", LAST, "--as-of", str(AS_OF))
    assert sum(r["exits"] for r in rows) > 20  # a population worth comparing
    for column in ("destination", "target_group"):
        pivot = as_records(report[f"by_{column}"])
        totals = Counter()
        for r in rows:
            totals[r["half_year"], r[column]] += r["exits"]
        assert {(p["half_year"], name): n for p in pivot for name, n in p.items()
                if name != "half_year" and n} == +totals
    earlier = served.json(f"/api/v1/exits?from={FIRST}&to={LAST}&as_of=2020-01-01",
                          AUDITOR)["tables"]
    assert sum(r[3] for r in earlier["exits"]["rows"]) < sum(r["exits"] for r in rows)


def test_exits_as_danish_csv(served: Served) -> None:
    status, headers, body = served.request(
        f"/api/v1/exits?from={FIRST}&to={LAST}&as_of={AS_OF}&format=csv&table=by_destination",
        AUDITOR)
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert body.startswith("\ufeff".encode())
    lines = body.decode("utf-8-sig").splitlines()
    table = served.json(f"/api/v1/exits?from={FIRST}&to={LAST}&as_of={AS_OF}",
                        AUDITOR)["tables"]
    assert lines[0].split(";") == table["by_destination"]["columns"]
    assert [line.split(";") for line in lines[1:]] == [
        [str(v) for v in row] for row in table["by_destination"]["rows"]]


def test_cohort_equals_the_cli(served: Served) -> None:
    report = served.json(f"/api/v1/cohort?on={COHORT_DATE}&min_years=1&horizons=6,12", AUDITOR)
    expected = cli(served, "cohort", "--on", COHORT_DATE, "--min-years", "1",
                   "--horizons", "6,12")
    outcomes = as_records(report["tables"]["outcomes"])
    assert outcomes == expected
    members = report["citizens"]
    assert members > 10
    for months in (6, 12):
        assert sum(r["citizens"] for r in outcomes if r["horizon_months"] == months) == members
    everyone = served.json(f"/api/v1/cohort?on={COHORT_DATE}", AUDITOR)["citizens"]
    assert everyone > members
    status, _, _ = served.request(f"/api/v1/cohort?on={COHORT_DATE}&horizons=0")
    assert status == 422


def test_caseload_equals_the_cli_as_xlsx_too(served: Served) -> None:
    report = served.json(f"/api/v1/caseload?as_of={AS_OF}", AUDITOR)
    caseloads = as_records(report["tables"]["caseloads"])
    assert caseloads == cli(served, "caseload", "--as-of", str(AS_OF))
    assert report["citizens"] == sum(r["citizens"] for r in caseloads) > 0
    bands = dict(report["tables"]["distribution"]["rows"])
    assert sum(bands.values()) == len(caseloads)
    assert bands == {band: sum(r["band"] == band for r in caseloads) for band in bands}
    status, _, body = served.request(f"/api/v1/caseload?as_of={AS_OF}&format=xlsx", AUDITOR)
    assert status == 200
    book = load_workbook(io.BytesIO(body))
    assert [list(r) for r in book["caseloads"].iter_rows(values_only=True)][1:] == \
        report["tables"]["caseloads"]["rows"]


def test_cadence_and_continuity_equal_the_cli(served: Served) -> None:
    clocks = cli(served, "cadence", "--as-of", str(AS_OF), "--per-citizen", "--all",
                 "--purpose", "besøg", role=CASEWORKER)
    summary = served.json(f"/api/v1/cadence?as_of={AS_OF}", AUDITOR)["tables"]["by_status"]
    statuses = summary["columns"][1:]
    total = dict(zip(statuses, summary["rows"][-1][1:], strict=True))
    assert total == {s: sum(c["status"] == s for c in clocks) for s in statuses}
    assert sum(total.values()) > 0
    attention = served.json(f"/api/v1/cadence/citizens?as_of={AS_OF}{ROWS}", CASEWORKER)["rows"]
    expected = cli(served, "cadence", "--as-of", str(AS_OF), "--per-citizen", "--purpose", "besøg",
                   role=CASEWORKER)
    assert [{k: r[k] for k in expected[0]} for r in attention] == expected

    per_citizen = served.json(f"/api/v1/continuity/citizens?as_of={AS_OF}{ROWS}",
                              CASEWORKER)["rows"]
    assert per_citizen == cli(served, "continuity", "--as-of", str(AS_OF), "--purpose", "besøg",
                              role=CASEWORKER)
    by_count = dict(served.json(f"/api/v1/continuity?as_of={AS_OF}", AUDITOR)["tables"]
                    ["by_caseworkers"]["rows"])
    assert by_count == Counter(r["caseworkers"] for r in per_citizen)


def test_lists_equal_the_cli(served: Served) -> None:
    long = served.json(f"/api/v1/lists/long-durations?as_of={AS_OF}&years=5{ROWS}",
                       CASEWORKER)["rows"]
    assert long == cli(served, "lists", "long-durations", "--as-of", str(AS_OF), "--years", "5",
                       "--purpose", "besøg", role=CASEWORKER)
    assert long


def test_the_councils_reports_are_role_checked(served: Served) -> None:
    for path in (f"/api/v1/exits?from={FIRST}&to={LAST}&as_of={AS_OF}",
                 f"/api/v1/caseload?as_of={AS_OF}", f"/api/v1/cadence?as_of={AS_OF}"):
        status, _, _ = served.request(path, role="operator")
        assert status == 403
    for path in ("continuity/citizens", "cadence/citizens", "lists/long-durations",
                 "lists/clarification-pool", "coordination/citizens"):
        status, _, _ = served.request(f"/api/v1/{path}?as_of={AS_OF}{ROWS}", role="analyst")
        assert status == 403  # aggregates only
    refused = [(r["who"], r["path"]) for r in served.access_log() if r["kind"] == "refused"]
    assert ("operator", "/api/v1/caseload") in refused
    assert ("analyst", "/api/v1/continuity/citizens") in refused
    assert ("analyst", "/api/v1/lists/clarification-pool") in refused


def test_analysts_see_small_counts_as_under_5(served: Served) -> None:
    paths = [f"/api/v1/exits?from={FIRST}&to={LAST}&as_of={AS_OF}",
             f"/api/v1/cohort?on={COHORT_DATE}&min_years=1", f"/api/v1/caseload?as_of={AS_OF}",
             f"/api/v1/cadence?as_of={AS_OF}", f"/api/v1/headline?as_of={AS_OF}",
             f"/api/v1/coordination?as_of={AS_OF}"]
    hidden = 0
    for path in paths:
        whole, shown = served.json(path, AUDITOR)["tables"], served.json(path)["tables"]
        for name, table in whole.items():
            for row, seen in zip(table["rows"], shown[name]["rows"], strict=True):
                for column, value, cell in zip(table["columns"], row, seen, strict=True):
                    small = (isinstance(value, int) and not isinstance(value, bool)
                             and 0 < value < 5 and column not in {"horizon_months", "support_step"}
                             and column != table["columns"][0])
                    assert cell == ("<5" if small else None if isinstance(value, float) and
                                    "<5" in seen else value), (path, name, column)
                    hidden += small
    assert hidden > 5  # the population has small cells to hide


def test_cohorts_by_municipality_equal_the_cli(served: Served) -> None:
    per = served.json(f"/api/v1/cohort?on={COHORT_DATE}&by_municipality=true",
                      AUDITOR)["tables"]["by_municipality"]
    rows = as_records(per)
    assert rows == cli(served, "cohort", "--on", COHORT_DATE, "--by-municipality")
    first = rows[0]["municipality"]
    one = served.json(f"/api/v1/cohort?on={COHORT_DATE}&municipality={first}", AUDITOR)
    assert one["citizens"] == rows[0]["members"] > 0
    assert as_records(one["tables"]["outcomes"]) == [
        {k: v for k, v in r.items() if k not in ("municipality", "members")}
        for r in rows if r["municipality"] == first]
