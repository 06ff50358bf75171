"""The councils' reports end to end from Kafka: a generated municipality is published to a
real broker, consumed by `casehistory consume` as deployed, projected, and every report
(exits, cohort, caseload, continuity, cadence, prioritisation lists) is held equal to the
pure domain rules computed independently from the generated records."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from casehistory.bootstrap import build
from casehistory.domain.cadence import cadence_on
from casehistory.domain.caseload import caseloads, caseworkers_in_last_months
from casehistory.domain.coordination import half_year
from casehistory.domain.cpr import birth_date, citizen_key
from casehistory.domain.durations import durations_on
from casehistory.domain.exits import CohortDefinition, exits_on, follow_up, in_cohort
from casehistory.domain.priorities import in_clarification_pool, long_duration
from casehistory.projections.rows import staff_pseudonym
from casehistory.services import reports as services
from casehistory.services.council_report import CohortCriteria, band
from casehistory.settings import Settings
from tests.test_coordination_view import AS_OF, population, timelines_by_cpr
from tests.test_kafka_ingest import (
    PSEUDONYM_KEY,
    consumer_process,
    finish,
    kafka_env,
    publish_file,
)

pytestmark = pytest.mark.kafka


def test_council_reports_from_kafka_equal_the_rules(
    kafka_bootstrap: str, store_env: dict[str, str], tmp_path: Path
) -> None:
    source = population(tmp_path, 150, seed=21)
    env = kafka_env(kafka_bootstrap, store_env, f"councils-{uuid.uuid4().hex[:8]}")
    publish_file(env, source)
    finish([consumer_process(env, "--idle-exit", "6")])
    timelines = {citizen_key(cpr, bytes.fromhex(PSEUDONYM_KEY)): (t, birth_date(cpr))
                 for cpr, t in timelines_by_cpr(source).items()}
    engine = build(Settings.load(env))
    try:
        engine.project()

        def pseudonym(staff_id: str) -> str:
            return staff_pseudonym(staff_id, engine.settings.staff_key)

        report = services.caseload(engine, AS_OF)
        expected_load = caseloads((t for t, _ in timelines.values()), AS_OF)
        assert report.caseloads == {(pseudonym(w), u): n for (w, u), n in expected_load.items()}
        assert sum(report.distribution.values()) == len(expected_load) > 0
        assert all(report.distribution[band(n)] for n in expected_load.values())

        continuity = dict((r["citizen_key"], r["caseworker_ids"])
                          for r in services.continuity(engine, AS_OF))
        assert continuity == {
            key: sorted(map(pseudonym, workers)) for key, (t, _) in timelines.items()
            if (workers := caseworkers_in_last_months(t, AS_OF))}

        clocks = {r["citizen_key"]: (r["status"], r["deadline"])
                  for r in services.cadence_clocks(engine, AS_OF)}
        assert clocks == {key: (c.status, c.deadline.isoformat())
                          for key, (t, _) in timelines.items()
                          if (c := cadence_on(t, AS_OF)) is not None} != {}

        first, last = date(2015, 1, 1), date(2026, 6, 30)
        found_exits = Counter({(r["half_year"], r["destination"], r["target_group"]): r["exits"]
                               for r in services.exits(engine, first, last, AS_OF)})
        assert found_exits == Counter(
            (half_year(e.exit_date), e.destination, e.target_group or "(none)")
            for t, _ in timelines.values() for e in exits_on(t, AS_OF)
            if first <= e.exit_date <= last) != Counter()

        cohort_date = date(2024, 1, 1)
        members, rows = services.cohort(engine, cohort_date, CohortCriteria(min_years=1),
                                        (6, 12))
        definition = CohortDefinition(min_years=1)
        cohort = [t for t, born in timelines.values()
                  if in_cohort(t, born, cohort_date, definition)]
        assert members == len(cohort) > 0
        assert {(r["horizon_months"], r["outcome"], r["destination"]): r["citizens"]
                for r in rows} == dict(Counter((f.horizon_months, f.outcome, f.destination)
                                               for t in cohort
                                               for f in follow_up(t, cohort_date, (6, 12))))

        listed = [r["citizen_key"] for r in services.long_durations(engine, AS_OF, 2)]
        expected_long = {key for key, (t, _) in timelines.items()
                         if long_duration(t, AS_OF, 2) is not None}
        assert set(listed) == expected_long and len(listed) == len(expected_long) > 0
        pool = {r["citizen_key"] for r in services.clarification_pool(engine, AS_OF)}
        assert pool == {key for key, (t, born) in timelines.items()
                        if in_clarification_pool(durations_on(t, AS_OF, born))}
    finally:
        engine.close()
