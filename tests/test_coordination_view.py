"""The coordination read model on both backends: live, rebuildable, and its exports checked
against the coordination rules computed independently from the generated records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

from casehistory.bootstrap import Engine
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.domain.coordination import (
    INFLOW_BENEFITS,
    awaiting_flexjob,
    coordination_on,
    inflows,
)
from casehistory.domain.cpr import birth_date
from casehistory.domain.facts import Fact
from casehistory.domain.timeline import Timeline, build_timeline
from casehistory.entrypoints.cli.common import ingest_files
from casehistory.entrypoints.cli.coordination import COORDINATION_FIELDS
from casehistory.population import generator
from casehistory.projections.queries import coordination_of
from casehistory.schemas.contract import ContractEvent, validate
from tests.factories import record, started
from tests.test_coordination import began, ended
from tests.test_end_to_end import casehistory
from tests.test_ingest import CPR, incoming

AS_OF = date(2026, 11, 1)


def timelines_by_cpr(source: Path) -> dict[str, Timeline]:
    """Each citizen's timeline straight from the valid records, in arrival order."""
    facts: dict[str, list[Fact]] = defaultdict(list)
    for line in source.read_text().splitlines():
        checked = validate(json.loads(line))
        if isinstance(checked, ContractEvent):
            facts[checked.cpr].append(checked.to_fact())
    return {cpr: build_timeline(citizen_facts) for cpr, citizen_facts in facts.items()}


def population(tmp_path: Path, citizens: int, seed: int) -> Path:
    source = tmp_path / "population.jsonl"
    generator.write_jsonl(generator.generate_population(citizens, seed, until=AS_OF), source)
    return source


def test_row_follows_the_store_and_answers_for_any_date(engine: Engine) -> None:
    benefit = started(date(2020, 1, 1), target_group="aktivitetsparat_voksen")
    support = began(date(2021, 3, 1), "sel_85_support")
    service = engine.ingest_service(DeadLetterList())
    service.ingest(incoming(record(benefit), record(support)))
    engine.project()
    key = engine.vault.citizen_key(CPR)
    store = engine.read_model()
    row = store.row("coordination_citizen", key)
    assert row is not None and row["is_faellesborger"] and row["support_step"] == 2
    assert row["target_group"] == "aktivitetsparat_voksen"
    assert json.loads(row["interventions"]) == ["sel_85_support"]
    assert json.loads(row["flags"]) == {
        "coordinating_caseworker_due": sorted([benefit.event_id, support.event_id])
    }
    before = coordination_of(store, date(2021, 2, 28), key)
    assert before is not None and not before["is_faellesborger"]

    service.ingest(incoming(record(ended(date(2021, 9, 1), "sel_85_support"))))
    assert engine.project() == 1  # the one new fact
    assert store.position() == engine.app.recorder.max_notification_id()
    row = store.row("coordination_citizen", key)
    assert row is not None and not row["is_faellesborger"] and row["support_step"] == 0
    assert json.loads(row["flags"]) == {} and json.loads(row["interventions"]) == []
    during = coordination_of(store, date(2021, 8, 31), key)
    assert during is not None and during["is_faellesborger"]
    assert during["flags"] == ["coordinating_caseworker_due"]


