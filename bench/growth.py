"""One embedded run in its own process, for wall time and peak RSS at one population size.

    python -m bench.growth POPULATION.jsonl DATA_DIR     (CASEHISTORY_* env names the store)

Ingests the file through `ingest_files` (the in-process source on SQLite, the same
ingest path as Kafka), brings every read model up to date, then runs the headline
report over the whole population. Prints one JSON line with the phase times and the
process's peak RSS (`ru_maxrss`) after each phase.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date
from pathlib import Path

from bench.common import peak_rss_mb
from casehistory.bootstrap import build, tune_garbage_collector
from casehistory.consumers.deadletter import DeadLetterFile
from casehistory.entrypoints.cli.common import ingest_files
from casehistory.services.report import headline_from

AS_OF = date(2026, 11, 1)


def main() -> int:
    population = Path(sys.argv[1])
    data_dir = Path(sys.argv[2])
    tune_garbage_collector()  # as the casehistory command does
    engine = build()
    result: dict[str, object] = {"rss_start_mb": peak_rss_mb()}
    try:
        started = time.perf_counter()
        # Dead letters go to a file, as `casehistory ingest` writes them (a list would hold
        # every rejected record of the run in memory).
        report = ingest_files(engine, [population], DeadLetterFile(data_dir / "dead-letters.jsonl"))
        result["ingest_s"] = time.perf_counter() - started
        result["received"] = report.received
        result["stored"] = report.stored
        result["rss_after_ingest_mb"] = peak_rss_mb()
        mark = time.perf_counter()
        result["applied"] = engine.project()
        result["project_s"] = time.perf_counter() - mark
        result["rss_after_project_mb"] = peak_rss_mb()
        mark = time.perf_counter()
        summary = headline_from(engine.read_model(), AS_OF)
        result["report_s"] = time.perf_counter() - mark
        result["citizens"] = summary.citizens
        result["wall_s"] = time.perf_counter() - started
        result["peak_rss_mb"] = peak_rss_mb()
        cache = engine.app.repository.cache
        result["aggregate_cache_maxsize"] = getattr(cache, "maxsize", None)
    finally:
        engine.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
