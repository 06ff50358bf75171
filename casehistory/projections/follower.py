"""Pull-based projection runner: brings the read model up to the event store's head.

Whatever the distance, one catch-up is one pass: the citizens with events after
the stored position are read from the store once each, whole histories up to the
head (`projections.source`), their rows computed once (`projections.rows`) and
written with the head as the new position in one fenced transaction
(`projections.store`). A live worker polling every fraction of a second does the
same with a handful of citizens, most of them held decoded with their committed rows
since earlier catch-ups (`projections.live`): it reads only their new events and
writes only the rows that changed. A worker back from downtime, or a bulk
migration, computes each touched citizen once however many events it got; a
rebuild from zero reads every history in citizen order and bulk-loads empty
tables. Memory holds one citizen and one write chunk, whatever the backlog, beside
the live follower's bounded set of held citizens.

A crash loses nothing and applies nothing twice: rows and position commit
together, and the next run starts from the stored position. A writer that finds
the position moved under it (another worker, a switched-in rebuild) rereads it.

With several event stores (partition groups), each store has its follower and
its position in the read model; `Followers` catches them up in parallel, one
thread per store (a rebuild from zero of a large store adds worker processes).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from casehistory.projections.history import HistoryDecoder
from casehistory.projections.live import LiveCitizens
from casehistory.projections.rows import CitizenRows
from casehistory.projections.source import EventStoreSource
from casehistory.projections.store import PositionMoved, ReadModelStore

PARALLEL_FROM = 50_000
"""Notifications from which a rebuild from zero uses `fresh_rows` (worker processes)."""


class Follower:
    """Keeps one read-model copy up to date with the application's events."""

    def __init__(
        self,
        source: EventStoreSource,
        store: ReadModelStore,
        decoder: HistoryDecoder,
        staff_key: bytes,
        after_commit: Callable[[], None] | None = None,
        window: int = 2_000_000,
        fresh_load: FreshLoad | None = None,
        tracking: str | None = None,
        live_citizens: int = 0,
    ) -> None:
        self.source = source
        self.store = store
        self.tracking = tracking or store.stores[0]
        """The event store this follower applies, by its tracking name in the read model."""
        self.decoder = decoder
        self.staff_key = staff_key
        """Key of the caseworker pseudonyms in the rows (`projections.rows.staff_pseudonym`)."""
        self.after_commit = after_commit
        """Called after each committed write (the changelog publisher drains its outbox)."""
        self.outbox = after_commit is not None
        """Whether writes record the citizens they change in the changelog outbox."""
        self.window = window
        """Most notifications one catch-up transaction passes (bounds a transaction, not
        memory); a rebuild from zero goes to the head in one pass whatever the distance."""
        self.fresh_load = fresh_load
        """Loads an empty copy up to a position in one fenced transaction (e.g. from worker
        processes); None computes the rows here."""
        self.parallel_from = PARALLEL_FROM
        self.live = LiveCitizens(decoder, staff_key, live_citizens) if live_citizens else None
        """Up to `live_citizens` citizens held between live catch-ups (None: each read
        whole every time)."""
        self.token = secrets.randbits(62) + 1
        """This follower's mark on the copy: while the copy's last writer is this token,
        no other writer has changed the rows `live` holds."""

    @property
    def position(self) -> int:
        return self.store.position(self.tracking)

    def lag(self) -> int:
        """Notifications recorded but not yet applied."""
        return self.source.head() - self.position

    def catch_up(
        self, on_batch: Callable[[int], None] | None = None, until: int | None = None
    ) -> int:
        """Apply everything up to `until` (default: the head); returns notifications passed.

        One transaction per `window` notifications: each citizen touched in a window
        is computed once, from its whole history up to the window's end.
        """
        head = self.source.head() if until is None else until
        passed = moved = 0
        while (position := self.store.position(self.tracking)) < head:
            fresh = position == 0 and self.store.count() == 0
            end = head if fresh else min(head, position + self.window)
            live = None if fresh else self.live
            last_writer = self.store.writer(self.tracking) if live is not None else 0
            if self.live is not None and (live is None or last_writer != self.token):
                self.live.distrust()
            try:
                if fresh and self.fresh_load is not None and end >= self.parallel_from:
                    self.fresh_load(self.store, end, on_batch, self.outbox)
                else:
                    if live is not None:
                        citizens = live.rows(self.source, position, end)
                    else:
                        histories = self.source.histories(end, after=None if fresh else position)
                        citizens = citizen_rows(self.decoder, histories, self.staff_key)
                    self.store.write(
                        counted(citizens, on_batch), since=position, until=end,
                        replace=not fresh, outbox=self.outbox, store=self.tracking,
                        writer=(last_writer, self.token) if live is not None else None,
                    )  # fmt: skip
            except PositionMoved:
                moved += 1
                if moved > 10:
                    raise
                continue
            except BaseException:
                if self.live is not None:
                    self.live.distrust()
                raise
            if live is not None:
                live.committed()
            passed += end - position
            if self.after_commit is not None:
                self.after_commit()
        return passed


