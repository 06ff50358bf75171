"""One place that builds the engine from settings: store, vault, views, services.

`CASEHISTORY_STORE=sqlite` (the default) keeps the event store, the read models
and the key store in SQLite files under the data dir (each component in its own
file, as `eventsourcing`'s SQLite tables have fixed names). A `postgresql://`
URL puts all of them in that database, in their own tables.
"""

from __future__ import annotations

import fcntl
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment

from casehistory.application import CaseHistory
from casehistory.identity import IdentityVault, KeyStore, PostgresKeyStore, SQLiteKeyStore
from casehistory.settings import Settings
from consumers.deadletter import DeadLetterSink
from consumers.ingest import IngestService
from domain.citizen import Citizen
from projections import coordination
from projections.durations import (
    DurationsView,
    PostgresDurationsView,
    SQLiteDurationsView,
    row_for,
)
from projections.follower import Follower, Target
from projections.history import CitizenHistory
from projections.lease import file_lease, postgres_lease


@dataclass(frozen=True)
class ReadModel:
    """A per-citizen read model: its view classes per backend and how a row is made."""

    name: str
    sqlite_view: type[Any]
    postgres_view: type[Any]
    row_for: Callable[[CitizenHistory], Any]


READ_MODELS: dict[str, ReadModel] = {
    "durations": ReadModel("durations", SQLiteDurationsView, PostgresDurationsView, row_for),
    "coordination": ReadModel(
        "coordination",
        coordination.SQLiteCoordinationView,
        coordination.PostgresCoordinationView,
        coordination.row_for,
    ),
}
def read_model_names(requested: list[str]) -> list[str]:
    unknown = [n for n in requested if n not in READ_MODELS]
    if unknown:
        raise SystemExit(f"unknown read model(s) {unknown}; known: {sorted(READ_MODELS)}")
    return requested or list(READ_MODELS)


REPLAY_SCHEMA = "casehistory_replay"
SCHEMA_LOCK_ID = 0x0CA5E  # advisory lock key held while creating tables


@dataclass
class Engine:
    settings: Settings
    app: CaseHistory
    vault: IdentityVault
    _views: dict[str, Any] = field(default_factory=dict)
    _opened: list[object] = field(default_factory=list)

    def view(self, name: str) -> Any:
        """The live read model `name` (created on first use: ingest-only processes skip it)."""
        if name not in self._views:
            self._views[name] = self._construct_view(name, replay=False)
        return self._views[name]

    def replay_view(self, name: str) -> Any:
        """An empty copy of read model `name`, beside the live one, for a rebuild."""
        view = self._construct_view(name, replay=True)
        view.clear(self.app.name)
        return view

    def _construct_view(self, name: str, *, replay: bool) -> Any:
        with schema_lock(self.settings):
            view = self._create_view(name, replay=replay)
        self._opened.append(view)
        return view

    def _create_view(self, name: str, *, replay: bool) -> Any:
        model = READ_MODELS[name]
        if self.settings.uses_postgres:
            # A replay copy is new by definition, so it is always created.
            env = postgres_env(self.settings.store, replay or self.settings.create_tables)
            if replay:
                _create_schema(self.settings.store, REPLAY_SCHEMA)
                env["POSTGRES_SCHEMA"] = REPLAY_SCHEMA
            factory = InfrastructureFactory.construct(env=Environment(name, env))
            view = factory.tracking_recorder(model.postgres_view)
        else:
            folder = self.settings.data_dir / ("replay" if replay else "")
            folder.mkdir(parents=True, exist_ok=True)
            factory = InfrastructureFactory.construct(
                env=Environment(name, sqlite_env(folder / f"{name}.db"))
            )
            view = factory.tracking_recorder(model.sqlite_view)
        return view

    def follower(self, name: str, view: Any = None) -> Follower:
        """A follower that keeps `view` (default: the live one) up to date."""
        return Follower(self.app, [Target(view or self.view(name), READ_MODELS[name].row_for)])

    def followers(self, names: list[str] | None = None) -> Follower:
        """One follower feeding the live read models `names` (default: all) in one pass."""
        targets = [Target(self.view(n), READ_MODELS[n].row_for) for n in names or READ_MODELS]
        return Follower(self.app, targets)

    @property
    def durations_view(self) -> DurationsView:
        view: DurationsView = self.view("durations")
        return view

    @property
    def coordination_view(self) -> coordination.CoordinationView:
        view: coordination.CoordinationView = self.view("coordination")
        return view

    def citizen(self, cpr: str) -> Citizen | None:
        """The citizen with this CPR number, found through its keyed pseudonym."""
        return self.app.find(self.vault.citizen_key(cpr))

    def ingest_service(self, dead_letters: DeadLetterSink) -> IngestService:
        return IngestService(self.app, self.vault, dead_letters)

    def durations_follower(self) -> Follower:
        return self.follower("durations")

    def projection_lease(self, name: str, stop: threading.Event) -> AbstractContextManager[bool]:
        """Held by the one worker that applies projection `name` (see projections.lease)."""
        if self.settings.uses_postgres:
            return postgres_lease(self.settings.store, name, stop)
        return file_lease(self.settings.data_dir / f"{name}.lease", stop)

    def project(self) -> int:
        """Bring every read model up to date with the event store."""
        return self.followers().catch_up()

    def close(self) -> None:
        self.app.close()
        self.vault.keys.close()
        for view in self._opened:
            view.datastore.close()  # type: ignore[attr-defined]


