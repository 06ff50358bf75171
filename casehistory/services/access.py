"""Who may do what, and the log of every lookup of an identifiable citizen ("logning af opslag").

Roles live here once, for the command line and the read API alike: the CLI
takes its caller from `CASEHISTORY_USER` and `CASEHISTORY_ROLE`, the API from
the request (`casehistory.entrypoints.api.identity`: a local user file or OIDC bearer
tokens); both call `check(identity, action)` before acting, log a refusal with
`LookupLog.log_refusal(...)`, and call `LookupLog.log_lookup(...)` before
showing anything about a citizen.

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
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from casehistory.pg_schema import create_serially
from casehistory.settings import Settings, private_dir


class Role(StrEnum):
    CASEWORKER = "caseworker"
    """One citizen at a time, and the lists of citizens they work (rows by pseudonym), each
    with a purpose; every lookup and every list is logged."""
    ANALYST = "analyst"
    """Aggregates only (counts under 5 shown as "<5" in exports): never a row per citizen,
    a CPR, a history or a name."""
    AUDITOR = "auditor"
    """Audit trails, the lookup log, insight."""
    DATA_PROTECTION_OFFICER = "dpo"
    """As the auditor, plus employees' identities in insight, forgetting and CPR exports."""
    OPERATOR = "operator"
    """Runs the engine: operations and metrics; sees no personal data."""


class Action(StrEnum):
    VIEW_CITIZEN = "view_citizen"
    """One citizen's history and measures, with a purpose (logged)."""
    AUDIT = "audit"
    EXPORT_CPR = "export_cpr"
    AGGREGATES = "aggregates"
    """Counts over citizens: reports, cohorts, flows, caseloads."""
    PER_CITIZEN_ROWS = "per_citizen_rows"
    """Rows per citizen by pseudonym (durations, lists, clocks), without a CPR; with a purpose,
    each read logged with its search criterion (`log_rows`)."""
    LOOKUP_LOG = "lookup_log"
    INSIGHT = "insight"
    SEE_EMPLOYEES = "see_employees"
    """Who looked (employees' identities) in a citizen's insight."""
    FORGET = "forget"
    OPERATE = "operate"
    """Run and set up the engine (ingest, project, route, replay, verify, serve, ...) and see
    its own state: positions, lag, metrics, reconciliation."""
    API_DOCS = "api_docs"


PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.CASEWORKER: frozenset(
        {Action.VIEW_CITIZEN, Action.PER_CITIZEN_ROWS, Action.AGGREGATES, Action.API_DOCS}
    ),
    Role.ANALYST: frozenset({Action.AGGREGATES, Action.API_DOCS}),
    Role.AUDITOR: frozenset(
        {Action.VIEW_CITIZEN, Action.AUDIT, Action.LOOKUP_LOG, Action.INSIGHT, Action.AGGREGATES,
         Action.OPERATE, Action.API_DOCS}
    ),
    Role.DATA_PROTECTION_OFFICER: frozenset(
        {
            Action.VIEW_CITIZEN,
            Action.AUDIT,
            Action.LOOKUP_LOG,
            Action.INSIGHT,
            Action.SEE_EMPLOYEES,
            Action.AGGREGATES,
            Action.PER_CITIZEN_ROWS,
            Action.EXPORT_CPR,
            Action.FORGET,
            Action.API_DOCS,
        }
    ),
    Role.OPERATOR: frozenset({Action.OPERATE, Action.API_DOCS}),
}
SMALL_COUNT = 5
"""Counts below this are shown as "<5" in aggregates exported to analysts."""


class PermissionDenied(Exception):
    """The caller's role does not allow the action (or the caller is unknown)."""

    def __init__(
        self, message: str, identity: Identity | None = None, action: Action | None = None
    ) -> None:
        super().__init__(message)
        self.identity = identity
        """Who was refused, when known (the refusal is then logged)."""
        self.action = action


@dataclass(frozen=True)
class Identity:
    """Who is asking, with every role they hold (a request may carry several)."""

    who: str
    roles: frozenset[Role]
    method: str = "env"
    """Where the identity came from: `env` (CLI), `local` (user file) or `oidc`."""

    def may(self, action: Action) -> bool:
        return any(action in PERMISSIONS[role] for role in self.roles)

    @property
    def role_names(self) -> str:
        return ",".join(sorted(r.value for r in self.roles))


def check(identity: Identity, action: Action) -> None:
    """Raise `PermissionDenied` unless one of the identity's roles allows `action`."""
    if not identity.may(action):
        allowed = ", ".join(r.value for r in Role if action in PERMISSIONS[r])
        raise PermissionDenied(
            f"role {identity.role_names or '(none)'} may not {action.value} "
            f"(roles that may: {allowed})", identity, action
        )


def identity_from_env(environ: Mapping[str, str] | None = None) -> Identity:
    """The CLI's caller: `CASEHISTORY_USER` and `CASEHISTORY_ROLE` (one role, or several
    separated by commas, as a token's roles claim may carry several)."""
    env = os.environ if environ is None else environ
    who = env.get("CASEHISTORY_USER", "").strip()
    names = [name.strip() for name in env.get("CASEHISTORY_ROLE", "").split(",") if name.strip()]
    if not who or not names:
        raise PermissionDenied("set CASEHISTORY_USER and CASEHISTORY_ROLE to say who is asking")
    try:
        return Identity(who, frozenset(Role(name) for name in names))
    except ValueError:
        raise PermissionDenied(
            f"unknown role in {','.join(names)!r}; roles are {', '.join(r.value for r in Role)}"
        ) from None


SUPPRESSED = f"<{SMALL_COUNT}"


