"""Cost per citizen of the report rules (exits, follow-up, lists, caseload, cadence).

Pure functions over timelines built from a generated population, timed one rule
at a time on one as-of date, so growth with the population size shows as a
change in the time per citizen:

    .venv/bin/python -m bench.report_rules 2000 8000
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from typing import Any

from casehistory.domain.cadence import cadence_on
from casehistory.domain.caseload import caseload_entry, continuity
from casehistory.domain.cpr import birth_date
from casehistory.domain.durations import durations_on
from casehistory.domain.exits import exits_on, follow_up
from casehistory.domain.facts import Fact
from casehistory.domain.priorities import in_clarification_pool, long_duration
from casehistory.domain.timeline import Timeline, build_timeline
from casehistory.population.generator import generate_population
from casehistory.schemas.contract import ContractEvent, validate

AS_OF = date(2025, 10, 1)


def timelines(citizens: int) -> list[tuple[Timeline, date]]:
    facts: dict[str, list[Fact]] = defaultdict(list)
    for record in generate_population(citizens, seed=5, invalid_share=0.0):
        event = validate(record)
        if isinstance(event, ContractEvent):
            facts[event.cpr].append(event.to_fact())
    return [(build_timeline(f), birth_date(cpr)) for cpr, f in facts.items()]


RULES: dict[str, Callable[[Timeline, date], Any]] = {
    "exits_on": lambda t, _: exits_on(t, AS_OF),
    "follow_up 6/12/18": lambda t, _: follow_up(t, date(2024, 1, 1)),
    "long_duration 2y": lambda t, _: long_duration(t, AS_OF, 2),
    "clarification pool": lambda t, born: in_clarification_pool(durations_on(t, AS_OF, born)),
    "caseload_entry": lambda t, _: caseload_entry(t, AS_OF),
    "continuity": lambda t, _: continuity(t, AS_OF),
    "cadence_on": lambda t, _: cadence_on(t, AS_OF),
}


def main(sizes: list[int]) -> None:
    for size in sizes:
        population = timelines(size)
        for name, rule in RULES.items():
            start = time.perf_counter()
            for timeline, born in population:
                rule(timeline, born)
            per = (time.perf_counter() - start) / len(population) * 1e6
            print(f"{size:>7} citizens  {name:<20} {per:8.1f} µs per citizen")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [2000, 8000])
