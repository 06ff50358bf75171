"""Replay and audit tooling: rebuild and prove, verify the chains, explain, forget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from casehistory.bootstrap import Engine
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.consumers.files import Incoming
from casehistory.domain.durations import durations_on
from casehistory.domain.timeline import build_timeline
from casehistory.entrypoints.cli.common import ingest_files
from casehistory.population import generator
from casehistory.projections.queries import durations_records
from casehistory.schemas.contract import ContractEvent, validate
from casehistory.services.audit import audit_entries, forget
from casehistory.services.replay import checksum, rebuild
from casehistory.services.verify import verify_store
from tests.attacker import postgres_rows
from tests.factories import record, retraction, started, stopped

AS_OF = date(2026, 11, 1)


@pytest.fixture
def populated(engine: Engine, tmp_path: Path) -> Engine:
    source = tmp_path / "population.jsonl"
    generator.write_jsonl(generator.generate_population(150, seed=21, until=AS_OF), source)
    ingest_files(engine, [source], DeadLetterList())
    engine.project()
    return engine


def test_replay_equals_live_and_switch_repairs_a_damaged_view(populated: Engine) -> None:
    result = rebuild(populated)
    assert result.equal and result.live.rows == 150
    store = populated.read_model()
    damaged = store.citizen_keys()[0]
    with store.read() as cursor:
        cursor.execute(f"SELECT count(*) FROM benefit_run WHERE citizen_key = {store.paramstyle}",
                       [damaged])
        assert cursor.fetchone()[0] > 0
    with store._write() as cursor:
        cursor.execute(f"DELETE FROM benefit_run WHERE citizen_key = {store.paramstyle}",
                       [damaged])
    assert not rebuild(populated).equal
    repaired = rebuild(populated, switch=True)
    assert repaired.switched
    assert checksum(populated).checksum == repaired.rebuilt.checksum == result.live.checksum
    if populated.settings.uses_postgres:  # vacuumed: every page all-visible again
        with store.read() as cursor:
            cursor.execute("SELECT relpages, relallvisible FROM pg_class "
                           "WHERE oid = 'public.benefit_run'::regclass")
            pages, visible = cursor.fetchone()
        assert pages > 0 and visible == pages


def _tamper(engine: Engine, statement: str, params: dict[str, object]) -> None:
    datastore = engine.app.recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=True) as cursor:
        cursor.execute(statement, params)


def _events_table(engine: Engine) -> tuple[str, str]:
    if engine.settings.uses_postgres:
        return "casehistory_events", "%({})s"
    return "stored_events", ":{}"


def test_verify_finds_a_changed_payload_a_deleted_event_and_a_reordered_pair(
    populated: Engine,
) -> None:
    assert list(verify_store(populated.app)) == []
    table, m = _events_table(populated)
    citizens = populated.read_model().citizen_keys()
    long = [c for c in citizens if len(populated.app.find(c).facts) >= 5][:3]  # type: ignore[union-attr]
    changed, deleted, reordered = (populated.app.find(c).id for c in long)  # type: ignore[union-attr]
    key = (lambda i: i.hex) if not populated.settings.uses_postgres else (lambda i: i)

    with populated.app.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
        cursor.execute(
            f"SELECT state FROM {table} WHERE originator_id = {m.format('id')} "
            f"AND originator_version = 3",
            {"id": key(changed)},
        )
        state = bytes(_first(cursor.fetchone()))
    # The stored state is encrypted with the store key: a writer without it can only garble.
    forged = state[:-1] + bytes([state[-1] ^ 1])
    _tamper(
        populated,
        f"UPDATE {table} SET state = {m.format('s')} WHERE originator_id = "
        f"{m.format('id')} AND originator_version = 3",
        {"s": forged, "id": key(changed)},
    )
    _tamper(
        populated,
        f"DELETE FROM {table} WHERE originator_id = {m.format('id')} AND originator_version = 2",
        {"id": key(deleted)},
    )
    _swap(populated, table, m, key(reordered), 3, 4)

    problems = list(verify_store(populated.app))
    found = {(p.citizen_id, p.position, p.kind) for p in problems}
    assert (str(changed), 3, "altered") in found or (str(changed), 3, "undecodable") in found
    assert (str(deleted), 2, "removed") in found
    assert {(str(reordered), 3, "reordered"), (str(reordered), 4, "reordered")} <= found
    assert {p.citizen_id for p in problems} == {str(changed), str(deleted), str(reordered)}


def _first(row: object) -> object:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]  # type: ignore[index]


def _swap(engine: Engine, table: str, m: str, originator: object, a: int, b: int) -> None:
    datastore = engine.app.recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=True) as cursor:
        rows = {}
        for version in (a, b):
            cursor.execute(
                f"SELECT topic, state FROM {table} WHERE originator_id = "
                f"{m.format('id')} AND originator_version = {version}",
                {"id": originator},
            )
            row = cursor.fetchone()
            rows[version] = tuple(row.values()) if isinstance(row, dict) else tuple(row)
        for version, other in ((a, b), (b, a)):
            topic, state = rows[other]
            cursor.execute(
                f"UPDATE {table} SET topic = {m.format('t')}, state = {m.format('s')} "
                f"WHERE originator_id = {m.format('id')} AND originator_version = "
                f"{version}",
                {"t": topic, "s": state, "id": originator},
            )


def test_forget_makes_the_cpr_unrecoverable_and_reports_stay(populated: Engine) -> None:
    before = checksum(populated).checksum
    key = populated.read_model().citizen_keys()[0]
    citizen = populated.app.find(key)
    assert citizen is not None and populated.vault.unseal(key, citizen.sealed_cpr)
    forget(
        populated.app, populated.vault.keys.destroy, citizen, at=datetime(2026, 11, 2, tzinfo=UTC)
    )
    populated.project()
    assert checksum(populated).checksum == before
    again = populated.app.find(key)
    assert again is not None and again.forgotten_at == datetime(2026, 11, 2, tzinfo=UTC)
    assert populated.vault.unseal(key, again.sealed_cpr) is None
    trail = audit_entries(populated.app, again, AS_OF)
    assert trail[-1].event == "Forgotten" and trail[-1].recorded_at.startswith("2026-11-02")
    assert list(verify_store(populated.app)) == []


def test_audit_shows_provenance_retraction_links_and_effects(engine: Engine) -> None:
    stop = stopped(date(2021, 1, 1), reason="no_contact_or_sanction")
    wrong = retraction(stop)
    records = [record(started(date(2020, 1, 1))), record(stop), record(wrong)]
    engine.ingest_service(DeadLetterList()).ingest(
        [
            Incoming(r, json.dumps(r).encode(), {"file": "x.jsonl", "line": i + 1})
            for i, r in enumerate(records)
        ]
    )
    citizen = engine.app.find(engine.vault.citizen_key("6101901234"))
    assert citizen is not None
    trail = audit_entries(engine.app, citizen, date(2021, 6, 1))
    assert [e.event for e in trail] == [
        "Registered",
        "BenefitStarted",
        "BenefitStopped",
        "EventRetracted",
    ]
    assert trail[1].provenance == {"file": "x.jsonl", "line": 1}
    assert trail[1].changes["on_benefit"] == (False, True)
    assert trail[2].changes["on_benefit"] == (True, False)
    assert trail[2].retracted_by == [wrong.event_id] and trail[3].retracts == stop.event_id
    assert trail[3].changes["on_benefit"] == (False, True)


def test_as_known_at_before_and_after_a_retraction(engine: Engine) -> None:
    stop = stopped(date(2021, 1, 1), recorded=datetime(2021, 1, 2, tzinfo=UTC))
    undo = retraction(stop, recorded=datetime(2021, 3, 1, tzinfo=UTC))
    records = [record(started(date(2020, 1, 1))), record(stop), record(undo)]
    engine.ingest_service(DeadLetterList()).ingest(
        [Incoming(r, json.dumps(r).encode(), {}) for r in records]
    )
    citizen = engine.app.find(engine.vault.citizen_key("6101901234"))
    assert citizen is not None
    day = date(2021, 2, 1)
    known_before = durations_on(
        build_timeline(citizen.facts, datetime(2021, 2, 1, tzinfo=UTC)), day, citizen.birth_date
    )
    known_after = durations_on(
        build_timeline(citizen.facts, datetime(2021, 4, 1, tzinfo=UTC)), day, citizen.birth_date
    )
    assert not known_before.on_benefit
    assert known_after.on_benefit and known_after.all_benefits_spell_start == date(2020, 1, 1)


def run(
    env: dict[str, str], cwd: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "casehistory.entrypoints.cli", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        input=stdin,
    )


@pytest.mark.parametrize("backend",
                         ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_no_cpr_in_clear_anywhere_after_a_demo_run(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """The demo's files, stores (every row of every PostgreSQL table too), output and the
    audit commands' output hold no CPR, but for its input and its dead letters."""
    store = request.getfixturevalue("postgres_dsn") if backend == "postgres" else "sqlite"
    env = {"CASEHISTORY_DATA_DIR": str(tmp_path / "data")}
    nobody = {"CASEHISTORY_USER": "", "CASEHISTORY_ROLE": ""}  # the demo asks for no role ...
    operator = {"CASEHISTORY_USER": "op-1", "CASEHISTORY_ROLE": "operator"}
    args = ("demo", "--citizens", "150", "--seed", "4", "--store", store)
    if backend == "postgres":  # ... but on PostgreSQL, whose engine tables it resets
        assert run({**env, **nobody}, tmp_path, *args).returncode == 3
    demo = run({**env, **(operator if backend == "postgres" else nobody)}, tmp_path, *args)
    assert demo.returncode == 0, demo.stderr[-2000:]
    demo_dir = tmp_path / "data" / "demo"
    cprs = {
        json.loads(line)["cpr"]
        for line in (demo_dir / "population.jsonl").read_text().splitlines()
        if isinstance(json.loads(line).get("cpr"), str) and len(json.loads(line)["cpr"]) == 10
    }
    assert len(cprs) >= 150
    quarantined = {"population.jsonl", "dead-letters.jsonl"}  # the input itself, kept whole
    texts = [demo.stdout, demo.stderr]
    stored_cpr = next(
        r["cpr"]
        for r in map(json.loads, (demo_dir / "population.jsonl").read_text().splitlines())
        if r.get("event_type") == "BenefitStarted" and isinstance(validate(r), ContractEvent)
    )
    for audit in ("audit", "verify", "checksum"):
        result = run(
            {"CASEHISTORY_DATA_DIR": str(demo_dir), "CASEHISTORY_STORE": store,
             "CASEHISTORY_USER": "auditor-1", "CASEHISTORY_ROLE": "auditor"},
            tmp_path,
            audit,
            *(["--purpose", "complaint 2026-17"] if audit == "audit" else []),
            stdin=stored_cpr if audit == "audit" else None,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        texts += [result.stdout, result.stderr]
    # Files and rows after the audit commands, whose lookups are logged there too.
    scanned = [p for p in demo_dir.rglob("*") if p.is_file() and p.name not in quarantined]
    assert backend == "postgres" or any(p.name == "lookups.db" for p in scanned)
    texts += [p.read_bytes().decode("latin-1") for p in scanned]
    if backend == "postgres":
        rows = list(postgres_rows(store))
        assert {"casehistory_events", "citizen_keys", "lookup_log"} <= {r["_table"] for r in rows}
        texts += [(bytes(v).decode("latin-1") if isinstance(v, bytes | memoryview) else str(v))
                  for row in rows for v in row.values()]
    letters = (demo_dir / "dead-letters.jsonl").read_text().splitlines()
    texts += [json.loads(line)["message"] for line in letters]
    leaks = [cpr for cpr in cprs if any(cpr in text for text in texts)]
    assert leaks == []


def test_per_citizen_rows_are_read_page_by_page_without_losing_or_repeating_any(
    populated: Engine,
) -> None:
    store = populated.read_model()
    everything = list(durations_records(store, AS_OF))
    pages = [list(durations_records(store, AS_OF, limit=7, offset=n)) for n in range(0, 154, 7)]
    assert [record for page in pages for record in page] == everything
    assert len({record["citizen_key"] for record in everything}) == len(everything) == 150
