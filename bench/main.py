"""Run every benchmark at one population size and write docs/benchmarks.md.

    bench/run SIZE [--repeats N] [--rate EVENTS_PER_S] [--freshness-warm N] [--live-citizens N]
              [--label TEXT]
              [--skip MEASURE]

Measures: ingest, embedded, rebuild, peer, queries, freshness, growth, and last the read
side at scale (`scale`, bench/scale.py: rebuild, export and headline against DuckDB).

Results of each run are kept as JSON in bench/results/ (one file per label), and
docs/benchmarks.md is rendered from all of them, so runs at 10k and 100k sit side
by side. Every measure is a ratio against a raw limit measured in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import common, freshness, ingest, peer, queries, rebuild
from bench.common import WORK, median

RESULTS = Path(__file__).with_name("results")
DOC = common.REPO / "docs" / "benchmarks.md"
AS_OF_DATES = (date(2026, 11, 1), date(2015, 6, 30), date(2008, 2, 29))
GROWTH_CACHE = 1000
"""Aggregate cache size of the growth runs: every measured population exceeds or fills it,
so what grows beyond it is what the engine keeps per citizen outside its caches."""
console = Console(stderr=True)


def read_jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in itertools.islice(lines, limit)]


def publish_file(bootstrap: str, topic: str, path: Path, chunk: int = 50_000) -> int:
    sent = 0
    with path.open(encoding="utf-8") as lines:
        while batch := [json.loads(line) for line in itertools.islice(lines, chunk)]:
            sent += ingest.publish(bootstrap, topic, batch, partitions=3)
    return sent


def probe_events(count: int) -> list[Any]:
    """The first benefit start of `count` citizens from another seed (not in the population)."""
    from casehistory.population import generator

    firsts: dict[str, dict[str, Any]] = {}
    for record in generator.generate_population(count * 2, common.SEED + 1, invalid_share=0):
        if record.get("event_type") == "BenefitStarted" and record["cpr"] not in firsts:
            firsts[record["cpr"]] = record
    return freshness.contract_events(list(firsts.values())[:count])


def run(
    size: int, repeats: int, rate: float, label: str, skip: set[str], warm: int = 0,
    live_citizens: int | None = None,
) -> dict[str, Any]:
    from casehistory.bootstrap import READ_MODEL, build
    from casehistory.devservices import kafka as devkafka
    from casehistory.population import generator

    work = WORK / str(size)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result: dict[str, Any] = {
        "label": label,
        "size": size,
        "repeats": repeats,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "bench/run " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "commit": common.code_version(),
        "load_average_start": os.getloadavg()[0],
        "machine": common.machine(),
        "versions": common.versions(devkafka.KAFKA_VERSION),
        "read_models": [READ_MODEL],
    }
    started = time.perf_counter()
    population = work / "population.jsonl"
    with console.status(f"generating {size:,} citizens"):
        result["events_generated"] = generator.write_jsonl(
            generator.generate_population(size, common.SEED), population
        )
    console.print(f"{result['events_generated']:,} events for {size:,} citizens")
    with console.status("starting a local Kafka broker"):
        broker = devkafka.start(partitions=3)
    try:
        bootstrap = broker.bootstrap_servers
        topic = f"bench.events.{size}.{int(time.time())}"
        if "ingest" not in skip:  # the other measures do not read this topic
            with console.status("publishing the population"):
                result["published"] = publish_file(bootstrap, topic, population)
        steps = ["ingest", "embedded", "rebuild", "peer", "queries", "freshness", "growth"]
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console,
        ) as progress:  # fmt: skip
            task = progress.add_task("benchmarks", total=len(steps))
            live_dir = work / "kafka-store"
            if "ingest" not in skip:
                raws, engines, alone, routed = [], [], [], []
                for n in range(repeats):
                    progress.update(task, description=f"ingest: raw consume+decode ({n + 1})")
                    raws.append(ingest.raw_consume(bootstrap, topic))
                    progress.update(task, description=f"ingest: engine alone ({n + 1})")
                    alone.append(ingest.engine_consume(bootstrap, topic, live_dir, project=False))
                    progress.update(task, description=f"ingest: engine from Kafka ({n + 1})")
                    engines.append(ingest.engine_consume(bootstrap, topic, live_dir))
                    progress.update(task, description=f"ingest: router + store writer ({n + 1})")
                    routed.append(ingest.routed_consume(
                        bootstrap, topic, work / "routed-store", broker.pid
                    ))
                result["ingest"] = {
                    "raw": raws, "engine": engines, "alone": alone, "routed": routed,
                }
            progress.advance(task)

            if "embedded" not in skip:
                embedded = []
                for n in range(repeats):
                    progress.update(task, description=f"embedded: ingest_files + project ({n + 1})")
                    data_dir = work / "embedded-store"
                    shutil.rmtree(data_dir, ignore_errors=True)
                    embedded.append(
                        common.run_json(
                            ["-m", "bench.growth", str(population), str(data_dir)],
                            common.env_for(data_dir),
                        )
                    )
                result["embedded"] = embedded
            progress.advance(task)

            engine = build(common.settings_for(live_dir))
            try:
                if "rebuild" not in skip:
                    rb: dict[str, list[Any]] = {"raw": [], "raw_decode": []}
                    for n in range(repeats):
                        progress.update(task, description=f"rebuild ({n + 1})")
                        rb["raw"].append(rebuild.raw_read(engine))
                        rb["raw_decode"].append(rebuild.raw_read(engine, decode=True))
                        rb.setdefault("all", []).append(rebuild.rebuild_all(engine))
                    result["rebuild"] = rb
                progress.advance(task)

                if "peer" not in skip:
                    progress.update(task, description="batch peer: DuckDB")
                    result["peer"] = run_peer(engine, work, population, repeats)
                progress.advance(task)

                if "queries" not in skip:
                    progress.update(task, description="queries")
                    connection, _ = peer.load_facts(peer.fact_rows(engine), work)
                    keys = [
                        k for (k,) in connection.execute(
                            "SELECT citizen_key FROM facts GROUP BY citizen_key "
                            "ORDER BY count(*) DESC, citizen_key LIMIT 100"
                        ).fetchall()
                    ]  # fmt: skip
                    longest = connection.execute(
                        "SELECT min(n), max(n) FROM (SELECT count(*) n FROM facts "
                        f"WHERE citizen_key IN ({', '.join(repr(k) for k in keys)}) "
                        "GROUP BY citizen_key)"
                    ).fetchone()
                    connection.close()
                    result["queries"] = {
                        "citizen": {**queries.per_citizen(engine, keys), "facts": list(longest)},
                        "cohort": queries.cohort_report(engine, AS_OF_DATES[0], max(3, repeats)),
                    }
                progress.advance(task)
            finally:
                engine.close()

            if "freshness" not in skip:
                progress.update(task, description=f"freshness at {rate:,.0f} events/s")
                probes = probe_events(120)
                events = freshness.contract_events(
                    read_jsonl(population, warm + int(rate * (5 + len(probes) * 0.5 + 30)))
                )
                result["freshness"] = freshness.measure(
                    bootstrap, work / "fresh-store", events[warm:], probes, rate,
                    f"bench.fresh.{size}.{int(time.time())}", events[:warm], live_citizens,
                )  # fmt: skip
            progress.advance(task)

            if "growth" not in skip:
                growth = []
                for citizens in sorted({max(GROWTH_CACHE, size // 10), size}):
                    progress.update(task, description=f"growth at {citizens:,}")
                    path = work / f"population-{citizens}.jsonl"
                    events = (
                        result["events_generated"]
                        if citizens == size
                        else generator.write_jsonl(
                            generator.generate_population(citizens, common.SEED), path
                        )
                    )
                    data_dir = work / f"growth-{citizens}"
                    run_result = common.run_json(
                        ["-m", "bench.growth", str(population if citizens == size else path),
                         str(data_dir)],
                        common.env_for(data_dir, AGGREGATE_CACHE_MAXSIZE=str(GROWTH_CACHE)),
                    )  # fmt: skip
                    growth.append({"citizens": citizens, "events": events, **run_result})
                    shutil.rmtree(data_dir, ignore_errors=True)
                result["growth"] = growth
            progress.advance(task)
    finally:
        devkafka.stop(broker)
    result["total_s"] = time.perf_counter() - started
    result["load_average_end"] = os.getloadavg()[0]
    return result


def run_peer(engine: Any, work: Path, population: Path, repeats: int) -> dict[str, Any]:
    mark = time.perf_counter()
    rows = list(peer.fact_rows(engine))
    export_s = time.perf_counter() - mark
    connection, load_s = peer.load_facts(rows, work)
    depth = peer.retraction_depth(connection)
    if depth >= 4:
        raise peer.Mismatch(f"retraction chains of depth {depth}: spells.sql resolves up to 3")
    dates = []
    for as_of in AS_OF_DATES:
        duck_s, engine_s = [], []
        for _ in range(repeats):
            mark = time.perf_counter()
            duck = peer.duck_spells(connection, as_of)
            duck_s.append(time.perf_counter() - mark)
            mark = time.perf_counter()
            mine = peer.engine_spells(engine, as_of)
            engine_s.append(time.perf_counter() - mark)
        compared = peer.compare(mine, duck, as_of)  # raises on any difference
        dates.append(
            {"as_of": as_of.isoformat(), "on_benefit": compared, "duck_s": median(duck_s),
             "engine_as_of_s": median(engine_s)}
        )  # fmt: skip
    templates = [
        r for r in read_jsonl(population, 20_000)
        if r.get("event_type") == "BenefitStarted" and "target_group" not in r
    ][:5]  # fmt: skip
    increments = peer.incremental(engine, connection, templates, AS_OF_DATES[0])
    # after the increments the two must still agree
    peer.compare(peer.engine_spells(engine, AS_OF_DATES[0]),
                 peer.duck_spells(connection, AS_OF_DATES[0]), AS_OF_DATES[0])  # fmt: skip
    connection.close()
    return {
        "facts": sum(map(len, rows)),
        "retraction_depth": depth,
        "export_s": export_s,
        "load_s": load_s,
        "dates": dates,
        "incremental": increments,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("size", type=int, help="citizens (e.g. 10000)")
    parser.add_argument("--repeats", type=int, help="runs per measure (default 3, 1 above 20k)")
    parser.add_argument("--rate", type=float, default=1000.0, help="freshness background load")
    parser.add_argument(
        "--freshness-warm", type=int, default=0, metavar="N",
        help="store and project the population's first N events before the freshness load",
    )
    parser.add_argument(
        "--live-citizens", type=int, metavar="N",
        help="citizens the freshness run's projection worker holds between catch-ups",
    )
    parser.add_argument("--label", help="results name (default: the size)")
    parser.add_argument("--skip", action="append", default=[], help="skip a measure")
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args(argv)
    from casehistory.bootstrap import tune_garbage_collector

    tune_garbage_collector()  # the in-process consumer runs as `casehistory consume` would
    if not args.render_only:
        repeats = args.repeats or (3 if args.size <= 20_000 else 1)
        label = args.label or str(args.size)
        result = run(
            args.size, repeats, args.rate, label, set(args.skip), args.freshness_warm,
            args.live_citizens,
        )
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{label}.json").write_text(json.dumps(result, indent=1, default=str))
        console.print(f"results: {RESULTS / (label + '.json')}")
        if "scale" not in args.skip:  # in a process of its own, as when run alone
            labelled = ["--label", args.label] if args.label else []
            subprocess.run([sys.executable, "-m", "bench.scale", str(args.size), *labelled],
                           check=True)  # fmt: skip
    from bench.render import render

    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render(sorted(RESULTS.glob("*.json"))))
    console.print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
