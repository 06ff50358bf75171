"""The synthetic population generator: determinism, validity, breaks and delivery noise."""

import argparse
import csv
import json
import math
import re
from collections import Counter
from datetime import date, datetime, timedelta
from importlib.resources import files
from pathlib import Path

import pytest

from casehistory.domain.cadence import cadence_on
from casehistory.domain.caseload import caseloads, continuity
from casehistory.domain.cpr import birth_date
from casehistory.domain.durations import durations_on
from casehistory.domain.exits import exits_on
from casehistory.domain.priorities import in_clarification_pool, long_duration
from casehistory.domain.timeline import Timeline, build_timeline
from casehistory.entrypoints.cli.councils import DEMO_EXIT_YEARS
from casehistory.entrypoints.cli.main import parser
from casehistory.population.calibration import facts_by_citizen
from casehistory.population.casework import CASELOAD, CASEWORK_FROM, UNIT_SHARE, UNITS, teams
from casehistory.population.citizen import (
    BIG_CITIES,
    EARLY_COHORT_UNTIL,
    EARLY_SHARE,
    HEAVY_EARLY_SHARE,
    HEAVY_SHARE,
    MERGER_2007,
)
from casehistory.population.generator import generate_population, write_jsonl

Event = dict[str, object]
UNTIL = date(2026, 11, 1)


def _table(name: str) -> list[dict[str, str]]:
    text = (files("casehistory.domain") / "data" / f"{name}.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


MUNICIPALITIES = {row["code"] for row in _table("municipalities")}
BENEFITS = {row["code"] for row in _table("benefits")}
INTERVENTIONS = {row["code"] for row in _table("interventions")}
GROUP_VALIDITY = {
    row["code"]: (row["valid_from"] or "0000", row["valid_to"] or "9999")
    for row in _table("target_groups")
}
STOP_REASONS = {
    "job",
    "education",
    "self_support",
    "moved_municipality",
    "no_contact_or_sanction",
    "target_group_change",
    "benefit_change",
    "pension",
    "emigrated",
    "died",
    "system_conversion",
    "other",
}
ENVELOPE = (
    "event_id",
    "event_type",
    "cpr",
    "effective_date",
    "recorded_at",
    "source_system",
    "municipality",
)
FIELDS: dict[str, dict[str, set[str] | None]] = {  # required fields and their allowed values
    "BenefitStarted": {"benefit": BENEFITS},
    "BenefitStopped": {"benefit": BENEFITS, "reason": STOP_REASONS},
    "CitizenMoved": {"from_municipality": MUNICIPALITIES, "to_municipality": MUNICIPALITIES},
    "TargetGroupChanged": {
        "from_group": set(GROUP_VALIDITY),
        "to_group": set(GROUP_VALIDITY),
        "reason": {"reform", "reassessment", "age", "other"},
    },
    "SocialInterventionStarted": {"intervention": INTERVENTIONS},
    "SocialInterventionEnded": {"intervention": INTERVENTIONS},
    "EventRetracted": {"retracted_event_id": None, "reason": None},
    "CaseworkerAssigned": {"caseworker": None},
    "MeetingHeld": {"meeting_kind": {"visitation", "first", "joint", "other"}},
}
BREAK_REASONS = {
    "moved_municipality",
    "system_conversion",
    "no_contact_or_sanction",
    "target_group_change",
    "benefit_change",
}


def _birth_date(cpr: str) -> date | None:
    """The CPR number's birth date under the century rule (substitute day + 60), if real."""
    if not re.fullmatch(r"\d{10}", cpr):
        return None
    day, month, yy, digit = int(cpr[:2]) % 60, int(cpr[2:4]), int(cpr[4:6]), int(cpr[6])
    if digit <= 3:
        century = 1900
    elif digit in (4, 9):
        century = 2000 if yy <= 36 else 1900
    else:
        century = 2000 if yy <= 57 else 1800
    try:
        return date(century + yy, month, day)
    except ValueError:
        return None


def _problem(event: Event, first_seen: dict[object, Event]) -> str | None:
    """Why a consumer must dead-letter the record, or None if it is valid."""
    event_type = event.get("event_type")
    if event_type not in FIELDS:
        return "event_type"
    required = FIELDS[str(event_type)]
    if any(event.get(key) is None for key in (*ENVELOPE, *required)):
        return "missing_field"
    if _birth_date(str(event["cpr"])) is None:
        return "cpr"
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(event["effective_date"])):
        return "effective_date"
    try:
        date.fromisoformat(str(event["effective_date"]))
    except ValueError:
        return "effective_date"
    if datetime.fromisoformat(str(event["recorded_at"])).tzinfo is None:
        return "recorded_at"
    if event["municipality"] not in MUNICIPALITIES:
        return "municipality"
    for key, allowed in required.items():
        if allowed is not None and event[key] not in allowed:
            return key
    if event.get("target_group") not in (None, *GROUP_VALIDITY):
        return "target_group"
    if re.fullmatch(r"\d{10}", str(event.get("caseworker"))):
        return "caseworker"
    content = {key: value for key, value in event.items() if value is not None}
    if first_seen.setdefault(event["event_id"], content) != content:
        return "conflict"
    return None


