"""The benchmark's batch peer: DuckDB's gaps-and-islands query agrees with the engine.

`bench/spells.sql` is written the way an analyst would, independently of the
domain code, so agreeing citizen by citizen on a generated population (moves,
conversions, data breaks, retractions, redeliveries, invalid records) is a
differential test of the spell rules, and keeps the benchmark's "identical"
claim from rotting between benchmark runs.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from bench import peer
from casehistory.bootstrap import build
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.consumers.files import Incoming
from casehistory.population.generator import generate_population
from casehistory.settings import Settings
from tests.conftest import PSEUDONYM_KEY

AS_OF_DATES = (date(2026, 11, 1), date(2015, 6, 30), date(2008, 2, 29))


def test_duckdb_spells_equal_the_engine_citizen_by_citizen(tmp_path: Path) -> None:
    engine = build(
        Settings.load(
            {"CASEHISTORY_DATA_DIR": str(tmp_path), "CASEHISTORY_PSEUDONYM_KEY": PSEUDONYM_KEY}
        )
    )
    try:
        records = list(generate_population(400, seed=8))
        batch = [
            Incoming(r, json.dumps(r).encode(), {"file": "population", "line": n})
            for n, r in enumerate(records)
        ]
        report = engine.ingest_service(DeadLetterList()).ingest(batch)
        assert report.stored > 3000 and report.duplicate > 0 and report.rejected > 0
        engine.project()
        connection, _ = peer.load_facts(peer.fact_rows(engine), tmp_path)
        assert peer.retraction_depth(connection) < 4  # what spells.sql resolves
        for as_of in AS_OF_DATES:
            mine = peer.engine_spells(engine, as_of)
            assert peer.compare(mine, peer.duck_spells(connection, as_of), as_of) > 50
        key, (start, days) = next(iter(mine.items()))
        with pytest.raises(peer.Mismatch):
            peer.compare(
                {**mine, key: (start, days + 1)}, peer.duck_spells(connection, as_of), as_of
            )
        connection.close()
    finally:
        engine.close()
