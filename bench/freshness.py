"""Measure 4, freshness: publish-to-visible latency of single events under sustained load.

Deployed as in production: `casehistory consume` (one ingest consumer-group member)
and `casehistory project --follow` (the durations worker) in their own processes
on a fresh SQLite store. A background thread publishes the population's events at
a fixed rate; meanwhile probe events, each the first benefit start of a citizen
the store has never seen, are published one at a time (own producer, linger 0),
and the clock runs from `send` until the citizen's row is in the durations view
(polled with a bare SQLite reader). The raw limit is the same probes' publish-to-
consume latency seen by a bare kafka-python consumer on the same topic.

Only probes that became visible while the background load was still being published
count: once the publisher runs out of events the probes stop, so a slow projection
cannot be hidden by later probes on an idle system.

With `warm` events (`bench/run --freshness-warm N`: the population's first N contract
events), those are published first, as fast as they go, and stored and projected before
the timed load starts: the load then meets citizens with the histories of a real topic (a
live event's cost grows with its citizen's history), not a store that starts empty.
`--live-citizens N` sets how many citizens the projection worker holds between catch-ups
(`CASEHISTORY_LIVE_CITIZENS`; its default otherwise).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bench.common import CASEHISTORY, PSEUDONYM_KEY, REPO, env_for, percentile, process_cpu_seconds
from casehistory.bootstrap import READ_MODEL
from casehistory.consumers.publisher import Publisher
from casehistory.domain.cpr import citizen_key
from casehistory.projections.store import TRACKING_TABLE
from casehistory.schemas import wire
from casehistory.schemas.contract import ContractEvent, validate
from casehistory.settings import Settings


def _visible(db: Path, key: str) -> bool:
    """Whether the citizen's row is in the durations view."""
    return _found(db, "SELECT 1 FROM durations_citizen WHERE citizen_key = ?", key)


def _stored(db: Path, key: str) -> bool:
    """Whether the event store holds an event of the citizen (its aggregate id is its key)."""
    return _found(db, "SELECT 1 FROM stored_events WHERE originator_id = ? LIMIT 1", key)


def _wait(found: Callable[[Path, str], bool], db: Path, key: str, started: float,
          what: str) -> float:
    """Poll `found` until it holds; returns the seconds since `started`."""
    while not found(db, key):
        time.sleep(0.002)
        if time.perf_counter() - started > 30:
            raise RuntimeError(f"probe not {what} within 30 s")
    return time.perf_counter() - started


_readers: dict[Path, sqlite3.Connection] = {}
"""One read-only connection per database, kept while probes poll (a connection opened
every 2 ms cost the load generator's process CPU the workers need)."""


def _found(db: Path, query: str, key: str) -> bool:
    try:
        if db not in _readers:
            _readers[db] = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        return _readers[db].execute(query, (key,)).fetchone() is not None
    except sqlite3.OperationalError:
        if (reader := _readers.pop(db, None)) is not None:
            reader.close()
        return False  # the database or its table does not exist yet