def _on_every_member(name: str) -> Any:
    """A setting read from the first member and set on every one."""

    def put(self: Followers, value: Any) -> None:
        for member in self.members:
            setattr(member, name, value)

    return property(lambda self: getattr(self.members[0], name), put)


class Followers:
    """The followers of one read model, one per event store, caught up together."""

    window = _on_every_member("window")
    outbox = _on_every_member("outbox")
    parallel_from = _on_every_member("parallel_from")

    def __init__(self, members: list[Follower]) -> None:
        self.members = members
        self._committed = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        """One thread per store, kept: a read model holds a connection per thread."""

    @property
    def position(self) -> int:
        """Notifications applied, over every store."""
        return sum(member.position for member in self.members)

    def head(self) -> int:
        """Notifications recorded, over every store."""
        return sum(member.source.head() for member in self.members)

    def lag(self) -> int:
        return sum(member.lag() for member in self.members)

    def positions(self) -> dict[str, int]:
        return {member.tracking: member.position for member in self.members}

    @property
    def after_commit(self) -> Callable[[], None] | None:
        return self.members[0].after_commit

    @after_commit.setter
    def after_commit(self, after_commit: Callable[[], None] | None) -> None:
        """Called after each store's write, one at a time (the changelog publisher)."""
        if after_commit is None:
            serialised = None
        else:
            def serialised() -> None:
                with self._committed:
                    after_commit()
        for member in self.members:
            member.after_commit = serialised

    def catch_up(
        self, on_batch: Callable[[int], None] | None = None,
        until: Mapping[str, int] | int | None = None,
    ) -> int:
        """Catch every store up (to `until`'s position for it, default its head), one
        thread per store; returns notifications passed. A plain number as `until` is
        a position of the one store there is."""
        if isinstance(until, int):
            if len(self.members) != 1:
                raise ValueError("with several event stores, give `until` per store")
            until = {self.members[0].tracking: until}

        def run(member: Follower) -> int:
            return member.catch_up(on_batch, None if until is None else until[member.tracking])

        if len(self.members) == 1:
            return run(self.members[0])
        if self._pool is None:
            self._pool = ThreadPoolExecutor(len(self.members), thread_name_prefix="follow")
        return sum(self._pool.map(run, self.members))


class FreshLoad(Protocol):
    """Fills an empty read-model copy up to `until` in one fenced write (since 0)."""

    def __call__(
        self,
        store: ReadModelStore,
        until: int,
        on_batch: Callable[[int], None] | None,
        outbox: bool,
    ) -> None: ...


def counted(
    citizens: Iterable[CitizenRows], on_batch: Callable[[int], None] | None
) -> Iterator[CitizenRows]:
    """`citizens` passed through, reporting their stored events to `on_batch` per ~10,000."""
    events = 0
    for rows in citizens:
        events += rows.events
        if on_batch is not None and events >= 10_000:
            on_batch(events)
            events = 0
        yield rows
    if on_batch is not None and events:
        on_batch(events)


def citizen_rows(
    decoder: HistoryDecoder, histories: Iterator[tuple[str, list[Any]]], staff_key: bytes
) -> Iterator[CitizenRows]:
    """Each citizen's rows, from its stored events (caseworkers by pseudonym under `staff_key`)."""
    for _originator, stored in histories:
        yield decoder.advance(None, stored).rows(staff_key, len(stored))
