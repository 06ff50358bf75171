"""Pull-based projection runner: follows the notification log from tracked positions.

An `eventsourcing` application stored in SQLite cannot be subscribed to, so the
embedded default pulls: read the next notifications after the tracked position,
bring the affected citizens' histories to the version the batch reaches, and
write each read model's rows with the new position in one transaction. A crash
between batches loses nothing and applies nothing twice: the next run resumes
from the position that was committed with the rows.

One follower can feed several read models from one pass over the log: each
batch is read and decoded once, each citizen's timeline computed once, and
every read model whose position the batch passes gets its rows. Rows are a
function of a citizen's whole history, so a read model that is already part
way into a batch may safely get rows for every citizen the batch touches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Notification, Tracking

from projections.history import CitizenHistory, HistoryDecoder

Row = TypeVar("Row")


class CitizenView(Protocol[Row]):
    def max_tracking_id(self, application_name: str) -> int | None: ...

    def apply_rows(self, rows: list[Row], tracking: Tracking) -> None: ...


@dataclass
class Target(Generic[Row]):
    """One read model a follower keeps up to date."""

    view: CitizenView[Row]
    row_for: Callable[[CitizenHistory], Row]
    after_commit: Callable[[list[Row]], None] | None = None
    """Called with each batch's rows once they and the position are committed."""


class Follower:
    """Keeps one or more citizen read models up to date with the application's events."""

    def __init__(
        self, app: Application[Any], targets: Sequence[Target[Any]], batch_size: int = 1000
    ) -> None:
        self.app = app
        self.targets = list(targets)
        self.batch_size = batch_size
        self.decoder = HistoryDecoder(app.mapper)
        self.held: dict[UUID | str, CitizenHistory] = {}
        """Recently projected citizens (least recently used first), moved forward by the
        events of later batches instead of being reloaded from the store each time."""
        self.held_maxsize = 2000

    @property
    def position(self) -> int:
        """The position every target has reached."""
        return min(self.position_of(target) for target in self.targets)

    def position_of(self, target: Target[Any]) -> int:
        """The position one target has reached."""
        return target.view.max_tracking_id(self.app.name) or 0

    def lag(self) -> int:
        """Notifications recorded but not yet applied to every target."""
        return (self.app.recorder.max_notification_id() or 0) - self.position

    def catch_up(
        self, on_batch: Callable[[int], None] | None = None, until: int | None = None
    ) -> int:
        """Apply pending notifications (up to `until`, if given); returns how many."""
        positions = [self.position_of(target) for target in self.targets]
        position = min(positions)
        applied = 0
        while until is None or position < until:
            notifications = self.app.recorder.select_notifications(
                start=position, limit=self.batch_size, stop=until, inclusive_of_start=False
            )
            if not notifications:
                return applied
            batch: dict[UUID | str, list[Notification]] = {}
            for notification in notifications:
                batch.setdefault(notification.originator_id, []).append(notification)
            histories = [self._history(key, stored) for key, stored in batch.items()]
            position = notifications[-1].id
            for index, target in enumerate(self.targets):
                if positions[index] >= position:
                    continue
                rows = [target.row_for(history) for history in histories]
                target.view.apply_rows(rows, Tracking(self.app.name, position))
                positions[index] = position
                if target.after_commit is not None:
                    target.after_commit(rows)
            applied += len(notifications)
            if on_batch is not None:
                on_batch(len(notifications))
        return applied

    def _history(self, citizen_id: UUID | str, stored: list[Notification]) -> CitizenHistory:
        """The citizen's history as of the batch's last event for it.

        A held copy that is exactly one version behind the batch's first event (or none,
        when the batch starts with the registration) is moved forward by the batch's
        events; anything else is read from the store up to that version.
        """
        first, last = stored[0].originator_version, stored[-1].originator_version
        held = self.held.pop(citizen_id, None)
        if last - first + 1 == len(stored) and (
            first == 1 or (held is not None and held.version == first - 1)
        ):
            history = self.decoder.advance(None if first == 1 else held, stored)
        else:
            events = self.app.recorder.select_events(citizen_id, lte=last)
            history = self.decoder.advance(None, events)
        self.held[citizen_id] = history
        if len(self.held) > self.held_maxsize:
            del self.held[next(iter(self.held))]
        return history
