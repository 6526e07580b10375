"""Tests for harness.analysis.stability: each check triggering and not triggering."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import harness.analysis.stability as stability
from harness.analysis.stability import (
    LOADGEN_MIN_SAMPLES,
    StabilityWarning,
    Verdict,
    assess,
    min_samples_for_percentile,
)
from harness.errors import StoreError

MS = 1_000_000

#: Settings of a well-configured run: pinned, performance governor, one thread, calibrated warm-up.
TUNED = {"warmup": {"until_stable": True}, "affinity": [4, 5], "governor": "performance", "threads": 1}


def steady(n: int = 2_000, *, median_ns: float = 10 * MS, sd: float = 0.01, seed: int = 0) -> np.ndarray:
    """A quiet run: normal around the median with a relative sd of ``sd``."""
    rng = np.random.default_rng(seed)
    return np.rint(rng.normal(median_ns, sd * median_ns, size=n)).astype(np.int64)


def codes(v: Verdict) -> list[str]:
    return [w.code for w in v.warnings]


def warning(v: Verdict, code: str) -> StabilityWarning:
    (w,) = [w for w in v.warnings if w.code == code]
    return w


# --- a clean run ----------------------------------------------------------------------------


def test_steady_run_is_valid_without_warnings() -> None:
    v = assess(steady(), first_inference_ns=15 * MS, settings=TUNED)
    assert v.valid and v.reasons == [] and v.warnings == []


def test_every_check_reports_in_a_fixed_order() -> None:
    """A run that fails every check: reasons then warnings, each in the order the checks are listed."""
    rng = np.random.default_rng(0)
    n = 400
    x = np.rint(rng.normal(10 * MS, 0.1 * MS, n) * np.linspace(1.0, 1.3, n)).astype(np.int64)
    x[rng.choice(n, 20, replace=False)] *= 4
    x[5] = 0
    v = assess(x, first_inference_ns=500 * MS, requested_percentiles=(99, 50, 95), settings={"warmup": 10})
    assert not v.valid
    assert [r.split(":")[0] for r in v.reasons] == [
        "1 of 400 timed samples are zero or negative",
        "400 timed samples are too few for p99",
    ]
    assert codes(v) == ["high_cv", "slow_first_run", "outliers", "drift"]


def test_no_warning_class_shadows_the_builtin() -> None:
    assert "Warning" not in stability.__all__
    assert "Warning" not in vars(stability)
    with pytest.raises(dataclasses.FrozenInstanceError):
        StabilityWarning("a", "b", "c").code = "x"  # type: ignore[misc]


# --- INVALID -------------------------------------------------------------------------------------


def test_empty_is_invalid() -> None:
    v = assess(np.array([], dtype=np.int64), first_inference_ns=None)
    assert not v.valid
    assert "no timed samples" in v.reasons[0]


def test_zero_samples_are_invalid() -> None:
    x = steady(1_000)
    x[[10, 20, 30]] = 0
    v = assess(x, requested_percentiles=(50,))
    assert not v.valid
    assert len(v.reasons) == 1 and v.reasons[0].startswith("3 of 1000 timed samples are zero or negative")


@pytest.mark.parametrize(
    ("n", "too_few"),
    [
        (9, ["p50", "p90", "p95", "p99"]),
        (63, ["p90", "p95", "p99"]),
        (64, ["p95", "p99"]),
        (129, ["p95", "p99"]),
        (130, ["p99"]),
        (661, ["p99"]),
        (662, []),
    ],
)
def test_too_few_samples_for_the_percentiles_asked(n: int, too_few: list[str]) -> None:
    v = assess(steady(n), requested_percentiles=(50, 90, 95, 99), settings=TUNED)
    assert v.valid == (not too_few)
    flagged = [r.split(" for ")[1].split(":")[0] for r in v.reasons]
    assert flagged == too_few
    for reason in v.reasons:
        assert f"{n} timed samples are too few" in reason


def test_too_few_is_only_about_the_percentiles_asked() -> None:
    assert assess(steady(100), requested_percentiles=(50, 90)).valid
    v = assess(steady(100), requested_percentiles=(99,))
    assert not v.valid and "at least 662 (MLPerf LoadGen's minimum)" in v.reasons[0]


def test_too_few_names_what_ended_the_timed_phase() -> None:
    """The remedy names the limit that stopped the run: timed.max_s (with the time the runs need at this run's
    mean), timed.max_count, or, where the count was reached, timed.count (issue 14, item 11)."""
    timed = {"count": 5000, "max_s": 4.0}
    by_time = assess(steady(400), requested_percentiles=(99,), settings={**TUNED, "timed": timed,
                                                                         "timed_stop": "max_time"})
    (reason,) = by_time.reasons
    assert "the time limit ended the timed phase (timed.max_s = 4 s): raise timed.max_s to 8 s or more" in reason
    assert "timed.count" not in reason
    by_cap = assess(steady(400), requested_percentiles=(99,), settings={**TUNED, "timed_stop": "max_count"})
    assert "raise timed.max_count to 662 or more" in by_cap.reasons[0]
    by_count = assess(steady(400), requested_percentiles=(99,), settings={**TUNED, "timed_stop": "target"})
    assert "raise timed.count to 662 or more" in by_count.reasons[0]


def test_a_run_cut_short_by_a_limit_warns_with_the_limit_to_raise() -> None:
    settings = {**TUNED, "timed": {"count": 100_000, "max_s": 30}, "timed_stop": "max_time"}
    v = assess(steady(2_000), settings=settings)
    assert v.valid and codes(v) == ["cut_short"]
    w = warning(v, "cut_short")
    assert w.message == "timed.max_s (30 s) ended the timed phase after 2000 of the 100000 runs asked for"
    assert w.remedy.startswith("raise timed.max_s to 1100 s or more (100000 runs of 10 ms)")
    capped = assess(steady(2_000), settings={**TUNED, "timed": {"count": 5_000}, "timed_stop": "max_count"})
    assert warning(capped, "cut_short").remedy == "raise timed.max_count to 5000, or lower timed.count"
    # the count reached, or no limit named: nothing to say
    assert assess(steady(2_000), settings={**TUNED, "timed": {"count": 2_000}, "timed_stop": "max_time"}).warnings == []
    assert assess(steady(2_000), settings={**TUNED, "timed": {"count": 5_000}, "timed_stop": "target"}).warnings == []


def test_min_samples_loadgen_floors_and_the_rule_they_follow() -> None:
    assert LOADGEN_MIN_SAMPLES == {90.0: 64, 95.0: 130, 99.0: 662}
    for p, n in LOADGEN_MIN_SAMPLES.items():
        assert min_samples_for_percentile(p) == n
        # The rule used for other percentiles reproduces LoadGen's three floors exactly.
        q = p / 100
        assert q ** (n - 1) > 0.0013 >= q**n
    assert min_samples_for_percentile(50) == 10  # 0.5**9 > 0.0013 >= 0.5**10
    assert min_samples_for_percentile(99.9) == 6643
    assert min_samples_for_percentile(10) == min_samples_for_percentile(90)  # symmetric tails
    with pytest.raises(ValueError):
        min_samples_for_percentile(100)


# --- high CV -------------------------------------------------------------------------------------


def test_high_cv_triggers_with_settings_aware_remedy() -> None:
    x = steady(sd=0.25)
    v = assess(x, settings={"warmup": {"count": 10}, "threads": 4})
    assert v.valid  # a warning, not a reason
    w = warning(v, "high_cv")
    cv = x.std(ddof=1) / x.mean()
    assert 0.2 < cv < 0.3
    assert w.message.startswith(f"the standard deviation is {cv:.1%} of the mean")
    assert "pin the agent" in w.remedy
    assert "fewer threads than 4" in w.remedy
    assert "governor" in w.remedy


def test_high_cv_remedy_skips_what_was_already_done() -> None:
    v = assess(steady(sd=0.25), settings=TUNED)
    remedy = warning(v, "high_cv").remedy
    assert "pin the agent" not in remedy
    assert "fewer threads" not in remedy
    assert "governor" not in remedy
    v = assess(steady(sd=0.25), settings={**TUNED, "governor": "powersave"})
    assert "set the CPU governor to 'performance' (it was 'powersave')" in warning(v, "high_cv").remedy


def test_cv_below_threshold_does_not_warn() -> None:
    assert "high_cv" not in codes(assess(steady(sd=0.08), settings=TUNED))
    # ... and the threshold is a parameter.
    assert "high_cv" in codes(assess(steady(sd=0.08), settings=TUNED, cv_threshold=0.05))


# --- slow first run ---------------------------------------------------------------------------


def test_slow_first_run_triggers_and_suggests_stable_warmup() -> None:
    v = assess(steady(), first_inference_ns=200 * MS, settings={"warmup": {"count": 10}})
    w = warning(v, "slow_first_run")
    assert "20x the median" in w.message
    assert 'warmup = "stable"' in w.remedy and "10 iterations" in w.remedy


def test_slow_first_run_with_stable_warmup_needs_no_action() -> None:
    v = assess(steady(), first_inference_ns=200 * MS, settings=TUNED)
    assert "no action needed" in warning(v, "slow_first_run").remedy


def test_first_run_not_slow_or_unknown() -> None:
    assert "slow_first_run" not in codes(assess(steady(), first_inference_ns=90 * MS, settings=TUNED))
    assert "slow_first_run" not in codes(assess(steady(), first_inference_ns=None, settings=TUNED))


# --- outliers --------------------------------------------------------------------------------------


def test_outliers_trigger_with_the_count() -> None:
    x = steady(2_000)
    x[np.arange(100, 2_000, 50)] = 100 * MS  # 38 slow samples spread over the run (1.9%)
    v = assess(x, settings=TUNED)
    w = warning(v, "outliers")
    assert w.message.startswith("38 of 2000 samples (1.9%) are outliers (38 slow, 0 fast)")
    assert "quiet device" in w.remedy


def test_outliers_at_the_start_point_at_the_warmup() -> None:
    x = steady(2_000)
    x[:40] = 60 * MS  # still warming up when timing began
    v = assess(x, settings={"warmup": {"count": 5}})
    assert "first 10% of the run" in warning(v, "outliers").remedy
    assert 'warmup = "stable"' in warning(v, "outliers").remedy


def test_few_outliers_do_not_warn() -> None:
    x = steady(2_000)
    x[np.arange(100, 2_000, 200)] = 100 * MS  # 10 samples: 0.5%, under the 1% threshold
    assert "outliers" not in codes(assess(x, settings=TUNED))


def test_coarse_clock_values_are_not_outliers() -> None:
    # A 1 us clock on a ~1 ms model: the middle half is one value (IQR = 0); one tick off is not an outlier.
    rng = np.random.default_rng(2)
    x = (1_000_000 + 1_000 * rng.choice([-1, 0, 0, 0, 0, 0, 0, 1], size=2_000)).astype(np.int64)
    v = assess(x, settings=TUNED)
    assert "outliers" not in codes(v)
    assert v.valid


# --- drift -----------------------------------------------------------------------------------------


def test_drift_up_is_throttling() -> None:
    x = np.concatenate([steady(1_000, seed=1), steady(1_000, median_ns=12 * MS, seed=2)])
    w = warning(assess(x, settings=TUNED), "drift")
    assert w.message.startswith("latency drifted by +20.")
    assert "thermal throttling or background load" in w.message
    assert "throttle flags" in w.remedy


def test_drift_down_is_a_short_warmup() -> None:
    x = np.concatenate([steady(300, median_ns=13 * MS, seed=1), steady(1_700, seed=2)])
    w = warning(assess(x, settings={"warmup": 0}), "drift")
    assert w.message.startswith("latency drifted by -2") and "warming up" in w.message
    assert "there was no warm-up" in w.remedy


def test_noise_is_not_drift() -> None:
    # Very noisy but stationary: window medians differ by chance, the CI test keeps quiet.
    for seed in range(20):
        rng = np.random.default_rng(seed)
        x = rng.lognormal(np.log(10 * MS), 0.4, size=1_000).astype(np.int64)
        assert "drift" not in codes(assess(x, settings=TUNED)), seed


def test_small_drift_or_short_run_is_not_checked() -> None:
    x = np.concatenate([steady(1_000, seed=1), steady(1_000, median_ns=10.3 * MS, seed=2)])  # +3%
    assert "drift" not in codes(assess(x, settings=TUNED))
    x = np.concatenate([steady(40, seed=1), steady(40, median_ns=20 * MS, seed=2)])  # 8 per window
    assert "drift" not in codes(assess(x, requested_percentiles=(50,), settings=TUNED))


# --- storing the verdict -------------------------------------------------------------------


def test_verdict_round_trips_through_json() -> None:
    x = steady(100, sd=0.3)
    v = assess(x, first_inference_ns=1_000 * MS, settings={"warmup": 10})
    assert not v.valid and v.warnings
    d = json.loads(json.dumps(v.to_dict()))
    assert d["version"] == 1
    assert set(d) == {"version", "valid", "reasons", "warnings"}
    assert set(d["warnings"][0]) == {"code", "message", "remedy"}
    assert Verdict.from_dict(d) == v


def test_verdict_from_newer_or_broken_dict_is_refused() -> None:
    with pytest.raises(StoreError, match="version 2"):
        Verdict.from_dict({"version": 2, "valid": True})
    with pytest.raises(StoreError, match="valid"):
        Verdict.from_dict({"version": 1, "reasons": []})
    with pytest.raises(StoreError):
        Verdict.from_dict({"valid": True, "warnings": [{"message": "no code"}]})
    assert Verdict.from_dict({"valid": True}) == Verdict(valid=True)


def test_assess_rejects_bad_shape() -> None:
    with pytest.raises(ValueError):
        assess(np.ones((3, 3)))


def test_nan_samples_are_invalid() -> None:
    v = assess(np.array([1.0, math.nan, 3.0]))
    assert not v.valid and "NaN" in v.reasons[0]
