"""The dashboard's monthly trend by one SQL query equals the headline on each month's first day."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from casehistory.bootstrap import Engine
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.domain.durations import COHORT_YEARS
from casehistory.entrypoints.cli.common import ingest_files
from casehistory.population import generator
from casehistory.services import reports as services
from casehistory.services.coordination_report import months
from casehistory.services.report import headline_from

UNTIL = date(2026, 11, 1)


def test_the_monthly_trend_equals_the_headline_month_by_month(
    engine: Engine, tmp_path: Path
) -> None:
    population = tmp_path / "population.jsonl"
    generator.write_jsonl(generator.generate_population(150, 5, until=UNTIL), population)
    ingest_files(engine, [population], DeadLetterList())
    engine.project()
    first, last = date(1990, 1, 1), UNTIL
    points = services.monthly_trend(engine, first, last)
    assert [p.day for p in points] == list(months(first, last))
    store = engine.read_model()
    for point in points:
        h = headline_from(store, point.day)
        assert (point.on_benefit, point.true_over, point.naive_over) == (
            h.on_benefit,
            {n: h.true_cohorts[n] for n in COHORT_YEARS},
            {n: h.naive_cohorts[n] for n in COHORT_YEARS},
        ), point.day
    assert points[0].on_benefit == 0  # before anyone: the month is there, with zeros
    assert max(p.true_over[10] for p in points) > 0
    assert any(p.true_over[2] != p.naive_over[2] for p in points)
