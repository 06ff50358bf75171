"""Contract files in and out: JSON Lines and Avro object container files.

Reading never raises on bad content: a line that is not JSON, or an Avro block
that does not decode, becomes an `Incoming` with a decode error (and its
position), so it can be dead-lettered with its reason while the rest is read.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast
from uuid import UUID

import fastavro
import orjson
from fastavro.read import HEADER_SCHEMA

from casehistory import schemas

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
    headers: tuple[tuple[str, bytes | None], ...] = ()


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
    """How many records a file holds (JSON Lines: non-blank lines, without parsing them).

    In an Avro container a broken block counts as the records its header declares,
    or as one if that is unreadable too.
    """
    if is_avro_container(path):
        with path.open("rb") as handle:
            return sum(
                piece.num_records if isinstance(piece, GoodBlock) else piece.declared_records
                for piece in _avro_blocks(handle, decode=False)
            )
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def _file_provenance(path: Path) -> dict[str, Any]:
    """Where a file's records come from: its name, and its full path for the ingest ledger."""
    return {"source": "file", "file": path.name, "path": str(path.resolve())}


def _read_jsonl(path: Path) -> Iterator[Incoming]:
    origin = _file_provenance(path)
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            provenance = {**origin, "line": number}
            try:
                yield Incoming(parse_json(raw), raw, provenance)
            except ValueError as error:
                yield Incoming(None, raw, provenance, f"not JSON: {error}", type(error).__name__)


def parse_json(raw: bytes) -> Any:
    """What `json.loads` makes of a line, parsed by orjson (a quarter of the cost) where
    the two agree: a flat JSON object of strings, integers, booleans and nulls (a record).

    orjson refuses what `json` accepts (NaN, lone surrogates, a BOM, UTF-16) and reads an
    integer beyond 64 bits as a float; any other line is parsed again by `json`, so its
    record is read, and rejected or not, exactly as before.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)
    if type(value) is dict and all(type(v) in _FLAT for v in value.values()):
        return value
    return json.loads(raw)


_FLAT = frozenset({str, int, bool, type(None)})


BROKEN_BLOCK_KEPT = 1024 * 1024
"""At most this many bytes of a broken Avro block are kept in its dead letter."""


@dataclass(frozen=True, slots=True)
class GoodBlock:
    """A block of an Avro container that decodes (its records, unless only counted)."""

    num_records: int
    records: list[Any]


@dataclass(frozen=True, slots=True)
class BrokenBlock:
    """Bytes of an Avro container between two sync markers that do not decode."""

    offset: int
    """Byte offset of the block in the file."""
    raw: bytes
    error: str
    error_class: str

    @property
    def declared_records(self) -> int:
        """The record count in the block's header if it is plausible, else 1."""
        try:
            count = fastavro.schemaless_reader(io.BytesIO(self.raw), "long")
        except Exception:
            return 1
        return count if isinstance(count, int) and 0 < count <= len(self.raw) else 1


def _read_avro(path: Path) -> Iterator[Incoming]:
    """Records of an Avro container; a block that does not decode becomes one undecodable
    `Incoming` (its bytes and byte offset), and reading goes on at the next sync marker."""
    origin = _file_provenance(path)
    number = 0  # records read or skipped so far
    with path.open("rb") as handle:
        for block_number, piece in enumerate(_avro_blocks(handle), start=1):
            if isinstance(piece, GoodBlock):
                for record in piece.records:
                    number += 1
                    assert isinstance(record, dict)
                    provenance = {**origin, "record": number}
                    yield Incoming(record, to_json_line(record), provenance)
                continue
            provenance = {
                **origin, "record": number + 1, "block": block_number, "byte_offset": piece.offset,
            }
            message = (
                f"Avro container block {block_number} at byte {piece.offset} does not decode "
                f"({piece.error_class}: {piece.error})"
            )
            yield Incoming(None, piece.raw[:BROKEN_BLOCK_KEPT], provenance, message,
                           piece.error_class)
            number += piece.declared_records


def _avro_blocks(handle: BinaryIO, decode: bool = True) -> Iterator[GoodBlock | BrokenBlock]:
    """The container's blocks, each decoded (unless not `decode`) or broken; never raises.

    fastavro stops at the first bad block. On one, the bytes up to the next sync
    marker are the broken block, and reading resumes after that marker with the
    file's header in front, so the rest of the file is read as usual.
    """
    try:
        header_record = fastavro.schemaless_reader(handle, HEADER_SCHEMA)
        assert isinstance(header_record, dict)
        sync: bytes = header_record["sync"]
    except Exception as error:
        handle.seek(0)
        yield BrokenBlock(0, handle.read(BROKEN_BLOCK_KEPT), f"header: {error}",
                          type(error).__name__)
        return
    header_end = handle.tell()
    handle.seek(0)
    header = handle.read(header_end)
    start: int | None = header_end
    while start is not None:
        block_start = start
        try:
            resumed = cast(BinaryIO, _Resumed(header, handle, start))  # fastavro: read and tell
            blocks = fastavro.block_reader(resumed, schemas.reader_schema())
            for block in blocks:
                # Decoded here, so a record that does not decode breaks its block.
                yield GoodBlock(block.num_records, list(block) if decode else [])
                block_start = handle.tell()
            start = None
            if block_start < _size(handle):  # fastavro ends quietly on a cut-off last block
                handle.seek(block_start)
                raw = handle.read(BROKEN_BLOCK_KEPT)
                yield BrokenBlock(block_start, raw, "the file ends inside this block", "EOFError")
        except Exception as error:
            end = _next_sync(handle, sync, block_start)
            length = (end or _size(handle)) - block_start
            handle.seek(block_start)
            raw = handle.read(min(BROKEN_BLOCK_KEPT, length))
            if raw:
                yield BrokenBlock(block_start, raw, str(error)[:200], type(error).__name__)
            start = end


class _Resumed:
    """A container's header followed by its bytes from `start`, for fastavro to read on."""

    def __init__(self, header: bytes, handle: BinaryIO, start: int) -> None:
        self._header = header
        self._handle = handle
        self._served = 0
        self._start = start
        handle.seek(start)

    def tell(self) -> int:
        return self._served + self._handle.tell() - self._start

    def read(self, size: int = -1) -> bytes:
        if self._served >= len(self._header):
            return self._handle.read(size)
        end = len(self._header) if size < 0 else min(len(self._header), self._served + size)
        chunk = self._header[self._served : end]
        self._served = end
        if size < 0:
            return chunk + self._handle.read()
        return chunk + (self._handle.read(size - len(chunk)) if len(chunk) < size else b"")


def _next_sync(handle: BinaryIO, sync: bytes, after: int) -> int | None:
    """The file offset just past the first sync marker after `after`, if there is one."""
    position = after
    handle.seek(position)
    tail = b""
    while chunk := handle.read(1024 * 1024):
        window = tail + chunk
        found = window.find(sync)
        if found >= 0:
            return position - len(tail) + found + len(sync)
        tail = window[-(len(sync) - 1) :]
        position += len(chunk)
    return None


def _size(handle: BinaryIO) -> int:
    """The file's length (leaves the handle at its end)."""
    return handle.seek(0, io.SEEK_END)


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
