"""The history detector on seeded series (tests/support/nightly_series.py): the properties docs/analysis.md
promises, on a few fixed seeds; benchmarks/history_alarms.py measures the rates on thousands."""

from __future__ import annotations

import numpy as np
import pytest
from support import nightly_series as ns

from harness.analysis.changepoints import LISTED, Settings, find_changes, gates, noise_scale
from harness.errors import AnalysisError

pytest.importorskip("ruptures")


def listed(findings):
    return [f for f in findings if f.kind in LISTED]


def flagged(findings):
    return [f for f in findings if gates(f)]


def delay(x: np.ndarray, at: int, most: int = 10) -> int | None:
    """Nights on the new level when a history ending there first flags the step at ``at``."""
    for k in range(1, most + 1):
        if any(abs(f.index - at) <= 1 for f in flagged(find_changes(x[:at + k]))):
            return k
    return None


@pytest.mark.parametrize("kind", ns.NOISE)
def test_a_year_of_noise_flags_nothing(kind):
    for seed in range(5):
        x = ns.noise(np.random.default_rng(seed), 365, kind)
        assert flagged(find_changes(x)) == [], (kind, seed)


@pytest.mark.parametrize("nights", [30, 90, 730])
def test_short_and_long_histories_of_noise_flag_nothing(nights):
    for seed in range(5):
        assert flagged(find_changes(ns.noise(np.random.default_rng(100 + seed), nights))) == []


def test_a_10pct_step_is_flagged_within_2_nights_and_a_5pct_step_within_3():
    tens = [delay(ns.step(np.random.default_rng(seed), 210, 200, 0.10), 200) for seed in range(10)]
    assert all(d is not None and d <= 2 for d in tens), tens
    fives = [delay(ns.step(np.random.default_rng(seed), 210, 200, 0.05), 200) for seed in range(10)]
    assert all(d is not None and d <= 7 for d in fives), fives
    assert sum(d <= 3 for d in fives) >= 9, fives  # the benchmark: about 94% by the third night


def test_a_flagged_step_is_one_finding_with_its_levels():
    x = ns.step(np.random.default_rng(3), 300, 200, 0.10)
    [f] = listed(find_changes(x))
    assert (f.kind, f.index, f.nights_before, f.nights_after, f.span) == ("regression", 200, 200, 100, 1)
    assert f.before == pytest.approx(ns.LEVEL, rel=0.01) and f.change == pytest.approx(0.10, abs=0.01)


def test_one_new_night_is_unconfirmed_then_the_second_confirms():
    x = ns.step(np.random.default_rng(4), 202, 200, 0.15)
    assert [f.kind for f in listed(find_changes(x[:201]))] == []
    assert [f.kind for f in find_changes(x[:201])] == ["unconfirmed"]
    assert [f.kind for f in listed(find_changes(x))] == ["regression"]
    assert [f.kind for f in listed(find_changes(x, Settings(persist=3)))] == []


@pytest.mark.parametrize("size", [0.3, 1.0])
@pytest.mark.parametrize("at", [150, 299])
def test_a_one_night_spike_never_flags(size, at):
    for seed in range(3):
        x = ns.spike(np.random.default_rng(seed), 300, at, size)
        for end in range(at + 1, min(at + 15, 300) + 1):  # every night after it, as a nightly job sees them
            assert flagged(find_changes(x[:end])) == [], (seed, end)


@pytest.mark.parametrize(("nights", "size"), [(3, -0.10), (5, -0.05), (7, -0.20)])
def test_a_dip_that_returns_is_no_regression_nor_is_its_return(nights, size):
    for seed in range(3):
        x = ns.dip(np.random.default_rng(seed), 330, 300, nights, size)
        for end in range(300 + nights + 1, 331):
            assert flagged(find_changes(x[:end])) == [], (seed, end)
        found = find_changes(x)
        assert listed(found) == [], found
        if size <= -0.10:  # a shallow dip may not be told from the noise at all; a deep one is an excursion
            assert any(f.kind == "excursion" and abs(f.index - 300) <= 1 and abs(f.span - nights) <= 1
                       for f in found), found


