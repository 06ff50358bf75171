"""The event contract in Avro: versioned schema files, parsed with fastavro.

`event.vN.avsc` are the published versions; the newest is the reader schema.
Every version must read data written by every older one.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_NAME = "dk.casehistory.CaseHistoryEvent"


@cache
def schema_versions() -> dict[int, dict[str, Any]]:
    """Every published schema version, parsed, by version number."""
    import fastavro

    versions: dict[int, dict[str, Any]] = {}
    for entry in resources.files("casehistory.schemas").iterdir():
        name = entry.name
        if name.startswith("event.v") and name.endswith(".avsc"):
            version = int(name.removeprefix("event.v").removesuffix(".avsc"))
            parsed = fastavro.parse_schema(json.loads(entry.read_text("utf-8")))
            assert isinstance(parsed, dict)
            versions[version] = parsed
    return dict(sorted(versions.items()))


def current_version() -> int:
    return max(schema_versions())


def reader_schema() -> dict[str, Any]:
    """The newest schema: what every reader resolves data to."""
    return schema_versions()[current_version()]


def event_types(version: int) -> frozenset[str]:
    """The event types a schema version can carry (v3 added CaseworkerAssigned, MeetingHeld)."""
    for schema_field in schema_versions()[version]["fields"]:
        if schema_field["name"] == "event_type":
            return frozenset(schema_field["type"]["symbols"])
    raise KeyError(f"schema v{version} has no event_type")
