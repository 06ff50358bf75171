"""Contract files in and out: JSON Lines and Avro object container files.

Reading never raises on bad content: a line that is not JSON becomes an
`Incoming` with a decode error, so it can be dead-lettered with its reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import fastavro

import schemas

AVRO_MAGIC = b"Obj\x01"


@dataclass(frozen=True, slots=True)
class Incoming:
    """One record as it arrived: decoded payload (or the decode error) and provenance."""

    payload: object
    raw: bytes
    provenance: dict[str, Any] = field(default_factory=dict)
    decode_error: str | None = None
    error_class: str | None = None
    """The exception class behind `decode_error`."""
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


def is_avro_container(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == AVRO_MAGIC


def read_records(path: Path) -> Iterator[Incoming]:
    """Records of a JSON Lines or Avro container file, detected by content."""
    if is_avro_container(path):
        yield from _read_avro(path)
    else:
        yield from _read_jsonl(path)


def count_records(path: Path) -> int:
    """How many records a file holds (JSON Lines: non-blank lines, without parsing them)."""
    if is_avro_container(path):
        with path.open("rb") as handle:
            return sum(block.num_records for block in fastavro.block_reader(handle))
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def _read_jsonl(path: Path) -> Iterator[Incoming]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            provenance = {"source": "file", "file": path.name, "line": number}
            try:
                yield Incoming(json.loads(raw), raw, provenance)
            except ValueError as error:
                yield Incoming(None, raw, provenance, f"not JSON: {error}", type(error).__name__)


def _read_avro(path: Path) -> Iterator[Incoming]:
    with path.open("rb") as handle:
        reader = fastavro.reader(handle, reader_schema=schemas.reader_schema())
        for number, record in enumerate(reader, start=1):
            assert isinstance(record, dict)
            provenance = {"source": "file", "file": path.name, "record": number}
            yield Incoming(record, to_json_line(record), provenance)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date | UUID):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json_line(record: dict[str, Any]) -> bytes:
    """A record as one JSON line, nulls left out (the contract's JSON form)."""
    present = {k: v for k, v in record.items() if v is not None}
    return json.dumps(present, default=_json_default, ensure_ascii=False).encode("utf-8")


def write_jsonl(records: Iterable[dict[str, Any]], path: Path) -> int:
    count = 0
    with path.open("wb") as handle:
        for record in records:
            handle.write(to_json_line(record) + b"\n")
            count += 1
    return count


def write_avro(records: Iterable[dict[str, Any]], path: Path) -> int:
    """Write contract records (already valid) as an Avro container with the current schema."""
    counted = _Counter(records)
    with path.open("wb") as handle:
        fastavro.writer(handle, schemas.reader_schema(), counted, codec="deflate")
    return counted.count


class _Counter:
    def __init__(self, records: Iterable[dict[str, Any]]) -> None:
        self._records = records
        self.count = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for record in self._records:
            self.count += 1
            yield record
