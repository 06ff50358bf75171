"""Settings from `CASEHISTORY_*` environment variables and an optional TOML file.

Precedence: environment, then the file named by `CASEHISTORY_CONFIG` (or
`casehistory.toml` in the working directory, if present), then defaults. The
embedded default needs no settings at all: SQLite files under `./.casehistory`.

Keys (see docs/privacy.md for who holds which): each is given in hex, or in a
file named by `*_FILE`, or else created once in the data dir. Creation is
atomic and owner-only from the first byte, and every process that starts
together ends up reading the one key that won.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from eventsourcing.utils import strtobool

PREFIX = "CASEHISTORY_"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    """Where the embedded stores, keys and dead-letter files live."""
    store: str
    """`sqlite` (files under data_dir) or a `postgresql://` URL."""
    pseudonym_key: bytes
    """HMAC key of the citizen pseudonym: with it, a CPR number finds its citizen."""
    kafka_bootstrap: str | None
    kafka_topic: str
    kafka_dlq_topic: str
    kafka_group: str
    kafka_history_topic: str = "casehistory.history.v1"
    """The router's output: valid events keyed by pseudonym, CPR sealed, kept forever."""
    kafka_router_group: str = "casehistory-router"
    kafka_store_group: str = "casehistory-store"
    """The store writers' group on the history topic."""
    input_retention_hours: int = 168
    """`retention.ms` given to a new input topic (it holds raw CPRs)."""
    create_tables: bool = True
    """Whether engine processes create missing tables (no: `casehistory db init` made them)."""
    store_key: bytes = b""
    """AES key the event store's records are encrypted with (empty: not encrypted)."""
    integrity_key: bytes = b""
    """HMAC key of the chain anchors and the lookup log (empty: not anchored)."""
    partition_key: bytes = b""
    """HMAC key publishers use to spread citizens over partitions (not the pseudonym key)."""
    staff_key: bytes = b""
    """HMAC key of the caseworker pseudonym that read models carry instead of the staff id."""
    key_store: str | None = None
    """Where per-citizen keys live: a `postgresql://` URL, a SQLite file, or None for
    `keys.db` in data_dir (or the store's database on PostgreSQL)."""
    lookup_retention_days: int = 3653
    """How long lookup records are kept (the national agency asks 5 to 10 years)."""
    dead_letter_retention_days: int | None = None
    """How long dead letters are kept in files and the dead-letter topic (None: forever)."""
    live_citizens: int = 150_000
    """Citizens a live projection keeps decoded with their committed rows between
    catch-ups (`projections.live`); 0 recomputes each touched citizen from its store.
    A city (Copenhagen: 140,000 a year): at 100,000 citizens and 1,000 events/s, holding
    them all gave a p99 freshness of 0.8-1.2 s, holding 20,000 gave 9.6 s (about 10 KB
    each; docs/benchmarks.md)."""
    store_groups: int = 1
    """Partition groups of the history topic: group g holds the partitions p with
    p % store_groups == g, in an event store of its own with one writer."""
    group_stores: tuple[str, ...] = ()
    """Per group, the database URL of its event store ("" or missing: `store`)."""
    group_schemas: tuple[str, ...] = ()
    """Per group, its PostgreSQL schema ("" or missing: `group_schema`'s default)."""

    @property
    def uses_postgres(self) -> bool:
        return _is_postgres(self.store)

    def group_store(self, group: int) -> StoreLocation:
        """Where partition group `group`'s event store lives.

        One group: the store as ever (SQLite `events.db`, or the `public` schema).
        Several: SQLite `events-g<g>.db` under the data dir, or, on PostgreSQL, the
        schema `casehistory_g<g>` of the group's database (`CASEHISTORY_GROUP_<g>_STORE`
        and `CASEHISTORY_GROUP_<g>_SCHEMA` override either, e.g. to put a group on a
        server of its own).
        """
        if not 0 <= group < self.store_groups:
            raise ValueError(f"store group {group} is not one of 0..{self.store_groups - 1}")
        url = _nth(self.group_stores, group) or self.store
        if _is_postgres(url):
            default = "public" if self.store_groups == 1 else f"casehistory_g{group}"
            return StoreLocation(url, _nth(self.group_schemas, group) or default)
        name = "events.db" if self.store_groups == 1 else f"events-g{group}.db"
        return StoreLocation("sqlite", name)

    def group_of(self, partition: int) -> int:
        """The partition group (event store) of a history-topic partition."""
        return partition % self.store_groups

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        file_values = _file_values(env)

        def get(name: str, default: str | None = None) -> str | None:
            return env.get(PREFIX + name.upper(), file_values.get(name, default))

        data_dir = Path(get("data_dir", ".casehistory") or ".casehistory")

        def key(name: str) -> bytes:
            return _key(name, get(name), get(name + "_file"), data_dir)

        retention = get("dead_letter_retention_days")
        groups = int(get("store_groups", "1") or 1)
        if groups < 1:
            raise ValueError(f"{PREFIX}STORE_GROUPS must be at least 1, not {groups}")
        return cls(
            data_dir=data_dir,
            store=get("store", "sqlite") or "sqlite",
            pseudonym_key=key("pseudonym_key"),
            store_key=key("store_key"),
            integrity_key=key("integrity_key"),
            partition_key=key("partition_key"),
            staff_key=key("staff_key"),
            key_store=get("key_store"),
            lookup_retention_days=int(get("lookup_retention_days", "3653") or 3653),
            dead_letter_retention_days=int(retention) if retention else None,
            kafka_bootstrap=get("kafka_bootstrap"),
            kafka_topic=get("kafka_topic", "casehistory.events.v1") or "",
            kafka_dlq_topic=get("kafka_dlq_topic", "casehistory.events.dlq") or "",
            kafka_group=get("kafka_group", "casehistory-ingest") or "",
            kafka_history_topic=get("kafka_history_topic", "casehistory.history.v1") or "",
            kafka_router_group=get("kafka_router_group", "casehistory-router") or "",
            kafka_store_group=get("kafka_store_group", "casehistory-store") or "",
            input_retention_hours=int(get("input_retention_hours", "168") or 168),
            create_tables=strtobool(get("create_tables", "yes") or "yes"),
            live_citizens=int(get("live_citizens", "150000") or 0),
            store_groups=groups,
            group_stores=tuple(get(f"group_{g}_store", "") or "" for g in range(groups)),
            group_schemas=tuple(get(f"group_{g}_schema", "") or "" for g in range(groups)),
        )


