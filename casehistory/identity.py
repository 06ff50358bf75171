"""Who a citizen is: keyed pseudonyms, and the CPR sealed with a key per citizen.

The event store never holds a CPR number in clear: aggregates are found by the
keyed pseudonym (`citizen_key`) and carry the CPR sealed with AES-GCM under a
random key kept in a separate key store. Destroying that key (crypto-shredding)
makes the CPR unrecoverable while the history stays usable.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.cpr import citizen_key

if TYPE_CHECKING:
    import psycopg


class KeyStore(Protocol):
    def keys_for(self, citizen_keys: Iterable[str]) -> dict[str, bytes]: ...

    def add(self, keys: dict[str, bytes]) -> None:
        """Store keys for citizens that have none; existing keys are kept."""

    def destroy(self, citizen_key: str) -> bool: ...

    def close(self) -> None: ...


class SQLiteKeyStore:
    """Per-citizen keys in their own SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS citizen_keys (citizen_key TEXT PRIMARY KEY, key BLOB)"
        )

    def keys_for(self, citizen_keys: Iterable[str]) -> dict[str, bytes]:
        wanted = list(citizen_keys)
        found: dict[str, bytes] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT citizen_key, key FROM citizen_keys WHERE citizen_key IN ({marks})", chunk
            )
            found.update(rows)
        return found

    def add(self, keys: dict[str, bytes]) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO citizen_keys VALUES (?, ?)", list(keys.items())
            )

    def destroy(self, citizen_key: str) -> bool:
        cursor = self._db.execute("DELETE FROM citizen_keys WHERE citizen_key = ?", [citizen_key])
        return cursor.rowcount > 0

    def close(self) -> None:
        self._db.close()


class PostgresKeyStore:
    """Per-citizen keys in a `citizen_keys` table of a PostgreSQL database."""

    def __init__(self, conninfo: str, *, create_table: bool = True) -> None:
        import psycopg

        self._conninfo = conninfo
        self._db = psycopg.connect(conninfo, autocommit=True)
        self._lock = threading.Lock()
        if create_table:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS citizen_keys (citizen_key TEXT PRIMARY KEY, key BYTEA)"
            )

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
                "INSERT INTO citizen_keys VALUES (%s, %s) ON CONFLICT DO NOTHING",
                list(keys.items()),
            )

    def destroy(self, citizen_key: str) -> bool:
        with self._lock:
            cursor = self._connection().execute(
                "DELETE FROM citizen_keys WHERE citizen_key = %s", [citizen_key]
            )
        return cursor.rowcount > 0

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
        """Sealed CPRs for new citizens (citizen_key -> cpr), creating their keys."""
        existing = self.keys.keys_for(cprs)
        fresh = {k: AESGCM.generate_key(bit_length=256) for k in cprs if k not in existing}
        self.keys.add(fresh)
        keys = {**existing, **fresh}
        return {k: _seal(keys[k], cpr, k) for k, cpr in cprs.items()}

    def unseal(self, citizen_key: str, sealed: str) -> str | None:
        """The CPR, or None when the citizen's key was destroyed."""
        key = self.keys.keys_for([citizen_key]).get(citizen_key)
        if key is None:
            return None
        blob = base64.b64decode(sealed)
        return AESGCM(key).decrypt(blob[:12], blob[12:], citizen_key.encode()).decode("ascii")


def _seal(key: bytes, cpr: str, associated: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, cpr.encode("ascii"), associated.encode())
    return base64.b64encode(nonce + sealed).decode("ascii")
