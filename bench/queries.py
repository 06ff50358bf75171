"""Measure 5, queries: one citizen as of a date (long histories), and the cohort report.

Per citizen: the per-citizen durations SQL for one citizen as of a date. Raw limit:
the bare SQLite lookup of the citizen's current-state row by key. Cohort report:
`casehistory.services.report.headline_from` (SQL over the read model) for the whole
population; raw limit: a bare `SELECT *` of the durations_citizen table.
"""

from __future__ import annotations

import random
import sqlite3
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.common import percentile
from casehistory.projections.queries import durations_of
from casehistory.services.report import headline_from


def per_citizen(engine: Any, keys: list[str], rounds: int = 3) -> dict[str, Any]:
    rng = random.Random(1)
    store = engine.read_model()
    raw = sqlite3.connect(Path(engine.settings.data_dir) / "history.db")
    engine_s, raw_s, aggregate_s = [], [], []
    for _ in range(rounds):
        for key in keys:
            day = date(2000, 1, 1) + timedelta(days=rng.randrange(27 * 365))
            started = time.perf_counter()
            raw.execute("SELECT * FROM durations_citizen WHERE citizen_key = ?", (key,)).fetchone()
            raw_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            durations_of(store, day, key)
            engine_s.append(time.perf_counter() - started)
            # the `citizen` command's own path: the aggregate from the store (not cached)
            engine.app.forget_cached([key])
            started = time.perf_counter()
            citizen = engine.app.find(key)
            from casehistory.domain.durations import durations_on

            durations_on(citizen.timeline(), day, citizen.birth_date)
            aggregate_s.append(time.perf_counter() - started)
    raw.close()
    return {
        "queries": len(engine_s),
        "engine_p50_s": percentile(engine_s, 50),
        "engine_p99_s": percentile(engine_s, 99),
        "raw_p50_s": percentile(raw_s, 50),
        "raw_p99_s": percentile(raw_s, 99),
        "aggregate_p50_s": percentile(aggregate_s, 50),
        "aggregate_p99_s": percentile(aggregate_s, 99),
    }


def cohort_report(engine: Any, as_of: date, rounds: int) -> dict[str, Any]:
    raw = sqlite3.connect(Path(engine.settings.data_dir) / "history.db")
    engine_s, raw_s = [], []
    citizens = 0
    for _ in range(rounds):
        started = time.perf_counter()
        rows = raw.execute("SELECT * FROM durations_citizen").fetchall()
        raw_s.append(time.perf_counter() - started)
        del rows
        started = time.perf_counter()
        summary = headline_from(engine.read_model(), as_of)
        engine_s.append(time.perf_counter() - started)
        citizens = summary.citizens
    raw.close()
    return {
        "runs": rounds,
        "citizens": citizens,
        "engine_p50_s": percentile(engine_s, 50),
        "engine_p99_s": percentile(engine_s, 99),
        "raw_p50_s": percentile(raw_s, 50),
        "raw_p99_s": percentile(raw_s, 99),
    }
