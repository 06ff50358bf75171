"""Read side at scale: one-pass rebuild and any-date reports against a DuckDB batch.

    .venv/bin/python -m bench.scale SIZE [SIZE ...] [--work DIR] [--repeats 3] [--label L]
                                    [--store postgresql://...]

`--work DIR` keeps the generated population and its ingested store in DIR and, when DIR
already holds them (from an earlier run of the same size), measures on them again without
generating or ingesting: the read side can be re-measured after a change in minutes.

For each size: generate an arrival-ordered population (the generator's default
shape: decades interleaved, late corrections, migration batches, long histories),
ingest it without projecting into an embedded store (or, with `--store`, a PostgreSQL
event store, whose read models are then in PostgreSQL too), then measure in one run:

- rebuild: the whole read model from zero (`Follower.catch_up` into an empty copy),
  against the DuckDB gaps-and-islands batch (`bench/spells.sql`) over the same
  stored facts, query only and with its load from CSV, and against the raw limit:
  reading every stored event in notification order (the rebuild's scan, without its
  buckets) and decrypting and decoding it, in as many processes as the rebuild uses
  (the same shards). The rebuild and DuckDB's
  load+query run `--repeats` times in pairs, one right after the other, and the ratio
  is the median of the pairs' (the machine's speed drifts by 20-30% within an hour);
- export: every citizen's durations on one date through the read model's SQL, as
  `casehistory durations --per-citizen --format jsonl` writes them (lines rendered by
  the database), against the same DuckDB query: each run `--repeats` times, alternating,
  and their medians compared (a sub-second timing taken once varied by 4x between runs);
  also the records the services read
  (`durations_records`, written with orjson: what earlier sessions timed);
- the headline report (SQL) on that date;
- time per event (wall, and CPU over the driver and its workers) and the driver's peak
  RSS after ingest and after the rebuild, so sizes can be compared;
- where a rebuild's time goes: CPU per event of reading, decoding, the timeline, the
  rows and writing them, in one process over a sample of about 10,000 citizens.

Ratios come first; results go to bench/results/scale-SIZE.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from bench.common import children_peak_rss, code_version, peak_rss_mb
from bench.peer import duck_spells, fact_rows, read_facts, write_facts

AS_OF = date(2026, 11, 1)
RESULTS = Path(__file__).with_name("results")
console = Console(stderr=True)


def measure(
    size: int, seed: int = 1, work: Path | None = None, repeats: int = 3,
    store: str | None = None,
) -> dict[str, Any]:
    from casehistory.bootstrap import build
    from casehistory.consumers.deadletter import DeadLetterFile
    from casehistory.entrypoints.cli.common import ingest_files
    from casehistory.parallel import default_workers
    from casehistory.projections.follower import PARALLEL_FROM
    from casehistory.projections.queries import durations_lines, durations_records
    from casehistory.services.report import headline_from
    from casehistory.settings import Settings

    work = work or Path(tempfile.mkdtemp(prefix=f"scale-{size}-"))
    work.mkdir(parents=True, exist_ok=True)
    population, ingested = work / "population.jsonl", work / "ingested.json"
    settings = Settings.load({"CASEHISTORY_DATA_DIR": str(work / "store"),
                              "CASEHISTORY_PSEUDONYM_KEY": "ab" * 32,
                              **({"CASEHISTORY_STORE": store} if store else {})})
    result: dict[str, Any] = {"size": size,
                              "backend": "postgres" if settings.uses_postgres else "sqlite",
                              "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                              "commit": code_version(),
                              "load_average_start": os.getloadavg()[0]}
    if ingested.exists():
        earlier = json.loads(ingested.read_text())
        if (earlier["size"], earlier["seed"], earlier.get("backend", "sqlite")) != (
            size, seed, result["backend"]
        ):
            raise SystemExit(f"{work} holds {earlier['size']:,} citizens (seed {earlier['seed']}) "
                             f"in {earlier.get('backend', 'sqlite')}")
        console.log(f"reusing the store ingested in {work} on {earlier['date']}")
        kept = {k: v for k, v in earlier.items()
                if k not in ("size", "seed", "date", "commit", "backend")}
        result.update(kept)
        result["ingest_commit"] = earlier["commit"]
        engine = build(settings)
    else:
        with console.status(f"generating {size:,} citizens"):
            events = generate(size, seed, population)
        engine = build(settings)
        started = time.perf_counter()
        report = ingest_files(engine, [population], DeadLetterFile(work / "dead.jsonl"))
        result.update(events_generated=events, ingest_s=time.perf_counter() - started,
                      stored=report.stored, rss_after_ingest_mb=peak_rss_mb())
        ingested.write_text(json.dumps({**result, "seed": seed}, indent=2) + "\n")
    try:
        stored = engine.app.recorder.max_notification_id() or 0

        fresh = engine.replay_read_model()
        fresh.clear()  # a run that died may have left rows (a reused --work)
        console.log(f"ingested {stored:,} notifications; rebuilding")
        started, cpu = time.perf_counter(), cpu_seconds()
        with children_peak_rss() as workers_rss:
            engine.follower(fresh).catch_up()
        rebuild_runs = [time.perf_counter() - started]
        result["rebuild_cpu_us_per_event"] = (cpu_seconds() - cpu) / stored * 1e6
        result["rss_rebuild_workers_mb"], result["anon_rebuild_workers_mb"] = workers_rss
        result["notifications"] = stored
        result["rss_after_rebuild_mb"] = peak_rss_mb()

        console.log(f"rebuilt in {rebuild_runs[0]:.1f} s; DuckDB batch over the same facts")
        with console.status("writing the facts for DuckDB"):
            facts, written_s = write_facts(fact_rows(engine), work)
        connection, (load_query_s, query_s) = _duck_load_query(facts, written_s)
        result["duck_load_s"] = load_query_s - query_s
        duck_load_query = [load_query_s]
        for n in range(1, repeats):  # pairs close in time: the machine's speed drifts
            console.log(f"rebuild and DuckDB load+query again ({n + 1} of {repeats})")
            connection.close()  # the rebuild runs beside no DuckDB, as the first did
            fresh.clear()
            started = time.perf_counter()
            engine.follower(fresh).catch_up()
            rebuild_runs.append(time.perf_counter() - started)
            connection, (load_query_s, _query_s) = _duck_load_query(facts, written_s)
            duck_load_query.append(load_query_s)
        result["rebuild_runs_s"], result["duck_load_query_runs_s"] = rebuild_runs, duck_load_query
        result["rebuild_s"] = statistics.median(rebuild_runs)
        result["rebuild_us_per_event"] = result["rebuild_s"] / stored * 1e6
        result["rebuild_vs_duck_load_query"] = statistics.median(
            r / d for r, d in zip(rebuild_runs, duck_load_query, strict=True)
        )

        console.log("reading and decoding every event (the raw limit)")
        result["workers"] = default_workers() if stored >= PARALLEL_FROM else 1
        result["read_decode_parallel_s"] = read_decode(engine, stored, result["workers"])
        console.log("where the time goes (one process, a sample of citizens)")
        result["cpu_us_per_event"] = components(engine, stored, fresh.count())

        result["facts"] = connection.execute("SELECT count(*) FROM facts").fetchone()[0]
        exported = work / "export.jsonl"
        duck_runs, export_runs, export_cpu = [], [], []
        for _ in range(repeats):  # alternating, so that a busy moment hits both alike
            started = time.perf_counter()
            duck = duck_spells(connection, AS_OF)
            duck_runs.append(time.perf_counter() - started)
            started, cpu = time.perf_counter(), time.process_time()
            with exported.open("w", encoding="utf-8") as out:
                out.writelines(durations_lines(fresh, AS_OF))
            export_runs.append(time.perf_counter() - started)
            export_cpu.append(time.process_time() - cpu)
        result["duck_query_runs_s"], result["export_runs_s"] = duck_runs, export_runs
        result["duck_query_s"] = statistics.median(duck_runs)
        result["export_s"] = statistics.median(export_runs)
        result["export_cpu_s"] = statistics.median(export_cpu)
        console.log(f"DuckDB query {result['duck_query_s']:.2f} s, "
                    f"export {result['export_s']:.2f} s (medians of {repeats})")
        on_benefit = exported.read_text(encoding="utf-8").count('"on_benefit": true')
        if on_benefit != len(duck):
            raise AssertionError(f"export: {on_benefit} on benefit, DuckDB {len(duck)}")
        started, cpu = time.perf_counter(), time.process_time()  # as earlier sessions timed
        with (work / "export-records.jsonl").open("wb") as out:
            for record in durations_records(fresh, AS_OF):
                out.write(orjson.dumps(record) + b"\n")
        result["export_records_s"] = time.perf_counter() - started
        result["export_records_cpu_s"] = time.process_time() - cpu

        started = time.perf_counter()
        headline = headline_from(fresh, AS_OF)
        result["headline_s"] = time.perf_counter() - started
        result["citizens"] = headline.citizens
        result["on_benefit"] = headline.on_benefit
        result["rebuild_vs_duck_query"] = result["rebuild_s"] / result["duck_query_s"]
        result["rebuild_vs_read_decode"] = result["rebuild_s"] / result["read_decode_parallel_s"]
        result["export_vs_duck_query"] = result["export_s"] / result["duck_query_s"]
        result["load_average_end"] = os.getloadavg()[0]
        fresh.clear()
    finally:
        engine.close()
    return result


def _duck_load_query(facts: Path, written_s: float) -> tuple[Any, tuple[float, float]]:
    """A DuckDB connection loaded from the facts' CSV file, and the seconds of its load
    (writing the file, `written_s`, and reading it) and the batch query together and of
    the query alone."""
    connection, read_s = read_facts(facts)
    started = time.perf_counter()
    duck_spells(connection, AS_OF)
    query_s = time.perf_counter() - started
    return connection, (written_s + read_s + query_s, query_s)


def cpu_seconds() -> float:
    """CPU time of this process and of its children waited for (the rebuild workers): on
    a shared machine a change shows in it when the wall time is noise."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF),
                      resource.getrusage(resource.RUSAGE_CHILDREN))
    )  # fmt: skip


