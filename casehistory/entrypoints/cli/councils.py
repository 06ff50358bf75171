"""The council reports' commands (`caseload`, `continuity`, `cadence`, `exits`, `cohort`):
parse input, call the service layer, render."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import date
from typing import Any

from rich.console import Console
from rich.table import Table

from casehistory.bootstrap import Engine, build
from casehistory.domain.caseload import CONTINUITY_MONTHS
from casehistory.domain.exits import DEFAULT_HORIZONS
from casehistory.entrypoints.cli.common import PURPOSE_HELP, as_of_date, caller, reveal_cpr
from casehistory.entrypoints.cli.output import FORMATS, write_rows
from casehistory.services import reports as services
from casehistory.services.access import shown_count, suppressed_rows
from casehistory.services.council_report import (
    CASELOAD_FIELDS,
    COHORT_FIELDS,
    EXIT_FIELDS,
    CohortCriteria,
    cadence_table,
    caseload_rows,
    distribution_table,
    exit_tables,
)

CADENCE_FIELDS = [
    "citizen_key", "cpr", "status", "days_left", "deadline", "last_meeting", "visitation",
    "target_group",
]


DEMO_EXIT_YEARS = 3
"""Half-years of exits the demo shows: those of the last three calendar years to the date."""


def demo_tables(engine: Engine, as_of: date) -> list[Table]:
    """The demo's council section: exits by destination, the prioritisation lists' sizes,
    the caseload distribution and the contact cadence by status."""
    engine.project()
    first = date(as_of.year - DEMO_EXIT_YEARS, 1, 1)
    exits = exit_tables(services.exits(engine, first, as_of, as_of))[0]
    lists = Table(title=f"Prioritisation lists on {as_of}")
    lists.add_column("list")
    lists.add_column("citizens", justify="right")
    for years, cash_system in ((15, False), (15, True), (2, False)):
        spell = "cash-system" if cash_system else "all-benefits"
        found = sum(1 for _ in services.long_durations(engine, as_of, years, cash_system))
        lists.add_row(f"{spell} spell over {years} years", f"{found:,}")
    pool = sum(1 for _ in services.clarification_pool(engine, as_of))
    lists.add_row("clarification pool", f"{pool:,}")
    return [exits, lists, distribution_table(services.caseload(engine, as_of)),
            cadence_table(services.cadence_summary(engine, as_of))]


def cmd_caseload(args: argparse.Namespace) -> int:
    engine = build()
    try:
        engine.project()
        report = services.caseload(engine, args.as_of)
    finally:
        engine.close()
    console = Console()
    identity = caller()
    if args.format == "table":
        console.print(distribution_table(report, identity))
    write_rows(suppressed_rows(caseload_rows(report), identity, ["citizens"]), CASELOAD_FIELDS,
               args.format, console, title=f"Caseload per caseworker and unit on {args.as_of}")
    return 0


def cmd_cadence(args: argparse.Namespace) -> int:
    """The summary by status (aggregates), or with --per-citizen the citizens' clocks."""
    engine = build()
    try:
        engine.project()
        console = Console()
        if not args.per_citizen:
            console.print(cadence_table(services.cadence_summary(engine, args.as_of), caller()))
            return 0
        columns = [c for c in CADENCE_FIELDS if c != "cpr" or args.reveal_cpr]

        def rows() -> Iterator[dict[str, Any]]:
            for record in services.cadence_clocks(engine, args.as_of):
                if args.all or record["status"] in services.CADENCE_ATTENTION:
                    if args.reveal_cpr:
                        record["cpr"] = reveal_cpr(engine, record["citizen_key"], args)
                    yield record

        write_rows(rows(), columns, args.format, console,
                   title=f"Overdue and due soon on {args.as_of}")
    finally:
        engine.close()
    return 0


CONTINUITY_FIELDS = ["citizen_key", "caseworkers", "caseworker_ids"]


def cmd_continuity(args: argparse.Namespace) -> int:
    engine = build()
    try:
        engine.project()
        write_rows(services.continuity(engine, args.as_of, args.months), CONTINUITY_FIELDS,
                   args.format, Console(), title=f"Caseworkers per citizen, {args.months} months "
                                                 f"to {args.as_of}")
    finally:
        engine.close()
    return 0


def cmd_exits(args: argparse.Namespace) -> int:
    engine = build()
    try:
        engine.project()
        rows = services.exits(engine, args.first, args.last, args.as_of)
    finally:
        engine.close()
    identity = caller()
    if args.format == "table":
        for table in exit_tables(rows, identity):
            Console().print(table)
    else:
        write_rows(suppressed_rows(rows, identity, ["exits"]), EXIT_FIELDS, args.format,
                   Console())
    return 0


