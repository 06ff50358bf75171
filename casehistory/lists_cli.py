"""The `lists` commands: the councils' prioritisation lists on a date (domain.md,
"Prioritisation lists"), per citizen by pseudonym, from the read model's SQL."""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from rich.console import Console

from casehistory import services
from casehistory.bootstrap import build
from casehistory.cli import DURATION_FIELDS, _date
from casehistory.output import FORMATS, write_rows

LONG_DURATION_FIELDS = ["citizen_key", "spell_start", "spell_days", "breaks_bridged", "naive_days"]


def cmd_long_durations(args: argparse.Namespace) -> int:
    engine = build()
    try:
        engine.project()
        rows = services.long_durations(engine, args.as_of, args.years, args.cash_system)
        spell = "cash-system" if args.cash_system else "all-benefits"
        title = f"{spell} spell over {args.years} years on {args.as_of}, longest first"
        count = write_rows(rows, LONG_DURATION_FIELDS, args.format, Console(), title=title)
    finally:
        engine.close()
    Console(stderr=True).print(f"{count:,} citizens")
    return 0


def cmd_clarification_pool(args: argparse.Namespace) -> int:
    engine = build()
    try:
        engine.project()
        rows = services.clarification_pool(engine, args.as_of)
        columns = [c for c in DURATION_FIELDS if c != "cpr"]
        title = f"Clarification pool on {args.as_of}"
        count = write_rows(rows, columns, args.format, Console(), title=title)
    finally:
        engine.close()
    Console(stderr=True).print(f"{count:,} citizens")
    return 0


def add_parsers(sub: Any) -> None:
    """Register `lists long-durations` and `lists clarification-pool`."""
    lists = sub.add_parser("lists", help="prioritisation lists on a date")
    kinds = lists.add_subparsers(dest="list", required=True)
    long = kinds.add_parser("long-durations", help="on benefit with a spell over N years")
    long.add_argument("--as-of", type=_date, default=date.today())
    long.add_argument("--years", type=int, default=15)
    long.add_argument("--cash-system", action="store_true",
                      help="the cash-benefit-system spell instead of the all-benefits spell")
    long.add_argument("--format", choices=FORMATS, default="table")
    long.set_defaults(func=cmd_long_durations)
    pool = kinds.add_parser("clarification-pool",
                            help="aktivitetsparate, 30+, 80%% of ten years in the system")
    pool.add_argument("--as-of", type=_date, default=date.today())
    pool.add_argument("--format", choices=FORMATS, default="table")
    pool.set_defaults(func=cmd_clarification_pool)
