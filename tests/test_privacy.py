"""Privacy against a reader of the store: no CPR is derivable from stored rows without a key.

The attacker (tests/attacker.py) reads every row it can and tries the known
inversions. It plays the store alone, the store with the store key (what a
projection worker holds), and on PostgreSQL each role's grants. A positive
control shows the same attack does recover every CPR once it holds the
pseudonym key, so the negative results are not the attack failing to run.
"""

from __future__ import annotations

import json
import multiprocessing
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest

from casehistory.bootstrap import READ_MODEL, Engine, build
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.consumers.files import Incoming
from casehistory.services.identity import IdentityVault, SQLiteKeyStore
from casehistory.settings import Settings
from tests.attacker import postgres_rows, recovered_cprs, sqlite_rows
from tests.conftest import PSEUDONYM_KEY
from tests.factories import record, started, stopped

CPRS = ["6101901234", "6512854321", "7003700007", "6208021111"]


@contextmanager
def _own_key_store(env: dict[str, str], server: Any) -> Iterator[dict[str, str]]:
    from casehistory.devservices.postgres import create_database, drop_database

    name = f"keys_{uuid.uuid4().hex[:12]}"
    dsn = create_database(server, name)
    try:
        yield {**env, "CASEHISTORY_KEY_STORE": dsn}
    finally:
        drop_database(server, name)


