"""The demo population against the field's published figures (domain.md, "Published figures").

Each figure is measured with the pure domain functions on a generated population of demo size
(20,000 citizens, seed 7: the seed-7 column of docs/calibration.md), as the engine would
compute it, and held to its anchor: a share within 10%, a flow within a factor of two, the
caseload inside the field's 50..110. A share or flow outside its band still passes when it is
within the sampling error of all sixteen such figures at once: ``simultaneous_z`` standard
errors of the anchor at its sample size (Bonferroni at 5% for the whole table, about 2.96;
docs/calibration.md, "The test's rule").
"""

from collections.abc import Callable
from datetime import date

import pytest

from casehistory.population.calibration import (
    Figure,
    measure,
    simultaneous_z,
    table,
    verdict,
)
from casehistory.population.generator import generate_population

CITIZENS = 20_000
SEED = 7
AS_OF = date(2026, 11, 1)


@pytest.fixture(scope="module")
def figures() -> list[Figure]:
    return measure(generate_population(CITIZENS, SEED, until=AS_OF), AS_OF)


def test_the_demo_meets_every_anchor(
    figures: list[Figure], record_property: Callable[[str, object], None]
) -> None:
    anchored = [f for f in figures if f.rule != "reported"]
    assert len(anchored) == 17
    z = simultaneous_z(sum(f.sampled for f in anchored))
    strictly = [f.name for f in anchored if f.met]
    by_chance = [f.name for f in anchored if not f.met and f.within_sampling_error(z)]
    print(f"\n{CITIZENS:,} citizens, seed {SEED}, as of {AS_OF}\n{table(figures)}")
    print(verdict(figures))
    for figure in anchored:
        record_property(figure.name, f"{figure.measured:.4g} (anchor {figure.anchor:.4g})")
    record_property("met strictly", f"{len(strictly)} of {len(anchored)}")
    record_property("met within the sampling error", "; ".join(by_chance))
    missed = [
        f"{f.name}: {f.measured:.3g} against {f.anchor:.3g} (of {f.sample})"
        for f in anchored
        if not f.within_sampling_error(z)
    ]
    assert not missed, missed


def test_every_share_and_flow_rests_on_enough_citizens(figures: list[Figure]) -> None:
    thin = [(f.name, f.sample) for f in figures if f.sampled and f.sample < 15]
    assert not thin


def test_a_figure_outside_its_band_is_a_miss() -> None:
    z = simultaneous_z(16)
    share = Figure("share", 0.5, 0.6, 10_000, 0.45, 0.55, "±10%")
    assert not share.met and not share.within_sampling_error(z)
    small = Figure("share", 0.5, 0.6, 40, 0.45, 0.55, "±10%")  # 1.3 standard errors of 40
    assert not small.met and small.within_sampling_error(z)
    chance = Figure("share", 0.5, 0.62, 100, 0.45, 0.55, "±10%")  # 2.4 standard errors
    assert not chance.within_sampling_error(2) and chance.within_sampling_error(z)
    beyond = Figure("share", 0.5, 0.66, 100, 0.45, 0.55, "±10%")  # 3.2 standard errors
    assert not beyond.within_sampling_error(z)
    flow = Figure("flow", 500, 1300, 28_000, 250, 1000, "×/÷2")  # 100 expected, 260 seen
    assert not flow.met and not flow.within_sampling_error(z)
    few = Figure("flow", 500, 2500, 2_800, 250, 1000, "×/÷2")  # 10 expected, 50 seen
    assert not few.within_sampling_error(z)
    noisy = Figure("flow", 500, 150, 2_800, 250, 1000, "×/÷2")  # 10 expected, 3 seen
    assert not noisy.met and noisy.within_sampling_error(z)
    caseload = Figure("caseload", 70, 112, 12, 50, 110, "50..110")
    assert not caseload.sampled and not caseload.within_sampling_error(z)


def test_many_figures_at_once_need_more_than_two_standard_errors_each() -> None:
    assert simultaneous_z(1) == pytest.approx(1.96, abs=0.01)
    assert simultaneous_z(12) == pytest.approx(2.87, abs=0.01)
    assert simultaneous_z(16) > simultaneous_z(12) > 2
