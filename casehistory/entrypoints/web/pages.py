"""The dashboard's pages, rendered on the server, Danish by default (`?lang=en`).

Each page asks `casehistory.services` (through the shared report cache), turns
the report into `casehistory.entrypoints.api.tables` tables and shows every chart beside a
"vis som tabel" table holding the same numbers.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from casehistory.domain.caseload import CONTINUITY_MONTHS
from casehistory.domain.cpr import InvalidCpr, birth_date
from casehistory.domain.durations import COHORT_YEARS
from casehistory.domain.exits import DEFAULT_HORIZONS
from casehistory.domain.spells import years_before
from casehistory.entrypoints.api import tables
from casehistory.entrypoints.api.app import Surfaces, identity, log_rows, require, surfaces
from casehistory.entrypoints.api.routes import show_citizen
from casehistory.entrypoints.api.tables import Table
from casehistory.entrypoints.web import i18n, timeline_svg
from casehistory.services import reports as services
from casehistory.services.access import Action, Identity

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
Shared = Annotated[Surfaces, Depends(surfaces)]
Lang = Annotated[str, Query(pattern="^(da|en)$")]
SERIES_COLOURS = ["#005fa3", "#b35a00", "#2f6b2f", "#6b2f6b", "#8a1538", "#3d4a5c"]

NAV = [
    ("/", "nav_overview", Action.AGGREGATES),
    ("/samarbejde", "nav_coordination", Action.AGGREGATES),
    ("/stroemme", "nav_flows", Action.AGGREGATES),
    ("/afgange", "nav_exits", Action.AGGREGATES),
    ("/kohorte", "nav_cohort", Action.AGGREGATES),
    ("/sagsbehandling", "nav_casework", Action.AGGREGATES),
    ("/lister", "nav_lists", Action.PER_CITIZEN_ROWS),
    ("/borger", "nav_citizen", Action.VIEW_CITIZEN),
    ("/drift", "nav_operations", Action.OPERATE),
    ("/opslag", "nav_access_log", Action.LOOKUP_LOG),
    ("/docs", "nav_api", Action.API_DOCS),
]


def page(request: Request, template: str, lang: str, **context: Any) -> HTMLResponse:
    who = identity(request)

    def t(key: str) -> str:
        return i18n.text(key, lang)

    return templates.TemplateResponse(request, template, {
        "lang": lang, "who": who, "path": request.url.path,
        "nav": [(href, key) for href, key, need in NAV if who.may(need)],
        "t": t, "n": lambda v, decimals=None: i18n.number(v, lang, decimals),
        "pct": lambda v: i18n.percent(v, lang), "d": lambda v: i18n.day(v, lang),
        "label": lambda v: i18n.label(v, lang),
        "labels": lambda values: ", ".join(i18n.label(v, lang) for v in values), **context,
    })


def chart(table: Table, columns: list[str], kind: str, lang: str,
          category: Any = None, stack: bool = False) -> dict[str, Any]:
    """An ECharts option for `columns` of `table` over its first column."""
    names = category or (lambda v: i18n.label(v, lang))
    index = {c: i for i, c in enumerate(table.columns)}
    return {
        "aria": {"enabled": True},
        "color": SERIES_COLOURS,
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0},
        "grid": {"left": 48, "right": 16, "top": 40, "bottom": 56, "containLabel": True},
        "xAxis": {"type": "category", "data": [names(r[0]) for r in table.rows],
                  "axisLabel": {"interval": 0 if kind == "bar" else "auto",
                                "rotate": 30 if len(table.rows) > 5 else 0}},
        "yAxis": {"type": "value"},
        "series": [
            {"name": i18n.label(c, lang), "type": kind,
             "data": [r[index[c]] for r in table.rows],
             **({"stack": "all"} if stack else {}),
             **({"showSymbol": False} if kind == "line" else {})}
            for c in columns
        ],
    }


def block(key: str, table: Table, option: dict[str, Any] | None, lang: str,
          percent_columns: tuple[str, ...] = ()) -> dict[str, Any]:
    """A section of a page: its heading, an optional chart and the same numbers as a table."""
    rows = [
        [i18n.percent(v, lang) if table.columns[i] in percent_columns else
         (i18n.label(v, lang) if i == 0 or isinstance(v, str) else i18n.number(v, lang))
         for i, v in enumerate(r)]
        for r in table.rows
    ]
    return {"id": key.replace("_", "-"), "title": i18n.text(key, lang), "chart": option,
            "columns": [i18n.text(c, lang) if c in i18n.TEXTS or c in i18n.FLAG_NAMES
                        else i18n.label(c, lang) for c in table.columns],
            "rows": rows}


def _today(request: Request) -> date:
    """The date a page shows when none is asked for (`serve --as-of`, else today)."""
    chosen: date | None = request.app.state.default_as_of
    return chosen or date.today()


@router.get("/", response_class=HTMLResponse)
def overview(
    request: Request, shared: Shared,
    who: Annotated[Identity, Depends(require(Action.AGGREGATES))],
    as_of: date | None = None, lang: Lang = "da",
) -> HTMLResponse:
    day = as_of or _today(request)
    report = shared.report("headline", (day,), lambda: services.headline(shared.engine, day))
    found = {t.name: tables.seen_by(t, who) for t in tables.headline_tables(report)}
    first = years_before(day, 5).replace(day=1)
    points = shared.report("trend", (first, day),
                           lambda: services.monthly_trend(shared.engine, first, day))
    trend = tables.seen_by(tables.trend_tables(points)[0], who)
    trend_names = {"true_over_3": "true", "naive_over_3": "naive"}
    trend_option = chart(trend, ["on_benefit", "true_over_3", "naive_over_3"], "line", lang,
                         category=lambda v: i18n.day(v, lang))
    for series, column in zip(trend_option["series"], ["on_benefit", *trend_names], strict=True):
        if column in trend_names:
            series["name"] = f"{i18n.text(trend_names[column], lang)} > 3"
    kinds = found["missed_by_break"].columns[1:]
    blocks = [
        block("buckets", found["buckets"],
              chart(found["buckets"], ["true", "naive"], "bar", lang), lang),
        block("cohorts", found["cohorts"],
              chart(found["cohorts"], ["true", "cash_system", "naive", "missed_by_naive"], "bar",
                    lang, category=lambda v: f"> {v}"), lang),
        block("missed_by_break", found["missed_by_break"],
              chart(found["missed_by_break"], kinds, "bar", lang,
                    category=lambda v: f"> {v}", stack=True), lang),
        block("trend", trend, trend_option, lang),
    ]
    return page(request, "overview.html", lang, as_of=day, report=report, blocks=blocks,
                trend_from=first, cohort_years=COHORT_YEARS)


@router.get("/samarbejde", response_class=HTMLResponse)
def coordination(
    request: Request, shared: Shared,
    who: Annotated[Identity, Depends(require(Action.AGGREGATES))],
    as_of: date | None = None, lang: Lang = "da",
) -> HTMLResponse:
    day = as_of or _today(request)
    report = shared.report("coordination", (day, 3),
                           lambda: services.coordination_summary(shared.engine, day))
    found = {t.name: tables.seen_by(t, who) for t in tables.coordination_tables(report)}
    groups = Table("by_target_group", found["by_target_group"].columns,
                   found["by_target_group"].rows[:-1])
    blocks = [
        block("by_target_group", found["by_target_group"],
              chart(groups, ["citizens", "faellesborgere"], "bar", lang), lang, ("share",)),
        block("by_step", found["by_step"], chart(found["by_step"], ["faellesborgere"], "bar", lang,
                                                 category=str),
              lang, ("edge_of_labour_market_share",)),
        block("flags", found["flags"], chart(found["flags"], ["citizens"], "bar", lang), lang),
        block("by_intervention", found["by_intervention"], None, lang),
    ]
    return page(request, "report.html", lang, as_of=day, blocks=blocks,
                title=i18n.text("coordination_title", lang), action="/samarbejde")


@router.get("/stroemme", response_class=HTMLResponse)
def flows(
    request: Request, shared: Shared,
    who: Annotated[Identity, Depends(require(Action.AGGREGATES))],
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None, lang: Lang = "da",
) -> HTMLResponse:
    end = last or _today(request)
    start = first or date(end.year - 5, 1, 1)
    if end < start:
        raise HTTPException(422, "`to` is before `from`")
    report = shared.report("flows", (start, end), lambda: services.flows(shared.engine, start, end))
    found = {t.name: tables.seen_by(t, who) for t in tables.flows_tables(report)}
    inflow = found["inflow"]
    blocks = [
        block("inflow", inflow, chart(inflow, inflow.columns[1:], "bar", lang, category=str), lang),
        block("awaiting_flexjob", found["awaiting_flexjob"],
              chart(found["awaiting_flexjob"], ["citizens"], "line", lang,
                    category=lambda v: i18n.day(v, lang)), lang),
    ]
    return page(request, "report.html", lang, blocks=blocks, first=start, last=end,
                title=i18n.text("flows_title", lang), action="/stroemme")


# --- The councils' reports -------------------------------------------------------------


def _field(name: str, key: str, value: Any, kind: str = "date") -> dict[str, Any]:
    """One input of a report's form: its name, its label's key, its value, its input type."""
    shown = value.isoformat() if isinstance(value, date) else ("" if value is None else value)
    return {"name": name, "key": key, "value": shown, "type": kind}


@router.get("/afgange", response_class=HTMLResponse)
def exits(
    request: Request, shared: Shared,
    who: Annotated[Identity, Depends(require(Action.AGGREGATES))],
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    as_of: date | None = None, lang: Lang = "da",
) -> HTMLResponse:
    day = as_of or _today(request)
    end = last or day
    start = first or date(end.year - 5, 1, 1)
    if end < start:
        raise HTTPException(422, "`to` is before `from`")
    rows = shared.report("exits", (start, end, day),
                         lambda: services.exits(shared.engine, start, end, day))
    found = {t.name: tables.seen_by(t, who) for t in tables.exits_tables(rows)}
    blocks = [
        block(name, found[name],
              chart(found[name], found[name].columns[1:], "bar", lang, category=str, stack=True),
              lang)
        for name in ("by_destination", "by_target_group")
    ]
    return page(request, "report.html", lang, blocks=blocks, title=i18n.text("exits_title", lang),
                action="/afgange", lead=i18n.text("exits_lead", lang),
                fields=[_field("from", "period_from", start), _field("to", "period_to", end),
                        _field("as_of", "known_as_of", day)],
                shown=f"{i18n.day(start, lang)} – {i18n.day(end, lang)}, "
                      f"{i18n.text('known_as_of', lang).lower()} {i18n.day(day, lang)}")


@router.get("/kohorte", response_class=HTMLResponse)
def cohort(
    request: Request, shared: Shared,
    who: Annotated[Identity, Depends(require(Action.AGGREGATES))],
    on: date | None = None, min_years: Annotated[int | None, Query(ge=0, le=100)] = None,
    lang: Lang = "da",
) -> HTMLResponse:
    day = on or years_before(_today(request), 2)
    criteria = services.CohortCriteria(min_years=min_years)
    months = DEFAULT_HORIZONS
    members, rows = shared.report("cohort", (day, criteria, months),
                                  lambda: services.cohort(shared.engine, day, criteria, months))
    outcomes = sorted({(r["outcome"], r["destination"] or "") for r in rows})
    names = [f"{o}:{d}" if d else o for o, d in outcomes]
    counts = {(r["horizon_months"], r["outcome"], r["destination"] or ""): r["citizens"]
              for r in rows}
    by_horizon = tables.seen_by(Table("by_horizon", ["horizon_months", *names], [
        [h, *(counts.get((h, o, d), 0) for o, d in outcomes)] for h in months]), who)
    option = chart(by_horizon, names, "bar", lang, stack=True,
                   category=lambda v: f"{v} {i18n.text('months', lang)}")
    for series, (o, d) in zip(option["series"], outcomes, strict=True):
        series["name"] = i18n.text(d, lang) if d else i18n.text(o, lang)
    detail = tables.seen_by(tables.cohort_tables(day, members, rows)[1], who)
    blocks = [block("by_horizon", by_horizon, option, lang),
              block("outcomes", detail, None, lang, ("share",))]
    return page(request, "report.html", lang, blocks=blocks,
                title=i18n.text("cohort_title", lang), action="/kohorte",
                lead=i18n.text("cohort_lead", lang),
                fields=[_field("on", "cohort_date", day),
                        _field("min_years", "min_years", min_years, "number")],
                shown=f"{i18n.text('cohort_date', lang)} {i18n.day(day, lang)}: "
                      f"{i18n.number(tables.count_seen_by(members, who), lang)} "
                      f"{i18n.text('citizens', lang).lower()}",
                members=members)


@router.get("/sagsbehandling", response_class=HTMLResponse)
def casework(
    request: Request, shared: Shared,
    who: Annotated[Identity, Depends(require(Action.AGGREGATES))],
    as_of: date | None = None, lang: Lang = "da",
) -> HTMLResponse:
    day = as_of or _today(request)
    load = shared.report("caseload", (day,), lambda: services.caseload(shared.engine, day))
    summary = shared.report("cadence", (day,), lambda: services.cadence_summary(shared.engine, day))
    months = CONTINUITY_MONTHS
    continuity = shared.report("continuity", (day, months),
                               lambda: list(services.continuity(shared.engine, day, months)))
    distribution = tables.seen_by(tables.caseload_tables(load)[0], who)
    cadence = tables.seen_by(tables.cadence_tables(summary)[0], who)
    groups = Table(cadence.name, cadence.columns, cadence.rows[:-1])
    workers = tables.seen_by(tables.continuity_tables(continuity)[0], who)
    blocks = [
        block("distribution", distribution,
              chart(distribution, ["caseworkers"], "bar", lang, category=str), lang),
        block("by_status", cadence, chart(groups, cadence.columns[1:], "bar", lang, stack=True),
              lang),
        block("by_caseworkers", workers,
              chart(workers, ["citizens"], "bar", lang, category=str), lang),
    ]
    return page(request, "report.html", lang, as_of=day, blocks=blocks,
                title=i18n.text("casework_title", lang), action="/sagsbehandling",
                lead=i18n.text("casework_lead", lang))


@router.get("/lister", response_class=HTMLResponse)
def lists(
    request: Request, shared: Shared,
    who: Annotated[Identity, Depends(require(Action.PER_CITIZEN_ROWS))],
    as_of: date | None = None, years: Annotated[int, Query(ge=0, le=100)] = 15,
    purpose: str = "", lang: Lang = "da",
) -> HTMLResponse:
    """The prioritisation lists, shown once a purpose is given (the read is logged first)."""
    day = as_of or _today(request)
    fields = [_field("as_of", "as_of", day), _field("years", "years", years, "number"),
              _field("purpose", "purpose", purpose.strip(), "text")]
    if len(purpose.strip()) < 3:
        return page(request, "report.html", lang, blocks=[],
                    title=i18n.text("lists_title", lang), action="/lister",
                    lead=i18n.text("lists_lead", lang), fields=fields,
                    shown=i18n.text("lists_purpose", lang))
    log_rows(request, who, purpose.strip())
    long = shared.report("long_durations", (day, years, False), lambda: list(
        services.long_durations(shared.engine, day, years, False)))
    pool = shared.report("clarification_pool", (day,), lambda: list(
        services.clarification_pool(shared.engine, day)))
    def day_of(value: Any) -> Any:
        return date.fromisoformat(value) if isinstance(value, str) else value

    long_columns = ["citizen_key", "spell_start", "spell_days", "naive_days"]
    pool_columns = ["citizen_key", "all_benefits_spell_start", "share_last_10y_cash_system",
                    "age", "target_group"]
    blocks = [
        block("long_durations", Table("long_durations", long_columns, [
            [day_of(r[c]) if c.endswith("_start") else r[c] for c in long_columns] for r in long
        ]), None, lang),
        block("clarification_pool", Table("clarification_pool", pool_columns, [
            [day_of(r[c]) if c.endswith("_start") else r[c] for c in pool_columns] for r in pool
        ]),
              None, lang, ("share_last_10y_cash_system",)),
    ]
    return page(request, "report.html", lang, blocks=blocks,
                title=i18n.text("lists_title", lang), action="/lister",
                lead=i18n.text("lists_lead", lang), fields=fields,
                shown=f"{i18n.text('as_of', lang)} {i18n.day(day, lang)}: "
                      f"{i18n.number(len(long), lang)} / {i18n.number(len(pool), lang)}")


# --- Citizens ----------------------------------------------------------------------------


@router.get("/borger", response_class=HTMLResponse)
def citizen_search(
    request: Request, _: Annotated[Identity, Depends(require(Action.VIEW_CITIZEN))],
    lang: Lang = "da",
) -> HTMLResponse:
    return page(request, "citizen_search.html", lang, today=_today(request), error=None)


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise HTTPException(422, "give the moment with Z or an explicit offset")
    return moment


def _citizen_page(request: Request, story: services.CitizenStory, purpose: str,
                  lang: str) -> HTMLResponse:
    return page(request, "citizen.html", lang, story=story, purpose=purpose,
                svg=Markup(timeline_svg.render(story, lang)),
                legend=list(timeline_svg.legend(story, lang).values()),
                measures=tables.duration_record(story.citizen_key, story.measures))


@router.post("/borger", response_class=HTMLResponse)
def citizen_lookup(
    request: Request, shared: Shared,
    who: Annotated[Identity, Depends(require(Action.VIEW_CITIZEN))],
    purpose: Annotated[str, Form(min_length=3)],
    cpr: Annotated[str, Form()] = "", citizen_key: Annotated[str, Form()] = "",
    as_of: Annotated[str, Form()] = "", known_at: Annotated[str, Form()] = "",
    lang: Annotated[str, Form(pattern="^(da|en)$")] = "da",
) -> Response:
    """By CPR or pseudonym, from the form's body (so no CPR is ever in a URL or log line)."""
    day = date.fromisoformat(as_of) if as_of else _today(request)
    number = cpr.replace("-", "").strip()
    if number:
        try:
            birth_date(number)
        except InvalidCpr:
            return page(request, "citizen_search.html", lang, today=day, error="cpr")
        key, criterion = services.citizen_key_of(shared.engine, number), "cpr"
    elif citizen_key.strip():
        key, criterion = citizen_key.strip().lower(), "citizen_key"
    else:
        return page(request, "citizen_search.html", lang, today=day, error="cpr")
    try:
        story = show_citizen(shared, who, key, criterion, purpose, day, _moment(known_at))
    except HTTPException as error:
        if error.status_code != 404:
            raise
        return page(request, "citizen_search.html", lang, today=day, error="not_found")
    return _citizen_page(request, story, purpose, lang)


