"""Write cost on long histories: ingest citizens with many events each, in arrival order.

    python -m bench.long_histories CITIZENS EVENTS_PER_CITIZEN [CACHE]

Generates CITIZENS citizens with EVENTS_PER_CITIZEN valid events each (benefit periods
opened and closed over the years), shuffles every event into one arrival-ordered stream
(a citizen's events spread over the whole stream, as on a real topic), and ingests it
into a fresh SQLite store under /tmp in batches of 2,000 through the shared ingest path.
CACHE sets `AGGREGATE_CACHE_MAXSIZE` where the engine still has that cache. Prints one
JSON line: events/s over the first and the last quarter of the stream (the last quarter
appends to long histories) and overall.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.common import settings_for
from casehistory.bootstrap import build, tune_garbage_collector
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.consumers.files import Incoming


def _cpr(n: int) -> str:
    """A substitute CPR number (day + 60), distinct per n."""
    birth = date(1960, 1, 1) + timedelta(days=n % 9000)
    serial = 1000 + n // 9000
    return f"{birth.day + 60:02d}{birth.month:02d}{birth.year % 100:02d}{serial:04d}"


def stream(citizens: int, per_citizen: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    for n in range(citizens):
        cpr = _cpr(n)
        day = date(2004, 1, 1) + timedelta(days=rng.randrange(300))
        for k in range(per_citizen):
            kind = "BenefitStarted" if k % 2 == 0 else "BenefitStopped"
            record: dict[str, Any] = {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "event_type": kind,
                "cpr": cpr,
                "effective_date": day.isoformat(),
                "recorded_at": f"{day.isoformat()}T09:00:00Z",
                "source_system": "fasit",
                "municipality": "101",
                "benefit": "kontanthjaelp",
            }
            if kind == "BenefitStopped":
                record["reason"] = "job"
            records.append(record)
            day += timedelta(days=rng.randrange(20, 90))
    rng.shuffle(records)
    return records


def main() -> int:
    citizens, per_citizen = int(sys.argv[1]), int(sys.argv[2])
    extra = {"AGGREGATE_CACHE_MAXSIZE": sys.argv[3]} if len(sys.argv) > 3 else {}
    os.environ.update(extra)
    records = stream(citizens, per_citizen)
    data_dir = Path("/tmp/casehistory-long-histories")
    shutil.rmtree(data_dir, ignore_errors=True)
    tune_garbage_collector()
    engine = build(settings_for(data_dir))
    service = engine.ingest_service(DeadLetterList())
    quarter = len(records) // 4
    times: list[tuple[int, float]] = []
    try:
        for first in range(0, len(records), 2000):
            batch = [
                Incoming(r, b"", {"topic": "bench", "partition": 0, "offset": first + i})
                for i, r in enumerate(records[first : first + 2000])
            ]
            started = time.perf_counter()
            report = service.ingest(batch)
            times.append((len(batch), time.perf_counter() - started))
            assert report.stored == len(batch), report
    finally:
        engine.close()

    def rate(part: list[tuple[int, float]]) -> float:
        return round(sum(n for n, _ in part) / sum(s for _, s in part))

    batches_per_quarter = max(1, quarter // 2000)
    print(json.dumps({
        "citizens": citizens,
        "events_per_citizen": per_citizen,
        "events": len(records),
        **extra,
        "first_quarter_events_per_s": rate(times[:batches_per_quarter]),
        "last_quarter_events_per_s": rate(times[-batches_per_quarter:]),
        "overall_events_per_s": rate(times),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
