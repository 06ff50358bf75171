"""The reports as one service layer, shared by the CLI, the read API and the dashboard.

Entrypoints parse input, call one function here and render what it returns. The
signatures are the stable part: today the functions compute from the per-citizen
read models in Python (`casehistory.services.report`, `casehistory.services.coordination_report`);
the read side will answer the same calls from SQL read models.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from casehistory.bootstrap import READ_MODEL, Engine
from casehistory.domain.cadence import CadenceStatus
from casehistory.domain.caseload import CONTINUITY_MONTHS
from casehistory.domain.coordination import Coordination, coordination_on
from casehistory.domain.durations import Durations, benefit_spells, durations_on, over_years
from casehistory.domain.exits import DEFAULT_HORIZONS
from casehistory.domain.facts import Fact
from casehistory.domain.spells import Spell, gap_breaks_spell, months_later, years_before
from casehistory.domain.timeline import Period, Timeline, build_timeline, effective_facts
from casehistory.projections import council_queries, queries
from casehistory.projections.council_queries import cadence_records, caseload_counts
from casehistory.projections.queries import coordination_records, durations_records
from casehistory.projections.rows import LONG_SPELL_YEARS
from casehistory.projections.trend import trend_counts
from casehistory.services import coordination_report, council_report, report
from casehistory.services.coordination_report import CoordinationSummary, Flows, YearlyMapping
from casehistory.services.council_report import (
    CadenceSummary,
    CaseloadReport,
    CohortCriteria,
    caseload_report,
)
from casehistory.services.report import Headline, break_kinds

if TYPE_CHECKING:
    from casehistory.consumers.reconcile import Reconciliation

DURATION_ORDERS = ("citizen_key", "longest")


def all_durations(engine: Engine, as_of: date) -> Iterator[tuple[str, Durations]]:
    """Every citizen's measures on `as_of`, by pseudonym (computed by the read model's SQL)."""
    for r in durations_records(engine.read_model(), as_of):
        yield r["citizen_key"], _durations(r, as_of)


def _durations(r: dict[str, Any], as_of: date) -> Durations:
    def day(name: str) -> date | None:
        return date.fromisoformat(r[name]) if r[name] else None

    return Durations(
        as_of=as_of,
        on_benefit=r["on_benefit"],
        all_benefits_spell_start=day("all_benefits_spell_start"),
        all_benefits_spell_days=r["all_benefits_spell_days"],
        cash_system_spell_start=day("cash_system_spell_start"),
        cash_system_spell_days=r["cash_system_spell_days"],
        benefit_days_in_spell=r["benefit_days_in_spell"],
        breaks_bridged=r["breaks_bridged"],
        naive_days=r["naive_days"],
        share_last_10y_cash_system=r["share_last_10y_cash_system"],
        age=r["age"],
        target_group=r["target_group"],
    )


def headline(engine: Engine, as_of: date) -> Headline:
    """Buckets and cohorts, true versus naive, and what the naive measure misses (SQL)."""
    return report.headline_from(engine.read_model(), as_of)


@dataclass(frozen=True)
class DurationFilters:
    """Which citizens a durations page holds; None means any."""

    on_benefit: bool | None = None
    target_group: str | None = None
    over_years: int | None = None
    """Only citizens whose all-benefits spell started more than this many years before."""
    break_kind: str | None = None
    """Only citizens whose current spell bridged a break of this kind."""

    def admits(self, d: Durations) -> bool:
        if self.on_benefit is not None and d.on_benefit != self.on_benefit:
            return False
        if self.target_group is not None and d.target_group != self.target_group:
            return False
        if self.over_years is not None and (
            d.all_benefits_spell_start is None
            or not over_years(d.all_benefits_spell_start, d.as_of, self.over_years)
        ):
            return False
        return self.break_kind is None or self.break_kind in {k.value for k in break_kinds(d)}


@dataclass
class DurationsPage:
    as_of: date
    total: int
    """Citizens matching the filters (all pages)."""
    offset: int
    limit: int
    rows: list[tuple[str, Durations]]


def durations_page(
    engine: Engine,
    as_of: date,
    offset: int = 0,
    limit: int = 100,
    filters: DurationFilters | None = None,
    order: str = "citizen_key",
) -> DurationsPage:
    """One page of per-citizen measures on `as_of` (by pseudonym, never a CPR)."""
    chosen = filters or DurationFilters()
    matching = [(k, d) for k, d in all_durations(engine, as_of) if chosen.admits(d)]
    if order == "longest":
        matching.sort(key=lambda item: (-(item[1].all_benefits_spell_days or -1), item[0]))
    else:
        matching.sort(key=lambda item: item[0])
    return DurationsPage(as_of, len(matching), offset, limit, matching[offset : offset + limit])


def coordination_summary(
    engine: Engine, as_of: date, long_spell_years: int = LONG_SPELL_YEARS
) -> CoordinationSummary:
    """Fællesborgere by target group and support step, interventions and flags."""
    return coordination_report.summary_from(engine.read_model(), as_of, long_spell_years)


@dataclass(frozen=True)
class CoordinationFilters:
    """Which citizens a coordination page holds; None means any."""

    faellesborger: bool | None = None
    flag: str | None = None
    target_group: str | None = None

    def admits(self, c: Coordination) -> bool:
        if self.faellesborger is not None and c.is_faellesborger != self.faellesborger:
            return False
        if self.flag is not None and self.flag not in c.flags:
            return False
        return self.target_group is None or c.target_group == self.target_group


@dataclass
class CoordinationPage:
    as_of: date
    total: int
    offset: int
    limit: int
    rows: list[tuple[str, Coordination]]


def coordination_page(
    engine: Engine,
    as_of: date,
    offset: int = 0,
    limit: int = 100,
    filters: CoordinationFilters | None = None,
    long_spell_years: int = LONG_SPELL_YEARS,
) -> CoordinationPage:
    """One page of per-citizen coordination on `as_of`, by pseudonym."""
    chosen = filters or CoordinationFilters()
    matching = [
        (r["citizen_key"], c)
        for r in coordination_records(engine.read_model(), as_of, long_spell_years)
        if chosen.admits(c := _coordination(r, as_of))
    ]
    return CoordinationPage(as_of, len(matching), offset, limit, matching[offset : offset + limit])


def _coordination(r: dict[str, Any], as_of: date) -> Coordination:
    """A per-citizen SQL record as the domain's value (flags by name; their event ids are
    on the citizen's own page)."""
    return Coordination(
        as_of=as_of,
        is_faellesborger=r["is_faellesborger"],
        support_step=r["support_step"],
        interventions=tuple(r["interventions"]),
        flags={name: () for name in r["flags"]},
        target_group=r["target_group"],
        age=r["age"],
    )


