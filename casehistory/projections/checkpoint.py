"""A write-ahead-log checkpoint off the commit path of a SQLite read model written live."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


class WalCheckpointer:
    """Copies a SQLite read model's write-ahead log into its file from a thread of its own.

    SQLite's automatic checkpoint runs inside the commit that crosses 1,000 pages of log,
    and a live catch-up writes about 500 (its citizens' rows are spread over every table
    and index): every other commit waited for the copy and its fsyncs (live catch-up wall
    time 725 µs per event, 451-475 µs with this thread, under load). The owner turns the
    automatic checkpoint off (`PRAGMA wal_autocheckpoint=0`) and calls `committed` after a
    commit, which only wakes this thread. At most every `INTERVAL_S` the thread copies the
    log with a passive checkpoint (it blocks no one), then with a restarting one: that
    holds new writers back for the pages committed meanwhile and at most `WAIT_S` for
    readers of older snapshots (a long export), and lets the next writer start the log
    from the beginning again, so the log does not grow. A bulk write checkpoints itself
    instead, so that a rebuild is timed with its copy.
    """

    INTERVAL_S = 0.5
    WAIT_S = 0.05
    """Longest a restarting checkpoint waits for a writer or an old reader (new writers
    wait meanwhile); past it, the log goes on growing until a later round."""

    def __init__(self, database: str | Path) -> None:
        self.database = str(database)
        """A file name or a `file:` URI."""
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def committed(self) -> None:
        with self._lock:
            if self._thread is None and not self._closing.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="read-model-checkpoint", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        connection = sqlite3.connect(
            self.database, isolation_level=None, timeout=self.WAIT_S, uri=True
        )
        try:
            while self._wake.wait() and not self._closing.is_set():
                self._wake.clear()
                with suppress(sqlite3.OperationalError):  # another checkpoint runs
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    connection.execute("PRAGMA wal_checkpoint(RESTART)")
                self._closing.wait(self.INTERVAL_S)
        finally:
            connection.close()

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """No thread and no connection of this checkpointer while inside (a journal mode
        switch needs the file's only connection); the next `committed` starts it again."""
        self.close()
        try:
            yield
        finally:
            self._closing.clear()

    def close(self) -> None:
        with self._lock:
            self._closing.set()
            self._wake.set()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
