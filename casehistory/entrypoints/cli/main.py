"""The `casehistory` command line: entry points only parse input and call services."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from casehistory.bootstrap import (
    READ_MODEL,
    Engine,
    LongLivedObjects,
    build,
    drop_engine_tables,
    tune_garbage_collector,
)
from casehistory.consumers import files
from casehistory.consumers.deadletter import DeadLetter, DeadLetterFile
from casehistory.consumers.ingest import STORE_BATCH, IngestReport
from casehistory.consumers.retry import Backoff, Stopped
from casehistory.domain import reference
from casehistory.domain.citizen import Citizen
from casehistory.domain.durations import COHORT_YEARS
from casehistory.domain.facts import BreakKind
from casehistory.entrypoints.api import server
from casehistory.entrypoints.cli import audit, coordination, councils, db, lists, router
from casehistory.entrypoints.cli.common import (
    DURATION_FIELDS,
    PURPOSE_HELP,
    add_citizen_arguments,
    as_of_date,
    caller,
    console,
    ingest_files,
    kafka_bootstrap,
    log,
    moment,
    on_citizen,
    project,
    reveal_cpr,
    stop_on_signals,
)
from casehistory.entrypoints.cli.router import ensure_pipeline_topics
from casehistory.population import generator
from casehistory.projections.queries import durations_lines, durations_records
from casehistory.schemas.contract import ContractEvent, validate
from casehistory.services import reports as services
from casehistory.services.access import (
    Action,
    Identity,
    LookupLog,
    PermissionDenied,
    check,
    identity_from_env,
    shown_count,
)
from casehistory.services.report import DURATION_BUCKETS, Headline
from casehistory.settings import Settings

DEMO_AS_OF = date(2026, 11, 1)
DEMO_HOME = "101"
"""The demo's municipality (København) unless --national."""


def municipality_code(text: str) -> str:
    """A kommunekode of the reference table (argparse type)."""
    if text not in reference.municipalities():
        raise argparse.ArgumentTypeError(f"{text!r} is not a municipality code (e.g. 101)")
    return text


def _ingest_summary(report: IngestReport, dead_letter_path: Path | None) -> Table:
    table = Table(title="Ingest")
    table.add_column("outcome")
    table.add_column("records", justify="right")
    table.add_row("received", f"{report.received:,}")
    table.add_row("stored", f"{report.stored:,}")
    table.add_row("duplicate (no-op)", f"{report.duplicate:,}")
    table.add_row("rejected (dead-lettered)", f"{report.rejected:,}")
    for reason, count in sorted(report.rejected_by_reason.items()):
        table.add_row(f"  {reason}", f"{count:,}")
    if dead_letter_path is not None and report.rejected:
        table.caption = f"dead letters with reasons: {dead_letter_path}"
    return table


def _headline_tables(report: Headline, identity: Identity | None = None) -> list[Table]:
    """The headline as tables; counts under 5 show as "<5" when the caller is an analyst."""

    def n(count: int) -> str:
        return shown_count(count, identity) if identity else f"{count:,}"

    buckets = Table(title=f"Current spell on {report.as_of}: true versus naive")
    buckets.add_column("duration")
    buckets.add_column("true (all benefits)", justify="right")
    buckets.add_column("naive (open case)", justify="right")
    for bucket in DURATION_BUCKETS:
        buckets.add_row(
            bucket, n(report.true_buckets[bucket]), n(report.naive_buckets[bucket])
        )
    buckets.caption = f"{n(report.on_benefit)} of {n(report.citizens)} citizens on benefit"

    cohorts = Table(title="Cohorts: spell over N years")
    for name in ("cohort", "true", "cash system", "naive", "missed by naive"):
        cohorts.add_column(name, justify="right")
    missed = Table(title="Missed by the naive measure, by break bridged")
    missed.add_column("cohort", justify="right")
    kinds = list(BreakKind)
    for kind in kinds:
        missed.add_column(kind.value.replace("_", " "), justify="right")
    for years in COHORT_YEARS:
        cohorts.add_row(
            f"over {years} years",
            n(report.true_cohorts[years]),
            n(report.cash_cohorts[years]),
            n(report.naive_cohorts[years]),
            n(report.missed[years]),
        )
        missed.add_row(
            f"over {years} years", *(n(report.missed_by_break[years][k]) for k in kinds)
        )
    missed.caption = "a missed citizen counts once under each kind of break the spell bridged"
    return [buckets, cohorts, missed]


