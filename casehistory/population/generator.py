"""Seeded synthetic population: a municipality's upstream events in the contract's JSON form.

The public entry point. Each citizen's history is drawn on its own (``population.citizen``),
with the delivery noise upstream produces (``population.delivery``): late registrations,
corrections, redeliveries and a share of invalid records. The stream is then put in arrival
order like a real topic (``population.arrival``): decades of registrations interleaved, bulk
migration batches, one citizen's events spread over the whole stream. Only substitute CPR
numbers (day of month + 60) are generated, so no record can be a real person. Everything is
drawn from ``random.Random(seed)``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

from casehistory.domain import reference
from casehistory.population.arrival import ArrivalBuckets
from casehistory.population.citizen import Citizen
from casehistory.population.delivery import add_retractions, arrivals


def generate_population(
    citizens: int,
    seed: int,
    *,
    until: date = date(2026, 11, 1),
    invalid_share: float = 0.01,
    spill_at: int = 400_000,
    home: str | None = None,
) -> Iterator[dict[str, object]]:
    """Events of ``citizens`` synthetic citizens in arrival order (what upstream publishes).

    Without ``home`` the citizens are a national sample (the calibrated population,
    docs/calibration.md); with a ``home`` municipality code most of them live there, with
    moves in and out, its job centre is staffed for the citizens it holds, and only it
    publishes its caseworkers (another job centre's staff ids are not the home's data).
    Memory holds about ``spill_at`` events plus the busiest month; the rest waits in
    temporary files. Nothing is yielded before every citizen is drawn.
    """
    if citizens < 0 or not 0 <= invalid_share < 1:
        raise ValueError("citizens must be >= 0 and invalid_share in [0, 1)")
    if home is not None and home not in reference.municipalities():
        raise ValueError(f"unknown home municipality {home!r}")
    return _in_arrival_order(citizens, seed, until, invalid_share, spill_at, home)


def _in_arrival_order(
    citizens: int, seed: int, until: date, invalid_share: float, spill_at: int, home: str | None
) -> Iterator[dict[str, object]]:
    seeds = random.Random(seed)
    used_cprs: set[str] = set()
    buckets = ArrivalBuckets(spill_at)
    for _ in range(citizens):
        rng = random.Random(seeds.getrandbits(64))
        citizen = Citizen(rng, used_cprs, until, citizens, home)
        events = citizen.history()
        add_retractions(rng, events, until)
        for arrival, event in arrivals(rng, events, until, invalid_share):
            buckets.add(arrival, event)
    yield from buckets.drain()


def write_jsonl(events: Iterable[dict[str, object]], path: Path) -> int:
    """Write events as JSON Lines; returns how many were written."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event, ensure_ascii=False) + "\n")
            count += 1
    return count