def yearly_mapping(engine: Engine, year: int) -> YearlyMapping:
    """The yearly fællesborger figure as the city mapped it."""
    return coordination_report.yearly_from(engine.read_model(), year)


def flows(engine: Engine, first: date, last: date) -> Flows:
    """Inflow per half-year and citizens awaiting a flexjob, `first` to `last`."""
    return coordination_report.flows_from(engine.read_model(), first, last)


def long_durations(
    engine: Engine, as_of: date, years: int, cash_system: bool = False
) -> Iterator[dict[str, Any]]:
    """Citizens on benefit with a spell over `years` years, longest first, with the evidence."""
    return queries.long_durations(engine.read_model(), as_of, years, cash_system=cash_system)


def clarification_pool(engine: Engine, as_of: date) -> Iterator[dict[str, Any]]:
    """Afklaringspuljen on `as_of`: each member's per-citizen durations."""
    return queries.clarification_pool(engine.read_model(), as_of)


@dataclass(frozen=True)
class TrendPoint:
    """The headline's main figures on one day."""

    day: date
    on_benefit: int
    true_over: dict[int, int]
    naive_over: dict[int, int]


def monthly_trend(engine: Engine, first: date, last: date) -> list[TrendPoint]:
    """On benefit and over N years (true and naive) on the first of each month in range,
    counted by one SQL query over the read model."""
    days = list(coordination_report.months(first, last))
    counts = trend_counts(engine.read_model(), days)
    return [TrendPoint(day, *counts[day]) for day in days]


# --- One citizen's story ---------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    """Unpaid days `[start, end)` between two runs of a spell, and why they did not break it."""

    start: date
    end: date
    days: int
    breaks_spell: bool
    why: str


