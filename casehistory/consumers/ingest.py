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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import IntegrityError, StoredEvent

from casehistory.application import CaseHistory
from casehistory.consumers.deadletter import DeadLetter, DeadLetterSink
from casehistory.consumers.files import Incoming
from casehistory.consumers.retry import Backoff
from casehistory.domain.citizen import Outcome, fact_content, outcome_of
from casehistory.domain.cpr import birth_date
from casehistory.recorders import IndexEntry, LedgerEntry
from casehistory.schemas import history
from casehistory.schemas.contract import ContractEvent, Rejection, validate
from casehistory.schemas.history import Routed
from casehistory.services.identity import IdentityVault, KeyStore

log = logging.getLogger(__name__)

STORE_BATCH = 10_000
"""Records per poll of a Kafka ingest consumer or store writer, each poll stored in one
event-store transaction.

A transaction rewrites every page its appends dirty all over the store's keyed B-trees;
the more appends share a page, the fewer pages are written per event. A file ingest of
268,000 events took 11% less CPU per event in batches of 10,000 than of 2,000 (the
store's writes 30% less). A store writer over the 40,000-citizen history topic (709,849
records) took 98-109 us of CPU per event with 2,000 records a poll, 90 with 5,000, 80-81
with 10,000 and 80 with 20,000; a single-stage consumer of the same population 151-177
with 2,000 and 132-138 with 10,000 (bench/NOTES.md). A batch holds about 50 MB more
memory than one of 2,000."""

