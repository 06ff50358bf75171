"""`casehistory caseload` and `casehistory cadence` end to end from JSON Lines, on both
backends, checked against `domain.caseload` / `domain.cadence` computed independently
from the generated records."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path

from casehistory.council_report import band
from casehistory.councils_cli import CADENCE_FIELDS
from domain.cadence import cadence_on
from domain.caseload import caseloads
from tests.test_coordination_view import AS_OF, DPO, population, timelines_by_cpr
from tests.test_end_to_end import casehistory


def test_caseload_and_cadence_exports_give_the_rules_values(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    source = population(tmp_path, 100, seed=11)
    casehistory(store_env, "ingest", str(source))
    timelines = timelines_by_cpr(source)
    for day in (date(2022, 6, 30), AS_OF):
        out = casehistory(store_env, "caseload", "--as-of", day.isoformat(), "--format", "jsonl")
        found = {(r["caseworker"], r["unit"]): (r["citizens"], r["band"])
                 for r in map(json.loads, out.splitlines())}
        expected = caseloads(timelines.values(), day)
        assert found == {k: (n, band(n)) for k, n in expected.items()}

        out = casehistory({**store_env, **DPO}, "cadence", "--as-of", day.isoformat(),
                          "--per-citizen", "--all", "--format", "jsonl", "--reveal-cpr",
                          "--purpose", "test of the export")
        rows = [json.loads(line) for line in out.splitlines()]
        clocks = {cpr: cadence_on(t, day) for cpr, t in timelines.items()}
        assert {r["cpr"] for r in rows} == {cpr for cpr, c in clocks.items() if c is not None}
        for row in rows:
            c = clocks[row["cpr"]]
            assert c is not None and list(row) == CADENCE_FIELDS
            assert (row["status"], row["days_left"], row["deadline"], row["last_meeting"]) == (
                c.status, c.days_left, c.deadline.isoformat(),
                c.last_meeting and c.last_meeting.isoformat())
    assert expected and Counter(r["status"] for r in rows)["ok"] < len(rows)

    summary = casehistory(store_env, "cadence", "--as-of", AS_OF.isoformat())
    assert "Contact cadence" in summary and not any(cpr in summary for cpr in timelines)
