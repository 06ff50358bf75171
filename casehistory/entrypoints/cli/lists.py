"""The `lists` commands: the councils' prioritisation lists on a date (domain.md,
"Prioritisation lists"), per citizen by pseudonym, from the read model's SQL; with
`--reveal-cpr` the CPR numbers too, like the other per-citizen exports (role-checked, and
each citizen logged in the lookup log)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from datetime import date
from typing import Any

from rich.console import Console

from casehistory.bootstrap import Engine, build
from casehistory.entrypoints.cli.common import (
    DURATION_FIELDS,
    PURPOSE_HELP,
    as_of_date,
    reveal_cpr,
)
from casehistory.entrypoints.cli.output import FORMATS, write_rows
from casehistory.services import reports as services
from casehistory.services.access import Action, check, identity_from_env

LONG_DURATION_FIELDS = ["citizen_key", "spell_start", "spell_days", "breaks_bridged", "naive_days"]


def _columns(fields: list[str], args: argparse.Namespace) -> list[str]:
    """The export's columns: the CPR number after the pseudonym when asked for."""
    if not args.reveal_cpr:
        return [c for c in fields if c != "cpr"]
    return ["citizen_key", "cpr", *(c for c in fields if c not in ("citizen_key", "cpr"))]


def _with_cpr(
    rows: Iterable[dict[str, Any]], engine: Engine, args: argparse.Namespace
) -> Iterator[dict[str, Any]]:
    for row in rows:
        if args.reveal_cpr:
            row["cpr"] = reveal_cpr(engine, row["citizen_key"], args)
        yield row


def cmd_long_durations(args: argparse.Namespace) -> int:
    if args.reveal_cpr:
        check(identity_from_env(), Action.EXPORT_CPR)
    engine = build()
    try:
        engine.project()
        rows = services.long_durations(engine, args.as_of, args.years, args.cash_system)
        spell = "cash-system" if args.cash_system else "all-benefits"
        title = f"{spell} spell over {args.years} years on {args.as_of}, longest first"
        count = write_rows(_with_cpr(rows, engine, args), _columns(LONG_DURATION_FIELDS, args),
                           args.format, Console(), title=title)
    finally:
        engine.close()
    Console(stderr=True).print(f"{count:,} citizens")
    return 0


def cmd_clarification_pool(args: argparse.Namespace) -> int:
    if args.reveal_cpr:
        check(identity_from_env(), Action.EXPORT_CPR)
    engine = build()
    try:
        engine.project()
        rows = services.clarification_pool(engine, args.as_of)
        title = f"Clarification pool on {args.as_of}"
        count = write_rows(_with_cpr(rows, engine, args), _columns(DURATION_FIELDS, args),
                           args.format, Console(), title=title)
    finally:
        engine.close()
    Console(stderr=True).print(f"{count:,} citizens")
    return 0


def add_parsers(sub: Any) -> None:
    """Register `lists long-durations` and `lists clarification-pool`."""
    lists = sub.add_parser("lists", help="prioritisation lists on a date")
    kinds = lists.add_subparsers(dest="list", required=True)
    long = kinds.add_parser("long-durations", help="on benefit with a spell over N years")
    long.add_argument("--as-of", type=as_of_date, default=date.today())
    long.add_argument("--years", type=int, default=15)
    long.add_argument("--cash-system", action="store_true",
                      help="the cash-benefit-system spell instead of the all-benefits spell")
    long.add_argument("--format", choices=FORMATS, default="table")
    _reveal_arguments(long)
    long.set_defaults(func=cmd_long_durations)
    pool = kinds.add_parser("clarification-pool",
                            help="aktivitetsparate, 30+, 80%% of ten years in the system")
    pool.add_argument("--as-of", type=as_of_date, default=date.today())
    pool.add_argument("--format", choices=FORMATS, default="table")
    _reveal_arguments(pool)
    pool.set_defaults(func=cmd_clarification_pool)


def _reveal_arguments(parser: Any) -> None:
    parser.add_argument("--reveal-cpr", action="store_true",
                        help="add CPR numbers (data-protection role; each citizen is logged)")
    parser.add_argument("--purpose", help=PURPOSE_HELP)
