"""Stores written before the namespace move (event topics `domain.citizen:...`) still load."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

from casehistory.bootstrap import Engine, build
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.entrypoints.cli.main import ingest_files
from casehistory.population import generator
from casehistory.projections.queries import durations_records
from casehistory.settings import Settings

AS_OF = date(2026, 11, 1)


def _rename_topics(engine: Engine, old: str, new: str) -> int:
    """Rewrite every stored event's topic as a store from before the move holds it."""
    table = engine.app.recorder.events_table_name
    sql = f"UPDATE {table} SET topic = replace(topic, %s, %s) WHERE topic LIKE %s"
    if engine.settings.uses_postgres:
        import psycopg

        with psycopg.connect(engine.settings.store, autocommit=True) as db:
            return int(db.execute(sql, [new, old, new + "%"]).rowcount)
    with sqlite3.connect(engine.settings.data_dir / "events.db") as db:
        return int(db.execute(sql.replace("%s", "?"), [new, old, new + "%"]).rowcount)


def test_a_store_written_before_the_move_loads_and_projects_the_same(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    population = tmp_path / "population.jsonl"
    generator.write_jsonl(generator.generate_population(40, 3, until=AS_OF), population)
    settings = Settings.load(store_env)
    engine = build(settings)
    try:
        ingest_files(engine, [population], DeadLetterList())
        engine.project()
        before = list(durations_records(engine.read_model(), AS_OF))
        keys = [r["citizen_key"] for r in before]
        facts = {k: len(engine.app.find(k).facts) for k in keys}
    finally:
        engine.close()
    engine = build(settings)
    try:
        assert _rename_topics(engine, "domain.citizen:", "casehistory.domain.citizen:") > 40
        assert {k: len(engine.app.find(k).facts) for k in keys} == facts
        engine.read_model().clear()
        engine.project()
        assert list(durations_records(engine.read_model(), AS_OF)) == before
    finally:
        engine.close()
