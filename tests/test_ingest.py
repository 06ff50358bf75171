"""The ingest path on a real store: idempotent appends, conflicts and dead letters."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casehistory.application import CaseHistory
from casehistory.bootstrap import Engine, build
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.consumers.files import Incoming
from casehistory.domain.citizen import Citizen, Head, Outcome, citizen_id
from casehistory.projections.history import HistoryDecoder
from casehistory.projections.queries import durations_of
from casehistory.recorders import LEDGER_COLUMNS, LedgerEntry
from casehistory.services.audit import forget
from casehistory.settings import Settings
from tests.factories import assigned, meeting, record, regrouped, retraction, started, stopped

CPR = "6101901234"


def incoming(*records: dict) -> list[Incoming]:
    return [Incoming(r, json.dumps(r).encode(), {"n": i}) for i, r in enumerate(records)]


def test_redelivery_is_a_no_op_and_a_conflict_is_dead_lettered(engine: Engine) -> None:
    start = record(started(date(2020, 1, 1)))
    letters = DeadLetterList()
    service = engine.ingest_service(letters)
    first = service.ingest(incoming(start))
    again = service.ingest(incoming(dict(reversed(list(start.items())))))
    conflict = service.ingest(incoming({**start, "effective_date": "2020-02-01"}))
    assert (first.stored, again.duplicate, conflict.rejected) == (1, 1, 1)
    assert [letter.reason for letter in letters.letters] == ["event_id_conflict"]
    engine.project()
    citizen = engine.app.find(engine.vault.citizen_key(CPR))
    assert citizen is not None and len(citizen.facts) == 1
    assert citizen.facts[0].effective_date == date(2020, 1, 1)  # the first arrival stands


def test_a_migration_batch_is_provenance_not_content(engine: Engine) -> None:
    """Issue #15 item 10: a redelivery through schema v1 (no batch) or a re-run migration
    (another batch) is the same fact, not a conflict; the first arrival's batch stands."""
    start = record(started(date(2020, 1, 1)))
    letters = DeadLetterList()
    service = engine.ingest_service(letters)
    first = service.ingest(incoming({**start, "migration_batch": "fasit-conversion-2018"}))
    via_v1 = service.ingest(incoming(start))
    rerun = service.ingest(incoming({**start, "migration_batch": "fasit-conversion-2018-rerun"}))
    assert (first.stored, via_v1.duplicate, rerun.duplicate) == (1, 1, 1)
    assert letters.letters == []


def test_citizen_key_not_cpr_is_the_identity_and_cpr_is_sealed(engine: Engine) -> None:
    engine.ingest_service(DeadLetterList()).ingest(incoming(record(started(date(2020, 1, 1)))))
    key = engine.vault.citizen_key(CPR)
    citizen = engine.app.find(key)
    assert citizen is not None
    assert CPR not in str(citizen.id) and CPR not in citizen.sealed_cpr
    assert engine.vault.unseal(key, citizen.sealed_cpr) == CPR
    if not engine.settings.uses_postgres:
        stored = engine.settings.data_dir / "events.db"
        assert CPR.encode() not in stored.read_bytes()


def test_projection_follows_the_store_and_applies_each_event_once(engine: Engine) -> None:
    stop = stopped(date(2021, 1, 1))
    service = engine.ingest_service(DeadLetterList())
    service.ingest(incoming(record(started(date(2020, 1, 1))), record(stop)))
    durations = engine.follower()
    assert durations.catch_up() == 3  # registration and two facts
    assert durations.catch_up() == 0  # resumes from the tracked position
    key = engine.vault.citizen_key(CPR)
    store = engine.read_model()
    found = durations_of(store, date(2021, 6, 1), key)
    assert found is not None and not found["on_benefit"]
    service.ingest(incoming(record(retraction(stop))))
    assert durations.catch_up() == 1
    row = store.row("durations_citizen", key)
    assert row is not None and row["open_spell_start"] == "2020-01-01"
    found = durations_of(store, date(2021, 6, 1), key)
    assert found is not None and found["all_benefits_spell_start"] == "2020-01-01"


