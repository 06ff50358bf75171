"""A citizen's audit trail, and forgetting a citizen.

The audit lists every stored event in arrival order with its provenance and
retraction links, and for each what it changed in the citizen's durations and
coordination flags on the audit date: the measures computed from the events
up to and including it, against those from the events before it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from typing import Any

from casehistory.application import CaseHistory
from domain.citizen import Citizen
from domain.coordination import coordination_on
from domain.durations import durations_on
from domain.facts import Fact
from domain.timeline import build_timeline


@dataclass(frozen=True)
class AuditEntry:
    position: int
    event: str
    event_id: str | None
    effective_date: str | None
    recorded_at: str
    """When the source registered it (or, for a forget, when it happened)."""
    arrived_at: str
    source_system: str | None
    source_case_ref: str | None
    municipality: str | None
    details: dict[str, Any]
    provenance: dict[str, Any]
    retracts: str | None
    retracted_by: list[str]
    changes: dict[str, tuple[Any, Any]]
    """Measure or flag -> (before, after) on the audit date; only what changed."""


def _measures(facts: list[Fact], day: date, born: date) -> dict[str, Any]:
    timeline = build_timeline(facts)
    durations = durations_on(timeline, day, born)
    coordination = coordination_on(timeline, day, born)
    values = {f.name: getattr(durations, f.name) for f in fields(durations) if f.name != "as_of"}
    values["breaks_bridged"] = dict(durations.breaks_bridged)
    values["is_faellesborger"] = coordination.is_faellesborger
    values["support_step"] = coordination.support_step
    values["flags"] = sorted(coordination.flags)
    return values


def audit_entries(app: CaseHistory, citizen: Citizen, day: date) -> list[AuditEntry]:
    """Every stored event of the citizen, in arrival order, with what it changed on `day`."""
    retracted_by: dict[str, list[str]] = {}
    for fact in citizen.facts:
        if fact.retracted_event_id:
            retracted_by.setdefault(fact.retracted_event_id, []).append(fact.event_id)
    entries = []
    facts: list[Fact] = []
    before = _measures(facts, day, citizen.birth_date)
    stored: list[Any] = list(app.repository.event_store.get(citizen.id))
    for position, event in enumerate(stored, start=1):
        arrived = event.timestamp.astimezone(UTC).isoformat()
        if isinstance(event, Citizen.FactRecorded):
            fact = event.to_fact()
            facts.append(fact)
            after = _measures(facts, day, citizen.birth_date)
            entries.append(
                AuditEntry(
                    position,
                    type(event).__name__,
                    event.event_id,
                    event.effective_date,
                    event.recorded_at,
                    arrived,
                    event.source_system,
                    event.source_case_ref,
                    event.municipality,
                    dict(event.details),
                    dict(event.provenance),
                    fact.retracted_event_id,
                    retracted_by.get(event.event_id, []),
                    {k: (before[k], after[k]) for k in after if after[k] != before[k]},
                )
            )
            before = after
        else:
            at = getattr(event, "forgotten_at", arrived)
            entries.append(
                AuditEntry(
                    position,
                    type(event).__name__,
                    None,
                    None,
                    at,
                    arrived,
                    None,
                    None,
                    None,
                    {},
                    {},
                    None,
                    [],
                    {},
                )
            )
    return entries


def forget(
    app: CaseHistory, destroy_key: Any, citizen: Citizen, at: datetime | None = None
) -> None:
    """Crypto-shred: destroy the citizen's CPR key, and record that (and when) in the history."""
    destroy_key(citizen.citizen_key)
    citizen.forget(at or datetime.now(UTC))
    app.save(citizen)
