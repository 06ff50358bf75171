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
from statistics import NormalDist

from casehistory.domain import reference
from casehistory.domain.cadence import cadence_on
from casehistory.domain.caseload import caseload_entry
from casehistory.domain.coordination import (
    awaiting_flexjob,
    benefits_covering,
    coordination_on,
    inflows,
    yearly_faellesborger,
)
from casehistory.domain.cpr import birth_date
from casehistory.domain.durations import at_least_years, durations_on, over_years
from casehistory.domain.facts import Fact
from casehistory.domain.timeline import build_timeline
from casehistory.schemas.contract import ContractEvent, validate

EDGE = "edge_of_labour_market"
CASELOAD = 70
AKTIVITETSPARAT = frozenset({"aktivitetsparat_voksen", "aktivitetsparat_ung"})
CITY_JOB_CENTRE_CITIZENS = 140_000
"""The city the flow tables come from: citizens a year with an active employment effort."""
FAELLES_BY_GROUP = {
    "aktivitetsparat_voksen": 0.23,
    "aktivitetsparat_ung": 0.38,
    "ressourceforloeb": 0.30,
    "fleksjobvisiteret": 0.08,
}
EDGE_BY_STEP = {1: 0.68, 4: 0.93}
INFLOWS = {  # a year, per city: the mean of the tables' years, measured over the same years
    "fleksloentilskud": ((2018, 2019, 2020), (384.0 + 664.0) / 2),
    "foertidspension": ((2018, 2019, 2020), (905.0 + 1933.0) / 2),
    "seniorpension": ((2020, 2021, 2022), 563.0),
}
AWAITING_FLEXJOB = {date(2018, 1, 1): 688.0, date(2020, 7, 1): 1043.0, date(2022, 7, 1): 809.0}
FLOW_YEARS = frozenset(
    {year for years, _ in INFLOWS.values() for year in years}
    | {day.year for day in AWAITING_FLEXJOB}
)


@dataclass(frozen=True, slots=True)
class Figure:
    """One published figure beside the population's value for it.

    Met when the measured value lies in ``[low, high]``: within 10% of a share, within a
    factor of two for a flow's order of magnitude, or inside a range the field gives.
    """

    name: str
    anchor: float
    measured: float
    sample: int
    """How many citizens the figure is a share of (for flows: job-centre citizens that year)."""
    low: float
    high: float
    rule: str

    @property
    def met(self) -> bool:
        return self.low <= self.measured <= self.high

    @property
    def sampled(self) -> bool:
        """Whether the figure has a sampling error (a share or a flow, not a fixed range)."""
        return self.rule in ("±10%", "×/÷2")

    def within_sampling_error(self, z: float) -> bool:
        """Met, or within ``z`` standard errors of the anchor at this sample size.

        A share of a few dozen citizens cannot be held to 10% of its anchor, nor a flow of a
        dozen citizens to a factor of two. Shares use the binomial error of the anchor at
        this many citizens; flows the Poisson error of the count the anchor implies for this
        many job-centre citizens, around the factor-of-two band.
        """
        if self.met or not self.sample or not self.sampled:
            return self.met
        if self.rule == "±10%":
            error = math.sqrt(self.anchor * (1 - self.anchor) / self.sample)
            return abs(self.measured - self.anchor) <= z * error
        expected = self.anchor * self.sample / CITY_JOB_CENTRE_CITIZENS
        lowest = max(0.0, expected - z * math.sqrt(expected)) / 2
        highest = (expected + z * math.sqrt(expected)) * 2
        measured = self.measured * self.sample / CITY_JOB_CENTRE_CITIZENS
        return lowest <= measured <= highest


def simultaneous_z(figures: int, family_error: float = 0.05) -> float:
    """Standard errors each of ``figures`` figures may miss by, all at once (Bonferroni).

    Held to two standard errors each, twelve shares of a population calibrated exactly to
    every anchor would all pass only 57% of the time; with this ``z`` all pass at least
    ``1 - family_error`` of the time.
    """
    return NormalDist().inv_cdf(1 - family_error / (2 * figures))


def share_figure(name: str, anchor: float, hits: int, of: int) -> Figure:
    """A share within 10% of its anchor."""
    return Figure(name, anchor, hits / of if of else 0.0, of, 0.9 * anchor, 1.1 * anchor, "±10%")


def flow_figure(name: str, anchor: float, measured: float, of: int) -> Figure:
    """A count per city within a factor of two (the order of magnitude)."""
    return Figure(name, anchor, measured, of, anchor / 2, anchor * 2, "×/÷2")


