"""How a generated population compares with the field's published figures.

Every figure is computed with the pure domain functions (timeline, durations, coordination)
from the contract-validated records, as the engine would, and set beside its anchor in
``domain.md`` "Published figures". ``python -m casehistory.population.calibration 20000``
prints the table (docs/calibration.md).
"""

from __future__ import annotations

import argparse
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from domain import reference
from domain.coordination import (
    awaiting_flexjob,
    benefits_covering,
    coordination_on,
    inflows,
    yearly_faellesborger,
)
from domain.cpr import birth_date
from domain.durations import at_least_years, durations_on, over_years
from domain.facts import Fact
from domain.timeline import build_timeline
from schemas.contract import ContractEvent, validate

EDGE = "edge_of_labour_market"
AKTIVITETSPARAT = frozenset({"aktivitetsparat_voksen", "aktivitetsparat_ung"})
CITY_JOB_CENTRE_CITIZENS = 140_000
"""The city the flow tables come from: citizens a year with an active employment effort."""


@dataclass(frozen=True, slots=True)
class Figure:
    """One published figure beside the population's value for it."""

    name: str
    anchor: float
    measured: float
    sample: int
    """How many citizens the figure is a share of (or, for flows, the job-centre citizens)."""
    tolerance: float = 0.10
    """Relative: met when ``measured`` is within this share of ``anchor``."""

    @property
    def met(self) -> bool:
        return abs(self.measured - self.anchor) <= self.tolerance * self.anchor

    @property
    def sampling_error(self) -> float:
        """One standard error of a share of ``sample`` citizens, had the anchor been true."""
        if self.anchor >= 1 or self.sample == 0:
            return 0.0
        return math.sqrt(self.anchor * (1 - self.anchor) / self.sample)


def facts_by_citizen(records: Iterable[Mapping[str, object]]) -> dict[str, list[Fact]]:
    """Each CPR number's facts from the records the contract accepts (arrival order kept)."""
    facts: dict[str, list[Fact]] = defaultdict(list)
    for record in records:
        event = validate(dict(record))
        if isinstance(event, ContractEvent):
            facts[event.cpr].append(event.to_fact())
    return facts


def _share(hits: int, of: int) -> float:
    return hits / of if of else 0.0


