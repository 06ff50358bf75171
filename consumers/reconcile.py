"""Accounting: every offset of the input topic is stored, duplicate or dead-lettered.

For each partition the offsets from the log start up to the group's committed
offset must each have exactly one ledger entry; an offset without one is a gap
(something was lost). Offsets after the committed one are not yet consumed
(lag), not lost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition

from casehistory.recorders import LedgerEntry


@dataclass
class PartitionAccount:
    partition: int
    log_start: int
    committed: int
    end: int
    outcomes: Counter[str] = field(default_factory=Counter)
    gaps: list[int] = field(default_factory=list)

    @property
    def not_yet_consumed(self) -> int:
        return self.end - self.committed


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
    bootstrap_servers: str, topic: str, group_id: str, ledger: Iterable[LedgerEntry]
) -> Reconciliation:
    """Compare the topic's offsets with the ingest ledger."""
    by_partition: dict[int, dict[int, str]] = {}
    prefix = f"{topic}:"
    for entry in ledger:
        if entry.source.startswith(prefix):
            partition = int(entry.source.removeprefix(prefix))
            by_partition.setdefault(partition, {})[entry.position] = entry.outcome

    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group_id,
                             enable_auto_commit=False)
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in partitions]
        starts = consumer.beginning_offsets(tps)
        ends = consumer.end_offsets(tps)
        accounts = []
        for tp in tps:
            committed = consumer.committed(tp) or starts[tp]
            seen = by_partition.get(tp.partition, {})
            account = PartitionAccount(tp.partition, starts[tp], committed, ends[tp])
            for offset in range(starts[tp], committed):
                outcome = seen.get(offset)
                if outcome is None:
                    account.gaps.append(offset)
                else:
                    account.outcomes[outcome] += 1
            accounts.append(account)
    finally:
        consumer.close()
    return Reconciliation(topic, accounts)
