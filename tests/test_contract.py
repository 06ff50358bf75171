"""Validation at the boundary: every rejection reason, and what counts as the same content."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest

from casehistory.generator import generate_population
from domain.facts import EventType, Fact
from schemas.contract import REJECTION_REASONS, REQUIRED_FIELDS, ContractEvent, Rejection, validate

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
    ],
)
def test_rejection_reasons(changes: dict[str, Any], reason: str) -> None:
    rejection = rejected(valid(**changes))
    assert rejection.reason == reason
    assert rejection.reason in REJECTION_REASONS
    assert rejection.message
    assert CPR not in rejection.message


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


def test_offsets_are_normalised_to_utc() -> None:
    a = validate(valid(recorded_at="2020-01-07T09:30:00+01:00"))
    b = validate(valid())
    assert isinstance(a, ContractEvent) and isinstance(b, ContractEvent)
    assert a.content_hash() == b.content_hash()


def _dumped_content(event: ContractEvent) -> dict[str, Any]:
    """The canonical content as first defined: pydantic's JSON dump, minus other types' fields."""
    own = set(REQUIRED_FIELDS[event.event_type])
    if event.event_type is EventType.BENEFIT_STARTED:
        own.add("target_group")
    type_fields = {name for names in REQUIRED_FIELDS.values() for name in names} | {"target_group"}
    data = event.model_dump(mode="json", exclude_none=True)
    data["recorded_at"] = event.recorded_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return {k: v for k, v in data.items() if k not in type_fields or k in own}


def test_canonical_content_and_fact_equal_the_model_dump_form() -> None:
    """Every event type, with and without optional fields, offsets and migration batches."""
    records = list(generate_population(300, seed=11, invalid_share=0.0))
    records += [
        valid(recorded_at="2020-01-07T09:30:00+01:00", source_case_ref=None, migration_batch="m1"),
        valid(event_type="BenefitStopped", reason="job", target_group="jobparat"),
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
