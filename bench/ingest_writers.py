"""Ingest throughput into one PostgreSQL database: 1, 2 and 4 writer processes, batches of 200
and 2000 records.

    .venv/bin/python bench/ingest_writers.py [--citizens 5000] [--rounds 3] [--no-durable]

Starts a throwaway server (`casehistory.devservices.postgres`), generates a population, splits
it by citizen into one file per writer (each writer owns its citizens, as a Kafka partition
would) and ingests the splits at once into a fresh database per configuration and round. Prints
the median events/s with ratios against the single writer measured in the same run. Commits
are durable (fsync and synchronous_commit on) unless --no-durable.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import tempfile
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

from casehistory.bootstrap import build
from casehistory.consumers import files
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.devservices.postgres import create_database, start, stop
from casehistory.entrypoints.cli.common import batched
from casehistory.population import generator
from casehistory.settings import Settings

WRITERS = (1, 2, 4)
BATCHES = (2000, 200)
PSEUDONYM_KEY = "ab" * 32
LOCK_WAITERS = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'relation'"
)


@dataclass(frozen=True)
class Run:
    batch: int
    writers: int
    events: int
    seconds: float
    lock_waiters: float
    """Sessions waiting for a lock, on average over the run."""

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def split_by_citizen(population: Path, parts: int, folder: Path) -> list[Path]:
    """One file per writer; every record of a CPR lands in the same file, in order."""
    paths = [folder / f"part-{parts}-{i}.jsonl" for i in range(parts)]
    outs = [path.open("wb") for path in paths]
    with population.open("rb") as source:
        for line in source:
            cpr = line.split(b'"cpr": "', 1)[-1][:10]
            outs[zlib.crc32(cpr) % parts].write(line)
    for out in outs:
        out.close()
    return paths


def _settings(dsn: str, data_dir: Path, create_tables: bool) -> Settings:
    return replace(
        Settings.load(
            {
                "CASEHISTORY_STORE": dsn,
                "CASEHISTORY_DATA_DIR": str(data_dir),
                "CASEHISTORY_PSEUDONYM_KEY": PSEUDONYM_KEY,
            }
        ),
        create_tables=create_tables,
    )


def _writer(settings: Settings, path: Path, batch: int, ready: Any, results: Any) -> None:
    engine = build(settings)
    service = engine.ingest_service(DeadLetterList())
    records = list(files.read_records(path))
    ready.wait()
    started = time.monotonic()
    for chunk in batched(records, batch):
        service.ingest(chunk)
    results.put((started, time.monotonic(), len(records)))
    engine.close()


def measure(dsn: str, data_dir: Path, paths: list[Path], batch: int) -> Run:
    """Ingest `paths` into the empty database `dsn`, one process per path, all at once.

    Meanwhile samples how many sessions wait for a lock (the events-table lock).
    """
    build(_settings(dsn, data_dir, create_tables=True)).close()  # as `casehistory db init`
    context = mp.get_context("spawn")
    ready = context.Barrier(len(paths))
    results = context.Queue()
    settings = _settings(dsn, data_dir, create_tables=False)
    processes = [
        context.Process(target=_writer, args=(settings, path, batch, ready, results))
        for path in paths
    ]
    for process in processes:
        process.start()
    finished: list[tuple[float, float, int]] = []
    samples: list[tuple[float, int]] = []
    with psycopg.connect(dsn, autocommit=True) as monitor:
        while len(finished) < len(processes):
            try:
                finished.append(results.get(timeout=0.05))
            except queue.Empty:
                row = monitor.execute(LOCK_WAITERS).fetchone()
                samples.append((time.monotonic(), row[0] if row else 0))
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise SystemExit(f"a writer failed with exit code {process.exitcode}")
    begin = min(b for b, _, _ in finished)
    end = max(e for _, e, _ in finished)
    during = [n for at, n in samples if begin <= at <= end] or [0]
    return Run(
        batch, len(paths), sum(n for _, _, n in finished), end - begin, sum(during) / len(during)
    )


def table(runs: list[Run], args: argparse.Namespace) -> Table:
    base = {r.batch: r for r in runs if r.writers == 1}
    reference = base[max(BATCHES)]
    out = Table(title=f"Ingest into one PostgreSQL database ({args.citizens:,} citizens)")
    for name in (
        "batch",
        "writers",
        "events/s",
        "× 1 writer, same batch",
        f"× 1 writer, batch {reference.batch}",
        "writers waiting for the lock",
    ):
        out.add_column(name, justify="right")
    for r in runs:
        out.add_row(
            f"{r.batch:,}",
            str(r.writers),
            f"{r.rate:,.0f}",
            f"{r.rate / base[r.batch].rate:.2f}",
            f"{r.rate / reference.rate:.2f}",
            f"{r.lock_waiters:.2f}",
        )
    out.caption = (
        f"{runs[0].events:,} events per run, median of {args.rounds} rounds, "
        f"{'durable' if args.durable else 'fsync off'}; "
        f"{os.cpu_count()} CPUs shared by all, load average {os.getloadavg()[0]:.1f}"
    )
    return out


def make_durable(dsn: str) -> None:
    """Commit as a production server does (the dev server turns fsync off for tests)."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            admin.execute(f"ALTER SYSTEM SET {setting} = on")
        admin.execute("SELECT pg_reload_conf()")


def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--citizens", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="median of this many rounds")
    parser.add_argument(
        "--no-durable", dest="durable", action="store_false", help="keep fsync off (dev server)"
    )
    args = parser.parse_args()
    console = Console()
    configurations = [(batch, writers) for batch in BATCHES for writers in WRITERS]
    measured: dict[tuple[int, int], list[Run]] = {c: [] for c in configurations}
    server = start()
    try:
        if args.durable:
            make_durable(server.dsn)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            population = folder / "population.jsonl"
            generator.write_jsonl(
                generator.generate_population(args.citizens, args.seed), population
            )
            splits = {n: split_by_citizen(population, n, folder) for n in WRITERS}
            for round_ in range(args.rounds):  # rounds interleave, so drift hits all alike
                for batch, writers in configurations:
                    dsn = create_database(server, f"bench_{round_}_{batch}_{writers}")
                    run = measure(dsn, folder, splits[writers], batch)
                    measured[batch, writers].append(run)
                    console.print(
                        f"round {round_ + 1}: batch {batch}, {writers} writer(s): "
                        f"{run.rate:,.0f} events/s"
                    )
            console.print(table([median_run(measured[c]) for c in configurations], args))
    finally:
        stop(server)


if __name__ == "__main__":
    main()
