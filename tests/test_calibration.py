"""The demo population against the field's published figures (domain.md, "Published figures").

Each figure is measured with the pure domain functions on a generated population, as the
engine would compute it, and held to its anchor: a share within 10% (or, for the smaller
groups, within two standard errors of the anchor at this sample size), a flow within a factor
of two, the caseload inside the field's 50..110. The table printed here is the one in
docs/calibration.md (there measured on 20,000 citizens).
"""

from collections.abc import Callable
from datetime import date

import pytest

from casehistory.population.calibration import Figure, measure, table
from casehistory.population.generator import generate_population

CITIZENS = 6000
SEED = 7
AS_OF = date(2026, 11, 1)


@pytest.fixture(scope="module")
def figures() -> list[Figure]:
    return measure(generate_population(CITIZENS, SEED, until=AS_OF), AS_OF)


def test_the_demo_meets_every_anchor(
    figures: list[Figure], record_property: Callable[[str, object], None]
) -> None:
    print(f"\n{CITIZENS:,} citizens, seed {SEED}, as of {AS_OF}\n{table(figures)}")
    anchored = [f for f in figures if f.rule != "reported"]
    for figure in anchored:
        record_property(figure.name, f"{figure.measured:.4g} (anchor {figure.anchor:.4g})")
    assert len(anchored) == 17
    missed = [
        f"{f.name}: {f.measured:.3g} against {f.anchor:.3g}"
        for f in anchored
        if not f.met_at_sample_size
    ]
    assert not missed, missed
    strictly = sum(f.met for f in anchored)
    record_property("met strictly", f"{strictly} of {len(anchored)}")


def test_every_share_and_flow_rests_on_enough_citizens(figures: list[Figure]) -> None:
    thin = [(f.name, f.sample) for f in figures if f.rule in ("±10%", "×/÷2") and f.sample < 5]
    assert not thin


def test_a_figure_outside_its_band_is_a_miss() -> None:
    share = Figure("share", 0.5, 0.6, 10_000, 0.45, 0.55, "±10%")
    assert not share.met and not share.met_at_sample_size
    small = Figure("share", 0.5, 0.6, 40, 0.45, 0.55, "±10%")
    assert not small.met and small.met_at_sample_size  # 2 standard errors of 40 is 0.16
    flow = Figure("flow", 500, 1300, 28_000, 250, 1000, "×/÷2")  # 100 expected, 260 seen
    assert not flow.met and not flow.met_at_sample_size
    few = Figure("flow", 500, 2100, 2_800, 250, 1000, "×/÷2")  # 10 expected, 42 seen
    assert not few.met_at_sample_size
    noisy = Figure("flow", 500, 150, 2_800, 250, 1000, "×/÷2")  # 10 expected, 3 seen
    assert not noisy.met and noisy.met_at_sample_size
