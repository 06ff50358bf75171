"""Small SQL helpers shared by read models on SQLite and PostgreSQL."""

from __future__ import annotations


def marker(name: str, paramstyle: str) -> str:
    """A named parameter: `:name` (sqlite3) or `%(name)s` (psycopg)."""
    return f":{name}" if paramstyle == "named" else f"%({name})s"


def upsert_statement(table: str, columns: tuple[str, ...], key: str, paramstyle: str) -> str:
    """INSERT ... ON CONFLICT DO UPDATE, valid in both SQLite and PostgreSQL."""
    values = ", ".join(marker(c, paramstyle) for c in columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )
