"""Roles in one place, and the lookup log ("logning af opslag") on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from casehistory.bootstrap import Engine
from casehistory.entrypoints.cli.main import main
from casehistory.services.access import (
    REFUSED,
    ROWS_SHOWN,
    Action,
    Identity,
    LookupLog,
    PermissionDenied,
    Role,
    check,
    identity_from_env,
    shown_count,
)
from casehistory.settings import Settings
from tests.test_privacy import CPRS, populate
from tests.test_privacy import privacy_env as privacy_env  # a fixture the CLI test uses

CASEWORKER = Identity("cw-17", frozenset({Role.CASEWORKER}))
ANALYST = Identity("an-3", frozenset({Role.ANALYST}))
AUDITOR = Identity("au-1", frozenset({Role.AUDITOR}))
DPO = Identity("dpo-1", frozenset({Role.DATA_PROTECTION_OFFICER}))
OPERATOR = Identity("op-9", frozenset({Role.OPERATOR}))


@pytest.mark.parametrize(
    ("identity", "allowed"),
    [
        (CASEWORKER, {Action.VIEW_CITIZEN, Action.PER_CITIZEN_ROWS, Action.AGGREGATES,
                      Action.API_DOCS}),
        (ANALYST, {Action.AGGREGATES, Action.API_DOCS}),
        (AUDITOR, {Action.VIEW_CITIZEN, Action.AUDIT, Action.LOOKUP_LOG, Action.INSIGHT,
                   Action.AGGREGATES, Action.OPERATE, Action.API_DOCS}),
        (DPO, set(Action) - {Action.OPERATE}),
        (OPERATOR, {Action.OPERATE, Action.API_DOCS}),
    ],
)
def test_each_role_may_do_exactly_its_actions(identity: Identity, allowed: set[Action]) -> None:
    for action in Action:
        if action in allowed:
            check(identity, action)
        else:
            with pytest.raises(PermissionDenied):
                check(identity, action)


def test_the_cli_caller_comes_from_the_environment() -> None:
    assert identity_from_env({"CASEHISTORY_USER": "cw-17", "CASEHISTORY_ROLE": "caseworker"}) == (
        CASEWORKER
    )
    unknown = {"CASEHISTORY_USER": "x", "CASEHISTORY_ROLE": "boss"}
    for env in ({}, {"CASEHISTORY_USER": "x"}, unknown):
        with pytest.raises(PermissionDenied):
            identity_from_env(env)


def test_small_counts_are_hidden_from_analysts_only() -> None:
    assert [shown_count(n, ANALYST) for n in (0, 1, 4, 5, 1234)] == ["0", "<5", "<5", "5", "1,234"]
    assert shown_count(3, AUDITOR) == "3"


def test_lookups_are_logged_chained_and_need_a_purpose(engine: Engine) -> None:
    log = engine.lookup_log
    first = log.log_lookup(CASEWORKER, "sag 2026-0042", citizen_key="a" * 32, shown="timeline")
    log.log_lookup(DPO, "export", criterion="durations --per-citizen", shown="CPR")
    log.log_lookup(AUDITOR, "complaint", citizen_key="a" * 32, shown="audit trail")
    with pytest.raises(PermissionDenied):
        log.log_lookup(CASEWORKER, "  ", citizen_key="a" * 32, shown="timeline")
    assert [r.purpose for r in log.records("a" * 32)] == ["sag 2026-0042", "complaint"]
    assert first.who == "cw-17" and first.role == "caseworker"
    assert list(log.problems()) == []


def _log_db(engine: Engine) -> Any:
    if engine.settings.uses_postgres:
        import psycopg

        return psycopg.connect(engine.settings.store, autocommit=True)
    return sqlite3.connect(engine.settings.data_dir / "lookups.db", isolation_level=None)


def test_the_lookup_log_refuses_changes_and_shows_tampering(engine: Engine) -> None:
    log = engine.lookup_log
    for n in range(3):
        log.log_lookup(CASEWORKER, f"sag {n}", citizen_key="b" * 32, shown="timeline")
    db = _log_db(engine)
    try:
        for statement in ("UPDATE lookup_log SET purpose = 'x'", "DELETE FROM lookup_log"):
            with pytest.raises(Exception, match=r"append-only|retention"):
                db.execute(statement)
        # A writer who drops the guards can change and remove records, but not hide it.
        if engine.settings.uses_postgres:
            db.execute("DROP TRIGGER lookup_log_guard ON lookup_log")
        else:
            db.execute("DROP TRIGGER lookup_log_no_update")
            db.execute("DROP TRIGGER lookup_log_retention")
        db.execute("UPDATE lookup_log SET purpose = 'routine' WHERE purpose = 'sag 0'")
        assert any("altered" in p for p in log.problems())
        db.execute("UPDATE lookup_log SET purpose = 'sag 0' WHERE purpose = 'routine'")
        assert list(log.problems()) == []
        db.execute("DELETE FROM lookup_log WHERE purpose = 'sag 2'")  # the newest
        assert any("newest" in p for p in log.problems())
    finally:
        db.close()


def test_expired_lookup_records_are_purged(engine: Engine) -> None:
    log = engine.lookup_log
    old = datetime.now(UTC) - timedelta(days=engine.settings.lookup_retention_days + 1)
    log.log_lookup(CASEWORKER, "old", citizen_key="c" * 32, shown="timeline", at=old)
    log.log_lookup(CASEWORKER, "new", citizen_key="c" * 32, shown="timeline")
    assert log.purge_expired() == 1
    assert [r.purpose for r in log.records()] == ["new"]
    assert list(log.problems()) == []


def _as(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], identity: Identity | None,
        stdin: str = "") -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if identity is not None:
        monkeypatch.setenv("CASEHISTORY_USER", identity.who)
        monkeypatch.setenv("CASEHISTORY_ROLE", identity.role_names)
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))


def test_cli_lookups_take_the_cpr_from_stdin_check_the_role_and_are_logged(
    privacy_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from casehistory.bootstrap import build

    engine = build(Settings.load(privacy_env))
    try:
        populate(engine)
        key = engine.vault.citizen_key(CPRS[0])
    finally:
        engine.close()
    as_of = ["--as-of", date(2021, 6, 1).isoformat()]

    _as(monkeypatch, privacy_env, ANALYST, CPRS[0] + "\n")
    assert main(["citizen", "--purpose", "curious", *as_of]) == 3
    _as(monkeypatch, privacy_env, None, CPRS[0] + "\n")
    monkeypatch.delenv("CASEHISTORY_ROLE", raising=False)
    assert main(["citizen", "--purpose", "sag 1", *as_of]) == 3
    with pytest.raises(SystemExit):  # the purpose is required
        main(["citizen", *as_of])

    _as(monkeypatch, privacy_env, CASEWORKER, CPRS[0] + "\n")
    assert main(["citizen", "--purpose", "sag 2026-0042", *as_of]) == 0
    cpr_file = tmp_path / "cpr.txt"
    cpr_file.write_text(CPRS[0])
    _as(monkeypatch, privacy_env, AUDITOR)
    assert main(["audit", "--cpr-file", str(cpr_file), "--purpose", "klage 7", *as_of]) == 0
    assert main(["audit", "--citizen-key", key, "--purpose", "klage 7", *as_of]) == 0
    _as(monkeypatch, privacy_env, CASEWORKER, "6101901239\n")  # nobody in the store
    assert main(["citizen", "--purpose", "sag 9", *as_of]) == 1
    capsys.readouterr()

    _as(monkeypatch, privacy_env, AUDITOR, CPRS[0] + "\n")
    assert main(["insight", "--purpose", "indsigt 1"]) == 0
    told = capsys.readouterr().out
    assert "sag 2026-0042" in told and "klage 7" in told and "cw-17" not in told
    _as(monkeypatch, privacy_env, DPO, CPRS[0] + "\n")
    assert main(["insight", "--purpose", "indsigt 1"]) == 0
    told = capsys.readouterr().out
    assert "sag 2026-0042" in told and "cw-17" in told and "au-1" in told

    _as(monkeypatch, privacy_env, DPO)
    assert main(["lookups", "--citizen-key", key]) == 0
    listed = capsys.readouterr().out
    assert listed.count(key[:8]) >= 5 and CPRS[0] not in listed
    _as(monkeypatch, privacy_env, CASEWORKER)
    assert main(["lookups"]) == 3


def test_exported_aggregates_hide_small_counts_from_analysts(
    privacy_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from casehistory.bootstrap import build

    engine = build(Settings.load(privacy_env))
    try:
        populate(engine)
    finally:
        engine.close()
    as_of = ["durations", "--as-of", date(2020, 6, 1).isoformat()]
    _as(monkeypatch, privacy_env, AUDITOR)
    assert main(as_of) == 0
    assert "4 of 4 citizens on benefit" in capsys.readouterr().out
    _as(monkeypatch, privacy_env, ANALYST)
    assert main(as_of) == 0
    shown = capsys.readouterr().out
    assert "<5 of <5 citizens on benefit" in shown and " 4 " not in shown


def test_report_commands_check_the_role_and_refusals_are_logged(
    privacy_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from casehistory.bootstrap import build

    engine = build(Settings.load(privacy_env))
    try:
        populate(engine)
    finally:
        engine.close()
    day = date(2020, 6, 1).isoformat()
    rows = ["durations", "--as-of", day, "--per-citizen", "--format", "jsonl"]
    _as(monkeypatch, privacy_env, OPERATOR)  # runs the engine, sees no personal data
    assert main(["durations", "--as-of", day]) == 3
    assert main(["lists", "clarification-pool", "--as-of", day, "--purpose", "x"]) == 3
    _as(monkeypatch, privacy_env, ANALYST)  # aggregates only, never rows per citizen
    assert main(["durations", "--as-of", day]) == 0
    capsys.readouterr()
    for refused_rows in (
        [*rows, "--purpose", "study 4"],
        ["lists", "long-durations", "--as-of", day, "--purpose", "study 4"],
        ["cadence", "--as-of", day, "--per-citizen", "--purpose", "study 4"],
        ["continuity", "--as-of", day, "--purpose", "study 4"],
        ["coordination", "--as-of", day, "--per-citizen", "--purpose", "study 4"],
    ):
        assert main(refused_rows) == 3
        assert "permission denied" in capsys.readouterr().err
    _as(monkeypatch, privacy_env, CASEWORKER)  # the lists a caseworker works, with a purpose
    assert main(rows) == 3  # no purpose: refused before anything is shown
    assert capsys.readouterr().err.startswith("permission denied: a lookup needs a purpose")
    assert main([*rows, "--purpose", "sag 2026-0007 opfølgning"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(CPRS)
    assert main(["cadence", "--as-of", day, "--per-citizen", "--all", "--purpose", "besøg"]) == 0
    monkeypatch.delenv("CASEHISTORY_ROLE")
    assert main(["durations", "--as-of", day]) == 3  # nobody named: refused, nobody to log

    log = LookupLog(Settings.load(privacy_env))
    try:
        records = log.records()
        refused = [(r.who, r.role, r.shown, r.criterion) for r in records if r.kind == REFUSED]
        listed = [(r.who, r.role, r.purpose, r.criterion, r.shown, r.citizen_key)
                  for r in records if r.kind != REFUSED]
        assert list(log.problems()) == []
    finally:
        log.close()
    assert refused == [
        ("op-9", "operator", "aggregates", "casehistory durations"),
        ("op-9", "operator", "per_citizen_rows", "casehistory lists"),
        ("an-3", "analyst", "per_citizen_rows", "casehistory durations"),
        ("an-3", "analyst", "per_citizen_rows", "casehistory lists"),
        ("an-3", "analyst", "per_citizen_rows", "casehistory cadence"),
        ("an-3", "analyst", "per_citizen_rows", "casehistory continuity"),
        ("an-3", "analyst", "per_citizen_rows", "casehistory coordination"),
    ]
    assert listed == [
        ("cw-17", "caseworker", "sag 2026-0007 opfølgning",
         f"casehistory durations --as-of {day} --per-citizen", ROWS_SHOWN, None),
        ("cw-17", "caseworker", "besøg",
         f"casehistory cadence --as-of {day} --per-citizen --all", ROWS_SHOWN, None),
    ]


def test_the_cli_caller_may_hold_several_roles() -> None:
    both = identity_from_env({"CASEHISTORY_USER": "kim", "CASEHISTORY_ROLE": "dpo, operator"})
    assert both.roles == {Role.DATA_PROTECTION_OFFICER, Role.OPERATOR}
    assert both.may(Action.OPERATE) and both.may(Action.FORGET)
    for roles in (" , ", "dpo,boss"):
        with pytest.raises(PermissionDenied):
            identity_from_env({"CASEHISTORY_USER": "kim", "CASEHISTORY_ROLE": roles})


ENGINE_ARGV = [
    ["ingest", "x.jsonl"], ["project"], ["publish", "x.jsonl"], ["consume"], ["route"],
    ["reconcile"], ["replay"], ["checksum"], ["verify"], ["purge"], ["db", "init"],
    ["db", "roles"], ["serve"], ["users", "add", "kim", "--role", "analyst"],
]
SELF_CHECKED = {"citizen", "audit", "forget", "insight", "lookups"}
"""Commands about one citizen or the lookup log: they check their own action (`on_citizen`)."""
NO_ROLE = {"demo", "generate", "convert"}
"""A synthetic municipality in its own data dir, and file conversions: no store is read."""


def test_every_command_asks_for_an_action_or_is_known_not_to() -> None:
    from casehistory.entrypoints.cli.main import COMMAND_NEEDS, ENGINE_COMMANDS, parser

    [commands] = [a.choices for a in parser()._actions if a.dest == "command"]
    assert set(commands) == set(COMMAND_NEEDS) | SELF_CHECKED | NO_ROLE
    assert not set(COMMAND_NEEDS) & (SELF_CHECKED | NO_ROLE)
    assert {argv[0] for argv in ENGINE_ARGV} == set(ENGINE_COMMANDS)
    assert all(COMMAND_NEEDS[c] is Action.OPERATE for c in ENGINE_COMMANDS)


def test_engine_commands_are_the_operators_and_refusals_are_logged(
    privacy_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    import json
    import os
    import subprocess
    import sys

    from casehistory.bootstrap import build
    from tests.factories import record, started

    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(record(started(date(2020, 1, 1)), cpr)) + "\n"
                              for cpr in CPRS))

    def ingest(role: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "casehistory.entrypoints.cli", "ingest", str(source)],
            env={**os.environ, **privacy_env, "CASEHISTORY_USER": f"{role}-1",
                 "CASEHISTORY_ROLE": role},
            capture_output=True, text=True, timeout=300,
        )

    refused = ingest("analyst")
    assert refused.returncode == 3
    assert refused.stderr.strip() == (
        "permission denied: role analyst may not operate (roles that may: auditor, operator)")
    engine = build(Settings.load(privacy_env))
    try:
        assert engine.follower().lag() == 0  # nothing was ingested
    finally:
        engine.close()
    done = ingest("operator")
    assert done.returncode == 0, done.stderr[-2000:]
    engine = build(Settings.load(privacy_env))
    try:
        assert all(engine.app.find(engine.vault.citizen_key(cpr)) for cpr in CPRS)
    finally:
        engine.close()

    for name, value in privacy_env.items():
        monkeypatch.setenv(name, value)
    for role in ("analyst", "caseworker", "dpo"):
        monkeypatch.setenv("CASEHISTORY_USER", f"{role}-1")
        monkeypatch.setenv("CASEHISTORY_ROLE", role)
        for argv in ENGINE_ARGV:
            assert main(argv) == 3, (role, argv)
    monkeypatch.delenv("CASEHISTORY_ROLE")
    assert main(["project"]) == 3
    assert "set CASEHISTORY_USER and CASEHISTORY_ROLE" in capsys.readouterr().err

    log = LookupLog(Settings.load(privacy_env))
    try:
        logged = [(r.who, r.shown, r.criterion) for r in log.records() if r.kind == REFUSED]
        assert list(log.problems()) == []
    finally:
        log.close()
    assert logged[0] == ("analyst-1", "operate", "casehistory ingest")
    assert logged[1:] == [(f"{role}-1", "operate", f"casehistory {argv[0]}")
                          for role in ("analyst", "caseworker", "dpo") for argv in ENGINE_ARGV]

