"""Building facts and contract records for tests, in the contract's words."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time
from typing import Any

from casehistory.domain.citizen import FACT_FIELDS
from casehistory.domain.facts import EventType, Fact

_ids = itertools.count(1)


def next_id() -> str:
    return f"00000000-0000-4000-8000-{next(_ids):012d}"


def fact(
    event_type: EventType,
    effective: date,
    *,
    recorded: datetime | None = None,
    source_system: str = "fasit",
    municipality: str = "101",
    event_id: str | None = None,
    **fields: Any,
) -> Fact:
    return Fact(
        event_id=event_id or next_id(),
        event_type=event_type,
        effective_date=effective,
        recorded_at=recorded or datetime.combine(effective, time(9), UTC),
        source_system=source_system,
        municipality=municipality,
        **fields,
    )


def started(effective: date, benefit: str = "kontanthjaelp", **kw: Any) -> Fact:
    return fact(EventType.BENEFIT_STARTED, effective, benefit=benefit, **kw)


def stopped(
    effective: date, benefit: str = "kontanthjaelp", reason: str = "job", **kw: Any
) -> Fact:
    return fact(EventType.BENEFIT_STOPPED, effective, benefit=benefit, reason=reason, **kw)


def retraction(of: Fact, effective: date | None = None, **kw: Any) -> Fact:
    return fact(
        EventType.EVENT_RETRACTED,
        effective or of.effective_date,
        retracted_event_id=of.event_id,
        reason="correction",
        **kw,
    )


def record(fact_: Fact, cpr: str = "6101901234") -> dict[str, Any]:
    """The contract JSON form of a fact."""
    data: dict[str, Any] = {
        "event_id": fact_.event_id,
        "event_type": fact_.event_type.value,
        "cpr": cpr,
        "effective_date": fact_.effective_date.isoformat(),
        "recorded_at": fact_.recorded_at.isoformat().replace("+00:00", "Z"),
        "source_system": fact_.source_system,
        "municipality": fact_.municipality,
    }
    for name in ("source_case_ref", *FACT_FIELDS):
        value = getattr(fact_, name)
        if value is not None:
            data[name] = value
    return data


def assigned(effective: date, caseworker: str, unit: str | None = None, **kw: Any) -> Fact:
    return fact(
        EventType.CASEWORKER_ASSIGNED, effective, caseworker=caseworker, unit=unit, **kw
    )


def meeting(effective: date, kind: str, caseworker: str | None = None, **kw: Any) -> Fact:
    return fact(EventType.MEETING_HELD, effective, meeting_kind=kind, caseworker=caseworker, **kw)


def regrouped(effective: date, from_group: str, to_group: str, reason: str, **kw: Any) -> Fact:
    return fact(
        EventType.TARGET_GROUP_CHANGED,
        effective,
        from_group=from_group,
        to_group=to_group,
        reason=reason,
        **kw,
    )
