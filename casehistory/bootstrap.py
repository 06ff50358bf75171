"""One place that builds the engine from settings: store, vault, views, services.

`CASEHISTORY_STORE=sqlite` (the default) keeps the event store, the read models
and the key store in SQLite files under the data dir (each component in its own
file, as `eventsourcing`'s SQLite tables have fixed names). A `postgresql://`
URL puts all of them in that database, in their own tables, except the key
store when `CASEHISTORY_KEY_STORE` names a database of its own. The event
store's records are encrypted with the store key (docs/privacy.md).

With `CASEHISTORY_STORE_GROUPS=G` there are G event stores, one per partition
group of the history topic (`Settings.group_store`): each its own application,
tables, notification sequence and lock, in its own schema, file or server.
"""

from __future__ import annotations

import base64
import fcntl
import gc
import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from casehistory.application import CaseHistory
from casehistory.consumers.deadletter import DeadLetterSink
from casehistory.domain.citizen import Citizen
from casehistory.pg_schema import create_schema
from casehistory.projections.follower import Follower, Followers
from casehistory.projections.history import HistoryDecoder
from casehistory.projections.lease import Lease, file_lease, postgres_lease
from casehistory.projections.rows import TABLES
from casehistory.projections.source import EventStoreSource
from casehistory.projections.store import (
    TRACKING_TABLE,
    PostgresReadModel,
    ReadModelStore,
    SQLiteReadModel,
)
from casehistory.recorders import FENCE_TABLE, HEADS_TABLE, INDEX_TABLE, LedgerEntry
from casehistory.services.access import LookupLog
from casehistory.services.identity import IdentityVault, KeyStore, PostgresKeyStore, SQLiteKeyStore
from casehistory.settings import Settings, private_dir

if TYPE_CHECKING:  # the ingest imports Kafka and the wire contract: rebuild workers skip them
    from casehistory.consumers.ingest import IngestService

READ_MODEL = "history"
"""The read model: every table of `projections.rows.TABLES`, with one tracked position."""
REPLAY_SCHEMA = "casehistory_replay"
SCHEMA_LOCK_ID = 0x0CA5E  # advisory lock key held while creating tables


