"""One store writer's CPU per event, without Kafka: `IngestService.store` on history records.

    .venv/bin/python -m bench.store_writer [--citizens 300] [--store postgres|sqlite]
                                           [--batch 2000] [--profile]

Generates a population, routes it as the router does (validate, pseudonym, sealed
CPR, `schemas.history.encode` under the store key) into history records in memory,
then stores them batch by batch into a fresh event store (a throwaway PostgreSQL
server, or SQLite in a temporary folder) through the store writer's own path
(`IngestService.store`, with a fence on the records' partitions). Prints the writer's
CPU (this process) and, on PostgreSQL, the server's CPU per event; with `--profile`,
the cumulative CPU of each step of the path per event (under cProfile, which inflates
small calls: compare steps within one run).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from casehistory.consumers.deadletter import DeadLetter
from casehistory.consumers.files import Incoming
from casehistory.consumers.ingest import check, route
from casehistory.population import generator
from casehistory.schemas import history
from casehistory.schemas.contract import ContractEvent

PARTITIONS = 4
TOPIC = "bench.history"
STEPS = (
    ("store (all of the writer's path)", "consumers/ingest.py", "store"),
    ("  history decode (decrypt, JSON, Fact)", "schemas/history.py", "decode"),
    ("  heads lookup", "casehistory/application.py", "heads"),
    ("  event index lookup", "casehistory/application.py", "known_events"),
    ("  keyed digests", "casehistory/application.py", "digest"),
    ("  outcomes and new records (IngestService._record)", "consumers/ingest.py", "_record"),
    ("    chain hash", "domain/citizen.py", "chain_hash_of"),
    ("    event objects (Head.append, before)", "domain/citizen.py", "append"),
    ("    stored records (stored_fact: transcode + encrypt)", "casehistory/application.py",
     "stored_fact"),
    ("  append (CaseHistory.append)", "casehistory/application.py", "append"),
    ("    heads and index of the events (before)", "casehistory/application.py", "_heads_of"),
    ("    mapper: transcode + encrypt (before: each event; after: registrations)",
     "eventsourcing/persistence.py",
     "to_stored_event"),
    ("    the recorder's transaction (PostgreSQL)", "eventsourcing/postgres.py", "insert_events"),
    ("    the recorder's transaction (SQLite)", "eventsourcing/sqlite.py", "insert_events"),
    ("      chain anchors", "services/anchors.py", "_anchor"),
    ("      ledger, heads, index (SQLite: and events)", "casehistory/recorders.py",
     "_insert_events"),
)


class Letters:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    def put(self, letters: list[DeadLetter]) -> None:
        self.letters.extend(letters)


def history_records(settings: Any, citizens: int) -> list[bytes]:
    """The history topic's values for a generated population, in arrival order."""
    from casehistory.bootstrap import build

    engine = build(settings)
    try:
        values: list[bytes] = []
        for n, payload in enumerate(generator.generate_population(citizens, 1)):
            incoming = Incoming(payload, b"", {"topic": "bench.input", "partition": 0,
                                               "offset": n})
            event = check(incoming)
            if not isinstance(event, ContractEvent):
                continue
            bound = route(engine.vault, incoming, event)
            sealed = engine.vault.seal_new({bound.citizen_key: event.cpr})
            values.append(history.encode(bound, sealed[bound.citizen_key],
                                         engine.app.mapper.cipher))
        return values
    finally:
        engine.close()


def server_cpu(postmaster: int | None) -> float:
    """Seconds of CPU the PostgreSQL server's processes used so far (live ones)."""
    if postmaster is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(pid) == postmaster or int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--citizens", type=int, default=300)
    parser.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    console = Console()
    from casehistory.bootstrap import build
    from casehistory.devservices.postgres import create_database, start, stop
    from casehistory.settings import Settings

    server = start() if args.store == "postgres" else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                "CASEHISTORY_DATA_DIR": tmp,
                "CASEHISTORY_STORE": "sqlite",
                "CASEHISTORY_PSEUDONYM_KEY": "5eed" * 16,
                "CASEHISTORY_STORE_KEY": "7a" * 32,
                "CASEHISTORY_KEY_STORE": str(Path(tmp) / "keys.db"),
            }
            values = history_records(Settings.load(env), args.citizens)
            console.print(f"{len(values):,} history records of {args.citizens:,} citizens")
            if server is not None:
                env["CASEHISTORY_STORE"] = create_database(server, "writer")
            else:
                env["CASEHISTORY_DATA_DIR"] = str(Path(tmp) / "store")
                env["CASEHISTORY_KEY_STORE"] = str(Path(tmp) / "keys.db")
            engine = build(Settings.load(env))
            service = engine.ingest_service(Letters())
            service.take_over([f"{TOPIC}:{p}" for p in range(PARTITIONS)])
            batches = [
                [Incoming(None, value, {"topic": TOPIC, "partition": n % PARTITIONS,
                                        "offset": n // PARTITIONS})
                 for n, value in enumerate(values[first:first + args.batch], first)]
                for first in range(0, len(values), args.batch)
            ]
            profile = cProfile.Profile(time.process_time) if args.profile else None
            pid = server.pid if server is not None else None
            server_before, cpu_before, wall_before = server_cpu(pid), time.process_time(), \
                time.perf_counter()
            if profile is not None:
                profile.enable()
            stored = 0
            for batch in batches:
                stored += service.store(batch).stored
            if profile is not None:
                profile.disable()
            cpu = time.process_time() - cpu_before
            wall = time.perf_counter() - wall_before
            server_used = server_cpu(pid) - server_before
            engine.close()
            events = len(values)
            console.print(
                f"{args.store}: {events:,} records ({stored:,} stored) in {wall:.2f} s wall: "
                f"writer {cpu / events * 1e6:,.0f} us CPU/event, server "
                f"{server_used / events * 1e6:,.0f} us CPU/event, {events / wall:,.0f} records/s"
                f" (load average {os.getloadavg()[0]:.1f})"
            )
            if profile is not None:
                console.print(steps(profile, events))
                if dump := os.environ.get("STORE_WRITER_PROFILE"):
                    profile.dump_stats(dump)
    finally:
        if server is not None:
            stop(server)


def steps(profile: cProfile.Profile, events: int) -> Table:
    stats: Any = pstats.Stats(profile).stats
    total = sum(tt for _, _, tt, _, _ in stats.values())
    out = Table(title="store writer CPU per event under cProfile "
                      f"(total {total / events * 1e6:,.0f} us)")
    out.add_column("step")
    out.add_column("us/event", justify="right")
    for name, filename, function in STEPS:
        cumulative = sum(ct for (file, _, func), (_, _, _, ct, _) in stats.items()
                         if file.endswith(filename) and func == function)
        if cumulative:  # a step of this version of the path
            out.add_row(name, f"{cumulative / events * 1e6:,.0f}")
    top = sorted(stats.items(), key=lambda item: -item[1][2])[:15]
    for (file, line, func), (_, _, tt, _, _) in top:
        out.add_row(f"[dim]self: {Path(file).name}:{line} {func}[/dim]",
                    f"{tt / events * 1e6:,.0f}")
    return out


if __name__ == "__main__":
    main()
