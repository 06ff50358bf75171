"""Who may do what, and the log of every lookup of an identifiable citizen ("logning af opslag").

Roles live here once, for the command line and the read API alike: the CLI
takes its caller from `CASEHISTORY_USER` and `CASEHISTORY_ROLE`, the API from
the request; both call `check(identity, action)` before acting and
`LookupLog.log_lookup(...)` before showing anything about a citizen.

The lookup log is append-only (a trigger refuses updates, and deletes of
records still within their retention) and tamper-evident: each record carries
an HMAC under the integrity key over the previous record's MAC and its own
fields, and the newest MAC is kept as the log's head.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from casehistory.settings import Settings, private_dir


class Role(StrEnum):
    CASEWORKER = "caseworker"
    """One citizen at a time, with a purpose."""
    ANALYST = "analyst"
    """Aggregates only (counts under 5 shown as "<5" in exports)."""
    AUDITOR = "auditor"
    """Audit trails, the lookup log, insight."""
    DATA_PROTECTION_OFFICER = "dpo"
    """As the auditor, plus employees' identities in insight, forgetting and CPR exports."""
    OPERATOR = "operator"
    """Runs the engine; sees no personal data."""


class Action(StrEnum):
    VIEW_CITIZEN = "view_citizen"
    AUDIT = "audit"
    EXPORT_CPR = "export_cpr"
    AGGREGATES = "aggregates"
    LOOKUP_LOG = "lookup_log"
    INSIGHT = "insight"
    SEE_EMPLOYEES = "see_employees"
    """Who looked (employees' identities) in a citizen's insight."""
    FORGET = "forget"
    OPERATE = "operate"


PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.CASEWORKER: frozenset({Action.VIEW_CITIZEN}),
    Role.ANALYST: frozenset({Action.AGGREGATES}),
    Role.AUDITOR: frozenset(
        {Action.VIEW_CITIZEN, Action.AUDIT, Action.LOOKUP_LOG, Action.INSIGHT, Action.AGGREGATES}
    ),
    Role.DATA_PROTECTION_OFFICER: frozenset(
        {
            Action.VIEW_CITIZEN,
            Action.AUDIT,
            Action.LOOKUP_LOG,
            Action.INSIGHT,
            Action.SEE_EMPLOYEES,
            Action.AGGREGATES,
            Action.EXPORT_CPR,
            Action.FORGET,
        }
    ),
    Role.OPERATOR: frozenset({Action.OPERATE}),
}
SMALL_COUNT = 5
"""Counts below this are shown as "<5" in aggregates exported to analysts."""


class PermissionDenied(Exception):
    """The caller's role does not allow the action (or the caller is unknown)."""


@dataclass(frozen=True)
class Identity:
    who: str
    role: Role


def check(identity: Identity, action: Action) -> None:
    """Raise `PermissionDenied` unless the identity's role allows `action`."""
    if action not in PERMISSIONS[identity.role]:
        raise PermissionDenied(f"role {identity.role.value} may not {action.value}")


def identity_from_env(environ: Mapping[str, str] | None = None) -> Identity:
    """The CLI's caller: `CASEHISTORY_USER` and `CASEHISTORY_ROLE`."""
    env = os.environ if environ is None else environ
    who = env.get("CASEHISTORY_USER", "").strip()
    role = env.get("CASEHISTORY_ROLE", "").strip()
    if not who or not role:
        raise PermissionDenied("set CASEHISTORY_USER and CASEHISTORY_ROLE to say who is asking")
    try:
        return Identity(who, Role(role))
    except ValueError:
        raise PermissionDenied(
            f"unknown role {role!r}; one of {', '.join(r.value for r in Role)}"
        ) from None


SUPPRESSED = f"<{SMALL_COUNT}"


def is_suppressed(count: int, identity: Identity | None) -> bool:
    """Whether this caller sees `count` only as "<5": an analyst, and 1 to 4."""
    return identity is not None and identity.role is Role.ANALYST and 0 < count < SMALL_COUNT