def measure(records: Iterable[Mapping[str, object]], as_of: date) -> list[Figure]:
    """The published figures, measured on the population as of ``as_of``."""
    groups = reference.target_groups()
    on_benefit = cash = 0
    last_year = as_of.year - 1
    year_faelles = 0
    by_group: Counter[str] = Counter()
    faelles_by_group: Counter[str] = Counter()
    by_step: Counter[int] = Counter()
    edge_by_step: Counter[int] = Counter()
    akt_21 = akt_21_3y = akt_21_cash_3y = akt_21_cash_10y = akt_28 = akt_28_8of10 = akt_cash = 0
    flow_years = (2018, 2020)
    year_citizens: Counter[int] = Counter()
    inflow: Counter[tuple[str, int]] = Counter()
    awaiting_days = (date(2018, 1, 1), date(2020, 7, 1), date(2022, 7, 1))
    awaiting: Counter[date] = Counter()
    citizens = facts_by_citizen(records)
    for cpr, facts in citizens.items():
        born = birth_date(cpr)
        timeline = build_timeline(facts)
        durations = durations_on(timeline, as_of, born)
        coordination = coordination_on(timeline, as_of, born)
        on_benefit += durations.on_benefit
        group = durations.target_group
        if group and benefits_covering(timeline, as_of, job_centre_only=True):
            by_group[group] += 1
            faelles_by_group[group] += coordination.is_faellesborger
        if coordination.is_faellesborger and coordination.support_step:
            by_step[coordination.support_step] += 1
            edge_by_step[coordination.support_step] += bool(
                group and groups[group].main_group == EDGE
            )
        if durations.cash_system_spell_start is not None:
            cash += 1
            if group in AKTIVITETSPARAT and durations.age is not None:
                akt_cash += 1
                if durations.age >= 21:
                    akt_21 += 1
                    spell_start = durations.all_benefits_spell_start or as_of
                    akt_21_3y += at_least_years(spell_start, as_of, 3)
                    akt_21_cash_3y += over_years(durations.cash_system_spell_start, as_of, 3)
                    akt_21_cash_10y += over_years(durations.cash_system_spell_start, as_of, 10)
                if durations.age >= 28:
                    akt_28 += 1
                    akt_28_8of10 += durations.share_last_10y_cash_system >= 0.8
        for year in {*range(flow_years[0], flow_years[1] + 1), last_year}:
            first, end = date(year, 1, 1), date(year + 1, 1, 1)
            if any(
                p.start < end
                and (p.stop is None or p.stop > first)
                and reference.benefits()[p.code].is_job_centre_benefit
                for p in timeline.benefit_periods
            ):
                year_citizens[year] += 1
                year_faelles += year == last_year and yearly_faellesborger(timeline, year)
        for flow in inflows(timeline):
            inflow[flow.benefit, flow.start.year] += 1
        for day in awaiting_days:
            awaiting[day] += awaiting_flexjob(timeline, day)

    def per_city(count: int, year: int) -> float:
        return count * CITY_JOB_CENTRE_CITIZENS / year_citizens[year] if year_citizens[year] else 0

    figures = [
        Figure(
            "aktivitetsparate among cash-system recipients",
            72_000 / 89_800,
            _share(akt_cash, cash),
            cash,
        ),
        Figure(
            "aktivitetsparate 21+: on public support 3 years or more",
            0.66,
            _share(akt_21_3y, akt_21),
            akt_21,
        ),
        Figure(
            "aktivitetsparate 21+: over 3 years in the cash-benefit system",
            0.64,
            _share(akt_21_cash_3y, akt_21),
            akt_21,
        ),
        Figure(
            "aktivitetsparate 21+: over 10 years in the cash-benefit system",
            0.23,
            _share(akt_21_cash_10y, akt_21),
            akt_21,
        ),
        Figure(
            "aktivitetsparate 28+: 8 of the last 10 years in the system",
            0.58,
            _share(akt_28_8of10, akt_28),
            akt_28,
        ),
        Figure(
            f"fællesborgere among job-centre citizens in {last_year}",
            0.05,
            _share(year_faelles, year_citizens[last_year]),
            year_citizens[last_year],
        ),
    ]
    for group, anchor in (
        ("aktivitetsparat_voksen", 0.23),
        ("aktivitetsparat_ung", 0.38),
        ("ressourceforloeb", 0.30),
        ("fleksjobvisiteret", 0.08),
    ):
        figures.append(
            Figure(
                f"fællesborgere among {group}",
                anchor,
                _share(faelles_by_group[group], by_group[group]),
                by_group[group],
            )
        )
    for step, anchor in ((1, 0.68), (4, 0.93)):
        figures.append(
            Figure(
                f"fællesborgere on support step {step}: at the edge",
                anchor,
                _share(edge_by_step[step], by_step[step]),
                by_step[step],
            )
        )
    order = 1.0  # flows: the order of magnitude (within a factor of two)
    for benefit, year, anchor in (
        ("fleksloentilskud", 2018, 384.0),
        ("fleksloentilskud", 2020, 664.0),
        ("foertidspension", 2018, 905.0),
        ("foertidspension", 2020, 1933.0),
        ("seniorpension", 2020, 563.0),
    ):
        figures.append(
            Figure(
                f"inflow {benefit} {year} per city",
                anchor,
                per_city(inflow[benefit, year], year),
                year_citizens[year],
                order,
            )
        )
    for day, anchor in zip(awaiting_days, (688.0, 1043.0, 809.0), strict=True):
        year = min(max(day.year, flow_years[0]), flow_years[1])
        figures.append(
            Figure(
                f"approved for flexjob, without one, {day} per city",
                anchor,
                per_city(awaiting[day], year),
                year_citizens[year],
                order,
            )
        )
    figures.append(
        Figure(
            "citizens on benefit (no anchor: reported)",
            0.0,
            _share(on_benefit, len(citizens)),
            len(citizens),
            math.inf,
        )
    )
    return figures


def table(figures: list[Figure]) -> str:
    """The figures as a Markdown table."""
    lines = [
        "| figure | anchor | measured | of | within |",
        "|---|---:|---:|---:|---|",
    ]
    for f in figures:
        share = f.anchor <= 1 and f.measured <= 1

        def shown(value: float, share: bool = share) -> str:
            return f"{value:.1%}" if share else f"{value:,.0f}"

        within = (
            "reported"
            if math.isinf(f.tolerance)
            else (f"{'yes' if f.met else 'no'} (±{f.tolerance:.0%})")
        )
        lines.append(
            f"| {f.name} | {shown(f.anchor)} | {shown(f.measured)} | {f.sample:,} | {within} |"
        )
    return "\n".join(lines)


def main() -> None:
    from casehistory.generator import generate_population

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("citizens", type=int)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 1))
    args = parser.parse_args()
    population = generate_population(args.citizens, args.seed, until=args.as_of)
    print(table(measure(population, args.as_of)))


if __name__ == "__main__":
    main()
