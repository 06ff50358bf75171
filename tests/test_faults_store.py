"""Faults on the file path and in the store's own bookkeeping, on SQLite and PostgreSQL.

A corrupt Avro block, two files of one name, a ledger outside the configured
schema, sequence gaps that are not removals, and a verify that must not hold
the whole store in memory.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import fastavro
import psycopg
import pytest

from casehistory import schemas
from casehistory.bootstrap import Engine, build
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.consumers.files import read_records
from casehistory.entrypoints.cli.common import ingest_files
from casehistory.population import generator
from casehistory.schemas.contract import ContractEvent, validate
from casehistory.services.verify import verify_store
from casehistory.settings import Settings
from tests.factories import record, started
from tests.test_ingest import incoming, overtaken_by

AS_OF = date(2026, 11, 1)


def valid_data(citizens: int, seed: int) -> list[dict[str, Any]]:
    """Avro datums of the valid records of a generated population."""
    checked = (validate(r) for r in generator.generate_population(citizens, seed, until=AS_OF))
    return [c.avro_datum() for c in checked if isinstance(c, ContractEvent)]


def test_a_corrupt_avro_block_is_dead_lettered_and_ingest_goes_on(tmp_path: Path) -> None:
    """Issue 15 item 9: `casehistory ingest` reads past a broken block and on to other files."""
    data = valid_data(40, seed=3)
    buffer = io.BytesIO()
    fastavro.writer(buffer, schemas.reader_schema(), data, codec="deflate", sync_interval=4000)
    blocks = []  # (offset, records) of each block
    buffer.seek(0)
    reader = fastavro.block_reader(buffer)
    for block in reader:
        blocks.append((block.offset, block.num_records))
    assert len(blocks) >= 4
    broken_offset, broken_records = blocks[2]
    content = bytearray(buffer.getvalue())
    content[broken_offset + 30 : broken_offset + 60] = b"\xff" * 30  # inside block 3's data
    corrupt = tmp_path / "corrupt.avro"
    corrupt.write_bytes(bytes(content))
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps(record(started(date(2020, 1, 1)), cpr="0202801234")) + "\n")

    letters = tmp_path / "dead-letters.jsonl"
    env = {**os.environ, "CASEHISTORY_DATA_DIR": str(tmp_path / "store"),
           "CASEHISTORY_PSEUDONYM_KEY": "cd" * 32}
    done = subprocess.run(
        [sys.executable, "-m", "casehistory.entrypoints.cli", "ingest", str(corrupt), str(other),
         "--dead-letters", str(letters)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    dead = [json.loads(line) for line in letters.read_text().splitlines()]
    [letter] = [d for d in dead if d["reason"] == "undecodable"]  # the generator adds conflicts
    assert letter["provenance"]["byte_offset"] == broken_offset
    assert letter["provenance"]["block"] == 3
    assert letter["provenance"]["record"] == blocks[0][1] + blocks[1][1] + 1
    assert f"block 3 at byte {broken_offset}" in letter["message"]

    engine = build(Settings.load({k: env[k] for k in env if k.startswith("CASEHISTORY_")}))
    try:
        ledger = list(engine.app.recorder.ledger())  # type: ignore[attr-defined]
    finally:
        engine.close()
    from_corrupt = [e for e in ledger if e.source == f"file:{corrupt.resolve()}"]
    # Every record outside the broken block is accounted for (stored, or a duplicate or
    # conflict the generator made on purpose), the block once; other.jsonl is read too.
    assert len(from_corrupt) == len(data) - broken_records + 1
    assert sum(e.outcome == "dead_lettered" for e in from_corrupt) == len(dead)
    assert {e.outcome for e in from_corrupt} <= {"stored", "duplicate", "dead_lettered"}
    assert [(e.source, e.outcome) for e in ledger if e.source.endswith("other.jsonl")] == [
        (f"file:{other.resolve()}", "stored")
    ]
    # Records after the broken block keep their numbers: the block's count is skipped.
    numbers = [e.position for e in from_corrupt]
    first_after = blocks[0][1] + blocks[1][1] + broken_records + 1
    assert first_after in numbers and max(numbers) == len(data)


def test_a_file_cut_off_inside_its_last_block_is_dead_lettered_not_dropped(
    tmp_path: Path,
) -> None:
    data = valid_data(20, seed=4)
    buffer = io.BytesIO()
    fastavro.writer(buffer, schemas.reader_schema(), data, codec="null", sync_interval=4000)
    cut = tmp_path / "cut.avro"
    cut.write_bytes(buffer.getvalue()[:-40])
    records = list(read_records(cut))
    broken = [r for r in records if r.decode_error is not None]
    assert len(broken) == 1 and broken[0].error_class == "EOFError"
    assert len(records) - 1 < len(data)


def test_two_files_of_one_name_in_two_folders_keep_apart_in_the_ledger(
    engine: Engine, tmp_path: Path
) -> None:
    """Issue 15 item 12: the file ledger is keyed by the full resolved path."""
    paths = []
    for folder, cpr in (("january", "6101901234"), ("february", "0202801234")):
        (tmp_path / folder).mkdir()
        path = tmp_path / folder / "events.jsonl"
        path.write_text(
            "\n".join(json.dumps(record(started(date(2020, m, 1)), cpr=cpr)) for m in (1, 2))
        )
        paths.append(path)
    report = ingest_files(engine, paths, DeadLetterList())
    assert report.stored == 4
    ledger = list(engine.app.recorder.ledger("file:"))  # type: ignore[attr-defined]
    assert sorted((e.source, e.position) for e in ledger) == sorted(
        (f"file:{p.resolve()}", n) for p in paths for n in (1, 2)
    )
    citizen = engine.citizen("6101901234")
    assert citizen is not None
    provenance = engine.app.recorder.select_events(citizen.id)[1].state  # type: ignore[attr-defined]
    assert str(tmp_path).encode() not in provenance  # the stored event names the file only


@pytest.mark.postgres
def test_the_ledger_lives_in_the_configured_postgres_schema(
    postgres_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15 item 12: the ledger table honours POSTGRES_SCHEMA like the events table."""
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute("CREATE SCHEMA tenant")
    monkeypatch.setenv("POSTGRES_SCHEMA", "tenant")
    engine = build(Settings.load({"CASEHISTORY_DATA_DIR": str(tmp_path),
                                  "CASEHISTORY_PSEUDONYM_KEY": "cd" * 32,
                                  "CASEHISTORY_STORE": postgres_dsn}))
    try:
        batch = incoming(record(started(date(2020, 1, 1))))
        batch[0].provenance.update(topic="events", partition=0, offset=7)
        assert engine.ingest_service(DeadLetterList()).ingest(batch).stored == 1
        assert [(e.source, e.position) for e in engine.app.recorder.ledger()] == [  # type: ignore[attr-defined]
            ("events:0", 7)
        ]
    finally:
        engine.close()
    with psycopg.connect(postgres_dsn) as connection:
        found = connection.execute(
            "SELECT to_regclass('tenant.ingest_ledger'), to_regclass('public.ingest_ledger'), "
            "to_regclass('tenant.casehistory_events')"
        ).fetchone()
    assert found is not None
    assert found[0] is not None and found[1] is None and found[2] is not None