def test_invalid_records_are_dead_lettered_with_their_reason_and_nothing_stops(
    engine: Engine,
) -> None:
    letters = DeadLetterList()
    good = record(started(date(2020, 1, 1)))
    bad = Incoming(None, b"{not json", {"line": 2}, "not JSON: Expecting property name")
    report = engine.ingest_service(letters).ingest(
        [*incoming(good), bad, *incoming({**good, "cpr": "1"})]
    )
    assert (report.stored, report.rejected) == (1, 2)
    assert sorted(letter.reason for letter in letters.letters) == ["invalid_cpr", "undecodable"]
    assert letters.letters[0].raw == b"{not json" or letters.letters[1].raw == b"{not json"


def overtaken_by(
    monkeypatch: pytest.MonkeyPatch, engine: Engine, other: Engine, *records: dict[str, Any]
) -> None:
    """Stage a race: `other` ingests `records` just after `engine`'s next batch read the heads."""
    read_heads = engine.app.heads

    def heads_then_the_other_writer(keys: Any) -> dict[str, Head]:
        heads = read_heads(keys)
        monkeypatch.setattr(engine.app, "heads", read_heads)  # once
        assert other.ingest_service(DeadLetterList()).ingest(incoming(*records)).stored
        return heads

    monkeypatch.setattr(engine.app, "heads", heads_then_the_other_writer)


