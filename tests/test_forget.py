"""Forgetting that stays forgotten: store, key store, dead letters, replays; reports unchanged."""

from __future__ import annotations

import io
import json
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.cryptography import AESCipher
from eventsourcing.utils import Environment

from casehistory.bootstrap import Engine, build
from casehistory.consumers.deadletter import DeadLetterFile
from casehistory.domain.citizen import Citizen
from casehistory.entrypoints.cli.common import ingest_files
from casehistory.entrypoints.cli.main import main
from casehistory.schemas.history import decode
from casehistory.services.audit import carry_forgetting, forget, purge_dead_letters
from casehistory.services.replay import checksum, replay_target
from casehistory.settings import Settings
from tests.attacker import postgres_rows
from tests.factories import record, started, stopped
from tests.test_privacy import CPRS
from tests.test_privacy import privacy_env as privacy_env  # a fixture

FORGOTTEN = CPRS[0]


def _input(tmp_path: Path) -> Path:
    lines = []
    for cpr in CPRS:
        lines.append(record(started(date(2020, 1, 1)), cpr))
        lines.append(record(stopped(date(2021, 3, 1)), cpr))
        lines.append({**record(started(date(2022, 1, 1)), cpr), "benefit": "no-such-benefit"})
    path = tmp_path / "input" / "facts.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _database_values(settings: Settings) -> Iterator[bytes]:
    """Every value of every row of the PostgreSQL store and key store, as bytes."""
    for dsn in {settings.store, settings.key_store or settings.store}:
        for row in postgres_rows(dsn):
            for value in row.values():
                yield bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()


def _checksums(engine: Engine) -> str:
    engine.project()
    return checksum(engine).checksum


def _key_bytes(engine: Engine, cpr: str) -> bytes:
    key = engine.vault.citizen_key(cpr)
    return engine.vault.keys.keys_for([key])[key]


