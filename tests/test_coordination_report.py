"""Coordination reports over computed values: the shapes the councils read."""

from __future__ import annotations

from datetime import date

from casehistory.domain.coordination import Coordination, Flag
from casehistory.domain.timeline import build_timeline
from casehistory.services.coordination_report import (
    NO_TARGET_GROUP,
    flow_records,
    flows,
    half_years,
    months,
    summarise,
    yearly_mapping,
)
from tests.factories import started, stopped
from tests.test_coordination import began

DAY = date(2024, 5, 1)


def coordination(group: str | None, step: int, *interventions: str, shared: bool = True,
                 flags: tuple[str, ...] = ()) -> Coordination:
    return Coordination(DAY, shared, step, interventions, dict.fromkeys(flags, ("id",)), group)


def test_target_groups_steps_and_flags() -> None:
    summary = summarise(
        [
            coordination("aktivitetsparat_voksen", 4, "sel_108_long_term_residence",
                         flags=(Flag.PERMANENT_SUPPORT_ON_TEMPORARY_BENEFIT,)),
            coordination("jobparat", 4, "abl_105_long_term_residence"),
            coordination("jobparat", 0, shared=False, flags=(Flag.YOUTH_UNIFIED_EFFORT,)),
            coordination("ressourceforloeb", 0, "child_placement"),
            coordination(None, 2, "sel_85_support", shared=False),
        ],
        DAY,
    )
    assert summary.citizens == 5
    assert summary.by_group == {"aktivitetsparat_voksen": 1, "jobparat": 2,
                                "ressourceforloeb": 1, NO_TARGET_GROUP: 1}
    assert summary.faellesborgere_by_group == {"aktivitetsparat_voksen": 1, "jobparat": 1,
                                               "ressourceforloeb": 1}
    assert summary.by_group_and_intervention[NO_TARGET_GROUP, "sel_85_support"] == 1
    assert summary.faellesborgere_by_step == {4: 2, 0: 1}  # only fællesborgere are on steps
    assert summary.edge_by_step == {4: 1, 0: 1}  # jobparat is ready for a job
    assert summary.flags == {Flag.PERMANENT_SUPPORT_ON_TEMPORARY_BENEFIT: 1,
                             Flag.YOUTH_UNIFIED_EFFORT: 1}


def test_half_years_and_months_of_a_range() -> None:
    assert half_years(date(2020, 6, 30), date(2021, 7, 1)) == ["2020H1", "2020H2", "2021H1",
                                                               "2021H2"]
    assert half_years(date(2020, 7, 1), date(2020, 12, 31)) == ["2020H2"]
    assert months(date(2020, 1, 2), date(2020, 4, 1)) == [date(2020, 2, 1), date(2020, 3, 1),
                                                           date(2020, 4, 1)]
    assert months(date(2020, 1, 1), date(2020, 1, 31)) == [date(2020, 1, 1)]


def test_flows_count_citizens_inside_the_range_and_ledighedsydelse_on_the_first() -> None:
    flexjob = "fleksloentilskud"
    flexjob_twice = build_timeline([
        started(date(2020, 1, 10), flexjob), stopped(date(2020, 2, 1), flexjob),
        started(date(2020, 3, 1), flexjob),
    ])
    awaiting = build_timeline([
        started(date(2020, 2, 1), "ledighedsydelse"), stopped(date(2020, 4, 1), "ledighedsydelse"),
        started(date(2020, 7, 1), "foertidspension"),
    ])
    result = flows([flexjob_twice, awaiting], date(2020, 1, 15), date(2020, 7, 1))
    assert result.inflow == {"2020H1": {"fleksloentilskud": 1}, "2020H2": {"foertidspension": 1}}
    assert result.awaiting_flexjob == {date(2020, 2, 1): 1, date(2020, 3, 1): 1,
                                       date(2020, 4, 1): 0, date(2020, 5, 1): 0,
                                       date(2020, 6, 1): 0, date(2020, 7, 1): 0}
    records = list(flow_records(result))
    assert len(records) == 2 * 3 + 6
    assert records[0] == {"flow": "inflow", "period": "2020H1", "benefit": "fleksloentilskud",
                          "citizens": 1}


def test_yearly_mapping_needs_two_benefit_months_and_an_intervention() -> None:
    two_months = [started(date(2023, 2, 1)), stopped(date(2023, 4, 1))]
    timelines = [
        build_timeline([*two_months, began(date(2023, 12, 31), "drug_treatment")]),
        build_timeline([*two_months, began(date(2023, 1, 1), "assistive_aids")]),
        build_timeline([started(date(2023, 2, 2)), stopped(date(2023, 4, 1)),
                        began(date(2023, 3, 1), "drug_treatment")]),
    ]
    mapping = yearly_mapping(timelines, 2023)
    assert (mapping.on_benefit, mapping.faellesborgere) == (2, 1)
