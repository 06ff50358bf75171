"""`casehistory lists` end to end: the exported lists equal the prioritisation rules computed
independently from the generated records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from casehistory.domain.cpr import birth_date, citizen_key
from casehistory.domain.durations import durations_on
from casehistory.domain.priorities import in_clarification_pool, long_duration, longest_first
from tests.conftest import PSEUDONYM_KEY
from tests.test_coordination_view import DPO, population, timelines_by_cpr
from tests.test_end_to_end import casehistory

AS_OF = date(2026, 11, 1)


def test_lists_equal_the_rules(store_env: dict[str, str], tmp_path: Path) -> None:
    source = population(tmp_path, 300, seed=17)
    casehistory(store_env, "ingest", str(source))
    timelines = timelines_by_cpr(source)
    key = bytes.fromhex(PSEUDONYM_KEY)
    for years, cash in ((2, False), (10, True)):
        args = ["lists", "long-durations", "--as-of", AS_OF.isoformat(), "--years", str(years),
                "--format", "jsonl", "--purpose", "test", *(["--cash-system"] if cash else [])]
        got = [json.loads(line) for line in casehistory(store_env, *args).splitlines()]
        expected = {
            citizen_key(cpr, key): entry
            for cpr, timeline in timelines.items()
            if (entry := long_duration(timeline, AS_OF, years, cash_system=cash))
        }
        assert expected, "the population has no long spells to list"
        assert [r["citizen_key"] for r in got] == longest_first(expected)
        assert all(r["spell_days"] == expected[r["citizen_key"]].spell_days for r in got)
    out = casehistory(store_env, "lists", "clarification-pool", "--as-of", AS_OF.isoformat(),
                      "--format", "jsonl", "--purpose", "test")
    pool = [json.loads(line)["citizen_key"] for line in out.splitlines()]
    assert pool == sorted(
        citizen_key(cpr, key) for cpr, timeline in timelines.items()
        if in_clarification_pool(durations_on(timeline, AS_OF, birth_date(cpr)))
    )

    args = ["lists", "long-durations", "--as-of", AS_OF.isoformat(), "--years", "2",
            "--format", "jsonl", "--reveal-cpr", "--purpose", "prioritisation follow-up"]
    revealed = [json.loads(line) for line in casehistory({**store_env, **DPO}, *args).splitlines()]
    assert revealed and all(list(r)[:2] == ["citizen_key", "cpr"] for r in revealed)
    assert all(r["citizen_key"] == citizen_key(r["cpr"], key)
               and long_duration(timelines[r["cpr"]], AS_OF, 2) is not None for r in revealed)
    out = casehistory({**store_env, **DPO, "COLUMNS": "250"}, "lookups", "--citizen-key",
                      revealed[0]["citizen_key"])
    assert "CPR in lists export" in out
    pool_cprs = [json.loads(line)["cpr"] for line in casehistory(
        {**store_env, **DPO}, "lists", "clarification-pool", "--as-of", AS_OF.isoformat(),
        "--format", "jsonl", "--reveal-cpr", "--purpose", "pool").splitlines()]
    assert sorted(citizen_key(cpr, key) for cpr in pool_cprs) == pool
    analyst = {"CASEHISTORY_USER": "an-3", "CASEHISTORY_ROLE": "analyst"}
    refused = subprocess.run([sys.executable, "-m", "casehistory.entrypoints.cli", *args],
                             env={**os.environ, **store_env, **analyst}, capture_output=True,
                             text=True, timeout=300)
    assert refused.returncode != 0 and not refused.stdout
