"""The router stage: input topic -> history topic or dead-letter topic, exactly once.

Upstream systems publish contract records to the input topic with any key
(docs/upstream.md). Each member of the router group reads its partitions
(`read_committed`) and, per polled batch, in one Kafka transaction:

- a record that does not decode or validate goes to the dead-letter topic with
  its reason (the original bytes, key and headers, as the ingest consumer sends);
- a valid record goes to the history topic keyed by the citizen's pseudonym,
  the CPR sealed under the citizen's key, the value encrypted with the store
  key (`schemas.history`);
- the batch's input offsets are committed in the same transaction
  (`send_offsets_to_transaction` with the consumer's group metadata, so a member
  that lost its partitions is fenced by the broker).

So each input record has exactly one effect on the topics: forwarded or
dead-lettered. A failed transaction is aborted and the batch read again from its
first offsets; a transient fault (broker away) is waited out with backoff. Event
ids are not checked here: duplicates and conflicts are the store writers' to find.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import ProducerFencedError
from kafka.structs import OffsetAndMetadata

from casehistory.consumers.ingest import check, letter_for, route
from casehistory.consumers.kafka_ingest import (
    ENVELOPE,
    FETCH_BYTES,
    dead_letter_record,
    run_batches,
    to_incoming,
)
from casehistory.consumers.partitioning import partition_of
from casehistory.consumers.retry import Backoff
from casehistory.schemas import history
from casehistory.schemas.contract import ContractEvent, Rejection
from casehistory.services.identity import IdentityVault

log = logging.getLogger(__name__)

LINGER_MS = 50
BATCH_BYTES = 256 * 1024
"""The router's producer gathers a partition's records for up to `LINGER_MS`, in
batches of up to `BATCH_BYTES` (kafka-python's defaults, 0 ms and 16 KiB, sent
nearly one request per record: its sender thread woke for each and took the
interpreter's lock from the router). Committing the transaction sends what is left
at once, so a batch is never held back by the wait."""


class RouterFenced(Exception):
    """Another producer took this router's transactional id: it must stop (not a retry)."""


@dataclass
class RouterCounters:
    """What one router process has done since it started."""

    consumed: int = 0
    forwarded: int = 0
    dead_lettered: int = 0
    batches: int = 0
    transactions_aborted: int = 0


class Router:
    """One member of the router group."""

    def __init__(
        self,
        vault: IdentityVault,
        bootstrap_servers: str,
        input_topic: str,
        history_topic: str,
        dlq_topic: str,
        group_id: str,
        *,
        max_poll_records: int = 2000,
        session_timeout_ms: int = 10_000,
        transaction_timeout_ms: int = 15_000,
        backoff: Backoff | None = None,
        cipher: history.Cipher | None = None,
    ) -> None:
        self.vault = vault
        self.cipher = cipher
        self.history_topic = history_topic
        self.dlq_topic = dlq_topic
        self.backoff = backoff or Backoff()
        self.counters = RouterCounters()
        member = uuid.uuid4().hex[:12]
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            client_id=f"casehistory-router-{member}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=max_poll_records,
            fetch_max_bytes=FETCH_BYTES,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(500, session_timeout_ms // 5),
            reconnect_backoff_max_ms=5000,
        )
        self.consumer.subscribe([input_topic])
        # One transactional id per member: the group metadata passed with the offsets
        # (KIP-447) is what fences a member that lost its partitions. A member that dies
        # mid-transaction holds back `read_committed` readers of its partitions until the
        # broker aborts that transaction: after `transaction_timeout_ms`.
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            transactional_id=f"casehistory-router-{group_id}-{member}",
            transaction_timeout_ms=transaction_timeout_ms,
            reconnect_backoff_max_ms=5000,
            linger_ms=LINGER_MS,
            batch_size=BATCH_BYTES,
        )
        self.producer.init_transactions()
        self._limit = int(self.producer.config["max_request_size"]) - ENVELOPE

    def poll_once(self, timeout_ms: int = 500, stop: threading.Event | None = None) -> int:
        """Route one poll's records in one transaction; returns how many were consumed."""
        polled = self.backoff.retry(
            lambda: self.consumer.poll(timeout_ms=timeout_ms), "polling", stop
        )
        records = [record for batch in polled.values() for record in batch]
        if not records:
            return 0
        incoming = [to_incoming(record) for record in records]
        checked = [check(item) for item in incoming]
        valid = {n: c for n, c in enumerate(checked) if isinstance(c, ContractEvent)}
        routed = {n: route(self.vault, incoming[n], event) for n, event in valid.items()}
        sealed = self.vault.seal_new(
            {routed[n].citizen_key: event.cpr for n, event in valid.items()}
        )
        offsets = {
            TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(batch[-1].offset + 1, "", -1)
            for tp, batch in polled.items()
            if batch
        }
        partitions = len(self.producer.partitions_for(self.history_topic))
        try:
            self.producer.begin_transaction()
            for n, item in enumerate(checked):
                if isinstance(item, Rejection):
                    key, value, headers = dead_letter_record(
                        letter_for(incoming[n], item), self._limit
                    )
                    self.producer.send(self.dlq_topic, key=key, value=value, headers=headers)
                else:
                    bound = routed[n]
                    key = bound.citizen_key.encode()
                    self.producer.send(
                        self.history_topic,
                        key=key,
                        value=history.encode(bound, sealed[bound.citizen_key], self.cipher),
                        partition=partition_of(key, partitions),
                    )
            self.producer.send_offsets_to_transaction(offsets, self.consumer.group_metadata())
            self.producer.commit_transaction()
        except ProducerFencedError as error:
            raise RouterFenced(f"the router's producer was fenced: {error}") from error
        except Exception:
            self._abort(polled)
            raise
        self.counters.batches += 1
        self.counters.consumed += len(records)
        self.counters.forwarded += len(valid)
        self.counters.dead_lettered += len(records) - len(valid)
        return len(records)

    def _abort(self, polled: dict[Any, list[Any]]) -> None:
        """Abort the transaction and read the batch again from its first offsets."""
        self.counters.transactions_aborted += 1
        try:
            self.producer.abort_transaction()
        except Exception as error:  # the producer may be fenced or the broker away
            log.warning("aborting the routing transaction failed: %s", type(error).__name__)
        for tp, batch in polled.items():
            if batch:
                self.consumer.seek(TopicPartition(tp.topic, tp.partition), batch[0].offset)

    def run(
        self,
        stop: threading.Event,
        idle_exit_seconds: float | None = None,
        on_batch: Callable[[RouterCounters], None] | None = None,
    ) -> RouterCounters:
        """Route until `stop` is set (or, if given, after that long without records).

        A batch whose transaction failed is waited out with backoff and read again;
        a fenced producer (`RouterFenced`) ends the run, as no retry can succeed.
        """
        run_batches(
            lambda: self.backoff.retry(lambda: self.poll_once(stop=stop), "routing a batch", stop),
            stop, idle_exit_seconds,
            None if on_batch is None else lambda: on_batch(self.counters),
        )  # fmt: skip
        return self.counters

    def close(self) -> None:
        self.consumer.close()
        self.producer.close()
