"""The read side's citizen histories and the one-pass follower, on both backends."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import orjson
import pytest

from casehistory.bootstrap import READ_MODELS, Engine
from casehistory.cli import ingest_files
from consumers.deadletter import DeadLetterList
from domain.citizen import citizen_id
from projections.history import HistoryDecoder
from tests.factories import record, started, stopped
from tests.test_coordination_view import population
from tests.test_ingest import CPR, incoming


def test_decoded_history_equals_the_aggregate(engine: Engine, tmp_path: Path) -> None:
    ingest_files(engine, [population(tmp_path, 40, seed=11)], DeadLetterList())
    decoder = HistoryDecoder(engine.app.mapper)
    keys = {n.originator_id for n in engine.app.recorder.select_notifications(start=1, limit=10**6)}
    assert len(keys) == 40
    for key in keys:
        citizen = engine.app.repository.get(key)
        decoded = decoder.advance(None, engine.app.recorder.select_events(key))
        assert (decoded.citizen_key, decoded.birth_date, decoded.version) == (
            citizen.citizen_key,
            citizen.birth_date,
            citizen.version,
        )
        assert decoded.facts == citizen.facts
        assert decoded.timeline() == citizen.timeline()


def test_history_moved_forward_in_pieces_equals_one_read(engine: Engine, tmp_path: Path) -> None:
    ingest_files(engine, [population(tmp_path, 5, seed=2)], DeadLetterList())
    decoder = HistoryDecoder(engine.app.mapper)
    key = engine.app.recorder.select_notifications(start=1, limit=1)[0].originator_id
    events = engine.app.recorder.select_events(key)
    whole = decoder.advance(None, events)
    pieced = decoder.advance(None, events[:1])
    before = pieced.timeline_json()
    for event in events[1:]:
        pieced = decoder.advance(pieced, [event])
    assert pieced.facts == whole.facts and pieced.version == whole.version == len(events)
    assert pieced.timeline_json() == whole.timeline_json() != before
    assert citizen_id(whole.citizen_key) == key


def test_one_pass_follower_catches_up_read_models_at_different_positions(
    engine: Engine, tmp_path: Path
) -> None:
    lines = population(tmp_path, 60, seed=5).read_text().splitlines(keepends=True)
    halves = [tmp_path / "first.jsonl", tmp_path / "second.jsonl"]
    halves[0].write_text("".join(lines[: len(lines) // 2]))
    halves[1].write_text("".join(lines[len(lines) // 2 :]))
    ingest_files(engine, [halves[0]], DeadLetterList())
    engine.follower("durations").catch_up()  # durations ahead, coordination at zero
    ingest_files(engine, [halves[1]], DeadLetterList())

    follower = engine.followers()
    assert follower.position == 0
    assert follower.catch_up() == engine.app.recorder.max_notification_id()
    assert follower.lag() == 0
    for name in READ_MODELS:
        fresh = engine.replay_view(name)
        engine.follower(name, fresh).catch_up()
        assert fresh.checksum() == engine.view(name).checksum()
        fresh.clear(engine.app.name)



def test_an_event_stored_with_a_class_version_goes_through_the_mapper(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = engine.ingest_service(DeadLetterList())
    service.ingest(incoming(record(started(date(2020, 1, 1))), record(stopped(date(2020, 6, 1)))))
    events = engine.app.recorder.select_events(citizen_id(engine.vault.citizen_key(CPR)))
    versioned = [
        replace(e, state=orjson.dumps({**orjson.loads(e.state), "class_version": 1}))
        for e in events
    ]
    mapper = engine.app.mapper
    through_mapper: list[object] = []
    to_domain_event = mapper.to_domain_event
    monkeypatch.setattr(
        mapper, "to_domain_event", lambda e: through_mapper.append(e) or to_domain_event(e)
    )
    decoder = HistoryDecoder(mapper)
    plain = decoder.advance(None, events)
    assert through_mapper == []
    assert decoder.advance(None, versioned).facts == plain.facts
    assert len(through_mapper) == len(events) == 3
