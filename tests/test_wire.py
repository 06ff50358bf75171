"""Avro on the wire: every schema version decodes to the newest, the new types included."""

from __future__ import annotations

from typing import Any

import pytest

from casehistory import schemas
from casehistory.schemas import wire
from casehistory.schemas.contract import ContractEvent, validate
from tests.test_contract import valid

ASSIGNED = valid(event_type="CaseworkerAssigned", caseworker="jc-4711", unit="Team Nord")
MEETING = valid(event_type="MeetingHeld", meeting_kind="joint", caseworker="jc-4711")
STARTED = valid(migration_batch="fasit-conversion-2018")


def checked(record: dict[str, Any]) -> ContractEvent:
    event = validate(record)
    assert isinstance(event, ContractEvent), event
    return event


def test_the_newest_version_carries_the_caseworker_and_meeting_types() -> None:
    assert schemas.current_version() == 3
    assert schemas.event_types(2) | {"CaseworkerAssigned", "MeetingHeld"} == schemas.event_types(3)
    assert schemas.event_types(1) == schemas.event_types(2)


@pytest.mark.parametrize("version", sorted(schemas.schema_versions()))
def test_every_version_decodes_to_the_newest(version: int) -> None:
    event = checked(STARTED)
    known = {f["name"] for f in schemas.schema_versions()[version]["fields"]}
    datum = {k: v for k, v in event.avro_datum().items() if k in known}  # as that producer
    record, writer = wire.decode(wire.encode(datum, version))
    assert writer == version
    assert set(record) == {f["name"] for f in schemas.reader_schema()["fields"]}
    assert record["caseworker"] is None and record["meeting_kind"] is None
    again = checked(record)
    assert again.content_hash() == event.content_hash()
    assert again.to_fact() == event.to_fact()
    assert again.migration_batch == (None if version == 1 else "fasit-conversion-2018")


@pytest.mark.parametrize("record", [ASSIGNED, MEETING, valid(event_type="MeetingHeld",
                                                           meeting_kind="first")])
def test_the_new_types_round_trip(record: dict[str, Any]) -> None:
    event = checked(record)
    decoded, version = wire.decode(wire.encode(event.avro_datum()))
    assert version == 3
    again = checked(decoded)
    assert again.canonical() == event.canonical()
    assert again.to_fact() == event.to_fact()


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_version_cannot_carry_the_new_types(version: int) -> None:
    with pytest.raises(ValueError):
        wire.encode(checked(MEETING).avro_datum(), version)
