"""Measure 3, batch peer: the engine's spells against a DuckDB gaps-and-islands query.

DuckDB reads the facts stored in the engine's event store (validated and
de-duplicated by the ingest path; retractions are rows, resolved in SQL); the query
is `bench/spells.sql`. For each as-of date every citizen's all-benefits spell start
and paid days in the spell must equal the engine's `DurationsRow.durations(as_of)`,
citizen by citizen; any difference raises `Mismatch`.
"""

from __future__ import annotations

import csv
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from bench.common import percentile
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.consumers.files import Incoming

SQL = (Path(__file__).with_name("spells.sql")).read_text()
RETRACTION_DEPTH_SQL = """
WITH RECURSIVE chain(event_id, depth) AS (
    SELECT event_id, 1 FROM facts WHERE event_type = 'EventRetracted'
    UNION ALL
    SELECT r.event_id, chain.depth + 1
    FROM facts r JOIN chain ON r.retracted_event_id = chain.event_id
    WHERE r.event_type = 'EventRetracted' AND chain.depth < 10
)
SELECT coalesce(max(depth), 0) FROM chain
"""
COLUMNS = (
    "citizen_key VARCHAR, event_id VARCHAR, event_type VARCHAR, effective_date DATE, "
    "recorded_at TIMESTAMPTZ, source_system VARCHAR, municipality VARCHAR, benefit VARCHAR, "
    "retracted_event_id VARCHAR"
)


class Mismatch(AssertionError):
    """The engine and DuckDB disagree about some citizen."""


def fact_rows(engine: Any) -> Iterator[list[tuple[Any, ...]]]:
    """Every stored fact, as pages of DuckDB rows, read back from the event store (pages, so
    that a store of millions of events is never held in memory at once)."""
    position = 0
    recorder, mapper = engine.app.recorder, engine.app.mapper
    while True:
        page = recorder.select_notifications(start=position, limit=5000, inclusive_of_start=False)
        if not page:
            return
        events = (mapper.to_domain_event(notification) for notification in page)
        yield [  # not Registered, Forgotten
            fact_row(e.originator_id.hex, e) for e in events if hasattr(e, "event_id")
        ]
        position = page[-1].id


def fact_row(citizen_key: str, event: Any) -> tuple[Any, ...]:
    details = event.details
    return (
        citizen_key,
        event.event_id,
        type(event).__name__,
        date.fromisoformat(event.effective_date),
        datetime.fromisoformat(event.recorded_at),
        event.source_system,
        event.municipality,
        details.get("benefit"),
        details.get("retracted_event_id"),
    )


def load_facts(
    pages: Iterable[list[tuple[Any, ...]]], folder: Path
) -> tuple[duckdb.DuckDBPyConnection, float]:
    """Load the facts into an in-memory DuckDB (through a CSV file, as an export would).

    The seconds returned are DuckDB's load: writing the CSV file and reading it in, not
    producing the pages (reading and decoding the event store)."""
    path, written_s = write_facts(pages, folder)
    connection, read_s = read_facts(path)
    return connection, written_s + read_s


def write_facts(pages: Iterable[list[tuple[Any, ...]]], folder: Path) -> tuple[Path, float]:
    """Write the facts to `folder`/facts.csv; the seconds spent writing, not producing, them."""
    path = folder / "facts.csv"
    spent = 0.0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        for rows in pages:
            started = time.perf_counter()
            writer.writerows((*r[:4], r[4].isoformat(), *r[5:]) for r in rows)
            spent += time.perf_counter() - started
    return path, spent


def read_facts(path: Path) -> tuple[duckdb.DuckDBPyConnection, float]:
    """A new in-memory DuckDB holding the facts of a CSV file from `write_facts`, and the
    seconds it took."""
    started = time.perf_counter()
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(f"CREATE TABLE facts ({COLUMNS})")
    columns = ", ".join(f"'{c.split()[0]}': '{c.split()[1]}'" for c in COLUMNS.split(", "))
    connection.execute(
        f"INSERT INTO facts SELECT * FROM read_csv('{path}', header = false, "
        f"columns = {{{columns}}})"
    )
    return connection, time.perf_counter() - started


