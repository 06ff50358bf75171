"""A lease so that only one worker applies a given projection at a time.

PostgreSQL: a session-level advisory lock keyed by the projection's name, held
on a dedicated connection for as long as the worker runs (released by the
server if the worker dies). SQLite: an exclusive `flock` on a lease file beside
the read model (released by the kernel if the worker dies). A second worker
waits as a hot standby until the lease is free.
"""

from __future__ import annotations

import fcntl
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _lock_id(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def postgres_lease(conninfo: str, name: str, stop: threading.Event) -> Iterator[bool]:
    """Yields True once the lease is held, or False if `stop` was set while waiting."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as connection:
        while True:
            row = connection.execute("SELECT pg_try_advisory_lock(%s)", [_lock_id(name)]).fetchone()
            if row and row[0]:
                break
            if stop.wait(0.5):
                yield False
                return
        try:
            yield True
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", [_lock_id(name)])


@contextmanager
def file_lease(path: Path, stop: threading.Event) -> Iterator[bool]:
    """Yields True once the lease file is exclusively locked, or False if stopped."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if stop.wait(0.5):
                    yield False
                    return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
