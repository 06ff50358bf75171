"""The `coordination` and `flows` commands: parse input, read the coordination view, report."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import date
from typing import Any

from rich.console import Console
from rich.table import Table

from casehistory.bootstrap import Engine, build
from casehistory.entrypoints.cli.common import PURPOSE_HELP, as_of_date, caller, reveal_cpr
from casehistory.entrypoints.cli.output import FORMATS, write_rows
from casehistory.projections.queries import coordination_records
from casehistory.projections.rows import LONG_SPELL_YEARS
from casehistory.services import reports as services
from casehistory.services.access import suppressed_rows
from casehistory.services.coordination_report import (
    FLOW_FIELDS,
    flag_table,
    flow_records,
    flow_tables,
    group_table,
    intervention_table,
    step_table,
    yearly_table,
)

COORDINATION_FIELDS = [
    "citizen_key",
    "cpr",
    "is_faellesborger",
    "support_step",
    "interventions",
    "flags",
    "target_group",
    "age",
]


def demo_tables(engine: Engine, as_of: date) -> list[Table]:
    """The demo's coordination section: fællesborgere by target group, support steps, flags."""
    engine.project()
    report = services.coordination_summary(engine, as_of)
    return [group_table(report), step_table(report), flag_table(report)]


def cmd_coordination(args: argparse.Namespace) -> int:
    engine = build()
    try:
        engine.project()
        store = engine.read_model()
        if not args.per_citizen:
            report = services.coordination_summary(engine, args.as_of, args.long_spell_years)
            identity = caller()
            tables = [group_table(report, identity), intervention_table(report, identity),
                      step_table(report, identity), flag_table(report, identity)]
            if args.year is not None:
                tables.append(yearly_table(services.yearly_mapping(engine, args.year), identity))
            for table in tables:
                Console().print(table)
            return 0
        columns = [c for c in COORDINATION_FIELDS if c != "cpr" or args.reveal_cpr]

        def rows() -> Iterator[dict[str, Any]]:
            for record in coordination_records(store, args.as_of, args.long_spell_years):
                if args.reveal_cpr:
                    record["cpr"] = reveal_cpr(engine, record["citizen_key"], args)
                yield record

        write_rows(rows(), columns, args.format, Console(), title=f"Coordination on {args.as_of}")
    finally:
        engine.close()
    return 0


def cmd_flows(args: argparse.Namespace) -> int:
    engine = build()
    try:
        engine.project()
        result = services.flows(engine, args.first, args.last)
    finally:
        engine.close()
    identity = caller()
    if args.format == "table":
        for table in flow_tables(result, identity):
            Console().print(table)
    else:
        write_rows(suppressed_rows(flow_records(result), identity, ["citizens"]), FLOW_FIELDS,
                   args.format, Console())
    return 0


def add_parsers(sub: Any) -> None:
    """Register `coordination` and `flows` on the main parser's subcommands."""
    coord = sub.add_parser("coordination", help="fællesborgere, support steps and flags on a date")
    coord.add_argument("--as-of", type=as_of_date, default=date.today())
    coord.add_argument("--year", type=int, help="also report the yearly mapping for this year")
    coord.add_argument("--long-spell-years", type=int, default=LONG_SPELL_YEARS,
                       help="years of spell behind long_duration_with_social_needs")
    coord.add_argument("--per-citizen", action="store_true")
    coord.add_argument("--format", choices=FORMATS, default="table")
    coord.add_argument("--reveal-cpr", action="store_true",
                       help="add CPR numbers (data-protection role; each citizen is logged)")
    coord.add_argument("--purpose", help=PURPOSE_HELP)
    coord.set_defaults(func=cmd_coordination)

    flow = sub.add_parser("flows", help="inflow per half-year and citizens awaiting a flexjob")
    flow.add_argument("--from", dest="first", type=as_of_date, required=True)
    flow.add_argument("--to", dest="last", type=as_of_date, required=True)
    flow.add_argument("--format", choices=FORMATS, default="table")
    flow.set_defaults(func=cmd_flows)