def test_forget_reaches_every_place_and_reports_stay(
    privacy_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _input(tmp_path)
    engine = build(Settings.load(privacy_env))
    letters = engine.settings.data_dir / "dead-letters.jsonl"
    try:
        ingest_files(engine, [source], DeadLetterFile(letters))
        before = _checksums(engine)
        secret = _key_bytes(engine, FORGOTTEN)
        key = engine.vault.citizen_key(FORGOTTEN)
        if engine.settings.uses_postgres:  # the scan below can find the key while it exists
            assert [b for b in _database_values(engine.settings) if secret in b]
    finally:
        engine.close()
    assert FORGOTTEN in letters.read_text()

    for name, value in {**privacy_env, "CASEHISTORY_USER": "dpo-1",
                        "CASEHISTORY_ROLE": "dpo"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stdin", io.StringIO(FORGOTTEN + "\n"))
    assert main(["forget", "--purpose", "erasure request 2026-3"]) == 0

    engine = build(Settings.load(privacy_env))
    try:
        citizen = engine.app.find(key)
        assert citizen is not None and citizen.forgotten_at is not None
        assert engine.vault.unseal(key, citizen.sealed_cpr) is None
        assert engine.vault.keys.forgotten() == {key}
        assert _checksums(engine) == before  # reports stay unchanged
        assert all(c in letters.read_text() for c in CPRS[1:])  # only the forgotten one went
        assert FORGOTTEN not in letters.read_text()
        data = engine.settings.data_dir
        files = [p for p in data.rglob("*") if p.is_file() and p.parent != source.parent]
        assert [p for p in files if secret in p.read_bytes()] == []
        assert [p for p in files if FORGOTTEN.encode() in p.read_bytes()] == []
        if engine.settings.uses_postgres:  # every row of the store and of the key store
            values = list(_database_values(engine.settings))
            assert [b for b in values if secret in b] == []
            assert [b for b in values if FORGOTTEN.encode() in b] == []

        # A rebuild from the same input (as a replay from the topic) keeps them forgotten.
        target = build(replace(engine.settings, data_dir=tmp_path / "rebuilt", store="sqlite",
                               key_store=None))
        try:
            record_forgets = carry_forgetting(engine, target)
            ingest_files(target, [source], DeadLetterFile(tmp_path / "rebuilt" / "dl.jsonl"))
            assert record_forgets() == 1
            replayed = target.app.find(key)
            assert replayed is not None and replayed.sealed_cpr == ""
            assert replayed.forgotten_at == citizen.forgotten_at
            assert target.vault.keys.keys_for([key]) == {}
            assert _checksums(target) == before
        finally:
            target.close()
    finally:
        engine.close()


class _Crash(Exception):
    pass


def test_the_forget_is_recorded_before_the_key_is_destroyed(privacy_env: dict[str, str],
                                                           tmp_path: Path) -> None:
    engine = build(Settings.load(privacy_env))
    try:
        ingest_files(engine, [_input(tmp_path)], DeadLetterFile(tmp_path / "dl.jsonl"))
        key = engine.vault.citizen_key(FORGOTTEN)
        citizen = engine.app.find(key)
        assert citizen is not None

        def crash(_: str) -> Any:
            raise _Crash

        with pytest.raises(_Crash):
            forget(engine.app, crash, citizen)
        engine.app.forget_cached([key])
        recorded = engine.app.find(key)
        assert recorded is not None and recorded.forgotten_at is not None
        assert engine.vault.keys.keys_for([key])  # the key outlived the crash ...
        forget(engine.app, engine.vault.keys.destroy, recorded)  # ... and a retry destroys it
        assert engine.vault.keys.keys_for([key]) == {}
        stored = list(engine.app.repository.event_store.get(recorded.id))
        assert sum(isinstance(e, Citizen.Forgotten) for e in stored) == 1
    finally:
        engine.close()


def test_expired_dead_letters_go_and_the_file_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "dl" / "dead-letters.jsonl"
    letters = DeadLetterFile(path)
    from casehistory.consumers.deadletter import DeadLetter

    letters.put([DeadLetter(b'{"cpr": "6101901234"}', "bad", "bad", {"n": 1})])
    assert path.stat().st_mode & 0o777 == 0o600
    assert purge_dead_letters(path, set(), datetime.now(UTC) - timedelta(days=1)) == 0
    assert purge_dead_letters(path, set(), datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert path.read_text() == "" and path.stat().st_mode & 0o777 == 0o600


def test_a_new_dead_letter_topic_gets_the_operators_retention(kafka_bootstrap: str) -> None:
    import uuid

    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    from casehistory.consumers.topics import ensure_topics

    topic = f"retention-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, topic, topic + ".dlq", 1, dlq_retention_days=30)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        dlq = ConfigResource(ConfigResourceType.TOPIC, topic + ".dlq")
        described = str(admin.describe_configs([dlq]))
    finally:
        admin.close()
    assert "2592000000" in described  # 30 days in ms (the broker default is 7 days)


def test_a_replay_from_the_history_topic_keeps_a_forgotten_citizen_forgotten(
    kafka_bootstrap: str, privacy_env: dict[str, str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue #16 item 2 on the history topic: forget, then rebuild the store from the
    history topic; the forgotten citizen's sealed CPR there opens under no key."""
    import uuid

    from tests.test_kafka_ingest import (
        consumer_process,
        finish,
        history_values,
        kafka_env,
        publish_file,
        router_process,
    )

    topic = f"forget-{uuid.uuid4().hex[:8]}"
    env = {**kafka_env(kafka_bootstrap, privacy_env, topic),
           "CASEHISTORY_PSEUDONYM_KEY": privacy_env["CASEHISTORY_PSEUDONYM_KEY"]}
    publish_file(env, _input(tmp_path))
    logs = finish([router_process(env, "--idle-exit", "20")])
    logs += finish([consumer_process(env, "--from-history", "--idle-exit", "20")])
    assert "dead" in logs[0].lower()  # the router logged the bad records it dead-lettered ...
    assert [c for c in CPRS if any(c in log for log in logs)] == []  # ... without their CPRs
    for name, value in {**env, "CASEHISTORY_USER": "dpo-1", "CASEHISTORY_ROLE": "dpo"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stdin", io.StringIO(FORGOTTEN + "\n"))
    assert main(["forget", "--purpose", "erasure request 2026-4"]) == 0
    source = Settings.load(env)
    engine = build(source)
    try:
        before = _checksums(engine)
        key = engine.vault.citizen_key(FORGOTTEN)
    finally:
        engine.close()
    history = history_values(kafka_bootstrap, topic + ".history")
    cipher = AESCipher(Environment(env={"CIPHER_KEY": b64encode(source.store_key).decode()}))
    opened = [decode(value, cipher) for value in history]
    mine = [sealed for routed, sealed in opened if routed.citizen_key == key]
    assert mine and all(mine)  # sealed before the forget
    assert [c for c in CPRS if any(c.encode() in v for v in history)] == []
    assert [c for c in CPRS if any(c in sealed for _, sealed in opened)] == []

    rebuilt = tmp_path / "rebuilt"
    monkeypatch.setenv("CASEHISTORY_ROLE", "operator")  # replaying is the operator's
    assert main(["replay", "--from-kafka", "--into", str(rebuilt)]) == 0
    target = build(replay_target(source, str(rebuilt)))  # as the replay built it
    try:
        citizen = target.app.find(key)
        assert citizen is not None and citizen.sealed_cpr and citizen.forgotten_at
        assert target.vault.unseal(key, citizen.sealed_cpr) is None  # its key is gone
        assert target.vault.keys.keys_for([key]) == {}
        assert key in target.vault.keys.forgotten()
        for cpr in CPRS[1:]:
            other = target.app.find(target.vault.citizen_key(cpr))
            assert other is not None
            assert target.vault.unseal(other.citizen_key, other.sealed_cpr) == cpr
        assert _checksums(target) == before
        files = [p for p in rebuilt.rglob("*") if p.is_file()]
        assert [p for p in files if FORGOTTEN.encode() in p.read_bytes()] == []
    finally:
        target.close()


def test_forget_audit_and_verify_reach_a_citizen_in_any_partition_groups_store(
    privacy_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With two partition groups (issue #14) the forgotten citizen lives in group 1's store:
    the forget is recorded there (nothing lands in group 0's), `audit` reads it there and
    `verify` walks every group's store."""
    from casehistory.consumers.deadletter import DeadLetterList
    from tests.test_privacy import incoming

    env = {**privacy_env, "CASEHISTORY_STORE_GROUPS": "2"}
    engine = build(Settings.load(env))
    try:
        for group, cprs in ((1, [FORGOTTEN]), (0, CPRS[1:])):
            records = [record(started(date(2020, 1, 1)), c) for c in cprs]
            records += [record(stopped(date(2021, 3, 1)), c) for c in cprs]
            engine.ingest_service(DeadLetterList(), group).ingest(incoming(*records))
        key = engine.vault.citizen_key(FORGOTTEN)
        assert engine.stores[1].heads([key]) and not engine.stores[0].heads([key])
    finally:
        engine.close()

    def as_role(role: str, stdin: str = "") -> None:
        for name, value in {**env, "CASEHISTORY_USER": f"{role}-1",
                            "CASEHISTORY_ROLE": role}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))

    as_role("dpo", FORGOTTEN + "\n")
    assert main(["forget", "--purpose", "erasure request 2026-5"]) == 0
    engine = build(Settings.load(env))
    try:
        citizen = engine.find(key)
        assert citizen is not None and citizen.forgotten_at is not None
        assert not engine.stores[0].heads([key])  # recorded in the citizen's own store only
        assert engine.vault.keys.keys_for([key]) == {}
        as_role("auditor")
        capsys.readouterr()
        assert main(["audit", "--citizen-key", key, "--purpose", "klage 9", "--format",
                     "jsonl"]) == 0
        shown = [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()]
        assert (shown[0], shown[-1], len(shown)) == ("Registered", "Forgotten", 4)
        as_role("operator")
        assert main(["verify"]) == 0
        recorder: Any = engine.stores[1].recorder
        newest = citizen_id_of(engine, key)
        m = "%s" if engine.settings.uses_postgres else "?"
        table = recorder.events_table_name
        if engine.settings.uses_postgres:
            table = f"{recorder.datastore.schema}.{table}"  # casehistory_g1
        with recorder.datastore.transaction(commit=True) as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE originator_id = {m} "
                           f"AND originator_version = {m}", [newest, citizen.version])
        assert main(["verify"]) == 1  # group 1's store lost its newest record
    finally:
        engine.close()


def citizen_id_of(engine: Engine, key: str) -> Any:
    from casehistory.domain.citizen import citizen_id

    uid = citizen_id(key)
    return uid if engine.settings.uses_postgres else uid.hex
