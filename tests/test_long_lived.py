"""A long-running worker's survivors are frozen out of full collections, its cyclic
garbage is not (`bootstrap.LongLivedObjects`); an ingest batch is handled with the
collector held back (`bootstrap.collections_after_batch`)."""

from __future__ import annotations

import gc
import threading
import weakref
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from casehistory.bootstrap import Engine, LongLivedObjects, collections_after_batch
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.consumers.ingest import IngestService
from casehistory.consumers.kafka_ingest import run_batches
from casehistory.entrypoints.cli.common import ingest_files
from casehistory.population import generator


class _Node:
    def __init__(self) -> None:
        self.next: object = self


def test_settle_frees_cyclic_garbage_and_freezes_what_survives() -> None:
    held = [_Node() for _ in range(3)]  # what a worker holds between catch-ups
    garbage = _Node()  # a reference cycle no one holds
    gone = weakref.ref(garbage)
    del garbage
    try:
        assert LongLivedObjects(every_s=0).settle()
        assert gone() is None
        assert gc.get_freeze_count() > 0
        assert not any(o is held for o in gc.get_objects())  # full collections skip it
    finally:
        gc.unfreeze()
    assert any(o is held for o in gc.get_objects())


def test_settle_runs_at_most_once_per_interval() -> None:
    long_lived = LongLivedObjects(every_s=3600)
    try:
        assert long_lived.settle()
        frozen = gc.get_freeze_count()
        _Node()
        assert not long_lived.settle()
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_collections_are_held_back_for_a_batch_and_resumed_after() -> None:
    assert gc.isenabled()
    with collections_after_batch():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collections_after_batch():
        raise RuntimeError("a batch that failed")
    assert gc.isenabled()
    gc.disable()
    try:
        with collections_after_batch():
            pass
        assert not gc.isenabled()  # a collector someone turned off stays off
    finally:
        gc.enable()


def test_the_consumers_poll_each_batch_with_collections_held_back() -> None:
    stop, seen, polls = threading.Event(), [], []

    def poll() -> int:
        seen.append(gc.isenabled())
        polls.append(1)
        if len(polls) == 3:
            stop.set()
        return 1

    run_batches(poll, stop, None, lambda: seen.append(gc.isenabled()))
    assert seen == [False, True, False, True, False, True]


def test_file_ingest_handles_each_batch_with_collections_held_back(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "population.jsonl"
    events = generator.write_jsonl(
        generator.generate_population(20, seed=3, until=date(2026, 11, 1)), source
    )
    seen: list[bool] = []
    ingest = IngestService.ingest

    def observed(self: IngestService, *args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return ingest(self, *args, **kwargs)

    monkeypatch.setattr(IngestService, "ingest", observed)
    report = ingest_files(engine, [source], DeadLetterList(), batch_size=50)
    assert report.received == events and len(seen) == -(-events // 50)
    assert not any(seen) and gc.isenabled()
