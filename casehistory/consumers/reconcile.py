"""Accounting: every record of the input topic is stored, duplicate or dead-lettered.

With the router (README "Kafka"), two accounts: the input topic against the
router's outputs (`routed_ledger`: each input offset forwarded to the history
topic or dead-lettered, read from those topics), and the history topic against
the store's ledger (stored, duplicate or dead-lettered), each with the group
that consumes it.

For each partition the offsets from the log start up to the group's committed
offset must each have exactly one ledger entry, except offsets that hold no
record a `read_committed` reader sees (transaction markers, records of aborted
transactions); an offset without either is a gap (something was lost). Offsets
after the committed one are not yet consumed (lag), not lost.

The committed offsets are read before the ledger: a consumer commits only after
its ledger entries are committed, so every offset below a commit read first is
already in a ledger read after it, even while consumers keep running.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from casehistory.recorders import LedgerEntry
from casehistory.schemas import history

SCAN_TIMEOUT = 60.0
"""Seconds to wait for the broker while looking at the offsets the ledger lacks."""


@dataclass
class PartitionAccount:
    partition: int
    log_start: int
    committed: int
    end: int
    outcomes: Counter[str] = field(default_factory=Counter)
    gaps: list[int] = field(default_factory=list)
    no_record: int = 0
    """Offsets below the committed one that hold no record (transaction markers, aborted)."""
    not_yet_consumed: int = 0
    """Offsets from the committed one to the end, or 0 if none of them holds a record."""


@dataclass
class Reconciliation:
    topic: str
    partitions: list[PartitionAccount]

    @property
    def outcomes(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for account in self.partitions:
            total.update(account.outcomes)
        return total

    @property
    def unaccounted(self) -> int:
        return sum(len(p.gaps) for p in self.partitions)

    @property
    def not_yet_consumed(self) -> int:
        return sum(p.not_yet_consumed for p in self.partitions)


def reconcile(
    bootstrap_servers: str,
    topic: str,
    group_id: str,
    read_ledger: Callable[[], Iterable[LedgerEntry]],
) -> Reconciliation:
    """Compare the topic's offsets with the ingest ledger (read after the committed offsets)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_poll_records=500,
    )
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in partitions]
        committed = {tp: consumer.committed(tp) for tp in tps}
        by_partition = _ledger_by_partition(topic, read_ledger())
        starts = consumer.beginning_offsets(tps)
        ends = consumer.end_offsets(tps)
        consumer.assign(tps)
        accounts = []
        for tp in tps:
            upto = committed[tp] or starts[tp]
            seen = by_partition.get(tp.partition, {})
            account = PartitionAccount(tp.partition, starts[tp], upto, ends[tp])
            missing = []
            for offset in range(starts[tp], upto):
                outcome = seen.get(offset)
                if outcome is None:
                    missing.append(offset)
                else:
                    account.outcomes[outcome] += 1
            if missing:
                records = _holding_records(consumer, tp, missing)
                account.gaps = [o for o in missing if o in records]
                account.no_record = len(missing) - len(account.gaps)
            if upto < ends[tp] and _holding_records(consumer, tp, [upto], until=ends[tp]):
                account.not_yet_consumed = ends[tp] - upto
            accounts.append(account)
    finally:
        consumer.close()
    return Reconciliation(topic, accounts)


def _ledger_by_partition(topic: str, ledger: Iterable[LedgerEntry]) -> dict[int, dict[int, str]]:
    by_partition: dict[int, dict[int, str]] = {}
    prefix = f"{topic}:"
    for entry in ledger:
        if entry.source.startswith(prefix):
            partition = int(entry.source.removeprefix(prefix))
            by_partition.setdefault(partition, {})[entry.position] = entry.outcome
    return by_partition


def _holding_records(
    consumer: KafkaConsumer, tp: TopicPartition, offsets: list[int], until: int | None = None
) -> set[int]:
    """Which of these offsets (sorted) hold a record a `read_committed` reader sees.

    With `until`, the first of `offsets` stands for every offset up to `until`:
    it is returned if any of them holds a record. The reader's position moves past
    transaction markers and aborted records without returning them, which is how
    they are told apart from records.
    """
    holding: set[int] = set()
    pending = list(offsets)
    while pending:
        first = pending[0]
        last = (until - 1) if until is not None else pending[-1]
        consumer.seek(tp, first)
        deadline = time.monotonic() + SCAN_TIMEOUT
        fetched: list[int] = []
        while not fetched and consumer.position(tp) <= last:
            fetched = [r.offset for r in consumer.poll(timeout_ms=500).get(tp, [])]
            if time.monotonic() > deadline:
                raise TimeoutError(f"partition {tp.partition}: no answer reading offset {first}")
        if until is not None:
            return {first} if any(o <= last for o in fetched) else set()
        reached = fetched[-1] if fetched else consumer.position(tp) - 1
        got = set(fetched)
        holding.update(o for o in pending if o <= reached and o in got)
        pending = [o for o in pending if o > reached]
    return holding


def routed_ledger(
    bootstrap_servers: str,
    input_topic: str,
    history_topic: str,
    dlq_topic: str,
    cipher: history.Cipher | None,
) -> list[LedgerEntry]:
    """What the router made of each input offset, read from its committed outputs.

    A history record names its input position in its provenance; a dead letter in
    its `dlq.source.*` headers. Read these after the router group's committed
    offsets (as `reconcile` does): a routing transaction commits its outputs and
    its offsets together. An offset named twice would mean a record routed twice.
    """
    entries: list[LedgerEntry] = []
    for record in committed_records(bootstrap_servers, history_topic):
        try:
            routed, _ = history.decode(record.value, cipher)
        except history.UnreadableHistoryRecord:
            continue  # the store writers dead-letter it; it names no input offset
        origin = routed.provenance
        if origin.get("topic") == input_topic:
            entries.append(LedgerEntry(f"{input_topic}:{origin['partition']}",
                                       int(origin["offset"]), "forwarded"))
    for record in committed_records(bootstrap_servers, dlq_topic):
        headers = {name: value for name, value in record.headers or ()}
        if headers.get("dlq.source.topic", b"").decode() == input_topic:
            entries.append(LedgerEntry(
                f"{input_topic}:{headers['dlq.source.partition'].decode()}",
                int(headers["dlq.source.offset"]), "dead_lettered",
                headers.get("dlq.reason", b"").decode() or None,
            ))
    return entries


def committed_records(bootstrap_servers: str, topic: str) -> list[Any]:
    """Every record a `read_committed` reader sees in the topic, up to its current end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False,
                             isolation_level="read_committed", max_poll_records=2000)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + SCAN_TIMEOUT
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for tp, batch in consumer.poll(timeout_ms=500).items():
                records.extend(r for r in batch if r.offset < ends[tp])
                deadline = time.monotonic() + SCAN_TIMEOUT
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: no answer reading to the end")
        return records
    finally:
        consumer.close()