def test_rows_after_incremental_ingest_equal_a_rebuild(engine: Engine, tmp_path: Path) -> None:
    lines = population(tmp_path, 120, seed=3).read_text().splitlines(keepends=True)
    halves = [tmp_path / "first.jsonl", tmp_path / "second.jsonl"]
    halves[0].write_text("".join(lines[: len(lines) // 2]))
    halves[1].write_text("".join(lines[len(lines) // 2 :]))
    for half in halves:
        ingest_files(engine, [half], DeadLetterList())
        engine.project()
    store = engine.read_model()
    live = store.checksum()
    assert store.count("coordination_citizen") == 120
    store.clear()
    assert store.count("coordination_citizen") == 0
    engine.project()
    assert store.checksum() == live


DPO = {"CASEHISTORY_USER": "dpo-1", "CASEHISTORY_ROLE": "dpo"}  # CPR exports are the DPO's


def test_per_citizen_export_gives_the_rules_values(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    source = population(tmp_path, 150, seed=5)
    casehistory(store_env, "ingest", str(source))
    expected = timelines_by_cpr(source)
    seen: list[dict[str, Any]] = []
    for day in (date(2019, 6, 30), AS_OF):
        out = casehistory({**store_env, **DPO}, "coordination", "--as-of", day.isoformat(),
                          "--per-citizen", "--format", "jsonl", "--reveal-cpr",
                          "--purpose", "test of the export")
        rows = [json.loads(line) for line in out.splitlines()]
        assert {r["cpr"] for r in rows} == set(expected)
        assert all(list(r) == COORDINATION_FIELDS for r in rows)
        for row in rows:
            c = coordination_on(expected[row["cpr"]], day, birth_date(row["cpr"]))
            assert row["is_faellesborger"] == c.is_faellesborger
            assert row["support_step"] == c.support_step
            assert row["interventions"] == list(c.interventions)
            assert row["flags"] == sorted(c.flags)
            assert (row["target_group"], row["age"]) == (c.target_group, c.age)
        seen += rows
    assert any(r["is_faellesborger"] for r in seen) and any(r["flags"] for r in seen)

    hidden = casehistory(store_env, "coordination", "--as-of", AS_OF.isoformat(),
                         "--per-citizen", "--format", "jsonl", "--purpose", "test")
    assert "cpr" not in json.loads(hidden.splitlines()[0])
    assert not any(cpr in hidden for cpr in expected)


def test_flows_export_gives_the_inflows_and_ledighedsydelse_by_month(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    source = population(tmp_path, 150, seed=8)
    casehistory(store_env, "ingest", str(source))
    first, last = date(2014, 3, 15), date(2026, 10, 31)
    out = casehistory(store_env, "flows", "--from", first.isoformat(), "--to", last.isoformat(),
                      "--format", "jsonl")
    found = {(r["flow"], r["period"], r["benefit"]): r["citizens"]
             for r in map(json.loads, out.splitlines())}

    half_years = [f"{year}{half}" for year in range(2014, 2027) for half in ("H1", "H2")]
    firsts = [date(year, month, 1) for year in range(2014, 2027) for month in range(1, 13)
              if first <= date(year, month, 1) <= last]
    expected = {("inflow", period, b): 0 for period in half_years for b in INFLOW_BENEFITS}
    expected.update({("awaiting_flexjob", d.isoformat(), "ledighedsydelse"): 0 for d in firsts})
    for timeline in timelines_by_cpr(source).values():
        entered = {(f"{i.start.year}H{1 if i.start.month < 7 else 2}", i.benefit)
                   for i in inflows(timeline) if first <= i.start <= last}
        for period, benefit in entered:
            expected["inflow", period, benefit] += 1
        for day in firsts:
            expected["awaiting_flexjob", day.isoformat(), "ledighedsydelse"] += awaiting_flexjob(
                timeline, day
            )
    assert found == expected
    assert any(n for (flow, _, _), n in found.items() if flow == "inflow")
    assert any(n for (flow, _, _), n in found.items() if flow == "awaiting_flexjob")


def test_demo_prints_the_coordination_section(tmp_path: Path) -> None:
    """The demo always runs on its own SQLite store, so one backend is enough here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEHISTORY_")}
    done = subprocess.run(
        [sys.executable, "-m", "casehistory.entrypoints.cli", "demo", "--citizens", "200"],
        cwd=tmp_path, env={**env, "COLUMNS": "200"},
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for title in ("Fællesborgere by target group on 2026-11-01",
                  "Support steps of fællesborgere on 2026-11-01",
                  "Coordination flags on 2026-11-01", "youth_unified_effort",
                  "Exits from the cash-benefit system by destination",
                  "Prioritisation lists on 2026-11-01", "all-benefits spell over 15 years",
                  "clarification pool", "Caseloads on 2026-11-01", "Contact cadence on 2026-11-01",
                  "overdue"):
        assert title in done.stderr
