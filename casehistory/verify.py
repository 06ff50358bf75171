"""Walking every citizen's hash chain in the event store to find tampering.

Each stored event's `chain_hash` is recomputed from the previous stored link
and the event's own content. A mismatch means the record was altered, or that
records were reordered (the event's hash fits another position); a gap in a
citizen's versions, or in the store's notification ids, means a record was
removed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from casehistory.application import CaseHistory
from domain.citizen import CHAINED_FIELDS, chain_hash_of


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
    """Every problem found, citizen by citizen, in notification order."""
    by_citizen: dict[UUID | str, list[Any]] = defaultdict(list)
    expected_id = 1
    start = 0
    while True:
        notifications = app.recorder.select_notifications(
            start=start, limit=batch_size, inclusive_of_start=False
        )
        if not notifications:
            break
        for n in notifications:
            if n.id != expected_id:
                yield ChainProblem(
                    str(n.originator_id),
                    n.originator_version,
                    "removed",
                    f"notification ids {expected_id}..{n.id - 1} are missing before this event",
                )
            expected_id = n.id + 1
            by_citizen[n.originator_id].append(n)
        start = notifications[-1].id
    for citizen, notifications in by_citizen.items():
        yield from _verify_chain(app, str(citizen), notifications)


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
