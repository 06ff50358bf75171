"""Who a citizen is: keyed pseudonyms, and the CPR sealed with a key per citizen.

The event store never holds a CPR number in clear: aggregates are found by the
keyed pseudonym (`citizen_key`) and carry the CPR sealed with AES-GCM under a
random key kept in a separate key store. Destroying that key (crypto-shredding)
makes the CPR unrecoverable while the history stays usable.

A destroyed key leaves a tombstone (the pseudonym only), so no later delivery
or replay gives a forgotten citizen a new key: their CPR is never sealed again.
Key stores erase destroyed keys from their files (docs/privacy.md says how far
that reaches on each backend).

The key store, the one database every partition group's writer shares, also holds
the event-id claims (`claim_events`): which delivery (citizen and content, as one
keyed digest) first stored each event id, so that an id reused under a citizen of
another group is a conflict too.
"""

from __future__ import annotations

import base64
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from casehistory.domain.cpr import citizen_key
from casehistory.pg_schema import create_serially

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)


class KeyStore(Protocol):
    def keys_for(self, citizen_keys: Iterable[str]) -> dict[str, bytes]: ...

    def add(self, keys: dict[str, bytes]) -> None:
        """Store keys for citizens that have none and were never forgotten."""

    def destroy(self, citizen_key: str) -> bool:
        """Erase the citizen's key and leave a tombstone; False if there was no key."""

    def forgotten(self) -> set[str]:
        """The pseudonyms of every citizen whose key was destroyed."""

    def claim_events(self, claims: dict[str, str]) -> dict[str, str]:
        """Claim event ids (event key -> delivery, both keyed digests) where no claim stands;
        returns the standing claim of each: the first one made, by whichever writer."""

    def close(self) -> None: ...


_TOMBSTONES_DDL = "CREATE TABLE IF NOT EXISTS forgotten_citizens (citizen_key TEXT PRIMARY KEY)"
_CLAIMS_DDL = (
    "CREATE TABLE IF NOT EXISTS event_claims (event_key TEXT PRIMARY KEY, delivery TEXT NOT NULL)"
)


class SQLiteKeyStore:
    """Per-citizen keys in their own SQLite file, erased with `secure_delete` on destroy."""

    def __init__(self, path: Path) -> None:
        from casehistory.settings import private_dir

        private_dir(path.parent)
        path.touch(mode=0o600)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._transaction = threading.Lock()
        """Held for each write transaction: threads share the connection, and one
        connection holds one transaction at a time."""
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS citizen_keys (citizen_key TEXT PRIMARY KEY, key BLOB)"
        )
        self._db.execute(_TOMBSTONES_DDL)
        self._db.execute(f"{_CLAIMS_DDL} WITHOUT ROWID")

    def keys_for(self, citizen_keys: Iterable[str]) -> dict[str, bytes]:
        return dict(self._where_in("SELECT citizen_key, key FROM citizen_keys", "citizen_key",
                                   list(citizen_keys)))

    def _where_in(self, select: str, column: str, values: list[str]) -> list[Any]:
        rows: list[Any] = []
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows.extend(self._db.execute(f"{select} WHERE {column} IN ({marks})", chunk))
        return rows

    def claim_events(self, claims: dict[str, str]) -> dict[str, str]:
        if not claims:
            return {}
        with self._transaction, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR IGNORE INTO event_claims VALUES (?, ?)",
                                 sorted(claims.items()))
            return dict(self._where_in("SELECT event_key, delivery FROM event_claims",
                                       "event_key", list(claims)))

    def add(self, keys: dict[str, bytes]) -> None:
        with self._transaction, self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO citizen_keys SELECT ?, ? WHERE NOT EXISTS "
                "(SELECT 1 FROM forgotten_citizens WHERE citizen_key = ?)",
                [(k, v, k) for k, v in keys.items()],
            )

    def destroy(self, citizen_key: str) -> bool:
        with self._transaction, self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT OR IGNORE INTO forgotten_citizens VALUES (?)", [citizen_key])
            cursor = self._db.execute(
                "DELETE FROM citizen_keys WHERE citizen_key = ?", [citizen_key]
            )
        # secure_delete zeroed the row in the page; the checkpoint moves that page into the
        # database file and truncates the WAL, which still held the inserted key.
        busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            log.warning("key store checkpoint blocked by a reader; the WAL keeps old pages")
        return cursor.rowcount > 0

    def forgotten(self) -> set[str]:
        return {key for (key,) in self._db.execute("SELECT citizen_key FROM forgotten_citizens")}

    def close(self) -> None:
        self._db.close()


