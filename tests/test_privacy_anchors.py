"""Tamper evidence against a writer of the store, on SQLite and PostgreSQL.

The writer here can change any row of the events table, and even holds the
store key (so it can decrypt, edit, re-encrypt and recompute the unkeyed chain),
but not the integrity key: every change it makes, to the newest record too,
leaves a citizen whose keyed chain no longer reaches its anchored head.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import orjson

from casehistory.bootstrap import Engine, build
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.domain.citizen import CHAINED_FIELDS, chain_hash_of, citizen_id
from casehistory.entrypoints.cli.main import main
from casehistory.services.anchors import verify_anchors
from casehistory.services.verify import verify_store
from tests.factories import record, started, stopped
from tests.test_privacy import CPRS, incoming


def _populate(engine: Engine) -> None:
    records = []
    for cpr in CPRS:
        records += [record(started(date(2020, 1, 1)), cpr), record(stopped(date(2021, 1, 1)), cpr)]
    engine.ingest_service(DeadLetterList()).ingest(incoming(*records))


def _table(engine: Engine) -> tuple[str, str]:
    return ("casehistory_events", "%s") if engine.settings.uses_postgres else ("stored_events", "?")


def _run(engine: Engine, statement: str, params: list[Any]) -> list[Any]:
    datastore = engine.app.recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=True) as cursor:
        cursor.execute(statement, params)
        try:
            rows = cursor.fetchall()
        except Exception:
            return []
    return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in rows]


def _id(engine: Engine, cpr: str) -> Any:
    uid = citizen_id(engine.vault.citizen_key(cpr))
    return uid if engine.settings.uses_postgres else uid.hex


def _problems(engine: Engine) -> set[tuple[str, str]]:
    found = verify_anchors(engine.app, engine.settings.integrity_key)
    return {(p.citizen_id, p.kind) for p in found}


def test_an_untouched_store_verifies_and_the_cli_says_so(engine: Engine, monkeypatch: Any) -> None:
    _populate(engine)
    assert _problems(engine) == set()
    for name, value in {"CASEHISTORY_DATA_DIR": str(engine.settings.data_dir),
                        "CASEHISTORY_STORE": engine.settings.store,
                        "CASEHISTORY_PSEUDONYM_KEY": engine.settings.pseudonym_key.hex()}.items():
        monkeypatch.setenv(name, value)
    assert main(["verify"]) == 0


def test_removing_the_newest_record_is_detected(engine: Engine) -> None:
    _populate(engine)
    table, m = _table(engine)
    newest = _id(engine, CPRS[-1])
    _run(engine, f"DELETE FROM {table} WHERE originator_id = {m} AND originator_version = 3",
         [newest])
    assert list(verify_store(engine.app)) == []  # the unkeyed chain cannot see it
    assert _problems(engine) == {(str(citizen_id(engine.vault.citizen_key(CPRS[-1]))), "removed")}


def test_a_forged_newest_record_with_a_recomputed_chain_is_detected(engine: Engine) -> None:
    _populate(engine)
    table, m = _table(engine)
    victim = _id(engine, CPRS[0])
    cipher = engine.app.mapper.cipher
    assert cipher is not None
    (state,) = _run(engine, f"SELECT state FROM {table} WHERE originator_id = {m} "
                    "AND originator_version = 3", [victim])[0]
    previous = orjson.loads(cipher.decrypt(bytes(_run(
        engine, f"SELECT state FROM {table} WHERE originator_id = {m} AND originator_version = 2",
        [victim])[0][0])))
    content = orjson.loads(cipher.decrypt(bytes(state)))
    content["effective_date"] = "2030-01-01"
    chained = {f: content[f] for f in CHAINED_FIELDS["FactRecorded"]}
    content["chain_hash"] = chain_hash_of(previous["chain_hash"], "BenefitStopped", chained)
    _run(engine, f"UPDATE {table} SET state = {m} WHERE originator_id = {m} "
         "AND originator_version = 3", [cipher.encrypt(orjson.dumps(content)), victim])
    assert list(verify_store(engine.app)) == []  # recomputed: the unkeyed chain holds
    assert _problems(engine) == {(str(citizen_id(engine.vault.citizen_key(CPRS[0]))), "altered")}


def test_reordered_records_are_detected(engine: Engine) -> None:
    _populate(engine)
    table, m = _table(engine)
    victim = _id(engine, CPRS[1])
    rows = {v: _run(engine, f"SELECT topic, state FROM {table} WHERE originator_id = {m} "
                    f"AND originator_version = {v}", [victim])[0] for v in (2, 3)}
    for version, other in ((2, 3), (3, 2)):
        _run(engine, f"UPDATE {table} SET topic = {m}, state = {m} WHERE originator_id = {m} "
             f"AND originator_version = {version}", [*rows[other], victim])
    assert _problems(engine) == {(str(citizen_id(engine.vault.citizen_key(CPRS[1]))), "altered")}


def test_records_appended_without_the_integrity_key_are_detected(engine: Engine) -> None:
    _populate(engine)
    intruder = build(replace(engine.settings, integrity_key=b"x" * 32))
    try:
        intruder.ingest_service(DeadLetterList()).ingest(
            incoming(record(started(date(2022, 1, 1)), "6309751234"))
        )
    finally:
        intruder.close()
    assert _problems(engine) == {
        (str(citizen_id(engine.vault.citizen_key("6309751234"))), "altered")
    }
