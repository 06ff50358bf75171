"""The Citizen aggregate: one per citizen, holding every fact in arrival order.

Its id is derived from the keyed pseudonym of the CPR number; the CPR itself is
only held sealed (encrypted with a key per citizen that lives outside the event
store). Recording is idempotent by `event_id`: the same id with the same content
is a no-op, the same id with other content is a conflict and records nothing.

Every stored event carries `chain_hash`, a SHA-256 over the previous event's
chain hash and this event's own content, so an altered, inserted, removed or
reordered record breaks the chain (see `chain_hash_of`).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, ClassVar, NamedTuple
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import register_topic

from casehistory.domain.canonical import canonical_json
from casehistory.domain.facts import EventType, Fact
from casehistory.domain.timeline import Timeline, build_timeline

FACT_FIELDS = (
    "benefit",
    "target_group",
    "reason",
    "from_municipality",
    "to_municipality",
    "from_group",
    "to_group",
    "intervention",
    "retracted_event_id",
    "caseworker",
    "unit",
    "meeting_kind",
)


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


@lru_cache(maxsize=1 << 16)
def citizen_id(citizen_key: str) -> UUID:
    """The aggregate id of the citizen with this pseudonym (kept for the busiest ones:
    parsing it is a fair part of storing an event)."""
    return UUID(hex=citizen_key)


class Citizen(Aggregate):
    """A citizen's whole history of published facts."""

    class Registered(Aggregate.Created):
        citizen_key: str
        birth_date: str
        sealed_cpr: str
        chain_hash: str

    class FactRecorded(Aggregate.Event):
        """Base of the recorded facts; subclasses carry the contract's event names."""

        event_id: str
        effective_date: str
        recorded_at: str
        source_system: str
        municipality: str
        source_case_ref: str | None
        details: dict[str, str]
        content_hash: str
        provenance: dict[str, Any]
        chain_hash: str

        def apply(self, aggregate: Any) -> None:
            aggregate.take(self)

        def to_fact(self) -> Fact:
            return recorded_fact(_EVENT_TYPE_OF[type(self)], vars(self))

    class BenefitStarted(FactRecorded):
        pass

    class BenefitStopped(FactRecorded):
        pass

    class CitizenMoved(FactRecorded):
        pass

    class TargetGroupChanged(FactRecorded):
        pass

    class SocialInterventionStarted(FactRecorded):
        pass

    class SocialInterventionEnded(FactRecorded):
        pass

    class EventRetracted(FactRecorded):
        pass

    class CaseworkerAssigned(FactRecorded):
        pass

    class MeetingHeld(FactRecorded):
        pass

    class Forgotten(Aggregate.Event):
        """The citizen's CPR key was destroyed (crypto-shredding); the history stays."""

        forgotten_at: str
        chain_hash: str

        def apply(self, aggregate: Any) -> None:
            aggregate.forgotten_at = datetime.fromisoformat(self.forgotten_at)
            aggregate.chain_head = self.chain_hash

    EVENT_CLASSES: ClassVar[dict[EventType, type[FactRecorded]]] = {}

    @staticmethod
    def create_id(citizen_key: str, birth_date: str, sealed_cpr: str, chain_hash: str) -> UUID:
        return citizen_id(citizen_key)

    @classmethod
    def register(cls, citizen_key: str, birth_date: date, sealed_cpr: str) -> Citizen:
        """A new citizen; the registration is the first link of the hash chain."""
        return cls(**registration(citizen_key, birth_date, sealed_cpr))

    @event(Registered)
    def __init__(self, citizen_key: str, birth_date: str, sealed_cpr: str, chain_hash: str) -> None:
        self.citizen_key = citizen_key
        self.birth_date = date.fromisoformat(birth_date)
        self.sealed_cpr = sealed_cpr
        self.chain_head = chain_hash
        self.forgotten_at: datetime | None = None
        self.facts: list[Fact] = []
        self.content_hashes: dict[str, str] = {}

    def record(self, fact: Fact, content_hash: str, provenance: dict[str, Any]) -> Outcome:
        """Record a fact unless its event id is already known."""
        known = self.content_hashes.get(fact.event_id)
        if known is not None:
            return Outcome.DUPLICATE if known == content_hash else Outcome.CONFLICT
        content = fact_content(fact, content_hash, provenance)
        self.trigger_event(
            self.EVENT_CLASSES[fact.event_type],
            **content,
            chain_hash=chain_hash_of(self.chain_head, fact.event_type.value, content),
        )
        return Outcome.STORED

    def forget(self, at: datetime) -> None:
        """Record that the CPR key was destroyed, and when."""
        content = {"forgotten_at": at.isoformat()}
        self.trigger_event(
            self.Forgotten,
            **content,
            chain_hash=chain_hash_of(self.chain_head, "Forgotten", content),
        )

    def take(self, recorded: FactRecorded) -> None:
        self.facts.append(recorded.to_fact())
        self.content_hashes[recorded.event_id] = recorded.content_hash
        self.chain_head = recorded.chain_hash

    def timeline(self, known_at: datetime | None = None) -> Timeline:
        return build_timeline(self.facts, known_at)


