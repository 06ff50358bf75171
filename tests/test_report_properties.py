"""Properties of the report rules (exits, follow-up, lists, caseload, cadence).

Arrival order, redelivery and splitting a period into touching pieces never
change a result; a retraction equals the event never having happened; an exit,
once known, never changes.
"""

from __future__ import annotations

import itertools
import random
from datetime import date, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from casehistory.domain.cadence import cadence_on
from casehistory.domain.caseload import caseload_entry, caseworkers_in_last_months, responsibilities
from casehistory.domain.exits import exits_on, follow_up
from casehistory.domain.facts import EventType, Fact
from casehistory.domain.priorities import long_duration
from casehistory.domain.timeline import build_timeline
from tests.factories import assigned, meeting, regrouped, retraction, started, stopped
from tests.test_properties import ORIGIN, histories

GROUPS = ["aktivitetsparat_voksen", "aktivitetsparat_ung", "jobparat", "ressourceforloeb"]
day_in_life = st.integers(0, 1800).map(lambda n: ORIGIN + timedelta(days=n))
days = st.integers(0, 2000).map(lambda n: ORIGIN + timedelta(days=n))


@st.composite
def lives(draw: st.DrawFn, *, well_formed: bool = False) -> list[Fact]:
    """Benefit histories with target groups, group changes, caseworkers and meetings."""
    facts = [
        f._replace(target_group=draw(st.sampled_from([None, *GROUPS])))
        if f.event_type is EventType.BENEFIT_STARTED
        else f
        for f in draw(histories(well_formed=well_formed))
    ]
    for _ in range(draw(st.integers(0, 3))):
        groups = draw(st.tuples(st.sampled_from(GROUPS), st.sampled_from(GROUPS)))
        reason = draw(st.sampled_from(["age", "reassessment"]))
        facts.append(regrouped(draw(day_in_life), *groups, reason))
    for _ in range(draw(st.integers(0, 4))):
        facts.append(assigned(draw(day_in_life), draw(st.sampled_from(["jc-1", "jc-2", "jc-3"]))))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["visitation", "first", "joint", "other"]))
        facts.append(meeting(draw(day_in_life), kind))
    return facts


def reports(facts: list[Fact], day: date, *, about_cases: bool = True) -> dict[str, Any]:
    """Every report rule's result on `day`; without `about_cases`, what a case split may move
    (evidence ids of exits, ended-period counts and the naive measure) is left out."""
    timeline = build_timeline(facts)
    found: dict[str, Any] = {
        "exits": exits_on(timeline, day),
        "follow_up": follow_up(timeline, day - timedelta(days=400), (6, 12, 18)),
        "caseload": caseload_entry(timeline, day),
        "responsibilities": responsibilities(timeline, day),
        "continuity": caseworkers_in_last_months(timeline, day),
        "cadence": cadence_on(timeline, day),
    }
    for years, cash in itertools.product((1, 2), (False, True)):
        found[f"long_{years}_{cash}"] = long_duration(timeline, day, years, cash_system=cash)
    if not about_cases:
        found["exits"] = [
            (e.spell_start, e.exit_date, e.window_end, e.destination, e.target_group)
            for e in found["exits"]
        ]
        for key in [k for k in found if k.startswith("long_")]:
            entry = found[key]
            found[key] = (entry.spell_start, entry.spell_days) if entry else None
    return found


@given(lives(), days, st.randoms(use_true_random=False))
def test_arrival_order_never_changes_a_report(
    facts: list[Fact], day: date, rng: random.Random
) -> None:
    shuffled = facts[:]
    rng.shuffle(shuffled)
    assert reports(shuffled, day) == reports(facts, day)


@given(lives(), days, st.randoms(use_true_random=False))
def test_redelivery_never_changes_a_report(
    facts: list[Fact], day: date, rng: random.Random
) -> None:
    redelivered = facts + [rng.choice(facts) for _ in range(3)]
    rng.shuffle(redelivered)
    assert reports(redelivered, day) == reports(facts, day)


@given(lives(well_formed=True), days, st.data())
def test_splitting_a_period_into_touching_pieces_changes_no_report(
    facts: list[Fact], day: date, data: st.DataObject
) -> None:
    closed = [
        (start, stop)
        for start, stop in itertools.pairwise(facts)
        if start.event_type is EventType.BENEFIT_STARTED
        and stop.event_type is EventType.BENEFIT_STOPPED
        and (stop.effective_date - start.effective_date).days >= 2
        and (start.benefit, start.source_system, start.municipality)
        == (stop.benefit, stop.source_system, stop.municipality)
    ]
    if not closed:
        return
    start, stop = data.draw(st.sampled_from(closed))
    cut = start.effective_date + timedelta(
        days=data.draw(st.integers(1, (stop.effective_date - start.effective_date).days - 1))
    )
    key = {
        "benefit": start.benefit,
        "source_system": start.source_system,
        "municipality": start.municipality,
    }
    pieces = [*facts, stopped(cut, reason="system_conversion", **key), started(cut, **key)]
    assert reports(pieces, day, about_cases=False) == reports(facts, day, about_cases=False)


@given(lives(), days, st.data())
def test_a_retraction_equals_the_event_never_having_happened(
    facts: list[Fact], day: date, data: st.DataObject
) -> None:
    victim = data.draw(st.sampled_from(facts))
    without = [f for f in facts if f is not victim]
    retracted = [*facts, retraction(victim, effective=data.draw(days))]
    assert reports(retracted, day) == reports(without, day)


@settings(max_examples=50)
@given(lives(), days, st.integers(0, 800))
def test_an_exit_once_known_never_changes(facts: list[Fact], day: date, later: int) -> None:
    timeline = build_timeline(facts)
    known = exits_on(timeline, day)
    assert exits_on(timeline, day + timedelta(days=later))[: len(known)] == known