def cmd_demo(args: argparse.Namespace) -> int:
    base = Settings.load()
    demo_dir = base.data_dir / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)
    settings = replace(
        Settings.load({**os.environ, "CASEHISTORY_DATA_DIR": str(demo_dir)}), store=args.store
    )
    if settings.uses_postgres:
        drop_engine_tables(settings.store)
    engine = build(settings)
    try:
        population = demo_dir / "population.jsonl"
        where = f"home {args.home}" if args.home else "national sample"
        with console.status(f"generating {args.citizens:,} citizens (seed {args.seed}, {where})"):
            count = generator.write_jsonl(
                generator.generate_population(args.citizens, args.seed, until=args.as_of,
                                              home=args.home),
                population,
            )
        console.print(f"generated {count:,} events for {args.citizens:,} citizens ({where}): "
                      f"{population}")
        dead_letter_path = demo_dir / "dead-letters.jsonl"
        report = ingest_files(engine, [population], DeadLetterFile(dead_letter_path))
        project(engine)
        console.print(_ingest_summary(report, dead_letter_path))
        summary = services.headline(engine, args.as_of)
        for table in _headline_tables(summary):
            console.print(table)
        for table in coordination.demo_tables(engine, args.as_of):
            console.print(table)
        for table in councils.demo_tables(engine, args.as_of):
            console.print(table)
        console.print(f"explore further with CASEHISTORY_DATA_DIR={demo_dir}"
                      + (f" CASEHISTORY_STORE={args.store}" if settings.uses_postgres else ""))
    finally:
        engine.close()
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    engine = build()
    try:
        dead_letter_path = args.dead_letters or engine.settings.data_dir / "dead-letters.jsonl"
        report = ingest_files(engine, args.files, DeadLetterFile(dead_letter_path))
        project(engine)
        console.print(_ingest_summary(report, dead_letter_path))
    finally:
        engine.close()
    return 0


FOLLOW_POLL_S = 0.05
"""How often `project --follow` looks for new events: half of it is the average wait a new
event adds before it is applied; an idle look is two indexed reads (head and position)."""
SLOW_CATCH_UP_S = 1.0
"""A live catch-up longer than this is logged (with the lag left), for the operator."""


def cmd_project(args: argparse.Namespace) -> int:
    """Catch read models up; with --follow, keep polling until SIGTERM/SIGINT.

    The worker first takes each read model's lease, so two workers never both
    apply events to one read model; a second worker waits as a hot standby.
    """
    engine = build()
    stop = stop_on_signals()
    changelog = None
    if args.changelog:
        from casehistory.projections.changelog import DurationsChangelog

        changelog = DurationsChangelog(kafka_bootstrap(engine.settings), engine.read_model())
    try:
        log.info("waiting for the %s projection lease", READ_MODEL)
        with engine.projection_lease(stop) as lease:
            if not lease:
                return 0
            follower = engine.follower(follow=args.follow)
            follower.window = args.window
            log.info("holding the %s projection lease from position %d", READ_MODEL,
                     follower.position)
            if changelog:
                changelog.publish()  # what a crash left in the outbox goes first
                follower.after_commit, follower.outbox = changelog.publish, True
            applied = follower.catch_up()
            long_lived = LongLivedObjects()
            if args.follow:
                long_lived.settle()
            while args.follow and not stop.wait(FOLLOW_POLL_S):
                if not lease.held():
                    log.warning("lost the %s projection lease; stopping", READ_MODEL)
                    return 1
                started = time.monotonic()
                passed = follower.catch_up()
                applied += passed
                long_lived.settle()
                if (took := time.monotonic() - started) > SLOW_CATCH_UP_S:
                    log.info("slow catch-up: %d notifications in %.1f s, %d behind now",
                             passed, took, follower.lag())  # fmt: skip
        console.print(f"applied {applied:,} notifications")
    finally:
        if changelog:
            changelog.close()
        engine.close()
    return 0


