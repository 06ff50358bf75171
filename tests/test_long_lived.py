"""A long-running worker's survivors are frozen out of full collections, its cyclic
garbage is not (`bootstrap.LongLivedObjects`)."""

from __future__ import annotations

import gc
import weakref

from casehistory.bootstrap import LongLivedObjects


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
