"""What the CLI's commands share: the caller, progress, argument types, one citizen by CPR
or pseudonym (logged), and ingesting files with progress.

The command modules (`main.py` and the modules beside it that it registers) import from
here, never from each other, so `main.py` imports them and nothing imports `main.py` back.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from casehistory.bootstrap import (
    READ_MODEL,
    Engine,
    build,
    collections_after_batch,
)
from casehistory.consumers import files
from casehistory.consumers.deadletter import DeadLetterSink
from casehistory.consumers.ingest import FILE_BATCH, IngestReport
from casehistory.consumers.retry import Backoff
from casehistory.domain.citizen import Citizen
from casehistory.services.access import (
    Action,
    Identity,
    PermissionDenied,
    check,
    identity_from_env,
)
from casehistory.settings import Settings

DURATION_FIELDS = [
    "citizen_key",
    "cpr",
    "on_benefit",
    "all_benefits_spell_start",
    "all_benefits_spell_days",
    "cash_system_spell_start",
    "cash_system_spell_days",
    "benefit_days_in_spell",
    "breaks_bridged",
    "naive_days",
    "share_last_10y_cash_system",
    "age",
    "target_group",
]
console = Console(stderr=True)
log = logging.getLogger("casehistory")
T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    )


def ingest_files(
    engine: Engine, paths: Sequence[Path], dead_letters: DeadLetterSink,
    batch_size: int = FILE_BATCH,
) -> IngestReport:
    """Ingest contract files through the same path the Kafka consumer uses.

    With several store groups, a citizen's store is its history-topic partition's
    group: contract records then enter through the router, not from files.
    """
    if engine.settings.store_groups > 1:
        raise SystemExit(
            f"with {engine.settings.store_groups} store groups, publish files to the input "
            "topic (`casehistory publish`); the router and store writers store them"
        )
    total = IngestReport()
    service = engine.ingest_service(dead_letters)
    backoff = Backoff()  # a store that goes away mid-file is waited for
    with progress_bar() as progress:
        for path in paths:
            task = progress.add_task(
                f"ingest {path.name}", total=files.count_records(path), rate=""
            )
            started = datetime.now(UTC)
            for batch in batched(files.read_records(path), batch_size):
                with collections_after_batch():
                    total.add(service.ingest(batch, backoff))
                elapsed = (datetime.now(UTC) - started).total_seconds() or 1e-9
                progress.update(
                    task, advance=len(batch), rate=f"{total.received / elapsed:,.0f} events/s"
                )
    if backoff.faults:
        log.warning("waited out %d transient faults while ingesting", backoff.faults)
    return total


def project(engine: Engine) -> int:
    """Bring the read model up to date, with progress."""
    with progress_bar() as progress:
        task = progress.add_task(
            f"project {READ_MODEL}", total=engine.follower().lag(), rate=""
        )
        return engine.project(partial(progress.advance, task))


def caller() -> Identity | None:
    """The CLI's caller, if the environment names one (aggregates need no identity)."""
    try:
        return identity_from_env()
    except PermissionDenied:
        return None


def reveal_cpr(engine: Engine, citizen_key: str, args: argparse.Namespace) -> str | None:
    """A citizen's CPR for an export, allowed by the caller's role and logged before it is shown."""
    identity = identity_from_env()
    check(identity, Action.EXPORT_CPR)
    engine.lookup_log.log_lookup(
        identity, args.purpose or "", citizen_key=citizen_key, shown=f"CPR in {args.command} export"
    )
    citizen = engine.find(citizen_key)
    return engine.vault.unseal(citizen_key, citizen.sealed_cpr) if citizen else None


PURPOSE_HELP = ("purpose or case reference, written to the lookup log: required for rows per "
                "citizen and for --reveal-cpr")


def add_citizen_arguments(parser: argparse.ArgumentParser) -> None:
    """Which citizen, never as a CPR on the command line, and why they are looked up."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--cpr-file", type=Path,
                       help="a file holding the CPR number (default: standard input or a prompt)")
    which.add_argument("--citizen-key", help="the citizen's pseudonym instead of the CPR number")
    parser.add_argument("--purpose", required=True,
                        help="purpose or case reference (written to the lookup log)")


def read_cpr(args: argparse.Namespace) -> str:
    """The CPR number from --cpr-file, standard input, or a prompt that does not echo."""
    import getpass

    from casehistory.domain.cpr import InvalidCpr, birth_date

    if args.cpr_file is not None:
        text = args.cpr_file.read_text()
    elif not sys.stdin.isatty():
        text = sys.stdin.readline()
    else:
        text = getpass.getpass("CPR number: ")
    cpr = str(text).strip().replace("-", "")
    try:
        birth_date(cpr)
    except InvalidCpr as error:
        raise SystemExit(f"not a CPR number: {error}") from None
    return cpr


def citizen_key_of(engine: Engine, args: argparse.Namespace) -> str:
    if args.citizen_key is not None:
        key = str(args.citizen_key).lower()
        if len(key) != 32 or any(c not in "0123456789abcdef" for c in key):
            raise SystemExit("a citizen key is 32 hex digits")
        return key
    return engine.vault.citizen_key(read_cpr(args))


def on_citizen(
    args: argparse.Namespace,
    allowed: Action,
    shown: str,
    action: Callable[[Engine, Citizen], T],
) -> T | None:
    """Run `action` on the citizen the arguments name, for a caller whose role allows it.

    The lookup is logged before anything is shown; None (and a message) if there
    is no such citizen.
    """
    identity = identity_from_env()
    check(identity, allowed)
    engine = build()
    try:
        key = citizen_key_of(engine, args)
        citizen = engine.find(key)
        engine.lookup_log.log_lookup(
            identity, args.purpose, citizen_key=key, shown=shown if citizen else "no such citizen"
        )
        if citizen is None:
            console.print("no such citizen in the store")
            return None
        return action(engine, citizen)
    finally:
        engine.close()


def kafka_bootstrap(settings: Settings) -> str:
    if not settings.kafka_bootstrap:
        raise SystemExit("set CASEHISTORY_KAFKA_BOOTSTRAP (Kafka bootstrap servers)")
    return settings.kafka_bootstrap


def as_of_date(text: str) -> date:
    """An as-of date: exactly YYYY-MM-DD, inside the contract's 1900-01-01 .. 2099-12-31."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None
    if len(text) != 10 or not 1900 <= day.year <= 2099:
        raise argparse.ArgumentTypeError(f"date out of range 1900-01-01..2099-12-31: {text}")
    return day


def moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("give the timestamp with Z or an explicit offset")
    return moment


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: long-running commands stop at their next batch."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop
