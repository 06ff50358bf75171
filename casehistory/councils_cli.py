"""The `caseload` and `cadence` commands: parse input, read the council reports, render."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import date
from typing import Any

from rich.console import Console

from casehistory import services
from casehistory.bootstrap import build
from casehistory.cli import _date, _reveal
from casehistory.council_report import (
    CASELOAD_FIELDS,
    cadence_summary,
    cadence_table,
    caseload_rows,
    distribution_table,
)
from casehistory.output import FORMATS, write_rows
from domain.cadence import CadenceStatus

CADENCE_FIELDS = [
    "citizen_key", "cpr", "status", "days_left", "deadline", "last_meeting", "visitation",
    "target_group",
]
ATTENTION = (CadenceStatus.OVERDUE.value, CadenceStatus.DUE_SOON.value)


def cmd_caseload(args: argparse.Namespace) -> int:
    engine = build()
    try:
        engine.project()
        report = services.caseload(engine, args.as_of)
    finally:
        engine.close()
    console = Console()
    if args.format == "table":
        console.print(distribution_table(report))
    write_rows(caseload_rows(report), CASELOAD_FIELDS, args.format, console,
               title=f"Caseload per caseworker and unit on {args.as_of}")
    return 0


def cmd_cadence(args: argparse.Namespace) -> int:
    engine = build()
    try:
        engine.project()
        clocks = list(services.cadence_clocks(engine, args.as_of))
        console = Console()
        if not args.per_citizen:
            console.print(cadence_table(cadence_summary(args.as_of, clocks)))
        columns = [c for c in CADENCE_FIELDS if c != "cpr" or args.reveal_cpr]

        def rows() -> Iterator[dict[str, Any]]:
            for record in clocks:
                if args.all or record["status"] in ATTENTION:
                    if args.reveal_cpr:
                        record["cpr"] = _reveal(engine, record["citizen_key"], args)
                    yield record

        write_rows(rows(), columns, args.format, console,
                   title=f"Overdue and due soon on {args.as_of}")
    finally:
        engine.close()
    return 0


def add_parsers(sub: Any) -> None:
    """Register `caseload` and `cadence` on the main parser's subcommands."""
    load = sub.add_parser("caseload", help="citizens per caseworker and unit on a date")
    load.add_argument("--as-of", type=_date, default=date.today())
    load.add_argument("--format", choices=FORMATS, default="table")
    load.set_defaults(func=cmd_caseload)

    cadence = sub.add_parser("cadence", help="contact cadence: overdue and due soon on a date")
    cadence.add_argument("--as-of", type=_date, default=date.today())
    cadence.add_argument("--per-citizen", action="store_true",
                         help="only the per-citizen rows, without the summary")
    cadence.add_argument("--all", action="store_true", help="also the citizens whose clock is ok")
    cadence.add_argument("--format", choices=FORMATS, default="table")
    cadence.add_argument("--reveal-cpr", action="store_true",
                         help="add CPR numbers (data-protection role; each citizen is logged)")
    cadence.add_argument("--purpose", help="with --reveal-cpr: purpose or case reference")
    cadence.set_defaults(func=cmd_cadence)
