"""Canonical JSON: the one byte form that content and chain hashes are taken over.

Keys sorted, no whitespace, UTF-8 text unescaped: byte for byte what
`json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`
gives, produced by orjson (the hashes sit on the ingest's hot path).
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def canonical_json(value: Any) -> bytes:
    """`value` (JSON types, str keys, no floats needed) as canonical UTF-8 JSON."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def canonical_ascii_json(value: Any) -> bytes:
    """As `canonical_json`, with non-ASCII text escaped as \\uXXXX (`ensure_ascii=True`)."""
    text = canonical_json(value)
    if text.isascii():
        return text
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("ascii")