@pytest.fixture
def privacy_env(
    store_env: dict[str, str], request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    """`store_env`, with the key store in a database of its own on PostgreSQL."""
    if "CASEHISTORY_STORE" not in store_env:
        yield store_env
        return
    with _own_key_store(store_env, request.getfixturevalue("postgres_server")) as env:
        yield env


@pytest.fixture
def postgres_env(
    postgres_dsn: str, postgres_server: Any, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """A PostgreSQL store with the key store in a database of its own."""
    env = {
        "CASEHISTORY_DATA_DIR": str(tmp_path),
        "CASEHISTORY_PSEUDONYM_KEY": PSEUDONYM_KEY,
        "CASEHISTORY_STORE": postgres_dsn,
    }
    with _own_key_store(env, postgres_server) as env:
        yield env


@pytest.fixture
def private_engine(privacy_env: dict[str, str]) -> Iterator[Engine]:
    built = build(Settings.load(privacy_env))
    yield built
    built.close()


def incoming(*records: dict[str, Any]) -> list[Incoming]:
    return [Incoming(r, json.dumps(r).encode(), {"n": i}) for i, r in enumerate(records)]


def populate(engine: Engine) -> None:
    """Each citizen of CPRS with a start and a stop, projected into the read models."""
    records = []
    for cpr in CPRS:
        records.append(record(started(date(2020, 1, 1), source_case_ref="S-1"), cpr))
        records.append(record(stopped(date(2021, 3, 1)), cpr))
    report = engine.ingest_service(DeadLetterList()).ingest(incoming(*records))
    assert report.stored == len(records)
    engine.project()


def store_rows(engine: Engine) -> list[dict[str, Any]]:
    """Every row of the store (events, ledger, read models), without the key store."""
    settings = engine.settings
    if settings.uses_postgres:
        rows = list(postgres_rows(settings.store))
        assert settings.key_store and not any(r["_table"] == "citizen_keys" for r in rows)
        return rows
    files = [p for p in settings.data_dir.glob("*.db") if p.name != "keys.db"]
    assert {"events.db", f"{READ_MODEL}.db"} <= {p.name for p in files}
    return [row for path in files for row in sqlite_rows(path)]


def test_a_reader_of_the_store_recovers_no_cpr(privacy_env: dict[str, str]) -> None:
    engine = build(Settings.load(privacy_env))
    try:
        populate(engine)
        rows = store_rows(engine)
        settings = engine.settings
    finally:
        engine.close()
    assert len(rows) > 3 * len(CPRS)
    assert recovered_cprs(rows, known=CPRS) == set()
    # A projection worker holds the store key: it reads birth dates and digests, still no CPR.
    assert recovered_cprs(rows, store_key=settings.store_key, known=CPRS) == set()
    # Control: the pseudonym key does give every CPR away (so it stays with the engine).
    with_pseudonym_key = recovered_cprs(
        rows, store_key=settings.store_key, pseudonym_key=settings.pseudonym_key, known=CPRS
    )
    assert with_pseudonym_key == set(CPRS)


def test_the_event_store_keeps_no_birth_date_or_fact_in_clear(private_engine: Engine) -> None:
    populate(private_engine)
    events = ("stored_events", "casehistory_events")
    rows = [r for r in store_rows(private_engine) if r["_table"] in events]
    assert rows
    for row in rows:
        state = bytes(row["state"])
        assert b"birth_date" not in state and b"kontanthjaelp" not in state and b"S-1" not in state


@pytest.mark.postgres
def test_each_database_role_recovers_no_cpr(
    postgres_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from casehistory.entrypoints.cli.db import DASHBOARD, INGEST, PROJECTION
    from casehistory.entrypoints.cli.main import main

    dsn = postgres_env["CASEHISTORY_STORE"]
    for name, value in postgres_env.items():
        monkeypatch.setenv(name, value)
    assert main(["db", "init"]) == 0
    assert main(["db", "roles", "--apply"]) == 0
    engine = build(Settings.load({**postgres_env, "CASEHISTORY_CREATE_TABLES": "no"}))
    try:
        populate(engine)
        store_key = engine.settings.store_key
    finally:
        engine.close()
    password = uuid.uuid4().hex
    logins = {role: f"{role}_{uuid.uuid4().hex[:8]}" for role in (INGEST, PROJECTION, DASHBOARD)}
    with psycopg.connect(dsn, autocommit=True) as owner:
        for role, user in logins.items():
            owner.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}' IN ROLE {role}")
    host = dsn.split("@", 1)[1]
    try:
        for role, user in logins.items():
            rows = list(postgres_rows(f"postgresql://{user}:{password}@{host}"))
            assert rows, role
            assert not any(r["_table"] == "citizen_keys" for r in rows)
            # The engine processes of ingest and projection hold the store key; dashboards do not.
            key = None if role == DASHBOARD else store_key
            assert recovered_cprs(rows, store_key=key, known=CPRS) == set(), role
    finally:
        with psycopg.connect(dsn, autocommit=True) as owner:
            for user in logins.values():
                owner.execute(f"DROP OWNED BY {user}")
                owner.execute(f"DROP ROLE {user}")


def _load_pseudonym_key(data_dir: str) -> str:
    return Settings.load({"CASEHISTORY_DATA_DIR": data_dir}).pseudonym_key.hex()


def test_processes_starting_together_share_one_owner_only_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        keys = pool.map(_load_pseudonym_key, [str(data_dir)] * 12)
    assert len(set(keys)) == 1
    for name in ("pseudonym.key", "store.key", "integrity.key", "partition.key", "staff.key"):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert [p.name for p in data_dir.iterdir() if p.name.startswith(".")] == []


def test_engine_files_are_owner_only(engine: Engine) -> None:
    populate(engine)
    data_dir = engine.settings.data_dir
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700


class _RacingKeyStore(SQLiteKeyStore):
    """A real key store where another writer stores a key right after our first look."""

    def __init__(self, path: Path, other: IdentityVault, cpr: str) -> None:
        super().__init__(path)
        self.other, self.cpr, self.raced = other, cpr, False

    def keys_for(self, citizen_keys: Any) -> dict[str, bytes]:
        found = super().keys_for(citizen_keys)
        if not self.raced:
            self.raced = True
            self.other.seal_new({self.other.citizen_key(self.cpr): self.cpr})
        return found


def test_sealing_uses_the_key_that_was_stored_when_another_writer_won(tmp_path: Path) -> None:
    cpr = CPRS[0]
    other = IdentityVault(b"k" * 32, SQLiteKeyStore(tmp_path / "keys.db"))
    racing = IdentityVault(b"k" * 32, _RacingKeyStore(tmp_path / "keys.db", other, cpr))
    key = racing.citizen_key(cpr)
    sealed = racing.seal_new({key: cpr})[key]
    assert other.unseal(key, sealed) == cpr
