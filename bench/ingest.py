"""Measure 1, ingest: Kafka -> event store + live read models, against bare consume+decode.

The raw limit is measured on the same topic in the same run: a bare kafka-python
consumer (partitions assigned, from offset 0, same fetch settings as the ingest
consumer) that decodes every record with `schemas.wire.decode` and does nothing else.
The engine run is one `KafkaIngestConsumer` (validate, dead-letter, append, commit
offsets) in this process, with a projection worker (`bench.follow`, every read
model) in its own process, as deployed; it is timed until the worker has applied
every stored event.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bench.common import PYTHON, REPO, env_for, settings_for
from casehistory.schemas import wire

FETCH = {"max_poll_records": 2000, "fetch_max_bytes": 32 * 1024 * 1024}


def publish(bootstrap: str, topic: str, records: list[dict[str, Any]], partitions: int) -> int:
    """Create the topic and publish the valid records with the engine's validating publisher."""
    from casehistory.consumers.publisher import Publisher
    from casehistory.consumers.topics import ensure_topics

    ensure_topics(bootstrap, topic, topic + ".dlq", partitions)
    with Publisher(bootstrap, topic, bytes.fromhex("5eed" * 16)) as publisher:
        report = publisher.publish(records)
    if report.failed:
        raise RuntimeError(f"{len(report.failed)} records not acknowledged: {report.failed[:3]}")
    return report.sent


def raw_consume(bootstrap: str, topic: str) -> dict[str, float]:
    """Bare consume + fastavro decode of the whole topic, nothing else."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **FETCH)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        total = sum(ends.values())
        decoded = 0
        started = time.perf_counter()
        while decoded < total:
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    wire.decode(record.value)
                    decoded += 1
        seconds = time.perf_counter() - started
    finally:
        consumer.close()
    return {"events": decoded, "seconds": seconds, "rate": decoded / seconds}


def engine_consume(
    bootstrap: str, topic: str, data_dir: Path, project: bool = True
) -> dict[str, float]:
    """KafkaIngestConsumer into a fresh SQLite store, with a live projection worker beside
    it (`project`), or alone: on 2 cores the worker and the broker take CPU the consumer
    would otherwise have, and the run alone tells that apart from the consumer's own cost."""
    from casehistory.bootstrap import build
    from casehistory.consumers.kafka_ingest import KafkaDeadLetters, KafkaIngestConsumer

    shutil.rmtree(data_dir, ignore_errors=True)
    engine = build(settings_for(data_dir))
    done = data_dir / "ingest.done"
    worker = subprocess.Popen(
        [str(PYTHON), "-m", "bench.follow", str(done)],
        cwd=REPO, env=env_for(data_dir), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    ) if project else None  # fmt: skip
    probe = KafkaConsumer(bootstrap_servers=bootstrap)
    partitions = [TopicPartition(topic, p) for p in probe.partitions_for_topic(topic)]
    total = sum(probe.end_offsets(partitions).values())
    probe.close()
    dlq = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = KafkaIngestConsumer(
        engine.ingest_service(KafkaDeadLetters(dlq, topic + ".dlq")),
        bootstrap, topic, f"bench-{uuid.uuid4().hex[:8]}",
        max_poll_records=FETCH["max_poll_records"],
    )  # fmt: skip
    try:
        started_wall = time.time()
        started, cpu = time.perf_counter(), time.process_time()
        stop = threading.Event()
        while consumer.counters.consumed < total and not stop.is_set():
            consumer.poll_once()
        ingest_seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu
        if worker is not None:
            done.touch()
            out, _ = worker.communicate(timeout=3600)
            finished = json.loads(out.strip().splitlines()[-1])
            live_seconds = finished["finished"] - started_wall
    finally:
        consumer.close()
        dlq.close()
        if worker is not None and worker.poll() is None:
            worker.kill()
        engine.close()
    counters = consumer.counters
    ingested = {
        "events": counters.consumed,
        "stored": counters.stored,
        "duplicate": counters.duplicate,
        "dead_lettered": counters.dead_lettered,
        "ingest_seconds": ingest_seconds,
        "ingest_rate": counters.consumed / ingest_seconds,
        "cpu_us_per_event": cpu_seconds / counters.consumed * 1e6,
    }
    if worker is None:
        return ingested
    return {
        **ingested,
        "live_seconds": live_seconds,
        "live_rate": counters.consumed / live_seconds,
        "notifications_applied": finished["applied"],
        "read_models": finished["models"],
    }
