"""Property-based tests: order, redelivery, splitting and retraction never change a result."""

from __future__ import annotations

import itertools
import random
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from casehistory.domain.durations import Durations, durations_on
from casehistory.domain.facts import Fact
from casehistory.domain.spells import first_of_next_month
from casehistory.domain.timeline import build_timeline
from tests import oracle
from tests.factories import retraction, started, stopped

BENEFITS = ["kontanthjaelp", "uddannelseshjaelp", "sygedagpenge", "foertidspension"]
REASONS = ["job", "no_contact_or_sanction", "moved_municipality", "system_conversion"]
ORIGIN = date(2012, 1, 1)
BORN = date(1985, 5, 5)


KEYS = st.tuples(
    st.sampled_from(BENEFITS),
    st.sampled_from(["fasit", "legacy-fasit-2018"]),
    st.sampled_from(["101", "147"]),
)


@st.composite
def histories(draw: st.DrawFn, *, well_formed: bool = False) -> list[Fact]:
    """Benefit periods under a few keys, with gaps of any size, some left open.

    Unless `well_formed`, a key may repeat, so its periods overlap and pairing
    meets starts of open periods (data-quality findings).
    """
    facts: list[Fact] = []
    keys = draw(st.lists(KEYS, min_size=1, max_size=3, unique=well_formed))
    for benefit, source_system, municipality in keys:
        key = {"benefit": benefit, "source_system": source_system, "municipality": municipality}
        day = ORIGIN + timedelta(days=draw(st.integers(0, 400)))
        for _ in range(draw(st.integers(1, 4))):
            length = draw(st.integers(1, 300))
            facts.append(started(day, **key))
            reason = draw(st.sampled_from(REASONS))
            facts.append(stopped(day + timedelta(days=length), reason=reason, **key))
            day += timedelta(days=length)
            if draw(st.booleans()):  # restart on a first of month: the rule's edge
                day = first_of_next_month(day + timedelta(days=draw(st.integers(0, 40))))
            else:
                day += timedelta(days=draw(st.integers(0, 70)))
        if draw(st.booleans()):
            facts.pop()  # leave the last period open
    return facts


days = st.integers(0, 1500).map(lambda n: ORIGIN + timedelta(days=n))


def result(facts: list[Fact], day: date) -> Durations:
    return durations_on(build_timeline(facts), day, BORN)


@given(histories(), days)
def test_agrees_with_the_day_by_day_oracle(facts: list[Fact], day: date) -> None:
    m = result(facts, day)
    expected = oracle.measures(facts, day)
    got = {name: getattr(m, name) for name in expected}
    got["breaks_bridged"] = dict(m.breaks_bridged)
    assert got == expected


@given(histories(), days, st.randoms(use_true_random=False))
def test_arrival_order_never_changes_a_result(
    facts: list[Fact], day: date, rng: random.Random
) -> None:
    shuffled = facts[:]
    rng.shuffle(shuffled)
    assert result(shuffled, day) == result(facts, day)


@given(histories(), days, st.randoms(use_true_random=False))
def test_duplicate_delivery_never_changes_a_result(
    facts: list[Fact], day: date, rng: random.Random
) -> None:
    redelivered = facts + [rng.choice(facts) for _ in range(3)]
    rng.shuffle(redelivered)
    assert result(redelivered, day) == result(facts, day)


@given(histories(well_formed=True), days, st.data())
def test_splitting_a_period_into_touching_pieces_keeps_spells_and_paid_days(
    facts: list[Fact], day: date, data: st.DataObject
) -> None:
    """The naive measure and the count of ended periods are about cases, so they may change."""
    closed = [
        (start, stop)
        for start, stop in itertools.pairwise(facts)
        if stop.event_type.value == "BenefitStopped"
        and start.event_type.value == "BenefitStarted"
        and (stop.effective_date - start.effective_date).days >= 2
        and (start.benefit, start.source_system) == (stop.benefit, stop.source_system)
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
    before, after = result(facts, day), result(pieces, day)
    unchanged = (
        "on_benefit",
        "all_benefits_spell_start",
        "all_benefits_spell_days",
        "cash_system_spell_start",
        "cash_system_spell_days",
        "benefit_days_in_spell",
        "share_last_10y_cash_system",
        "target_group",
    )
    assert {n: getattr(after, n) for n in unchanged} == {n: getattr(before, n) for n in unchanged}


@given(histories(), days, st.data())
def test_a_retraction_equals_the_event_never_having_happened(
    facts: list[Fact], day: date, data: st.DataObject
) -> None:
    victim = data.draw(st.sampled_from(facts))
    without = [f for f in facts if f is not victim]
    retracted = [*facts, retraction(victim, effective=data.draw(days))]
    assert result(retracted, day) == result(without, day)


def test_recorded_at_ties_do_not_depend_on_arrival() -> None:
    same = started(date(2020, 1, 1))
    twin = same._replace(event_id="00000000-0000-4000-8000-ffffffffffff")
    assert result([same, twin], date(2020, 2, 1)) == result([twin, same], date(2020, 2, 1))