def _facts(events: list[Event]) -> list[Event]:
    """Valid first arrivals that no (unretracted) retraction voids."""
    first_seen: dict[object, Event] = {}
    for event in events:
        _problem(event, first_seen)
    retracts = {
        event_id: event["retracted_event_id"]
        for event_id, event in first_seen.items()
        if event["event_type"] == "EventRetracted"
    }
    voided = {
        target for event_id, target in retracts.items() if event_id not in set(retracts.values())
    }
    return [
        event
        for event_id, event in first_seen.items()
        if event_id not in voided and event_id not in retracts
    ]


@pytest.fixture(scope="module")
def stream() -> list[Event]:
    return list(generate_population(500, 11))


@pytest.fixture(scope="module")
def clean() -> list[Event]:
    return list(generate_population(500, 11, invalid_share=0.0))


def test_same_seed_gives_the_same_stream_and_another_seed_another() -> None:
    def dump(seed: int) -> list[str]:
        return [json.dumps(event) for event in generate_population(80, seed)]

    assert dump(5) == dump(5)
    assert dump(5) != dump(6)


def test_only_unique_substitute_cprs_of_working_age(stream: list[Event]) -> None:
    assert all(
        str(event["cpr"])[:2].isdigit() and 61 <= int(str(event["cpr"])[:2]) <= 91
        for event in stream
        if "cpr" in event
    )
    facts = _facts(stream)
    assert len({event["cpr"] for event in facts}) == 500
    for event in facts:
        if str(event["event_type"]).startswith("Benefit"):
            born = _birth_date(str(event["cpr"]))
            day = date.fromisoformat(str(event["effective_date"]))
            assert born is not None
            assert 16 <= (day - born).days // 365.25 <= 67


def test_every_event_type_and_break_kind_appears(stream: list[Event]) -> None:
    assert {event["event_type"] for event in stream if _problem(event, {}) is None} == set(FIELDS)
    facts = _facts(stream)
    stop_reasons = Counter(
        event["reason"] for event in facts if event["event_type"] == "BenefitStopped"
    )
    assert BREAK_REASONS | {"job", "pension"} <= set(stop_reasons)
    assert any(
        event["event_type"] == "TargetGroupChanged" and event["reason"] == "reform"
        for event in facts
    )
    by_day = {(event["cpr"], event["effective_date"], event["event_type"]) for event in facts}
    moves = [event for event in facts if event.get("reason") == "moved_municipality"]
    assert all((m["cpr"], m["effective_date"], "CitizenMoved") in by_day for m in moves)
    conversions = [event for event in facts if event.get("reason") == "system_conversion"]
    assert all(event["source_system"] == "legacy-fasit-2018" for event in conversions)
    assert any(
        event["source_system"] != "legacy-fasit-2018"
        and event["event_type"] == "BenefitStarted"
        and event["effective_date"] < "2018-01-01"
        for event in facts
    )  # carried start