@dataclass(frozen=True)
class StorySpell:
    start: date
    end: date | None
    """The first unpaid day; None while the spell pays `as_of`."""
    calendar_days: int
    paid_days: int
    runs: list[tuple[date, date]]
    gaps: list[Gap]
    breaks: list[Period]
    """Benefit periods that ended inside the spell (the breaks it bridged)."""
    municipalities: list[str]
    benefits: list[str]
    target_groups: list[str]


@dataclass(frozen=True)
class Why:
    """A number, the rule that gives it and the events behind it."""

    measure: str
    value: Any
    rule: str
    event_ids: list[str] = field(default_factory=list)


@dataclass
class CitizenStory:
    citizen_key: str
    birth_date: date
    as_of: date
    known_at: datetime | None
    facts: list[tuple[Fact, str]]
    """Every recorded fact in arrival order with its status (standing, void, not yet known)."""
    timeline: Timeline
    periods: list[Period]
    interventions: list[Period]
    spells: list[StorySpell]
    cash_spells: list[StorySpell]
    measures: Durations
    coordination: Coordination
    why: list[Why]


def _gap_why(start: date, end: date) -> str:
    if gap_breaks_spell(start, end):
        return "a whole calendar month lies inside the gap, so it ends the spell"
    return "no whole calendar month lies inside the gap, so the month rule joins the runs"


def _story_spell(spell: Spell, periods: list[Period], timeline: Timeline, day: date) -> StorySpell:
    inside = [
        p for p in periods if p.start < spell.end and (p.stop is None or p.stop > spell.start)
    ]
    gaps = [
        Gap(a.end, b.start, (b.start - a.end).days, False, _gap_why(a.end, b.start))
        for a, b in zip(spell.runs, spell.runs[1:], strict=False)
    ]
    ongoing = spell.end > day
    return StorySpell(
        start=spell.start,
        end=None if ongoing else spell.end,
        calendar_days=(min(spell.end, day) - spell.start).days,
        paid_days=spell.paid_days,
        runs=[(r.start, r.end) for r in spell.runs],
        gaps=gaps,
        breaks=[
            p for p in inside
            if p.stop is not None and spell.start < p.stop <= min(spell.end, day)
        ],
        municipalities=sorted({p.municipality for p in inside}),
        benefits=sorted({p.code for p in inside}),
        target_groups=sorted(
            {a.target_group for a in timeline.group_assignments
             if spell.start <= a.effective_date < spell.end and a.effective_date <= day}
        ),
    )


def _why(
    d: Durations, periods: list[Period], current: StorySpell | None, timeline: Timeline,
    born: date,
) -> list[Why]:
    day = d.as_of
    open_now = [p for p in periods if p.covers(day)]
    found: list[Why] = [
        Why("on_benefit", d.on_benefit,
            "day D itself is paid by some benefit period [start, stop)",
            [p.start_event_id for p in open_now]),
    ]
    if current is not None:
        starters = [p.start_event_id for p in periods if p.start == current.start]
        found += [
            Why("all_benefits_spell_start", d.all_benefits_spell_start,
                "first day of the run that starts the current spell (runs joined across gaps "
                "without a whole empty calendar month)", starters),
            Why("all_benefits_spell_days", d.all_benefits_spell_days,
                f"D − spell start = {day.isoformat()} − {current.start.isoformat()}", starters),
            Why("benefit_days_in_spell", d.benefit_days_in_spell,
                "paid days from the spell start up to and including D, overlapping periods "
                "counted once", [p.start_event_id for p in periods
                                 if p.stop is None or p.stop > current.start]),
            Why("breaks_bridged", dict(d.breaks_bridged),
                "benefit periods that ended inside the current spell (after its start, on or "
                "before D), by stop reason",
                [p.stop_event_id for p in current.breaks if p.stop_event_id]),
        ]
    if d.naive_days is not None:
        latest = max(open_now, key=lambda p: p.start)
        found.append(Why("naive_days", d.naive_days,
                         "D − the latest start among periods open at D "
                         f"({latest.start.isoformat()})",
                         [latest.start_event_id]))
    window = years_before(day, 10)
    found.append(Why("share_last_10y_cash_system", round(d.share_last_10y_cash_system, 6),
                     f"paid cash-benefit-system days in ({window.isoformat()}, {day.isoformat()}] "
                     "divided by the window's days",
                     [p.start_event_id for p in periods if p.stop is None or p.stop > window]))
    assignments = [a for a in timeline.group_assignments if a.effective_date <= day]
    found.append(Why("target_group", d.target_group,
                     "the latest assignment by effective date (ties: later recorded), reported "
                     "only while on a job-centre benefit",
                     [assignments[-1].event_id] if assignments else []))
    found.append(Why("age", d.age, f"from the CPR's birth date {born.isoformat()}", []))
    return found


