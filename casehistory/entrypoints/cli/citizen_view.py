"""One citizen's history for people: facts with provenance, spells, measures, findings.

`as_known_at` answers the bitemporal question "what did we know at T about D":
facts recorded after T are left out before anything is computed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from casehistory.application import CaseHistory
from casehistory.domain.citizen import Citizen
from casehistory.domain.durations import benefit_spells, durations_on
from casehistory.domain.spells import Spell
from casehistory.domain.timeline import Timeline, build_timeline, effective_facts


def recorded_facts(app: CaseHistory, citizen: Citizen) -> list[Citizen.FactRecorded]:
    """The citizen's stored fact events in arrival order, with provenance."""
    return [
        e for e in app.repository.event_store.get(citizen.id) if isinstance(e, Citizen.FactRecorded)
    ]


def spell_rows(timeline: Timeline, day: date) -> list[dict[str, Any]]:
    """Every all-benefits spell up to `day` with what it passed through."""
    periods = timeline.periods_on(day)
    rows = []
    for spell in benefit_spells(periods, day):
        inside = [p for p in periods if _overlaps(spell, p.start, p.stop)]
        groups = {
            a.target_group
            for a in timeline.group_assignments
            if spell.start <= a.effective_date < spell.end
        }
        rows.append(
            {
                "start": spell.start,
                "end": spell.end if spell.end <= day else None,
                "calendar_days": (min(spell.end, day) - spell.start).days,
                "paid_days": spell.paid_days,
                "breaks": sum(1 for p in inside if p.stop and spell.start < p.stop < spell.end),
                "benefits": sorted({p.code for p in inside}),
                "municipalities": sorted({p.municipality for p in inside}),
                "target_groups": sorted(groups),
            }
        )
    return rows


def _overlaps(spell: Spell, start: date, stop: date | None) -> bool:
    return start < spell.end and (stop is None or stop > spell.start)


def render_citizen(
    app: CaseHistory,
    citizen: Citizen,
    as_of: date,
    as_known_at: datetime | None,
    console: Console,
) -> None:
    standing = {f.event_id for f in effective_facts(citizen.facts, as_known_at)}
    facts = Table(title=f"Citizen {citizen.citizen_key}: facts in arrival order")
    for column in (
        "#",
        "event",
        "effective",
        "recorded at",
        "source",
        "case",
        "kommune",
        "details",
        "provenance",
        "status",
    ):
        facts.add_column(column)
    for number, event in enumerate(recorded_facts(app, citizen), start=1):
        if as_known_at is not None and datetime.fromisoformat(event.recorded_at) > as_known_at:
            status = "not yet known"
        elif event.event_id in standing or type(event).__name__ == "EventRetracted":
            status = ""
        else:
            status = "void (retracted)"
        facts.add_row(
            str(number),
            type(event).__name__,
            event.effective_date,
            event.recorded_at,
            event.source_system,
            event.source_case_ref or "",
            event.municipality,
            ", ".join(f"{k}={v}" for k, v in event.details.items()),
            ", ".join(f"{k}={v}" for k, v in event.provenance.items()),
            status,
        )
    console.print(facts)

    timeline = build_timeline(citizen.facts, as_known_at)
    spells = Table(title=f"All-benefits spells up to {as_of}")
    rows = spell_rows(timeline, as_of)
    for column in rows[0] if rows else ["start"]:
        spells.add_column(column)
    for row in rows:
        spells.add_row(*(_text(v) for v in row.values()))
    console.print(spells)

    measures = durations_on(timeline, as_of, citizen.birth_date)
    summary = Table(
        title=f"Measures on {as_of}" + (f" as known at {as_known_at}" if as_known_at else "")
    )
    summary.add_column("measure")
    summary.add_column("value")
    for name in measures.__slots__:
        summary.add_row(name, _text(getattr(measures, name)))
    console.print(summary)
    if timeline.findings:
        findings = Table(title="Data-quality findings")
        for column in ("kind", "event", "effective"):
            findings.add_column(column)
        for finding in timeline.findings:
            findings.add_row(finding.kind.value, finding.event_id, str(finding.effective_date))
        console.print(findings)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.3f}"
    if hasattr(value, "items"):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)