def test_a_rise_that_returns_is_a_regression_while_it_lasts_then_an_excursion():
    x = ns.noise(np.random.default_rng(8), 330)
    x[300:305] *= 1.15
    assert [f.index for f in flagged(find_changes(x[:303]))] == [300]
    assert flagged(find_changes(x)) == []
    assert [f.kind for f in find_changes(x) if abs(f.index - 300) <= 1] == ["excursion"]


@pytest.mark.slow
def test_a_drift_is_one_finding():
    for seed in range(5):
        x = ns.drift(np.random.default_rng(seed), 365, 150, 100, 0.20)
        [f] = listed(find_changes(x))
        assert f.kind == "drift" and gates(f), f
        assert f.change == pytest.approx(0.20, abs=0.05) and 70 <= f.span <= 130 and abs(f.index - 150) <= 25
    x = ns.drift(np.random.default_rng(9), 365, 150, 100, -0.20)
    [f] = listed(find_changes(x))
    assert f.kind == "drift" and not gates(f)  # faster: not a regression


@pytest.mark.slow
def test_a_drift_and_a_later_step_the_same_way_are_two_findings():
    for seed in range(3):
        x = ns.drift(np.random.default_rng(seed), 240, 40, 50, 0.15)
        x[180:] *= 1.08
        found = listed(find_changes(x))
        assert [(f.kind, abs(f.index - at) <= 10) for f, at in zip(found, (40, 180), strict=True)] == \
            [("drift", True), ("regression", True)], found


def test_the_minimum_change_is_applied_inside_the_detector():
    """A well-measured 1% step below a 6% one: it does not cut the 6% step's level into pieces."""
    rng = np.random.default_rng(11)
    x = ns.LEVEL * np.exp(0.002 * rng.standard_normal(300))
    x[100:] *= 1.01
    x[200:] *= 1.06
    found = find_changes(x)
    [f] = listed(found)
    assert (f.kind, f.index, f.nights_before) == ("regression", 200, 200)
    assert [(g.kind, g.index) for g in found if g.kind == "small"] == [("small", 100)]
    finer = listed(find_changes(x, Settings(min_change=0.005)))
    assert [(g.kind, g.index, g.nights_before) for g in finer] == [("regression", 100, 100), ("regression", 200, 100)]


def test_higher_is_better_turns_a_fall_into_the_regression():
    x = ns.step(np.random.default_rng(12), 240, 200, -0.10)
    assert [f.kind for f in listed(find_changes(x))] == ["improvement"]
    [f] = listed(find_changes(x, Settings(higher_is_better=True)))
    assert f.kind == "regression" and gates(f, higher_is_better=True)


def test_the_noise_estimate_sees_autocorrelation():
    sigma, phi = noise_scale(np.log(ns.noise(np.random.default_rng(13), 2000, "iid")))
    assert sigma == pytest.approx(ns.SPREAD, rel=0.1) and phi < 0.1
    sigma, phi = noise_scale(np.log(ns.noise(np.random.default_rng(13), 2000, "ar1")))
    assert sigma == pytest.approx(ns.SPREAD, rel=0.15) and 0.35 < phi < 0.65
    # steps and spikes barely move it
    x = ns.step(np.random.default_rng(13), 2000, 1000, 0.3)
    x[500] *= 3
    assert noise_scale(np.log(x))[0] == pytest.approx(ns.SPREAD, rel=0.15)


def test_bad_series_and_settings_are_refused():
    with pytest.raises(AnalysisError, match="positive"):
        find_changes([1.0, 2.0, 0.0, 1.0, 1.0])
    with pytest.raises(AnalysisError, match="positive"):
        find_changes([1.0, float("nan"), 1.0, 1.0, 1.0])
    with pytest.raises(AnalysisError, match="persist"):
        Settings(persist=0)
    with pytest.raises(AnalysisError, match="minimum change"):
        Settings(min_change=-0.01)
    assert find_changes([5.0, 5.5, 6.0]) == []  # too short to say anything
    assert find_changes([5.0] * 50) == []  # no noise, no change
