"""Random draws shared by the population modules: ids, timestamps, days, weighted picks."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import date, datetime, timedelta

Event = dict[str, object]


def new_event_id(rng: random.Random) -> str:
    """A random UUID version 4, drawn from ``rng`` (so seeded runs repeat)."""
    h = f"{rng.getrandbits(128):032x}"  # then the version (4) and variant (10xx) nibbles
    return f"{h[0:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


def timestamp(rng: random.Random, day: date, first_hour: int = 7, last_hour: int = 18) -> str:
    """An ISO UTC timestamp on ``day`` between ``first_hour`` and ``last_hour``."""
    secs = first_hour * 3600 + int(rng.random() * (last_hour - first_hour) * 3600)
    return f"{day.isoformat()}T{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}Z"


def later(stamp: str, seconds: int) -> str:
    """The ISO UTC timestamp ``seconds`` after ``stamp``."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def day_between(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randint(0, max(0, (last - first).days)))


def pick(
    rng: random.Random, table: Iterable[tuple[float, str, str | None]]
) -> tuple[str, str | None]:
    """A weighted choice from rows of (weight, first, second)."""
    rows = tuple(table)
    x = rng.random() * sum(row[0] for row in rows)
    for weight, first, second in rows:
        x -= weight
        if x < 0:
            return first, second
    return rows[-1][1], rows[-1][2]


def shifted(rng: random.Random, effective_date: object, until: date) -> str:
    """Another plausible effective date, a few days off, never after ``until``."""
    day, shift = date.fromisoformat(str(effective_date)), timedelta(days=rng.randint(1, 30))
    return (day + shift if day + shift <= until else day - shift).isoformat()