def is_suppressed(count: int, identity: Identity | None) -> bool:
    """Whether this caller sees `count` only as "<5": an analyst, and 1 to 4."""
    return identity is not None and small_counts_hidden(identity) and 0 < count < SMALL_COUNT


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


def small_counts_hidden(identity: Identity) -> bool:
    """Whether this caller's exported aggregates show counts under 5 as "<5" (analysts only)."""
    return Role.ANALYST in identity.roles and not identity.may(Action.EXPORT_CPR)


LOOKUP = "lookup"
REFUSED = "refused"
ROWS_SHOWN = "rows per citizen by pseudonym"
"""What a lookup record of a per-citizen listing says was shown."""


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
    kind: str = LOOKUP
    """`lookup`, or `refused` for an action a caller's roles did not allow."""

    def canonical(self) -> bytes:
        fields = asdict(self)
        if self.kind == LOOKUP:  # records from before refusals were logged verify unchanged
            del fields["kind"]
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


LOOKUP_LOCK_ID = 0x0CA5F
_COLUMNS = "at, who, role, purpose, citizen_key, criterion, shown, expires_at, kind"


class LookupLog:
    """The append-only, keyed-chain log of lookups and refusals, in SQLite or PostgreSQL.

    One connection shared by a server's threads: calls are serialised by a lock.
    """

    def __init__(self, settings: Settings) -> None:
        self._lock = threading.RLock()
        self._key = settings.integrity_key
        self._retention = timedelta(days=settings.lookup_retention_days)
        self._postgres = settings.uses_postgres
        self._m = "%s" if self._postgres else "?"
        if self._postgres:
            import psycopg

            self._db: Any = psycopg.connect(settings.store, autocommit=True)
            if settings.create_tables:
                create_serially(self._db, _POSTGRES_DDL)
            return
        path = private_dir(settings.data_dir) / "lookups.db"
        path.touch(mode=0o600)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for statement in _SQLITE_DDL:
            self._db.execute(statement)
        if not any(
            c[1] == "kind" for c in self._db.execute("PRAGMA table_info(lookup_log)")
        ):  # a log from before refusals were logged
            self._db.execute(_ADD_KIND)

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
        return self._append(identity, purpose.strip(), citizen_key, criterion, shown, LOOKUP, at)

    def log_rows(self, identity: Identity, purpose: str, criterion: str) -> LookupRecord:
        """Record a read of rows per citizen (a list, a per-citizen export) by its search
        criterion, before the rows are shown; the purpose is required."""
        return self.log_lookup(identity, purpose, criterion=criterion, shown=ROWS_SHOWN)

    def log_refusal(
        self, identity: Identity, refused: str, where: str, at: datetime | None = None
    ) -> LookupRecord:
        """Record that `identity` was refused `refused` (an action) at `where` (a path or a
        command); nothing was shown."""
        return self._append(identity, "", None, where, str(refused), REFUSED, at)

    def _append(
        self, identity: Identity, purpose: str, citizen_key: str | None, criterion: str | None,
        shown: str, kind: str, at: datetime | None,
    ) -> LookupRecord:
        moment = (at or datetime.now(UTC)).astimezone(UTC)
        record = LookupRecord(
            moment.isoformat(),
            identity.who,
            identity.role_names,
            purpose,
            citizen_key,
            criterion,
            shown,
            (moment + self._retention).isoformat(),
            kind,
        )
        m = self._m
        with self._lock, self._transaction():
            if self._postgres:  # one writer at a time extends the chain
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", [LOOKUP_LOCK_ID])
            row = self._db.execute("SELECT mac FROM lookup_head WHERE id = 1").fetchone()
            previous = row[0] if row else ""
            mac = hmac.new(self._key, previous.encode() + b"|" + record.canonical(),
                           hashlib.sha256).hexdigest()
            self._db.execute(
                f"INSERT INTO lookup_log ({_COLUMNS}, previous, mac) "
                f"VALUES ({', '.join([m] * 11)})",
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
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM lookup_log{where} ORDER BY id",
                [citizen_key] if citizen_key else [],
            ).fetchall()
        return [LookupRecord(*row) for row in rows]

    def problems(self) -> Iterator[str]:
        """What breaks the chain: an altered, inserted or removed record (the newest too)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, {_COLUMNS}, previous, mac FROM lookup_log ORDER BY id"
            ).fetchall()
            head = self._db.execute("SELECT mac FROM lookup_head WHERE id = 1").fetchone()
        expected: str | None = None  # the first record kept may follow expired ones
        for row in rows:
            record, previous, mac = LookupRecord(*row[1:10]), row[10], row[11]
            if expected is not None and previous != expected:
                yield f"record {row[0]}: does not follow the record before it (one removed?)"
            good = hmac.new(self._key, previous.encode() + b"|" + record.canonical(),
                            hashlib.sha256).hexdigest()
            if not hmac.compare_digest(good, mac):
                yield f"record {row[0]}: altered (its MAC does not match)"
            expected = mac
        if (head[0] if head else None) != expected:
            yield "the newest records are missing (the log's head is elsewhere)"

    def purge_expired(self, now: datetime | None = None) -> int:
        """Delete records past their retention; returns how many."""
        moment = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
        with self._lock, self._transaction():
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
    "shown TEXT NOT NULL, expires_at TEXT NOT NULL, previous TEXT NOT NULL, mac TEXT NOT NULL, "
    "kind TEXT NOT NULL DEFAULT 'lookup')"
)
_ADD_KIND = "ALTER TABLE lookup_log ADD COLUMN kind TEXT NOT NULL DEFAULT 'lookup'"
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
    _ADD_KIND.replace("ADD COLUMN", "ADD COLUMN IF NOT EXISTS"),
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
