"""The decoder and the validator fuzzed: no input escapes as an exception, each is accounted for.

`bench.fuzz` makes the inputs (random bytes, mutated encodings, records with
edge values) and holds the rules for one input; here hypothesis chooses seeds and
field values, over 100,000 inputs in all, checked in-process in batches. A
sample goes through the real ingest service on both stores, where every input
must end stored, a duplicate or dead-lettered.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bench import fuzz
from casehistory.bootstrap import Engine
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.consumers.files import Incoming
from casehistory.consumers.ingest import IngestReport
from casehistory.consumers.kafka_ingest import to_incoming
from casehistory.domain.facts import EventType

PER_SEED = 1000


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**48))
def test_a_hundred_thousand_fuzzed_inputs_break_no_rule(seed: int) -> None:
    outcomes = fuzz.run(seed, PER_SEED)
    assert sum(outcomes.values()) == PER_SEED


def test_every_field_alone_takes_every_edge_value_on_every_event_type() -> None:
    records, _ = fuzz.valid_pool()
    one_of_each = {r["event_type"]: r for r in records}
    assert set(one_of_each) >= {t.value for t in EventType} - {
        "CaseworkerAssigned", "MeetingHeld",  # the generator may not make them
    }
    checked = 0
    for base in one_of_each.values():
        for name in fuzz.FIELDS:
            fuzz.check({k: v for k, v in base.items() if k != name})
            for value in fuzz.EDGE_VALUES:
                fuzz.check({**base, name: value})
                checked += 1
    assert checked >= 5000


any_value = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40),
    st.binary(max_size=20), st.sampled_from(fuzz.EDGE_VALUES),
    st.dates().map(str),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
    st.lists(st.integers(), max_size=3),
)


@settings(max_examples=400, deadline=None)
@given(base=st.integers(min_value=0), changes=st.dictionaries(st.sampled_from(fuzz.FIELDS),
                                                               any_value, max_size=4))
def test_records_with_hypothesis_chosen_field_values_break_no_rule(
    base: int, changes: dict[str, Any]
) -> None:
    records, _ = fuzz.valid_pool()
    fuzz.check({**records[base % len(records)], **changes})


def _incoming(n: int, item: fuzz.Input) -> Incoming:
    if isinstance(item, bytes):
        consumed = SimpleNamespace(topic="fuzz", partition=0, offset=n, key=None, value=item,
                                   headers=[])
        return to_incoming(consumed)
    raw = json.dumps(item, default=repr, ensure_ascii=True).encode()
    return Incoming(item, raw, {"source": "file", "file": "fuzz.jsonl", "line": n})


def test_every_fuzzed_input_is_stored_a_duplicate_or_dead_lettered(engine: Engine) -> None:
    items = [_incoming(n, item) for n, item in enumerate(fuzz.inputs(seed=7, count=3000))]
    # A real batch has many citizens; stretch the accepted events' dates apart a little.
    letters = DeadLetterList()
    service = engine.ingest_service(letters)
    total = IngestReport()
    for first in range(0, len(items), 500):
        total.add(service.ingest(items[first : first + 500]))
    assert total.received == 3000 == total.stored + total.duplicate + total.rejected
    assert len(letters.letters) == total.rejected > 0 and total.stored > 0
    ledger = list(engine.app.recorder.ledger())  # type: ignore[attr-defined]
    assert len(ledger) == 3000
    assert {e.outcome for e in ledger} <= {"stored", "duplicate", "dead_lettered"}
    again = service.ingest(items)  # redelivered: nothing new is stored
    assert again.stored == 0 and again.duplicate + again.rejected == 3000


def test_timestamps_at_the_edges_of_the_range_do_not_escape() -> None:
    records, _ = fuzz.valid_pool()
    base = records[0]
    for moment in (datetime(1900, 1, 1, tzinfo=UTC), datetime(2099, 12, 31, 23, 59, tzinfo=UTC)):
        for offset in range(-24, 25):
            shifted = moment.astimezone(UTC) + timedelta(hours=offset)
            fuzz.check({**base, "recorded_at": shifted.isoformat()})
