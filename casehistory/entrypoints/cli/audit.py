"""Commands for auditors: replay, checksum, audit, verify, forget."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from casehistory.bootstrap import READ_MODEL, Engine, build
from casehistory.domain.citizen import Citizen
from casehistory.entrypoints.cli.common import (
    add_citizen_arguments,
    as_of_date,
    console,
    kafka_bootstrap,
    on_citizen,
    progress_bar,
)
from casehistory.services.access import (
    Action,
    LookupLog,
    LookupRecord,
    check,
    identity_from_env,
)
from casehistory.services.anchors import verify_anchors
from casehistory.services.audit import audit_entries, carry_forgetting, forget, purge_dead_letters
from casehistory.services.replay import checksum, rebuild, replay_from_kafka, replay_target
from casehistory.services.verify import ChainProblem, verify_store
from casehistory.settings import Settings


def _checksum_table(engine: Engine, title: str) -> Table:
    table = Table(title=title)
    for column in ("read model", "position", "rows", "checksum"):
        table.add_column(column)
    c = checksum(engine)
    table.add_row(c.read_model, str(c.position), str(c.rows), c.checksum)
    return table


def cmd_checksum(args: argparse.Namespace) -> int:
    engine = build()
    try:
        Console().print(_checksum_table(engine, "Read-model checksums"))
    finally:
        engine.close()
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    if args.from_kafka:
        return _replay_from_kafka(args)
    engine = build()
    results = []
    try:
        with progress_bar() as progress:
            task = progress.add_task(
                f"rebuild {READ_MODEL}", total=engine.read_model().position(), rate=""
            )
            done = 0

            def advance(n: int) -> None:
                nonlocal done
                done += n
                elapsed = progress.tasks[0].elapsed or 1e-9
                progress.update(task, advance=n, rate=f"{done / elapsed:,.0f} events/s")

            results.append(rebuild(engine, switch=args.switch, on_batch=advance))
    finally:
        engine.close()
    table = Table(title="Rebuilt beside the live read models")
    for column in ("read model", "position", "live", "rebuilt", "equal", "switched"):
        table.add_column(column)
    for r in results:
        table.add_row(
            r.live.read_model,
            str(r.live.position),
            r.live.checksum[:16],
            r.rebuilt.checksum[:16],
            "yes" if r.equal else "NO",
            "yes" if r.switched else "no",
        )
    Console().print(table)
    return 0 if all(r.equal for r in results) or args.switch else 1


def _replay_from_kafka(args: argparse.Namespace) -> int:
    source = Settings.load()
    bootstrap = kafka_bootstrap(source)
    if args.into is None:
        raise SystemExit("--from-kafka needs --into DIR (a new data dir) or a postgresql:// URL")
    original = build(source)
    target = build(replay_target(source, args.into))
    try:
        record_forgets = carry_forgetting(original, target)
        with progress_bar() as progress:
            task = progress.add_task(f"replay {source.kafka_history_topic}", total=None, rate="")
            report = replay_from_kafka(
                target, bootstrap, source.kafka_history_topic, lambda n: progress.advance(task, n)
            )
        forgotten = record_forgets()
        target.project()
        console.print(f"consumed {report.received:,}: stored {report.stored:,}, duplicate "
                      f"{report.duplicate:,}, dead-lettered {report.rejected:,}; "
                      f"{forgotten:,} forgotten citizen(s) stay forgotten")
        Console().print(_checksum_table(target, f"Checksums of the store rebuilt in {args.into}"))
    finally:
        target.close()
        original.close()
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    found = on_citizen(
        args,
        Action.AUDIT,
        "audit trail with provenance and effects",
        lambda engine, citizen: (
            citizen, audit_entries(engine.store_of(citizen.citizen_key), citizen, args.as_of)),
    )
    if found is None:
        return 1
    citizen, entries = found
    if args.format == "jsonl":
        for entry in entries:
            print(json.dumps(asdict(entry), default=str, ensure_ascii=False))
        return 0
    table = Table(title=f"Audit of citizen {citizen.citizen_key} (effects on {args.as_of})")
    for column in (
        "#",
        "event",
        "effective",
        "recorded",
        "arrived",
        "source",
        "case",
        "provenance",
        "retraction",
        "changed",
    ):
        table.add_column(column)
    for e in entries:
        retraction = (f"retracts {e.retracts}" if e.retracts else "") + (
            f" retracted by {', '.join(e.retracted_by)}" if e.retracted_by else ""
        )
        table.add_row(
            str(e.position),
            e.event,
            e.effective_date or "",
            e.recorded_at,
            e.arrived_at,
            e.source_system or "",
            e.source_case_ref or "",
            ", ".join(f"{k}={v}" for k, v in e.provenance.items()),
            retraction.strip(),
            "; ".join(f"{k}: {b} -> {a}" for k, (b, a) in e.changes.items()),
        )
    Console().print(table)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    engine = build()
    try:
        problems: list[ChainProblem] = []
        for store in engine.stores.values():  # every partition group's event store
            problems += verify_store(store)
            problems += verify_anchors(store, engine.settings.integrity_key)
    finally:
        engine.close()
    if not problems:
        console.print("every citizen's hash chain is intact")
        return 0
    table = Table(title=f"{len(problems)} problem(s) in the event store")
    for column in ("citizen", "position", "kind", "detail"):
        table.add_column(column)
    for p in problems:
        table.add_row(p.citizen_id, str(p.position), p.kind, p.detail)
    Console().print(table)
    return 1


def cmd_forget(args: argparse.Namespace) -> int:
    """Forget a citizen: their dead letters, the forget in the history, then the CPR key."""

    def shred(engine: Engine, citizen: Citizen) -> tuple[str, int]:
        cpr = engine.vault.unseal(citizen.citizen_key, citizen.sealed_cpr)
        purged = 0
        if cpr is not None:
            for path in _dead_letter_files(engine.settings, args.dead_letters):
                purged += purge_dead_letters(path, {cpr})
        forget(engine.store_of(citizen.citizen_key), engine.vault.keys.destroy, citizen)
        return citizen.citizen_key, purged

    done = on_citizen(args, Action.FORGET, "forgotten (CPR key destroyed)", shred)
    if done is None:
        return 1
    key, purged = done
    console.print(f"citizen {key}: {purged} dead letter(s) purged, CPR key destroyed; "
                  "the history stays")
    return 0


def _dead_letter_files(settings: Settings, extra: list[Path]) -> list[Path]:
    """The engine's dead-letter file and any others named (e.g. `*.rejected.jsonl`)."""
    return [settings.data_dir / "dead-letters.jsonl", *extra]


