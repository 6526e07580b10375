"""hilbench history: the online test of the newest nights (changepoints step 8) and what ``--fail`` fails
on (the current state: :func:`harness.analysis.changepoints.failing`), on seeded series
(tests/support/nightly_series.py); benchmarks/history_alarms.py measures the rates."""

from __future__ import annotations

import numpy as np
import pytest
from support import nightly_series as ns

from harness.analysis.changepoints import Settings, failing, find_changes, gates
from harness.cli import main
from harness.cli.exits import EXIT_OK, EXIT_REGRESSED
from harness.errors import AnalysisError

pytest.importorskip("ruptures")


def fails(x: np.ndarray, settings: Settings | None = None):
    return failing(find_changes(x, settings), len(x), settings)


def test_three_nights_of_a_5pct_step_fail_and_two_of_a_10pct_step():
    for seed in range(5):
        rng = np.random.default_rng(40 + seed)
        x = ns.step(rng, 203, 200, 0.05)
        f = fails(x)
        assert f is not None and f.kind == "regression" and abs(f.index - 200) <= 1, (seed, find_changes(x))
        y = ns.step(rng, 202, 200, 0.10)
        assert fails(y) is not None, seed


@pytest.mark.parametrize("kind", ns.NOISE)
def test_noise_does_not_fail_the_gate(kind):
    for seed in range(4):
        assert fails(ns.noise(np.random.default_rng(60 + seed), 365, kind)) is None, (kind, seed)


@pytest.mark.parametrize("at", [0, 1, 2])  # the spike on the last, second-last, third-last night
def test_a_spike_among_the_newest_nights_does_not_fail(at):
    for seed in range(5):
        x = ns.spike(np.random.default_rng(70 + seed), 300, 299 - at, 0.3)
        assert fails(x) is None, (seed, find_changes(x))


def test_a_regression_that_recovered_no_longer_fails():
    wide = Settings(fail_window=60)
    x = ns.step(np.random.default_rng(80), 260, 200, 0.10)
    assert fails(x[:230], wide) is not None
    x[230:] /= 1.10  # fixed on night 230 (within 14 nights it would be an excursion, no regression at all)
    found = find_changes(x, wide)
    assert [f.kind for f in found if gates(f)] == ["regression"]  # still listed, as history
    assert fails(x, wide) is None


def test_an_older_regression_is_the_accepted_baseline_after_the_window():
    x = ns.step(np.random.default_rng(81), 230, 200, 0.10)
    assert fails(x[:214]) is not None  # 14 nights on the new level: still failing
    assert fails(x[:215]) is None  # 15 nights: the window has passed
    assert fails(x[:215], Settings(fail_window=30)) is not None
    x[220:] *= 1.08  # a second regression on top: fails again
    assert fails(x[:224]).index in (219, 220, 221)


def test_a_drift_the_worse_way_fails_while_it_is_recent():
    x = ns.drift(np.random.default_rng(82), 300, 200, 60, 0.15)
    f = fails(x[:262])
    assert f is not None and f.kind == "drift"
    assert fails(x) is None  # ended 40 nights ago


def test_bad_gate_settings_are_refused():
    with pytest.raises(AnalysisError, match="fresh_alpha"):
        Settings(fresh_alpha=0.0)
    with pytest.raises(AnalysisError, match="fail window"):
        Settings(fail_window=0)


def test_cli_fail_judges_the_newest_nights(tmp_path, capsys):
    rng = np.random.default_rng(83)
    recovered = ns.step(rng, 120, 60, 0.10)
    recovered[90:] /= 1.10
    fresh = ns.step(rng, 120, 117, 0.10)
    lines = ["night,config,value"]
    lines += [f"{i},recovered,{v:.6f}" for i, v in enumerate(recovered)]
    lines += [f"{i},fresh,{v:.6f}" for i, v in enumerate(fresh)]
    csv = tmp_path / "n.csv"
    csv.write_text("\n".join(lines) + "\n")
    assert main(["history", "--csv", str(csv), "--fail"]) == EXIT_REGRESSED
    out = capsys.readouterr().out
    assert "2 regressions (1 failing now" in out
    assert main(["history", "--csv", str(csv), "--fail", "--fail-window", "2"]) == EXIT_OK  # 3 nights old
