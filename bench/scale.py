"""Read side at scale: one-pass rebuild and any-date reports against a DuckDB batch.

    .venv/bin/python -m bench.scale SIZE [SIZE ...]

For each size: generate an arrival-ordered population (the generator's default
shape: decades interleaved, late corrections, migration batches, long histories),
ingest it into an embedded store without projecting, then measure in one run:

- rebuild: the whole read model from zero (`Follower.catch_up` into an empty copy),
  against the DuckDB gaps-and-islands batch (`bench/spells.sql`) over the same
  stored facts, query only and with its load from CSV, and against the raw limit:
  reading every stored event in citizen order and decrypting and decoding it, in as
  many processes as the rebuild uses (the same shards);
- export: every citizen's durations on one date through the read model's SQL,
  written as JSON Lines, against the same DuckDB query;
- the headline report (SQL) on that date;
- time per event and the driver's peak RSS after ingest and after the rebuild, so sizes
  can be compared.

Ratios come first; results go to bench/results/scale-SIZE.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from bench.common import code_version, peak_rss_mb
from bench.peer import duck_spells, fact_rows, load_facts

AS_OF = date(2026, 11, 1)
RESULTS = Path(__file__).with_name("results")
console = Console(stderr=True)


def measure(size: int, seed: int = 1) -> dict[str, Any]:
    from casehistory.bootstrap import build
    from casehistory.consumers.deadletter import DeadLetterFile
    from casehistory.entrypoints.cli.common import ingest_files
    from casehistory.parallel import default_workers
    from casehistory.population import generator
    from casehistory.projections.follower import PARALLEL_FROM
    from casehistory.projections.queries import durations_records
    from casehistory.services.report import headline_from
    from casehistory.settings import Settings

    work = Path(tempfile.mkdtemp(prefix=f"scale-{size}-"))
    population = work / "population.jsonl"
    with console.status(f"generating {size:,} citizens"):
        events = generator.write_jsonl(generator.generate_population(size, seed), population)
    settings = Settings.load({"CASEHISTORY_DATA_DIR": str(work / "store"),
                              "CASEHISTORY_PSEUDONYM_KEY": "ab" * 32})
    engine = build(settings)
    result: dict[str, Any] = {"size": size, "events_generated": events,
                              "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                              "commit": code_version()}
    try:
        started = time.perf_counter()
        report = ingest_files(engine, [population], DeadLetterFile(work / "dead.jsonl"))
        result["ingest_s"] = time.perf_counter() - started
        result["stored"] = report.stored
        result["rss_after_ingest_mb"] = peak_rss_mb()
        stored = engine.app.recorder.max_notification_id() or 0

        fresh = engine.replay_read_model()
        console.log(f"ingested {stored:,} notifications; rebuilding")
        started = time.perf_counter()
        engine.follower(fresh).catch_up()
        result["rebuild_s"] = time.perf_counter() - started
        result["notifications"] = stored
        result["rebuild_us_per_event"] = result["rebuild_s"] / stored * 1e6
        result["rss_after_rebuild_mb"] = peak_rss_mb()
        console.log("reading and decoding every event (the raw limit)")
        result["workers"] = default_workers() if stored >= PARALLEL_FROM else 1
        result["read_decode_parallel_s"] = read_decode(engine, stored, result["workers"])

        console.log(f"rebuilt in {result['rebuild_s']:.1f} s; DuckDB batch")
        with console.status("DuckDB batch over the same facts"):
            rows = fact_rows(engine)
            connection, load_s = load_facts(rows, work)
            started = time.perf_counter()
            duck = duck_spells(connection, AS_OF)
            result["duck_query_s"] = time.perf_counter() - started
            result["duck_load_s"] = load_s
            result["facts"] = len(rows)

        console.log(f"DuckDB query {result['duck_query_s']:.2f} s; export")
        started = time.perf_counter()
        on_benefit = 0
        with (work / "export.jsonl").open("wb") as out:
            for record in durations_records(fresh, AS_OF):
                out.write(orjson.dumps(record) + b"\n")
                on_benefit += record["on_benefit"]
        result["export_s"] = time.perf_counter() - started
        if on_benefit != len(duck):
            raise AssertionError(f"export: {on_benefit} on benefit, DuckDB {len(duck)}")

        started = time.perf_counter()
        headline = headline_from(fresh, AS_OF)
        result["headline_s"] = time.perf_counter() - started
        result["citizens"] = headline.citizens
        result["on_benefit"] = headline.on_benefit
        result["rebuild_vs_duck_query"] = result["rebuild_s"] / result["duck_query_s"]
        result["rebuild_vs_duck_load_query"] = result["rebuild_s"] / (
            result["duck_query_s"] + load_s
        )
        result["rebuild_vs_read_decode"] = result["rebuild_s"] / result["read_decode_parallel_s"]
        result["export_vs_duck_query"] = result["export_s"] / result["duck_query_s"]
        fresh.clear()
    finally:
        engine.close()
    return result


def read_decode(engine: Any, until: int, workers: int) -> float:
    """Seconds to read every stored event in citizen order and decode it, in `workers`
    processes each taking one shard of citizens, as the rebuild does."""
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
    from casehistory.projections.source import EventStoreSource

    settings, until, shard = job
    engine = build(settings)
    try:
        decoder = HistoryDecoder(engine.app.mapper)
        events = 0
        for _originator, stored in EventStoreSource(engine.app).histories(until, shard=shard):
            for event in stored:
                decoder.state(event)
            events += len(stored)
        return events
    finally:
        engine.close()


def main(argv: list[str]) -> int:
    RESULTS.mkdir(exist_ok=True)
    for size in [int(a) for a in argv] or [10_000]:
        result = measure(size)
        (RESULTS / f"scale-{size}.json").write_text(json.dumps(result, indent=2) + "\n")
        console.print(
            f"{size:,} citizens, {result['notifications']:,} events: "
            f"rebuild {result['rebuild_vs_read_decode']:.2f}x read+decode, "
            f"{result['rebuild_vs_duck_query']:.2f}x DuckDB query "
            f"({result['rebuild_vs_duck_load_query']:.2f}x load+query), "
            f"export {result['export_vs_duck_query']:.2f}x, headline {result['headline_s']:.2f} s, "
            f"rebuild {result['rebuild_us_per_event']:.1f} us/event, "
            f"peak RSS {result['rss_after_rebuild_mb']:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