def facts_by_citizen(records: Iterable[Mapping[str, object]]) -> dict[str, list[Fact]]:
    """Each CPR number's facts from the records the contract accepts (arrival order kept)."""
    facts: dict[str, list[Fact]] = defaultdict(list)
    for record in records:
        event = validate(dict(record))
        if isinstance(event, ContractEvent):
            facts[event.cpr].append(event.to_fact())
    return facts


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
    year_citizens: Counter[int] = Counter()
    inflow: Counter[tuple[str, int]] = Counter()
    awaiting: Counter[date] = Counter()
    caseload: Counter[str] = Counter()
    cadence: Counter[str] = Counter()
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
        for year in {*FLOW_YEARS, last_year}:
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
        for day in AWAITING_FLEXJOB:
            awaiting[day] += awaiting_flexjob(timeline, day)
        responsible = caseload_entry(timeline, as_of)
        if responsible is not None:
            caseload[responsible.caseworker] += 1
        clock = cadence_on(timeline, as_of)
        if clock is not None:
            cadence[clock.status] += 1

    def per_city(count: int, year: int) -> float:
        return count * CITY_JOB_CENTRE_CITIZENS / year_citizens[year] if year_citizens[year] else 0

    figures = [
        share_figure(
            "aktivitetsparate among cash-system recipients", 72_000 / 89_800, akt_cash, cash
        ),
        share_figure(
            "aktivitetsparate 21+: on public support 3 years or more", 0.66, akt_21_3y, akt_21
        ),
        share_figure(
            "aktivitetsparate 21+: over 3 years in the cash-benefit system",
            0.64,
            akt_21_cash_3y,
            akt_21,
        ),
        share_figure(
            "aktivitetsparate 21+: over 10 years in the cash-benefit system",
            0.23,
            akt_21_cash_10y,
            akt_21,
        ),
        share_figure(
            "aktivitetsparate 28+: 8 of the last 10 years in the system", 0.58, akt_28_8of10, akt_28
        ),
        share_figure(
            f"fællesborgere among job-centre citizens in {last_year}",
            0.05,
            year_faelles,
            year_citizens[last_year],
        ),
    ]
    for group, anchor in FAELLES_BY_GROUP.items():
        figures.append(
            share_figure(
                f"fællesborgere among {group}", anchor, faelles_by_group[group], by_group[group]
            )
        )
    for step, anchor in EDGE_BY_STEP.items():
        figures.append(
            share_figure(
                f"fællesborgere on support step {step}: at the edge",
                anchor,
                edge_by_step[step],
                by_step[step],
            )
        )
    for benefit, (years, anchor) in INFLOWS.items():
        job_centre_years = sum(year_citizens[year] for year in years)
        count = sum(inflow[benefit, year] for year in years)
        figures.append(
            flow_figure(
                f"inflow into {benefit} a year, {years[0]}-{years[-1]}, per city",
                anchor,
                count * CITY_JOB_CENTRE_CITIZENS / job_centre_years if job_centre_years else 0.0,
                job_centre_years,
            )
        )
    days = sorted(AWAITING_FLEXJOB)
    job_centre_years = sum(year_citizens[day.year] for day in days)
    figures.append(
        flow_figure(
            f"approved for flexjob, without one, on {', '.join(map(str, days))}, per city",
            sum(AWAITING_FLEXJOB.values()) / len(days),
            sum(awaiting.values()) * CITY_JOB_CENTRE_CITIZENS / job_centre_years
            if job_centre_years
            else 0.0,
            job_centre_years // len(days),
        )
    )
    big: Counter[str] = Counter()  # job centres with at least one full caseload in the sample
    for caseworker, citizens_of in caseload.items():
        big[caseworker[:5]] += citizens_of
    in_big = {cw: n for cw, n in caseload.items() if big[cw[:5]] >= CASELOAD}
    figures.append(
        Figure(
            "citizens per caseworker (job centres with 70+ citizens)",
            CASELOAD,
            sum(in_big.values()) / len(in_big) if in_big else 0.0,
            len(in_big),
            50,
            110,
            "50..110",
        )
    )
    figures.append(
        Figure(
            "citizens on benefit",
            0.0,
            on_benefit / len(citizens) if citizens else 0.0,
            len(citizens),
            0.0,
            1.0,
            "reported",
        )
    )
    figures.append(
        Figure(
            "cadence: overdue",
            0.0,
            cadence["overdue"] / cadence.total() if cadence else 0.0,
            cadence.total(),
            0.0,
            1.0,
            "reported",
        )
    )
    return figures


def table(figures: list[Figure]) -> str:
    """The figures as a Markdown table."""
    lines = ["| figure | anchor | measured | of | rule | met |", "|---|---:|---:|---:|---|---|"]
    for f in figures:
        share = f.anchor <= 1 and f.measured <= 1
        anchor = "" if f.rule == "reported" else _shown(f.anchor, share)
        met = "" if f.rule == "reported" else "yes" if f.met else "no"
        lines.append(
            f"| {f.name} | {anchor} | {_shown(f.measured, share)} | {f.sample:,} | {f.rule} "
            f"| {met} |"
        )
    return "\n".join(lines)


def verdict(figures: list[Figure]) -> str:
    """How many anchors are met strictly, and the misses beside the test's sampling rule."""
    anchored = [f for f in figures if f.rule != "reported"]
    z = simultaneous_z(sum(f.sampled for f in anchored))
    lines = [f"met strictly: {sum(f.met for f in anchored)} of {len(anchored)}"]
    for f in anchored:
        if not f.met:
            within = "within" if f.within_sampling_error(z) else "beyond"
            lines.append(f"- {f.name}: {within} {z:.2f} standard errors of the anchor")
    return "\n".join(lines)


def _shown(value: float, share: bool) -> str:
    return f"{value:.1%}" if share else f"{value:,.0f}"


def main() -> None:
    from casehistory.population.generator import generate_population

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("citizens", type=int)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 1))
    parser.add_argument("--home", help="a home municipality (the demo's population)")
    args = parser.parse_args()
    population = generate_population(args.citizens, args.seed, until=args.as_of, home=args.home)
    figures = measure(population, args.as_of)
    print(table(figures))
    print(verdict(figures))


if __name__ == "__main__":
    main()
