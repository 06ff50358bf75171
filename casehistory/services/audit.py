"""A citizen's audit trail, and forgetting a citizen everywhere the engine keeps them.

The audit lists every stored event in arrival order with its provenance and
retraction links, and for each what it changed in the citizen's durations and
coordination flags on the audit date: the measures computed from the events
up to and including it, against those from the events before it.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from casehistory.application import CaseHistory
from casehistory.domain.citizen import Citizen
from casehistory.domain.coordination import coordination_on
from casehistory.domain.durations import durations_on
from casehistory.domain.facts import Fact
from casehistory.domain.timeline import build_timeline

if TYPE_CHECKING:
    from casehistory.bootstrap import Engine


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
    app: CaseHistory, destroy_key: Callable[[str], object], citizen: Citizen,
    at: datetime | None = None,
) -> None:
    """Crypto-shred: record the forget in the citizen's history, then destroy the CPR key.

    Recorded first: a crash in between leaves a citizen marked forgotten whose key
    still exists, and forgetting again destroys it (the forget is recorded once).
    """
    if citizen.forgotten_at is None:
        citizen.forget(at or datetime.now(UTC))
        app.save(citizen)
    destroy_key(citizen.citizen_key)


def purge_dead_letters(path: Path, cprs: set[str], before: datetime | None = None) -> int:
    """Rewrite a dead-letters file without the letters that hold any of `cprs`, or expired.

    A letter is expired when it was dead-lettered before `before` (letters written
    before the time was recorded count as expired once a retention is set). The
    file is replaced atomically, owner-only. Returns how many letters went.
    """
    if not path.exists():
        return 0
    kept: list[str] = []
    dropped = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        letter = json.loads(line)
        original = letter.get("record") or base64.b64decode(
            letter.get("record_base64", "")
        ).decode("latin-1")
        stamped = letter.get("dead_lettered_at")
        expired = before is not None and (
            stamped is None or datetime.fromisoformat(stamped) < before
        )
        if expired or any(cpr in original for cpr in cprs):
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        temporary = path.with_name(f".{path.name}.purge")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.writelines(line + "\n" for line in kept)
        os.replace(temporary, path)
    return dropped


def carry_forgetting(source: Engine, target: Engine) -> Callable[[], int]:
    """Make a store rebuilt from the input topic forget whom the source store forgot.

    Call before the rebuild: the forgotten citizens' tombstones go to the target's
    key store, so no CPR of theirs is sealed again. Call the returned function after
    it: each of them gets the source's forget recorded again. Returns how many.
    """
    forgotten = source.vault.keys.forgotten()
    for key in forgotten:
        target.vault.keys.destroy(key)

    def record_forgets() -> int:
        done = 0
        for key in sorted(forgotten):
            replayed = target.find(key)  # in whichever partition group's store holds it
            original = source.find(key)
            if replayed is not None and replayed.forgotten_at is None:
                at = original.forgotten_at if original is not None else None
                forget(target.store_of(key), target.vault.keys.destroy, replayed, at)
                done += 1
        return done

    return record_forgets