def shown_count(count: int, identity: Identity | None) -> str:
    """A count as shown to this caller: "<5" for analysts when it is small (but not 0)."""
    return SUPPRESSED if is_suppressed(count, identity) else f"{count:,}"


def suppressed_rows(
    rows: Iterable[dict[str, Any]],
    identity: Identity | None,
    counts: Sequence[str],
    shares: Sequence[str] = (),
) -> Iterator[dict[str, Any]]:
    """An exported aggregate's rows as this caller may see them.

    For an analyst each count in `counts` under 5 becomes "<5", and a row with such
    a count loses its `shares` too (a share and its whole give the count back).
    """
    for row in rows:
        hidden = [name for name in counts if is_suppressed(row[name], identity)]
        if hidden:
            row = {**row, **dict.fromkeys(hidden, SUPPRESSED), **dict.fromkeys(shares)}
        yield row


@dataclass(frozen=True)
class LookupRecord:
    at: str
    who: str
    role: str
    purpose: str
    citizen_key: str | None
    criterion: str | None
    shown: str
    expires_at: str

    def canonical(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()


LOOKUP_LOCK_ID = 0x0CA5F
_COLUMNS = "at, who, role, purpose, citizen_key, criterion, shown, expires_at"


class LookupLog:
    """The append-only, keyed-chain log of lookups, in SQLite or PostgreSQL."""

    def __init__(self, settings: Settings) -> None:
        self._key = settings.integrity_key
        self._retention = timedelta(days=settings.lookup_retention_days)
        self._postgres = settings.uses_postgres
        self._m = "%s" if self._postgres else "?"
        if self._postgres:
            import psycopg

            self._db: Any = psycopg.connect(settings.store, autocommit=True)
            statements = _POSTGRES_DDL if settings.create_tables else []
        else:
            path = private_dir(settings.data_dir) / "lookups.db"
            path.touch(mode=0o600)
            self._db = sqlite3.connect(path, isolation_level=None)
            statements = _SQLITE_DDL
        for statement in statements:
            self._db.execute(statement)

    def log_lookup(
        self,
        identity: Identity,
        purpose: str,
        *,
        citizen_key: str | None = None,
        criterion: str | None = None,
        shown: str,
        at: datetime | None = None,
    ) -> LookupRecord:
        """Record one lookup before its result is shown; the purpose is required."""
        if not purpose.strip():
            raise PermissionDenied("a lookup needs a purpose or case reference")
        if (citizen_key is None) == (criterion is None):
            raise ValueError("a lookup names one citizen (its pseudonym) or a search criterion")
        moment = (at or datetime.now(UTC)).astimezone(UTC)
        record = LookupRecord(
            moment.isoformat(),
            identity.who,
            identity.role.value,
            purpose.strip(),
            citizen_key,
            criterion,
            shown,
            (moment + self._retention).isoformat(),
        )
        m = self._m
        with self._transaction():
            if self._postgres:  # one writer at a time extends the chain
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", [LOOKUP_LOCK_ID])
            row = self._db.execute("SELECT mac FROM lookup_head WHERE id = 1").fetchone()
            previous = row[0] if row else ""
            mac = hmac.new(self._key, previous.encode() + b"|" + record.canonical(),
                           hashlib.sha256).hexdigest()
            self._db.execute(
                f"INSERT INTO lookup_log ({_COLUMNS}, previous, mac) "
                f"VALUES ({', '.join([m] * 10)})",
                [*asdict(record).values(), previous, mac],
            )
            self._db.execute(
                f"INSERT INTO lookup_head (id, mac) VALUES (1, {m}) "
                "ON CONFLICT (id) DO UPDATE SET mac = excluded.mac",
                [mac],
            )
        return record

    def records(self, citizen_key: str | None = None) -> list[LookupRecord]:
        """The records (of one citizen, or all), oldest first."""
        where = f" WHERE citizen_key = {self._m}" if citizen_key else ""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM lookup_log{where} ORDER BY id",
            [citizen_key] if citizen_key else [],
        ).fetchall()
        return [LookupRecord(*row) for row in rows]

    def problems(self) -> Iterator[str]:
        """What breaks the chain: an altered, inserted or removed record (the newest too)."""
        rows = self._db.execute(
            f"SELECT id, {_COLUMNS}, previous, mac FROM lookup_log ORDER BY id"
        ).fetchall()
        expected: str | None = None  # the first record kept may follow expired ones
        for row in rows:
            record, previous, mac = LookupRecord(*row[1:9]), row[9], row[10]
            if expected is not None and previous != expected:
                yield f"record {row[0]}: does not follow the record before it (one removed?)"
            good = hmac.new(self._key, previous.encode() + b"|" + record.canonical(),
                            hashlib.sha256).hexdigest()
            if not hmac.compare_digest(good, mac):
                yield f"record {row[0]}: altered (its MAC does not match)"
            expected = mac
        head = self._db.execute("SELECT mac FROM lookup_head WHERE id = 1").fetchone()
        if (head[0] if head else None) != expected:
            yield "the newest records are missing (the log's head is elsewhere)"

    def purge_expired(self, now: datetime | None = None) -> int:
        """Delete records past their retention; returns how many."""
        moment = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
        with self._transaction():
            cursor = self._db.execute(
                f"DELETE FROM lookup_log WHERE expires_at < {self._m}", [moment]
            )
        return int(cursor.rowcount)

    def _transaction(self) -> Any:
        if self._postgres:
            return self._db.transaction()
        return _SQLiteTransaction(self._db)

    def close(self) -> None:
        self._db.close()


