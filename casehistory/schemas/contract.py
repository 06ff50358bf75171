"""Validation at the boundary: a contract record becomes a `ContractEvent` or a `Rejection`.

Every rejection carries a machine-readable `reason` and a human `message`. No
message ever repeats the CPR number (nor any other input value of the `cpr`
field), so rejections can be logged and dead-lettered safely.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property
from typing import Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from casehistory.domain import reference
from casehistory.domain.canonical import canonical_ascii_json
from casehistory.domain.cpr import InvalidCpr, birth_date
from casehistory.domain.facts import EventType, Fact, GroupChangeReason, MeetingKind, StopReason

REQUIRED_FIELDS: dict[EventType, tuple[str, ...]] = {
    EventType.BENEFIT_STARTED: ("benefit",),
    EventType.BENEFIT_STOPPED: ("benefit", "reason"),
    EventType.CITIZEN_MOVED: ("from_municipality", "to_municipality"),
    EventType.TARGET_GROUP_CHANGED: ("from_group", "to_group", "reason"),
    EventType.SOCIAL_INTERVENTION_STARTED: ("intervention",),
    EventType.SOCIAL_INTERVENTION_ENDED: ("intervention",),
    EventType.EVENT_RETRACTED: ("retracted_event_id", "reason"),
    EventType.CASEWORKER_ASSIGNED: ("caseworker",),
    EventType.MEETING_HELD: ("meeting_kind",),
}
OPTIONAL_FIELDS: dict[EventType, tuple[str, ...]] = {
    EventType.BENEFIT_STARTED: ("target_group",),
    EventType.CASEWORKER_ASSIGNED: ("unit",),
    EventType.MEETING_HELD: ("caseworker",),
}

_FACT_TYPE_FIELDS = Fact._fields[Fact._fields.index("benefit") :]
_OWN_FIELDS: dict[EventType, tuple[str, ...]] = {
    event_type: tuple(
        name
        for name in _FACT_TYPE_FIELDS
        if name in required or name in OPTIONAL_FIELDS.get(event_type, ())
    )
    for event_type, required in REQUIRED_FIELDS.items()
}
"""Each type's own fields, in the model's field order."""

# (field, pydantic error type or "*") -> reason code
_REASONS: dict[str, str] = {
    "cpr": "invalid_cpr",
    "event_id": "invalid_event_id",
    "retracted_event_id": "invalid_event_id",
    "event_type": "unknown_event_type",
    "effective_date": "invalid_date",
    "recorded_at": "invalid_timestamp",
    "municipality": "unknown_municipality",
    "from_municipality": "unknown_municipality",
    "to_municipality": "unknown_municipality",
    "benefit": "unknown_benefit",
    "target_group": "unknown_target_group",
    "from_group": "unknown_target_group",
    "to_group": "unknown_target_group",
    "intervention": "unknown_intervention",
    "reason": "unknown_reason",
    "source_system": "invalid_source_system",
    "source_case_ref": "invalid_source_case_ref",
    "caseworker": "invalid_caseworker",
    "unit": "invalid_unit",
    "meeting_kind": "unknown_meeting_kind",
}

REJECTION_REASONS = frozenset(_REASONS.values()) | {
    "date_out_of_range",
    "invalid_field",
    "missing_field",
    "not_a_record",
    "undecodable",
    "event_id_conflict",
}


FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2099, 12, 31)
"""Dates and timestamps outside these days are rejected: sentinels such as 9999-12-31
would otherwise overflow date arithmetic in the rules and read models."""

_DATE_FORM = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NOT_A_DATE = "a date is exactly YYYY-MM-DD (a timestamp is not a date)"
_TIMESTAMP_FORM = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]")


def _out_of_range(day: date) -> PydanticCustomError | None:
    if FIRST_DAY <= day <= LAST_DAY:
        return None
    return PydanticCustomError(
        "out_of_range", f"outside {FIRST_DAY.isoformat()} .. {LAST_DAY.isoformat()}"
    )


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record was not accepted: `reason` for machines, `message` for people."""

    reason: str
    message: str
    field: str | None = None


