"""Facts: the contract's events as plain, validated domain values (no CPR inside)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import NamedTuple


class EventType(StrEnum):
    BENEFIT_STARTED = "BenefitStarted"
    BENEFIT_STOPPED = "BenefitStopped"
    CITIZEN_MOVED = "CitizenMoved"
    TARGET_GROUP_CHANGED = "TargetGroupChanged"
    SOCIAL_INTERVENTION_STARTED = "SocialInterventionStarted"
    SOCIAL_INTERVENTION_ENDED = "SocialInterventionEnded"
    EVENT_RETRACTED = "EventRetracted"
    CASEWORKER_ASSIGNED = "CaseworkerAssigned"
    MEETING_HELD = "MeetingHeld"


class StopReason(StrEnum):
    JOB = "job"
    EDUCATION = "education"
    SELF_SUPPORT = "self_support"
    MOVED_MUNICIPALITY = "moved_municipality"
    NO_CONTACT_OR_SANCTION = "no_contact_or_sanction"
    TARGET_GROUP_CHANGE = "target_group_change"
    BENEFIT_CHANGE = "benefit_change"
    PENSION = "pension"
    EMIGRATED = "emigrated"
    DIED = "died"
    SYSTEM_CONVERSION = "system_conversion"
    OTHER = "other"


class GroupChangeReason(StrEnum):
    REFORM = "reform"
    REASSESSMENT = "reassessment"
    AGE = "age"
    OTHER = "other"


class MeetingKind(StrEnum):
    VISITATION = "visitation"
    FIRST = "first"
    JOINT = "joint"
    """The fællessamtale with the coordinating caseworker and the job consultant."""
    OTHER = "other"


class BreakKind(StrEnum):
    """The four breaks that hide a citizen's real duration, plus benefit changes."""

    MOVE = "move"
    CONVERSION = "conversion"
    DATA_BREAK = "data_break"
    REFORM = "reform"
    BENEFIT_CHANGE = "benefit_change"


BREAK_KIND_OF_REASON: dict[str, BreakKind] = {
    StopReason.MOVED_MUNICIPALITY: BreakKind.MOVE,
    StopReason.SYSTEM_CONVERSION: BreakKind.CONVERSION,
    StopReason.NO_CONTACT_OR_SANCTION: BreakKind.DATA_BREAK,
    StopReason.TARGET_GROUP_CHANGE: BreakKind.REFORM,
    StopReason.BENEFIT_CHANGE: BreakKind.BENEFIT_CHANGE,
}


class Fact(NamedTuple):
    """One published fact about a citizen, in the contract's terms.

    The envelope fields are always set; the type's own fields are set for the
    types that have them and None otherwise. A named tuple: immutable, and about
    three times cheaper to build than a frozen dataclass (one is built per event
    on both the ingest and the rebuild path).
    """

    event_id: str
    event_type: EventType
    effective_date: date
    recorded_at: datetime
    source_system: str
    municipality: str
    source_case_ref: str | None = None
    benefit: str | None = None
    target_group: str | None = None
    reason: str | None = None
    from_municipality: str | None = None
    to_municipality: str | None = None
    from_group: str | None = None
    to_group: str | None = None
    intervention: str | None = None
    retracted_event_id: str | None = None
    caseworker: str | None = None
    """The job centre's staff id (CaseworkerAssigned; optional on MeetingHeld)."""
    unit: str | None = None
    meeting_kind: str | None = None

    @property
    def order_key(self) -> tuple[date, int, datetime, str]:
        """Processing order on one timeline: effective date, stops/ends before starts."""
        opens = 0 if self.event_type in _CLOSING else 1
        return (self.effective_date, opens, self.recorded_at, self.event_id)


_CLOSING = frozenset({EventType.BENEFIT_STOPPED, EventType.SOCIAL_INTERVENTION_ENDED})