def cmd_cohort(args: argparse.Namespace) -> int:
    criteria = CohortCriteria(
        frozenset(args.target_group or ()), args.min_age, args.max_age, args.min_years,
        args.cash_system, args.municipality,
    )
    engine = build()
    try:
        engine.project()
        if args.by_municipality:
            rows = services.cohort_by_municipality(engine, args.on, criteria, args.horizons)
        else:
            members, rows = services.cohort(engine, args.on, criteria, args.horizons)
    finally:
        engine.close()
    identity = caller()
    if args.by_municipality:
        write_rows(suppressed_rows(rows, identity, ["members", "citizens"], ["share"]),
                   ["municipality", "members", *COHORT_FIELDS], args.format, Console(),
                   title=f"Cohorts by municipality on {args.on}")
        return 0
    write_rows(suppressed_rows(rows, identity, ["citizens"], ["share"]), COHORT_FIELDS,
               args.format, Console(),
               title=f"Cohort of {shown_count(members, identity)} citizens on {args.on}")
    return 0


def _horizons(text: str) -> tuple[int, ...]:
    try:
        found = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of months (e.g. 6,12,18): {text!r}") from None
    if not found or min(found) < 1:
        raise argparse.ArgumentTypeError(f"horizons are whole months of 1 or more: {text!r}")
    return found


def add_parsers(sub: Any) -> None:
    """Register the council reports on the main parser's subcommands."""
    load = sub.add_parser("caseload",
                          help="citizens per caseworker (by pseudonym) and unit on a date")
    load.add_argument("--as-of", type=as_of_date, default=date.today())
    load.add_argument("--format", choices=FORMATS, default="table")
    load.set_defaults(func=cmd_caseload)

    cadence = sub.add_parser("cadence", help="contact cadence: overdue and due soon on a date")
    cadence.add_argument("--as-of", type=as_of_date, default=date.today())
    cadence.add_argument("--per-citizen", action="store_true",
                         help="the citizens' clocks by pseudonym instead of the summary "
                              "(with --purpose)")
    cadence.add_argument("--all", action="store_true", help="also the citizens whose clock is ok")
    cadence.add_argument("--format", choices=FORMATS, default="table")
    cadence.add_argument("--reveal-cpr", action="store_true",
                         help="add CPR numbers (data-protection role; each citizen is logged)")
    cadence.add_argument("--purpose", help=PURPOSE_HELP)
    cadence.set_defaults(func=cmd_cadence)

    out = sub.add_parser("exits", help="exits from the cash-benefit system per half-year")
    out.add_argument("--from", dest="first", type=as_of_date, required=True)
    out.add_argument("--to", dest="last", type=as_of_date, required=True)
    out.add_argument("--as-of", type=as_of_date, default=date.today(),
                     help="count the exits known as of this date (their month window ended)")
    out.add_argument("--format", choices=FORMATS, default="table")
    out.set_defaults(func=cmd_exits)

    cohort = sub.add_parser("cohort", help="a cohort's outcomes at each horizon")
    cohort.add_argument("--on", type=as_of_date, required=True, help="the cohort date C")
    cohort.add_argument("--target-group", action="append",
                        help="reported target group on C (repeat for several)")
    cohort.add_argument("--min-age", type=int)
    cohort.add_argument("--max-age", type=int)
    cohort.add_argument("--min-years", type=int, help="a current spell of N years or more")
    cohort.add_argument("--cash-system", action="store_true",
                        help="--min-years reads the cash-system spell")
    cohort.add_argument("--municipality",
                        help="only citizens paid on C by a benefit period this municipality "
                             "registered (its code, e.g. 101)")
    cohort.add_argument("--by-municipality", action="store_true",
                        help="one cohort per municipality paying a member on C")
    cohort.add_argument("--horizons", type=_horizons, default=DEFAULT_HORIZONS,
                        help="months after C, comma-separated (default 6,12,18)")
    cohort.add_argument("--format", choices=FORMATS, default="table")
    cohort.set_defaults(func=cmd_cohort)

    cont = sub.add_parser("continuity", help="caseworkers per citizen in the last 12 months")
    cont.add_argument("--as-of", type=as_of_date, default=date.today())
    cont.add_argument("--months", type=int, default=CONTINUITY_MONTHS)
    cont.add_argument("--format", choices=FORMATS, default="table")
    cont.add_argument("--purpose", help=PURPOSE_HELP)
    cont.set_defaults(func=cmd_continuity)