FILE_BATCH = 50_000
"""Records per event-store transaction of a file ingest (a bulk load: no one waits for its
first records).

Once the store's keyed B-trees have more leaf pages than a batch has appends, each append
dirties pages of its own, and the commit writes them all: a 100,000-citizen ingest in
batches of 10,000 wrote 5 KiB per event at its start and 23 KiB at its end. Batches of
50,000 share more pages (13 KiB at the end). With the longer write-ahead log
(`recorders.SQLITE_CHECKPOINT_PAGES`) the whole ingest took 22% less time per event (72.7
and 72.1 against 93.8 and 93.1 us, alternating runs; bench/NOTES.md), for a peak RSS of
about 490 MB against 215 MB."""


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
        claims: KeyStore | None = None,
    ) -> None:
        self.app = app
        self.vault = vault
        self.dead_letters = dead_letters
        self.max_attempts = max_attempts
        self.claims = claims
        """With several partition groups, where event ids are claimed across their stores
        (`KeyStore.claim_events`); None: this store's event index decides alone."""
        self.fence: dict[str, int] | None = None
        """The generations of the sources (partitions) this writer took over (`take_over`);
        once set, every append is fenced on those of its batch (`recorders.WriterFenced`)."""

    def take_over(self, sources: list[str]) -> None:
        """Become these sources' writer: a writer that held them before can no longer append."""
        recorder: Any = self.app.recorder
        self.fence = {**(self.fence or {}), **recorder.take_over(sources)}

    def check_still_writer(self) -> None:
        """Raise `recorders.WriterFenced` if a newer writer took over a source of this one,
        so that a superseded writer stops even while it has nothing to append."""
        if self.fence:
            recorder: Any = self.app.recorder
            recorder.check_fence(self.fence)

    def release(self, sources: list[str]) -> None:
        """Stop writing these sources (their partitions were revoked)."""
        for source in sources:
            (self.fence or {}).pop(source, None)

    def ingest(
        self,
        batch: Sequence[Incoming],
        backoff: Backoff | None = None,
        stop: threading.Event | None = None,
    ) -> IngestReport:
        """Ingest one batch of contract records; returns only when its effects are durable.

        Order of effects: dead letters are handed to the sink (and acknowledged)
        first, then the events and the ledger are saved in one transaction. A crash
        in between may repeat a dead letter on redelivery, but never loses one.
        With `backoff`, transient faults (store or dead-letter destination down)
        are waited out and the batch retried; a letter the sink took is not sent
        again by a retry.
        """
        checked = [check(incoming) for incoming in batch]
        cprs: dict[str, str] = {}
        routed: list[Routed | Rejection] = []
        for incoming, item in zip(batch, checked, strict=True):
            if isinstance(item, ContractEvent):
                bound = route(self.vault, incoming, item)
                cprs.setdefault(bound.citizen_key, item.cpr)
                routed.append(bound)
            else:
                routed.append(item)

        def seal(new: dict[str, Routed]) -> dict[str, str]:
            return self.vault.seal_new({key: cprs[key] for key in new})

        return self._durably(batch, routed, seal, backoff, stop)

    def store(
        self,
        batch: Sequence[Incoming],
        backoff: Backoff | None = None,
        stop: threading.Event | None = None,
    ) -> IngestReport:
        """Store one batch of history-topic records (routed, CPR sealed), as `ingest` does.

        A record that does not decode is dead-lettered as undecodable.
        """
        routed: list[Routed | Rejection] = []
        sealed: dict[str, str] = {}
        cipher = self.app.mapper.cipher
        for incoming in batch:
            try:
                item, sealed_cpr = history.decode(incoming.raw, cipher)
            except history.UnreadableHistoryRecord as error:
                routed.append(Rejection("undecodable", str(error)))
            else:
                routed.append(item)
                sealed.setdefault(item.citizen_key, sealed_cpr)

        def seal(new: dict[str, Routed]) -> dict[str, str]:
            return {key: sealed[key] for key in new}

        return self._durably(batch, routed, seal, backoff, stop)

    def stored_ends(self, sources: list[str]) -> dict[str, int]:
        """The last position of each source whose fate the store holds (see the ledger)."""
        recorder: Any = self.app.recorder
        return dict(recorder.ledger_ends(sources))

    def _durably(
        self,
        batch: Sequence[Incoming],
        routed: list[Routed | Rejection],
        seal: Callable[[dict[str, Routed]], dict[str, str]],
        backoff: Backoff | None,
        stop: threading.Event | None,
    ) -> IngestReport:
        sent: set[int] = set()  # positions in the batch whose dead letter the sink took

        def attempt() -> IngestReport:
            return self._append(batch, routed, seal, sent)

        return attempt() if backoff is None else backoff.retry(attempt, "ingesting a batch", stop)

    def _append(
        self,
        batch: Sequence[Incoming],
        routed: list[Routed | Rejection],
        seal: Callable[[dict[str, Routed]], dict[str, str]],
        sent: set[int],
    ) -> IngestReport:
        invalid = {n: r for n, r in enumerate(routed) if isinstance(r, Rejection)}
        valid = [(n, r) for n, r in enumerate(routed) if isinstance(r, Routed)]
        self._dead_letter(batch, invalid, sent)
        for attempt in range(1, self.max_attempts + 1):
            try:
                appended, outcomes = self._record([r for _, r in valid], seal)
                stored, heads, index = appended
                conflicts = {
                    n: _conflict(item.fact.event_id)
                    for (n, item), outcome in zip(valid, outcomes, strict=True)
                    if outcome is Outcome.CONFLICT
                }
                self._dead_letter(batch, conflicts, sent)
                fate: dict[int, tuple[str, str | None]] = {
                    n: ("dead_lettered", rejection.reason)
                    for n, rejection in (invalid | conflicts).items()
                }
                for (n, _), outcome in zip(valid, outcomes, strict=True):
                    if outcome is not Outcome.CONFLICT:
                        fate[n] = (outcome.value, None)
                ledger = [
                    LedgerEntry(*position, *fate[n])
                    for n, incoming in enumerate(batch)
                    if (position := ledger_position(incoming.provenance)) is not None
                ]
                fence = None if self.fence is None else {
                    entry.source: self.fence.get(entry.source, 0) for entry in ledger
                }
                self.app.append(stored, heads, index, ledger=ledger, fence=fence)
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
        self.dead_letters.put([letter_for(batch[n], rejections[n]) for n in new])
        sent.update(new)

    def _record(
        self, routed: list[Routed], seal: Callable[[dict[str, Routed]], dict[str, str]]
    ) -> tuple[Appended, list[Outcome]]:
        """The records storing these facts (not yet saved), with the citizens' new heads
        and index entries, and each fact's outcome.

        Reads one head per citizen and one index entry per event id, never a history.
        """
        app = self.app
        heads = app.heads(item.citizen_key for item in routed)
        event_keys = {item.fact.event_id: app.digest(item.fact.event_id) for item in routed}
        known = app.known_events(event_keys)
        contents = [app.digest(item.content_hash) for item in routed]
        if self.claims is not None:
            known.update(self._claimed_elsewhere(self.claims, routed, contents, event_keys, known))
        outcomes: list[Outcome] = []
        new: dict[str, Routed] = {}
        index: list[IndexEntry] = []
        for item, content in zip(routed, contents, strict=True):
            event_id, citizen_key = item.fact.event_id, item.citizen_key
            outcome = outcome_of(known.get(event_id), citizen_key, content)
            if outcome is Outcome.STORED:
                known[event_id] = (citizen_key, content)
                index.append(IndexEntry(event_keys[event_id], citizen_key, content))
                if citizen_key not in heads:
                    new.setdefault(citizen_key, item)
            outcomes.append(outcome)
        # Each citizen's records together, in the order the batch first names them.
        records: dict[str, list[StoredEvent]] = {}
        for key, sealed in seal(new).items():
            registered, heads[key] = app.stored_registration(key, new[key].birth_date, sealed)
            records[key] = [registered]
        touched: dict[str, tuple[int, str]] = {}
        for item, outcome in zip(routed, outcomes, strict=True):
            if outcome is Outcome.STORED:
                kind, key = item.fact.event_type, item.citizen_key
                if (fields := item.stored) is None:
                    fields = fact_content(item.fact, item.content_hash, item.provenance)
                head = heads[key] = heads[key].following(kind, fields)
                records.setdefault(key, []).append(
                    app.stored_fact(key, head.version, kind, fields, head.chain_hash)
                )
                touched[key] = (head.version, head.chain_hash)
        return ([r for rs in records.values() for r in rs], touched, index), outcomes

    def _claimed_elsewhere(
        self, claims: KeyStore, routed: list[Routed], contents: list[str],
        event_keys: dict[str, str], known: dict[str, tuple[str, str]],
    ) -> dict[str, tuple[str, str]]:
        """Of the event ids this store does not hold, those another delivery claimed first
        (stored, or about to be, in another group's store), each held by no citizen here.

        The claims are committed before the batch's append: a writer that dies between the
        two finds its own claims standing when it stores the batch again.
        """
        first: dict[str, str] = {}
        for item, content in zip(routed, contents, strict=True):
            if item.fact.event_id not in known:
                first.setdefault(item.fact.event_id, self.app.delivery(item.citizen_key, content))
        standing = claims.claim_events({event_keys[e]: d for e, d in first.items()})
        return {e: CLAIMED_ELSEWHERE for e, d in first.items() if standing[event_keys[e]] != d}


CLAIMED_ELSEWHERE = ("", "")
"""The holder of an event id claimed in another group's store: no citizen key is empty, so
every delivery of it here is a conflict (`outcome_of`)."""

Appended = tuple[list[StoredEvent], dict[str, tuple[int, str]], list[IndexEntry]]
"""A batch's records, the new heads (version, chain hash) of its citizens, and the index
entries of its facts."""


def check(incoming: Incoming) -> ContractEvent | Rejection:
    """The contract event an input record holds, or why it is rejected."""
    if incoming.decode_error is not None:
        return Rejection("undecodable", incoming.decode_error)
    return validate(incoming.payload)


def route(vault: IdentityVault, incoming: Incoming, event: ContractEvent) -> Routed:
    """A valid event bound for its citizen: the pseudonym replaces the CPR."""
    return Routed(
        vault.citizen_key(event.cpr),
        birth_date(event.cpr),
        event.to_fact(),
        event.content_hash(),
        _provenance(incoming, event),
    )


def _conflict(event_id: str) -> Rejection:
    return Rejection(
        "event_id_conflict",
        f"event {event_id} was delivered before with other content or under another "
        "citizen; the first arrival stands",
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


def letter_for(incoming: Incoming, rejection: Rejection) -> DeadLetter:
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
