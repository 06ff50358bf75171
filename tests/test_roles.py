"""Least-privilege roles on a real server: each process role can do its job and no more."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import errors

from casehistory.bootstrap import build
from casehistory.consumers import files
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.consumers.files import Incoming
from casehistory.entrypoints.cli.common import batched
from casehistory.entrypoints.cli.db import DASHBOARD, INGEST, PROJECTION
from casehistory.entrypoints.cli.main import main
from casehistory.population import generator
from casehistory.settings import Settings
from tests.conftest import PSEUDONYM_KEY

CITIZENS = 60


def _as_user(dsn: str, user: str, password: str) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


@pytest.fixture
def users(
    postgres_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """`db init` and `db roles --apply` as the owner; a login user per role: role -> DSN."""
    with psycopg.connect(postgres_dsn) as owner:
        allowed = owner.execute(
            "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    if not allowed or not allowed[0]:
        pytest.skip("the server's user cannot create roles")
    monkeypatch.setenv("CASEHISTORY_STORE", postgres_dsn)
    monkeypatch.setenv("CASEHISTORY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CASEHISTORY_PSEUDONYM_KEY", PSEUDONYM_KEY)
    assert main(["db", "init"]) == 0
    assert main(["db", "roles", "--apply"]) == 0
    logins = {role: f"{role}_{uuid.uuid4().hex[:8]}" for role in (INGEST, PROJECTION, DASHBOARD)}
    password = uuid.uuid4().hex
    with psycopg.connect(postgres_dsn, autocommit=True) as owner:
        for role, user in logins.items():
            owner.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}' IN ROLE {role}")
    try:
        yield {role: _as_user(postgres_dsn, user, password) for role, user in logins.items()}
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as owner:
            for user in logins.values():
                owner.execute(f"DROP ROLE {user}")


def _settings(dsn: str, data_dir: Path) -> Settings:
    return Settings.load(
        {
            "CASEHISTORY_STORE": dsn,
            "CASEHISTORY_DATA_DIR": str(data_dir),
            "CASEHISTORY_PSEUDONYM_KEY": PSEUDONYM_KEY,
            "CASEHISTORY_CREATE_TABLES": "no",
        }
    )


def _denied(dsn: str, statement: str) -> bool:
    try:
        with psycopg.connect(dsn) as connection:
            connection.execute(statement)
    except errors.InsufficientPrivilege:
        return True
    return False


@pytest.mark.postgres
def test_each_role_does_its_job_and_no_more(users: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "population.jsonl"
    generator.write_jsonl(generator.generate_population(CITIZENS, seed=3), source)

    engine = build(_settings(users[INGEST], tmp_path))
    try:
        service = engine.ingest_service(DeadLetterList())
        batches = batched(files.read_records(source), 200)
        stored = sum(service.ingest(batch).stored for batch in batches)
        engine.ingest_service(DeadLetterList()).take_over(["history:0"])  # a store writer's fence
    finally:
        engine.close()
    assert stored > CITIZENS

    engine = build(_settings(users[PROJECTION], tmp_path))
    try:
        assert engine.project() > 0
        projected = engine.read_model().count()
    finally:
        engine.close()
    assert projected >= CITIZENS * 0.9  # a few generated records are invalid on purpose

    with psycopg.connect(users[DASHBOARD]) as dashboard:
        for table in ("durations_citizen", "coordination_citizen"):
            count = dashboard.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert count is not None and count[0] == projected
        runs = dashboard.execute("SELECT count(DISTINCT citizen_key) FROM benefit_run").fetchone()
        assert runs is not None and 0 < runs[0] <= projected
    dashboard_denied = [
        "INSERT INTO durations_citizen (citizen_key, birth_date, findings) "
        "VALUES ('x', '2000-01-01', 0)",
        "DELETE FROM benefit_run",
        "SELECT count(*) FROM changelog_outbox",
        "UPDATE coordination_citizen SET support_step = 0",
        "SELECT count(*) FROM casehistory_events",
        "SELECT count(*) FROM citizen_keys",
        "SELECT count(*) FROM ingest_ledger",
    ]
    assert all(_denied(users[DASHBOARD], s) for s in dashboard_denied)
    assert _denied(users[INGEST], "DELETE FROM durations_citizen")
    assert _denied(users[INGEST], "UPDATE history_tracking SET notification_id = 0")
    assert _denied(users[INGEST], "DELETE FROM casehistory_events")
    assert _denied(users[PROJECTION], "SELECT count(*) FROM citizen_keys")
    assert _denied(users[PROJECTION], "DELETE FROM casehistory_events")


@pytest.mark.postgres
def test_the_update_grant_for_the_table_lock_cannot_change_events(users: dict[str, str]) -> None:
    with pytest.raises(errors.RaiseException, match="append-only"):
        _denied(users[INGEST], "UPDATE casehistory_events SET topic = topic")


def test_roles_sql_is_printed_for_a_dba(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "roles"]) == 0
    printed = capsys.readouterr().out
    assert "GRANT UPDATE ON casehistory_events TO casehistory_ingest;" in printed
    assert (
        "GRANT SELECT ON durations_citizen, coordination_citizen, benefit_period, benefit_run, "
        "target_group_interval, intervention_period, inflow, benefit_year, caseworker_assignment, "
        "visitation, counting_meeting, cash_exit TO casehistory_dashboard;"
    ) in printed


@pytest.fixture
def grouped_users(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """`users`, with two partition groups' stores (schemas) created and granted."""
    monkeypatch.setenv("CASEHISTORY_STORE_GROUPS", "2")
    found: dict[str, str] = request.getfixturevalue("users")
    return found


@pytest.mark.postgres
def test_the_roles_reach_every_partition_groups_store(
    grouped_users: dict[str, str], tmp_path: Path
) -> None:
    source = tmp_path / "population.jsonl"
    generator.write_jsonl(generator.generate_population(CITIZENS, seed=4), source)
    engine = build(replace(_settings(grouped_users[INGEST], tmp_path), store_groups=2))
    try:
        service = engine.ingest_service(DeadLetterList(), 1)
        service.take_over(["history:1"])  # the group's writer fences its partitions
        records = [
            Incoming(r.payload, r.raw, {"topic": "history", "partition": 1, "offset": n},
                     r.decode_error)
            for n, r in enumerate(files.read_records(source))
        ]
        stored = sum(service.ingest(batch).stored for batch in batched(iter(records), 200))
    finally:
        engine.close()
    assert stored > CITIZENS
    engine = build(replace(_settings(grouped_users[PROJECTION], tmp_path), store_groups=2))
    try:
        assert engine.project() > 0
        assert engine.read_model().positions()["casehistory-g1"] > 0
    finally:
        engine.close()
    assert _denied(grouped_users[DASHBOARD], "SELECT 1 FROM casehistory_g1.casehistory_events")
    assert _denied(grouped_users[PROJECTION], "SELECT 1 FROM casehistory_g1.writer_fence")