class ContractEvent(BaseModel):
    """One event of the contract, validated. Unknown extra fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)

    event_id: UUID
    event_type: EventType
    cpr: str
    effective_date: date
    recorded_at: AwareDatetime
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
    retracted_event_id: UUID | None = None
    caseworker: str | None = None
    """Schema v3: a staff id; ten digits are rejected (it could be a CPR number)."""
    unit: str | None = None
    meeting_kind: str | None = None
    migration_batch: str | None = None
    """Schema v2: provenance only; not part of the fact."""

    @field_validator("effective_date", mode="before")
    @classmethod
    def _date_form(cls, value: object) -> object:
        if isinstance(value, datetime) or not isinstance(value, str | date):
            raise ValueError(_NOT_A_DATE)
        if isinstance(value, str) and not _DATE_FORM.fullmatch(value):
            raise ValueError(_NOT_A_DATE)
        return value

    @field_validator("effective_date")
    @classmethod
    def _date_range(cls, value: date) -> date:
        if error := _out_of_range(value):
            raise error
        return value

    @field_validator("recorded_at", mode="before")
    @classmethod
    def _timestamp_form(cls, value: object) -> object:
        if isinstance(value, datetime):
            return value
        if not isinstance(value, str) or not _TIMESTAMP_FORM.match(value):
            raise ValueError("a timestamp is an ISO date and time with Z or an offset")
        return value

    @field_validator("recorded_at")
    @classmethod
    def _timestamp_range(cls, value: datetime) -> datetime:
        # The local date first: converting 0001-01-01T00:30+01:00 to UTC would overflow.
        error = _out_of_range(value.date()) or _out_of_range(value.astimezone(UTC).date())
        if error:
            raise error
        return value

    @field_validator("cpr")
    @classmethod
    def _cpr(cls, value: str) -> str:
        try:
            birth_date(value)
        except InvalidCpr as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("municipality", "from_municipality", "to_municipality")
    @classmethod
    def _municipality(cls, value: str | None) -> str | None:
        if value is not None and value not in reference.municipalities():
            raise ValueError("not a municipality code in the reference table")
        return value

    @field_validator("benefit")
    @classmethod
    def _benefit(cls, value: str | None) -> str | None:
        if value is not None and value not in reference.benefits():
            raise ValueError("not a benefit in the reference table")
        return value

    @field_validator("target_group", "from_group", "to_group")
    @classmethod
    def _target_group(cls, value: str | None) -> str | None:
        if value is not None and value not in reference.target_groups():
            raise ValueError("not a target group in the reference table")
        return value

    @field_validator("intervention")
    @classmethod
    def _intervention(cls, value: str | None) -> str | None:
        if value is not None and value not in reference.interventions():
            raise ValueError("not an intervention in the reference table")
        return value

    @field_validator("caseworker")
    @classmethod
    def _caseworker(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("must not be empty")
        if _TEN_DIGITS.fullmatch(value.strip()):
            raise ValueError("ten digits could be a CPR number, not a staff id")
        return value

    @field_validator("meeting_kind")
    @classmethod
    def _meeting_kind(cls, value: str | None) -> str | None:
        if value is not None and value not in _MEETING_KINDS:
            raise ValueError("not a MeetingHeld kind")
        return value

    @field_validator(
        "source_system", "source_case_ref", "reason", "caseworker", "unit", "migration_batch"
    )
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is not None and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("not valid Unicode text (a lone surrogate)") from None
        return value

    @field_validator("source_system")
    @classmethod
    def _source_system(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _type_fields(self) -> ContractEvent:
        missing = [n for n in REQUIRED_FIELDS[self.event_type] if getattr(self, n) is None]
        if missing:
            raise ValueError(f"missing for {self.event_type.value}: {', '.join(missing)}")
        if self.event_type is EventType.BENEFIT_STOPPED and self.reason not in _STOP_REASONS:
            raise ValueError("reason: not a BenefitStopped reason")
        if (
            self.event_type is EventType.TARGET_GROUP_CHANGED
            and self.reason not in _GROUP_CHANGE_REASONS
        ):
            raise ValueError("reason: not a TargetGroupChanged reason")
        return self

    @cached_property
    def _content(self) -> dict[str, Any]:
        # Built field by field: pydantic's model_dump cost about 3 µs per event on the
        # ingest's hot path. Tests hold the result equal to the model_dump form.
        content: dict[str, Any] = {
            "event_id": str(self.event_id),
            "event_type": self.event_type._value_,  # (`.value` is a slow property)
            "cpr": self.cpr,
            "effective_date": self.effective_date.isoformat(),
            "recorded_at": self.recorded_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "source_system": self.source_system,
            "municipality": self.municipality,
        }
        if self.source_case_ref is not None:
            content["source_case_ref"] = self.source_case_ref
        for name in _OWN_FIELDS[self.event_type]:
            value = getattr(self, name)
            if value is not None:
                content[name] = value if isinstance(value, str) else str(value)
        return content

    def canonical(self) -> dict[str, Any]:
        """The record as plain JSON values, without nulls and without other types' fields."""
        data = dict(self._content)
        if self.migration_batch is not None:
            data["migration_batch"] = self.migration_batch
        return data

    def avro_datum(self) -> dict[str, Any]:
        """The event as a datum of the current Avro schema."""
        data = self.canonical()
        data["effective_date"] = self.effective_date
        data["recorded_at"] = self.recorded_at.astimezone(UTC)
        return data

    def content_hash(self) -> str:
        """Equal for redeliveries that differ only in key order, null versus absent, or
        `migration_batch` (provenance, not content: a redelivery through schema v1 or a
        re-run migration is the same fact).

        The CPR is left out: a digest over it could be inverted by trying the CPR
        numbers of a birth date. Redeliveries meet in one citizen's history, which
        the CPR already chose, so nothing is lost for telling them apart.
        """
        content = {k: v for k, v in self._content.items() if k != "cpr"}
        return hashlib.sha256(canonical_ascii_json(content)).hexdigest()

    def to_fact(self) -> Fact:
        content = self._content
        return Fact(
            content["event_id"],
            self.event_type,
            self.effective_date,
            self.recorded_at.astimezone(UTC),
            self.source_system,
            self.municipality,
            self.source_case_ref,
            *[content.get(name) for name in _FACT_TYPE_FIELDS],
        )