def measure(
    bootstrap: str,
    data_dir: Path,
    background: list[ContractEvent],
    probes: list[ContractEvent],
    rate: float,
    topic: str,
    warm: list[ContractEvent] | None = None,
    live_citizens: int | None = None,
) -> dict[str, Any]:
    from casehistory.consumers.topics import ensure_topics

    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    ensure_topics(bootstrap, topic, topic + ".dlq", 3)
    env = env_for(
        data_dir,
        CASEHISTORY_KAFKA_BOOTSTRAP=bootstrap,
        CASEHISTORY_KAFKA_TOPIC=topic,
        CASEHISTORY_KAFKA_DLQ_TOPIC=topic + ".dlq",
        CASEHISTORY_KAFKA_GROUP=topic + ".ingest",
        **({"CASEHISTORY_LIVE_CITIZENS": str(live_citizens)} if live_citizens else {}),
    )
    log = (data_dir / "workers.log").open("w")
    workers = [
        subprocess.Popen([str(CASEHISTORY), *args], cwd=REPO, env=env, stdout=log, stderr=log)
        for args in WORKERS.values()
    ]
    warm_s = _warm_up(bootstrap, topic, data_dir, warm) if warm else 0.0
    stop = threading.Event()
    load_done = threading.Event()
    key = bytes.fromhex(PSEUDONYM_KEY)
    sent_background = [0]

    publisher = Publisher(bootstrap, topic, key)
    # Keyed and encoded before the clock runs, so the load costs its process only the sends
    # (encoding in the loop took the workers a third of a core of 2).
    records = [publisher.encode(event) for event in background]

    def load() -> None:
        with publisher:
            started = time.perf_counter()
            for n, record in enumerate(records):
                if stop.is_set():
                    break
                delay = started + n / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                publisher.send_encoded(*record)
                sent_background[0] += 1
            publisher.producer.flush()
        load_done.set()

    # The bare consumer: when does Kafka itself deliver each probe?
    delivered: dict[bytes, float] = {}

    def bare() -> None:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_end(*partitions)
        while not stop.is_set():
            for batch in consumer.poll(timeout_ms=100).values():
                now = time.perf_counter()
                for record in batch:
                    if record.headers and record.headers[0][0] == "bench-probe":
                        delivered[record.headers[0][1]] = now
        consumer.close()

    threads = [
        threading.Thread(target=load, daemon=True),
        threading.Thread(target=bare, daemon=True),
    ]
    for thread in threads:
        thread.start()
    db, events_db = data_dir / f"{READ_MODEL}.db", data_dir / "events.db"
    cpu_before = {
        name: process_cpu_seconds(worker.pid)
        for name, worker in zip(WORKERS, workers, strict=True)
    }
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    latencies, raw_latencies, stored_latencies = [], [], []
    try:
        time.sleep(5)  # warm-up: workers joined, background load flowing
        for n, event in enumerate(probes):
            probe_key = citizen_key(event.cpr, key)
            if _visible(db, probe_key):
                continue  # the background population already holds this citizen
            tag = str(n).encode()
            started = time.perf_counter()
            producer.send(
                topic, key=probe_key.encode(), value=wire.encode(event.avro_datum()),
                headers=[("bench-probe", tag)],
            )  # fmt: skip
            producer.flush()
            stored = _wait(_stored, events_db, probe_key, started, "stored")
            _wait(_visible, db, probe_key, started, "visible")
            if load_done.is_set():
                break  # the load ended while this probe waited: it and later ones do not count
            latencies.append(time.perf_counter() - started)
            stored_latencies.append(stored)
            if tag in delivered:
                raw_latencies.append(delivered[tag] - started)
            time.sleep(0.2)
        elapsed_background = sent_background[0]
    finally:
        cpu = {
            name: process_cpu_seconds(worker.pid) - cpu_before[name]
            for name, worker in zip(WORKERS, workers, strict=True)
        }
        peak_rss = {
            name: _peak_rss_mb(worker.pid) for name, worker in zip(WORKERS, workers, strict=True)
        }
        stop.set()
        producer.close()
        for thread in threads:
            thread.join(timeout=30)
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        log.close()
        for reader in _readers.values():
            reader.close()
        _readers.clear()
    if not latencies:
        raise RuntimeError("the background load ended before any probe became visible")
    return {
        "probes": len(latencies),
        "rate": rate,
        "warm_events": len(warm or ()),
        "warm_s": warm_s,
        "live_citizens": live_citizens or Settings.load({}).live_citizens,
        "background_sent": elapsed_background,
        "p50_s": percentile(latencies, 50),
        "p99_s": percentile(latencies, 99),
        "max_s": max(latencies),
        "stored_p50_s": percentile(stored_latencies, 50),
        "stored_p99_s": percentile(stored_latencies, 99),
        "raw_probes": len(raw_latencies),
        "raw_p50_s": percentile(raw_latencies, 50),
        "raw_p99_s": percentile(raw_latencies, 99),
        # CPU of each worker process from the timed load's start (after any warm-up), per
        # background event published
        **{f"{name}_cpu_us_per_event": seconds / max(1, sent_background[0]) * 1e6
           for name, seconds in cpu.items()},
        **{f"{name}_peak_rss_mb": mb for name, mb in peak_rss.items()},
    }


WORKERS = {"consume": ["consume"], "project": ["project", "--follow"]}


def _warm_up(bootstrap: str, topic: str, data_dir: Path, warm: list[ContractEvent]) -> float:
    """Publish `warm` and wait until the ingest group has consumed the topic to its end and
    the projection has applied every stored event; returns the seconds it took."""
    started = time.perf_counter()
    with Publisher(bootstrap, topic, bytes.fromhex(PSEUDONYM_KEY)) as publisher:
        for event in warm:
            publisher.send(event)
        publisher.producer.flush()
    probe = KafkaConsumer(  # reads the ingest group's committed offsets; joins no group
        bootstrap_servers=bootstrap, group_id=topic + ".ingest", enable_auto_commit=False
    )
    try:
        partitions = [TopicPartition(topic, p) for p in probe.partitions_for_topic(topic)]
        ends = probe.end_offsets(partitions)
        while True:
            consumed = all((probe.committed(tp) or 0) >= end for tp, end in ends.items())
            if consumed and _applied(data_dir):
                return time.perf_counter() - started
            if time.perf_counter() - started > 1800:
                raise RuntimeError("the warm-up was not stored and projected within 30 min")
            time.sleep(0.5)
    finally:
        probe.close()


def _applied(data_dir: Path) -> bool:
    """Whether the projection's position is the event store's head."""
    try:
        with (
            sqlite3.connect(f"file:{data_dir / 'events.db'}?mode=ro", uri=True) as events,
            sqlite3.connect(f"file:{data_dir / READ_MODEL}.db?mode=ro", uri=True) as model,
        ):
            head = events.execute("SELECT max(rowid) FROM stored_events").fetchone()[0]
            position = model.execute(
                f"SELECT sum(notification_id) FROM {TRACKING_TABLE}"
            ).fetchone()[0]
    except sqlite3.OperationalError:
        return False  # a store or its tables do not exist yet
    return head is not None and position == head


def _peak_rss_mb(pid: int) -> float:
    """A running process's peak resident memory (VmHWM in /proc/PID/status; NaN once gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    return next(int(line.split()[1]) / 1024 for line in status.splitlines()
                if line.startswith("VmHWM:"))  # fmt: skip


def contract_events(records: list[dict[str, Any]]) -> list[ContractEvent]:
    return [e for e in map(validate, records) if isinstance(e, ContractEvent)]
