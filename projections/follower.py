"""Pull-based projection runner: follows the notification log from a tracked position.

An `eventsourcing` application stored in SQLite cannot be subscribed to, so the
embedded default pulls: read the next notifications after the view's tracked
position, rebuild the affected citizens at the version the batch reaches, and
write their rows with the new position in one transaction. A crash between
batches loses nothing and applies nothing twice: the next run resumes from the
position that was committed with the rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID

from eventsourcing.application import Application, project_aggregate
from eventsourcing.persistence import Notification, Tracking

from domain.citizen import Citizen

Row = TypeVar("Row")


class CitizenView(Protocol[Row]):
    def max_tracking_id(self, application_name: str) -> int | None: ...

    def apply_rows(self, rows: list[Row], tracking: Tracking) -> None: ...


class Follower(Generic[Row]):
    """Keeps one citizen read model up to date with the application's events."""

    def __init__(
        self,
        app: Application[Any],
        view: CitizenView[Row],
        row_for: Callable[[Citizen], Row],
        batch_size: int = 1000,
        after_commit: Callable[[list[Row]], None] | None = None,
    ) -> None:
        self.app = app
        self.view = view
        self.row_for = row_for
        self.batch_size = batch_size
        self.after_commit = after_commit
        """Called with each batch's rows once they and the position are committed."""
        self.held: dict[UUID | str, Citizen] = {}
        """Recently projected citizens (least recently used first), moved forward by the
        events of later batches instead of being reloaded from the store each time."""
        self.held_maxsize = 2000

    @property
    def position(self) -> int:
        return self.view.max_tracking_id(self.app.name) or 0

    def lag(self) -> int:
        """Notifications recorded but not yet applied."""
        return (self.app.recorder.max_notification_id() or 0) - self.position

    def catch_up(
        self, on_batch: Callable[[int], None] | None = None, until: int | None = None
    ) -> int:
        """Apply pending notifications (up to `until`, if given); returns how many."""
        position = self.position
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
            rows = [self.row_for(self._citizen(key, stored)) for key, stored in batch.items()]
            position = notifications[-1].id
            self.view.apply_rows(rows, Tracking(self.app.name, position))
            if self.after_commit is not None:
                self.after_commit(rows)
            applied += len(notifications)
            if on_batch is not None:
                on_batch(len(notifications))
        return applied

    def _citizen(self, citizen_id: UUID | str, stored: list[Notification]) -> Citizen:
        """The citizen as of the batch's last event for it.

        A held copy that is exactly one version behind the batch's first event (or none,
        when the batch starts with the registration) is moved forward by the batch's
        events; anything else is loaded from the store at that version.
        """
        first, last = stored[0].originator_version, stored[-1].originator_version
        held = self.held.pop(citizen_id, None)
        citizen: Any
        if last - first + 1 == len(stored) and (
            first == 1 or (held is not None and held.version == first - 1)
        ):
            citizen = project_aggregate(
                None if first == 1 else held, map(self.app.mapper.to_domain_event, stored)
            )
        else:
            citizen = self.app.repository.get(citizen_id, version=last)
        self.held[citizen_id] = citizen
        if len(self.held) > self.held_maxsize:
            del self.held[next(iter(self.held))]
        return citizen  # type: ignore[no-any-return]
