"""Render docs/benchmarks.md from bench/results/*.json (one file per run)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import median
from typing import Any

NOTES = Path(__file__).with_name("NOTES.md")


def _m(values: list[float]) -> float:
    return median(values) if values else float("nan")


def _routed_cpu(runs: list[dict[str, Any]], raw: float) -> str:
    """The two stages' CPU per event (medians) and, where the broker's was measured, the
    most the machine's cores allow at that CPU: cores / CPU per event, against `raw`."""
    if math.isnan(runs[0].get("broker_cpu_us_per_event", math.nan)):
        stages = _m([x["router_cpu_us_per_event"] + x["store_cpu_us_per_event"] for x in runs])
        return f"{stages:.0f} µs CPU/event"
    router = _m([x["router_cpu_us_per_event"] for x in runs])
    store = _m([x["store_cpu_us_per_event"] for x in runs])
    broker = _m([x["broker_cpu_us_per_event"] for x in runs])
    cores = runs[0]["cores"]
    ceiling = cores * 1e6 / (router + store + broker) / raw
    busy = _m([x["machine_busy"] for x in runs])
    return (
        f"CPU per event: router {router:.0f} + store writer {store:.0f} + broker "
        f"{broker:.0f} µs; {cores} cores {busy:.0%} busy, at most {ceiling:.2f}× at that CPU"
    )


def _r(x: float) -> str:
    return f"**{x:.2f}**"


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _ms(seconds: float) -> str:
    if seconds < 0.001:
        return f"{seconds * 1000:.3f} ms"
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _read_side(scale: list[dict[str, Any]]) -> list[str]:
    """The read-side section: one row per `bench.scale` result, oldest code first."""
    out = [
        "## 0. Read side at scale",
        "",
        "`bench/run SIZE` ends with `python -m bench.scale SIZE` (`bench/scale.py`): an "
        'arrival-ordered population of the shape in domain.md "Scale" is ingested '
        "without projecting, then in one run: the rebuild of every read model from zero "
        "against the raw limit (every stored event read, decrypted and decoded, in as many "
        "processes as the rebuild: in citizen order up to 83039ba, then in notification "
        "order, as the rebuild reads since) and against the DuckDB "
        "gaps-and-islands batch over the same facts (query alone, and with its load); the "
        "all-citizen per-citizen export on 2026-11-01 against the same DuckDB query; the "
        "headline report. Targets (issue #13): rebuild ≤ 3× DuckDB, export ≤ 0.5× DuckDB, "
        "headline at 100k under 1 s, time per event flat with size.",
        "",
        "Before this work (issue #13, 20,000 citizens, 364,738 events): DuckDB batch 1.8 s, "
        "`replay` 126 s (70×), the per-citizen export 2.3 s (1.3×); at 5,000 citizens the "
        "replay was 24× DuckDB, so cost grew faster than the work.",
        "",
    ]
    rows = []
    for r in sorted(scale, key=lambda r: (r["date"], r["size"])):
        rows.append([
            _r(r["rebuild_s"] / r["read_decode_parallel_s"]) if "read_decode_parallel_s" in r
            else "not measured",
            _r(r["rebuild_vs_duck_query"]), _r(r["rebuild_vs_duck_load_query"]),
            _r(r["export_vs_duck_query"]), f"{r['headline_s']:.2f} s",
            _citizens(r), f"{r['notifications']:,}", f"{r['rebuild_s']:,.1f} s",
            str(r.get("workers", "")), f"{r['rebuild_us_per_event']:.1f}",
            f"{r['rss_after_rebuild_mb']:,.0f} MB"
            + _workers_rss(r),
            r["commit"], r["date"], _load(r),
        ])  # fmt: skip
    out += _table(
        ["rebuild ÷ read+decode", "rebuild ÷ DuckDB query", "rebuild ÷ DuckDB load+query",
         "export ÷ DuckDB query", "headline", "citizens", "events", "rebuild", "workers",
         "µs/event", "peak RSS (driver / each worker)", "code", "date",
         "load average (start, end)"],
        rows,
    )  # fmt: skip
    steps = [r for r in scale if "cpu_us_per_event" in r]
    if steps:
        out += [
            "",
            "Where a rebuild's time goes: CPU µs per event of each step, in one process over "
            "a sample of about 10,000 citizens (`bench.scale.components`). The rebuild's "
            "workers do all of these; the parent then copies their rows in and indexes them.",
            "",
        ]
        names = list(steps[0]["cpu_us_per_event"])
        out += _table(
            ["citizens", *names, "total", "code", "date"],
            [[_citizens(r), *(f"{r['cpu_us_per_event'][n]:.1f}" for n in names),
              f"{sum(r['cpu_us_per_event'].values()):.1f}", r["commit"], r["date"]]
             for r in sorted(steps, key=lambda r: (r["date"], r["size"]))],
        )  # fmt: skip
    return out


