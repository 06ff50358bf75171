"""A rebuild's rows computed by worker processes, one shard of citizens each.

A rebuild is CPU-bound Python (decoding, pairing, spells), so it runs in as many
processes as there are cores: each worker opens the engine from the same settings,
streams its range of originator ids from the event store and computes the rows;
the parent writes them all in its one fenced transaction. Queues are bounded, so
memory stays a few chunks per worker whatever the population.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queues
from collections.abc import Iterator
from typing import Any

from casehistory.settings import Settings
from projections.follower import citizen_rows
from projections.history import HistoryDecoder
from projections.rows import CitizenRows
from projections.source import EventStoreSource

CHUNK = 500
"""Citizens per message from a worker."""
_DONE = "done"


def default_workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0))))


class ShardedRows:
    """Callable as `Follower.fresh_rows`: every citizen's rows up to a position."""

    def __init__(self, settings: Settings, workers: int) -> None:
        self.settings = settings
        self.workers = workers

    def __call__(self, until: int) -> Iterator[list[CitizenRows]]:
        context = multiprocessing.get_context("spawn")
        channel: Any = context.Queue(maxsize=4 * self.workers)
        processes = [
            context.Process(
                target=_work, args=(self.settings, until, (index, self.workers), channel),
                daemon=True,
            )
            for index in range(self.workers)
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


def _work(settings: Settings, until: int, shard: tuple[int, int], channel: Any) -> None:
    from casehistory.bootstrap import build, tune_garbage_collector

    tune_garbage_collector()
    engine = build(settings)
    try:
        source = EventStoreSource(engine.app)
        chunk: list[CitizenRows] = []
        histories = source.histories(until, shard=shard)
        decoder = HistoryDecoder(engine.app.mapper)
        for rows in citizen_rows(decoder, histories, settings.staff_key):
            chunk.append(rows)
            if len(chunk) >= CHUNK:
                channel.put(chunk)
                chunk = []
        if chunk:
            channel.put(chunk)
        channel.put(_DONE)
    except BaseException as error:  # the parent re-raises it
        channel.put(RuntimeError(f"rebuild worker {shard}: {error!r}"))
        raise
    finally:
        engine.close()
