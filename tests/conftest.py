"""Shared test wiring: real-service fixtures, the storage backends, hypothesis profiles.

Every test that touches storage takes `store_settings` (or `engine`) and so runs
once on SQLite and once on a real PostgreSQL server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from casehistory.bootstrap import Engine, build
from casehistory.settings import Settings

pytest_plugins = ["tests.fixtures_kafka", "tests.fixtures_postgres", "tests.fixtures_serve"]

settings.register_profile("ci", max_examples=200, deadline=None)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")

PSEUDONYM_KEY = "cd" * 32

# The CLI's caller (casehistory.services.access) unless a test names another: the data-protection
# officer, whose reports show every count (no "<5") and rows per citizen, and an operator, who
# runs the engine (ingest, project, serve, ...); tests of refusals and of what other roles see
# set their own.
os.environ.setdefault("CASEHISTORY_USER", "test-dpo")
os.environ.setdefault("CASEHISTORY_ROLE", "dpo,operator")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Settings environment for a fresh, empty store on each backend."""
    env = {"CASEHISTORY_DATA_DIR": str(tmp_path), "CASEHISTORY_PSEUDONYM_KEY": PSEUDONYM_KEY}
    if request.param == "postgres":
        env["CASEHISTORY_STORE"] = request.getfixturevalue("postgres_dsn")
    return env


@pytest.fixture
def engine(store_env: dict[str, str]) -> Iterator[Engine]:
    built = build(Settings.load(store_env))
    yield built
    built.close()
