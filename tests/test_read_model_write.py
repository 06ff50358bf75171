"""A live write changes only the rows that differ, and leaves exactly the new rows.

A citizen's history grows one fact at a time, each step written over the last with
`replace=True` (as a live catch-up does); the tables then hold exactly what one fresh
write of the final history holds (same checksum), on SQLite and on PostgreSQL. Rows
repeated within a citizen's table, NULLs and a table emptied by a step are kept as a
multiset.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casehistory.domain.facts import Fact
from casehistory.domain.timeline import build_timeline
from casehistory.projections.rows import TABLES, CitizenRows, rows_for
from casehistory.projections.store import PostgresReadModel, ReadModelStore, SQLiteReadModel
from tests.factories import started
from tests.test_read_model_sql import STAFF_KEY, citizen_facts

BORN = date(1980, 3, 1)


def _store(request: pytest.FixtureRequest, path: Path, schema: str) -> ReadModelStore:
    store: ReadModelStore
    if request.param == "postgres":
        store = PostgresReadModel(request.getfixturevalue("postgres_dsn"), "casehistory", schema)
    else:
        store = SQLiteReadModel(path, "casehistory")
    store.create()
    store.clear()
    return store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[ReadModelStore, ReadModelStore]]:
    """A live copy written step by step, and a copy written once."""
    live = _store(request, tmp_path / "live.db", "live_write")
    once = _store(request, tmp_path / "once.db", "once_write")
    yield live, once
    live.close()
    once.close()


def _rows(key: str, facts: list[Fact]) -> CitizenRows:
    last = max((f.effective_date for f in facts), default=None)
    return rows_for(key, BORN, build_timeline(facts), last, staff_key=STAFF_KEY)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(population=st.lists(citizen_facts(), min_size=1, max_size=3), known=st.booleans())
def test_a_history_written_step_by_step_equals_one_write(
    stores: tuple[ReadModelStore, ReadModelStore], population: list[list[Fact]], known: bool
) -> None:
    """`known`: each step tells the store the rows the last one wrote (`written`), as a
    live follower holding the citizen does."""
    live, once = stores
    live.clear()
    once.clear()
    keys = [f"{n:032x}" for n in range(len(population))]
    last: dict[str, dict[str, list[tuple[object, ...]]]] = {}
    position = 0
    for step in range(1, max(len(facts) for facts in population) + 1):
        citizens = [_rows(key, facts[:step]) for key, facts in zip(keys, population, strict=True)
                    if len(facts) >= step]  # fmt: skip
        for citizen in citizens:
            citizen.written = last.get(citizen.citizen_key) if known else None
            last[citizen.citizen_key] = citizen.tables
        live.write(citizens, since=position, until=position + 1)
        position += 1
    once.write(
        [_rows(key, facts) for key, facts in zip(keys, population, strict=True)],
        since=0, until=position, replace=False,
    )  # fmt: skip
    assert live.checksum() == once.checksum()


@pytest.mark.parametrize("known", [False, True])
def test_repeated_rows_nulls_and_emptied_tables_are_kept_as_a_multiset(
    stores: tuple[ReadModelStore, ReadModelStore], known: bool
) -> None:
    """`known`: the writer tells the store the rows it wrote last, so rows gone are
    deleted by their values (NULLs and repeats included) without reading the table."""
    live, _once = stores
    key = "a" * 32

    def citizen(**tables: list[tuple[object, ...]]) -> CitizenRows:
        return CitizenRows(key, {name: [(key, *row) for row in rows]
                                 for name, rows in tables.items()})  # fmt: skip

    steps = [
        citizen(inflow=[("kontanthjaelp", "2015-01-01", "e1")] * 2, benefit_year=[(2015,)]),
        citizen(inflow=[("kontanthjaelp", "2015-01-01", "e1")] * 3 + [("sygedagpenge", None, None)],
                benefit_year=[(2015,), (2016,)]),
        citizen(inflow=[("sygedagpenge", None, None), ("kontanthjaelp", "2015-01-01", "e1")]),
        citizen(inflow=[("kontanthjaelp", "2015-01-01", "e1"), ("sygedagpenge", None, "e2")],
                benefit_year=[(2016,)]),
        citizen(inflow=[("sygedagpenge", None, "e2")], benefit_year=[(2016,), (2017,)]),
    ]
    for position, rows in enumerate(steps):
        rows.written = steps[position - 1].tables if known and position else None
        live.write([rows], since=position, until=position + 1)
        for table in TABLES:
            assert Counter(live.rows_of(table, [key])) == Counter(rows.tables.get(table, ())), (
                position, table,
            )


def test_live_writes_refresh_the_statistics_of_a_copy_filled_small(tmp_path: Path) -> None:
    """A copy bulk-loaded with two citizens and grown 60-fold by live writes gets new
    statistics, so a lookup of a few citizens by key is an index search again."""
    store = SQLiteReadModel(tmp_path / "grown.db", "casehistory")
    store.create()

    def citizens(first: int, count: int) -> list[CitizenRows]:
        return [CitizenRows(f"{n:032x}", {"benefit_year": [(f"{n:032x}", y) for y in (1, 2)]})
                for n in range(first, first + count)]  # fmt: skip

    store.write(citizens(0, 2), since=0, until=1, replace=False)  # analysed at 4 rows

    def analysed_rows() -> int:
        found = store.connection.execute(
            "SELECT stat FROM sqlite_stat1 WHERE idx = 'benefit_year_citizen'"
        ).fetchone()
        return int(found[0].split()[0])

    assert analysed_rows() == 4
    for step in range(1, 7):
        store.write(citizens(step * 20, 20), since=step, until=step + 1)
    assert analysed_rows() >= 100
    plan = store.connection.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM benefit_year WHERE citizen_key IN (?, ?, ?)",
        [f"{n:032x}" for n in range(3)],
    ).fetchall()
    assert "USING INDEX benefit_year_citizen" in str(plan)
    store.close()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_tracking_table_from_before_the_writer_token_gets_it(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    old_table = ("CREATE TABLE history_tracking (application_name TEXT PRIMARY KEY, "
                 "notification_id BIGINT NOT NULL)")  # fmt: skip
    store: ReadModelStore
    if backend == "postgres":
        import psycopg

        url = request.getfixturevalue("postgres_dsn")
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute('DROP SCHEMA IF EXISTS "old_tracking" CASCADE')
            connection.execute('CREATE SCHEMA "old_tracking"')
            connection.execute('SET search_path TO "old_tracking"')
            connection.execute(old_table)
            connection.execute("INSERT INTO history_tracking VALUES ('casehistory', 7)")
        store = PostgresReadModel(url, "casehistory", "old_tracking")
    else:
        import sqlite3

        with sqlite3.connect(tmp_path / "old.db") as connection:
            connection.execute(old_table)
            connection.execute("INSERT INTO history_tracking VALUES ('casehistory', 7)")
        store = SQLiteReadModel(tmp_path / "old.db", "casehistory")
    store.create()
    store.create()  # again: nothing to add
    assert (store.position(), store.writer("casehistory")) == (7, 0)
    store.write([CitizenRows("a" * 32)], since=7, until=8, writer=(0, 42))
    assert (store.position(), store.writer("casehistory")) == (8, 42)
    store.close()


@pytest.mark.postgres
def test_a_bulk_load_into_an_empty_postgres_copy_is_frozen_and_keeps_a_filled_one(
    postgres_dsn: str,
) -> None:
    """Loaded into empty tables, the rows are copied in frozen: every page all-visible, so
    index-only scans read no table row. A second load finds the copy filled (another
    store's, one follower thread each) and adds to it, truncating nothing."""
    store = PostgresReadModel(postgres_dsn, "casehistory", "frozen_load", ["g0", "g1"])
    store.create()
    store.clear()
    try:
        population = [_rows(f"{n:032x}", [started(date(2015, 1, 1 + n % 28))]) for n in range(300)]
        store.write(population[:200], since=0, until=1, replace=False, store="g0")
        with store.read() as cursor:
            cursor.execute(
                "SELECT relpages, relallvisible FROM pg_class WHERE oid = %s::regclass",
                ['"frozen_load".benefit_period'],
            )
            pages, visible = cursor.fetchone()
        assert pages > 0 and visible == pages
        store.write(population[200:], since=0, until=1, replace=False, store="g1")
        assert store.count() == 300
    finally:
        store.clear()
        store.close()