def test_verify_takes_no_id_gap_of_a_rolled_back_append_for_a_removed_event(
    engine: Engine, store_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15 item 12: PostgreSQL spends ids on appends that roll back; nothing was removed."""
    other = build(Settings.load(store_env))  # a second writer, as in the version-conflict test
    try:
        first, second, third = (record(started(date(2020, m, 1))) for m in (1, 2, 3))
        mine = engine.ingest_service(DeadLetterList())
        mine.ingest(incoming(first))
        overtaken_by(monkeypatch, engine, other, second)
        report = mine.ingest(incoming(second, third))  # conflict, rollback, retry
        assert (report.duplicate, report.stored) == (1, 1)
    finally:
        other.close()
    ids = [n.id for n in engine.app.recorder.select_notifications(start=1, limit=100)]
    if engine.settings.uses_postgres:
        assert ids != list(range(1, len(ids) + 1))  # the rolled-back append left a gap
    assert list(verify_store(engine.app)) == []


def test_verify_reads_the_store_as_a_stream(engine: Engine, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15 item 12: a problem is reported before the rest of the store is read."""
    source = tmp_path / "population.jsonl"
    generator.write_jsonl(generator.generate_population(30, seed=5, until=AS_OF), source)
    ingest_files(engine, [source], DeadLetterList())
    recorder: Any = engine.app.recorder
    first = recorder.select_notifications(start=1, limit=1)[0]
    datastore = recorder.datastore
    table, m = (("casehistory_events", "%s") if engine.settings.uses_postgres
                else ("stored_events", "?"))
    key = first.originator_id if engine.settings.uses_postgres else first.originator_id.hex
    where = f"WHERE originator_id = {m} AND originator_version = 2"
    with datastore.transaction(commit=True) as cursor:  # alter the first citizen's first fact
        cursor.execute(f"SELECT state FROM {table} {where}", (key,))
        row = cursor.fetchone()
        state = bytes(row["state"] if isinstance(row, dict) else row[0])
        # The state is encrypted with the store key: a writer without it can only garble.
        forged = state[:-1] + bytes([state[-1] ^ 1])
        cursor.execute(f"UPDATE {table} SET state = {m} {where}", (forged, key))
    pages = []
    select = recorder.select_notifications

    def counted(*args: Any, **kwargs: Any) -> Any:
        pages.append(1)
        return select(*args, **kwargs)

    monkeypatch.setattr(recorder, "select_notifications", counted)
    total_pages = -(-recorder.max_notification_id() // 10)
    problems: Iterator[Any] = verify_store(engine.app, batch_size=10)
    problem = next(problems)
    assert problem.citizen_id == str(first.originator_id) and problem.position == 2
    assert problem.kind in ("altered", "undecodable")
    assert len(pages) < total_pages / 2


def test_a_conflict_is_dead_lettered_once_though_its_batch_is_retried(
    engine: Engine, store_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15 item 4: a version-conflict retry does not send the batch's conflicts again."""
    other = build(Settings.load(store_env))
    try:
        first, second, third = (record(started(date(2020, m, 1))) for m in (1, 2, 3))
        letters = DeadLetterList()
        mine = engine.ingest_service(letters)
        mine.ingest(incoming(first))
        overtaken_by(monkeypatch, engine, other, second)
        conflicting = {**first, "effective_date": "2020-01-15"}
        report = mine.ingest(incoming(conflicting, third))  # version conflict: read again, retry
    finally:
        other.close()
    assert (report.stored, report.rejected) == (1, 1)
    assert [letter.reason for letter in letters.letters] == ["event_id_conflict"]