def _citizens(result: dict[str, Any]) -> str:
    """A run's population, and its backend when the store was PostgreSQL (`--store`)."""
    postgres = " (PostgreSQL)" if result.get("backend") == "postgres" else ""
    return f"{result['size']:,}{postgres}"


def _load(result: dict[str, Any]) -> str:
    """The machine's 1-minute load average at a run's start and end (2 cores: above 2,
    processes wait for a core and absolute times stretch)."""
    if "load_average_start" not in result:
        return "not recorded"
    return f"{result['load_average_start']:.1f}, {result['load_average_end']:.1f}"


def render(paths: list[Path]) -> str:
    scale = [json.loads(p.read_text()) for p in paths if p.name.startswith("scale-")]
    runs = [json.loads(p.read_text()) for p in paths if not p.name.startswith("scale-")]
    runs.sort(key=lambda r: (r["size"], r["label"]))
    latest = max(runs, key=lambda r: r["date"])
    out = [
        "# Benchmarks",
        "",
        "Generated by `bench/run SIZE` (scripts in `bench/`); do not edit by hand: the "
        "numbers come from `bench/results/*.json`. Every measure is a **ratio against a raw "
        "limit measured in the same run on the same machine** (ratio column first), because "
        "these machines are shared and absolute times drift. Values are medians over the "
        "run's repeats (`runs`).",
        "",
        "## Machine and versions",
        "",
        f"- machine: {latest['machine']['cores']} cores ({latest['machine']['cpu']}), "
        f"{latest['machine']['memory_gib']} GiB memory, Linux {latest['machine']['kernel']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in latest["versions"].items()),
        "- store: every run here is on the embedded SQLite store but the read-side rows "
        "marked (PostgreSQL) (`bench.scale --store`); PostgreSQL ingest with concurrent "
        "writers is measured by `bench/ingest_writers.py` (README, PostgreSQL)",
        "",
        "| run | citizens | events generated | runs | command | code | date | total time "
        "| load average (start, end) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        out.append(
            f"| {r['label']} | {r['size']:,} | {r['events_generated']:,} | {r['repeats']} | "
            f"`{r['command']}` | {r.get('commit', 'not recorded')} | {r['date']} | "
            f"{r.get('total_s', 0) / 60:.1f} min | {_load(r)} |"
        )
    out.append("")
    if NOTES.exists():
        out += [NOTES.read_text().strip(), ""]

    out += _read_side(scale)
    out += [
        "## 1. Ingest",
        "",
        "Ratio = engine events/s ÷ raw events/s. Raw limit: bare kafka-python consume + "
        "`schemas.wire.decode` of the same topic. *Ingest only*: until the consumer has "
        "stored and committed everything, with the projection worker running beside it; "
        "*alone*: the same without the worker (where measured); *routed*: the two stages "
        "of issue #14 as processes side by side, `casehistory route` into a history topic "
        "and `casehistory consume --from-history` into the store, from the first stored "
        "record to the last (where measured); *+ live read models*: "
        "until the projection "
        "worker (own process, every read model) has applied everything too. *Embedded*: "
        "`ingest_files` from the generated JSON Lines into SQLite, then every read model "
        "projected, in one process (target: Kafka ingest ≥ 0.5).",
        "",
    ]
    rows = []
    for r in runs:
        ing = r.get("ingest")
        if not ing:
            continue
        raw = _m([x["rate"] for x in ing["raw"]])
        only = _m([x["ingest_rate"] for x in ing["engine"]])
        live = _m([x["live_rate"] for x in ing["engine"]])
        events = ing["engine"][0]["events"]
        n = len(ing["engine"])
        rows.append(
            [
                _r(only / raw),
                r["label"],
                "Kafka → event store (ingest only)",
                _n(events),
                _n(only),
                _n(raw),
                str(n),
            ]
        )
        if ing.get("alone"):
            alone = _m([x["ingest_rate"] for x in ing["alone"]])
            rows.append(
                [
                    _r(alone / raw),
                    r["label"],
                    "Kafka → event store, alone (no projection beside it)",
                    _n(events),
                    _n(alone),
                    _n(raw),
                    str(len(ing["alone"])),
                ]
            )
        if ing.get("routed"):
            routed = _m([x["rate"] for x in ing["routed"]])
            rows.append(
                [
                    _r(routed / raw),
                    r["label"],
                    "Kafka → router → history topic → store writer "
                    f"({_routed_cpu(ing['routed'], raw)})",
                    _n(events),
                    _n(routed),
                    _n(raw),
                    str(len(ing["routed"])),
                ]
            )
        rows.append(
            [
                _r(live / raw),
                r["label"],
                "Kafka → event store + live read models",
                _n(events),
                _n(live),
                _n(raw),
                str(n),
            ]
        )
        emb = r.get("embedded")
        if emb:
            received = emb[0]["received"]
            ingest_rate = _m([x["received"] / x["ingest_s"] for x in emb])
            total_rate = _m([x["received"] / (x["ingest_s"] + x["project_s"]) for x in emb])
            rows.append(
                [
                    _r(ingest_rate / raw),
                    r["label"],
                    "embedded `ingest_files` (SQLite)",
                    _n(received),
                    _n(ingest_rate),
                    _n(raw),
                    str(len(emb)),
                ]
            )
            rows.append(
                [
                    _r(total_rate / raw),
                    r["label"],
                    "embedded `ingest_files` + project every read model",
                    _n(received),
                    _n(total_rate),
                    _n(raw),
                    str(len(emb)),
                ]
            )
    out += _table(
        ["ratio", "run", "path", "events", "engine events/s", "raw events/s", "runs"], rows
    )

    out += [
        "## 2. Rebuild",
        "",
        "Ratio = rebuild events/s ÷ raw read events/s. Raw limit: "
        "`app.recorder.select_notifications` in pages of 1,000 over the same store (rows "
        "only). Rebuild: `engine.follower(name, engine.replay_view(name)).catch_up()`, "
        "a fresh copy beside the live view, checked equal to it by checksum; *every read "
        "model, one pass*: one follower feeding fresh copies of all of them, as "
        "`casehistory project` and the workers run (target ≥ 0.5).",
        "",
    ]
    rows = []
    for r in runs:
        rb = r.get("rebuild")
        if not rb:
            continue
        raw = _m([x["rate"] for x in rb["raw"]])
        raw_decode = _m([x["rate"] for x in rb["raw_decode"]])
        for name in [*r["read_models"], "all"]:
            if name not in rb:
                continue
            rate = _m([x["rate"] for x in rb[name]])
            rows.append(
                [
                    _r(rate / raw),
                    r["label"],
                    "every read model, one pass" if name == "all" else name,
                    _n(rb[name][0]["events"]),
                    _n(rate),
                    _n(raw),
                    _n(raw_decode),
                    f"{rate / raw_decode:.2f}",
                    "yes" if all(x["equal"] for x in rb[name]) else "**NO**",
                    str(len(rb[name])),
                ]
            )
    out += _table(
        [
            "ratio",
            "run",
            "read model",
            "events",
            "rebuild events/s",
            "raw read events/s",
            "raw read + decode events/s",
            "ratio to read + decode",
            "equal to live",
            "runs",
        ],
        rows,
    )

    out += [
        "## 3. Batch peer (DuckDB)",
        "",
        "`bench/spells.sql` is the analyst's query: DuckDB gets the **facts stored in the "
        "event store** (so already validated and de-duplicated by event id by the ingest "
        "path) with the retraction events as rows; retractions (chains resolved up to "
        "depth 3, the run fails on deeper ones), the as-of cut, pairing starts and stops "
        "per benefit + source system + municipality (stops before starts on a date, "
        "duplicate starts/stops ignored), the union of overlaps and the whole-calendar-"
        "month gap rule are all in SQL. Every citizen's all-benefits spell start and "
        "`benefit_days_in_spell` must equal the engine's "
        "`DurationsRow.durations(as_of)`; the run raises on any difference.",
        "",
    ]
    rows = []
    for r in runs:
        p = r.get("peer")
        if not p:
            continue
        for d in p["dates"]:
            rows.append(
                [
                    r["label"],
                    d["as_of"],
                    _n(p["facts"]),
                    _n(d["on_benefit"]),
                    "identical, citizen by citizen",
                ]
            )
        rows.append(
            [r["label"], "2026-11-01, after 5 single new events", "", "", "identical after each"]
        )
    out += _table(["run", "as of", "facts", "citizens on benefit compared", "result"], rows)
    rows = []
    for r in runs:
        p, rb = r.get("peer"), r.get("rebuild")
        if not p:
            continue
        duck = _m([d["duck_s"] for d in p["dates"]])
        engine_as_of = _m([d["engine_as_of_s"] for d in p["dates"]])
        if rb and "durations" in rb:
            full = _m([x["seconds"] for x in rb["durations"]])
            rows.append(
                [
                    _r(duck / full),
                    r["label"],
                    "full rebuild of the durations view",
                    _ms(full),
                    "query, one as-of date",
                    _ms(duck),
                ]
            )
            rows.append(
                [
                    _r((duck + p["load_s"]) / (full + engine_as_of)),
                    r["label"],
                    "full rebuild + every citizen's answer as of a date",
                    _ms(full + engine_as_of),
                    "load facts (CSV) + query",
                    _ms(duck + p["load_s"]),
                ]
            )
        rows.append(
            [
                _r(duck / engine_as_of),
                r["label"],
                "every citizen's answer as of a date, from the built view",
                _ms(engine_as_of),
                "query, one as-of date",
                _ms(duck),
            ]
        )
        inc = p["incremental"]
        rows.append(
            [
                _r(inc["duck_full_p50_s"] / inc["engine_p50_s"]),
                r["label"],
                "one new event: ingest + durations catch-up",
                _ms(inc["engine_p50_s"]),
                "insert + full query",
                _ms(inc["duck_full_p50_s"]),
            ]
        )
        rows.append(
            [
                _r(inc["duck_one_citizen_p50_s"] / inc["engine_p50_s"]),
                r["label"],
                "one new event: ingest + durations catch-up",
                _ms(inc["engine_p50_s"]),
                "query for that one citizen",
                _ms(inc["duck_one_citizen_p50_s"]),
            ]
        )
    out += [
        "Ratio = DuckDB time ÷ engine time (above 1: the engine is faster). Exporting the "
        "facts from the event store for DuckDB is not counted on its side.",
        "",
    ]
    out += _table(["ratio", "run", "engine", "engine time", "DuckDB", "DuckDB time"], rows)

    out += [
        "## 4. Freshness",
        "",
        "Publish-to-visible latency of single probe events (each a new citizen's first "
        "benefit start) while a background publisher sends the population's events at a "
        "fixed rate; `casehistory consume` and `casehistory project --follow` run in their "
        "own processes on SQLite; visible = the citizen's row is in the durations view. "
        "Ratio = engine p99 ÷ raw p99, the raw limit being the same probes' publish-to-"
        "consume latency at a bare kafka-python consumer (target: p99 < 1 s).",
        "",
    ]
    rows = []
    for r in runs:
        f = r.get("freshness")
        if not f:
            continue
        rows.append(
            [
                _r(f["p99_s"] / f["raw_p99_s"]),
                r["label"],
                f"{f['rate']:,.0f} events/s",
                str(f["probes"]),
                _ms(f["p50_s"]),
                _ms(f["p99_s"]),
                _ms(f["max_s"]),
                _ms(f["raw_p50_s"]),
                _ms(f["raw_p99_s"]),
                f"{f['live_citizens']:,}" if "live_citizens" in f else "",
                f"{c:,.0f}" if (c := f.get("project_cpu_us_per_event")) else "",
                f"{m:,.0f} MB" if (m := f.get("project_peak_rss_mb")) else "",
                "yes" if f["p99_s"] < 1 else "**no**",
            ]
        )
    out += _table(
        [
            "ratio p99",
            "run",
            "background load",
            "probes",
            "p50",
            "p99",
            "max",
            "raw p50",
            "raw p99",
            "held citizens",
            "projection CPU µs/event",
            "projection peak RSS",
            "p99 < 1 s",
        ],
        rows,
    )

    out += [
        "## 5. Queries",
        "",
        "Ratio = engine time ÷ raw time (how many bare reads one answer costs). *Citizen as "
        "of a date*: the 100 citizens with the most facts, each at 3 random as-of dates; "
        "engine = load the durations row + `row.durations(as_of)`; raw = the bare SQLite "
        "lookup of that row. *From the aggregate* is the `casehistory citizen` command's "
        "path (aggregate loaded from the event store, uncached, timeline, measures). "
        "*Cohort report*: `casehistory.services.report.headline` over `all_durations` for the "
        "whole population; raw = a bare `SELECT *` of the durations table.",
        "",
    ]
    rows = []
    for r in runs:
        q = r.get("queries")
        if not q:
            continue
        c, h = q["citizen"], q["cohort"]
        rows.append(
            [
                _r(c["engine_p50_s"] / c["raw_p50_s"]),
                r["label"],
                f"citizen as of a date ({c['facts'][0]}–{c['facts'][1]} facts)",
                str(c["queries"]),
                _ms(c["engine_p50_s"]),
                _ms(c["engine_p99_s"]),
                _ms(c["raw_p50_s"]),
                _ms(c["raw_p99_s"]),
            ]
        )
        rows.append(
            [
                _r(c["aggregate_p50_s"] / c["raw_p50_s"]),
                r["label"],
                "citizen as of a date, from the aggregate",
                str(c["queries"]),
                _ms(c["aggregate_p50_s"]),
                _ms(c["aggregate_p99_s"]),
                _ms(c["raw_p50_s"]),
                _ms(c["raw_p99_s"]),
            ]
        )
        rows.append(
            [
                _r(h["engine_p50_s"] / h["raw_p50_s"]),
                r["label"],
                f"cohort report, {h['citizens']:,} citizens",
                str(h["runs"]),
                _ms(h["engine_p50_s"]),
                _ms(h["engine_p99_s"]),
                _ms(h["raw_p50_s"]),
                _ms(h["raw_p99_s"]),
            ]
        )
    out += _table(
        ["ratio (p50)", "run", "query", "samples", "p50", "p99", "raw p50", "raw p99"], rows
    )

    out += [
        "## 6. Growth",
        "",
        "One embedded process per size (`bench/growth.py`: `ingest_files` into SQLite, "
        "project every read model, headline report), histories since 2000. Ratios are "
        "against the smallest size in the table: time per event (1.00 = linear) and peak "
        "RSS (`VmHWM` of the process; 1.00 = flat). Every growth run sets the aggregate "
        "cache (`AGGREGATE_CACHE_MAXSIZE`, the one configured cache that grows with the "
        "citizens seen; none by default since the ingest appends from heads) to the same "
        "size, so peak memory beyond it shows "
        "what the engine keeps per citizen outside its caches. The projection follower "
        "holds at most 2,000 citizens' histories.",
        "",
    ]
    points = []
    for r in runs:
        for g in r.get("growth", []):
            points.append((r["label"], g["citizens"], g["events"], {**g, "date": r["date"]}))
    points.sort(key=lambda p: p[3].get("date", ""), reverse=True)  # newest first per size
    points.sort(key=lambda p: p[1])
    seen, rows = set(), []
    if points:
        base = points[0]
        base_per_event = base[3]["wall_s"] / base[2]
        for label, citizens, events, g in points:
            if citizens in seen:
                continue
            seen.add(citizens)
            rows.append(
                [
                    _r(g["wall_s"] / events / base_per_event),
                    _r(g["peak_rss_mb"] / base[3]["peak_rss_mb"]),
                    label,
                    f"{citizens:,}",
                    f"{events:,}",
                    f"{g['wall_s']:,.1f} s",
                    f"{g['ingest_s']:,.1f} s",
                    f"{g['project_s']:,.1f} s",
                    f"{g['report_s']:,.1f} s",
                    f"{g['rss_after_ingest_mb']:,.0f} MB",
                    f"{g['peak_rss_mb']:,.0f} MB",
                    str(g.get("aggregate_cache_maxsize")),
                ]
            )
    out += _table(
        [
            "time/event ratio",
            "peak RSS ratio",
            "run",
            "citizens",
            "events",
            "wall",
            "ingest",
            "project",
            "report",
            "RSS after ingest",
            "peak RSS",
            "cache maxsize",
        ],
        rows,
    )
    return "\n".join(out).rstrip() + "\n"


def _workers_rss(r: dict[str, Any]) -> str:
    """A rebuild worker's peak memory: its own (anonymous) where measured, as the RSS
    counts the pages of the event store it maps."""
    if anon := r.get("anon_rebuild_workers_mb"):
        return f" / {anon:,.0f} MB ({r['rss_rebuild_workers_mb']:,.0f} MB with the mapped store)"
    if hwm := r.get("rss_rebuild_workers_mb"):
        return f" / {hwm:,.0f} MB"
    return ""
