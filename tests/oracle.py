"""A brute-force reading of the duration rules, day by day, to check the real code against.

Slow and literal on purpose: paid days are a set of dates, spells are found by
walking back from D one day at a time, and a gap breaks a spell when some whole
calendar month lies inside it.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

from casehistory.domain import reference
from casehistory.domain.facts import EventType, Fact
from casehistory.domain.timeline import effective_facts

DAY = timedelta(days=1)


def periods(facts: list[Fact]) -> list[tuple[str, date, date | None, str | None]]:
    """(benefit, start, stop or None, stop reason), pairing each key's events on its own."""
    by_key: dict[tuple[str, str, str], list[Fact]] = {}
    for f in effective_facts(facts):
        if f.event_type in (EventType.BENEFIT_STARTED, EventType.BENEFIT_STOPPED):
            by_key.setdefault((f.benefit or "", f.source_system, f.municipality), []).append(f)
    result = []
    for (benefit, _, _), events in by_key.items():
        events.sort(
            key=lambda f: (
                f.effective_date,
                f.event_type is EventType.BENEFIT_STARTED,
                f.recorded_at,
                f.event_id,
            )
        )
        open_start: date | None = None
        for f in events:
            if f.event_type is EventType.BENEFIT_STARTED:
                if open_start is None:
                    open_start = f.effective_date
            elif open_start is not None:
                result.append((benefit, open_start, f.effective_date, f.reason))
                open_start = None
        if open_start is not None:
            result.append((benefit, open_start, None, None))
    return result


def paid_days(facts: list[Fact], day: date, cash_only: bool = False) -> set[date]:
    benefits = reference.benefits()
    paid: set[date] = set()
    for benefit, start, stop, _ in periods(facts):
        if cash_only and not benefits[benefit].in_cash_benefit_system:
            continue
        d = start
        while d <= day and (stop is None or stop > day or d < stop):
            if stop is not None and d >= stop:
                break
            paid.add(d)
            d += DAY
    return paid


def _whole_month_inside(first_unpaid: date, last_unpaid: date) -> bool:
    d = first_unpaid
    while d <= last_unpaid:
        if d.day == 1:
            next_month = date(d.year + d.month // 12, d.month % 12 + 1, 1)
            if next_month - DAY <= last_unpaid:
                return True
        d += DAY
    return False


def spell_start(paid: set[date], day: date) -> date | None:
    if day not in paid:
        return None
    start = day
    d = day - DAY
    earliest = min(paid)
    while d >= earliest:
        if d in paid:
            start = d
            d -= DAY
            continue
        gap_end = d
        while d >= earliest and d not in paid:
            d -= DAY
        if d < earliest or _whole_month_inside(d + DAY, gap_end):
            break
    return start


def measures(facts: list[Fact], day: date) -> dict[str, object]:
    paid = paid_days(facts, day)
    cash = paid_days(facts, day, cash_only=True)
    start = spell_start(paid, day)
    cash_start = spell_start(cash, day)
    ps = periods(facts)
    open_starts = [s for _, s, stop, _ in ps if s <= day and (stop is None or stop > day)]
    breaks = Counter(
        reason or "other"
        for _, _, stop, reason in ps
        if start is not None and stop is not None and start < stop <= day
    )
    ten_years_back = (
        day.replace(year=day.year - 10)
        if not (day.month == 2 and day.day == 29)
        else day.replace(year=day.year - 10, day=28)
    )
    window = {d for d in cash if ten_years_back < d <= day}
    return {
        "on_benefit": day in paid,
        "all_benefits_spell_start": start,
        "all_benefits_spell_days": (day - start).days if start else None,
        "cash_system_spell_start": cash_start,
        "benefit_days_in_spell": sum(1 for d in paid if start and start <= d <= day)
        if start
        else None,
        "breaks_bridged": dict(breaks) if start else {},
        "naive_days": (day - max(open_starts)).days if open_starts else None,
        "share_last_10y_cash_system": len(window) / (day - ten_years_back).days,
    }


_W_BENEFITS = {
    "foertidspension": "disability_pension",
    "seniorpension": "senior_pension",
    "fleksloentilskud": "flexjob",
    "ledighedsydelse": "flexjob",
}
_W_RANK = ["disability_pension", "senior_pension", "flexjob", "other_benefit"]


def exits(facts: list[Fact], day: date) -> list[tuple[date, date, str]]:
    """(E, W's last day, destination) of every exit known as of `day`, read day by day."""
    cash = paid_days(facts, day, cash_only=True)
    ps = [p for p in periods(facts) if p[1] <= day]
    found = []
    for e in sorted(d + DAY for d in cash if d + DAY not in cash and d + DAY <= day):
        first = e
        while first.day != 1:
            first += DAY
        last = first
        while (last + DAY).month == first.month:
            last += DAY
        if last > day or any(e <= d <= last for d in cash):
            continue
        reasons = {reason for _, _, stop, reason in ps if stop == e}
        destination = "unknown"
        if "died" in reasons or "emigrated" in reasons:
            destination = "died" if "died" in reasons else "emigrated"
        else:
            x = e
            while x <= last and destination == "unknown":
                paid = [b for b, s, stop, _ in ps if s <= x and (stop is None or x < stop)]
                if paid:
                    destination = min(
                        (_W_BENEFITS.get(b, "other_benefit") for b in paid), key=_W_RANK.index
                    )
                x += DAY
            if destination == "unknown":
                destination = next(
                    (r for r in ("job", "education", "self_support", "moved_municipality")
                     if r in reasons),
                    "unknown",
                )
        found.append((e, last, destination))
    return found