@router.get("/borger/{citizen_key}", response_class=HTMLResponse)
def citizen(
    request: Request, shared: Shared, citizen_key: str,
    who: Annotated[Identity, Depends(require(Action.VIEW_CITIZEN))],
    purpose: Annotated[str, Query(min_length=3)],
    as_of: date | None = None, known_at: str | None = None, lang: Lang = "da",
) -> HTMLResponse:
    story = show_citizen(shared, who, citizen_key, "citizen_key", purpose, as_of,
                         _moment(known_at))
    return _citizen_page(request, story, purpose, lang)


# --- Operations, the access log, the API docs ------------------------------------------


@router.get("/drift", response_class=HTMLResponse)
def operations(
    request: Request, shared: Shared,
    _: Annotated[Identity, Depends(require(Action.OPERATE))], lang: Lang = "da",
    reconcile: bool = False,
) -> HTMLResponse:
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for metric in shared.metrics.registry.collect():
        for sample in metric.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    head, statuses = services.read_model_status(shared.engine)
    return page(request, "operations.html", lang, samples=samples, head=head, statuses=statuses,
                kafka=shared.engine.settings.kafka_bootstrap,
                reconciliation=services.reconciliation(shared.engine) if reconcile else None)


@router.get("/opslag", response_class=HTMLResponse)
def access_log(
    request: Request, shared: Shared,
    _: Annotated[Identity, Depends(require(Action.LOOKUP_LOG))], lang: Lang = "da",
) -> HTMLResponse:
    log = shared.engine.lookup_log
    records = log.records()[-500:]
    return page(request, "access_log.html", lang, records=list(reversed(records)),
                intact=not any(log.problems()))


@router.get("/docs", response_class=HTMLResponse)
def api_docs(
    request: Request, _: Annotated[Identity, Depends(require(Action.API_DOCS))],
    lang: Lang = "da",
) -> HTMLResponse:
    return page(request, "docs.html", lang)


@router.get("/metrics")
def metrics(
    shared: Shared, _: Annotated[Identity, Depends(require(Action.OPERATE))],
) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(shared.metrics.registry), media_type=CONTENT_TYPE_LATEST)
