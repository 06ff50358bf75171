"""Differential test: caseload, continuity and cadence SQL equal the pure rules.

Generated histories (benefit periods across spells, group assignments including
age changes, caseworker assignments with same-day reassignments, meetings of
every kind, retractions) are written as read-model rows; for many dates (every
event edge and its neighbours) `projections.council_queries` is held equal to
`domain.caseload` and `domain.cadence` citizen by citizen, on SQLite and on a
real PostgreSQL server (the `read_store` fixture).
"""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casehistory.domain.cadence import cadence_on
from casehistory.domain.caseload import caseload_entry, caseloads, caseworkers_in_last_months
from casehistory.domain.exits import CohortDefinition, exits_on, follow_up, in_cohort
from casehistory.domain.facts import EventType, Fact
from casehistory.domain.spells import months_later
from casehistory.domain.timeline import build_timeline
from casehistory.projections.council_queries import (
    cadence_records,
    caseload_counts,
    caseload_records,
    continuity_records,
    exit_records,
    outcome_records,
    paying_municipalities,
)
from casehistory.projections.queries import durations_records
from casehistory.projections.rows import rows_for, staff_pseudonym
from casehistory.projections.store import ReadModelStore
from casehistory.services.council_report import CohortCriteria
from tests.factories import assigned, fact, meeting, retraction
from tests.test_properties import ORIGIN
from tests.test_read_model_sql import STAFF_KEY, citizen_facts, read_store  # noqa: F401

CASEWORKERS = ["cw-1", "cw-2", "cw-3"]
UNITS = [None, "unit-a", "unit-b"]
KINDS = ["visitation", "first", "joint", "other"]
RIGHT_GROUPS = ["aktivitetsparat_voksen", "aktivitetsparat_ung", "ressourceforloeb"]
BORN = date(1985, 5, 5)


def pseudonym(staff_id: str) -> str:
    return staff_pseudonym(staff_id, STAFF_KEY)


@st.composite
def council_facts(draw: st.DrawFn) -> list[Fact]:
    facts = draw(citizen_facts())
    day = st.integers(0, 1500).map(lambda n: ORIGIN + timedelta(days=n))
    for _ in range(draw(st.integers(0, 4))):
        when = draw(day)
        facts.append(assigned(when, draw(st.sampled_from(CASEWORKERS)),
                              draw(st.sampled_from(UNITS))))
        if draw(st.integers(0, 4)) == 0:  # a reassignment the same day
            facts.append(assigned(when, draw(st.sampled_from(CASEWORKERS))))
    for _ in range(draw(st.integers(0, 2))):
        source, target = draw(st.sampled_from(RIGHT_GROUPS)), draw(st.sampled_from(RIGHT_GROUPS))
        facts.append(fact(EventType.TARGET_GROUP_CHANGED, draw(day), from_group=source,
                          to_group=target, reason=draw(st.sampled_from(["age", "reassessment"]))))
    for _ in range(draw(st.integers(0, 5))):
        facts.append(meeting(draw(day), draw(st.sampled_from(KINDS))))
    if facts and draw(st.booleans()):
        facts.append(retraction(draw(st.sampled_from(facts))))
    return facts