@dataclass
class Engine:
    settings: Settings
    app: CaseHistory
    """The event store of the first group opened (with one group, the event store)."""
    vault: IdentityVault
    stores: dict[int, CaseHistory] = field(default_factory=dict)
    """The partition groups' event stores this engine opened, by group (all, unless
    built for one group's store writer)."""
    _read_model: ReadModelStore | None = None
    _opened: list[ReadModelStore] = field(default_factory=list)
    _lookup_log: LookupLog | None = None

    @property
    def lookup_log(self) -> LookupLog:
        """The log every lookup of an identifiable citizen is written to (opened on first use)."""
        if self._lookup_log is None:
            self._lookup_log = LookupLog(self.settings)
        return self._lookup_log

    def read_model(self) -> ReadModelStore:
        """The live read model (created on first use: ingest-only processes skip it)."""
        if self._read_model is None:
            self._read_model = self._open_read_model(replay=False)
        return self._read_model

    def replay_read_model(self) -> ReadModelStore:
        """An empty copy of the read model, beside the live one, for a rebuild."""
        store = self._open_read_model(replay=True)
        store.clear()
        return store

    def _open_read_model(self, *, replay: bool) -> ReadModelStore:
        store: ReadModelStore
        if self.settings.uses_postgres:
            schema = REPLAY_SCHEMA if replay else "public"
            store = PostgresReadModel(self.settings.store, self.app.name, schema,
                                      self.tracking_names())
        else:
            folder = private_dir(self.settings.data_dir / ("replay" if replay else ""))
            store = SQLiteReadModel(folder / f"{READ_MODEL}.db", self.app.name,
                                    self.tracking_names(), private=replay)
        if replay or self.settings.create_tables:
            with schema_lock(self.settings):
                store.create()
        else:  # tables owned by another role (`casehistory db init`): never drop its indexes
            store.bulk_indexes = False
        self._opened.append(store)
        return store

    def tracking_names(self) -> list[str]:
        """Each partition group's event store, by the name read models track it under."""
        if self.settings.store_groups == 1:
            return [self.app.name]
        return [f"{self.app.name}-g{group}" for group in range(self.settings.store_groups)]

    def follower(
        self, store: ReadModelStore | None = None, workers: int = 0, *, follow: bool = False
    ) -> Followers:
        """The followers that keep `store` (default: the live read model) up to date, one
        per partition group's event store (every group's store must be open).

        A large rebuild from zero computes rows in `workers` processes (0: one per core),
        shared between the stores. `follow`: a long-running worker, which holds up to
        `live_citizens` citizens between catch-ups (a one-shot catch-up holds none, so a
        report after a backlog does not take a worker's memory).
        """
        from casehistory.parallel import ShardedRows, default_workers

        store = store or self.read_model()
        workers = max(1, (workers or default_workers()) // len(self.stores))
        names = self.tracking_names()
        followers = []
        for group, app in self.stores.items():
            source = EventStoreSource(app)
            followers.append(Follower(
                source, store, HistoryDecoder(app.mapper), self.settings.staff_key,
                fresh_load=(ShardedRows(self.settings, source, workers, group, names[group])
                            if workers > 1 else None),
                tracking=names[group],
                live_citizens=self.settings.live_citizens if follow else 0,
            ))  # fmt: skip
        return Followers(followers)

    def citizen(self, cpr: str) -> Citizen | None:
        """The citizen with this CPR number, found through its keyed pseudonym."""
        return self.find(self.vault.citizen_key(cpr))

    def find(self, citizen_key: str) -> Citizen | None:
        """The citizen with this pseudonym, from the store that holds it (any group)."""
        return self.store_of(citizen_key).find(citizen_key)

    def store_of(self, citizen_key: str) -> CaseHistory:
        """The event store holding this citizen (by its head), else group 0's."""
        for store in self.stores.values():
            if store is not self.app and store.heads([citizen_key]):
                return store
        return self.app

    def ledger(self, source_prefix: str = "") -> Iterator[LedgerEntry]:
        """The ingest ledgers of every partition group's store (see `recorders`)."""
        for store in self.stores.values():
            recorder: Any = store.recorder
            yield from recorder.ledger(source_prefix)

    def ingest_service(self, dead_letters: DeadLetterSink, group: int = 0) -> IngestService:
        """The ingest into partition group `group`'s event store."""
        from casehistory.consumers.ingest import IngestService

        claims = self.vault.keys if self.settings.store_groups > 1 else None
        return IngestService(self.stores[group], self.vault, dead_letters, claims=claims)

    def projection_lease(
        self, stop: threading.Event, *, wait: bool = True
    ) -> AbstractContextManager[Lease]:
        """Held by the one worker that applies the projection (see projections.lease)."""
        if self.settings.uses_postgres:
            return postgres_lease(self.settings.store, READ_MODEL, stop, wait=wait)
        return file_lease(self.settings.data_dir / f"{READ_MODEL}.lease", stop, wait=wait)

    def project(
        self, on_batch: Callable[[int], None] | None = None, patience: float = 120.0
    ) -> int:
        """Bring the read model up to date with the event store; returns notifications passed.

        Under the projection lease; when a worker holds it, wait (up to `patience`
        seconds) for that worker to reach today's head instead of competing with it.
        """
        follower = self.follower()
        with self.projection_lease(threading.Event(), wait=False) as lease:
            if lease:
                return follower.catch_up(on_batch)
        head = follower.head()
        deadline = time.monotonic() + patience
        while follower.position < head:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the projection worker holding the lease is not at {head}")
            time.sleep(0.2)
        return 0

    def close(self) -> None:
        for app in self.stores.values():
            app.close()
        self.vault.keys.close()
        if self._lookup_log is not None:
            self._lookup_log.close()
        for store in self._opened:
            store.close()


def tune_garbage_collector() -> None:
    """Make CPython's full collections rare in an engine process (set once, at start).

    A large aggregate cache (`AGGREGATE_CACHE_MAXSIZE`; none by default since the
    ingest appends from heads) keeps about a million objects alive, and with the
    default thresholds every full collection walks all of them: dozens of walks per
    few hundred thousand events made the ingest about 1.5x slower with a
    20,000-citizen cache (measured, docs/benchmarks.md). The engine makes few
    reference cycles, so collecting less often costs little memory.
    """
    gc.set_threshold(10_000, 10, 100)


@contextmanager
def collections_after_batch() -> Iterator[None]:
    """Hold CPython's cyclic collections back while one ingest batch is handled.

    A batch's records, facts and stored events live until the batch ends and are then
    freed by reference counting; with the collector on, each young collection walks the
    ones alive at that moment: `ingest_files` at 10,000 citizens spent 5.3-6.4 us of its
    81-92 us of CPU per event in the collector with `tune_garbage_collector`'s thresholds,
    and 0.4-0.5 us held back (bench/NOTES.md). Garbage in cycles made during the batch
    waits for the next collection after it. A collector already off stays off.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class LongLivedObjects:
    """Keeps what a long-running worker holds out of CPython's collections.

    A projection worker holding a city's citizens (`live_citizens`) keeps millions of
    objects alive. A full collection walks every one of them (3.2-3.3 s with 77,000
    citizens held), and with `tune_garbage_collector`'s thresholds the middle generation
    gathers what a catch-up keeps (its citizens' new rows) until a collection of it
    walks 300,000 objects (0.36 s every 13,000 notifications): each a stall of the
    catch-up in progress. `settle`, called between catch-ups, collects what was made
    since it last ran (so cyclic garbage among it is freed, not kept) and freezes the
    survivors: later collections skip them, and reference counting still frees an
    evicted citizen. It runs at most every `every_s` seconds; the first call always runs.
    """

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s = every_s
        self._next = 0.0

    def settle(self) -> bool:
        """Collect and freeze unless the last time was less than `every_s` ago; True if
        it did."""
        if time.monotonic() < self._next:
            return False
        gc.collect()
        gc.freeze()
        self._next = time.monotonic() + self.every_s
        return True


def drop_engine_tables(url: str) -> None:
    """Drop the engine's own tables (and nothing else) from a PostgreSQL database."""
    import psycopg

    tables = ["casehistory_events", "ingest_ledger", "citizen_keys", "forgotten_citizens",
              "chain_anchors", HEADS_TABLE, INDEX_TABLE, FENCE_TABLE, TRACKING_TABLE, *TABLES]
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {', '.join(tables)}")
        connection.execute(f'DROP SCHEMA IF EXISTS "{REPLAY_SCHEMA}" CASCADE')


@contextmanager
def schema_lock(
    settings: Settings, url: str | None = None, schema: str = "public"
) -> Iterator[None]:
    """Serialise table creation between processes starting at once.

    `eventsourcing` creates its tables on construction; two processes doing that
    concurrently can collide (PostgreSQL: "tuple concurrently updated"; SQLite:
    the tracking-table migration), so construction happens under a lock (on the
    server of `url`, default the store's; one lock per schema, so partition groups'
    writers starting together do not wait for each other).
    """
    url = url or settings.store
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg

        lock = SCHEMA_LOCK_ID if schema == "public" else int.from_bytes(
            hashlib.sha256(f"casehistory schema {schema}".encode()).digest()[:8], "big",
            signed=True,
        )
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("SELECT pg_advisory_lock(%s)", [lock])
            try:
                yield
            finally:
                connection.execute("SELECT pg_advisory_unlock(%s)", [lock])
    else:
        with (settings.data_dir / ".schema.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


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
        # eventsourcing ends a session idle in a transaction after 5 s. A rebuild or catch-up
        # streams histories through one read transaction while it writes rows between
        # fetches, which on a busy server can take longer; 5 minutes still ends a stuck one.
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "300",
    }


def event_store_env(settings: Settings, group: int = 0) -> dict[str, str]:
    """`eventsourcing`'s settings for partition group `group`'s event store."""
    location = settings.group_store(group)
    cipher = (
        {
            "CIPHER_TOPIC": "casehistory.store_cipher:StoreCipher",
            "CIPHER_KEY": base64.b64encode(settings.store_key).decode("ascii"),
        }
        if settings.store_key
        else {}
    )
    if location.uses_postgres:
        return {
            **postgres_env(location.url, settings.create_tables),
            # One group with no schema of its own keeps eventsourcing's (POSTGRES_SCHEMA).
            **({"POSTGRES_SCHEMA": location.schema}
               if settings.store_groups > 1 or any(settings.group_schemas[group : group + 1])
               else {}),
            "APPLICATION_RECORDER_TOPIC": "casehistory.services.anchors:PostgresAnchoredRecorder",
            **cipher,
        }
    return {
        **sqlite_env(settings.data_dir / location.schema),
        "APPLICATION_RECORDER_TOPIC": "casehistory.services.anchors:SQLiteAnchoredRecorder",
        **cipher,
    }


def key_store(settings: Settings) -> KeyStore:
    """The per-citizen key store: its own database (or SQLite file) if configured, else
    beside the events."""
    url = settings.key_store or (settings.store if settings.uses_postgres else None)
    if url is not None and url.startswith(("postgresql://", "postgres://")):
        return PostgresKeyStore(url, create_table=settings.create_tables)
    return SQLiteKeyStore(Path(url) if url else settings.data_dir / "keys.db")


def index_key(settings: Settings) -> bytes:
    """The event index's HMAC key, derived from the pseudonym key (held by every writer)."""
    return hmac.new(settings.pseudonym_key, b"casehistory event index", hashlib.sha256).digest()


def build(settings: Settings | None = None, group: int | None = None) -> Engine:
    """The engine on the configured store (SQLite under the data dir by default).

    With `group`, only that partition group's event store is opened (a store
    writer touches no other group's tables, not even to create them).
    """
    settings = settings or Settings.load()
    private_dir(settings.data_dir)
    stores: dict[int, CaseHistory] = {}
    try:
        for g in range(settings.store_groups) if group is None else [group]:
            stores[g] = open_store(settings, g)
    except BaseException:
        for store in stores.values():
            store.close()
        raise
    vault = IdentityVault(settings.pseudonym_key, key_store(settings))
    return Engine(settings, next(iter(stores.values())), vault, stores=stores)


def open_store(settings: Settings, group: int) -> CaseHistory:
    """Partition group `group`'s event store (its schema and tables created if allowed)."""
    location = settings.group_store(group)
    lock_url = location.url if location.uses_postgres else None
    with schema_lock(settings, lock_url, location.schema):
        if location.uses_postgres and settings.create_tables and location.schema != "public":
            create_schema(location.url, location.schema)
        app = CaseHistory(env=event_store_env(settings, group))
    app.recorder.anchor_key = settings.integrity_key or None  # type: ignore[attr-defined]
    app.index_key = index_key(settings)
    recorder: Any = app.recorder
    # A store older than the heads gets them from the process that owns its tables
    # (with `create_tables` off, `casehistory db init` is that process).
    if settings.create_tables and recorder.max_notification_id() and not recorder.has_heads():
        with schema_lock(settings, lock_url, location.schema):
            if not recorder.has_heads():
                app.backfill_heads()
    return app
