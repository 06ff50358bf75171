"""Rebuilding and proving read models, and recovering the event store from the history topic.

Rebuilds are blue/green: a fresh copy is built beside the live view up to the
live view's tracked position, the two checksums are compared, and only on
request is the fresh copy swapped in (rows and position in one transaction).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from casehistory.bootstrap import READ_MODEL, Engine
from casehistory.consumers.ingest import IngestReport
from casehistory.projections.store import PositionMoved, ReadModelStore
from casehistory.settings import Settings


@dataclass(frozen=True)
class Checksum:
    read_model: str
    position: int
    checksum: str
    rows: int


def checksum_of(store: ReadModelStore) -> Checksum:
    return Checksum(READ_MODEL, store.position(), store.checksum(), store.count())


def checksum(engine: Engine) -> Checksum:
    return checksum_of(engine.read_model())


@dataclass(frozen=True)
class Rebuild:
    live: Checksum
    rebuilt: Checksum
    switched: bool

    @property
    def equal(self) -> bool:
        return self.live.checksum == self.rebuilt.checksum


def rebuild(
    engine: Engine,
    *,
    switch: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> Rebuild:
    """Build a fresh copy of the read model in one pass, compare it with the live one.

    The copy is built up to the live position, so the comparison is exact even
    while workers keep the live read model moving. With `switch`, the copy is
    caught up to the end of the store and replaces the live rows and position in
    one fenced transaction; if a live worker got further meanwhile, the copy
    catches up again first, so the switch never moves the read model backwards.
    """
    live = checksum(engine)
    positions = engine.read_model().positions()
    fresh = engine.replay_read_model()
    follower = engine.follower(fresh)
    follower.catch_up(on_batch, until=positions)
    rebuilt = checksum_of(fresh)
    if switch:
        for _attempt in range(10):
            follower.catch_up(on_batch)
            try:
                engine.read_model().switch_from(fresh)
                break
            except PositionMoved:
                continue
        else:
            raise PositionMoved("the live read model kept moving ahead of the rebuilt copy")
    fresh.clear()
    return Rebuild(live, rebuilt, switch)


def replay_target(source: Settings, into: str) -> Settings:
    """Settings of a store rebuilt from the history topic in `into` (a data dir or a URL).

    It keeps the source's key store: the CPRs on the history topic are sealed under
    those keys, so a citizen whose key was destroyed stays unidentifiable.
    """
    keys = source.key_store or (
        source.store if source.uses_postgres else str(source.data_dir / "keys.db")
    )
    if into.startswith(("postgresql://", "postgres://")):
        return replace(source, store=into, key_store=keys)
    return replace(source, data_dir=Path(into), store="sqlite", key_store=keys)


def replay_from_kafka(
    target: Engine,
    bootstrap_servers: str,
    topic: str,
    on_batch: Callable[[int], None] | None = None,
) -> IngestReport:
    """Rebuild an event store from the history topic read from offset 0 to its current end.

    Records go through the store writers' path (`IngestService.store`), each into
    its partition group's store, so duplicates come out the same way; dead letters
    are only counted. Partitions
    are assigned, not subscribed, so no consumer group's offsets are touched.
    Only committed routing transactions are read.
    """
    from kafka import KafkaConsumer, TopicPartition

    from casehistory.consumers.deadletter import DeadLetterList
    from casehistory.consumers.kafka_ingest import STORE_FETCH, history_incoming

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False,
        isolation_level="read_committed", **STORE_FETCH,
    )
    total = IngestReport()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends: dict[Any, int] = consumer.end_offsets(partitions)
        services = {group: target.ingest_service(DeadLetterList(), group)
                    for group in target.stores}
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            polled = consumer.poll(timeout_ms=1000)
            by_group: dict[int, list[Any]] = {}
            for tp, batch in polled.items():
                by_group.setdefault(target.settings.group_of(tp.partition), []).extend(
                    r for r in batch if r.offset < ends[tp]
                )
            for group, records in by_group.items():
                if not records:
                    continue
                report = services[group].store([history_incoming(r) for r in records])
                total.add(report)
                if on_batch is not None:
                    on_batch(report.received)
    finally:
        consumer.close()
    return total