def _days(population: list[list[Fact]], offsets: list[int]) -> list[date]:
    found = {ORIGIN + timedelta(days=n) for n in offsets}
    for facts in population:
        for f in facts:
            e = f.effective_date
            found |= {e - timedelta(days=1), e, e + timedelta(days=14), e + timedelta(days=21),
                      e + timedelta(days=28), e + timedelta(days=29)}
    ordered = sorted(found)
    return ordered[:: max(1, len(ordered) // 40)]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(population=st.lists(council_facts(), min_size=1, max_size=3),
       offsets=st.lists(st.integers(0, 2200), min_size=2, max_size=4))
def test_caseload_and_cadence_sql_equal_the_rules(
    read_store: ReadModelStore, population: list[list[Fact]], offsets: list[int]  # noqa: F811
) -> None:
    read_store.clear()
    citizens = {f"{n:032x}": build_timeline(facts) for n, facts in enumerate(population)}
    read_store.write(
        [rows_for(key, BORN, timeline, None, staff_key=STAFF_KEY)
         for key, timeline in citizens.items()],
        since=0, until=1, replace=False,
    )
    with read_store.read() as cursor:
        cursor.execute("SELECT * FROM caseworker_assignment")
        stored = str(cursor.fetchall())
    assert not any(staff_id in stored for staff_id in CASEWORKERS)
    for day in _days(population, offsets):
        entries = {r["citizen_key"]: r for r in caseload_records(read_store, day)}
        for key, timeline in citizens.items():
            entry = caseload_entry(timeline, day)
            expected = entry and {
                "citizen_key": key, "caseworker": pseudonym(entry.caseworker), "unit": entry.unit,
                "since": entry.start.isoformat(), "event_id": entry.event_id,
            }
            assert entries.get(key) == expected, (day, key)
        assert caseload_counts(read_store, day) == {
            (pseudonym(worker), unit): n
            for (worker, unit), n in caseloads(citizens.values(), day).items()}, day
        continuity = dict(continuity_records(read_store, day, 12))
        for key, timeline in citizens.items():
            assert continuity.get(key, []) == sorted(
                pseudonym(w) for w in caseworkers_in_last_months(timeline, day)), (day, key)
        clocks = {r["citizen_key"]: r for r in cadence_records(read_store, day)}
        for key, timeline in citizens.items():
            c = cadence_on(timeline, day)
            expected_clock = c and {
                "citizen_key": key, "target_group": c.target_group,
                "visitation": c.visitation.isoformat(),
                "visitation_event_id": c.visitation_event_id,
                "last_meeting": c.last_meeting and c.last_meeting.isoformat(),
                "last_meeting_event_id": c.last_meeting_event_id,
                "deadline": c.deadline.isoformat(), "days_left": c.days_left, "status": c.status,
            }
            assert clocks.get(key) == expected_clock, (day, key)


EXIT_BENEFITS = ["kontanthjaelp", "foertidspension", "ledighedsydelse", "sygedagpenge"]


@st.composite
def exit_facts(draw: st.DrawFn) -> list[Fact]:
    """Cash-system spells ending for every reason, with other benefits starting around E."""
    facts = draw(council_facts())
    day = st.integers(0, 1500).map(lambda n: ORIGIN + timedelta(days=n))
    for _ in range(draw(st.integers(0, 3))):
        start = draw(day)
        stop = start + timedelta(days=draw(st.integers(1, 400)))
        benefit = draw(st.sampled_from(EXIT_BENEFITS))
        facts.append(fact(EventType.BENEFIT_STARTED, start, benefit=benefit))
        facts.append(fact(EventType.BENEFIT_STOPPED, stop, benefit=benefit, reason=draw(
            st.sampled_from(["job", "education", "died", "emigrated", "pension", "other"]))))
    return facts


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(population=st.lists(exit_facts(), min_size=1, max_size=3),
       offsets=st.lists(st.integers(0, 2200), min_size=2, max_size=4))
def test_exit_and_follow_up_sql_equal_the_rules(
    read_store: ReadModelStore, population: list[list[Fact]], offsets: list[int]  # noqa: F811
) -> None:
    read_store.clear()
    citizens = {f"{n:032x}": build_timeline(facts) for n, facts in enumerate(population)}
    read_store.write(
        [rows_for(key, BORN, timeline, None, staff_key=STAFF_KEY)
         for key, timeline in citizens.items()],
        since=0, until=1, replace=False,
    )
    days = _days(population, offsets)
    for day in days:
        known: dict[str, list[tuple[object, ...]]] = {}
        for r in exit_records(read_store, day):
            known.setdefault(r["citizen_key"], []).append(tuple(list(r.values())[1:]))
        for key, timeline in citizens.items():
            expected = [(e.spell_start.isoformat(), e.exit_date.isoformat(),
                         e.window_end.isoformat(), e.destination, e.target_group)
                         for e in exits_on(timeline, day)]
            assert known.get(key, []) == expected, (day, key)
    for cohort_date in days[::4]:
        horizons = (6, 12, 18)
        for months in horizons:
            horizon = months_later(cohort_date, months)
            found = {key: (dest, exit_date, paid)
                     for key, dest, exit_date, paid in outcome_records(
                         read_store, cohort_date, horizon)}
            for key, timeline in citizens.items():
                f = next(f for f in follow_up(timeline, cohort_date, horizons)
                         if f.horizon_months == months)
                dest, exit_date, paid = found[key]
                outcome = "exited" if dest else "on_benefit" if paid else "neither"
                assert (outcome, dest, exit_date) == (
                    f.outcome, f.destination, f.exit_date and f.exit_date.isoformat()
                ), (cohort_date, months, key)


DEFINITIONS = [
    CohortCriteria(),
    CohortCriteria(frozenset({"aktivitetsparat_voksen", "jobparat"})),
    CohortCriteria(min_age=25, max_age=40),
    CohortCriteria(min_years=1),
    CohortCriteria(min_years=2, cash_system=True),
    CohortCriteria(municipality="101"),
    CohortCriteria(frozenset({"aktivitetsparat_voksen"}), municipality="147"),
]


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(population=st.lists(exit_facts(), min_size=1, max_size=3),
       offsets=st.lists(st.integers(0, 2200), min_size=2, max_size=6))
def test_cohort_membership_from_sql_equals_in_cohort(
    read_store: ReadModelStore, population: list[list[Fact]], offsets: list[int]  # noqa: F811
) -> None:
    read_store.clear()
    births = [date(2000, 2, 29), BORN, date(1960, 1, 1)]
    citizens = {f"{n:032x}": (build_timeline(facts), births[n % 3])
                for n, facts in enumerate(population)}
    read_store.write(
        [rows_for(key, born, timeline, None, staff_key=STAFF_KEY)
         for key, (timeline, born) in citizens.items()],
        since=0, until=1, replace=False,
    )
    for cohort_date in _days(population, offsets)[::3]:
        records = {r["citizen_key"]: r for r in durations_records(read_store, cohort_date)}
        paying = paying_municipalities(read_store, cohort_date)
        for criteria in DEFINITIONS:
            definition = CohortDefinition(criteria.target_groups, criteria.min_age,
                                          criteria.max_age, criteria.min_years,
                                          criteria.cash_system, criteria.municipality)
            for key, (timeline, born) in citizens.items():
                admitted = criteria.admits(records[key], cohort_date) and (
                    criteria.municipality is None
                    or criteria.municipality in paying.get(key, set()))
                assert admitted == in_cohort(timeline, born, cohort_date, definition), (
                    cohort_date, criteria, key)