def cmd_purge(args: argparse.Namespace) -> int:
    """Apply the retentions: expired dead letters and expired lookup records go."""
    settings = Settings.load()
    now = datetime.now(UTC)
    letters = 0
    if settings.dead_letter_retention_days is not None:
        before = now - timedelta(days=settings.dead_letter_retention_days)
        letters = sum(
            purge_dead_letters(path, set(), before)
            for path in _dead_letter_files(settings, args.dead_letters)
        )
    log = LookupLog(settings)
    try:
        lookups = log.purge_expired(now)
    finally:
        log.close()
    console.print(f"purged {letters} expired dead letter(s) and {lookups} lookup record(s)")
    return 0


def cmd_insight(args: argparse.Namespace) -> int:
    """Tell a citizen who looked up their data, when and why (who: to the DPO only)."""
    identity = identity_from_env()

    def lookups(engine: Engine, citizen: Citizen) -> list[LookupRecord]:
        return engine.lookup_log.records(citizen.citizen_key)

    found = on_citizen(args, Action.INSIGHT, "lookups of the citizen's data (insight)", lookups)
    if found is None:
        return 1
    employees = identity.may(Action.SEE_EMPLOYEES)
    table = Table(title="Lookups of your data")
    for column in ("date", "purpose", *(("who", "role") if employees else ())):
        table.add_column(column)
    for r in found:
        table.add_row(r.at[:10], r.purpose, *((r.who, r.role) if employees else ()))
    Console().print(table)
    return 0


def cmd_lookups(args: argparse.Namespace) -> int:
    """The lookup log for auditors: every record (or one citizen's), and its integrity."""
    identity = identity_from_env()
    check(identity, Action.LOOKUP_LOG)
    log = LookupLog(Settings.load())
    try:
        records = log.records(args.citizen_key)
        problems = list(log.problems())
    finally:
        log.close()
    table = Table(title=f"{len(records)} lookup record(s)")
    for column in ("at", "who", "role", "purpose", "citizen", "criterion", "shown"):
        table.add_column(column)
    for r in records:
        table.add_row(r.at, r.who, r.role, r.purpose, r.citizen_key or "", r.criterion or "",
                      r.shown)
    Console().print(table)
    for problem in problems:
        console.print(f"lookup log: {problem}")
    return 1 if problems else 0


def add_parsers(sub: Any) -> None:
    rep = sub.add_parser("replay", help="rebuild the read model beside the live one and compare")
    rep.add_argument("--switch", action="store_true", help="swap the rebuilt copy in")
    rep.add_argument(
        "--from-kafka",
        action="store_true",
        help="rebuild the event store itself from the history topic from offset 0",
    )
    rep.add_argument("--into", help="with --from-kafka: a new data dir or a postgresql:// URL")
    rep.set_defaults(func=cmd_replay)

    chk = sub.add_parser("checksum", help="content checksum of the read model")
    chk.set_defaults(func=cmd_checksum)

    aud = sub.add_parser("audit", help="every event of a citizen with provenance and effects")
    add_citizen_arguments(aud)
    aud.add_argument("--as-of", type=as_of_date, default=date.today())
    aud.add_argument("--format", choices=["table", "jsonl"], default="table")
    aud.set_defaults(func=cmd_audit)

    ver = sub.add_parser("verify", help="walk every citizen's hash chain")
    ver.set_defaults(func=cmd_verify)

    fgt = sub.add_parser("forget", help="destroy a citizen's CPR key (crypto-shredding)")
    add_citizen_arguments(fgt)
    fgt.add_argument("--dead-letters", type=Path, action="append", default=[],
                     help="another dead-letters file to purge of the citizen (repeatable)")
    fgt.set_defaults(func=cmd_forget)

    prg = sub.add_parser("purge", help="drop dead letters and lookup records past retention")
    prg.add_argument("--dead-letters", type=Path, action="append", default=[],
                     help="another dead-letters file to apply the retention to (repeatable)")
    prg.set_defaults(func=cmd_purge)

    ins = sub.add_parser("insight", help="for a citizen: when and why their data was looked up")
    add_citizen_arguments(ins)
    ins.set_defaults(func=cmd_insight)

    lkp = sub.add_parser("lookups", help="the lookup log and its integrity (auditors)")
    lkp.add_argument("--citizen-key", help="only this citizen's lookups")
    lkp.set_defaults(func=cmd_lookups)