def generate(size: int, seed: int, path: Path) -> int:
    """Write the population in a process of its own, so that the generator's buffer
    (up to 400,000 events) does not count in this process's peak RSS."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_write_population, size, seed, path).result()


def _write_population(size: int, seed: int, path: Path) -> int:
    from casehistory.population import generator

    return generator.write_jsonl(generator.generate_population(size, seed), path)


def components(engine: Any, until: int, citizens: int, sample: int = 10_000) -> dict[str, float]:
    """CPU time per event of each step of a rebuild, in this process, over one shard of
    about `sample` citizens: reading the stored events in citizen order, decoding them,
    building the timeline, computing the rows, and writing them into an empty copy (with
    its indexes). A sample read in citizen order: the rebuild's scan of the whole table
    through buckets (`projections.buckets`) costs a sample too much to show its read.

    Each pass streams one citizen at a time, as the rebuild does, and does one step more
    than the one before; a step's time is the difference."""
    from casehistory.projections.follower import citizen_rows
    from casehistory.projections.history import HistoryDecoder
    from casehistory.projections.source import EventStoreSource
    from casehistory.projections.store import SQLiteReadModel

    source, decoder = EventStoreSource(engine.app), HistoryDecoder(engine.app.mapper)
    shard = (0, max(1, citizens // sample))
    staff_key = engine.settings.staff_key

    def histories() -> Any:
        return source.histories(until, shard=shard)

    def cpu(run: Any) -> float:
        started = time.process_time()
        run()
        return time.process_time() - started

    events = sum(len(stored) for _key, stored in histories())
    with tempfile.TemporaryDirectory() as folder:
        copy = SQLiteReadModel(Path(folder) / "sample.db", "sample")
        copy.create()
        passes = [
            cpu(lambda: sum(len(stored) for _key, stored in histories())),
            cpu(lambda: [decoder.advance(None, stored) and None for _key, stored in histories()]),
            cpu(lambda: [decoder.advance(None, stored).timeline() and None
                         for _key, stored in histories()]),
            cpu(lambda: [None for _rows in citizen_rows(decoder, histories(), staff_key)]),
            cpu(lambda: copy.write(citizen_rows(decoder, histories(), staff_key),
                                   since=0, until=until, replace=False)),
        ]  # fmt: skip
        copy.close()
    steps = ["read", "decode", "timeline", "rows", "write"]
    return {
        step: (seconds - (passes[n - 1] if n else 0.0)) / events * 1e6
        for n, (step, seconds) in enumerate(zip(steps, passes, strict=True))
    }


def read_decode(engine: Any, until: int, workers: int) -> float:
    """Seconds to read every stored event and decode it, in `workers` processes each
    taking one shard of citizens, as the rebuild does: a scan in notification order (the
    read of a large store's rebuild, without its buckets)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    started = time.perf_counter()
    jobs = [(engine.settings, until, (i, workers)) for i in range(workers)]
    if workers == 1:
        events = _read_decode_shard(jobs[0])
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            events = sum(pool.map(_read_decode_shard, jobs))
    if events != until:
        raise AssertionError(f"read {events} events of {until}")
    return time.perf_counter() - started


def _read_decode_shard(job: tuple[Any, int, tuple[int, int]]) -> int:
    from casehistory.bootstrap import build
    from casehistory.projections.history import HistoryDecoder
    from casehistory.projections.source import EventStoreSource, StoredEvent

    settings, until, shard = job
    engine = build(settings)
    try:
        decoder = HistoryDecoder(engine.app.mapper)
        source = EventStoreSource(engine.app)
        events = 0
        for _originator, version, topic, state, _id in source.in_notification_order(until, shard):
            decoder.state(StoredEvent(version, topic, state))
            events += 1
        return events
    finally:
        engine.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("sizes", type=int, nargs="*", default=[10_000])
    parser.add_argument("--work", type=Path, help="keep (or reuse) the population and store here")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of the rebuild and of the export, each alternating with "
                        "DuckDB's; their medians are compared (default 3)")
    parser.add_argument("--label", help="write results to scale-SIZE-LABEL.json")
    parser.add_argument("--store", help="a postgresql:// URL: the event store and the read "
                        "models there (default: embedded SQLite files under --work)")
    args = parser.parse_args(argv)
    if args.work and len(args.sizes) > 1:
        parser.error("--work takes one size")
    RESULTS.mkdir(exist_ok=True)
    from casehistory.bootstrap import tune_garbage_collector

    tune_garbage_collector()  # as every `casehistory` command does: measure what runs
    for size in args.sizes:
        result = measure(size, work=args.work, repeats=args.repeats, store=args.store)
        name = f"scale-{size}-{args.label}.json" if args.label else f"scale-{size}.json"
        (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
        console.print(
            f"{size:,} citizens, {result['notifications']:,} events: "
            f"rebuild {result['rebuild_vs_read_decode']:.2f}x read+decode, "
            f"{result['rebuild_vs_duck_query']:.2f}x DuckDB query "
            f"({result['rebuild_vs_duck_load_query']:.2f}x load+query), "
            f"export {result['export_vs_duck_query']:.2f}x, headline {result['headline_s']:.2f} s, "
            f"rebuild {result['rebuild_us_per_event']:.1f} us/event "
            f"({result['rebuild_cpu_us_per_event']:.1f} us CPU), "
            f"peak RSS {result['rss_after_rebuild_mb']:.0f} MB "
            f"(each rebuild worker at most {result['anon_rebuild_workers_mb']:.0f} MB of its "
            f"own, {result['rss_rebuild_workers_mb']:.0f} MB with the pages it maps)"
        )
        console.print("CPU per event: " + ", ".join(
            f"{name} {us:.1f} us" for name, us in result["cpu_us_per_event"].items()
        ))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
