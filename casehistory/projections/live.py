"""What a live follower keeps between catch-ups, so one new event costs little.

A live catch-up sees a few events of many citizens. Recomputing each from its
whole stored history (read, decrypt, decode) and rewriting every row it has made
the cost of one event grow with the citizen's history. `LiveCitizens` keeps, for
the most recently touched citizens (a bounded LRU), the decoded history at its
version, the rows last computed from it and the rows last committed for it: a
catch-up reads only the new events of those citizens, moves their histories forward,
computes again only the tables whose part of the timeline changed (`rows.Earlier`),
and the store writes only the tables whose rows changed (`CitizenRows.written`).
Citizens it does not hold, or holds at another version, are read whole, and held
from then on. A long backlog (more than `LIVE_WINDOW` notifications) reads every
touched citizen whole, in one ordered pass, and holds them too: a worker back from
downtime or behind a bulk migration is not left cold.

The rows are trusted only while this follower is the copy's last writer (the store
fences each write on the last writer's token): after any other write, or a failed
one, the follower stops trusting every held citizen's rows and the store reads
them again. Held histories stay valid: the event store is append-only, and a
history is moved forward only by the events right after its version. A citizen
read whole keeps the rows last committed for it, which are the copy's still.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from casehistory.projections.history import CitizenHistory, HistoryDecoder
from casehistory.projections.rows import CitizenRows, Earlier
from casehistory.projections.source import EventStoreSource, StoredEvent

LIVE_WINDOW = 100_000
"""Most notifications a catch-up reads as new events by citizen; a longer backlog reads
each touched citizen whole, in one ordered pass. A worker that fell behind under load stays
on the cheaper path: at 100,000 citizens, catch-ups of 30,000 notifications cost 392-402 µs
of CPU each by new events, 450-478 whole."""
MISSES = 5_000
"""Citizens read whole by one statement (a bound on its parameters)."""


class _Held:
    __slots__ = ("earlier", "history", "trusted", "written")

    def __init__(self, history: CitizenHistory) -> None:
        self.history = history
        self.earlier: Earlier | None = None
        """The rows last computed, with the timeline they came from."""
        self.written: dict[str, list[tuple[Any, ...]]] | None = None
        self.trusted = -1
        """The `LiveCitizens.trust` under which `written` was committed."""


class LiveCitizens:
    """The decoded histories and committed rows of the most recently touched citizens."""

    def __init__(self, decoder: HistoryDecoder, staff_key: bytes, capacity: int) -> None:
        self.decoder = decoder
        self.staff_key = staff_key
        self.capacity = capacity
        self._held: OrderedDict[Any, _Held] = OrderedDict()
        self._pending: dict[Any, _Held] = {}
        """The held citizens computed since the last commit (evicted ones leave it)."""
        self.trust = 0
        """Rows committed under an earlier trust are no longer known to be the copy's."""

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, originator: object) -> bool:
        return originator in self._held

    def rows(self, source: EventStoreSource, after: int, until: int) -> Iterator[CitizenRows]:
        """The rows of every citizen with events in `(after, until]`, each computed once."""
        self._pending = {}
        if until - after > LIVE_WINDOW:
            for originator, stored in source.histories(until, after):
                yield self._read_whole(originator, stored)
            return
        misses: list[Any] = []
        for originator, new in source.histories(until, after, whole=False):
            held = self._held.get(originator)
            if held is None or held.history.version != new[0].originator_version - 1:
                misses.append(originator)
                continue
            self._held.move_to_end(originator)
            self._pending[originator] = held
            yield self._rows_of(held, self.decoder.advance(held.history, new), len(new))
        for first in range(0, len(misses), MISSES):
            for originator, stored in source.histories(until, of=misses[first : first + MISSES]):
                yield self._read_whole(originator, stored)

    def _read_whole(self, originator: Any, stored: list[StoredEvent]) -> CitizenRows:
        """Hold a citizen from its whole history. One held before keeps the rows last
        computed (reused where their inputs are equal) and last committed."""
        history = self.decoder.advance(None, stored)
        held = self._held.get(originator) or _Held(history)
        self._held[originator] = held
        self._held.move_to_end(originator)
        while len(self._held) > self.capacity:
            self._pending.pop(self._held.popitem(last=False)[0], None)
        self._pending[originator] = held
        return self._rows_of(held, history, len(stored))

    def _rows_of(self, held: _Held, history: CitizenHistory, events: int) -> CitizenRows:
        held.history = history
        rows = history.rows(self.staff_key, events, held.earlier)
        held.earlier = Earlier(history.timeline(), history.last, rows.tables)
        rows.written = held.written if held.trusted == self.trust else None
        return rows

    def committed(self) -> None:
        """The rows of the last `rows` are in the copy now."""
        for held in self._pending.values():
            assert held.earlier is not None
            held.written, held.trusted = held.earlier.tables, self.trust
        self._pending = {}

    def distrust(self) -> None:
        """Stop trusting every held citizen's rows (another writer wrote the copy, or a
        write failed); the decoded histories stay, as the event store is append-only."""
        self.trust += 1
        self._pending = {}