@dataclass(frozen=True)
class StoreLocation:
    """An event store's database (`sqlite` or a PostgreSQL URL) and, within it, its
    schema (PostgreSQL) or file name under the data dir (SQLite)."""

    url: str
    schema: str

    @property
    def uses_postgres(self) -> bool:
        return _is_postgres(self.url)


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def _nth(values: tuple[str, ...], n: int) -> str:
    return values[n] if n < len(values) else ""


def _file_values(env: Mapping[str, str]) -> dict[str, str]:
    path = Path(env.get(PREFIX + "CONFIG", "casehistory.toml"))
    if not path.is_file():
        return {}
    data = tomllib.loads(path.read_text("utf-8"))
    section = data.get("casehistory", data)
    return {str(k): str(v) for k, v in section.items()}


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) readable by the owner only; tighten it if it exists."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def _key(name: str, configured: str | None, key_file: str | None, data_dir: Path) -> bytes:
    """The configured key (hex, or a file holding it), else one kept in the data dir."""
    if configured:
        return bytes.fromhex(configured)
    if key_file:
        return bytes.fromhex(Path(key_file).read_text().strip())
    path = data_dir / name.replace("_key", ".key")
    if not path.exists():
        create_key_file(path)
    return bytes.fromhex(path.read_text().strip())


def create_key_file(path: Path) -> None:
    """Write a new random key to `path` unless one is there; the first writer wins.

    The key goes to a temporary file created 0600 with O_EXCL and is linked into
    place, which fails if another process got there first; either way, the caller
    then reads the one key at `path`. No reader ever sees a partial key.
    """
    private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink()
