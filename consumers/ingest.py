"""The ingest path every source shares: validate, dead-letter, append idempotently.

A batch is validated record by record; what is invalid goes to the dead-letter
sink with its reason. The rest is grouped by citizen and appended to the
citizens' aggregates in one event-store transaction. A redelivered event (same
id, same content) is counted as a duplicate and changes nothing; the same id
with other content is a conflict and is dead-lettered. Callers acknowledge their
source (commit offsets) only after `ingest` has returned.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import IntegrityError

from casehistory.application import CaseHistory
from casehistory.identity import IdentityVault
from casehistory.recorders import LedgerEntry
from consumers.deadletter import DeadLetter, DeadLetterSink
from consumers.files import Incoming
from domain.citizen import Citizen, Outcome
from domain.cpr import birth_date
from schemas.contract import ContractEvent, Rejection, validate

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """Counts of what happened to the records of one or more batches."""

    received: int = 0
    stored: int = 0
    duplicate: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)

    def add(self, other: IngestReport) -> None:
        self.received += other.received
        self.stored += other.stored
        self.duplicate += other.duplicate
        self.rejected += other.rejected
        self.rejected_by_reason.update(other.rejected_by_reason)


class IngestService:
    """Appends incoming contract records to citizens' histories."""

    def __init__(
        self,
        app: CaseHistory,
        vault: IdentityVault,
        dead_letters: DeadLetterSink,
        max_attempts: int = 3,
    ) -> None:
        self.app = app
        self.vault = vault
        self.dead_letters = dead_letters
        self.max_attempts = max_attempts

    def ingest(self, batch: Sequence[Incoming]) -> IngestReport:
        """Ingest one batch; returns only when its effects are durable.

        Order of effects: dead letters are handed to the sink (and flushed) first,
        then the events and the ledger are saved in one transaction. A crash in
        between may repeat a dead letter on redelivery, but never loses one.
        """
        invalid: list[DeadLetter] = []
        valid: list[tuple[Incoming, ContractEvent]] = []
        fate: dict[int, tuple[str, str | None]] = {}  # id(incoming) -> outcome, reason
        for incoming in batch:
            checked: ContractEvent | Rejection = (
                Rejection("undecodable", incoming.decode_error)
                if incoming.decode_error is not None
                else validate(incoming.payload)
            )
            if isinstance(checked, Rejection):
                invalid.append(_letter(incoming, checked))
                fate[id(incoming)] = ("dead_lettered", checked.reason)
            else:
                valid.append((incoming, checked))
        self.dead_letters.put(invalid)

        for attempt in range(1, self.max_attempts + 1):
            citizens, outcomes = self._record(valid)
            conflicts = [
                _letter(incoming, _conflict(event))
                for (incoming, event), outcome in zip(valid, outcomes, strict=True)
                if outcome is Outcome.CONFLICT
            ]
            self.dead_letters.put(conflicts)
            for (incoming, _), outcome in zip(valid, outcomes, strict=True):
                fate[id(incoming)] = (
                    ("dead_lettered", "event_id_conflict")
                    if outcome is Outcome.CONFLICT
                    else (outcome.value, None)
                )
            ledger = [
                LedgerEntry(*position, *fate[id(incoming)])
                for incoming in batch
                if (position := ledger_position(incoming.provenance)) is not None
            ]
            try:
                self.app.save(*[c for c in citizens.values() if c.pending_events], ledger=ledger)
                break
            except IntegrityError:
                # Another writer appended to one of these citizens: reload and retry.
                self.app.forget_cached(list(citizens))
                if attempt == self.max_attempts:
                    raise
                log.warning("version conflict while appending a batch; retrying")
            except Exception:
                self.app.forget_cached(list(citizens))
                raise

        report = IngestReport(received=len(batch))
        report.stored = outcomes.count(Outcome.STORED)
        report.duplicate = outcomes.count(Outcome.DUPLICATE)
        report.rejected = len(invalid) + len(conflicts)
        report.rejected_by_reason.update(letter.reason for letter in invalid + conflicts)
        return report

    def _record(
        self, valid: list[tuple[Incoming, ContractEvent]]
    ) -> tuple[dict[str, Citizen], list[Outcome]]:
        """Record the events on their citizens' aggregates (not yet saved)."""
        keys = [self.vault.citizen_key(event.cpr) for _, event in valid]
        citizens = self.app.find_many(keys)
        new_cprs: dict[str, str] = {}
        for key, (_, event) in zip(keys, valid, strict=True):
            if key not in citizens:
                new_cprs.setdefault(key, event.cpr)
        for key, sealed in self.vault.seal_new(new_cprs).items():
            citizens[key] = Citizen.register(key, birth_date(new_cprs[key]), sealed)
        outcomes = [
            citizens[key].record(
                event.to_fact(), event.content_hash(), _provenance(incoming, event)
            )
            for key, (incoming, event) in zip(keys, valid, strict=True)
        ]
        return citizens, outcomes


def _conflict(event: ContractEvent) -> Rejection:
    return Rejection(
        "event_id_conflict",
        f"event {event.event_id} was delivered before with other content; the first arrival stands",
        "event_id",
    )


def ledger_position(provenance: dict[str, Any]) -> tuple[str, int] | None:
    """Where a record came from, as a ledger key: (topic:partition, offset) or (file:name, n)."""
    if "topic" in provenance:
        return f"{provenance['topic']}:{provenance['partition']}", int(provenance["offset"])
    if "file" in provenance:
        return f"file:{provenance['file']}", int(
            provenance.get("line", provenance.get("record", 0))
        )
    return None


def _provenance(incoming: Incoming, event: ContractEvent) -> dict[str, Any]:
    if event.migration_batch is None:
        return incoming.provenance
    return {**incoming.provenance, "migration_batch": event.migration_batch}


def _letter(incoming: Incoming, rejection: Rejection) -> DeadLetter:
    if rejection.reason == "undecodable":
        error_class = incoming.error_class or "UndecodableMessage"
    elif rejection.reason == "event_id_conflict":
        error_class = "EventIdConflict"
    else:
        error_class = "ValidationError"
    return DeadLetter(
        raw=incoming.raw,
        reason=rejection.reason,
        message=rejection.message,
        provenance=incoming.provenance,
        field=rejection.field,
        error_class=error_class,
        key=incoming.key,
        headers=incoming.headers,
    )
