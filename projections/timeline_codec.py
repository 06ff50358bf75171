"""Compact JSON form of a `Timeline`, stored in read models for as-of queries."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from domain.timeline import Finding, FindingKind, GroupAssignment, Period, Timeline


def _period(p: Period) -> list[Any]:
    return [
        p.code,
        p.source_system,
        p.municipality,
        p.start.isoformat(),
        p.stop.isoformat() if p.stop else None,
        p.stop_reason,
        p.start_event_id,
        p.stop_event_id,
    ]


def _period_from(row: list[Any]) -> Period:
    code, system, municipality, start, stop, reason, start_id, stop_id = row
    return Period(
        code,
        system,
        municipality,
        date.fromisoformat(start),
        date.fromisoformat(stop) if stop else None,
        reason,
        start_id,
        stop_id,
    )


def dumps(timeline: Timeline) -> str:
    return json.dumps(
        {
            "b": [_period(p) for p in timeline.benefit_periods],
            "i": [_period(p) for p in timeline.interventions],
            "g": [
                [
                    a.effective_date.isoformat(),
                    a.recorded_at.isoformat(),
                    a.event_id,
                    a.target_group,
                ]
                for a in timeline.group_assignments
            ],
            "f": [
                [f.kind.value, f.event_id, f.effective_date.isoformat()] for f in timeline.findings
            ],
        },
        separators=(",", ":"),
    )


def loads(text: str) -> Timeline:
    data = json.loads(text)
    return Timeline(
        benefit_periods=tuple(_period_from(r) for r in data["b"]),
        interventions=tuple(_period_from(r) for r in data["i"]),
        group_assignments=tuple(
            GroupAssignment(date.fromisoformat(e), datetime.fromisoformat(r), i, g)
            for e, r, i, g in data["g"]
        ),
        findings=tuple(Finding(FindingKind(k), i, date.fromisoformat(d)) for k, i, d in data["f"]),
    )