def registration(citizen_key: str, birth_date: date, sealed_cpr: str) -> dict[str, str]:
    """The fields of a citizen's `Registered` event, the first link of its hash chain."""
    content = {
        "citizen_key": citizen_key,
        "birth_date": birth_date.isoformat(),
        "sealed_cpr": sealed_cpr,
    }
    return {**content, "chain_hash": chain_hash_of("", "Registered", content)}


class Head(NamedTuple):
    """Where a citizen's stored history ends: all that appending a fact needs.

    Appending from the head costs the same whatever the length of the history;
    the aggregate (every fact) is only needed to read the history. A named tuple:
    immutable, and one is made per appended event.
    """

    citizen_key: str
    version: int
    chain_hash: str

    def following(self, kind: EventType, content: dict[str, Any]) -> Head:
        """The head after the next fact, of this kind with these stored fields
        (`fact_content`): the chain hash `Citizen.record` gives that fact's event."""
        chain_hash = chain_hash_of(self.chain_hash, kind.value, content)
        return Head(self.citizen_key, self.version + 1, chain_hash)


def outcome_of(known: tuple[str, str] | None, citizen_key: str, content_hash: str) -> Outcome:
    """What a delivery of an event id comes to, given who holds that id with which content.

    Idempotency holds across citizens: the same id under another citizen is a
    conflict, as is the same id with other content; the first arrival stands.
    """
    if known is None:
        return Outcome.STORED
    return Outcome.DUPLICATE if known == (citizen_key, content_hash) else Outcome.CONFLICT


def fact_content(fact: Fact, content_hash: str, provenance: dict[str, Any]) -> dict[str, Any]:
    """A recorded fact's stored fields (those the chain hash covers)."""
    return {
        "event_id": fact.event_id,
        "effective_date": fact.effective_date.isoformat(),
        "recorded_at": fact.recorded_at.isoformat(),
        "source_system": fact.source_system,
        "municipality": fact.municipality,
        "source_case_ref": fact.source_case_ref,
        "details": {
            name: value
            for name, value in zip(FACT_FIELDS, fact[_DETAILS_START:], strict=True)
            if value is not None
        },
        "content_hash": content_hash,
        "provenance": provenance,
    }


_DETAILS_START = len(Fact._fields) - len(FACT_FIELDS)
"""FACT_FIELDS are the last fields of a Fact, in its order (a test holds it)."""

CHAINED_FIELDS: dict[str, tuple[str, ...]] = {
    "Registered": ("citizen_key", "birth_date", "sealed_cpr"),
    "Forgotten": ("forgotten_at",),
    "FactRecorded": (
        "event_id",
        "effective_date",
        "recorded_at",
        "source_system",
        "municipality",
        "source_case_ref",
        "details",
        "content_hash",
        "provenance",
    ),
}


_FIELD_INDEX = {name: index for index, name in enumerate(Fact._fields)}
_NO_DETAILS = (None,) * (len(Fact._fields) - 7)


def recorded_fact(kind: EventType, state: Mapping[str, Any]) -> Fact:
    """The fact a recorded event states, from its fields in their stored form.

    Built positionally (`Fact._make`): one is built per stored event on every
    rebuild, and keyword arguments cost more than the rest of the decoding."""
    values: list[Any] = [
        state["event_id"],
        kind,
        date.fromisoformat(state["effective_date"]),
        datetime.fromisoformat(state["recorded_at"]),
        state["source_system"],
        state["municipality"],
        state["source_case_ref"],
        *_NO_DETAILS,
    ]
    for name, value in state["details"].items():
        values[_FIELD_INDEX[name]] = value
    return Fact._make(values)


def chain_hash_of(previous: str, kind: str, content: dict[str, Any]) -> str:
    """SHA-256 over the previous link, the event's kind and its content (canonical JSON)."""
    return hashlib.sha256(f"{previous}|{kind}|".encode() + canonical_json(content)).hexdigest()


Citizen.EVENT_CLASSES.update(
    {event_type: getattr(Citizen, event_type.value) for event_type in EventType}
)
_EVENT_TYPE_OF = {cls: event_type for event_type, cls in Citizen.EVENT_CLASSES.items()}

TOPIC_BEFORE_THE_MOVE = "domain.citizen"
"""This module's name before the namespace move (`casehistory.domain` was the top-level
`domain`): stores written then name their events' classes by it
(`domain.citizen:Citizen.BenefitStarted`), so it resolves to this module."""
register_topic(TOPIC_BEFORE_THE_MOVE, sys.modules[__name__])