def citizen_story(
    engine: Engine, citizen_key: str, as_of: date, known_at: datetime | None = None
) -> CitizenStory | None:
    """One citizen's history, spells and measures on `as_of` as known at `known_at`."""
    citizen = engine.find(citizen_key)
    if citizen is None:
        return None
    standing = {f.event_id for f in effective_facts(citizen.facts, known_at)}
    facts: list[tuple[Fact, str]] = []
    for fact in citizen.facts:
        if known_at is not None and fact.recorded_at > known_at:
            status = "not_yet_known"
        elif fact.event_id in standing:
            status = "standing"
        else:
            status = "void"
        facts.append((fact, status))
    timeline = build_timeline(citizen.facts, known_at)
    periods = list(timeline.periods_on(as_of))
    spells = [_story_spell(s, periods, timeline, as_of) for s in benefit_spells(periods, as_of)]
    cash = [
        _story_spell(s, periods, timeline, as_of)
        for s in benefit_spells(periods, as_of, cash_system_only=True)
    ]
    measures = durations_on(timeline, as_of, citizen.birth_date)
    current = spells[-1] if spells and measures.on_benefit else None
    return CitizenStory(
        citizen_key=citizen_key,
        birth_date=citizen.birth_date,
        as_of=as_of,
        known_at=known_at,
        facts=facts,
        timeline=timeline,
        periods=periods,
        interventions=list(timeline.interventions_on(as_of)),
        spells=spells,
        cash_spells=cash,
        measures=measures,
        coordination=coordination_on(timeline, as_of, citizen.birth_date),
        why=_why(measures, periods, current, timeline, citizen.birth_date),
    )


def citizen_key_of(engine: Engine, cpr: str) -> str:
    """The pseudonym of a CPR number (the CPR itself goes no further)."""
    return engine.vault.citizen_key(cpr)


@dataclass(frozen=True)
class ReadModelStatus:
    name: str
    position: int
    """The last notification id applied to the read model."""
    lag: int
    """Notifications stored but not yet applied."""


def read_model_status(engine: Engine) -> tuple[int, list[ReadModelStatus]]:
    """The event store's last notification id and how far each read model has come."""
    head = sum(app.recorder.max_notification_id() or 0 for app in engine.stores.values())
    position = engine.read_model().position()
    return head, [ReadModelStatus(READ_MODEL, position, head - position)]


def reconciliation(engine: Engine) -> Reconciliation | None:
    """`casehistory reconcile`: every offset of the input topic stored, duplicate or
    dead-lettered (None when Kafka is not configured)."""
    from casehistory.consumers.reconcile import reconcile

    settings = engine.settings
    if not settings.kafka_bootstrap:
        return None
    return reconcile(settings.kafka_bootstrap, settings.kafka_topic, settings.kafka_group,
                     lambda: engine.ledger(settings.kafka_topic + ":"))


__all__ = [
    "CADENCE_ATTENTION",
    "DURATION_ORDERS",
    "CitizenStory",
    "CohortCriteria",
    "CoordinationFilters",
    "CoordinationPage",
    "DurationFilters",
    "DurationsPage",
    "all_durations",
    "cadence_clocks",
    "cadence_summary",
    "caseload",
    "citizen_key_of",
    "citizen_story",
    "cohort",
    "cohort_by_municipality",
    "continuity",
    "coordination_page",
    "coordination_summary",
    "durations_page",
    "exits",
    "flows",
    "headline",
    "monthly_trend",
    "read_model_status",
    "reconciliation",
    "yearly_mapping",
]


