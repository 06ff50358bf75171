"""Rows computed from an earlier computation (`rows.Earlier`) equal rows computed afresh.

A live follower moves a citizen's history forward by a few events and takes every table
whose part of the timeline did not change from the rows it computed before. Whatever
the arrival order, however the history is cut into deliveries, the result must be the
rows `rows_for` computes from scratch.
"""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from casehistory.domain.facts import Fact, MeetingKind
from casehistory.domain.timeline import build_timeline
from casehistory.projections.rows import TABLES, CitizenRows, Earlier, rows_for
from tests.factories import assigned, meeting, regrouped, started
from tests.test_properties import ORIGIN
from tests.test_read_model_sql import STAFF_KEY, citizen_facts

BORN = date(1980, 3, 1)
KEY = "c" * 32


@st.composite
def casework(draw: st.DrawFn) -> list[Fact]:
    """A citizen's facts with caseworker assignments and meetings too, in arrival order."""
    facts = draw(citizen_facts())
    for _ in range(draw(st.integers(0, 3))):
        day = ORIGIN + timedelta(days=draw(st.integers(0, 1500)))
        facts.append(assigned(day, draw(st.sampled_from(["cw-1", "cw-2"])), "unit-a"))
    for _ in range(draw(st.integers(0, 3))):
        day = ORIGIN + timedelta(days=draw(st.integers(0, 1500)))
        facts.append(meeting(day, draw(st.sampled_from([k.value for k in MeetingKind]))))
    return draw(st.permutations(facts))


def _rows(facts: list[Fact], earlier: Earlier | None = None) -> tuple[CitizenRows, Earlier]:
    timeline = build_timeline(facts)
    last = max((f.effective_date for f in facts), default=None)
    rows = rows_for(KEY, BORN, timeline, last, staff_key=STAFF_KEY, earlier=earlier)
    return rows, Earlier(timeline, last, rows.tables)


@settings(max_examples=300, deadline=None)
@given(facts=casework(), data=st.data())
def test_rows_from_earlier_rows_equal_rows_from_scratch(
    facts: list[Fact], data: st.DataObject
) -> None:
    """Delivered one event at a time (a live follower's usual case), then in a few cuts."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(facts)), max_size=4)))
    for deliveries in (range(len(facts) + 1), [*cuts, len(facts)]):
        earlier = None
        for cut in deliveries:
            rows, earlier = _rows(facts[:cut], earlier)
            assert rows.tables == _rows(facts[:cut])[0].tables
            assert set(rows.tables) == set(TABLES)


def test_a_target_group_change_leaves_the_benefit_tables_as_they_were() -> None:
    """The reuse is real: a new group leaves the period tables' lists untouched, and a new
    benefit start computes them again."""
    facts = [started(date(2020, 1, 6)), started(date(2021, 3, 1), benefit="dagpenge")]
    _, earlier = _rows(facts[:1])
    regroup = regrouped(date(2020, 5, 4), "jobparat", "uddannelsesparat", "reassessment")
    rows, _ = _rows([facts[0], regroup], earlier)
    assert rows.tables["benefit_period"] is earlier.tables["benefit_period"]
    assert rows.tables["target_group_interval"] is not earlier.tables["target_group_interval"]
    rows, _ = _rows(facts, earlier)
    assert rows.tables["benefit_period"] is not earlier.tables["benefit_period"]
    assert rows.tables == _rows(facts)[0].tables