def retraction_depth(connection: duckdb.DuckDBPyConnection) -> int:
    return int(connection.execute(RETRACTION_DEPTH_SQL).fetchone()[0])


def duck_spells(connection: duckdb.DuckDBPyConnection, as_of: date) -> dict[str, tuple[date, int]]:
    return {
        key: (start, days)
        for key, start, days in connection.execute(SQL, {"as_of": as_of}).fetchall()
    }


def engine_spells(
    engine: Any, as_of: date, keys: list[str] | None = None
) -> dict[str, tuple[date, int]]:
    from casehistory.projections.queries import durations_of, durations_records

    found = {}
    store = engine.read_model()
    if keys is None:
        records = durations_records(store, as_of)
    else:
        records = (r for k in keys if (r := durations_of(store, as_of, k)) is not None)
    for r in records:
        if r["all_benefits_spell_start"] is not None:
            found[r["citizen_key"]] = (
                date.fromisoformat(r["all_benefits_spell_start"]),
                r["benefit_days_in_spell"],
            )
    return found


def compare(
    engine_side: dict[str, tuple[date, int]], duck_side: dict[str, tuple[date, int]], as_of: date
) -> int:
    differing = sorted(
        key
        for key in engine_side.keys() | duck_side.keys()
        if engine_side.get(key) != duck_side.get(key)
    )
    if differing:
        sample = [(k, engine_side.get(k), duck_side.get(k)) for k in differing[:5]]
        raise Mismatch(
            f"as of {as_of}: {len(differing)} citizens differ between the engine and DuckDB "
            f"(key, engine, duckdb): {sample}"
        )
    return len(engine_side)


def incremental(
    engine: Any, connection: duckdb.DuckDBPyConnection, templates: list[dict[str, Any]], as_of: date
) -> dict[str, Any]:
    """One new event for one citizen: engine ingest + catch-up versus DuckDB recomputing."""
    service = engine.ingest_service(DeadLetterList())
    follower = engine.follower()
    follower.catch_up()
    engine_s, duck_full_s, duck_one_s = [], [], []
    for n, template in enumerate(templates):
        record = {
            **template,
            "event_id": str(uuid.uuid4()),
            "source_system": "bench-incremental",
            "effective_date": as_of.isoformat(),
            "recorded_at": f"{as_of.isoformat()}T12:00:00Z",
        }
        key = engine.vault.citizen_key(str(record["cpr"]))
        started = time.perf_counter()
        report = service.ingest([Incoming(record, b"", {"file": "bench", "line": n})])
        follower.catch_up()
        engine_s.append(time.perf_counter() - started)
        if report.stored != 1:
            raise RuntimeError(f"incremental event not stored: {report}")
        started = time.perf_counter()
        connection.execute(
            "INSERT INTO facts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [key, record["event_id"], record["event_type"], as_of,
             datetime.fromisoformat(str(record["recorded_at"]).replace("Z", "+00:00")),
             record["source_system"], record["municipality"], record.get("benefit"), None],
        )  # fmt: skip
        answer = duck_spells(connection, as_of)
        duck_full_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        one = connection.execute(
            SQL.replace("FROM facts", "FROM (SELECT * FROM facts WHERE citizen_key = $key)"),
            {"as_of": as_of, "key": key},
        ).fetchall()
        duck_one_s.append(time.perf_counter() - started)
        mine = engine_spells(engine, as_of, [key])
        if mine.get(key) != answer.get(key) or [(k, s, d) for k, s, d in one] != [
            (key, *answer[key])
        ] * (key in answer):
            raise Mismatch(
                f"after one new event for {key}: engine {mine.get(key)}, "
                f"DuckDB {answer.get(key)}, DuckDB one citizen {one}"
            )
    return {
        "events": len(templates),
        "engine_p50_s": percentile(engine_s, 50),
        "duck_full_p50_s": percentile(duck_full_s, 50),
        "duck_one_citizen_p50_s": percentile(duck_one_s, 50),
    }
