"""Walking every citizen's hash chain in the event store to find tampering.

Each stored event's `chain_hash` is recomputed from the previous stored link
and the event's own content. A mismatch means the record was altered, or that
records were reordered (the event's hash fits another position); a gap in a
citizen's versions, or (on SQLite) in the store's notification ids, means a
record was removed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from casehistory.application import CaseHistory
from casehistory.domain.citizen import CHAINED_FIELDS, chain_hash_of


@dataclass(frozen=True)
class ChainProblem:
    citizen_id: str
    position: int
    """The aggregate version (1 is the registration)."""
    kind: str
    """`altered`, `reordered`, `removed`, or `undecodable`."""
    detail: str


def _kind_and_content(event: Any) -> tuple[str, dict[str, Any]]:
    kind = type(event).__name__
    fields = CHAINED_FIELDS.get(kind, CHAINED_FIELDS["FactRecorded"])
    return kind, {f: getattr(event, f) for f in fields}


def verify_store(app: CaseHistory, batch_size: int = 5000) -> Iterator[ChainProblem]:
    """Every problem found, in notification order, reading the store once as a stream.

    Only each citizen's last version and chain hash are held. A citizen whose next
    event does not fit (a version skipped, a hash that does not link, a record that
    does not decode) is then checked in full from the store, once, to say what
    happened. Notification ids that skip a number mean a removed record only where
    the store does not spend ids on rolled-back appends (SQLite; not PostgreSQL,
    whose id sequence does).
    """
    links: dict[UUID | str, tuple[int, str]] = {}  # citizen -> (last version, its chain hash)
    checked_in_full: set[UUID | str] = set()
    contiguous = getattr(app.recorder, "notification_ids_contiguous", True)
    expected_id = 1
    start = 0
    while True:
        notifications = app.recorder.select_notifications(
            start=start, limit=batch_size, inclusive_of_start=False
        )
        if not notifications:
            break
        for n in notifications:
            if contiguous and n.id != expected_id:
                yield ChainProblem(
                    str(n.originator_id),
                    n.originator_version,
                    "removed",
                    f"notification ids {expected_id}..{n.id - 1} are missing before this event",
                )
            expected_id = n.id + 1
            citizen = n.originator_id
            if citizen in checked_in_full:
                continue
            link = _next_link(app, links.get(citizen, (0, "")), n)
            if link is None:
                checked_in_full.add(citizen)
                links.pop(citizen, None)
                yield from _verify_chain(
                    app, str(citizen), list(app.recorder.select_events(citizen))
                )
            else:
                links[citizen] = link
        start = notifications[-1].id


def _next_link(app: CaseHistory, last: tuple[int, str], n: Any) -> tuple[int, str] | None:
    """This event's version and chain hash if it follows on from `last`, else None."""
    version, previous = last
    if n.originator_version != version + 1:
        return None
    try:
        event = app.mapper.to_domain_event(n)
    except Exception:
        return None
    kind, content = _kind_and_content(event)
    stored = getattr(event, "chain_hash", "")
    if chain_hash_of(previous, kind, content) != stored:
        return None
    return n.originator_version, stored


def _verify_chain(
    app: CaseHistory, citizen: str, notifications: list[Any]
) -> Iterator[ChainProblem]:
    notifications.sort(key=lambda n: n.originator_version)
    events: list[tuple[int, str, dict[str, Any], str]] = []
    for n in notifications:
        try:
            event = app.mapper.to_domain_event(n)
            kind, content = _kind_and_content(event)
            events.append((n.originator_version, kind, content, getattr(event, "chain_hash", "")))
        except Exception as error:
            yield ChainProblem(citizen, n.originator_version, "undecodable", type(error).__name__)
    expected_version = 1
    previous = ""
    for version, kind, content, stored in events:
        if version != expected_version:
            yield ChainProblem(
                citizen,
                expected_version,
                "removed",
                f"versions {expected_version}..{version - 1} are missing",
            )
        expected_version = version + 1
        if chain_hash_of(previous, kind, content) != stored:
            fits_elsewhere = any(
                chain_hash_of(other_prev, kind, content) == stored
                for other_prev in ["", *(e[3] for e in events)]
            )
            yield ChainProblem(
                citizen,
                version,
                "reordered" if fits_elsewhere else "altered",
                "the stored chain hash does not match this position's content and link",
            )
        previous = stored
