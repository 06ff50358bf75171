"""Validation at the boundary: every rejection reason, and what counts as the same content."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from casehistory.domain.facts import EventType, Fact
from casehistory.population.generator import generate_population
from casehistory.schemas.contract import (
    OPTIONAL_FIELDS,
    REJECTION_REASONS,
    REQUIRED_FIELDS,
    ContractEvent,
    Rejection,
    validate,
)

CPR = "6101901234"


def valid(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "6f1c0a52-3b0e-4d7e-9a3c-1b2d3e4f5a6b",
        "event_type": "BenefitStarted",
        "cpr": CPR,
        "effective_date": "2020-01-06",
        "recorded_at": "2020-01-07T08:30:00Z",
        "source_system": "fasit",
        "source_case_ref": "S-1",
        "municipality": "101",
        "benefit": "kontanthjaelp",
        "target_group": "jobparat",
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not ...}


def rejected(record: object) -> Rejection:
    result = validate(record)
    assert isinstance(result, Rejection), result
    return result


def test_a_valid_record_passes_and_extra_fields_are_ignored() -> None:
    assert isinstance(validate(valid(new_upstream_field="x")), ContractEvent)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"cpr": "12345"}, "invalid_cpr"),
        ({"cpr": "6113901234"}, "invalid_cpr"),  # month 13
        ({"cpr": "2902001234"}, "invalid_cpr"),  # 29 February 1900
        ({"cpr": "abcdefghij"}, "invalid_cpr"),
        ({"event_id": "not-a-uuid"}, "invalid_event_id"),
        ({"event_type": "BenefitPaused"}, "unknown_event_type"),
        ({"effective_date": "2020-02-30"}, "invalid_date"),
        ({"recorded_at": "2020-01-07T08:30:00"}, "invalid_timestamp"),
        ({"effective_date": "2015-03-01T00:00:00Z"}, "invalid_date"),  # a timestamp
        ({"effective_date": "20150301"}, "invalid_date"),
        ({"effective_date": 1425168000}, "invalid_date"),
        ({"recorded_at": 1578385800}, "invalid_timestamp"),  # no Z, no offset
        ({"recorded_at": "1578385800"}, "invalid_timestamp"),
        ({"recorded_at": "2020-01-07"}, "invalid_timestamp"),
        ({"effective_date": "9999-12-31"}, "date_out_of_range"),
        ({"effective_date": "0001-01-01"}, "date_out_of_range"),
        ({"effective_date": "1899-12-31"}, "date_out_of_range"),
        ({"effective_date": "2100-01-01"}, "date_out_of_range"),
        ({"recorded_at": "0001-01-01T00:30:00+01:00"}, "date_out_of_range"),
        ({"recorded_at": "9999-12-31T23:59:59Z"}, "date_out_of_range"),
        ({"recorded_at": "1900-01-01T00:30:00+01:00"}, "date_out_of_range"),  # 1899 in UTC
        ({"recorded_at": "2099-12-31T23:30:00-01:00"}, "date_out_of_range"),  # 2100 in UTC
        ({"municipality": "999"}, "unknown_municipality"),
        ({"benefit": "lottery"}, "unknown_benefit"),
        ({"target_group": "match_9"}, "unknown_target_group"),
        ({"benefit": ...}, "missing_field"),
        ({"source_system": ...}, "missing_field"),
        ({"source_system": "  "}, "invalid_source_system"),
        ({"source_system": "fasit\udc80"}, "invalid_source_system"),  # lone surrogate
        ({"source_case_ref": "FAS-\ud800"}, "invalid_source_case_ref"),
        ({"event_type": "BenefitStopped", "reason": "holiday"}, "unknown_reason"),
        (
            {"event_type": "SocialInterventionStarted", "intervention": "yoga"},
            "unknown_intervention",
        ),
        (
            {"event_type": "CitizenMoved", "from_municipality": "101", "to_municipality": "000"},
            "unknown_municipality",
        ),
        (
            {"event_type": "EventRetracted", "retracted_event_id": "x", "reason": "typo"},
            "invalid_event_id",
        ),
        ({"event_type": "CaseworkerAssigned"}, "missing_field"),
        ({"event_type": "CaseworkerAssigned", "caseworker": "0101901234"}, "invalid_caseworker"),
        ({"event_type": "CaseworkerAssigned", "caseworker": " "}, "invalid_caseworker"),
        ({"event_type": "CaseworkerAssigned", "caseworker": " 0101901234 "}, "invalid_caseworker"),
        (
            {"event_type": "CaseworkerAssigned", "caseworker": "jc-1", "unit": "T\udc80"},
            "invalid_unit",
        ),
        ({"event_type": "MeetingHeld"}, "missing_field"),
        ({"event_type": "MeetingHeld", "meeting_kind": "lunch"}, "unknown_meeting_kind"),
        (
            {"event_type": "MeetingHeld", "meeting_kind": "joint", "caseworker": "6101901234"},
            "invalid_caseworker",
        ),
    ],
)
def test_rejection_reasons(changes: dict[str, Any], reason: str) -> None:
    rejection = rejected(valid(**changes))
    assert rejection.reason == reason
    assert rejection.reason in REJECTION_REASONS
    assert rejection.message
    assert CPR not in rejection.message


@pytest.mark.parametrize(
    "changes",
    [
        {"effective_date": "1900-01-01"},
        {"effective_date": "2099-12-31"},
        {"effective_date": date(2099, 12, 31)},  # as Avro decodes it
        {"recorded_at": "1900-01-01T00:00:00Z"},
        {"recorded_at": "2099-12-31T23:59:59Z"},
        {"recorded_at": "2099-12-31T23:30:00+01:00"},
        {"recorded_at": "2020-01-07 08:30:00+01:00"},
        {"recorded_at": datetime(2020, 1, 7, 8, 30, tzinfo=UTC)},  # as Avro decodes it
    ],
)
def test_the_edges_of_the_range_are_accepted(changes: dict[str, Any]) -> None:
    assert isinstance(validate(valid(**changes)), ContractEvent)


@pytest.mark.parametrize(
    "changes",
    [
        {"effective_date": date(1, 1, 1)},
        {"effective_date": datetime(2015, 3, 1, tzinfo=UTC)},
        {"recorded_at": datetime(1, 1, 1, tzinfo=UTC)},
    ],
)
def test_decoded_avro_values_are_held_to_the_same_rules(changes: dict[str, Any]) -> None:
    assert rejected(valid(**changes)).reason in {"invalid_date", "date_out_of_range"}


def test_a_staff_id_that_is_not_ten_digits_is_accepted() -> None:
    for staff in ("123456789", "12345678901", "jc-0101901234", "0101901234x"):
        checked = validate(valid(event_type="CaseworkerAssigned", caseworker=staff))
        assert isinstance(checked, ContractEvent), staff
        assert checked.to_fact().caseworker == staff


def test_not_a_record() -> None:
    assert rejected(["a", "list"]).reason == "not_a_record"


def test_no_rejection_message_repeats_the_cpr() -> None:
    for bad in ("6113901234", "61019012345", "2902001234"):
        assert bad not in rejected(valid(cpr=bad)).message


def test_content_ignores_key_order_and_null_versus_absent() -> None:
    a = validate(valid(source_case_ref=...))
    b = validate(dict(reversed(list(valid(source_case_ref=None).items()))))
    assert isinstance(a, ContractEvent) and isinstance(b, ContractEvent)
    assert a.content_hash() == b.content_hash()
    c = validate(valid(effective_date="2020-01-07"))
    assert isinstance(c, ContractEvent) and c.content_hash() != a.content_hash()


def test_migration_batch_is_not_content() -> None:
    plain = validate(valid())
    batched = validate(valid(migration_batch="fasit-conversion-2018"))
    rerun = validate(valid(migration_batch="fasit-conversion-2018-b"))
    assert isinstance(plain, ContractEvent) and isinstance(batched, ContractEvent)
    assert isinstance(rerun, ContractEvent)
    assert plain.content_hash() == batched.content_hash() == rerun.content_hash()
    assert batched.canonical()["migration_batch"] == "fasit-conversion-2018"  # kept as provenance
    assert batched.avro_datum()["migration_batch"] == "fasit-conversion-2018"


def test_offsets_are_normalised_to_utc() -> None:
    a = validate(valid(recorded_at="2020-01-07T09:30:00+01:00"))
    b = validate(valid())
    assert isinstance(a, ContractEvent) and isinstance(b, ContractEvent)
    assert a.content_hash() == b.content_hash()


def _dumped_content(event: ContractEvent) -> dict[str, Any]:
    """The canonical content as first defined: pydantic's JSON dump, minus other types' fields."""
    own = {*REQUIRED_FIELDS[event.event_type], *OPTIONAL_FIELDS.get(event.event_type, ())}
    type_fields = {
        name for names in (*REQUIRED_FIELDS.values(), *OPTIONAL_FIELDS.values()) for name in names
    }
    data = event.model_dump(mode="json", exclude_none=True)
    data["recorded_at"] = event.recorded_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return {k: v for k, v in data.items() if k not in type_fields or k in own}


def test_canonical_content_and_fact_equal_the_model_dump_form() -> None:
    """Every event type, with and without optional fields, offsets and migration batches."""
    records = list(generate_population(300, seed=11, invalid_share=0.0))
    records += [
        valid(recorded_at="2020-01-07T09:30:00+01:00", source_case_ref=None, migration_batch="m1"),
        valid(event_type="BenefitStopped", reason="job", target_group="jobparat"),
        valid(event_type="CaseworkerAssigned", caseworker="jc-4711", unit="Team Nord"),
        valid(event_type="CaseworkerAssigned", caseworker="jc-4712", meeting_kind="joint"),
        valid(event_type="MeetingHeld", meeting_kind="joint", caseworker="jc-4711", unit="x"),
        valid(event_type="MeetingHeld", meeting_kind="visitation", source_case_ref=None),
    ]
    events = [e for r in records if isinstance(e := validate(r), ContractEvent)]
    assert {e.event_type for e in events} == set(EventType)
    for event in events:
        dumped = _dumped_content(event)
        assert event.canonical() == dumped
        assert list(event.canonical()) == list(dumped)
        fact = event.to_fact()
        assert fact._asdict() == {
            **dict.fromkeys(Fact._fields),
            **{k: v for k, v in dumped.items() if k in Fact._fields},
            "event_type": event.event_type,
            "effective_date": event.effective_date,
            "recorded_at": event.recorded_at.astimezone(UTC),
        }


def test_a_field_of_the_wrong_type_has_a_listed_reason() -> None:
    """`invalid_field` (e.g. a migration batch that is not a string) is one of the reasons."""
    from casehistory.schemas.contract import REJECTION_REASONS, Rejection
    from tests.factories import record, started

    checked = validate({**record(started(date(2020, 1, 1))), "migration_batch": 5})
    assert isinstance(checked, Rejection) and checked.reason == "invalid_field"
    assert checked.reason in REJECTION_REASONS
