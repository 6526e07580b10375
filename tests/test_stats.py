"""Tests for harness.analysis.stats: against numpy/scipy/pandas and hand-computed cases."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from harness.analysis.stats import (
    PERCENTILES,
    SUMMARY_COLUMNS,
    quantile,
    quantile_ci,
    quantile_ci_ranks,
    summarize,
    summarize_frame,
)

# --- the percentile definition --------------------------------------------------------


def test_quantile_is_type7_by_hand() -> None:
    x = np.array([4, 1, 3, 2], dtype=np.int64)  # sorted: 1 2 3 4, h = 3q
    assert quantile(x, 0.5) == 2.5
    assert quantile(x, 0.9) == pytest.approx(3.7)  # h = 2.7 -> 3 + 0.7 * (4 - 3)
    assert quantile(x, 0.25) == pytest.approx(1.75)
    assert quantile(x, 0.0) == 1.0
    assert quantile(x, 1.0) == 4.0


def test_quantile_matches_numpy_default_and_pandas() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(1_000, 5_000_000, size=997)
    for q in (0.1, 0.5, 0.9, 0.95, 0.99, 0.999):
        assert quantile(x, q) == np.quantile(x, q)
        # np.percentile(x, 99.9) divides by 100 first: equal up to the last bit of q.
        assert quantile(x, q) == pytest.approx(np.percentile(x, q * 100), rel=1e-14)
        assert quantile(x, q) == pytest.approx(pd.Series(x).quantile(q), rel=1e-15)
        assert quantile(x, q) == pytest.approx(float(np.quantile(x, q, method="linear")), rel=1e-15)


def test_quantile_empty_and_bad_q() -> None:
    assert math.isnan(quantile(np.array([], dtype=np.int64), 0.5))
    with pytest.raises(ValueError):
        quantile(np.arange(3), 1.5)


# --- confidence intervals ---------------------------------------------------------------


def test_median_ci_ranks_n100_are_the_textbook_order_statistics() -> None:
    # The classic table value (e.g. Campbell & Gardner, "Statistics with confidence"): for n = 100
    # the 95% CI of the median is (X(40), X(61)), 1-based: n/2 - 1.96 sqrt(n)/2 and 1 + n/2 + 1.96 sqrt(n)/2.
    assert quantile_ci_ranks(100, 0.5) == (39, 60)
    # Its exact coverage P(40 <= B <= 60), B ~ Binomial(100, 1/2), is 0.9648.
    coverage = sps.binom.cdf(60, 100, 0.5) - sps.binom.cdf(39, 100, 0.5)
    assert coverage == pytest.approx(0.9648, abs=1e-4)
    # Equal-tailed: each tail is at most 2.5%, and moving either bound inward would break that.
    assert sps.binom.cdf(39, 100, 0.5) <= 0.025 < sps.binom.cdf(40, 100, 0.5)
    assert sps.binom.sf(60, 100, 0.5) <= 0.025 < sps.binom.sf(59, 100, 0.5)


def test_quantile_ci_of_1_to_100_is_40_and_61() -> None:
    x = np.arange(1, 101, dtype=np.int64)[::-1].copy()  # order does not matter
    assert quantile_ci(x, 0.5) == (40.0, 61.0)


@pytest.mark.parametrize("n", [6, 10, 37, 100, 367, 368, 500, 1000, 5000])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99])
def test_quantile_ci_matches_scipy_quantile_test(n: int, q: float) -> None:
    rng = np.random.default_rng(n)
    x = rng.lognormal(13, 0.4, size=n).astype(np.int64)
    ci = sps.quantile_test(x, q=0, p=q).confidence_interval(0.95)
    ours = quantile_ci(x, q)
    if np.isnan(ci.low) or np.isnan(ci.high):
        # scipy returns the one bound it can; a one-sided half is not a 95% interval here.
        assert np.isnan(ours[0]) and np.isnan(ours[1])
    else:
        assert ours == (float(ci.low), float(ci.high))


def test_p99_ci_needs_368_samples() -> None:
    # The upper bound exists only once 0.99**n <= 0.025, i.e. n >= 368.
    assert quantile_ci_ranks(367, 0.99) is None
    assert quantile_ci_ranks(368, 0.99) == (359, 367)
    assert 0.99**367 > 0.025 >= 0.99**368


def test_median_ci_smallest_n() -> None:
    # 0.5**5 * 2 = 0.0625 > 0.05: five samples cannot give a 95% CI of the median; six can (min, max).
    assert quantile_ci_ranks(5, 0.5) is None
    assert quantile_ci_ranks(6, 0.5) == (0, 5)
    assert quantile_ci(np.array([], dtype=np.int64), 0.5) == pytest.approx((math.nan, math.nan), nan_ok=True)


@pytest.mark.slow
def test_quantile_ci_covers_the_true_median() -> None:
    # Distribution-free: the coverage holds for a skewed distribution too (exponential, median ln 2).
    rng = np.random.default_rng(11)
    reps, n = 2000, 60
    hits = 0
    for sample in rng.exponential(1.0, size=(reps, n)):
        lo, hi = quantile_ci(sample, 0.5)
        hits += lo <= math.log(2) <= hi
    ranks = quantile_ci_ranks(n, 0.5)
    assert ranks is not None
    exact = sps.binom.cdf(ranks[1], n, 0.5) - sps.binom.cdf(ranks[0], n, 0.5)
    assert exact >= 0.95
    assert hits / reps == pytest.approx(exact, abs=0.015)


def test_quantile_ci_bad_arguments() -> None:
    with pytest.raises(ValueError):
        quantile_ci_ranks(100, 1.0)
    with pytest.raises(ValueError):
        quantile_ci_ranks(100, 0.5, confidence=1.0)


# --- summarize ---------------------------------------------------------------------------


def test_summarize_by_hand() -> None:
    x = np.array([5, 1, 9, 3, 7, 2, 8, 4, 6], dtype=np.int64) * 1_000_000  # 1..9 ms
    s = summarize(x)
    assert list(s) == list(SUMMARY_COLUMNS)
    assert s["count"] == 9
    assert s["mean_ns"] == 5e6
    assert s["std_ns"] == pytest.approx(statistics.stdev(range(1, 10)) * 1e6)  # ddof=1: sqrt(7.5) ms
    assert s["min_ns"] == 1e6 and s["max_ns"] == 9e6
    assert s["p50_ns"] == 5e6
    assert s["p90_ns"] == pytest.approx(8.2e6)  # h = 7.2
    assert s["p99_ns"] == pytest.approx(8.92e6)  # h = 7.92
    assert s["iqr_ns"] == pytest.approx(4e6)  # p25 = 3 ms (h = 2), p75 = 7 ms (h = 6)
    assert s["mad_ns"] == 2e6  # |x - 5| = 4 3 2 1 0 1 2 3 4 -> median 2, unscaled
    assert s["cv"] == pytest.approx(math.sqrt(7.5) / 5)
    assert s["jitter_ns"] == pytest.approx(3.92e6)
    assert s["throughput_per_s"] == pytest.approx(200.0)  # 1e9 / 5 ms
    # 9 samples: a 95% CI of the median exists (ranks 2..8 1-based), of p99 it does not.
    assert (s["p50_ci_low_ns"], s["p50_ci_high_ns"]) == (2e6, 8e6)
    assert math.isnan(s["p99_ci_low_ns"]) and math.isnan(s["p99_ci_high_ns"])


def test_summarize_matches_numpy_scipy() -> None:
    rng = np.random.default_rng(5)
    x = rng.gamma(4.0, 250_000.0, size=10_000).astype(np.int64)
    s = summarize(x)
    assert s["mean_ns"] == pytest.approx(x.mean(), rel=1e-12)
    assert s["std_ns"] == pytest.approx(x.std(ddof=1), rel=1e-12)
    for key, q in PERCENTILES:
        assert s[key] == pytest.approx(np.percentile(x, q * 100), rel=1e-12)
    assert s["iqr_ns"] == pytest.approx(sps.iqr(x), rel=1e-12)
    assert s["mad_ns"] == pytest.approx(sps.median_abs_deviation(x, scale=1.0), rel=1e-12)
    assert s["cv"] == pytest.approx(sps.variation(x, ddof=1), rel=1e-12)
    for prefix, q in (("p50", 0.5), ("p99", 0.99)):
        ci = sps.quantile_test(x, q=0, p=q).confidence_interval()
        assert (s[f"{prefix}_ci_low_ns"], s[f"{prefix}_ci_high_ns"]) == (ci.low, ci.high)
        assert s[f"{prefix}_ci_low_ns"] <= s[f"{prefix}_ns"] <= s[f"{prefix}_ci_high_ns"]


def test_summarize_throughput_from_duration() -> None:
    x = np.full(50, 10_000_000, dtype=np.int64)  # 50 x 10 ms
    assert summarize(x)["throughput_per_s"] == pytest.approx(100.0)
    # 50 invokes in a 1 s timed phase (gaps between invokes count): 50/s, not 100/s.
    assert summarize(x, duration_ns=1_000_000_000)["throughput_per_s"] == pytest.approx(50.0)
    with pytest.raises(ValueError):
        summarize(x, duration_ns=0)


def test_summarize_empty_and_single() -> None:
    empty = summarize(np.array([], dtype=np.int64))
    assert list(empty) == list(SUMMARY_COLUMNS)
    assert empty["count"] == 0
    assert all(math.isnan(v) for k, v in empty.items() if k != "count")
    assert summarize(np.array([], dtype=np.int64), duration_ns=10**9)["count"] == 0

    one = summarize(np.array([7_000], dtype=np.int64))
    assert one["count"] == 1 and one["p50_ns"] == 7_000 and one["mad_ns"] == 0 and one["iqr_ns"] == 0
    assert math.isnan(one["std_ns"]) and math.isnan(one["cv"])
    assert math.isnan(one["p50_ci_low_ns"])


def test_summarize_all_zero_latencies_has_no_rate() -> None:
    s = summarize(np.zeros(10, dtype=np.int64))
    assert s["mean_ns"] == 0 and math.isnan(s["throughput_per_s"]) and math.isnan(s["cv"])


def test_summarize_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        summarize(np.ones((2, 2), dtype=np.int64))
    with pytest.raises(ValueError):
        summarize(np.array([1.0, float("nan")]))


# --- summarize_frame -------------------------------------------------------------------------


def _frame(rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    parts = []
    timed: dict[str, np.ndarray] = {}
    sizes = {"a": 5_000, "b": 1, "c": 2, "d": 700, "e": 0, "f": 37}
    for run_id, n in sizes.items():
        lat = rng.lognormal(12 + rng.random(), 0.3, size=n).astype(np.int64)
        timed[run_id] = lat
        warm = rng.integers(10**9, 2 * 10**9, size=20)  # huge: must not leak into the summary
        parts.append(pd.DataFrame({"run_id": run_id, "latency_ns": warm, "phase": "warmup"}))
        parts.append(pd.DataFrame({"run_id": run_id, "latency_ns": lat, "phase": "timed"}))
    df = pd.concat(parts, ignore_index=True)
    df = df.sample(frac=1.0, random_state=1).reset_index(drop=True)  # rows of runs interleaved
    return df, timed


def _assert_same(frame_row: pd.Series, single: dict[str, float]) -> None:
    got = frame_row[list(SUMMARY_COLUMNS)].to_numpy(dtype=float)
    want = np.array([single[k] for k in SUMMARY_COLUMNS], dtype=float)
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)


def test_summarize_frame_equals_summarize() -> None:
    df, timed = _frame(np.random.default_rng(8))
    durations = {"a": 2_000_000_000, "b": None, "d": float("nan")}
    out = summarize_frame(df, durations_ns=durations)
    assert list(out.columns) == list(SUMMARY_COLUMNS)
    assert list(out.index) == ["a", "b", "c", "d", "e", "f"]
    assert out.index.name == "run_id"
    for run_id, lat in timed.items():
        _assert_same(out.loc[run_id], summarize(lat, duration_ns=2_000_000_000 if run_id == "a" else None))
    assert out.loc["e", "count"] == 0 and math.isnan(out.loc["e", "p50_ns"])  # only warm-up rows
    assert out["max_ns"].max() < 10**9  # warm-up rows left out


def test_summarize_frame_float_latencies_and_no_phase_column() -> None:
    rng = np.random.default_rng(9)
    df = pd.DataFrame(
        {
            "job": rng.integers(0, 4, size=3_000),
            "latency_ns": rng.normal(1e6, 1e4, size=3_000) + 0.37,  # not integers: the lexsort path
        }
    )
    out = summarize_frame(df, by="job")
    assert out.index.name == "job"
    for job, group in df.groupby("job"):
        _assert_same(out.loc[job], summarize(group["latency_ns"].to_numpy()))


def test_summarize_frame_huge_range_falls_back_safely() -> None:
    # A span too wide for the combined int64 sort key must still sort correctly.
    lat = np.array([1, 2**61, 5, 2**60, 3, 7, 2**62, 11], dtype=np.int64)
    df = pd.DataFrame({"run_id": ["x", "y"] * 4, "latency_ns": lat, "phase": "timed"})
    out = summarize_frame(df)
    for run_id in ("x", "y"):
        _assert_same(out.loc[run_id], summarize(lat[df["run_id"].to_numpy() == run_id]))


def test_summarize_frame_missing_column() -> None:
    with pytest.raises(ValueError, match="latency_ns"):
        summarize_frame(pd.DataFrame({"run_id": ["a"], "lat": [1]}))


def test_summarize_frame_empty_frame() -> None:
    out = summarize_frame(
        pd.DataFrame({"run_id": pd.Series([], dtype=str), "latency_ns": pd.Series([], dtype="int64")})
    )
    assert len(out) == 0 and list(out.columns) == list(SUMMARY_COLUMNS)


def test_summarize_frame_durations_for_every_run() -> None:
    # A mapping that covers every run (the store's case) once hit a read-only array under pandas 3.
    df = pd.DataFrame({"run_id": ["a", "a", "b"], "latency_ns": [1_000, 3_000, 2_000]})
    out = summarize_frame(df, durations_ns={"a": 10**9, "b": 0})
    assert out.loc["a", "throughput_per_s"] == pytest.approx(2.0)  # 2 invokes in 1 s
    assert out.loc["b", "throughput_per_s"] == pytest.approx(500_000.0)  # duration 0 is unknown: 1e9 / mean
    out = summarize_frame(df, durations_ns=pd.Series({"a": 4e9, "b": 1e9}))
    assert out["throughput_per_s"].tolist() == pytest.approx([0.5, 1.0])