_STOP_REASONS = frozenset(r.value for r in StopReason)
_MEETING_KINDS = frozenset(k.value for k in MeetingKind)
_TEN_DIGITS = re.compile(r"[0-9]{10}")
_GROUP_CHANGE_REASONS = frozenset(r.value for r in GroupChangeReason)


def validate(record: object) -> ContractEvent | Rejection:
    """Validate one decoded record against the contract."""
    if not isinstance(record, dict):
        return Rejection("not_a_record", "a contract record is a JSON object / Avro record")
    try:
        return ContractEvent.model_validate(record)
    except ValidationError as error:
        return _rejection(error)


def _rejection(error: ValidationError) -> Rejection:
    first = error.errors(include_input=False, include_url=False)[0]
    loc = first["loc"]
    field = str(loc[0]) if loc else None
    kind: Literal["missing"] | str = first["type"]
    message = first["msg"].removeprefix("Value error, ")
    if kind == "missing":
        return Rejection("missing_field", f"required field '{field}' is missing", field)
    if field is None:  # the model validator: type-specific rules
        reason = "unknown_reason" if message.startswith("reason:") else "missing_field"
        return Rejection(reason, message, None)
    if field == "recorded_at" and kind == "timezone_aware":
        message = "timestamps must carry Z or an explicit UTC offset"
    if kind == "out_of_range":
        return Rejection("date_out_of_range", f"{field}: {message}", field)
    return Rejection(_REASONS.get(field, "invalid_field"), f"{field}: {message}", field)
