"""Arrival order for a whole population in bounded memory.

Citizens are generated one at a time, but a real topic is in arrival order: one citizen's
events are spread over decades of the stream. Events are put in monthly buckets by their
arrival key; when too many are held, every bucket is appended to its own temporary file
(pickled in chunks). At the end each month is read back, sorted and yielded, so memory
holds about ``spill_at`` events plus the largest month, never the whole stream. Ties keep
the order events were added in, so the output does not depend on ``spill_at``.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path

Event = dict[str, object]
Arrival = tuple[str, int, Event]  # (arrival key, sequence, event)


class ArrivalBuckets:
    """Collects events with an arrival key (an ISO timestamp) and yields them sorted."""

    def __init__(self, spill_at: int = 400_000) -> None:
        self.spill_at = spill_at
        self._held: dict[str, list[Arrival]] = {}
        self._count = 0
        self._sequence = 0
        self._spilled: set[str] = set()
        self._directory: tempfile.TemporaryDirectory[str] | None = None

    def add(self, arrival_key: str, event: Event) -> None:
        month = arrival_key[:7]
        bucket = self._held.get(month)
        if bucket is None:
            bucket = self._held[month] = []
        bucket.append((arrival_key, self._sequence, event))
        self._sequence += 1
        self._count += 1
        if self._count >= self.spill_at:
            self._spill()

    def _path(self, month: str) -> Path:
        if self._directory is None:
            self._directory = tempfile.TemporaryDirectory(prefix="casehistory-arrivals-")
        return Path(self._directory.name) / f"{month}.pickle"

    def _spill(self) -> None:
        for month, bucket in self._held.items():
            with self._path(month).open("ab") as out:
                pickle.dump(bucket, out, protocol=pickle.HIGHEST_PROTOCOL)
            self._spilled.add(month)
        self._held.clear()
        self._count = 0

    def _month(self, month: str) -> list[Arrival]:
        bucket = self._held.pop(month, [])
        if month in self._spilled:
            with self._path(month).open("rb") as spilled:
                while True:
                    try:
                        bucket.extend(pickle.load(spilled))
                    except EOFError:
                        break
            self._path(month).unlink()
        bucket.sort(key=lambda arrival: (arrival[0], arrival[1]))
        return bucket

    def drain(self) -> Iterator[Event]:
        """Every event added, in arrival order; the buckets are empty afterwards."""
        try:
            for month in sorted(self._held.keys() | self._spilled):
                for _, _, event in self._month(month):
                    yield event
        finally:
            self._held.clear()
            self._spilled.clear()
            if self._directory is not None:
                self._directory.cleanup()
                self._directory = None
