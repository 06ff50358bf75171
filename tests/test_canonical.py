"""The hashed and stored byte forms stay exactly what the standard `json` module writes,
so hashes and stores made before orjson did the encoding still verify and decode."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import JSONTranscoder
from hypothesis import given
from hypothesis import strategies as st

from casehistory.application import CaseHistory, OrjsonTranscoder
from casehistory.domain.canonical import canonical_ascii_json, canonical_json

text = st.text(st.characters(exclude_categories=["Cs"]))  # no lone surrogates
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(text, json_values, max_size=6))
def test_canonical_json_is_sorted_compact_unescaped_json(value: dict[str, Any]) -> None:
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(value) == expected.encode("utf-8")


@given(st.dictionaries(text, json_values, max_size=6))
def test_canonical_ascii_json_escapes_like_ensure_ascii(value: dict[str, Any]) -> None:
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"))
    assert canonical_ascii_json(value) == expected.encode("ascii")


@given(
    st.dictionaries(text, json_values, max_size=6),
    st.datetimes(timezones=st.just(UTC)),
)
def test_orjson_transcoder_writes_the_json_transcoders_bytes(
    state: dict[str, Any], timestamp: datetime
) -> None:
    app = CaseHistory(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    fast = app.mapper.transcoder
    plain = JSONTranscoder()
    app.register_transcodings(plain)
    assert isinstance(fast, OrjsonTranscoder)
    event_state = {**state, "timestamp": timestamp}
    assert fast.encode(event_state) == plain.encode(event_state)
    assert plain.decode(fast.encode(event_state)) == event_state
