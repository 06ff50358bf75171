"""Table creation on PostgreSQL, serialised between processes starting at once.

`CREATE TABLE IF NOT EXISTS` is not safe under concurrency on PostgreSQL: two
sessions that both find the table missing both create it, and one fails on the
catalog's unique index (`pg_type_typname_nsp_index`). Holding a transaction-level
advisory lock makes the second wait, then find the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

DDL_LOCK_ID = 0x0CA5E_DD1  # advisory lock key held while creating a service's tables


def create_serially(connection: Any, statements: Iterable[str]) -> None:
    """Run `statements` (idempotent DDL) in one transaction under the DDL lock."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", [DDL_LOCK_ID])
        for statement in statements:
            connection.execute(statement)


def create_schema(url: str, schema: str) -> None:
    """Create `schema` on the server at `url` if it is missing, under the DDL lock."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        create_serially(connection, [f'CREATE SCHEMA IF NOT EXISTS "{schema}"'])
