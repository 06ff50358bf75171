"""The ingest path every source shares: validate, dead-letter, append idempotently.

A batch is validated record by record; what is invalid goes to the dead-letter
sink with its reason. The rest is appended to the citizens' histories in one
event-store transaction, from each citizen's head (version and chain hash), so
the cost of an event does not grow with its citizen's history. A redelivered
event (same id, same citizen, same content) is counted as a duplicate and
changes nothing; the same id with other content or under another citizen is a
conflict and is dead-lettered. Callers acknowledge their source (commit
offsets) only after `ingest` has returned.
"""

from __future__ import annotations

import logging
import threading
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
from consumers.retry import Backoff
from domain.citizen import Citizen, Head, Outcome, outcome_of
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

    def ingest(
        self,
        batch: Sequence[Incoming],
        backoff: Backoff | None = None,
        stop: threading.Event | None = None,
    ) -> IngestReport:
        """Ingest one batch; returns only when its effects are durable.

        Order of effects: dead letters are handed to the sink (and acknowledged)
        first, then the events and the ledger are saved in one transaction. A crash
        in between may repeat a dead letter on redelivery, but never loses one.
        With `backoff`, transient faults (store or dead-letter destination down)
        are waited out and the batch retried; a letter the sink took is not sent
        again by a retry.
        """
        checked = [
            Rejection("undecodable", incoming.decode_error)
            if incoming.decode_error is not None
            else validate(incoming.payload)
            for incoming in batch
        ]
        sent: set[int] = set()  # positions in the batch whose dead letter the sink took

        def attempt() -> IngestReport:
            return self._ingest_checked(batch, checked, sent)

        return attempt() if backoff is None else backoff.retry(attempt, "ingesting a batch", stop)

    def _ingest_checked(
        self,
        batch: Sequence[Incoming],
        checked: list[ContractEvent | Rejection],
        sent: set[int],
    ) -> IngestReport:
        invalid = {n: c for n, c in enumerate(checked) if isinstance(c, Rejection)}
        valid = [(n, batch[n], c) for n, c in enumerate(checked) if isinstance(c, ContractEvent)]
        self._dead_letter(batch, invalid, sent)
        keys = [self.vault.citizen_key(event.cpr) for _, _, event in valid]
        for attempt in range(1, self.max_attempts + 1):
            try:
                appended, outcomes = self._record(keys, [(i, e) for _, i, e in valid])
                conflicts = {
                    n: _conflict(event)
                    for (n, _, event), outcome in zip(valid, outcomes, strict=True)
                    if outcome is Outcome.CONFLICT
                }
                self._dead_letter(batch, conflicts, sent)
                fate: dict[int, tuple[str, str | None]] = {
                    n: ("dead_lettered", rejection.reason)
                    for n, rejection in (invalid | conflicts).items()
                }
                for (n, _, _), outcome in zip(valid, outcomes, strict=True):
                    if outcome is not Outcome.CONFLICT:
                        fate[n] = (outcome.value, None)
                ledger = [
                    LedgerEntry(*position, *fate[n])
                    for n, incoming in enumerate(batch)
                    if (position := ledger_position(incoming.provenance)) is not None
                ]
                self.app.append(appended, ledger=ledger)
                break
            except IntegrityError:
                # Another writer appended to one of these citizens, or stored one of
                # these event ids: read the heads again and retry.
                if attempt == self.max_attempts:
                    raise
                log.warning("another writer appended meanwhile; retrying the batch")

        rejected = [r.reason for r in (invalid | conflicts).values()]
        report = IngestReport(received=len(batch))
        report.stored = outcomes.count(Outcome.STORED)
        report.duplicate = outcomes.count(Outcome.DUPLICATE)
        report.rejected = len(rejected)
        report.rejected_by_reason.update(rejected)
        return report

    def _dead_letter(
        self, batch: Sequence[Incoming], rejections: dict[int, Rejection], sent: set[int]
    ) -> None:
        """Hand the sink the letters it has not taken yet (a retry sends none twice)."""
        new = [n for n in rejections if n not in sent]
        self.dead_letters.put([_letter(batch[n], rejections[n]) for n in new])
        sent.update(new)

    def _record(
        self, keys: list[str], valid: list[tuple[Incoming, ContractEvent]]
    ) -> tuple[list[Any], list[Outcome]]:
        """The events recording these facts (not yet saved), and each fact's outcome.

        Reads one head per citizen and one index entry per event id, never a history.
        """
        heads = self.app.heads(keys)
        known = self.app.known_events(event.event_id for _, event in valid)
        hashes = [event.content_hash() for _, event in valid]
        outcomes: list[Outcome] = []
        new_cprs: dict[str, str] = {}
        for key, (_, event), content_hash in zip(keys, valid, hashes, strict=True):
            event_id = str(event.event_id)
            content = self.app.digest(content_hash)
            outcome = outcome_of(known.get(event_id), key, content)
            if outcome is Outcome.STORED:
                known[event_id] = (key, content)
                if key not in heads:
                    new_cprs.setdefault(key, event.cpr)
            outcomes.append(outcome)
        appended: list[Any] = []
        for key, sealed in self.vault.seal_new(new_cprs).items():
            registered = Citizen.register(key, birth_date(new_cprs[key]), sealed)
            appended.extend(registered.collect_events())
            heads[key] = Head(key, registered.version, registered.chain_head)
        for key, (incoming, event), content_hash, outcome in zip(
            keys, valid, hashes, outcomes, strict=True
        ):
            if outcome is Outcome.STORED:
                recorded, heads[key] = heads[key].append(
                    event.to_fact(), content_hash, _provenance(incoming, event)
                )
                appended.append(recorded)
        # Each citizen's events together, in the order the batch first names them.
        first_seen: dict[Any, int] = {}
        for recorded in appended:
            first_seen.setdefault(recorded.originator_id, len(first_seen))
        appended.sort(key=lambda recorded: first_seen[recorded.originator_id])
        return appended, outcomes


def _conflict(event: ContractEvent) -> Rejection:
    return Rejection(
        "event_id_conflict",
        f"event {event.event_id} was delivered before with other content; the first arrival stands",
        "event_id",
    )


def ledger_position(provenance: dict[str, Any]) -> tuple[str, int] | None:
    """Where a record came from, as a ledger key: (topic:partition, offset) or (file:path, n).

    A file is known by its full resolved path, so two files of the same name in
    different folders keep apart.
    """
    if "topic" in provenance:
        return f"{provenance['topic']}:{provenance['partition']}", int(provenance["offset"])
    if "file" in provenance:
        return f"file:{provenance.get('path', provenance['file'])}", int(
            provenance.get("line", provenance.get("record", 0))
        )
    return None


def _provenance(incoming: Incoming, event: ContractEvent) -> dict[str, Any]:
    """What is kept with the stored event: the record's origin (a file by name only)."""
    provenance = incoming.provenance
    if "path" in provenance:
        provenance = {k: v for k, v in provenance.items() if k != "path"}
    if event.migration_batch is None:
        return provenance
    return {**provenance, "migration_batch": event.migration_batch}


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
