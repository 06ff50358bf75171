"""Pytest plugin: a real PostgreSQL server per session and a fresh database per test.

Set ``CASEHISTORY_POSTGRES_DSN`` to use an existing server (its user needs CREATEDB);
otherwise a throwaway local server is started. If none can be had, tests fail under
``CI=true`` and are skipped elsewhere.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from casehistory.devservices.postgres import (
    PostgresServer,
    create_database,
    drop_database,
    start,
    stop,
)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL required under CI but unavailable: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL unavailable: {reason}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """An existing server from ``CASEHISTORY_POSTGRES_DSN`` or a local one for this session."""
    if dsn := os.environ.get("CASEHISTORY_POSTGRES_DSN"):
        try:
            server = PostgresServer.from_dsn(dsn)
            with psycopg.connect(server.dsn, connect_timeout=5):
                pass
        except Exception as exc:
            _unavailable(f"CASEHISTORY_POSTGRES_DSN not usable: {exc}")
        yield server
        return
    try:
        server = start()
    except Exception as exc:
        _unavailable(str(exc))
    try:
        yield server
    finally:
        stop(server)


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """DSN of a fresh, empty database, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    dsn = create_database(postgres_server, name)
    try:
        yield dsn
    finally:
        drop_database(postgres_server, name)
