"""Avro single-object encoding on the wire, resolving any known writer version.

A message is `C3 01`, then the 8-byte little-endian CRC-64-AVRO fingerprint of
the writer schema's parsing canonical form, then the Avro binary body (the Avro
specification's single-object encoding). Readers look the fingerprint up among
the versions in `schemas/` and resolve the body to the current reader schema,
so producers and consumers can upgrade independently.
"""

from __future__ import annotations

import io
from functools import cache
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from casehistory import schemas

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8


class UndecodableMessage(ValueError):
    """The bytes are not a single-object-encoded record of any known schema version."""


class UnknownSchema(UndecodableMessage):
    """The writer schema's fingerprint matches no version in `schemas/`."""


def schema_fingerprint(schema: dict[str, Any]) -> bytes:
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


@cache
def _writers() -> dict[bytes, tuple[int, dict[str, Any]]]:
    return {
        schema_fingerprint(schema): (version, schema)
        for version, schema in schemas.schema_versions().items()
    }


@cache
def _fingerprint(version: int) -> bytes:
    """A version's fingerprint, computed once (fastavro's Rabin hash is pure Python, ~8 ms)."""
    return schema_fingerprint(schemas.schema_versions()[version])


def encode(record: dict[str, Any], version: int | None = None) -> bytes:
    """Encode a contract record (Avro datum form) with the given or current schema version."""
    version = version or schemas.current_version()
    schema = schemas.schema_versions()[version]
    out = io.BytesIO()
    out.write(MAGIC)
    out.write(_fingerprint(version))
    fastavro.schemaless_writer(out, schema, record, strict_allow_default=True)
    return out.getvalue()


def decode(message: bytes) -> tuple[dict[str, Any], int]:
    """The record resolved to the reader schema, and the writer's schema version."""
    if len(message) < HEADER_SIZE or message[:2] != MAGIC:
        raise UndecodableMessage("not Avro single-object encoding (no C3 01 header)")
    known = _writers().get(message[2:HEADER_SIZE])
    if known is None:
        raise UnknownSchema(f"unknown writer schema fingerprint {message[2:HEADER_SIZE].hex()}")
    version, writer = known
    body = io.BytesIO(message[HEADER_SIZE:])
    try:
        record = fastavro.schemaless_reader(body, writer, schemas.reader_schema())
    except Exception as error:  # fastavro raises several types for corrupt bodies
        raise UndecodableMessage(f"Avro body does not decode: {type(error).__name__}") from None
    if body.read(1):
        raise UndecodableMessage("trailing bytes after the Avro body")
    if not isinstance(record, dict):
        raise UndecodableMessage("the body is not a record")
    return record, version