class _SQLiteTransaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


_TABLE = (
    "CREATE TABLE IF NOT EXISTS lookup_log (id {id}, at TEXT NOT NULL, who TEXT NOT NULL, "
    "role TEXT NOT NULL, purpose TEXT NOT NULL, citizen_key TEXT, criterion TEXT, "
    "shown TEXT NOT NULL, expires_at TEXT NOT NULL, previous TEXT NOT NULL, mac TEXT NOT NULL)"
)
_HEAD = "CREATE TABLE IF NOT EXISTS lookup_head (id INTEGER PRIMARY KEY, mac TEXT NOT NULL)"
_SQLITE_DDL = [
    _TABLE.format(id="INTEGER PRIMARY KEY AUTOINCREMENT"),
    _HEAD,
    "CREATE INDEX IF NOT EXISTS lookup_log_citizen ON lookup_log (citizen_key)",
    "CREATE TRIGGER IF NOT EXISTS lookup_log_no_update BEFORE UPDATE ON lookup_log "
    "BEGIN SELECT RAISE(ABORT, 'the lookup log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS lookup_log_retention BEFORE DELETE ON lookup_log "
    "WHEN old.expires_at >= strftime('%Y-%m-%dT%H:%M:%S', 'now') "
    "BEGIN SELECT RAISE(ABORT, 'lookup records are kept for their retention'); END",
]
_POSTGRES_DDL = [
    _TABLE.format(id="BIGSERIAL PRIMARY KEY"),
    _HEAD,
    "CREATE INDEX IF NOT EXISTS lookup_log_citizen ON lookup_log (citizen_key)",
    "CREATE OR REPLACE FUNCTION lookup_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF TG_OP = 'UPDATE' OR OLD.expires_at >= to_char(now() AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS') THEN RAISE EXCEPTION 'the lookup log is append-only'; END IF; "
    "RETURN OLD; END $$",
    "DROP TRIGGER IF EXISTS lookup_log_guard ON lookup_log",
    "CREATE TRIGGER lookup_log_guard BEFORE UPDATE OR DELETE ON lookup_log "
    "FOR EACH ROW EXECUTE FUNCTION lookup_log_guard()",
]
