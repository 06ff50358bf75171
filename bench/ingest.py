"""Measure 1, ingest: Kafka -> event store + live read models, against bare consume+decode.

The raw limit is measured on the same topic in the same run: a bare kafka-python
consumer (partitions assigned, from offset 0, same fetch settings as the ingest
consumer) that decodes every record with `schemas.wire.decode` and does nothing else.
The engine run is one `KafkaIngestConsumer` (validate, dead-letter, append, commit
offsets) in this process, with a projection worker (`bench.follow`, every read
model) in its own process, as deployed; it is timed until the worker has applied
every stored event. The routed run is the two-stage pipeline of issue #14: a
`casehistory route` process and a `casehistory consume --from-history` process side
by side, through a history topic of its own.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bench.common import (
    PYTHON,
    REPO,
    env_for,
    machine_cpu_seconds,
    process_cpu_seconds,
    settings_for,
)
from casehistory.consumers.kafka_ingest import STORE_FETCH
from casehistory.schemas import wire


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
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **STORE_FETCH)
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
    )
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


def routed_consume(
    bootstrap: str, topic: str, data_dir: Path, broker_pid: int | None = None
) -> dict[str, float]:
    """The two stages as deployed on the embedded store: one router and one store writer,
    each its own process, on a fresh history topic (as many partitions as the input).

    Timed from the store's first ledger row to its last (both processes started and in
    their groups by then, as `bench.store_groups` times its writers), and their CPU
    over the same interval; with `broker_pid` (a broker on this machine) the broker's
    too, and the machine's busy share of its cores, which say whether the cores, not
    a wait, bound the rate (`ceiling`).
    """
    from casehistory.bootstrap import build

    shutil.rmtree(data_dir, ignore_errors=True)
    build(settings_for(data_dir)).close()  # the keys and the store, before both start
    run = uuid.uuid4().hex[:8]
    probe = KafkaConsumer(bootstrap_servers=bootstrap)
    partitions = probe.partitions_for_topic(topic)
    total = sum(probe.end_offsets([TopicPartition(topic, p) for p in partitions]).values())
    probe.close()
    env = env_for(
        data_dir,
        CASEHISTORY_KAFKA_BOOTSTRAP=bootstrap, CASEHISTORY_KAFKA_TOPIC=topic,
        CASEHISTORY_KAFKA_DLQ_TOPIC=topic + ".dlq",
        CASEHISTORY_KAFKA_HISTORY_TOPIC=f"{topic}.history.{run}",
        CASEHISTORY_KAFKA_ROUTER_GROUP=f"bench-router-{run}",
        CASEHISTORY_KAFKA_STORE_GROUP=f"bench-store-{run}",
    )  # fmt: skip
    stages = [
        ["route", "--partitions", str(len(partitions)), "--idle-exit", "3"],
        ["consume", "--from-history", "--partitions", str(len(partitions)), "--idle-exit", "3"],
    ]
    log = (data_dir / "stages.log").open("wb")
    processes = [
        subprocess.Popen([str(PYTHON), "-m", "casehistory.entrypoints.cli", *stage], cwd=REPO,
                         env=env, stdout=log, stderr=subprocess.STDOUT)
        for stage in stages
    ]  # fmt: skip
    pids = [p.pid for p in processes] + ([broker_pid] if broker_pid is not None else [])
    store = sqlite3.connect(data_dir / "events.db", timeout=60)
    try:
        first, stored, cpu_last = None, 0, [0.0] * len(pids)
        while stored < total:
            if any(p.poll() not in (None, 0) for p in processes):
                raise RuntimeError(f"a stage failed: see {data_dir / 'stages.log'}")
            time.sleep(0.05)
            stored = store.execute("SELECT count(*) FROM ingest_ledger").fetchone()[0]
            # Read every round: the router may finish (and exit) well before the store.
            cpu_last = [
                last if math.isnan(now) else now
                for now, last in zip(map(process_cpu_seconds, pids), cpu_last, strict=True)
            ]  # fmt: skip
            if stored and first is None:
                first, cpu_first, busy_first = time.perf_counter(), cpu_last, machine_cpu_seconds()
        last, busy_last = time.perf_counter(), machine_cpu_seconds()
        for process in processes:
            process.wait(timeout=60)
    finally:
        store.close()
        log.close()
        for process in processes:
            if process.returncode is None:
                process.kill()
                process.wait()
    assert first is not None
    seconds = last - first
    used = [(b - a) / total * 1e6 for a, b in zip(cpu_first, cpu_last, strict=True)]
    cores = os.cpu_count() or 1
    return {"events": total, "seconds": seconds, "rate": total / seconds,
            "router_cpu_us_per_event": used[0], "store_cpu_us_per_event": used[1],
            "broker_cpu_us_per_event": used[2] if broker_pid is not None else math.nan,
            "machine_busy": (busy_last - busy_first) / seconds / cores, "cores": cores}
