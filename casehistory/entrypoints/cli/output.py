"""Writing per-citizen rows as a rich table, CSV or JSON Lines."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

FORMATS = ("table", "csv", "jsonl")


def _plain(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def write_rows(
    rows: Iterable[dict[str, Any]],
    columns: list[str],
    fmt: str,
    console: Console,
    stream: TextIO | None = None,
    title: str | None = None,
) -> int:
    """Write rows in the chosen format; returns how many were written."""
    out = stream or sys.stdout
    count = 0
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps({c: _plain(row.get(c)) for c in columns}, ensure_ascii=False))
            out.write("\n")
            count += 1
        return count
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            values = [_plain(row.get(c)) for c in columns]
            writer.writerow(
                [
                    json.dumps(v) if isinstance(v, dict | list) else ("" if v is None else v)
                    for v in values
                ]
            )
            count += 1
        return count
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(_plain(row.get(c))) for c in columns))
        count += 1
    console.print(table)
    return count


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
