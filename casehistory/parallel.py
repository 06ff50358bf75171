"""A rebuild from zero in worker processes, one shard of citizens each.

A rebuild is CPU-bound Python (decoding, pairing, spells), so it runs in as many
processes as there are cores: each worker opens the engine from the same settings,
streams its range of originator ids from the event store and computes the rows.

- Into SQLite (the embedded default) each worker bulk-writes its rows into a
  shard file of its own, and the read model takes every shard in one fenced
  transaction (`SQLiteReadModel.load_shards`): no row crosses a process boundary.
- Into PostgreSQL the workers send their rows in chunks over a bounded queue and
  the parent writes them in its one fenced transaction.

Either way memory stays a few chunks per worker whatever the population.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queues
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from casehistory.projections.follower import citizen_rows, counted
from casehistory.projections.history import HistoryDecoder
from casehistory.projections.rows import CitizenRows
from casehistory.projections.source import EventStoreSource
from casehistory.projections.store import ReadModelStore, SQLiteReadModel
from casehistory.settings import Settings

CHUNK = 500
"""Citizens per message from a worker (rows sent to the parent)."""
_DONE = "done"


def default_workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0))))


class ShardedRows:
    """A `projections.follower.FreshLoad`: every citizen's rows of partition group
    `group`'s event store up to a position (tracked in the read model as `tracking`)."""

    def __init__(
        self, settings: Settings, workers: int, group: int = 0, tracking: str | None = None
    ) -> None:
        self.settings = settings
        self.workers = workers
        self.group = group
        self.tracking = tracking

    def __call__(
        self,
        store: ReadModelStore,
        until: int,
        on_batch: Callable[[int], None] | None,
        outbox: bool,
    ) -> None:
        if isinstance(store, SQLiteReadModel):
            _remove_abandoned_shards(store.path.parent)
            prefix = f".rebuild-{os.getpid()}-"
            folder = Path(tempfile.mkdtemp(prefix=prefix, dir=store.path.parent))
            try:
                shards = [folder / f"shard-{index}.db" for index in range(self.workers)]
                for events in self._run(_rows_into_shard, until, [str(s) for s in shards]):
                    if on_batch is not None:
                        on_batch(events)
                store.load_shards(shards, since=0, until=until, outbox=outbox,
                                  store=self.tracking)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        else:
            chunks = self._run(_rows_to_parent, until, [None] * self.workers)
            citizens = (rows for chunk in chunks for rows in chunk)
            store.write(
                counted(citizens, on_batch), since=0, until=until, replace=False, outbox=outbox,
                store=self.tracking,
            )

    def _run(self, work: Callable[..., None], until: int, targets: list[Any]) -> Iterator[Any]:
        """Run `work` in one process per shard; yield what the workers send until all are done."""
        context = multiprocessing.get_context("spawn")
        channel: Any = context.Queue(maxsize=4 * self.workers)
        processes = [
            context.Process(
                target=_worker,
                args=(work, self.settings, self.group, until, (index, self.workers), target,
                      channel),
                daemon=True,
            )
            for index, target in enumerate(targets)
        ]
        for process in processes:
            process.start()
        try:
            running = len(processes)
            while running:
                try:
                    message = channel.get(timeout=5)
                except queues.Empty:
                    if any(p.exitcode not in (None, 0) for p in processes):
                        raise RuntimeError("a rebuild worker died") from None
                    continue
                if message == _DONE:
                    running -= 1
                elif isinstance(message, BaseException):
                    raise message
                else:
                    yield message
        finally:
            for process in processes:
                if process.is_alive():
                    process.terminate()
                process.join()


def _remove_abandoned_shards(folder: Path) -> None:
    """Delete the shard folders of rebuilds whose process is gone (killed mid-load)."""
    for abandoned in folder.glob(".rebuild-*-*"):
        pid = abandoned.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(abandoned, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _worker(
    work: Callable[..., None],
    settings: Settings,
    group: int,
    until: int,
    shard: tuple[int, int],
    target: Any,
    channel: Any,
) -> None:
    from casehistory.bootstrap import build, tune_garbage_collector

    tune_garbage_collector()
    engine = build(settings, group)
    try:
        histories = EventStoreSource(engine.app).histories(until, shard=shard)
        citizens = citizen_rows(HistoryDecoder(engine.app.mapper), histories, settings.staff_key)
        work(citizens, until, target, channel)
        channel.put(_DONE)
    except BaseException as error:  # the parent re-raises it
        channel.put(RuntimeError(f"rebuild worker {shard}: {error!r}"))
        raise
    finally:
        engine.close()


def _rows_to_parent(
    citizens: Iterator[CitizenRows], _until: int, _target: None, channel: Any
) -> None:
    chunk: list[CitizenRows] = []
    for rows in citizens:
        chunk.append(rows)
        if len(chunk) >= CHUNK:
            channel.put(chunk)
            chunk = []
    if chunk:
        channel.put(chunk)


def _rows_into_shard(citizens: Iterator[CitizenRows], until: int, path: str, channel: Any) -> None:
    """Bulk-write the shard's rows into a read-model file of its own; report events done."""
    shard = SQLiteReadModel(Path(path), "shard")
    try:
        shard.create(indexes=False)
        shard.bulk_indexes = False
        shard.write(counted(citizens, channel.put), since=0, until=until, replace=False)
    finally:
        shard.close()