def caseload(engine: Engine, as_of: date) -> CaseloadReport:
    """Citizens per caseworker and unit on `as_of`, with the distribution over the lines."""
    return caseload_report(as_of, caseload_counts(engine.read_model(), as_of))


def cadence_clocks(engine: Engine, as_of: date) -> Iterator[dict[str, Any]]:
    """Each citizen's contact clock on `as_of` (deadline, last counting meeting, status)."""
    return cadence_records(engine.read_model(), as_of)


CADENCE_ATTENTION = (CadenceStatus.OVERDUE.value, CadenceStatus.DUE_SOON.value)
"""The statuses a per-citizen cadence list shows unless asked for all."""


def cadence_summary(engine: Engine, as_of: date) -> CadenceSummary:
    """Citizens under the cadence rule on `as_of` by status, per target group and in total."""
    return council_report.cadence_summary(as_of, cadence_records(engine.read_model(), as_of))


def exits(engine: Engine, first: date, last: date, as_of: date) -> list[dict[str, Any]]:
    """Exits with E in [first, last] known as of `as_of`, per half-year, destination and group."""
    return council_report.exit_rows(council_queries.exit_counts(
        engine.read_model(), first, last, as_of))


def cohort(
    engine: Engine,
    cohort_date: date,
    criteria: CohortCriteria,
    horizons: tuple[int, ...] = DEFAULT_HORIZONS,
) -> tuple[int, list[dict[str, Any]]]:
    """The cohort's size on C and its outcomes at C + each horizon (months), counts and shares.

    Membership is read off the per-citizen durations SQL on C, outcomes off the exits table.
    """
    store = engine.read_model()
    members = _cohort_members(store, cohort_date, criteria)
    results = [(months, horizon, Counter(outcome[key] for key in members))
               for months, horizon, outcome in _outcomes(store, cohort_date, horizons, members)]
    return len(members), council_report.cohort_rows(len(members), results)


def cohort_by_municipality(
    engine: Engine,
    cohort_date: date,
    criteria: CohortCriteria,
    horizons: tuple[int, ...] = DEFAULT_HORIZONS,
) -> list[dict[str, Any]]:
    """`cohort` once per municipality paying a member on C: rows with `municipality` and
    `members` (the municipality's cohort size) first. A citizen paid by two counts in both."""
    store = engine.read_model()
    members = _cohort_members(store, cohort_date, criteria)
    paying = council_queries.paying_municipalities(store, cohort_date)
    outcomes = _outcomes(store, cohort_date, horizons, members)
    rows = []
    for municipality in sorted({m for key in members for m in paying.get(key, ())}):
        group = [key for key in members if municipality in paying.get(key, ())]
        results = [(months, horizon, Counter(outcome[key] for key in group))
                   for months, horizon, outcome in outcomes]
        rows += [{"municipality": municipality, "members": len(group), **row}
                 for row in council_report.cohort_rows(len(group), results)]
    return rows


def _cohort_members(store: Any, cohort_date: date, criteria: CohortCriteria) -> set[str]:
    members = {
        r["citizen_key"] for r in durations_records(store, cohort_date)
        if criteria.admits(r, cohort_date)
    }
    if criteria.municipality is not None:
        paying = council_queries.paying_municipalities(store, cohort_date)
        members = {k for k in members if criteria.municipality in paying.get(k, ())}
    return members


def _outcomes(
    store: Any, cohort_date: date, horizons: tuple[int, ...], members: set[str]
) -> list[tuple[int, date, dict[str, tuple[str, str | None]]]]:
    """Per horizon: each member's (outcome, destination) at C + that many months."""
    found = []
    for months in horizons:
        horizon = months_later(cohort_date, months)
        outcome = {
            key: ("exited" if destination else "on_benefit" if paid else "neither", destination)
            for key, destination, _exit, paid in council_queries.outcome_records(
                store, cohort_date, horizon)
            if key in members
        }
        found.append((months, horizon, outcome))
    return found


def continuity(engine: Engine, as_of: date, months: int = CONTINUITY_MONTHS) -> Iterator[
    dict[str, Any]
]:
    """Per citizen with any: the caseworkers in force on some day of the last `months` months."""
    for key, workers in council_queries.continuity_records(engine.read_model(), as_of, months):
        yield {"citizen_key": key, "caseworkers": len(workers), "caseworker_ids": workers}