def test_move_gaps_sometimes_leave_a_whole_calendar_month_empty(clean: list[Event]) -> None:
    facts = sorted(_facts(clean), key=lambda event: str(event["effective_date"]))
    moved_on: dict[object, date] = {}
    gaps = []
    for event in facts:
        day = date.fromisoformat(str(event["effective_date"]))
        if event.get("reason") == "moved_municipality":
            moved_on[event["cpr"]] = day
        elif event["event_type"] == "BenefitStarted" and event["cpr"] in moved_on:
            gaps.append((moved_on.pop(event["cpr"]), day))
    whole_month_empty = [
        (stop, start)
        for stop, start in gaps
        if (start.year * 12 + start.month) - (stop.year * 12 + stop.month) >= 2
        or (stop.day == 1 and start.month != stop.month)
    ]
    assert 0 < len(whole_month_empty) < len(gaps)


@pytest.mark.parametrize("until", [UNTIL, date(2018, 3, 15)])
def test_nothing_takes_effect_or_is_recorded_after_until(until: date) -> None:
    facts = _facts(list(generate_population(300, 3, until=until)))
    assert max(str(event["effective_date"]) for event in facts) <= until.isoformat()
    assert max(str(event["recorded_at"])[:10] for event in facts) <= until.isoformat()


def test_histories_replay_without_findings_and_many_stay_open(clean: list[Event]) -> None:
    assert all(_problem(event, {}) is None for event in clean)
    facts = sorted(
        _facts(clean),
        key=lambda event: (
            str(event["effective_date"]),
            not str(event["event_type"]).endswith(("Stopped", "Ended")),
        ),
    )
    open_keys: set[tuple[object, ...]] = set()
    for event in facts:
        code = event.get("benefit") or event.get("intervention")
        key = (event["cpr"], code, event["source_system"], event["municipality"])
        if str(event["event_type"]).endswith("Started"):
            assert key not in open_keys, event
            open_keys.add(key)
        elif str(event["event_type"]).endswith(("Stopped", "Ended")):
            assert key in open_keys, event
            open_keys.remove(key)
        group = event.get("target_group") or event.get("to_group")
        if group:
            valid_from, valid_to = GROUP_VALIDITY[str(group)]
            assert valid_from <= str(event["effective_date"]) <= valid_to, event
    assert len({key[0] for key in open_keys}) > 100


@pytest.mark.parametrize("share", [0.01, 0.05])
def test_invalid_records_make_up_about_the_share_asked(stream: list[Event], share: float) -> None:
    events = stream if share == 0.01 else list(generate_population(500, 11, invalid_share=share))
    first_seen: dict[object, Event] = {}
    problems = Counter(_problem(event, first_seen) for event in events)
    invalid = len(events) - problems.pop(None)
    assert share * 0.6 < invalid / len(events) < share * 1.5
    if share == 0.05:
        assert set(problems) == {
            "event_type",
            "missing_field",
            "cpr",
            "effective_date",
            "recorded_at",
            "municipality",
            "benefit",
            "target_group",
            "intervention",
            "reason",
            "caseworker",
            "meeting_kind",
            "conflict",
        }


def test_redeliveries_and_retractions_are_present(stream: list[Event]) -> None:
    first_seen: dict[object, Event] = {}
    arrived: set[object] = set()
    redelivered: list[Event] = []
    retractions: list[Event] = []
    for event in stream:
        if _problem(event, first_seen) is not None:
            continue
        if event["event_id"] in arrived:
            redelivered.append(event)
        elif event["event_type"] == "EventRetracted":
            assert event["retracted_event_id"] in arrived
            retractions.append(event)
        arrived.add(event["event_id"])
    assert 0.01 < len(redelivered) / len(stream) < 0.035
    assert any(list(event) != list(first_seen[event["event_id"]]) for event in redelivered)
    assert any(
        None in event.values() and None not in first_seen[event["event_id"]].values()
        for event in redelivered
    )
    assert 0.005 < len(retractions) / len(stream) < 0.03
    retraction_ids = {event["event_id"] for event in retractions}
    assert any(event["retracted_event_id"] in retraction_ids for event in retractions)


