"""The Kafka clients' and the broker's own share of the two-stage pipeline (issue #14).

    .venv/bin/python -m bench.kafka_floor [--citizens 10000] [--partitions 3] [--rounds 3]
                                         [--transaction 2000]

Starts a throwaway broker, publishes a generated population to an input topic and makes
the history topic's values for it in memory (`bench.store_writer.history_records`: the
router's own encoding, CPR sealed, store key), then measures, with no engine work:

1. raw: a bare consumer reads the input topic and decodes every record, nothing else
   (`bench.ingest.raw_consume`, the limit the pipeline is held against);
2. produce: one transactional producer with the router's settings sends the history
   values to a fresh history topic, as many to a transaction as the router polls;
3. fetch: a bare `read_committed` consumer reads that topic, without decoding.

The router has to do 1 and 2 and the store writer 3 for every event, and the broker serves
all three, whatever the engine does beside them. So their CPU per event, added up, is a
floor under the pipeline's, and `cores / floor` is the most events per second this machine
could route and store even if validating, routing, sealing, encoding, decoding and
appending cost nothing: printed against the raw rate.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from rich.console import Console
from rich.table import Table

from bench import ingest
from bench.common import process_cpu_seconds, settings_for
from bench.store_writer import history_records
from casehistory.consumers.kafka_ingest import STORE_FETCH
from casehistory.consumers.partitioning import partition_of
from casehistory.consumers.router import BATCH_BYTES, LINGER_MS
from casehistory.consumers.topics import ensure_topics
from casehistory.devservices import kafka as devkafka
from casehistory.population import generator


def produce(
    bootstrap: str, topic: str, values: list[tuple[bytes, bytes]], transaction: int
) -> None:
    """Send (key, value) pairs as the router does: its producer settings, keyed partitions,
    `transaction` records to a transaction (the router's poll)."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"bench-floor-{uuid.uuid4().hex[:8]}",
        linger_ms=LINGER_MS, batch_size=BATCH_BYTES,
    )  # fmt: skip
    producer.init_transactions()
    partitions = len(producer.partitions_for(topic))
    for first in range(0, len(values), transaction):
        producer.begin_transaction()
        for key, value in values[first : first + transaction]:
            producer.send(topic, key=key, value=value, partition=partition_of(key, partitions))
        producer.commit_transaction()
    producer.close()


def fetch(bootstrap: str, topic: str) -> int:
    """Read the whole topic `read_committed` with the store writer's fetch settings."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False,
        isolation_level="read_committed", **STORE_FETCH,
    )  # fmt: skip
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    ends = consumer.end_offsets(partitions)
    read = 0
    while any(consumer.position(p) < ends[p] for p in partitions):
        read += sum(len(batch) for batch in consumer.poll(timeout_ms=500).values())
    consumer.close()
    return read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--citizens", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--transaction", type=int, default=2_000,
                        help="records per produce transaction (the router's --max-poll-records)")
    args = parser.parse_args()
    console = Console()
    broker = devkafka.start(partitions=args.partitions)
    try:
        bootstrap = broker.bootstrap_servers
        run = uuid.uuid4().hex[:8]
        input_topic, history_topic = f"bench.floor.{run}", f"bench.floor.{run}.history"
        with console.status("publishing the population, encoding its history records"):
            records = list(generator.generate_population(args.citizens, 1))
            ingest.publish(bootstrap, input_topic, records, args.partitions)
            with tempfile.TemporaryDirectory() as tmp:
                values = history_records(settings_for(Path(tmp)), args.citizens)
        # Any key of the right form: the values' own keys are inside their encryption.
        keyed = [(uuid.uuid4().hex.encode(), value) for value in values]
        raw_rate = 0.0

        def raw(_: str) -> int:
            nonlocal raw_rate
            result = ingest.raw_consume(bootstrap, input_topic)
            raw_rate = max(raw_rate, result["rate"])
            return int(result["events"])

        def history(topic: str) -> int:
            produce(bootstrap, topic, keyed, args.transaction)
            return len(keyed)

        for n in range(args.rounds):  # a fresh history topic per round, made beforehand
            ensure_topics(bootstrap, f"{history_topic}.{n}", f"{history_topic}.{n}.dlq",
                          args.partitions)

        steps = {
            "raw consume + decode (input topic)": raw,
            "produce, transactional (history topic)": history,
            "fetch, read_committed (history topic)": lambda topic: fetch(bootstrap, topic),
        }
        table = Table("step", "client µs CPU/event", "broker µs CPU/event", "wall µs/event")
        floor = 0.0
        for name, step in steps.items():
            rounds = []
            for n in range(args.rounds):
                cpu, served = time.process_time(), process_cpu_seconds(broker.pid)
                wall = time.perf_counter()
                events = step(f"{history_topic}.{n}")
                rounds.append(tuple(v / events * 1e6 for v in (
                    time.process_time() - cpu,
                    process_cpu_seconds(broker.pid) - served,
                    time.perf_counter() - wall,
                )))  # fmt: skip
            # The round with the least CPU: the broker's JIT warms up over the first.
            client, served, wall = min(rounds, key=lambda r: r[0] + r[1])
            floor += client + served
            table.add_row(name, f"{client:.1f}", f"{served:.1f}", f"{wall:.1f}")
        console.print(table)
        cores = os.cpu_count() or 1
        ceiling = cores * 1e6 / floor
        console.print(
            f"raw consume + decode {raw_rate:,.0f} events/s. Floor under the pipeline's CPU: "
            f"{floor:.1f} µs per event, so {cores} cores route and store at most "
            f"{ceiling:,.0f} events/s = {ceiling / raw_rate:.2f}× raw with no engine work at "
            f"all; 0.5× raw leaves {cores * 1e6 / (0.5 * raw_rate) - floor:.1f} µs of CPU per "
            "event for it."
        )
    finally:
        devkafka.stop(broker)


if __name__ == "__main__":
    main()
