"""One place that builds the engine from settings: store, vault, views, services.

`CASEHISTORY_STORE=sqlite` (the default) keeps the event store, the read models
and the key store in SQLite files under the data dir (each component in its own
file, as `eventsourcing`'s SQLite tables have fixed names). A `postgresql://`
URL puts all of them in that database, in their own tables.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from urllib.parse import unquote, urlsplit

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment

from casehistory.application import CaseHistory
from casehistory.identity import IdentityVault, KeyStore, PostgresKeyStore, SQLiteKeyStore
from casehistory.settings import Settings
from consumers.deadletter import DeadLetterSink
from consumers.ingest import IngestService
from projections.durations import (
    DurationsRow,
    DurationsView,
    PostgresDurationsView,
    SQLiteDurationsView,
    row_for,
)
from projections.follower import Follower
from projections.lease import file_lease, postgres_lease


@dataclass
class Engine:
    settings: Settings
    app: CaseHistory
    vault: IdentityVault
    _opened: list[object] = field(default_factory=list)

    @cached_property
    def durations_view(self) -> DurationsView:
        """The durations read model (created on first use, so ingest-only processes skip it)."""
        if self.settings.uses_postgres:
            factory = InfrastructureFactory.construct(
                env=Environment("durations", postgres_env(self.settings.store))
            )
            view = factory.tracking_recorder(PostgresDurationsView)
        else:
            factory = InfrastructureFactory.construct(
                env=Environment("durations", sqlite_env(self.settings.data_dir / "durations.db"))
            )
            view = factory.tracking_recorder(SQLiteDurationsView)
        assert isinstance(view, SQLiteDurationsView | PostgresDurationsView)
        self._opened.append(view)
        return view

    def ingest_service(self, dead_letters: DeadLetterSink) -> IngestService:
        return IngestService(self.app, self.vault, dead_letters)

    def durations_follower(self) -> Follower[DurationsRow]:
        return Follower(self.app, self.durations_view, row_for)

    def projection_lease(self, name: str, stop: threading.Event) -> AbstractContextManager[bool]:
        """Held by the one worker that applies projection `name` (see projections.lease)."""
        if self.settings.uses_postgres:
            return postgres_lease(self.settings.store, name, stop)
        return file_lease(self.settings.data_dir / f"{name}.lease", stop)

    def project(self) -> int:
        """Bring every read model up to date with the event store."""
        return self.durations_follower().catch_up()

    def close(self) -> None:
        self.app.close()
        self.vault.keys.close()
        for view in self._opened:
            view.datastore.close()  # type: ignore[attr-defined]


def sqlite_env(path: Path) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}


def postgres_env(url: str) -> dict[str, str]:
    """`eventsourcing`'s PostgreSQL settings from a `postgresql://` URL."""
    parts = urlsplit(url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or ""),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
    }


def event_store_env(settings: Settings) -> dict[str, str]:
    if settings.uses_postgres:
        return {
            **postgres_env(settings.store),
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
    app = CaseHistory(env=event_store_env(settings))
    keys: KeyStore = (
        PostgresKeyStore(settings.store)
        if settings.uses_postgres
        else SQLiteKeyStore(settings.data_dir / "keys.db")
    )
    return Engine(settings, app, IdentityVault(settings.pseudonym_key, keys))