def cmd_durations(args: argparse.Namespace) -> int:
    from casehistory.entrypoints.cli.output import write_rows

    if args.reveal_cpr:
        check(identity_from_env(), Action.EXPORT_CPR)
    engine = build()
    try:
        project(engine)
        if not args.per_citizen:
            summary = services.headline(engine, args.as_of)
            for table in _headline_tables(summary, caller()):
                Console().print(table)
            return 0
        columns = [c for c in DURATION_FIELDS if c != "cpr" or args.reveal_cpr]
        if args.format == "jsonl" and not args.reveal_cpr:  # lines rendered by the database
            sys.stdout.writelines(durations_lines(engine.read_model(), args.as_of))
            return 0

        def rows() -> Iterator[dict[str, Any]]:
            for record in durations_records(engine.read_model(), args.as_of):
                record["share_last_10y_cash_system"] = round(
                    record["share_last_10y_cash_system"], 6
                )
                if args.reveal_cpr:
                    record["cpr"] = reveal_cpr(engine, record["citizen_key"], args)
                yield record

        write_rows(rows(), columns, args.format, Console(), title=f"Durations on {args.as_of}")
    finally:
        engine.close()
    return 0


def cmd_citizen(args: argparse.Namespace) -> int:
    from casehistory.entrypoints.cli.citizen_view import render_citizen

    def show(engine: Engine, citizen: Citizen) -> bool:
        render_citizen(engine.store_of(citizen.id.hex), citizen, args.as_of, args.as_known_at,
                       Console())
        return True

    shown = on_citizen(args, Action.VIEW_CITIZEN, "timeline, provenance and spells", show)
    return 1 if shown is None else 0


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert between JSON Lines and Avro container; invalid records go to a side file."""
    rejected_path = args.output.with_name(args.output.name + ".rejected.jsonl")
    rejected = DeadLetterFile(rejected_path)

    def valid_records() -> Iterator[dict[str, Any]]:
        for incoming in files.read_records(args.input):
            checked = validate(incoming.payload) if incoming.decode_error is None else None
            if isinstance(checked, ContractEvent):
                yield checked.avro_datum() if to_avro else checked.canonical()
            else:
                reason, message = (
                    ("undecodable", incoming.decode_error or "")
                    if checked is None
                    else (checked.reason, checked.message)
                )
                rejected.put([DeadLetter(incoming.raw, reason, message, incoming.provenance)])

    to_avro = args.output.suffix == ".avro"
    written = (files.write_avro if to_avro else files.write_jsonl)(valid_records(), args.output)
    console.print(f"wrote {written:,} records to {args.output}")
    if rejected_path.exists():
        console.print(f"rejected records with reasons: {rejected_path}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Validate and publish contract files; non-zero exit if anything was not published."""
    from casehistory.consumers.publisher import Publisher

    settings = Settings.load()
    bootstrap = kafka_bootstrap(settings)
    ensure_pipeline_topics(settings, args.partitions)
    failures = 0
    with Publisher(bootstrap, settings.kafka_topic, settings.partition_key,
                   schema_version=args.schema_version) as publisher:
        for path in args.files:
            records = (
                i.payload if i.decode_error is None else i.raw for i in files.read_records(path)
            )
            report = publisher.publish(records)
            console.print(f"{path}: sent {report.sent:,}, rejected {len(report.rejected):,}, "
                          f"failed {len(report.failed):,}")
            for position, rejection in report.rejected[:20]:
                console.print(f"  record {position + 1}: {rejection.reason}: {rejection.message}")
            for position, error in report.failed[:20]:
                console.print(f"  record {position + 1}: not acknowledged: {error}")
            failures += len(report.rejected) + len(report.failed)
    return 1 if failures else 0