def test_write_jsonl_round_trips(tmp_path: Path) -> None:
    events = list(generate_population(20, 1))
    path = tmp_path / "events.jsonl"
    assert write_jsonl(iter(events), path) == len(events)
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == events


# --- the shape of a real topic (domain.md, "Scale") --------------------------------------


CITY = 4000


@pytest.fixture(scope="module")
def city() -> list[Event]:
    return list(generate_population(CITY, 7))


def test_events_per_citizen_are_shaped_like_a_real_topic(city: list[Event]) -> None:
    per_citizen = Counter(event.get("cpr") for event in city if _problem(event, {}) is None)
    counts = sorted(per_citizen.values())
    mean = sum(counts) / len(counts)
    over_34 = sum(count > 34 for count in counts) / len(counts)
    assert 15 <= mean <= 21, mean
    assert 0.06 <= over_34 <= 0.14, over_34
    assert counts[-1] >= 70, counts[-1]  # 80 or more is expected from about 10,000 citizens


def test_the_stream_is_in_arrival_order(city: list[Event]) -> None:
    """First arrivals are monotone in recorded_at; redeliveries come after their original."""
    seen: set[object] = set()
    last = ""
    for event in city:
        if _problem(event, {}) is not None:
            continue
        recorded = str(event["recorded_at"])
        if event["event_id"] in seen:
            assert recorded <= last
            continue
        seen.add(event["event_id"])
        assert recorded >= last, (recorded, last)
        last = recorded


