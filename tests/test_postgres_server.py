"""The local PostgreSQL dev service is a real server: transactions and isolated databases."""

from __future__ import annotations

import psycopg
import pytest

from casehistory.devservices.postgres import PostgresServer, create_database, drop_database

pytestmark = pytest.mark.postgres


def test_write_and_read_row_in_transaction(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn) as conn:
        with conn.transaction():
            conn.execute("CREATE TABLE cases (id int PRIMARY KEY, note text NOT NULL)")
            conn.execute("INSERT INTO cases VALUES (%s, %s)", (1, "første sag"))
        with conn.transaction():
            conn.execute("INSERT INTO cases VALUES (2, 'discarded')")
            raise psycopg.Rollback()
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute("SELECT id, note FROM cases ORDER BY id").fetchall()
    assert rows == [(1, "første sag")]


@pytest.mark.parametrize("run", ["first", "second"])
def test_each_test_gets_a_fresh_database(postgres_dsn: str, run: str) -> None:
    """Run twice: the second run must not see the table the first one created."""
    with psycopg.connect(postgres_dsn) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
        assert tables == (0,)
        conn.execute("CREATE TABLE marker (run text)")
        conn.execute("INSERT INTO marker VALUES (%s)", (run,))


def test_two_databases_are_isolated(postgres_server: PostgresServer, postgres_dsn: str) -> None:
    other_dsn = create_database(postgres_server, "test_isolation_other")
    try:
        assert other_dsn != postgres_dsn
        with psycopg.connect(postgres_dsn) as conn:
            conn.execute("CREATE TABLE only_here (x int)")
        with psycopg.connect(other_dsn) as conn:
            assert conn.execute("SELECT to_regclass('public.only_here')").fetchone() == (None,)
    finally:
        drop_database(postgres_server, "test_isolation_other")