def cmd_consume(args: argparse.Namespace) -> int:
    """Run one member of the ingest consumer group until SIGTERM/SIGINT.

    With `--from-history`, a store writer: a member of the store group on the
    router's history topic (`casehistory route` fills it); with `--store-group G`,
    partition group G's one writer, into its own event store (required when
    `CASEHISTORY_STORE_GROUPS` is above 1). A writer fenced by a newer one of its
    group stops with exit code 2.

    A store or broker that is down, at start or later, is waited for (with
    backoff, logged and counted); the member never exits on a transient fault.
    """

    from casehistory.consumers.kafka_ingest import (
        KafkaDeadLetters,
        KafkaIngestConsumer,
        dead_letter_producer,
    )
    from casehistory.recorders import WriterFenced

    stop = stop_on_signals()
    settings = Settings.load()
    bootstrap = kafka_bootstrap(settings)
    group = args.store_group
    if settings.store_groups > 1 and (group is None or not args.from_history):
        console.print(f"with {settings.store_groups} store groups, run one "
                      "`consume --from-history --store-group G` per group")
        return 2
    if group is not None and not 0 <= group < settings.store_groups:
        console.print(f"--store-group must be one of 0..{settings.store_groups - 1}")
        return 2
    backoff = Backoff()
    try:
        engine = backoff.retry(lambda: build(settings, group), "opening the store", stop)
    except Stopped:
        return 0
    closing: list[Callable[[], None]] = [engine.close]
    topic, group_id = (
        (settings.kafka_history_topic, settings.kafka_store_group)
        if args.from_history
        else (settings.kafka_topic, settings.kafka_group)
    )
    try:
        backoff.retry(lambda: ensure_pipeline_topics(settings, args.partitions),
                      "creating topics", stop)
        dlq = backoff.retry(lambda: dead_letter_producer(bootstrap), "connecting", stop)
        closing.insert(0, dlq.close)
        service = engine.ingest_service(
            KafkaDeadLetters(dlq, settings.kafka_dlq_topic), group or 0
        )
        consumer = backoff.retry(
            lambda: KafkaIngestConsumer(
                service, bootstrap, topic, group_id,
                max_poll_records=args.max_poll_records,
                session_timeout_ms=args.session_timeout_ms, backoff=backoff,
                history=args.from_history, batch_wait_ms=args.batch_wait_ms,
                store_group=None if group is None else (group, settings.store_groups),
            ),
            "joining the group", stop,
        )
        closing.insert(0, consumer.close)
        counters = consumer.run(
            stop, idle_exit_seconds=args.idle_exit,
            on_batch=lambda c: log.info(
                "consumed=%d stored=%d duplicate=%d dead_lettered=%d lag=%d transient_faults=%d "
                "commits_refused=%d",
                c.consumed, c.stored, c.duplicate, c.dead_lettered, c.lag, c.transient_faults,
                c.commits_refused,
            ),
        )
    except Stopped:
        return 0
    except WriterFenced as fenced:  # a newer writer of this group took over
        console.print(f"stopped: {fenced}")
        return 2
    finally:
        for close in closing:
            close()
    console.print(
        f"consumed {counters.consumed:,}: stored {counters.stored:,}, duplicate "
        f"{counters.duplicate:,}, dead-lettered {counters.dead_lettered:,}, lag {counters.lag:,}, "
        f"transient faults waited out {counters.transient_faults:,}, "
        f"commits refused by a rebalance {counters.commits_refused:,}"
    )
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Prove every offset of the input topic is accounted for (with `--routed`: through the
    router's outputs, and every offset of the history topic through the store's ledger)."""
    from casehistory.consumers.reconcile import reconcile, routed_ledger

    engine = build()
    try:
        settings = engine.settings
        bootstrap = kafka_bootstrap(settings)
        if args.routed:
            results = [
                reconcile(
                    bootstrap, settings.kafka_topic, settings.kafka_router_group,
                    lambda: routed_ledger(
                        bootstrap, settings.kafka_topic, settings.kafka_history_topic,
                        settings.kafka_dlq_topic, engine.app.mapper.cipher,
                    ),
                ),
                reconcile(
                    bootstrap, settings.kafka_history_topic, settings.kafka_store_group,
                    lambda: engine.ledger(settings.kafka_history_topic + ":"),
                ),
            ]
        else:
            results = [reconcile(
                bootstrap, settings.kafka_topic, settings.kafka_group,
                lambda: engine.ledger(settings.kafka_topic + ":"),
            )]
    finally:
        engine.close()
    for result in results:
        table = Table(title=f"Reconciliation of {result.topic}")
        for column in ("part.", "start", "committed", "end", "stored", "dup.", "forwarded",
                       "dead", "no record", "gaps", "lag"):
            table.add_column(column, justify="right")
        for p in result.partitions:
            table.add_row(
                str(p.partition), str(p.log_start), str(p.committed), str(p.end),
                str(p.outcomes["stored"]), str(p.outcomes["duplicate"]),
                str(p.outcomes["forwarded"]), str(p.outcomes["dead_lettered"]),
                str(p.no_record), str(len(p.gaps)), str(p.not_yet_consumed),
            )
        table.caption = (
            "gaps: offsets before the committed one with no ledger entry (lost); no record: "
            "transaction markers and aborted records"
        )
        Console().print(table)
        for p in result.partitions:
            if p.gaps:
                console.print(f"{result.topic} partition {p.partition}: unaccounted offsets "
                              f"{p.gaps[:50]}")
    return 1 if any(result.unaccounted for result in results) else 0


def cmd_generate(args: argparse.Namespace) -> int:
    count = generator.write_jsonl(
        generator.generate_population(args.citizens, args.seed, until=args.until,
                                      home=args.home),
        args.output,
    )
    console.print(f"wrote {count:,} events for {args.citizens:,} citizens to {args.output}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="casehistory", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="generate a municipality, ingest, project, report")
    demo.add_argument("--citizens", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--as-of", type=as_of_date, default=DEMO_AS_OF)
    where = demo.add_mutually_exclusive_group()
    where.add_argument("--home", type=municipality_code, default=DEMO_HOME,
                       metavar="KOMMUNEKODE",
                       help=f"the municipality most citizens live in (default {DEMO_HOME}, "
                            "København): its job centre's caseloads, staffed for them")
    where.add_argument("--national", dest="home", action="store_const", const=None,
                       help="a national sample over all 98 municipalities instead "
                            "(the calibrated population of docs/calibration.md)")
    demo.add_argument("--store", default="sqlite",
                      help="sqlite (default) or a postgresql:// URL (its engine tables are reset)")
    demo.set_defaults(func=cmd_demo)

    ingest = sub.add_parser("ingest", help="ingest JSON Lines or Avro container files")
    ingest.add_argument("files", type=Path, nargs="+")
    ingest.add_argument("--dead-letters", type=Path)
    ingest.set_defaults(func=cmd_ingest)

    proj = sub.add_parser("project", help="bring the read model up to date")
    proj.add_argument("--follow", action="store_true", help="keep following until SIGTERM")
    proj.add_argument("--window", type=int, default=2_000_000,
                      help="most notifications one catch-up transaction passes "
                           "(an empty read model is loaded in one pass)")
    proj.add_argument("--changelog", action="store_true",
                      help="also publish durations rows to the compacted Kafka topic")
    proj.set_defaults(func=cmd_project)

    pub = sub.add_parser("publish", help="validate and publish contract files to Kafka")
    pub.add_argument("files", type=Path, nargs="+")
    pub.add_argument("--schema-version", type=int, help="writer schema version (default: newest)")
    pub.add_argument("--partitions", type=int, default=6, help="when creating the topic")
    pub.set_defaults(func=cmd_publish)

    con = sub.add_parser("consume", help="run one ingest consumer-group member")
    con.add_argument("--idle-exit", type=float, help="stop after this many seconds without records")
    con.add_argument("--max-poll-records", type=int, default=STORE_BATCH,
                     help="records per poll, so per event-store transaction")
    con.add_argument("--batch-wait-ms", type=int, default=50,
                     help="let the broker gather a batch for up to this long (a trickle of "
                          "records costs less CPU per event in larger batches; 0: at once)")
    con.add_argument("--partitions", type=int, default=6, help="when creating the topic")
    con.add_argument("--session-timeout-ms", type=int, default=10_000,
                     help="a member silent this long is dropped and its partitions move")
    con.add_argument("--from-history", action="store_true",
                     help="be a store writer: consume the router's history topic")
    con.add_argument("--store-group", type=int,
                     help="with --from-history: be partition group G's one store writer "
                          "(its partitions assigned, into its own event store)")
    con.set_defaults(func=cmd_consume)

    rec = sub.add_parser("reconcile", help="account for every offset of the input topic")
    rec.add_argument("--routed", action="store_true",
                     help="through the router: input topic and history topic")
    rec.set_defaults(func=cmd_reconcile)

    dur = sub.add_parser("durations", help="durations as of a date")
    dur.add_argument("--as-of", type=as_of_date, default=date.today())
    dur.add_argument("--per-citizen", action="store_true")
    dur.add_argument("--format", choices=["table", "csv", "jsonl"], default="table")
    dur.add_argument("--reveal-cpr", action="store_true",
                     help="add CPR numbers (data-protection role; each citizen is logged)")
    dur.add_argument("--purpose", help=PURPOSE_HELP)
    dur.set_defaults(func=cmd_durations)

    cit = sub.add_parser("citizen", help="one citizen's timeline with provenance and spells")
    add_citizen_arguments(cit)
    cit.add_argument("--as-of", type=as_of_date, default=date.today())
    cit.add_argument("--as-known-at", type=moment)
    cit.set_defaults(func=cmd_citizen)

    conv = sub.add_parser("convert", help="convert between JSON Lines and Avro container files")
    conv.add_argument("input", type=Path)
    conv.add_argument("output", type=Path, help="*.avro for Avro, anything else for JSON Lines")
    conv.set_defaults(func=cmd_convert)

    gen = sub.add_parser("generate", help="write a synthetic population as JSON Lines")
    gen.add_argument("output", type=Path)
    gen.add_argument("--citizens", type=int, default=2000)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--until", type=as_of_date, default=DEMO_AS_OF)
    gen.add_argument("--home", type=municipality_code, metavar="KOMMUNEKODE",
                     help="centre the citizens on one municipality (default: a national sample)")
    gen.set_defaults(func=cmd_generate)

    # The other commands register themselves on the same subcommands.
    for commands in (
        coordination, lists, councils, audit, db, router, server
    ):
        commands.add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    tune_garbage_collector()
    args = parser().parse_args(argv)
    try:
        needed = needs(args)
        if needed is not None:
            identity = identity_from_env()
            check(identity, needed)
            if needed is Action.PER_CITIZEN_ROWS:
                log_rows(identity, args)
        return int(args.func(args))
    except PermissionDenied as denied:
        console.print(f"permission denied: {denied}", soft_wrap=True, markup=False)
        if denied.identity is not None and denied.action is not None:
            log = LookupLog(Settings.load())
            try:
                log.log_refusal(denied.identity, denied.action, f"casehistory {args.command}")
            finally:
                log.close()
        return 3


def log_rows(identity: Identity, args: argparse.Namespace) -> None:
    """Log a read of rows per citizen, with its purpose and search criterion, before it runs."""
    log = LookupLog(Settings.load())
    try:
        log.log_rows(identity, getattr(args, "purpose", None) or "", search_criterion(args))
    finally:
        log.close()


def search_criterion(args: argparse.Namespace) -> str:
    """The command line that selects the rows (no purpose, no output format): the lookup
    record's "search criterion"."""
    words = ["casehistory", args.command]
    for name, value in vars(args).items():
        if name in {"func", "command", "purpose", "format"} or value in (None, False):
            continue
        if name == "list":
            words.append(str(value))
        else:
            flag = "--" + name.replace("_", "-")
            words.append(flag if value is True else f"{flag} {value}")
    return " ".join(words)


