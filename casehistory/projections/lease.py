"""A lease so that only one worker applies the projection at a time.

PostgreSQL: a session-level advisory lock keyed by the projection's name, held
on a dedicated connection for as long as the worker runs (released by the
server if the worker dies). SQLite: an exclusive `flock` on a lease file beside
the read model (released by the kernel if the worker dies). A second worker
waits as a hot standby until the lease is free; a one-shot command that finds
it taken does not wait (`wait=False`) and lets the holder bring the read model
up to date.

The lease saves work; it is not what keeps the read model right. Every write is
fenced on the tracked position (`projections.store`), so a worker that lost its
lease without noticing cannot overwrite newer rows. A holder still checks its
lease between batches (`Lease.held`) and stops when the connection behind it is
gone, so a standby takes over.
"""

from __future__ import annotations

import fcntl
import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class Lease:
    """The outcome of asking for the lease: truthy while held."""

    def __init__(self, check: Callable[[], bool] | None) -> None:
        self._check = check

    def __bool__(self) -> bool:
        return self._check is not None

    def held(self) -> bool:
        """Whether the lease is still held (False once its connection is lost)."""
        if self._check is None:
            return False
        try:
            return self._check()
        except Exception:
            return False


def _lock_id(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def postgres_lease(
    conninfo: str, name: str, stop: threading.Event, *, wait: bool = True
) -> Iterator[Lease]:
    """Yields a held `Lease` once taken, or an empty one if stopped (or taken, with no wait)."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as connection:
        while True:
            row = connection.execute("SELECT pg_try_advisory_lock(%s)", [_lock_id(name)]).fetchone()
            if row and row[0]:
                break
            if not wait or stop.wait(0.5):
                yield Lease(None)
                return

        def alive() -> bool:
            return connection.execute("SELECT 1").fetchone() == (1,)

        try:
            yield Lease(alive)
        finally:
            if not connection.closed:
                connection.execute("SELECT pg_advisory_unlock(%s)", [_lock_id(name)])


@contextmanager
def file_lease(path: Path, stop: threading.Event, *, wait: bool = True) -> Iterator[Lease]:
    """Yields a held `Lease` once the lease file is exclusively locked, else an empty one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait or stop.wait(0.5):
                    yield Lease(None)
                    return
        try:
            yield Lease(lambda: not handle.closed)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