def test_a_citizens_events_are_spread_over_the_whole_stream(city: list[Event]) -> None:
    first: dict[object, int] = {}
    last: dict[object, int] = {}
    for position, event in enumerate(city):
        first.setdefault(event.get("cpr"), position)
        last[event.get("cpr")] = position
    spans = sorted((last[cpr] - first[cpr]) / len(city) for cpr in first)
    assert spans[len(spans) // 2] > 0.15  # the median citizen spans a sixth of the stream
    assert sum(span > 0.5 for span in spans) / len(spans) > 0.2
    years = {str(event["recorded_at"])[:4] for event in city if "recorded_at" in event}
    assert {str(year) for year in range(2004, 2027)} <= years


def _reaching_back_before(day: date) -> float:
    """Share of histories starting before ``day`` (the two cohorts of ``_first_start``)."""
    later = (day - EARLY_COHORT_UNTIL) / (UNTIL - timedelta(days=30) - EARLY_COHORT_UNTIL)
    return sum(
        share * (early + (1 - early) * later)
        for share, early in ((HEAVY_SHARE, HEAVY_EARLY_SHARE), (1 - HEAVY_SHARE, EARLY_SHARE))
    )


def test_bulk_migrations_register_many_citizens_within_hours(city: list[Event]) -> None:
    batches: dict[object, list[Event]] = {}
    for event in city:
        if event.get("migration_batch") and _problem(event, {}) is None:
            batches.setdefault(event["migration_batch"], []).append(event)
    conversions = [name for name in batches if "conversion-2018" in str(name)]
    mergers = [name for name in batches if str(name).startswith("merger-2007")]
    assert conversions and mergers
    # A merged municipality's batch carries the history before 2007 of at least every citizen
    # whose history started there before 2007 (movers bring more): of the city's citizens, its
    # weight among the municipalities times the share of histories reaching back that far.
    weight = {code: float(BIG_CITIES.get(code, 1)) for code in MUNICIPALITIES}
    per_weight = CITY / sum(weight.values()) * _reaching_back_before(MERGER_2007)
    expected = sum(weight[str(name).removeprefix("merger-2007-")] for name in mergers) * per_weight
    registered = sum(len({event["cpr"] for event in batches[name]}) for name in mergers)
    assert registered >= expected - 3 * math.sqrt(expected), (registered, expected)
    for events in batches.values():
        stamps = sorted(str(event["recorded_at"]) for event in events)
        assert stamps[0][:10] == stamps[-1][:10] and stamps[0][11:13] >= "18"
    conversion = batches[conversions[0]]
    assert all(
        event["source_system"] == "legacy-fasit-2018"
        for event in conversion
        if event["event_type"] == "BenefitStopped"
    )


def test_late_corrections_come_years_after_the_fact(city: list[Event]) -> None:
    valid = [event for event in city if _problem(event, {}) is None]
    recorded = {event["event_id"]: str(event["recorded_at"]) for event in valid}
    lags = [
        int(str(event["recorded_at"])[:4]) - int(recorded[event["retracted_event_id"]][:4])
        for event in valid
        if event["event_type"] == "EventRetracted"
    ]
    assert any(lag >= 2 for lag in lags)
    assert sum(lag == 0 for lag in lags) > len(lags) / 2


def test_spilling_to_disk_changes_nothing() -> None:
    in_memory = [json.dumps(event) for event in generate_population(60, 9)]
    spilled = [json.dumps(event) for event in generate_population(60, 9, spill_at=50)]
    assert spilled == in_memory


# --- caseworkers and meetings (contract v3) ----------------------------------------------


@pytest.fixture(scope="module")
def city_timelines(city: list[Event]) -> list[Timeline]:
    return [build_timeline(facts) for facts in facts_by_citizen(city).values()]


def test_caseworkers_are_assigned_from_go_live_and_reassigned(city: list[Event]) -> None:
    assigned = [event for event in _facts(city) if event["event_type"] == "CaseworkerAssigned"]
    assert min(str(event["effective_date"]) for event in assigned) >= CASEWORK_FROM.isoformat()
    opening = [e for e in assigned if str(e.get("migration_batch")).startswith("casework-open")]
    assert len(opening) > 100
    assert {event["effective_date"] for event in opening} == {CASEWORK_FROM.isoformat()}
    per_citizen = Counter(event["cpr"] for event in assigned)
    assert sum(count >= 2 for count in per_citizen.values()) > len(per_citizen) / 10
    assert any(event.get("unit") for event in assigned)
    assert any(not event.get("unit") for event in assigned)


def test_a_big_job_centre_has_about_seventy_citizens_per_caseworker(
    city_timelines: list[Timeline],
) -> None:
    per_caseworker: Counter[str] = Counter()
    for (caseworker, _), count in caseloads(city_timelines, UNTIL).items():
        per_caseworker[caseworker] += count  # the unit is optional: some name none
    copenhagen = [
        count for caseworker, count in per_caseworker.items() if caseworker[:5] == "jc101"
    ]
    assert copenhagen
    assert 35 <= sum(copenhagen) / len(copenhagen) <= 140
    assert any(continuity(timeline, UNTIL) >= 2 for timeline in city_timelines)


def test_the_contact_cadence_is_mostly_kept_and_sometimes_overdue(
    city_timelines: list[Timeline],
) -> None:
    statuses = Counter(
        clock.status
        for timeline in city_timelines
        if (clock := cadence_on(timeline, UNTIL)) is not None
    )
    assert statuses.total() > 100
    assert 0.03 < statuses["overdue"] / statuses.total() < 0.35
    assert statuses["due_soon"] > 0
    assert statuses["ok"] > statuses["overdue"]


def test_first_meetings_mostly_come_within_14_days_of_visitation(
    city_timelines: list[Timeline],
) -> None:
    waits = []
    for timeline in city_timelines:
        visits = [m.effective_date for m in timeline.meetings if m.kind == "visitation"]
        for visit in visits:
            later = [
                m.effective_date
                for m in timeline.meetings
                if m.kind in ("first", "joint") and m.effective_date >= visit
            ]
            if later:
                waits.append((min(later) - visit).days)
    assert len(waits) > 100
    assert 0.7 < sum(wait <= 14 for wait in waits) / len(waits) < 0.97


def test_some_meetings_are_retracted(city: list[Event]) -> None:
    meetings = {event.get("event_id") for event in city if event.get("event_type") == "MeetingHeld"}
    assert any(
        event.get("retracted_event_id") in meetings
        for event in city
        if event.get("event_type") == "EventRetracted"
    )


@pytest.fixture(scope="module")
def demo() -> argparse.Namespace:
    """`casehistory demo`'s defaults (size, seed, day and home municipality)."""
    return parser().parse_args(["demo"])


@pytest.fixture(scope="module")
def demo_records(demo: argparse.Namespace) -> list[Event]:
    return list(
        generate_population(demo.citizens, demo.seed, until=demo.as_of, home=demo.home)
    )


@pytest.fixture(scope="module")
def demo_citizens(demo_records: list[Event]) -> dict[str, Timeline]:
    return {cpr: build_timeline(facts) for cpr, facts in facts_by_citizen(demo_records).items()}


def test_the_demo_is_one_municipality_with_moves_in_and_out(
    demo: argparse.Namespace, demo_records: list[Event], demo_citizens: dict[str, Timeline]
) -> None:
    assert demo.home == "101"
    moves = [e for e in _facts(demo_records) if e["event_type"] == "CitizenMoved"]
    assert sum(e["from_municipality"] == demo.home for e in moves) > 50
    assert sum(e["to_municipality"] == demo.home for e in moves) > 50
    latest_case = Counter(  # where each citizen's latest benefit case is
        max(t.benefit_periods, key=lambda p: p.start).municipality
        for t in demo_citizens.values()
        if t.benefit_periods
    )
    assert latest_case[demo.home] > 0.6 * latest_case.total()  # 64%: movers come and go


def test_the_demos_job_centre_is_staffed_for_its_citizens(
    demo: argparse.Namespace, demo_citizens: dict[str, Timeline]
) -> None:
    """Only the home job centre publishes its caseworkers, and each has a caseload in the
    field's range (50 the target, 110 without funding)."""
    loads = caseloads(demo_citizens.values(), demo.as_of)
    per_caseworker: Counter[str] = Counter()
    for (caseworker, _), count in loads.items():
        per_caseworker[caseworker] += count
    assert all(caseworker.startswith(f"jc{demo.home}-") for caseworker in per_caseworker)
    assert len(per_caseworker) >= 3
    assert 50 <= per_caseworker.total() / len(per_caseworker) <= 110
    in_range = [50 <= count <= 110 for count in loads.values()]  # the report's rows
    assert sum(in_range) >= 0.75 * len(in_range)


def test_the_demos_other_reports_have_content(
    demo: argparse.Namespace, demo_citizens: dict[str, Timeline]
) -> None:
    first = date(demo.as_of.year - DEMO_EXIT_YEARS, 1, 1)
    exits = Counter(
        e.destination
        for t in demo_citizens.values()
        for e in exits_on(t, demo.as_of)
        if first <= e.exit_date
    )
    assert exits.total() > 50 and len(exits) >= 4
    for cash_system in (False, True):
        long = [long_duration(t, demo.as_of, 15, cash_system=cash_system)
                for t in demo_citizens.values()]
        assert sum(entry is not None for entry in long) > 0
    pool = [in_clarification_pool(durations_on(t, demo.as_of, birth_date(cpr)))
            for cpr, t in demo_citizens.items()]
    assert sum(pool) > 5
    statuses = Counter(
        clock.status
        for t in demo_citizens.values()
        if (clock := cadence_on(t, demo.as_of)) is not None
    )
    assert statuses["ok"] > statuses["overdue"] > 5 and statuses["due_soon"] > 0
    assert any(continuity(t, demo.as_of) >= 2 for t in demo_citizens.values())


@pytest.mark.parametrize("citizens", [0, 30, 270, 1_000, 5_000])
def test_a_home_job_centre_is_staffed_unit_by_unit(citizens: int) -> None:
    staffed = teams(citizens)
    assert set(staffed) == set(UNITS)
    own = {unit: team for unit, (serving, team) in staffed.items() if serving == unit}
    numbers = [k for team in own.values() for k in team]
    assert "job" in own and sorted(numbers) == list(range(len(numbers)))  # each caseworker once
    for unit, (serving, team) in staffed.items():  # a unit without its own: the job unit's
        assert team == own[serving] and (serving == unit or serving == "job")
    assert len(numbers) == max(1, sum(round(citizens * s / CASELOAD) for s in UNIT_SHARE.values()))