def test_a_writer_overtaken_by_another_reads_the_heads_again_and_retries(
    engine: Engine, store_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    other = build(Settings.load(store_env))  # a second writer on the same store
    try:
        first, second, third = (record(started(date(2020, m, 1))) for m in (1, 2, 3))
        mine = engine.ingest_service(DeadLetterList())
        assert mine.ingest(incoming(first)).stored == 1
        overtaken_by(monkeypatch, engine, other, second)
        report = mine.ingest(incoming(second, third))  # version conflict, then read again
        assert (report.duplicate, report.stored, report.rejected) == (1, 1, 0)
        stored = other.app.recorder.select_events(citizen_id(engine.vault.citizen_key(CPR)))
        citizen = HistoryDecoder(other.app.mapper).advance(None, stored)
        assert [f.event_id for f in citizen.facts] == [
            first["event_id"],
            second["event_id"],
            third["event_id"],
        ]
    finally:
        other.close()


def test_an_event_id_under_another_citizen_is_a_conflict(engine: Engine) -> None:
    """Issue #14 item 3: idempotency by event_id holds across citizens."""
    start = record(started(date(2020, 1, 1)))
    letters = DeadLetterList()
    service = engine.ingest_service(letters)
    first = service.ingest(incoming(start))
    elsewhere = service.ingest(incoming({**start, "cpr": "0202801234"}))
    in_one_batch = service.ingest(incoming(
        record(stopped(date(2021, 1, 1), event_id="00000000-0000-4000-8000-00000000abcd")),
        record(stopped(date(2021, 1, 1), event_id="00000000-0000-4000-8000-00000000abcd"),
               cpr="0303701234"),
    ))
    assert (first.stored, elsewhere.rejected) == (1, 1)
    assert (in_one_batch.stored, in_one_batch.rejected) == (1, 1)
    assert [letter.reason for letter in letters.letters] == ["event_id_conflict"] * 2
    assert engine.app.find(engine.vault.citizen_key("0202801234")) is None
    assert engine.app.find(engine.vault.citizen_key("0303701234")) is None


def test_heads_follow_every_save_and_an_older_store_gets_them(
    engine: Engine, store_env: dict[str, str]
) -> None:
    """Issue #14 item 4: appends read heads, kept in the save's transaction (a forget too);
    a store written before the heads existed gets them from its events on start."""
    cprs = ["6101901234", "0202801234"]
    facts = {
        cpr: [started(date(2020, 1, 1)), stopped(date(2020, 6, 1)), started(date(2021, 1, 1))]
        for cpr in cprs
    }
    service = engine.ingest_service(DeadLetterList())
    for n in range(3):
        service.ingest(incoming(*(record(facts[cpr][n], cpr=cpr) for cpr in cprs)))
    keys = [engine.vault.citizen_key(cpr) for cpr in cprs]
    forgotten = engine.app.find(keys[1])
    assert forgotten is not None
    forget(engine.app, engine.vault.keys.destroy, forgotten, datetime(2026, 1, 1, tzinfo=UTC))

    def aggregates_heads(app: CaseHistory) -> dict[str, Head]:
        citizens = [app.find(key) for key in keys]
        return {c.citizen_key: Head(c.citizen_key, c.version, c.chain_head)
                for c in citizens if c is not None}

    assert engine.app.heads([*keys, "0" * 32]) == aggregates_heads(engine.app)
    assert engine.app.heads(keys)[keys[0]].version == 4  # registered + 3 facts
    recorder: Any = engine.app.recorder
    with recorder.datastore.transaction(commit=True) as c:
        c.execute(f"DELETE FROM {recorder.heads_table}")
        c.execute(f"DELETE FROM {recorder.index_table}")
    older = build(Settings.load(store_env))
    try:
        assert older.app.heads(keys) == aggregates_heads(older.app)
        again = older.ingest_service(DeadLetterList()).ingest(
            incoming(*(record(fact_, cpr=cprs[0]) for fact_ in facts[cprs[0]]),
                     record(stopped(date(2021, 3, 1)), cpr=cprs[0]))
        )
        assert (again.duplicate, again.stored) == (3, 1)
        citizen = older.app.find(keys[0])
        assert citizen is not None and len(citizen.facts) == 4
    finally:
        older.close()


def test_every_connection_to_a_sqlite_store_has_the_larger_cache_and_log(tmp_path: Any) -> None:
    from casehistory.recorders import SQLITE_CACHE_KIB, SQLITE_CHECKPOINT_PAGES

    engine = build(Settings.load({"CASEHISTORY_DATA_DIR": str(tmp_path),
                                  "CASEHISTORY_PSEUDONYM_KEY": "ab" * 32}))
    try:
        engine.ingest_service(DeadLetterList()).ingest(incoming(record(started(date(2020, 1, 1)))))
        datastore: Any = engine.app.recorder.datastore
        for commit in (False, True):  # a reader's and the writer's connection
            with datastore.transaction(commit=commit) as cursor:
                cursor.execute("PRAGMA cache_size")
                assert tuple(cursor.fetchone()) == (-SQLITE_CACHE_KIB,)
                cursor.execute("PRAGMA wal_autocheckpoint")
                assert tuple(cursor.fetchone()) == (SQLITE_CHECKPOINT_PAGES,)
    finally:
        engine.close()


def test_a_file_ingest_stores_file_batch_records_per_transaction(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bulk load commits `FILE_BATCH` records at a time (more than a Kafka poll's
    `STORE_BATCH`): the more appends a commit holds, the fewer pages each one writes."""
    from casehistory.consumers.ingest import FILE_BATCH, STORE_BATCH, IngestService
    from casehistory.entrypoints.cli.common import ingest_files

    assert FILE_BATCH > STORE_BATCH
    line = json.dumps(record(started(date(2020, 1, 1)))) + "\n"
    source = tmp_path / "redelivered.jsonl"
    source.write_text(line * (FILE_BATCH + 2))
    sizes: list[int] = []
    ingest = IngestService.ingest

    def counted(self: IngestService, batch: Any, *args: Any) -> Any:
        sizes.append(len(batch))
        return ingest(self, batch, *args)

    monkeypatch.setattr(IngestService, "ingest", counted)
    engine = build(Settings.load({"CASEHISTORY_DATA_DIR": str(tmp_path / "store"),
                                  "CASEHISTORY_PSEUDONYM_KEY": "ab" * 32}))
    try:
        report = ingest_files(engine, [source], DeadLetterList())
    finally:
        engine.close()
    assert sizes == [FILE_BATCH, 2]
    assert (report.received, report.stored, report.duplicate) == (FILE_BATCH + 2, 1, FILE_BATCH + 1)


def test_the_ingest_writes_what_the_mapper_writes_for_the_aggregates_own_events(
    engine: Engine,
) -> None:
    """The ingest builds its records without domain-event objects: each record's bytes
    (deciphered) are the ones eventsourcing's mapper writes for the event that recording
    the same fact on the aggregate triggers, and the repository reads back that aggregate."""
    facts = [
        started(date(2020, 1, 1)),
        regrouped(date(2020, 2, 1), "aktivitetsparat_ung", "aktivitetsparat_voksen", "age"),
        assigned(date(2020, 2, 1), "jc-1"), meeting(date(2020, 3, 1), "joint"),
        stopped(date(2020, 6, 1)),
    ]
    facts.append(retraction(facts[-1]))
    report = engine.ingest_service(DeadLetterList()).ingest(incoming(*map(record, facts)))
    assert (report.stored, report.rejected) == (len(facts), 0)
    key = engine.vault.citizen_key(CPR)
    stored = engine.app.find(key)
    assert stored is not None
    records = engine.app.recorder.select_events(citizen_id(key))
    events = [engine.app.mapper.to_domain_event(r) for r in records]

    twin = Citizen.register(key, stored.birth_date, stored.sealed_cpr)
    for event in events[1:]:
        assert twin.record(event.to_fact(), event.content_hash, event.provenance) is Outcome.STORED
    triggered = twin.collect_events()
    assert len(triggered) == len(records) == len(facts) + 1
    mapper = engine.app.mapper
    assert mapper.compressor is None

    def opened(state: bytes) -> bytes:
        return state if mapper.cipher is None else mapper.cipher.decrypt(state)

    for own, written, read in zip(triggered, records, events, strict=True):
        # The aggregate's event, at the time the ingest stamped its record.
        at_that_time = dataclasses.replace(own, timestamp=read.timestamp)  # type: ignore[type-var]
        mapped = mapper.to_stored_event(at_that_time)
        assert (written.topic, written.originator_id, written.originator_version) == (
            mapped.topic, mapped.originator_id, mapped.originator_version)
        assert opened(written.state) == opened(mapped.state)
    assert (stored.version, stored.chain_head, stored.facts, stored.content_hashes) == (
        twin.version, twin.chain_head, twin.facts, twin.content_hashes)
    assert stored.facts == facts


def test_rows_written_in_one_statement_come_back_as_they_were(engine: Engine) -> None:
    """On PostgreSQL a column of a batch goes as one text the server splits: values that hold
    its separator or equal its null mark, an empty text alone, and NULLs come back intact."""
    recorder: Any = engine.app.recorder
    batches = [
        [LedgerEntry("t:0", 0, "stored"), LedgerEntry("t:0", 1, "dead_lettered", "a\x1fb"),
         LedgerEntry("t:0", 2, "dead_lettered", "\x1e"), LedgerEntry("t:0", 3, "duplicate", "")],
        [LedgerEntry("t:1", 0, "dead_lettered", "")],
        [LedgerEntry("t:1", 1, "stored"), LedgerEntry("t:1", 2, "dead_lettered", "a,{b} \"c\"")],
    ]
    for batch in batches:
        with recorder.datastore.transaction(commit=True) as c:
            recorder._insert_rows(c, recorder.ledger_table, LEDGER_COLUMNS,
                                  [(e.source, e.position, e.outcome, e.reason) for e in batch])
    assert list(recorder.ledger("t:")) == [entry for batch in batches for entry in batch]


JSON_LINES = [
    b'{"a": "x", "n": 1}', b'{"a": NaN}', b'{"a": 1e400}', b'{"a": 123456789012345678901234567890}',
    b'{"a": -9223372036854775809}', b'{"a": 18446744073709551615}', b'{"a": 1.5}',
    b'{"a": "\\ud800"}', b'\xef\xbb\xbf{"a": 1}', b'{"a": "\xff"}', b'{"a": 1,}', b'{"a": 1} x',
    b'{"a": 1, "a": 2}', b'[1, 2]', b'"x"', b'{"a": {"b": 1.5, "c": [1e400]}}',
    b' {"a": "\\u0000"} ',
    '{"a": 1}'.encode("utf-16"),
]


@settings(max_examples=300, deadline=None)
@given(value=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
))
def test_a_json_line_parses_as_json_loads_parses_it(value: Any) -> None:
    from casehistory.consumers.files import parse_json

    for line in [json.dumps(value).encode(), json.dumps(value, ensure_ascii=False).encode(
        "utf-8", "surrogatepass"), *JSON_LINES]:
        try:
            expected: Any = json.loads(line)
        except ValueError as error:
            with pytest.raises(ValueError) as raised:
                parse_json(line)
            assert str(raised.value) == str(error)
            continue
        assert repr(parse_json(line)) == repr(expected)


def test_a_new_sqlite_store_keeps_its_keyed_tables_as_one_tree_and_an_older_one_still_works(
    tmp_path: Any,
) -> None:
    import sqlite3

    settings = Settings.load({"CASEHISTORY_DATA_DIR": str(tmp_path),
                              "CASEHISTORY_PSEUDONYM_KEY": "ab" * 32})
    tables = ("ingest_ledger", "citizen_heads", "event_index", "writer_fence", "chain_anchors")
    engine = build(settings)
    engine.close()
    with sqlite3.connect(tmp_path / "events.db") as db:
        for table in tables:
            (ddl,) = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", [table]).fetchone()
            assert ddl.endswith("WITHOUT ROWID"), table
            # A store made before: the same tables with a rowid.
            db.execute(f"DROP TABLE {table}")
            db.execute(ddl.removesuffix(" WITHOUT ROWID"))
    engine = build(settings)
    try:
        service = engine.ingest_service(DeadLetterList())
        facts = [started(date(2020, 1, 1)), stopped(date(2020, 6, 1))]
        assert service.ingest(incoming(*map(record, facts))).stored == 2
        assert service.ingest(incoming(*map(record, facts))).duplicate == 2
        stored = engine.app.find(engine.vault.citizen_key(CPR))
        assert stored is not None and stored.facts == facts
    finally:
        engine.close()
    with sqlite3.connect(tmp_path / "events.db") as db:
        for table in tables:
            (ddl,) = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", [table]).fetchone()
            assert not ddl.endswith("WITHOUT ROWID"), table


def test_the_stored_details_are_the_last_fields_of_a_fact_in_its_order() -> None:
    from casehistory.domain.citizen import FACT_FIELDS, fact_content
    from casehistory.domain.facts import Fact

    assert Fact._fields[-len(FACT_FIELDS):] == FACT_FIELDS
    fact = started(date(2020, 1, 1), target_group="jobparat")
    assert fact_content(fact, "h", {})["details"] == {
        name: getattr(fact, name) for name in FACT_FIELDS if getattr(fact, name) is not None
    }


def test_the_notification_ids_a_sqlite_save_returns_are_the_stored_ones(tmp_path: Any) -> None:
    """The SQLite recorder inserts a batch's events in one statement and computes their
    notification ids from the last: they are the ids the log holds, in order, also after
    another writer's events."""
    engine = build(Settings.load({"CASEHISTORY_DATA_DIR": str(tmp_path),
                                  "CASEHISTORY_PSEUDONYM_KEY": "ab" * 32}))
    try:
        service = engine.ingest_service(DeadLetterList())
        service.ingest(incoming(record(started(date(2020, 1, 1)))))
        citizens = [Citizen.register(f"{n:032x}", date(1990, 1, 1), "") for n in range(3)]
        for citizen in citizens:
            citizen.forget(datetime(2026, 1, 1, tzinfo=UTC))
        recordings = engine.app.save(*citizens)
        recorder: Any = engine.app.recorder
        stored = recorder.select_notifications(start=1, limit=100)
        assert [r.notification.id for r in recordings] == [n.id for n in stored[2:]]
        assert [(r.notification.originator_id, r.notification.originator_version)
                for r in recordings] == [(n.originator_id, n.originator_version)
                                         for n in stored[2:]]
        assert recorder.insert_events([]) == []
    finally:
        engine.close()