def tune_garbage_collector() -> None:
    """Make CPython's full collections rare in an engine process (set once, at start).

    The aggregate cache keeps about a million objects alive, and with the default
    thresholds every full collection walks all of them: dozens of walks per few
    hundred thousand events made the ingest about 1.5x slower with a 20,000-citizen
    cache (measured, docs/benchmarks.md). The engine makes few reference cycles, so
    collecting less often costs little memory.
    """
    gc.set_threshold(10_000, 10, 100)


def drop_engine_tables(url: str) -> None:
    """Drop the engine's own tables (and nothing else) from a PostgreSQL database."""
    import psycopg

    tables = ["casehistory_events", "ingest_ledger", "citizen_keys"]
    for name, model in READ_MODELS.items():
        tables += [f"{name}_tracking", model.postgres_view.table]
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {', '.join(tables)}")
        connection.execute(f'DROP SCHEMA IF EXISTS "{REPLAY_SCHEMA}" CASCADE')


@contextmanager
def schema_lock(settings: Settings) -> Iterator[None]:
    """Serialise table creation between processes starting at once.

    `eventsourcing` creates its tables on construction; two processes doing that
    concurrently can collide (PostgreSQL: "tuple concurrently updated"; SQLite:
    the tracking-table migration), so construction happens under a lock.
    """
    if settings.uses_postgres:
        import psycopg

        with psycopg.connect(settings.store, autocommit=True) as connection:
            connection.execute("SELECT pg_advisory_lock(%s)", [SCHEMA_LOCK_ID])
            try:
                yield
            finally:
                connection.execute("SELECT pg_advisory_unlock(%s)", [SCHEMA_LOCK_ID])
    else:
        with (settings.data_dir / ".schema.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _create_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')


def sqlite_env(path: Path) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}


def postgres_env(url: str, create_tables: bool = True) -> dict[str, str]:
    """`eventsourcing`'s PostgreSQL settings from a `postgresql://` URL."""
    parts = urlsplit(url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "CREATE_TABLE": "yes" if create_tables else "no",
        "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or ""),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
    }


def event_store_env(settings: Settings) -> dict[str, str]:
    if settings.uses_postgres:
        return {
            **postgres_env(settings.store, settings.create_tables),
            "APPLICATION_RECORDER_TOPIC": "casehistory.recorders:PostgresLedgerRecorder",
        }
    return {
        **sqlite_env(settings.data_dir / "events.db"),
        "APPLICATION_RECORDER_TOPIC": "casehistory.recorders:SQLiteLedgerRecorder",
    }


def build(settings: Settings | None = None) -> Engine:
    """The engine on the configured store (SQLite under the data dir by default)."""
    settings = settings or Settings.load()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with schema_lock(settings):
        app = CaseHistory(env=event_store_env(settings))
    keys: KeyStore = (
        PostgresKeyStore(settings.store, create_table=settings.create_tables)
        if settings.uses_postgres
        else SQLiteKeyStore(settings.data_dir / "keys.db")
    )
    return Engine(settings, app, IdentityVault(settings.pseudonym_key, keys))
