"""The read side's view of a citizen: facts decoded straight from stored events.

Projections need a citizen's key, birth date and facts, not the aggregate: no
idempotency index, no hash chain, no domain-event objects. Decoding the stored
JSON into `Fact`s directly, and computing the timeline once for every read
model fed from one pass, is what makes a rebuild cheap (see docs/benchmarks.md).
The aggregate stays the one writer; this module only reads what it stored.

Stored events that need upcasting (a `class_version` in their state) go through
the application's mapper, so the result is always what the aggregate would see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from functools import cache
from typing import Any, Protocol

import orjson
from eventsourcing.persistence import Mapper
from eventsourcing.utils import resolve_topic

from casehistory.domain.citizen import Citizen, recorded_fact
from casehistory.domain.facts import EventType, Fact
from casehistory.domain.timeline import Timeline, build_timeline
from casehistory.projections.rows import CitizenRows, Earlier, rows_for

_KINDS = {cls: kind for kind, cls in Citizen.EVENT_CLASSES.items()}


@cache
def _kind(topic: str) -> EventType | None:
    """The fact kind a stored event's topic names (None for a registration or another event).

    Resolved by eventsourcing, so topics written before the namespace move (`domain.citizen:`)
    name the same classes (`casehistory.domain.citizen` registers its old name)."""
    return _KINDS.get(resolve_topic(topic))


@cache
def _registers(topic: str) -> bool:
    return resolve_topic(topic) is Citizen.Registered


class StoredCitizenEvent(Protocol):
    """What a stored event or notification carries (eventsourcing's `StoredEvent`)."""

    @property
    def originator_version(self) -> int: ...

    @property
    def topic(self) -> str: ...

    @property
    def state(self) -> bytes: ...


class CitizenHistory:
    """A citizen's facts in arrival order, at one version of its aggregate."""

    __slots__ = ("_last", "_timeline", "birth_date", "citizen_key", "facts", "version")

    def __init__(self, citizen_key: str, birth_date: date) -> None:
        self.citizen_key = citizen_key
        self.birth_date = birth_date
        self.facts: list[Fact] = []
        self.version = 0
        self._timeline: Timeline | None = None
        self._last: tuple[date | None] | None = None

    def timeline(self) -> Timeline:
        """The timeline of every fact known so far (computed once per version)."""
        if self._timeline is None:
            self._timeline = build_timeline(self.facts)
        return self._timeline

    @property
    def last(self) -> date | None:
        """The latest effective date of the facts known so far (computed once per version)."""
        if self._last is None:
            self._last = (max((f.effective_date for f in self.facts), default=None),)
        return self._last[0]

    def rows(self, staff_key: bytes, events: int, earlier: Earlier | None = None) -> CitizenRows:
        """Every read model's rows for the facts known so far, computed from `events`
        stored events (for progress); caseworkers by pseudonym under `staff_key`; the
        tables whose inputs are as in `earlier` are taken from it (`rows_for`)."""
        rows = rows_for(self.citizen_key, self.birth_date, self.timeline(), self.last,
                        staff_key=staff_key, earlier=earlier)  # fmt: skip
        rows.events = events
        return rows

    def _changed(self) -> None:
        self._timeline = None
        self._last = None


class HistoryDecoder:
    """Moves `CitizenHistory`s forward by stored events, decoding their JSON directly."""

    def __init__(self, mapper: Mapper[Any]) -> None:
        self.mapper = mapper
        self._open = _opener(mapper)

    def advance(
        self, history: CitizenHistory | None, stored: Iterable[StoredCitizenEvent]
    ) -> CitizenHistory:
        """`history` (None before the registration) moved forward by `stored`, in order."""
        for event in stored:
            state = self.state(event)
            if _registers(event.topic):
                history = CitizenHistory(
                    state["citizen_key"], date.fromisoformat(state["birth_date"])
                )
            elif history is None:
                raise ValueError(f"stored {event.topic} before the citizen's registration")
            else:
                kind = _kind(event.topic)
                if kind is not None:
                    history.facts.append(recorded_fact(kind, state))
                history._changed()
            history.version = event.originator_version
        if history is None:
            raise ValueError("no stored events for the citizen")
        return history

    def state(self, event: StoredCitizenEvent) -> dict[str, Any]:
        state: dict[str, Any] = orjson.loads(self._open(event.state))
        if "class_version" in state:
            return dict(vars(self.mapper.to_domain_event(event)))  # type: ignore[arg-type]
        return state


def _opener(mapper: Mapper[Any]) -> Callable[[bytes], bytes]:
    """Stored state to JSON bytes: the mapper's cipher and compressor, undone."""
    cipher, compressor = mapper.cipher, mapper.compressor
    decrypt = cipher.decrypt if cipher is not None else None
    if compressor is None:
        return decrypt or _unchanged
    decompress = compressor.decompress
    if decrypt is None:
        return decompress
    return lambda data: decompress(decrypt(data))


def _unchanged(data: bytes) -> bytes:
    return data
