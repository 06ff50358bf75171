"""One place that builds the engine from settings: store, vault, views, services."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment

from casehistory.application import CaseHistory
from casehistory.identity import IdentityVault, SQLiteKeyStore
from casehistory.settings import Settings
from consumers.deadletter import DeadLetterSink
from consumers.ingest import IngestService
from projections.durations import DurationsRow, SQLiteDurationsView, row_for
from projections.follower import Follower


@dataclass
class Engine:
    settings: Settings
    app: CaseHistory
    vault: IdentityVault
    durations_view: SQLiteDurationsView

    def ingest_service(self, dead_letters: DeadLetterSink) -> IngestService:
        return IngestService(self.app, self.vault, dead_letters)

    def durations_follower(self) -> Follower[DurationsRow]:
        return Follower(self.app, self.durations_view, row_for)

    def project(self) -> int:
        """Bring every read model up to date with the event store."""
        return self.durations_follower().catch_up()

    def close(self) -> None:
        self.app.close()
        self.durations_view.datastore.close()


def sqlite_env(path: Path) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}


def event_store_env(settings: Settings) -> dict[str, str]:
    return {
        **sqlite_env(settings.data_dir / "events.db"),
        "APPLICATION_RECORDER_TOPIC": "casehistory.recorders:SQLiteLedgerRecorder",
    }


def build(settings: Settings | None = None) -> Engine:
    """The engine on the configured store (SQLite under the data dir by default)."""
    settings = settings or Settings.load()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = CaseHistory(env=event_store_env(settings))
    views = InfrastructureFactory.construct(env=_view_env(settings.data_dir / "durations.db"))
    view = views.tracking_recorder(SQLiteDurationsView)
    assert isinstance(view, SQLiteDurationsView)
    vault = IdentityVault(settings.pseudonym_key, SQLiteKeyStore(settings.data_dir / "keys.db"))
    return Engine(settings, app, vault, view)


def _view_env(path: Path) -> Environment:
    return Environment("durations", sqlite_env(path))
