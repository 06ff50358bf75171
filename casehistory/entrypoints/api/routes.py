"""The read API (`/api/v1`): each report for any as-of date, as JSON, CSV or XLSX."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from casehistory.domain.cpr import InvalidCpr, birth_date
from casehistory.domain.durations import COHORT_YEARS
from casehistory.entrypoints.api import tables
from casehistory.entrypoints.api.app import Surfaces, per_citizen_rows, require, surfaces
from casehistory.entrypoints.api.tables import Table
from casehistory.services import reports as services
from casehistory.services.access import Action, Identity
from casehistory.services.council_report import COHORT_FIELDS

router = APIRouter(prefix="/api/v1", tags=["reports"])


class Format(StrEnum):
    json = "json"
    csv = "csv"
    xlsx = "xlsx"


AsOf = Annotated[date, Query(description="the as-of date D (YYYY-MM-DD)")]
FormatQuery = Annotated[Format, Query(description="json, csv (Danish) or xlsx")]
TableQuery = Annotated[str | None, Query(description="for csv: which table (default the first)")]
Shared = Annotated[Surfaces, Depends(surfaces)]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def respond(
    name: str, found: list[Table], fmt: Format, table: str | None, extra: dict[str, Any],
    who: Identity | None = None,
) -> Response:
    """The tables in the asked format (CSV: one table, chosen by name); aggregates as `who`
    may see them (an analyst sees counts under 5 as "<5")."""
    if who is not None:
        found = [tables.seen_by(t, who) for t in found]
    if fmt is Format.csv:
        chosen = next((t for t in found if t.name == (table or found[0].name)), None)
        if chosen is None:
            raise HTTPException(404, f"no table {table!r}; tables: {[t.name for t in found]}")
        return Response(
            tables.to_csv(chosen), media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}-{chosen.name}.csv"'},
        )
    if fmt is Format.xlsx:
        return Response(
            tables.to_xlsx(found), media_type=XLSX,
            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
        )
    return JSONResponse({**extra, "tables": {t.name: t.as_json() for t in found}})


@router.get("/headline", summary="True versus naive durations: buckets, cohorts, misses")
def headline(
    shared: Shared, as_of: AsOf, who: Annotated[Identity, Depends(require(Action.AGGREGATES))],
    format: FormatQuery = Format.json, table: TableQuery = None,
) -> Response:
    report = shared.report("headline", (as_of,), lambda: services.headline(shared.engine, as_of))
    return respond("headline", tables.headline_tables(report), format, table,
                   {"as_of": as_of.isoformat()}, who)


@router.get("/cohorts", summary="Cohorts over 2, 3, 6, 10 and 15 years, and who naive misses")
def cohorts(
    shared: Shared, as_of: AsOf, who: Annotated[Identity, Depends(require(Action.AGGREGATES))],
    format: FormatQuery = Format.json, table: TableQuery = None,
) -> Response:
    report = shared.report("headline", (as_of,), lambda: services.headline(shared.engine, as_of))
    found = [t for t in tables.headline_tables(report) if t.name in {"cohorts", "missed_by_break"}]
    return respond("cohorts", found, format, table, {"as_of": as_of.isoformat()}, who)


@router.get("/durations",
            summary="Per-citizen measures by pseudonym, paged, filtered (logged, with a purpose)")
def durations(
    request: Request, shared: Shared, as_of: AsOf,
    who: Annotated[Identity, Depends(per_citizen_rows)],
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    on_benefit: bool | None = None,
    target_group: str | None = None,
    over_years: Annotated[int | None, Query(ge=0, le=100)] = None,
    break_kind: str | None = None,
    order: Annotated[str, Query(pattern="^(citizen_key|longest)$")] = "citizen_key",
    format: FormatQuery = Format.json,
) -> Response:
    filters = services.DurationFilters(on_benefit, target_group, over_years, break_kind)
    page = shared.report(
        "durations", (as_of, offset, limit, filters, order),
        lambda: services.durations_page(shared.engine, as_of, offset, limit, filters, order),
    )
    table = tables.durations_table(page)
    if format is Format.json:
        records = [tables.duration_record(k, d) for k, d in page.rows]
        return JSONResponse({
            "as_of": as_of.isoformat(), "total": page.total, "offset": offset, "limit": limit,
            "rows": [{k: tables.as_plain(v) for k, v in r.items()} for r in records],
        })
    return respond("durations", [table], format, None, {})


@router.get("/coordination", summary="Fællesborgere by target group and step, flags")
def coordination(
    shared: Shared, as_of: AsOf, who: Annotated[Identity, Depends(require(Action.AGGREGATES))],
    long_spell_years: Annotated[int, Query(ge=1, le=50)] = 3,
    format: FormatQuery = Format.json, table: TableQuery = None,
) -> Response:
    report = shared.report(
        "coordination", (as_of, long_spell_years),
        lambda: services.coordination_summary(shared.engine, as_of, long_spell_years),
    )
    return respond("coordination", tables.coordination_tables(report), format, table,
                   {"as_of": as_of.isoformat()}, who)


@router.get("/coordination/citizens",
            summary="Per-citizen coordination by pseudonym (logged, with a purpose)")
def coordination_citizens(
    shared: Shared, as_of: AsOf,
    _: Annotated[Identity, Depends(per_citizen_rows)],
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    faellesborger: bool | None = None, flag: str | None = None, target_group: str | None = None,
    long_spell_years: Annotated[int, Query(ge=1, le=50)] = 3,
    format: FormatQuery = Format.json,
) -> Response:
    filters = services.CoordinationFilters(faellesborger, flag, target_group)
    page = shared.report(
        "coordination_page", (as_of, offset, limit, filters, long_spell_years),
        lambda: services.coordination_page(shared.engine, as_of, offset, limit, filters,
                                           long_spell_years),
    )
    table = tables.coordination_citizens_table(page)
    if format is Format.json:
        return JSONResponse({
            "as_of": as_of.isoformat(), "total": page.total, "offset": offset, "limit": limit,
            "rows": [dict(zip(table.columns, tables.as_plain(r), strict=True))
                     for r in table.rows],
        })
    return respond("coordination-citizens", [table], format, None, {})


@router.get("/coordination/yearly", summary="The yearly fællesborger mapping")
def yearly(
    shared: Shared, year: Annotated[int, Query(ge=1900, le=2099)],
    who: Annotated[Identity, Depends(require(Action.AGGREGATES))],
) -> dict[str, int | str]:
    found = shared.report("yearly", (year,), lambda: services.yearly_mapping(shared.engine, year))
    return {"year": found.year, "on_benefit": tables.count_seen_by(found.on_benefit, who),
            "faellesborgere": tables.count_seen_by(found.faellesborgere, who)}


@router.get("/flows", summary="Inflow per half-year; approved for a flexjob but without one")
def flows(
    shared: Shared,
    first: Annotated[date, Query(alias="from")],
    last: Annotated[date, Query(alias="to")],
    who: Annotated[Identity, Depends(require(Action.AGGREGATES))],
    format: FormatQuery = Format.json, table: TableQuery = None,
) -> Response:
    if last < first:
        raise HTTPException(422, "`to` is before `from`")
    report = shared.report("flows", (first, last),
                           lambda: services.flows(shared.engine, first, last))
    return respond("flows", tables.flows_tables(report), format, table,
                   {"from": first.isoformat(), "to": last.isoformat()}, who)


@router.get("/trend", summary="Monthly: on benefit, and over N years true versus naive")
def trend(
    shared: Shared,
    first: Annotated[date, Query(alias="from")],
    last: Annotated[date, Query(alias="to")],
    who: Annotated[Identity, Depends(require(Action.AGGREGATES))],
    format: FormatQuery = Format.json,
) -> Response:
    if last < first or (last - first).days > 366 * 30:
        raise HTTPException(422, "give `from` before `to`, at most 30 years apart")
    points = shared.report("trend", (first, last),
                           lambda: services.monthly_trend(shared.engine, first, last))
    return respond("trend", tables.trend_tables(points), format, None,
                   {"cohort_years": list(COHORT_YEARS)}, who)


def _list_response(name: str, rows: list[dict[str, Any]], as_of: date, fmt: Format) -> Response:
    if fmt is Format.json:
        return JSONResponse({"as_of": as_of.isoformat(), "total": len(rows),
                             "rows": [tables.as_plain(r) for r in rows]})
    columns = list(rows[0]) if rows else ["citizen_key"]
    return respond(name, [Table(name.replace("-", "_"), columns,
                                [[r.get(c) for c in columns] for r in rows])], fmt, None, {})


@router.get("/lists/long-durations", tags=["lists"],
            summary="Prioritisation: a spell over N years, longest first (logged, with a purpose)")
def long_durations(
    shared: Shared, as_of: AsOf,
    _: Annotated[Identity, Depends(per_citizen_rows)],
    years: Annotated[int, Query(ge=0, le=100)] = 15, cash_system: bool = False,
    format: FormatQuery = Format.json,
) -> Response:
    rows = shared.report("long_durations", (as_of, years, cash_system), lambda: list(
        services.long_durations(shared.engine, as_of, years, cash_system)))
    return _list_response("long-durations", rows, as_of, format)


@router.get("/lists/clarification-pool", tags=["lists"],
            summary="Prioritisation: the clarification pool (logged, with a purpose)")
def clarification_pool(
    shared: Shared, as_of: AsOf,
    _: Annotated[Identity, Depends(per_citizen_rows)],
    format: FormatQuery = Format.json,
) -> Response:
    rows = shared.report("clarification_pool", (as_of,), lambda: list(
        services.clarification_pool(shared.engine, as_of)))
    return _list_response("clarification-pool", rows, as_of, format)


# --- The councils' reports -------------------------------------------------------------


@router.get("/exits", tags=["councils"],
            summary="Exits from the cash-benefit system per half-year, destination and group")
def exits(
    shared: Shared,
    first: Annotated[date, Query(alias="from")],
    last: Annotated[date, Query(alias="to")],
    as_of: AsOf,
    who: Annotated[Identity, Depends(require(Action.AGGREGATES))],
    format: FormatQuery = Format.json, table: TableQuery = None,
) -> Response:
    if last < first:
        raise HTTPException(422, "`to` is before `from`")
    rows = shared.report("exits", (first, last, as_of),
                         lambda: services.exits(shared.engine, first, last, as_of))
    return respond("exits", tables.exits_tables(rows), format, table,
                   {"from": first.isoformat(), "to": last.isoformat(),
                    "as_of": as_of.isoformat()}, who)


def _horizons(text: str) -> tuple[int, ...]:
    try:
        found = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise HTTPException(422, f"horizons are whole months, comma-separated: {text!r}") from None
    if not found or min(found) < 1 or max(found) > 600:
        raise HTTPException(422, f"horizons are whole months from 1 to 600: {text!r}")
    return found


@router.get("/cohort", tags=["councils"],
            summary="A cohort on C and its outcomes (exited, on benefit, neither) at each horizon")
def cohort(
    shared: Shared,
    on: Annotated[date, Query(description="the cohort date C")],
    who: Annotated[Identity, Depends(require(Action.AGGREGATES))],
    target_group: Annotated[list[str] | None, Query()] = None,
    min_age: Annotated[int | None, Query(ge=0, le=150)] = None,
    max_age: Annotated[int | None, Query(ge=0, le=150)] = None,
    min_years: Annotated[int | None, Query(ge=0, le=100)] = None,
    cash_system: bool = False,
    municipality: Annotated[str | None, Query(description="paid on C by this municipality")]
    = None,
    by_municipality: Annotated[bool, Query(description="also one cohort per municipality")]
    = False,
    horizons: Annotated[str, Query(description="months after C, e.g. 6,12,18")] = "6,12,18",
    format: FormatQuery = Format.json, table: TableQuery = None,
) -> Response:
    criteria = services.CohortCriteria(frozenset(target_group or ()), min_age, max_age,
                                       min_years, cash_system, municipality)
    months = _horizons(horizons)
    if by_municipality:
        per = shared.report("cohort_by_municipality", (on, criteria, months), lambda: (
            services.cohort_by_municipality(shared.engine, on, criteria, months)))
        columns = ["municipality", "members", *COHORT_FIELDS]
        return respond("cohort", [Table("by_municipality", columns,
                                        [[r[c] for c in columns] for r in per])],
                       format, table, {"on": on.isoformat()}, who)
    members, rows = shared.report("cohort", (on, criteria, months),
                                  lambda: services.cohort(shared.engine, on, criteria, months))
    return respond("cohort", tables.cohort_tables(on, members, rows), format, table,
                   {"on": on.isoformat(), "citizens": tables.count_seen_by(members, who)}, who)


@router.get("/caseload", tags=["councils"],
            summary="Citizens per caseworker and unit, against the 50/70/110 lines")
def caseload(
    shared: Shared, as_of: AsOf, who: Annotated[Identity, Depends(require(Action.AGGREGATES))],
    format: FormatQuery = Format.json, table: TableQuery = None,
) -> Response:
    report = shared.report("caseload", (as_of,), lambda: services.caseload(shared.engine, as_of))
    return respond("caseload", tables.caseload_tables(report), format, table,
                   {"as_of": as_of.isoformat(),
                    "citizens": tables.count_seen_by(report.citizens, who)}, who)


@router.get("/cadence", tags=["councils"],
            summary="Contact cadence: citizens by status (ok, due soon, overdue) and group")
def cadence(
    shared: Shared, as_of: AsOf, who: Annotated[Identity, Depends(require(Action.AGGREGATES))],
    format: FormatQuery = Format.json, table: TableQuery = None,
) -> Response:
    summary = shared.report("cadence", (as_of,),
                            lambda: services.cadence_summary(shared.engine, as_of))
    return respond("cadence", tables.cadence_tables(summary), format, table,
                   {"as_of": as_of.isoformat()}, who)


@router.get("/cadence/citizens", tags=["councils"],
            summary="Per-citizen contact clocks by pseudonym (logged, with a purpose)")
def cadence_citizens(
    shared: Shared, as_of: AsOf,
    _: Annotated[Identity, Depends(per_citizen_rows)],
    all: bool = False, format: FormatQuery = Format.json,
) -> Response:
    rows = shared.report("cadence_clocks", (as_of, all), lambda: [
        r for r in services.cadence_clocks(shared.engine, as_of)
        if all or r["status"] in services.CADENCE_ATTENTION])
    return _list_response("cadence-citizens", rows, as_of, format)


@router.get("/continuity", tags=["councils"],
            summary="Citizens by the number of caseworkers they had in the last N months")
def continuity(
    shared: Shared, as_of: AsOf, who: Annotated[Identity, Depends(require(Action.AGGREGATES))],
    months: Annotated[int, Query(ge=1, le=120)] = 12,
    format: FormatQuery = Format.json, table: TableQuery = None,
) -> Response:
    rows = shared.report("continuity", (as_of, months),
                         lambda: list(services.continuity(shared.engine, as_of, months)))
    return respond("continuity", tables.continuity_tables(rows), format, table,
                   {"as_of": as_of.isoformat(), "months": months}, who)


@router.get("/continuity/citizens", tags=["councils"],
            summary="Per citizen by pseudonym: caseworkers in N months (logged, with a purpose)")
def continuity_citizens(
    shared: Shared, as_of: AsOf,
    _: Annotated[Identity, Depends(per_citizen_rows)],
    months: Annotated[int, Query(ge=1, le=120)] = 12, format: FormatQuery = Format.json,
) -> Response:
    rows = shared.report("continuity", (as_of, months),
                         lambda: list(services.continuity(shared.engine, as_of, months)))
    return _list_response("continuity-citizens", rows, as_of, format)


# --- One citizen (caseworkers; every lookup is logged) -------------------------------


class Lookup(BaseModel):
    """A lookup by CPR: the number travels in the body only, never in a URL."""

    cpr: str = Field(description="10 digits, with or without the hyphen")
    purpose: str = Field(min_length=3, description="why: a case reference or purpose")
    as_of: date | None = None
    known_at: datetime | None = None


def story_json(story: services.CitizenStory) -> dict[str, Any]:
    plain: dict[str, Any] = tables.as_plain(story_record(story))
    return plain


def story_record(story: services.CitizenStory) -> dict[str, Any]:
    return {
        "citizen_key": story.citizen_key,
        "as_of": story.as_of,
        "known_at": story.known_at.isoformat() if story.known_at else None,
        "measures": tables.duration_record(story.citizen_key, story.measures),
        "coordination": {
            "is_faellesborger": story.coordination.is_faellesborger,
            "support_step": story.coordination.support_step,
            "interventions": list(story.coordination.interventions),
            "flags": {k: list(v) for k, v in story.coordination.flags.items()},
        },
        "why": [vars(w) for w in story.why],
        "spells": [
            {"start": s.start, "end": s.end, "calendar_days": s.calendar_days,
             "paid_days": s.paid_days, "runs": s.runs,
             "gaps": [vars(g) for g in s.gaps],
             "breaks": [{"benefit": p.code, "stop": p.stop, "stop_reason": p.stop_reason,
                         "event_id": p.stop_event_id} for p in s.breaks],
             "municipalities": s.municipalities, "benefits": s.benefits,
             "target_groups": s.target_groups}
            for s in story.spells
        ],
        "periods": [_period(p) for p in story.periods],
        "interventions": [_period(p) for p in story.interventions],
        "facts": [
            {"event_id": f.event_id, "event_type": f.event_type.value,
             "effective_date": f.effective_date, "recorded_at": f.recorded_at.isoformat(),
             "source_system": f.source_system, "municipality": f.municipality,
             "benefit": f.benefit, "target_group": f.target_group, "reason": f.reason,
             "intervention": f.intervention, "status": status}
            for f, status in story.facts
        ],
    }


def _period(p: Any) -> dict[str, Any]:
    return {"code": p.code, "source_system": p.source_system, "municipality": p.municipality,
            "start": p.start, "stop": p.stop, "stop_reason": p.stop_reason,
            "start_event_id": p.start_event_id, "stop_event_id": p.stop_event_id}


def show_citizen(
    shared: Surfaces, who: Identity, citizen_key: str, criterion: str, purpose: str,
    as_of: date | None, known_at: datetime | None,
) -> services.CitizenStory:
    """The story of one citizen; the lookup is logged first, found or not."""
    day = as_of or date.today()
    shared.engine.lookup_log.log_lookup(
        who, purpose, citizen_key=citizen_key,
        shown=f"history, measures and spells as of {day.isoformat()}"
        + (f" as known at {known_at.isoformat()}" if known_at else "") + f" (found by {criterion})",
    )
    story = services.citizen_story(shared.engine, citizen_key, day, known_at)
    if story is None:
        raise HTTPException(404, "no such citizen")
    return story


@router.get("/citizens/{citizen_key}", tags=["citizen"],
            summary="One citizen by pseudonym (caseworkers; logged, purpose required)")
def citizen(
    shared: Shared, citizen_key: str,
    purpose: Annotated[str, Query(min_length=3)],
    who: Annotated[Identity, Depends(require(Action.VIEW_CITIZEN))],
    as_of: date | None = None, known_at: datetime | None = None,
) -> dict[str, Any]:
    return story_json(show_citizen(shared, who, citizen_key, "citizen_key", purpose, as_of,
                                   known_at))


@router.post("/citizens/lookup", tags=["citizen"],
             summary="One citizen by CPR in the body (caseworkers; logged, purpose required)")
def citizen_by_cpr(
    shared: Shared, lookup: Lookup,
    who: Annotated[Identity, Depends(require(Action.VIEW_CITIZEN))],
) -> dict[str, Any]:
    cpr = lookup.cpr.replace("-", "").strip()
    try:
        birth_date(cpr)
    except InvalidCpr as error:
        raise HTTPException(422, f"not a CPR number: {error}") from None
    key = services.citizen_key_of(shared.engine, cpr)
    return story_json(show_citizen(shared, who, key, "cpr", lookup.purpose, lookup.as_of,
                                   lookup.known_at))


# --- Operations and the access log -------------------------------------------------------


@router.get("/operations", tags=["operations"], summary="Read models' positions and lag")
def operations(
    shared: Shared, _: Annotated[Identity, Depends(require(Action.OPERATE))],
    reconcile: Annotated[bool, Query(description="also account for every Kafka offset")] = False,
) -> dict[str, Any]:
    head, statuses = services.read_model_status(shared.engine)
    found: dict[str, Any] = {"events_stored": head, "read_models": [vars(s) for s in statuses]}
    if reconcile:
        result = services.reconciliation(shared.engine)
        found["reconciliation"] = None if result is None else {
            "topic": result.topic, "unaccounted": result.unaccounted,
            "not_yet_consumed": result.not_yet_consumed,
            "partitions": [
                {"partition": p.partition, "log_start": p.log_start, "committed": p.committed,
                 "end": p.end, "outcomes": dict(p.outcomes), "gaps": p.gaps[:100]}
                for p in result.partitions
            ],
        }
    return found


@router.get("/access-log", tags=["operations"], summary="Lookups and refusals (auditor, DPO)")
def access_log(
    shared: Shared, _: Annotated[Identity, Depends(require(Action.LOOKUP_LOG))],
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> dict[str, Any]:
    log = shared.engine.lookup_log
    records = [asdict(r) for r in log.records()]
    return {"intact": not any(log.problems()), "records": records[-limit:]}
