"""Delivery noise on one citizen's events, and when each record arrives.

Upstream corrects facts (retractions, some long after), redelivers events and sends a share
of records a consumer must dead-letter. Every record gets an arrival key (an ISO timestamp):
a valid event arrives when it was recorded; a redelivery or an invalid record some time
after the event it copies.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from casehistory.population.draws import Event, later, new_event_id, shifted, timestamp

OPTIONAL = ("source_case_ref", "target_group", "migration_batch")
OPTIONAL_OF_TYPE = {"CaseworkerAssigned": ("unit",), "MeetingHeld": ("caseworker",)}


def _optional(event: Event) -> tuple[str, ...]:
    """The fields an event may leave out (absent or null)."""
    return OPTIONAL + OPTIONAL_OF_TYPE.get(str(event.get("event_type")), ())

Arrival = tuple[str, Event]
"""A record and its arrival key."""


def _later_day(recorded_at: object, rng: random.Random, until: date, most: int) -> date:
    return min(
        date.fromisoformat(str(recorded_at)[:10]) + timedelta(days=rng.randint(1, most)), until
    )


def _retraction(
    rng: random.Random, subject: Event, retracted_id: object, reason: str, day: date
) -> Event:
    event: Event = {
        "event_id": new_event_id(rng),
        "event_type": "EventRetracted",
        "cpr": subject["cpr"],
        "effective_date": day.isoformat(),
        "recorded_at": timestamp(rng, day, 8, 15),
        "source_system": subject["source_system"],
        "municipality": subject["municipality"],
        "retracted_event_id": retracted_id,
        "reason": reason,
    }
    if subject.get("source_case_ref"):
        event["source_case_ref"] = subject["source_case_ref"]
    return event


def add_retractions(rng: random.Random, events: list[Event], until: date) -> None:
    """Corrections (~1% of facts), most within months, a fifth years later.

    Mostly a wrong registration retracted and replaced by the corrected fact (new event_id);
    some double registrations retracted; a few retractions made in error and retracted.
    """
    for fact in list(events):
        if rng.random() >= 0.01:
            continue
        r = rng.random()
        day = _later_day(fact["recorded_at"], rng, until, 120 if rng.random() < 0.8 else 3000)
        if day.isoformat() <= str(fact["recorded_at"]):  # no time left before `until`
            continue
        if r < 0.7:
            wrong = {
                **fact,
                "event_id": new_event_id(rng),
                "effective_date": shifted(rng, fact["effective_date"], until),
            }
            retraction = _retraction(rng, fact, wrong["event_id"], "wrong effective date", day)
            fact["recorded_at"] = timestamp(rng, day, 16, 18)  # the correction, after it
            fact.pop("migration_batch", None)  # registered by hand, not by the migration
            extra = [wrong, retraction]
        elif r < 0.85:
            double = {**fact, "event_id": new_event_id(rng)}
            extra = [double, _retraction(rng, fact, double["event_id"], "double registration", day)]
        else:
            mistaken = _retraction(rng, fact, fact["event_id"], "registered on wrong case", day)
            undo_day = _later_day(mistaken["recorded_at"], rng, until, 60)
            undo = _retraction(
                rng, fact, mistaken["event_id"], "retraction made in error", undo_day
            )
            if undo_day == day:
                undo["recorded_at"] = timestamp(rng, day, 16, 18)
            extra = [mistaken, undo]
        events.extend(extra)


def _redelivery(rng: random.Random, event: Event) -> Event:
    """The same event again: as is, keys in another order, or null for an absent option."""
    r = rng.random()
    if r < 0.3:
        return dict(reversed(event.items()))
    absent = [key for key in _optional(event) if key not in event]
    if r < 0.6 and absent:
        return {**event, rng.choice(absent): None}
    return dict(event)


def _redelivery_delay(rng: random.Random) -> int:
    """Seconds until a redelivery: mostly a retry within the hour, some a replay days later."""
    if rng.random() < 0.7:
        return rng.randint(1, 3600)
    return rng.randint(3600, 30 * 86_400)


def _envelope(base: Event) -> Event:
    keys = (
        "event_id",
        "cpr",
        "effective_date",
        "recorded_at",
        "source_system",
        "source_case_ref",
        "municipality",
    )
    return {key: base[key] for key in keys if key in base}


def _invalid_record(rng: random.Random, base: Event, until: date) -> Event:
    """An extra record upstream got wrong, derived from ``base`` (which stays valid)."""
    event: Event = {**base, "event_id": new_event_id(rng)}
    cpr = str(base["cpr"])
    kind = rng.randrange(17)
    if kind == 0:
        event["cpr"] = cpr[:9] if rng.random() < 0.5 else cpr + "7"
    elif kind == 1:
        event["cpr"] = cpr[:6] + "AB" + cpr[8:]
    elif kind == 2:  # 30 or 31 February (substitute day + 60)
        event["cpr"] = f"{rng.choice((90, 91))}02{cpr[4:]}"
    elif kind == 3:  # 29 February 1900: the 7th digit puts it in the 1900s, not a leap year
        event["cpr"] = f"890200{rng.choice('0123')}{cpr[7:]}"
    elif kind == 4:
        event["municipality"] = rng.choice(("999", "000", "102", "1010", "42"))
    elif kind == 5:
        event = {
            **_envelope(event),
            "event_type": "BenefitStarted",
            "benefit": rng.choice(("borgerloen", "kontanthjælp", "KONTANTHJAELP")),
        }
    elif kind == 6:
        event = {
            **_envelope(event),
            "event_type": "BenefitStarted",
            "benefit": "kontanthjaelp",
            "target_group": rng.choice(("match_4", "jobklar", "aktivitetsparat")),
        }
    elif kind == 7:
        event = {
            **_envelope(event),
            "event_type": "SocialInterventionStarted",
            "intervention": rng.choice(("sel_999_unknown", "housing first", "sel_85")),
        }
    elif kind == 8:
        event = {
            **_envelope(event),
            "event_type": "BenefitStopped",
            "benefit": "kontanthjaelp",
            "reason": rng.choice(("vacation", "Job", "moved")),
        }
    elif kind == 9:
        event["event_type"] = rng.choice(("BenefitPaused", "CaseClosed", "benefitstarted"))
    elif kind == 10:
        del event[rng.choice([key for key in base if key not in _optional(base)])]
    elif kind == 11:
        year = str(base["effective_date"])[:4]
        event["effective_date"] = rng.choice(
            (f"{year}-02-30", f"{year}-13-01", f"01/03/{year}", f"{year}0301", "")
        )
    elif kind == 12:
        event["recorded_at"] = str(base["recorded_at"]).removesuffix("Z")
    elif kind == 13:  # a CPR number where a staff id belongs
        event = {
            **_envelope(event),
            "event_type": "CaseworkerAssigned",
            "caseworker": f"{rng.randrange(10**10):010d}",
        }
    elif kind == 14:
        event = {
            **_envelope(event),
            "event_type": "MeetingHeld",
            "meeting_kind": rng.choice(("phone", "Joint", "fællessamtale", "")),
        }
    else:  # conflicting redelivery: the same event_id with different content
        event = {**base, "effective_date": shifted(rng, base["effective_date"], until)}
    return event


def arrivals(
    rng: random.Random, events: list[Event], until: date, invalid_share: float
) -> list[Arrival]:
    """The records upstream delivers for ``events``, each with its arrival key.

    About 2% of events are delivered again later; invalid records are added after valid
    ones so that about ``invalid_share`` of the records are bad.
    """
    odds = invalid_share / (1 - invalid_share)
    delivered: list[Arrival] = []
    for event in events:
        arrival = str(event["recorded_at"])
        delivered.append((arrival, event))
        if rng.random() < 0.02:
            delivered.append((later(arrival, _redelivery_delay(rng)), _redelivery(rng, event)))
        if rng.random() < odds:
            invalid = _invalid_record(rng, event, until)
            delivered.append((later(arrival, rng.randint(1, 86_400)), invalid))
    return delivered
