"""`casehistory caseload`, `continuity`, `cadence`, `exits` and `cohort` end to end from
JSON Lines on both backends, checked against `domain.caseload`, `domain.cadence` and
`domain.exits` computed independently from the generated records."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path

from casehistory.bootstrap import build
from casehistory.domain.cadence import cadence_on
from casehistory.domain.caseload import caseloads, caseworkers_in_last_months
from casehistory.domain.coordination import half_year
from casehistory.domain.cpr import birth_date
from casehistory.domain.exits import CohortDefinition, exits_on, follow_up, in_cohort
from casehistory.entrypoints.cli.councils import CADENCE_FIELDS
from casehistory.projections.rows import TABLES, staff_pseudonym
from casehistory.services.council_report import band
from casehistory.settings import Settings
from tests.test_coordination_view import AS_OF, DPO, population, timelines_by_cpr
from tests.test_end_to_end import casehistory


def staff_ids(source: Path) -> set[str]:
    """Every caseworker's staff id in the generated records."""
    return {r["caseworker"] for r in map(json.loads, source.read_text().splitlines())
            if r.get("caseworker")}


def test_caseload_and_cadence_exports_give_the_rules_values(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    source = population(tmp_path, 100, seed=11)
    casehistory(store_env, "ingest", str(source))
    timelines = timelines_by_cpr(source)
    settings = Settings.load(store_env)

    def pseudonym(staff_id: str) -> str:
        return staff_pseudonym(staff_id, settings.staff_key)

    for day in (date(2022, 6, 30), AS_OF):
        out = casehistory(store_env, "caseload", "--as-of", day.isoformat(), "--format", "jsonl")
        found = {(r["caseworker"], r["unit"]): (r["citizens"], r["band"])
                 for r in map(json.loads, out.splitlines())}
        expected = caseloads(timelines.values(), day)
        assert found == {(pseudonym(w), u): (n, band(n)) for (w, u), n in expected.items()}

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

    out = casehistory(store_env, "continuity", "--as-of", AS_OF.isoformat(), "--format", "jsonl",
                      "--purpose", "test of the export")
    workers = {r["citizen_key"]: r["caseworker_ids"] for r in map(json.loads, out.splitlines())}
    expected_workers = [sorted(map(pseudonym, caseworkers_in_last_months(t, AS_OF)))
                        for t in timelines.values()]
    assert sorted(workers.values()) == sorted(w for w in expected_workers if w) and workers

    summary = casehistory(store_env, "cadence", "--as-of", AS_OF.isoformat())
    assert "Contact cadence" in summary and not any(cpr in summary for cpr in timelines)

    first, last = date(2015, 1, 1), date(2026, 6, 30)
    out = casehistory(store_env, "exits", "--from", first.isoformat(), "--to", last.isoformat(),
                      "--as-of", AS_OF.isoformat(), "--format", "jsonl")
    found_exits = Counter({(r["half_year"], r["destination"], r["target_group"]): r["exits"]
                           for r in map(json.loads, out.splitlines())})
    expected_exits: Counter[tuple[str, str, str]] = Counter(
        (half_year(e.exit_date), e.destination, e.target_group or "(none)")
        for t in timelines.values() for e in exits_on(t, AS_OF) if first <= e.exit_date <= last)
    assert found_exits == expected_exits and sum(expected_exits.values()) > 0

    cohort_date = date(2024, 1, 1)
    out = casehistory(store_env, "cohort", "--on", cohort_date.isoformat(), "--min-years", "1",
                      "--min-age", "25", "--horizons", "6,12", "--format", "jsonl")
    found_outcomes = {(r["horizon_months"], r["outcome"], r["destination"]): r["citizens"]
                      for r in map(json.loads, out.splitlines())}
    definition = CohortDefinition(min_age=25, min_years=1)
    expected_outcomes: Counter[tuple[int, str, str | None]] = Counter(
        (f.horizon_months, f.outcome, f.destination)
        for cpr, t in timelines.items() if in_cohort(t, birth_date(cpr), cohort_date, definition)
        for f in follow_up(t, cohort_date, (6, 12)))
    assert found_outcomes == dict(expected_outcomes) and expected_outcomes

    paid_by = {cpr: {p.municipality for p in t.periods_on(cohort_date) if p.covers(cohort_date)}
               for cpr, t in timelines.items()}
    out = casehistory(store_env, "cohort", "--on", cohort_date.isoformat(), "--min-years", "1",
                      "--horizons", "6,12", "--by-municipality", "--format", "jsonl")
    by_municipality = {(r["municipality"], r["members"], r["horizon_months"], r["outcome"],
                        r["destination"]): r["citizens"] for r in map(json.loads, out.splitlines())}
    expected_by: Counter[tuple[str, int, int, str, str | None]] = Counter()
    for municipality in {m for ms in paid_by.values() for m in ms}:
        definition = CohortDefinition(min_years=1, municipality=municipality)
        members = [cpr for cpr, t in timelines.items()
                   if in_cohort(t, birth_date(cpr), cohort_date, definition)]
        expected_by.update((municipality, len(members), f.horizon_months, f.outcome,
                            f.destination)
                           for cpr in members for f in follow_up(timelines[cpr], cohort_date,
                                                                 (6, 12)))
    assert by_municipality == dict(expected_by) and len({k[0] for k in expected_by}) > 1
    municipality = max({k[0] for k in expected_by}, key=lambda m: sum(
        n for k, n in expected_by.items() if k[0] == m))
    out = casehistory(store_env, "cohort", "--on", cohort_date.isoformat(), "--min-years", "1",
                      "--horizons", "6,12", "--municipality", municipality, "--format", "jsonl")
    assert {(municipality, r["horizon_months"], r["outcome"], r["destination"]): r["citizens"]
            for r in map(json.loads, out.splitlines())} == {
        (k[0], *k[2:]): n for k, n in expected_by.items() if k[0] == municipality}

    tables = casehistory(store_env, "exits", "--from", first.isoformat(), "--to",
                         last.isoformat()) + casehistory(store_env, "cohort", "--on",
                                                         cohort_date.isoformat())
    assert "by destination" in tables and "Cohort of" in tables


def test_read_model_holds_caseworkers_by_keyed_pseudonym_only(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    source = population(tmp_path, 60, seed=5)
    casehistory(store_env, "ingest", str(source))
    staff = staff_ids(source)
    engine = build(Settings.load(store_env))
    try:
        with engine.read_model().read() as cursor:
            stored = []
            for table in TABLES:
                cursor.execute(f"SELECT * FROM {table}")
                stored.append(str(cursor.fetchall()))
            cursor.execute("SELECT DISTINCT caseworker FROM caseworker_assignment")
            workers = {worker for (worker,) in cursor.fetchall()}
        key = engine.settings.staff_key
    finally:
        engine.close()
    dump = "\n".join(stored)
    assert staff and not [staff_id for staff_id in staff if staff_id in dump]
    assert workers and workers <= {staff_pseudonym(staff_id, key) for staff_id in staff}
    other_key = bytes(32)
    assert not workers & {staff_pseudonym(staff_id, other_key) for staff_id in staff}
