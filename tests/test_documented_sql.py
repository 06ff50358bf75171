"""The example dashboard queries in docs/read-models.md give the rules' numbers.

A dashboard team copies these queries; each is run as written (PostgreSQL) on a read
model of generated citizens and compared, for several as-of dates, with what the pure
rules in `casehistory.domain` say about the same citizens.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casehistory.domain.coordination import coordination_on, inflows
from casehistory.domain.durations import durations_on, over_years
from casehistory.domain.spells import years_before
from casehistory.domain.timeline import build_timeline
from casehistory.projections.store import PostgresReadModel, ReadModelStore
from tests.test_read_model_sql import FIXED_DAYS, citizen_facts, written

DOC = Path(__file__).parents[1] / "docs" / "read-models.md"
SECTION = "## Example dashboard queries"

pytestmark = pytest.mark.postgres


def documented_queries() -> list[str]:
    """The SQL blocks of the doc's example section, in order."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    section = section[: section.find("\n## ", len(SECTION))]
    return re.findall(r"```sql\n(.*?)```", section, flags=re.S)


def run(store: ReadModelStore, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """A query as a dashboard would run it: `:name` parameters, `::` casts left alone."""
    bound = re.sub(r"(?<!:):([a-z]\w*)", r"%(\1)s", sql)
    with store.read() as cursor:
        cursor.execute(bound, params)
        return [tuple(row) for row in cursor.fetchall()]


@pytest.fixture
def postgres_store(postgres_dsn: str) -> Any:
    store = PostgresReadModel(postgres_dsn, "casehistory")
    store.create()
    yield store
    store.close()


def test_the_doc_has_the_four_examples() -> None:
    assert len(documented_queries()) == 4


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(citizen_facts(), min_size=1, max_size=12))
def test_each_documented_query_gives_the_rules_numbers(
    postgres_store: ReadModelStore, population: list[Any]
) -> None:
    citizens = written(postgres_store, population)
    timelines = {key: (build_timeline(facts), born) for key, (facts, born) in citizens.items()}
    on_benefit, missed, by_step, flows = documented_queries()
    for day in FIXED_DAYS:
        durations = {k: durations_on(t, day, born) for k, (t, born) in timelines.items()}
        paid = {k: d for k, d in durations.items() if d.on_benefit}

        rows = run(postgres_store, on_benefit, d=day.isoformat())
        assert sorted(
            (key, start, spell_days, in_spell, naive) for key, start, spell_days, in_spell, naive
            in rows
        ) == sorted(
            (k, d.all_benefits_spell_start.isoformat(),
             (day - d.all_benefits_spell_start).days, d.benefit_days_in_spell,
             (day - timedelta(days=d.naive_days or 0)).isoformat())
            for k, d in paid.items() if d.all_benefits_spell_start is not None
        ), day  # fmt: skip

        y3 = years_before(day, 3)
        [(count,)] = run(postgres_store, missed, d=day.isoformat(), y3=y3.isoformat())
        naive_start = {k: day - timedelta(days=d.naive_days or 0) for k, d in paid.items()}
        assert count == sum(
            1 for k, d in paid.items()
            if d.all_benefits_spell_start is not None
            and over_years(d.all_benefits_spell_start, day, 3)
            and not over_years(naive_start[k], day, 3)
        ), day  # fmt: skip

        coordination = [coordination_on(t, day, born) for t, born in timelines.values()]
        expected_steps = Counter(c.support_step for c in coordination if c.is_faellesborger)
        assert dict(run(postgres_store, by_step, d=day.isoformat())) == expected_steps, day

    inflow: dict[tuple[str, str], set[str]] = defaultdict(set)
    first, last = date(2018, 1, 1), date(2026, 6, 30)
    for key, (timeline, _born) in timelines.items():
        for entry in inflows(timeline):
            if first <= entry.start <= last:
                half = f"{entry.start.year}H{1 if entry.start.month <= 6 else 2}"
                inflow[half, entry.benefit].add(key)
    assert {(h, b): n for h, b, n in run(postgres_store, flows)} == {
        key: len(holders) for key, holders in inflow.items()
    }
