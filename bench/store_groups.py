"""Store writers on the history topic: N partition groups (N event stores) against one, and
against the raw consume + decode limit of the same topic, in one run (issue #14).

    .venv/bin/python bench/store_groups.py [--citizens 1500] [--partitions 4] [--rounds 2]

Starts a throwaway PostgreSQL server and Kafka broker, publishes a generated population
to an input topic and routes it (`casehistory route`) into a history topic once. Then, per
round and configuration, into a fresh database:

- raw: one bare consumer reads the history topic and decodes every record
  (`schemas.history.decode`, the store writers' decode), nothing else;
- `groups=G, writers=W`: W `casehistory consume --from-history` processes, with G
  store groups (G > 1: one writer per group, `--store-group g`; G = 1 and W = 2: two
  members of one group sharing one store and its lock).

A writer is timed from its store's first ledger row to the last (process start-up and
group joining excluded, alike for all); meanwhile a sampler counts, every 20 ms or so,
the lock requests waiting on the server. Prints the median events/s per configuration,
its ratio to one group with one writer and to the raw limit, and the lock waits seen.

The machine's busy cores over the same interval (`/proc/stat`: writers, server, broker
and this sampler together) give the cores-bound cap of N writers: with C cores and one
writer keeping c of them busy, no configuration can store more than C / c times as much
at the same CPU per record. The scaling target ("N× within 10% up to the cores
available") is read against that cap.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from kafka import KafkaConsumer, TopicPartition
from rich.console import Console
from rich.table import Table

from casehistory.consumers.kafka_ingest import STORE_FETCH
from casehistory.devservices import kafka as devkafka
from casehistory.devservices.postgres import create_database, start, stop
from casehistory.population import generator
from casehistory.schemas import history

PSEUDONYM_KEY = "5eed" * 16
STORE_KEY = "7a" * 32
CONFIGURATIONS = ((1, 1), (1, 2), (2, 2))
"""(store groups, writers)."""
WAITING = (
    "SELECT string_agg(concat_ws(' ', locktype, mode, relation::regclass, objid), '; ') "
    "FROM pg_locks WHERE NOT granted"
)


@dataclass(frozen=True)
class Run:
    groups: int
    writers: int
    events: int
    seconds: float
    lock_waits: int
    """Samples, while the store was being written, that saw a lock request waiting."""
    samples: int
    waits_seen: frozenset[str]
    """What was waited for."""
    cores_busy: float
    """The machine's busy cores while the store was being written (all processes)."""

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def engine_env(folder: Path, topic: str, bootstrap: str, store: str, groups: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEHISTORY_")}
    env.update(
        CASEHISTORY_DATA_DIR=str(folder),
        CASEHISTORY_STORE=store,
        CASEHISTORY_PSEUDONYM_KEY=PSEUDONYM_KEY,
        CASEHISTORY_STORE_KEY=STORE_KEY,
        CASEHISTORY_KEY_STORE=str(folder / "keys.db"),
        CASEHISTORY_KAFKA_BOOTSTRAP=bootstrap,
        CASEHISTORY_KAFKA_TOPIC=topic,
        CASEHISTORY_KAFKA_DLQ_TOPIC=topic + ".dlq",
        CASEHISTORY_KAFKA_HISTORY_TOPIC=topic + ".history",
        CASEHISTORY_KAFKA_ROUTER_GROUP=topic + ".router",
        CASEHISTORY_KAFKA_STORE_GROUP=f"{topic}.store.{uuid.uuid4().hex[:6]}",
        CASEHISTORY_STORE_GROUPS=str(groups),
        CASEHISTORY_USER="bench",
        CASEHISTORY_ROLE="operator",
    )
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "casehistory.entrypoints.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def raw_limit(bootstrap: str, topic: str, cipher: Any) -> tuple[int, float]:
    """Records of the history topic and seconds to consume and decode them all."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             isolation_level="read_committed", **STORE_FETCH)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        decoded = 0
        started = time.perf_counter()
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    history.decode(record.value, cipher)
                    decoded += 1
        return decoded, time.perf_counter() - started
    finally:
        consumer.close()


def ledger_rows(dsn: str, schemas: list[str]) -> int:
    total = 0
    with psycopg.connect(dsn) as connection:
        for schema in schemas:
            row = connection.execute(f'SELECT count(*) FROM "{schema}".ingest_ledger').fetchone()
            total += int(row[0]) if row else 0
    return total


def busy_ticks() -> tuple[int, int]:
    """The machine's busy and total CPU ticks since boot (`/proc/stat`, all CPUs)."""
    with open("/proc/stat") as stat:
        ticks = [int(field) for field in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return sum(ticks) - idle, sum(ticks)


def measure(env: dict[str, str], dsn: str, groups: int, writers: int, total: int) -> Run:
    """Store the whole history topic with these writers; time first to last ledger row."""
    from casehistory.bootstrap import build
    from casehistory.settings import Settings

    build(Settings.load(env)).close()  # every group's tables, as `db init` would
    schemas = ["public"] if groups == 1 else [f"casehistory_g{g}" for g in range(groups)]
    args = ("consume", "--from-history", "--idle-exit", "4")
    processes = [
        cli(env, *args, *(("--store-group", str(n)) if groups > 1 else ()))
        for n in range(writers)
    ]
    samples = waits = 0
    first = last = None
    ticks_first = ticks_last = (0, 0)
    seen: set[str] = set()
    with psycopg.connect(dsn, autocommit=True) as monitor:
        while True:
            row = monitor.execute(WAITING).fetchone()
            stored = ledger_rows(dsn, schemas)
            now = time.perf_counter()
            if stored and first is None:
                first, ticks_first = now, busy_ticks()
            if first is not None:  # the writers are writing
                samples += 1
                if row and row[0]:
                    waits += 1
                    seen.add(str(row[0]))
            if stored >= total:
                last, ticks_last = now, busy_ticks()
                break
            if all(p.poll() is not None for p in processes):
                raise SystemExit("the writers stopped before storing everything: "
                                 + processes[0].communicate()[0].decode()[-2000:])
            time.sleep(0.02)
    for process in processes:
        out, _ = process.communicate(timeout=120)
        if process.returncode != 0:
            raise SystemExit(out.decode()[-2000:])
    assert first is not None and last is not None
    busy, ticks = (b - a for a, b in zip(ticks_first, ticks_last, strict=True))
    cores = (os.cpu_count() or 1) * busy / ticks if ticks else 0.0
    return Run(groups, writers, total, last - first, waits, samples, frozenset(seen), cores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--citizens", type=int, default=1_500)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    console = Console()
    server = start()
    broker = devkafka.start(partitions=args.partitions)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            topic = f"bench-{uuid.uuid4().hex[:8]}"
            population = folder / "population.jsonl"
            generator.write_jsonl(generator.generate_population(args.citizens, 1), population)
            base = engine_env(folder, topic, broker.bootstrap_servers, "sqlite", 1)
            partitions = str(args.partitions)
            for step in (("publish", "--partitions", partitions, str(population)),
                         ("route", "--partitions", partitions, "--idle-exit", "6")):
                process = cli(base, *step)
                out, _ = process.communicate()
                if process.returncode not in (0, 1):  # publish: 1 when records were rejected
                    raise SystemExit(f"{step[0]} failed: {out.decode()[-2000:]}")
            from casehistory.bootstrap import build
            from casehistory.settings import Settings

            engine = build(Settings.load(base))  # the store key's cipher, as the writers have it
            cipher = engine.app.mapper.cipher
            engine.close()
            raws: list[float] = []
            measured: dict[tuple[int, int], list[Run]] = {c: [] for c in CONFIGURATIONS}
            for round_ in range(args.rounds):
                records, seconds = raw_limit(broker.bootstrap_servers, topic + ".history", cipher)
                raws.append(records / seconds)
                console.print(f"round {round_ + 1}: raw consume + decode {raws[-1]:,.0f} records/s")
                for groups, writers in CONFIGURATIONS:
                    dsn = create_database(server, f"bench_{round_}_{groups}_{writers}")
                    env = engine_env(folder, topic, broker.bootstrap_servers, dsn, groups)
                    run = measure(env, dsn, groups, writers, records)
                    measured[groups, writers].append(run)
                    console.print(f"round {round_ + 1}: {groups} group(s), {writers} writer(s): "
                                  f"{run.rate:,.0f} records/s, {run.cores_busy:.2f} cores busy, "
                                  f"lock waits in {run.lock_waits} "
                                  f"of {run.samples} samples {sorted(run.waits_seen)[:3]}")
            console.print(table(measured, raws, records, args))
    finally:
        devkafka.stop(broker)
        stop(server)


def table(measured: dict[tuple[int, int], list[Run]], raws: list[float], records: int,
          args: Any) -> Table:
    runs = {c: sorted(rs, key=lambda r: r.rate)[len(rs) // 2] for c, rs in measured.items()}
    raw = sorted(raws)[len(raws) // 2]
    base = runs[1, 1].rate
    cap = (os.cpu_count() or 1) / runs[1, 1].cores_busy
    out = Table(title=f"Store writers on the history topic ({records:,} records, "
                      f"{args.partitions} partitions)")
    for name in ("store groups", "writers", "records/s", "× 1 group, 1 writer",
                 "÷ cores-bound cap", "× raw limit", "cores busy", "samples with a lock wait"):
        out.add_column(name, justify="right")
    out.add_row("raw consume + decode", "1", f"{raw:,.0f}", f"{raw / base:.2f}", "", "1.00", "",
                "")
    for (groups, writers), run in runs.items():
        out.add_row(str(groups), str(writers), f"{run.rate:,.0f}", f"{run.rate / base:.2f}",
                    f"{run.rate / base / min(writers, cap):.2f}", f"{run.rate / raw:.2f}",
                    f"{run.cores_busy:.2f}", f"{run.lock_waits} of {run.samples}")
    out.caption = (f"median of {args.rounds} rounds; {os.cpu_count()} CPUs shared with other "
                   f"work, load average {os.getloadavg()[0]:.1f}; fsync off (dev server); "
                   f"cores-bound cap of N writers: min(N, {cap:.2f})")
    return out


if __name__ == "__main__":
    main()
