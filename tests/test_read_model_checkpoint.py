"""The SQLite read model's write-ahead log is copied into its file off the commit path."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from casehistory.projections.checkpoint import WalCheckpointer
from casehistory.projections.store import SQLiteReadModel


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def write_pages(connection: sqlite3.Connection, rows: int) -> None:
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany("INSERT INTO t (v) VALUES (?)", [(b"x" * 1000,)] * rows)
    connection.execute("COMMIT")


def test_a_commit_is_checkpointed_by_the_thread_and_the_log_starts_again(tmp_path: Path) -> None:
    path = tmp_path / "model.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t (v BLOB)")
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    empty = path.stat().st_size
    checkpointer = WalCheckpointer(path)
    try:
        write_pages(writer, 2000)
        log = Path(f"{path}-wal").stat().st_size
        assert path.stat().st_size == empty  # nothing copied by the commit itself
        checkpointer.committed()
        assert wait_for(lambda: path.stat().st_size > empty), "the thread never checkpointed"
        # Written for 3 s, a commit every 20 ms as a live follower's: the log restarts
        # from its beginning, so it stays within a few commits (a passive checkpoint alone
        # lets the next commit start before it ends, and the log grows).
        rounds, started = 0, time.monotonic()
        while time.monotonic() - started < 3:
            write_pages(writer, 500)
            checkpointer.committed()
            rounds += 1
            time.sleep(0.02)
        assert Path(f"{path}-wal").stat().st_size < log * rounds / 8
    finally:
        checkpointer.close()
        writer.close()


def test_the_read_model_leaves_checkpoints_to_its_thread_and_stops_it(tmp_path: Path) -> None:
    model = SQLiteReadModel(tmp_path / "read.db", "casehistory")
    model.create()
    assert model.connection.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    model.write([], since=0, until=3)  # a live write: the thread starts
    assert any(t.name == "read-model-checkpoint" for t in threading.enumerate())
    model.close()
    assert not any(t.name == "read-model-checkpoint" for t in threading.enumerate())