ENGINE_COMMANDS = (
    "ingest", "project", "publish", "consume", "route", "reconcile", "replay", "checksum",
    "verify", "purge", "db", "serve", "users",
)
"""The commands that run, set up or check the engine: the `operate` action (no personal data
is shown). `demo` (a synthetic municipality in its own data dir; on a PostgreSQL store, whose
engine tables it resets, it is the operator's), `generate` and `convert` (files only) ask for
no role."""

COMMAND_NEEDS = {
    **dict.fromkeys(ENGINE_COMMANDS, Action.OPERATE),
    "durations": Action.AGGREGATES,
    "coordination": Action.AGGREGATES,
    "flows": Action.AGGREGATES,
    "caseload": Action.AGGREGATES,
    "exits": Action.AGGREGATES,
    "cohort": Action.AGGREGATES,
    "cadence": Action.AGGREGATES,
    "continuity": Action.PER_CITIZEN_ROWS,
    "lists": Action.PER_CITIZEN_ROWS,
}
"""What each command asks of its caller's role (`casehistory.services.access`); with
`--per-citizen` a report needs per-citizen rows, and a read of rows per citizen needs
`--purpose` and is logged with its search criterion. The commands about one citizen check their
own action (`on_citizen`)."""


def needs(args: argparse.Namespace) -> Action | None:
    """The action a command's caller must be allowed, checked before it runs."""
    if args.command == "demo" and args.store != "sqlite":
        return Action.OPERATE  # it resets the engine tables of a PostgreSQL store
    needed = COMMAND_NEEDS.get(args.command)
    if needed is not None and getattr(args, "per_citizen", False):
        return Action.PER_CITIZEN_ROWS
    return needed

