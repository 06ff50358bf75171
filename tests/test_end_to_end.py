"""End to end through the real entry points: generated JSON Lines in, per-citizen export out.

Every citizen's exported values are checked against the day-by-day oracle
computed straight from the generated records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from datetime import date
from pathlib import Path

from casehistory.domain.cpr import age_on, birth_date
from casehistory.population import generator
from casehistory.schemas.contract import ContractEvent, validate
from tests import oracle

AS_OF = date(2026, 11, 1)
EXPORT_FIELDS = [
    "citizen_key",
    "cpr",
    "on_benefit",
    "all_benefits_spell_start",
    "all_benefits_spell_days",
    "cash_system_spell_start",
    "cash_system_spell_days",
    "benefit_days_in_spell",
    "breaks_bridged",
    "naive_days",
    "share_last_10y_cash_system",
    "age",
    "target_group",
]


def casehistory(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "casehistory.entrypoints.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_generated_jsonl_to_per_citizen_export(store_env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "population.jsonl"
    generator.write_jsonl(generator.generate_population(150, seed=5, until=AS_OF), source)
    casehistory(store_env, "ingest", str(source))
    out = casehistory(
        {**store_env, "CASEHISTORY_USER": "dpo-1", "CASEHISTORY_ROLE": "dpo"},
        "durations",
        "--as-of",
        AS_OF.isoformat(),
        "--per-citizen",
        "--format",
        "jsonl",
        "--reveal-cpr",
        "--purpose",
        "test of the export",
    )
    rows = [json.loads(line) for line in out.splitlines()]

    facts_by_cpr = defaultdict(list)
    for line in source.read_text().splitlines():
        checked = validate(json.loads(line))
        if isinstance(checked, ContractEvent):
            facts_by_cpr[checked.cpr].append(checked.to_fact())
    assert {r["cpr"] for r in rows} == set(facts_by_cpr)
    assert all(list(r) == EXPORT_FIELDS for r in rows)

    for row in rows:
        expected = oracle.measures(facts_by_cpr[row["cpr"]], AS_OF)
        start = expected["all_benefits_spell_start"]
        cash_start = expected["cash_system_spell_start"]
        assert row["on_benefit"] == expected["on_benefit"]
        assert row["all_benefits_spell_start"] == (start.isoformat() if start else None)
        assert row["all_benefits_spell_days"] == expected["all_benefits_spell_days"]
        assert row["cash_system_spell_start"] == (cash_start.isoformat() if cash_start else None)
        assert row["cash_system_spell_days"] == ((AS_OF - cash_start).days if cash_start else None)
        assert row["benefit_days_in_spell"] == expected["benefit_days_in_spell"]
        assert row["breaks_bridged"] == expected["breaks_bridged"]
        assert row["naive_days"] == expected["naive_days"]
        share = expected["share_last_10y_cash_system"]
        assert abs(row["share_last_10y_cash_system"] - share) < 1e-6
        assert row["age"] == age_on(birth_date(row["cpr"]), AS_OF)
    assert any(r["on_benefit"] for r in rows) and any(r["breaks_bridged"] for r in rows)


def test_export_without_reveal_has_no_cpr(store_env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "population.jsonl"
    generator.write_jsonl(generator.generate_population(30, seed=6, until=AS_OF), source)
    casehistory(store_env, "ingest", str(source))
    out = casehistory(
        store_env, "durations", "--as-of", AS_OF.isoformat(), "--per-citizen", "--format", "jsonl",
        "--purpose", "test of the export"
    )
    cprs = {
        json.loads(line)["cpr"]
        for line in source.read_text().splitlines()
        if isinstance(json.loads(line).get("cpr"), str)
    }
    assert out and not any(cpr in out for cpr in cprs)
    assert "cpr" not in json.loads(out.splitlines()[0])


def test_demo_on_the_store_setting(store_env: dict[str, str], tmp_path: Path) -> None:
    """`casehistory demo --store ...` on SQLite and on a real PostgreSQL server, twice."""
    store = store_env.get("CASEHISTORY_STORE", "sqlite")
    env = {"CASEHISTORY_DATA_DIR": str(tmp_path / "data")}
    for _ in range(2):  # a second run starts from an empty store again
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "casehistory.entrypoints.cli",
                "demo",
                "--citizens",
                "120",
                "--store",
                store,
            ],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Cohorts: spell over N years" in done.stderr
        assert "Fællesborgere by target group" in done.stderr
        assert "received                 │   " in done.stderr
    stored = done.stderr.split("stored", 1)[1].split("│")[1].strip()
    generated = done.stderr.split("generated ", 1)[1].split(" events")[0]
    assert 0 < int(stored.replace(",", "")) < int(generated.replace(",", ""))


def test_an_as_of_date_outside_the_contract_range_is_refused(
    store_env: dict[str, str],
) -> None:
    for day in ("9999-12-31", "0001-01-01", "2015-03-01T00:00:00Z"):
        done = subprocess.run(
            [sys.executable, "-m", "casehistory.entrypoints.cli", "durations", "--as-of", day],
            env={**os.environ, **store_env}, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 2 and "--as-of" in done.stderr, done.stderr[-500:]