class PostgresKeyStore:
    """Per-citizen keys in a `citizen_keys` table, best in a database of their own.

    A destroyed key's row is deleted and the table rewritten (VACUUM FULL), so the
    key leaves the table's files; the server's WAL archive and backups keep it
    for as long as they are retained (docs/privacy.md).
    """

    def __init__(self, conninfo: str, *, create_table: bool = True) -> None:
        import psycopg

        self._conninfo = conninfo
        self._db = psycopg.connect(conninfo, autocommit=True)
        self._lock = threading.Lock()
        if create_table:
            create_serially(self._db, [
                "CREATE TABLE IF NOT EXISTS citizen_keys (citizen_key TEXT PRIMARY KEY, key BYTEA)",
                _TOMBSTONES_DDL,
                _CLAIMS_DDL,
            ])

    def _connection(self) -> psycopg.Connection[Any]:
        """The connection, opened again if the server dropped it (a restart, say)."""
        if self._db.closed or self._db.broken:
            import psycopg

            self._db = psycopg.connect(self._conninfo, autocommit=True)
        return self._db

    def keys_for(self, citizen_keys: Iterable[str]) -> dict[str, bytes]:
        with self._lock:
            rows = self._connection().execute(
                "SELECT citizen_key, key FROM citizen_keys WHERE citizen_key = ANY(%s)",
                [list(citizen_keys)],
            ).fetchall()
        return {key: bytes(value) for key, value in rows}

    def add(self, keys: dict[str, bytes]) -> None:
        if not keys:
            return
        with self._lock, self._connection().transaction(), self._db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO citizen_keys SELECT %s, %s WHERE NOT EXISTS "
                "(SELECT 1 FROM forgotten_citizens WHERE citizen_key = %s) ON CONFLICT DO NOTHING",
                [(k, v, k) for k, v in keys.items()],
            )

    def destroy(self, citizen_key: str) -> bool:
        import psycopg

        with self._lock:
            with self._connection().transaction():
                self._db.execute(
                    "INSERT INTO forgotten_citizens VALUES (%s) ON CONFLICT DO NOTHING",
                    [citizen_key],
                )
                cursor = self._db.execute(
                    "DELETE FROM citizen_keys WHERE citizen_key = %s", [citizen_key]
                )
            try:
                self._db.execute("VACUUM FULL citizen_keys")
            except psycopg.errors.InsufficientPrivilege:
                log.warning("only the key store's owner can rewrite citizen_keys (VACUUM FULL)")
        return cursor.rowcount > 0

    def forgotten(self) -> set[str]:
        with self._lock:
            rows = self._connection().execute(
                "SELECT citizen_key FROM forgotten_citizens"
            ).fetchall()
        return {key for (key,) in rows}

    def claim_events(self, claims: dict[str, str]) -> dict[str, str]:
        if not claims:
            return {}
        keys = sorted(claims)  # one order for every writer: two claiming one id never deadlock
        with self._lock, self._connection().transaction(), self._db.cursor() as cursor:
            cursor.execute(
                "INSERT INTO event_claims SELECT * FROM unnest(%s::text[], %s::text[]) "
                "ON CONFLICT DO NOTHING",
                [keys, [claims[key] for key in keys]],
            )
            rows = cursor.execute(
                "SELECT event_key, delivery FROM event_claims WHERE event_key = ANY(%s)", [keys]
            ).fetchall()
        return dict(rows)

    def close(self) -> None:
        self._db.close()


class IdentityVault:
    """Pseudonymises CPR numbers and seals/unseals them with per-citizen keys."""

    def __init__(self, pseudonym_key: bytes, keys: KeyStore) -> None:
        self._pseudonym_key = pseudonym_key
        self.keys = keys

    def citizen_key(self, cpr: str) -> str:
        return citizen_key(cpr, self._pseudonym_key)

    def seal_new(self, cprs: dict[str, str]) -> dict[str, str]:
        """Sealed CPRs for new citizens (citizen_key -> cpr), creating their keys.

        Seals only under keys read back from the store: when another writer stored
        a citizen's key first, that key is the one used. A forgotten citizen gets
        no key, and an empty seal.
        """
        stored = self.keys.keys_for(cprs)
        fresh = {k: AESGCM.generate_key(bit_length=256) for k in cprs if k not in stored}
        if fresh:
            self.keys.add(fresh)
            stored = self.keys.keys_for(cprs)
        return {k: _seal(stored[k], cpr, k) if k in stored else "" for k, cpr in cprs.items()}

    def unseal(self, citizen_key: str, sealed: str) -> str | None:
        """The CPR, or None when the citizen's key was destroyed."""
        key = self.keys.keys_for([citizen_key]).get(citizen_key)
        if key is None or not sealed:
            return None
        blob = base64.b64decode(sealed)
        return AESGCM(key).decrypt(blob[:12], blob[12:], citizen_key.encode()).decode("ascii")


def _seal(key: bytes, cpr: str, associated: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, cpr.encode("ascii"), associated.encode())
    return base64.b64encode(nonce + sealed).decode("ascii")
