"""Differential test: the read model's any-date SQL equals the pure rules, citizen by citizen.

Generated histories (several benefit keys, overlapping sources, findings, target-group
assignments, interventions, retractions) are written as the read model's rows, then
every per-citizen durations and coordination answer that SQL gives for many dates
(month boundaries, 29 February, every period edge) is held equal to
`domain.durations.durations_on` and `domain.coordination.coordination_on`, and the
headline report to `casehistory.services.report.headline` over the domain's values. Runs on
SQLite and on a real PostgreSQL server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casehistory.domain import reference
from casehistory.domain.coordination import (
    benefit_months_in_year,
    coordination_on,
    yearly_faellesborger,
)
from casehistory.domain.durations import durations_on
from casehistory.domain.facts import EventType, Fact
from casehistory.domain.priorities import in_clarification_pool, long_duration, longest_first
from casehistory.domain.spells import union
from casehistory.domain.timeline import Period, build_timeline
from casehistory.projections.queries import (
    EXPORT_FIELDS,
    Dialect,
    clarification_pool,
    coordination_records,
    durations_lines,
    durations_of,
    durations_records,
    long_durations,
    share_json,
)
from casehistory.projections.rows import CitizenRows, rows_for
from casehistory.projections.store import PostgresReadModel, ReadModelStore, SQLiteReadModel
from casehistory.services.coordination_report import yearly_from
from casehistory.services.report import headline, headline_from
from tests.factories import fact, retraction
from tests.test_properties import ORIGIN, histories

GROUPS = ["aktivitetsparat_voksen", "jobparat", "uddannelsesparat", "ressourceforloeb",
          "aktivitetsparat_ung"]
INTERVENTIONS = [
    "sel_85_support", "sel_110_shelter", "child_placement", "sel_108_long_term_residence",
    "assistive_aids",
]
BIRTHS = [date(2000, 2, 29), date(1985, 5, 5), date(1999, 12, 31), date(1980, 3, 1)]
STAFF_KEY = bytes(range(32))
"""A fixed staff key for rows written straight from timelines."""
FIXED_DAYS = [date(2016, 2, 29), date(2015, 3, 1), date(2014, 1, 1), date(2013, 12, 31),
              date(2020, 2, 29), date(2017, 1, 31)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def read_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReadModelStore]:
    store: ReadModelStore
    if request.param == "postgres":
        store = PostgresReadModel(request.getfixturevalue("postgres_dsn"), "casehistory")
    else:
        store = SQLiteReadModel(tmp_path / "history.db", "casehistory")
    store.create()
    yield store
    store.close()


@st.composite
def citizen_facts(draw: st.DrawFn) -> list[Fact]:
    facts = draw(histories())
    for _ in range(draw(st.integers(0, 3))):
        day = ORIGIN + timedelta(days=draw(st.integers(0, 1500)))
        group = draw(st.sampled_from(GROUPS))
        facts.append(
            fact(EventType.TARGET_GROUP_CHANGED, day, to_group=group, reason="reassessment")
        )
    starts = [f for f in facts if f.event_type is EventType.BENEFIT_STARTED]
    if starts and draw(st.booleans()):  # a start that assigns a group
        chosen = draw(st.sampled_from(starts))
        facts[facts.index(chosen)] = chosen._replace(target_group=draw(st.sampled_from(GROUPS)))
    for _ in range(draw(st.integers(0, 3))):
        code = draw(st.sampled_from(INTERVENTIONS))
        day = ORIGIN + timedelta(days=draw(st.integers(0, 1500)))
        facts.append(fact(EventType.SOCIAL_INTERVENTION_STARTED, day, intervention=code))
        if draw(st.booleans()):
            end = day + timedelta(days=draw(st.integers(1, 700)))
            facts.append(fact(EventType.SOCIAL_INTERVENTION_ENDED, end, intervention=code))
    if facts and draw(st.booleans()):
        facts.append(retraction(draw(st.sampled_from(facts))))
    return facts


def _edges(facts: list[Fact]) -> set[date]:
    """Period edges, and the days on which a start lies exactly on a bucket or cohort line."""
    found: set[date] = set()
    for f in facts:
        e = f.effective_date
        found |= {e, e - timedelta(days=1), e + timedelta(days=182), e + timedelta(days=364)}
        found |= {_years_after(e, n) for n in (2, 3, 10)}
    return found


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February: its years_before image is 28 February
        return date(day.year + years, 2, 28)


def _durations(facts: list[Fact], born: date, day: date) -> dict[str, object]:
    d = durations_on(build_timeline(facts), day, born)
    spell, cash = d.all_benefits_spell_start, d.cash_system_spell_start
    return {
        "on_benefit": d.on_benefit,
        "all_benefits_spell_start": spell and spell.isoformat(),
        "all_benefits_spell_days": d.all_benefits_spell_days,
        "cash_system_spell_start": cash and cash.isoformat(),
        "cash_system_spell_days": d.cash_system_spell_days,
        "benefit_days_in_spell": d.benefit_days_in_spell,
        "breaks_bridged": dict(d.breaks_bridged),
        "naive_days": d.naive_days,
        "share_last_10y_cash_system": d.share_last_10y_cash_system,
        "age": d.age,
        "target_group": d.target_group,
    }


def _export_line(key: str, facts: list[Fact], born: date, day: date) -> str:
    """The citizen's line of `casehistory durations --per-citizen --format jsonl`: the rules'
    values as `json.dumps` writes them, breaks by reason, the share to six decimals."""
    d = durations_on(build_timeline(facts), day, born)
    line = {"citizen_key": key, **_durations(facts, born, day)} | {
        "breaks_bridged": dict(sorted(d.breaks_bridged.items())),
        "share_last_10y_cash_system": round(d.share_last_10y_cash_system, 6),
    }
    return json.dumps({name: line[name] for name in EXPORT_FIELDS}, ensure_ascii=False) + "\n"


def _run_bounds(scope: str, periods: Iterable[Period]) -> dict[str, str | None]:
    """The first run's start and the last one's stop (None while open) of `periods`."""
    runs = union((p.start, p.stop or date.max) for p in periods)
    stop = runs[-1].end if runs else date.max
    return {
        f"first_{scope}run_start": runs[0].start.isoformat() if runs else None,
        f"last_{scope}run_stop": None if stop == date.max else stop.isoformat(),
    }


def assert_current_state(store: ReadModelStore, key: str, facts: list[Fact], born: date) -> None:
    """The current-state rows equal the rules on the latest known effective date."""
    timeline = build_timeline(facts)
    last = max(f.effective_date for f in facts)
    d = durations_on(timeline, last, born)
    still_open = [p for p in timeline.benefit_periods if p.stop is None]
    iso = lambda day: day.isoformat() if day else None  # noqa: E731
    cash = reference.benefits()
    assert store.row("durations_citizen", key) == {
        "citizen_key": key, "birth_date": born.isoformat(),
        "open_spell_start": iso(d.all_benefits_spell_start) if still_open else None,
        "open_cash_spell_start": iso(d.cash_system_spell_start) if still_open else None,
        "naive_start": iso(max((p.start for p in still_open), default=None)),
        "target_group": d.target_group, "last_effective_date": last.isoformat(),
        "findings": len(timeline.findings),
        **_run_bounds("", timeline.benefit_periods),
        **_run_bounds("cash_", [p for p in timeline.benefit_periods
                                if cash[p.code].in_cash_benefit_system]),
    }
    c = coordination_on(timeline, last, born)
    row = store.row("coordination_citizen", key)
    assert row is not None
    assert (bool(row["is_faellesborger"]), row["support_step"], row["target_group"]) == (
        c.is_faellesborger, c.support_step, c.target_group
    )
    assert json.loads(row["interventions"]) == list(c.interventions)
    assert json.loads(row["flags"]) == {name: list(ids) for name, ids in c.flags.items()}


def written(
    store: ReadModelStore, population: list[list[Fact]]
) -> dict[str, tuple[list[Fact], date]]:
    """The population's rows written to an emptied store; citizens by key.

    First the first half of each history, then the whole over it, as a live write does
    (only the rows that changed are replaced, so the rows do not lie in their order)."""
    store.clear()
    citizens = {f"{n:032x}": (facts, BIRTHS[n % len(BIRTHS)]) for n, facts in enumerate(population)}

    def rows(half: bool) -> list[CitizenRows]:
        return [
            rows_for(key, born, build_timeline(part),
                     max((f.effective_date for f in part), default=None), staff_key=STAFF_KEY)
            for key, (facts, born) in citizens.items()
            if (part := facts[: len(facts) // 2] if half else facts) or not half
        ]  # fmt: skip

    store.write(rows(half=True), since=0, until=1, replace=False)
    store.write(rows(half=False), since=1, until=2)
    return citizens


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(population=st.lists(citizen_facts(), min_size=1, max_size=3), offsets=st.lists(
    st.integers(0, 2200), min_size=3, max_size=6))
def test_sql_answers_equal_the_domain_rules(
    read_store: ReadModelStore, population: list[list[Fact]], offsets: list[int]
) -> None:
    citizens = written(read_store, population)
    for key, (facts, born) in citizens.items():
        assert_current_state(read_store, key, facts, born)
    days = {ORIGIN + timedelta(days=n) for n in offsets} | set(FIXED_DAYS)
    for facts, _born in citizens.values():
        edges = sorted(_edges(facts))
        days |= set(edges[:: max(1, len(edges) // 16)])
    for day in sorted(days):
        by_sql = {r["citizen_key"]: r for r in durations_records(read_store, day)}
        for key, (facts, born) in citizens.items():
            expected = _durations(facts, born, day)
            got = {name: by_sql[key][name] for name in expected}
            assert got == expected, (day, key)
            assert durations_of(read_store, day, key) == by_sql[key], (day, key)
        assert list(durations_lines(read_store, day)) == [
            _export_line(key, *citizens[key], day) for key in sorted(citizens)
        ], day
        coordination = {r["citizen_key"]: r for r in coordination_records(read_store, day, 3)}
        for key, (facts, born) in citizens.items():
            c = coordination_on(build_timeline(facts), day, born)
            assert coordination[key] | {"edge": 0} == {
                "citizen_key": key, "age": c.age, "target_group": c.target_group,
                "is_faellesborger": c.is_faellesborger, "support_step": c.support_step,
                "interventions": list(c.interventions), "flags": sorted(c.flags), "edge": 0,
            }, (day, key)
        pure = headline(
            (durations_on(build_timeline(facts), day, born) for facts, born in citizens.values()),
            day,
        )
        assert headline_from(read_store, day) == pure, day
    for year in (2012, 2013, 2014, 2016, 2019):
        mapping = yearly_from(read_store, year)
        timelines = [build_timeline(facts) for facts, _ in citizens.values()]
        assert mapping.on_benefit == sum(benefit_months_in_year(t, year) >= 2 for t in timelines)
        assert mapping.faellesborgere == sum(yearly_faellesborger(t, year) for t in timelines)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(population=st.lists(citizen_facts(), min_size=1, max_size=4), offsets=st.lists(
    st.integers(0, 2200), min_size=2, max_size=5))
def test_prioritisation_lists_equal_the_domain_rules(
    read_store: ReadModelStore, population: list[list[Fact]], offsets: list[int]
) -> None:
    citizens = written(read_store, population)
    days = {ORIGIN + timedelta(days=n) for n in offsets} | set(FIXED_DAYS)
    for facts, _born in citizens.values():
        edges = sorted(_edges(facts))
        days |= set(edges[:: max(1, len(edges) // 8)])
    for day in sorted(days):
        for years, cash in ((1, False), (2, False), (3, True), (1, True)):
            expected = {
                key: entry
                for key, (facts, _born) in citizens.items()
                if (entry := long_duration(build_timeline(facts), day, years, cash_system=cash))
            }
            got = list(long_durations(read_store, day, years, cash_system=cash))
            assert [r["citizen_key"] for r in got] == longest_first(expected), (day, years)
            for r in got:
                e = expected[r["citizen_key"]]
                assert (r["spell_start"], r["spell_days"], r["breaks_bridged"], r["naive_days"]) \
                    == (e.spell_start.isoformat(), e.spell_days, dict(e.breaks_bridged),
                        e.naive_days), (day, years, cash)
        pool = [r["citizen_key"] for r in clarification_pool(read_store, day)]
        assert pool == sorted(
            key for key, (facts, born) in citizens.items()
            if in_clarification_pool(durations_on(build_timeline(facts), day, born))
        ), day


def test_the_clarification_pool_by_sql_on_hand_made_citizens(read_store: ReadModelStore) -> None:
    """In: aktivitetsparat, 30+, 80% of ten years in the system; out: 79%, too young, jobparat."""
    day = date(2016, 6, 30)
    window_start = date(2006, 6, 30)  # (D - 10 years, D]: 3,653 days
    eighty = window_start + timedelta(days=3653 - 2923)  # 2,923 paid days: 80.02%
    seventy_nine = window_start + timedelta(days=3653 - 2886)  # 79.0%

    def citizen(start: date, group: str) -> list[Fact]:
        return [fact(EventType.BENEFIT_STARTED, start, benefit="kontanthjaelp",
                     target_group=group)]

    citizens = {
        "a" * 32: (citizen(eighty, "aktivitetsparat_voksen"), date(1980, 3, 1)),
        "b" * 32: (citizen(seventy_nine, "aktivitetsparat_voksen"), date(1980, 3, 1)),
        "c" * 32: (citizen(eighty, "aktivitetsparat_ung"), date(1986, 7, 1)),  # 29 on D
        "d" * 32: (citizen(eighty, "jobparat"), date(1980, 3, 1)),
        "e" * 32: (citizen(eighty, "aktivitetsparat_ung"), date(1986, 6, 30)),  # 30 on D
    }
    read_store.write(
        [rows_for(key, born, build_timeline(facts), facts[0].effective_date, staff_key=STAFF_KEY)
         for key, (facts, born) in citizens.items()],
        since=0, until=1, replace=False,
    )
    expected = sorted(
        key for key, (facts, born) in citizens.items()
        if in_clarification_pool(durations_on(build_timeline(facts), day, born))
    )
    assert expected == ["a" * 32, "e" * 32]
    assert [r["citizen_key"] for r in clarification_pool(read_store, day)] == expected


def test_a_sqlite_read_model_connection_has_the_larger_page_cache(tmp_path: Path) -> None:
    from casehistory.projections.store import SQLITE_CACHE_KIB

    store = SQLiteReadModel(tmp_path / "history.db", "casehistory")
    try:
        store.create()
        with store.read() as cursor:
            cursor.execute("PRAGMA cache_size")
            assert cursor.fetchone() == (-SQLITE_CACHE_KIB,)
    finally:
        store.close()


def test_a_read_model_from_before_the_covering_indexes_gets_them_on_create(
    tmp_path: Path,
) -> None:
    from casehistory.projections.store import INDEX_NAMES, RETIRED_INDEXES

    store = SQLiteReadModel(tmp_path / "history.db", "casehistory")
    try:
        store.create()
        for name in RETIRED_INDEXES:  # as an earlier version left them
            store.connection.execute(f"CREATE INDEX {name} ON benefit_run (citizen_key)")
        store.create()
        with store.read() as cursor:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
            names = {name for (name,) in cursor.fetchall()}
        assert set(INDEX_NAMES) <= names
        assert not names & set(RETIRED_INDEXES)
    finally:
        store.close()


@settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(population=st.lists(citizen_facts(), min_size=2, max_size=4))
def test_a_read_model_from_before_the_run_bounds_gets_them_on_create(
    read_store: ReadModelStore, population: list[list[Fact]]
) -> None:
    """An earlier version's `durations_citizen` (no run bounds) gets them on create, filled
    from its runs as a rebuild writes them; rows without them (NULL, as an earlier writer
    leaves them) give the same answers, by the lookups."""
    from casehistory.projections.store import ADDED_COLUMNS

    citizens = written(read_store, population)
    days = sorted({d for facts, _ in citizens.values() for d in _edges(facts)})[::7]
    days += FIXED_DAYS
    expected = {day: list(durations_lines(read_store, day)) for day in days}
    records = {day: list(durations_records(read_store, day)) for day in days}
    rebuilt = read_store.rows_of("durations_citizen", sorted(citizens))
    bounds = list(ADDED_COLUMNS["durations_citizen"])
    with read_store._write() as cursor:
        cursor.execute("DROP INDEX IF EXISTS durations_citizen_covering")
        for column in bounds:
            cursor.execute(f"ALTER TABLE durations_citizen DROP COLUMN {column}")
    read_store.create()
    assert read_store.rows_of("durations_citizen", sorted(citizens)) == rebuilt
    with read_store._write() as cursor:
        cursor.execute(f"UPDATE durations_citizen SET {', '.join(f'{c} = NULL' for c in bounds)}")
    for day in days:
        assert list(durations_lines(read_store, day)) == expected[day], day
        assert list(durations_records(read_store, day)) == records[day], day


def test_the_export_line_has_the_cli_columns() -> None:
    from casehistory.entrypoints.cli.common import DURATION_FIELDS

    assert list(EXPORT_FIELDS) == [name for name in DURATION_FIELDS if name != "cpr"]


def test_the_share_is_written_as_python_writes_it_for_every_paid_day_count(
    read_store: ReadModelStore,
) -> None:
    """Every count of paid days in a 10-year window of 3,652 or 3,653 days, and none."""
    dialect = Dialect(read_store.dialect)
    counts = (
        "WITH RECURSIVE n(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM n WHERE k < :wdays) "
        f"SELECT k, {share_json('k')} FROM n UNION ALL SELECT NULL, {share_json('NULL')}"
    )
    for window_days in (3652, 3653):
        with read_store.read() as cursor:
            cursor.execute(dialect.bind(counts), {"wdays": window_days})
            written = dict(cursor.fetchall())
        assert len(written) == window_days + 2
        assert written.pop(None) == "0.0"
        assert written == {
            k: json.dumps(round(k / window_days, 6)) for k in range(window_days + 1)
        }


def test_the_export_line_escapes_a_group_as_json_does(read_store: ReadModelStore) -> None:
    """A target group with a quote, a backslash, a tab and a non-ASCII letter."""
    day, born = date(2016, 6, 30), date(1980, 3, 1)
    facts = [fact(EventType.BENEFIT_STARTED, date(2015, 1, 5), benefit="kontanthjaelp",
                  target_group='særlig "gruppe" \\ ny\t')]
    read_store.write(
        [rows_for("a" * 32, born, build_timeline(facts), day, staff_key=STAFF_KEY)],
        since=0, until=1, replace=False,
    )
    line = _export_line("a" * 32, facts, born, day)
    assert '"target_group": "særlig \\"gruppe\\" \\\\ ny\\t"' in line
    assert list(durations_lines(read_store, day)) == [line]
