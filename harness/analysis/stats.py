"""Summary statistics of one run's latencies: pure functions on the host.

Every number here is derived from the raw per-iteration latencies the agent kept
(integer nanoseconds), never from anything the device summarised itself.

Definitions used everywhere in hilbench (``docs/methodology.md`` explains them):

* **Percentile / quantile**: numpy's default, linear interpolation between the
  two nearest order statistics (Hyndman & Fan 1996, definition 7; the default of
  R, Excel's ``PERCENTILE.INC`` and pandas). For a sorted sample ``x[0..n-1]`` the
  ``q`` quantile sits at the virtual index ``h = (n - 1) * q``:
  ``x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])``.
  Percentiles ``p`` are quantiles ``q = p / 100``.
* **std**: the sample standard deviation (``ddof=1``); NaN for fewer than 2 samples.
* **MAD**: the median absolute deviation from the median, *unscaled* (not
  multiplied by 1.4826): ``median(|x - median(x)|)``.
* **IQR**: ``p75 - p25``. **cv**: ``std / mean``. **jitter**: ``p99 - p50``.
* **throughput**: ``count / duration_s`` when the wall time of the timed phase is
  known, else ``1e9 / mean_ns`` (one stream, back to back).
* **Confidence interval of a quantile** (:func:`quantile_ci`): distribution-free,
  from binomial order statistics, equal-tailed, with the same ranks as
  ``scipy.stats.quantile_test(x, p=q).confidence_interval()``. Its coverage is at
  least the confidence asked for, whatever the shape of the distribution.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats as _sps

__all__ = [
    "SUMMARY_COLUMNS",
    "PERCENTILES",
    "quantile",
    "quantile_ci",
    "quantile_ci_ranks",
    "summarize",
    "summarize_frame",
    "summarize_fast",
]

#: The quantiles every summary reports, as ``(key, q)`` with ``q = percent / 100``.
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50_ns", 0.5),
    ("p90_ns", 0.9),
    ("p95_ns", 0.95),
    ("p99_ns", 0.99),
    ("p999_ns", 0.999),
)

#: The keys of :func:`summarize`'s result, in report order (also the columns of
#: :func:`summarize_frame`).
SUMMARY_COLUMNS: tuple[str, ...] = (
    "count",
    "mean_ns",
    "std_ns",
    "min_ns",
    "p50_ns",
    "p90_ns",
    "p95_ns",
    "p99_ns",
    "p999_ns",
    "max_ns",
    "iqr_ns",
    "mad_ns",
    "cv",
    "jitter_ns",
    "throughput_per_s",
    "p50_ci_low_ns",
    "p50_ci_high_ns",
    "p99_ci_low_ns",
    "p99_ci_high_ns",
)

_CI_CONFIDENCE = 0.95
_NAN = float("nan")


def _as_latencies(latency_ns: npt.ArrayLike) -> npt.NDArray[Any]:
    """The latencies as a 1-D numeric array; ValueError when not 1-D, not numbers, or not finite."""
    arr = np.asarray(latency_ns)
    if arr.ndim != 1:
        raise ValueError(f"latencies must be a 1-D array, got shape {arr.shape}")
    if arr.size and not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"latencies must be numbers, got dtype {arr.dtype}")
    if arr.size and np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValueError("latencies contain NaN or infinity")
    return arr


def quantile(latency_ns: npt.ArrayLike, q: float) -> float:
    """The ``q`` quantile (0 <= q <= 1) by the project's one definition (numpy linear, H&F type 7).

    NaN for an empty sample.
    """
    arr = _as_latencies(latency_ns)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    if arr.size == 0:
        return _NAN
    return float(np.quantile(arr, q))


def quantile_ci_ranks(n: int, q: float, confidence: float = _CI_CONFIDENCE) -> tuple[int, int] | None:
    """0-based ranks ``(lo, hi)`` into the sorted sample that bound the ``q`` quantile.

    ``P(x[lo] <= true quantile <= x[hi]) >= confidence`` for any continuous
    distribution. The ranks are chosen equal-tailed from ``Binomial(n, q)``:
    ``lo = binom.ppf(a/2) - 1`` and ``hi = binom.isf(a/2)`` with ``a = 1 - confidence``,
    exactly as ``scipy.stats.quantile_test(...).confidence_interval()`` does.
    ``None`` when ``n`` is too small for both bounds to exist.
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile must be strictly between 0 and 1, got {q}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    if n <= 0:
        return None
    tail = (1.0 - confidence) / 2.0
    dist = _sps.binom(n, q)
    lo = int(dist.ppf(tail)) - 1
    hi = int(dist.isf(tail))
    if lo < 0 or hi >= n:
        return None
    return lo, hi


def quantile_ci(latency_ns: npt.ArrayLike, q: float, confidence: float = _CI_CONFIDENCE) -> tuple[float, float]:
    """Distribution-free confidence interval of the ``q`` quantile (0 < q < 1).

    The bounds are two order statistics of the sample, ranked by the binomial
    distribution (see :func:`quantile_ci_ranks`); no assumption about the shape
    of the latency distribution is made. ``(nan, nan)`` when the sample is too
    small to reach ``confidence`` on both sides (unlike scipy, which returns the
    one bound it can: half an interval is not a confidence interval).
    """
    arr = _as_latencies(latency_ns)
    ranks = quantile_ci_ranks(int(arr.size), q, confidence)
    if ranks is None:
        return _NAN, _NAN
    lo, hi = ranks
    part = np.partition(arr, (lo, hi)) if lo != hi else np.partition(arr, lo)
    return float(part[lo]), float(part[hi])


def _empty_summary() -> dict[str, float]:
    """The summary of an empty sample: count 0, NaN everywhere else."""
    out = dict.fromkeys(SUMMARY_COLUMNS, _NAN)
    out["count"] = 0.0
    return out


def _throughput(count: int, mean_ns: float, duration_ns: int | float | None) -> float:
    """Inferences per second: ``count / duration`` when known, else ``1e9 / mean``."""
    if duration_ns is not None:
        return count / (duration_ns / 1e9)
    # All-zero latencies (a clock too coarse for the model) have no meaningful rate.
    return 1e9 / mean_ns if mean_ns > 0 else _NAN


def _check_duration(duration_ns: int | float | None) -> None:
    """ValueError unless ``duration_ns`` is None or positive."""
    if duration_ns is not None and not (duration_ns > 0):
        raise ValueError(f"duration_ns must be > 0, got {duration_ns}")


def summarize(latency_ns: npt.ArrayLike, *, duration_ns: int | None = None) -> dict[str, float]:
    """Summarise one run's timed latencies (ns) into :data:`SUMMARY_COLUMNS`.

    ``duration_ns`` is the wall time of the whole timed phase; when given,
    throughput is ``count / duration`` (it then includes any gaps between
    invokes), otherwise ``1e9 / mean_ns``. An empty sample gives ``count == 0``
    and NaN everywhere else. CIs that the sample is too small for are NaN.
    """
    _check_duration(duration_ns)
    arr = _as_latencies(latency_ns)
    n = int(arr.size)
    if n == 0:
        return _empty_summary()
    x = np.sort(arr.astype(np.float64, copy=False))
    qs = np.quantile(x, [0.25, 0.75] + [q for _, q in PERCENTILES])
    p25, p75, p50, p90, p95, p99, p999 = (float(v) for v in qs)
    mean = float(np.mean(x))
    std = float(np.std(x, ddof=1)) if n > 1 else _NAN
    mad = float(np.median(np.abs(x - p50)))
    out: dict[str, float] = {
        "count": float(n),
        "mean_ns": mean,
        "std_ns": std,
        "min_ns": float(x[0]),
        "p50_ns": p50,
        "p90_ns": p90,
        "p95_ns": p95,
        "p99_ns": p99,
        "p999_ns": p999,
        "max_ns": float(x[-1]),
        "iqr_ns": p75 - p25,
        "mad_ns": mad,
        "cv": std / mean if mean != 0 else _NAN,
        "jitter_ns": p99 - p50,
        "throughput_per_s": _throughput(n, mean, duration_ns),
    }
    for prefix, q in (("p50", 0.5), ("p99", 0.99)):
        ranks = quantile_ci_ranks(n, q)
        low, high = (float(x[ranks[0]]), float(x[ranks[1]])) if ranks else (_NAN, _NAN)
        out[f"{prefix}_ci_low_ns"] = low
        out[f"{prefix}_ci_high_ns"] = high
    return {k: out[k] for k in SUMMARY_COLUMNS}


# --- vectorised per-run summaries ---------------------------------------------------------


def _group_quantile(
    x: npt.NDArray[np.float64], starts: npt.NDArray[np.int64], counts: npt.NDArray[np.int64], q: float
) -> npt.NDArray[np.float64]:
    """Type-7 quantile of every group of a group-sorted array (same arithmetic as numpy's)."""
    out = np.full(counts.shape, np.nan)
    ok = counts > 0
    n = counts[ok]
    virtual = (n - 1) * np.float64(q)
    prev = np.floor(virtual)
    gamma = virtual - prev
    lo = prev.astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    a = x[starts[ok] + lo]
    b = x[starts[ok] + hi]
    diff = b - a
    # numpy's _lerp: interpolate from the nearer end for accuracy.
    res = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    out[ok] = res
    return out


def _group_ci(
    x: npt.NDArray[np.float64],
    starts: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
    q: float,
    confidence: float = _CI_CONFIDENCE,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Distribution-free CI bounds of the ``q`` quantile of every group (as :func:`quantile_ci_ranks`); NaN
    where a group is too small."""
    low = np.full(counts.shape, np.nan)
    high = np.full(counts.shape, np.nan)
    ok = counts > 0
    if not ok.any():
        return low, high
    tail = (1.0 - confidence) / 2.0
    n = counts[ok]
    dist = _sps.binom(n, q)
    lo = np.asarray(dist.ppf(tail)).astype(np.int64) - 1
    hi = np.asarray(dist.isf(tail)).astype(np.int64)
    valid = (lo >= 0) & (hi < n)
    idx = np.flatnonzero(ok)[valid]
    low[idx] = x[starts[idx] + lo[valid]]
    high[idx] = x[starts[idx] + hi[valid]]
    return low, high


def _sort_within_groups(
    values: npt.NDArray[Any], codes: npt.NDArray[np.int64], n_groups: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Sort by (group code, value); returns the values as float64 and their codes.

    Integer values take a fast path: one ``np.sort`` of a combined int64 key
    ``code * span + (value - min)`` instead of a two-key ``lexsort`` (3-4x faster).
    """
    if values.size and np.issubdtype(values.dtype, np.integer):
        vmin, vmax = int(values.min()), int(values.max())
        span = vmax - vmin + 1
        if n_groups * span < 2**62:
            key = codes * np.int64(span) + (values.astype(np.int64) - np.int64(vmin))
            key.sort()
            c, v = np.divmod(key, np.int64(span))
            return (v + vmin).astype(np.float64), c
    order = np.lexsort((values, codes))
    return values[order].astype(np.float64), codes[order]


@dataclass(frozen=True)
class _Groups:
    """Latencies sorted by (group, value): ``x`` the values, ``codes`` their group, and per group its
    ``counts`` and the ``starts`` of its stretch of ``x``."""

    x: npt.NDArray[np.float64]
    codes: npt.NDArray[np.int64]
    counts: npt.NDArray[np.int64]
    starts: npt.NDArray[np.int64]

    @property
    def size(self) -> int:
        """The number of groups (empty ones included)."""
        return int(self.counts.size)

    def quantile(self, q: float, values: npt.NDArray[np.float64] | None = None) -> npt.NDArray[np.float64]:
        """Type-7 ``q`` quantile of every group, of ``x`` or of ``values`` sorted the same way."""
        return _group_quantile(self.x if values is None else values, self.starts, self.counts, q)


def _timed_rows(samples_df: pd.DataFrame, by: str) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64], pd.Index]:
    """The timed latencies, their group codes and every group id (sorted), from a samples table."""
    for col in (by, "latency_ns"):
        if col not in samples_df.columns:
            raise ValueError(f"samples table has no {col!r} column (columns: {list(samples_df.columns)})")
    codes_all, uniques = pd.factorize(samples_df[by], sort=True)
    keep = codes_all >= 0  # rows whose run id is missing belong to no run
    if "phase" in samples_df.columns:
        keep &= (samples_df["phase"] == "timed").to_numpy(dtype=bool, na_value=False)
    lat = _as_latencies(samples_df["latency_ns"].to_numpy()[keep])
    return lat, codes_all[keep].astype(np.int64), pd.Index(uniques)


def _group(lat: npt.NDArray[Any], codes: npt.NDArray[np.int64], n_groups: int) -> _Groups:
    """Sort the latencies within their groups and locate each group."""
    x, c = _sort_within_groups(lat, codes, n_groups)
    counts = np.bincount(c, minlength=n_groups).astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    return _Groups(x, c, counts, starts)


def _group_mean_std(gr: _Groups) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Mean and sample standard deviation of every group (NaN std below 2 samples)."""
    g = gr.size
    sums = np.bincount(gr.codes, weights=gr.x, minlength=g)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / gr.counts
        dev = gr.x - mean[gr.codes]
        ss = np.bincount(gr.codes, weights=dev * dev, minlength=g)
        std = np.where(gr.counts > 1, np.sqrt(ss / np.maximum(gr.counts - 1, 1)), np.nan)
    return mean, std


def _group_mad(gr: _Groups, p50: npt.NDArray[np.float64]) -> npt.NDArray[np.floating[Any]]:
    """MAD of every group: the median of ``|x - median|`` needs a second sort within groups."""
    absdev = np.abs(gr.x - p50[gr.codes])
    twice = 2.0 * absdev
    if np.array_equal(twice, np.rint(twice)) and twice.size and twice.max() < 2.0**52:
        # Integer latencies: 2 * |x - median| is an exact integer, so the fast integer sort applies.
        dev_sorted, _ = _sort_within_groups(twice.astype(np.int64), gr.codes, gr.size)
        return gr.quantile(0.5, dev_sorted) / 2.0
    dev_sorted, _ = _sort_within_groups(absdev, gr.codes, gr.size)
    return gr.quantile(0.5, dev_sorted)


def _group_min_max(gr: _Groups) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Smallest and largest value of every group (NaN for an empty one)."""
    nonempty = gr.counts > 0
    minv = np.full(gr.size, np.nan)
    maxv = np.full(gr.size, np.nan)
    minv[nonempty] = gr.x[gr.starts[nonempty]]
    maxv[nonempty] = gr.x[gr.starts[nonempty] + gr.counts[nonempty] - 1]
    return minv, maxv


def _group_durations(
    durations_ns: Mapping[Any, int | float | None] | pd.Series | None, ids: pd.Index
) -> npt.NDArray[np.float64]:
    """Each group's timed-phase wall time (ns); NaN where unknown (None, NaN) or impossible (<= 0)."""
    if durations_ns is None:
        return np.full(len(ids), np.nan)
    dmap = pd.to_numeric(pd.Series(durations_ns, dtype="object"), errors="coerce").astype("float64")
    dur = dmap.reindex(ids).to_numpy(dtype=np.float64, copy=True)
    dur[~(dur > 0)] = np.nan
    return dur


def _group_throughput(
    counts: npt.NDArray[np.int64], mean: npt.NDArray[np.float64], dur: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """``count / duration`` where the duration is known, else ``1e9 / mean``; NaN for an empty group."""
    with np.errstate(invalid="ignore", divide="ignore"):
        thr = np.where(np.isnan(dur), np.where(mean > 0, 1e9 / mean, np.nan), counts / (dur / 1e9))
    return np.where(counts > 0, thr, np.nan)


def _group_columns(
    gr: _Groups, durations_ns: Mapping[Any, int | float | None] | pd.Series | None, ids: pd.Index
) -> dict[str, npt.NDArray[Any]]:
    """Every column of :data:`SUMMARY_COLUMNS` for every group."""
    mean, std = _group_mean_std(gr)
    qv = {key: gr.quantile(q) for key, q in PERCENTILES}
    p50 = qv["p50_ns"]
    minv, maxv = _group_min_max(gr)
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = np.where(mean != 0, std / mean, np.nan)
    p50_lo, p50_hi = _group_ci(gr.x, gr.starts, gr.counts, 0.5)
    p99_lo, p99_hi = _group_ci(gr.x, gr.starts, gr.counts, 0.99)
    return {
        "count": gr.counts.astype(np.float64),
        "mean_ns": mean,
        "std_ns": std,
        "min_ns": minv,
        **qv,
        "max_ns": maxv,
        "iqr_ns": gr.quantile(0.75) - gr.quantile(0.25),
        "mad_ns": _group_mad(gr, p50),
        "cv": cv,
        "jitter_ns": qv["p99_ns"] - p50,
        "throughput_per_s": _group_throughput(gr.counts, mean, _group_durations(durations_ns, ids)),
        "p50_ci_low_ns": p50_lo,
        "p50_ci_high_ns": p50_hi,
        "p99_ci_low_ns": p99_lo,
        "p99_ci_high_ns": p99_hi,
    }


def summarize_frame(
    samples_df: pd.DataFrame,
    by: str = "run_id",
    *,
    durations_ns: Mapping[Any, int | float | None] | pd.Series | None = None,
) -> pd.DataFrame:
    """Per-run :func:`summarize` over a samples table, vectorised (no Python loop per run or row).

    ``samples_df`` has columns ``by`` (default ``run_id``) and ``latency_ns``,
    and optionally ``phase``: when present only rows with ``phase == "timed"``
    count. Returns one row per run (index named ``by``, sorted), columns
    :data:`SUMMARY_COLUMNS`; a run with no timed rows gets ``count == 0`` and NaN.
    ``durations_ns`` maps run id to the timed phase's wall time (see
    :func:`summarize`); runs missing from it, or mapped to None, NaN or a
    non-positive value, get throughput ``1e9 / mean`` instead.
    The numbers equal :func:`summarize`'s for each run (to float rounding).
    """
    lat, codes, ids = _timed_rows(samples_df, by)
    cols = _group_columns(_group(lat, codes, len(ids)), durations_ns, ids)
    out = pd.DataFrame({k: cols[k] for k in SUMMARY_COLUMNS}, index=ids)
    out.index.name = by
    return out


# --- one run at a time, for stores too large to hold in memory ----------------------------


@functools.lru_cache(maxsize=8192)
def _cached_ranks(n: int, q: float) -> tuple[int, int] | None:
    """:func:`quantile_ci_ranks` at the default confidence, cached per sample size."""
    return quantile_ci_ranks(n, q)


def _sorted_quantile(x: npt.NDArray[Any], q: float) -> float:
    """Type-7 quantile from an array whose ranks ``floor((n-1)q)`` and the next are in
    sorted position, with numpy's own arithmetic (its ``_lerp``)."""
    n = x.size
    virtual = (n - 1) * q
    lo = int(np.floor(virtual))
    gamma = virtual - lo
    a = float(x[lo])
    b = float(x[min(lo + 1, n - 1)])
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def _order_stat_indices(n: int) -> list[int]:
    """Every rank :func:`summarize_fast` reads: min, max, both neighbours of each quantile, CI ranks."""
    ks = {0, n - 1}
    for q in [0.25, 0.75] + [q for _, q in PERCENTILES]:
        lo = int(np.floor((n - 1) * q))
        ks.update((lo, min(lo + 1, n - 1)))
    for q in (0.5, 0.99):
        ranks = _cached_ranks(n, q)
        if ranks:
            ks.update(ranks)
    return sorted(ks)


def _median_abs_dev(x: npt.NDArray[Any], center: float) -> float:
    """The unscaled MAD of ``x`` about ``center`` (its median), by partition rather than a sort."""
    n = x.size
    mid = n // 2
    twice = 2.0 * center
    if np.issubdtype(x.dtype, np.integer) and twice == np.rint(twice) and abs(twice) < 2.0**62:
        # Integer latencies: |2x - 2m| is an exact integer, no float copy needed.
        dev = np.abs(2 * x - np.int64(twice))
        scale = 2.0
    else:
        dev = np.abs(x.astype(np.float64) - center)
        scale = 1.0
    if n % 2:
        return float(np.partition(dev, mid)[mid]) / scale
    part = np.partition(dev, (mid - 1, mid))
    return (float(part[mid - 1]) + float(part[mid])) / 2.0 / scale


def summarize_fast(latency_ns: npt.ArrayLike, *, duration_ns: int | float | None = None) -> dict[str, float]:
    """:func:`summarize` for one run, several times faster on large runs: one multi-rank
    ``np.partition`` finds every order statistic the summary reads (no full sort), quantiles
    use numpy's type-7 arithmetic on them, the MAD is a partition of exact integer
    deviations, and the CI ranks are cached per sample size. Equal to :func:`summarize`
    to float rounding; ``Store.summary`` uses it on one run's file at a time."""
    _check_duration(duration_ns)
    arr = _as_latencies(latency_ns)
    n = int(arr.size)
    if n == 0:
        return _empty_summary()
    x = np.partition(arr, _order_stat_indices(n))
    mean = float(x.mean(dtype=np.float64))
    std = float(x.std(ddof=1, dtype=np.float64)) if n > 1 else _NAN
    qv = {key: _sorted_quantile(x, q) for key, q in PERCENTILES}
    p50 = qv["p50_ns"]
    out: dict[str, float] = {
        "count": float(n), "mean_ns": mean, "std_ns": std, "min_ns": float(x[0]), **qv, "max_ns": float(x[-1]),
        "iqr_ns": _sorted_quantile(x, 0.75) - _sorted_quantile(x, 0.25), "mad_ns": _median_abs_dev(x, p50),
        "cv": std / mean if mean != 0 else _NAN, "jitter_ns": qv["p99_ns"] - p50,
        "throughput_per_s": _throughput(n, mean, duration_ns),
    }
    for prefix, q in (("p50", 0.5), ("p99", 0.99)):
        ranks = _cached_ranks(n, q)
        out[f"{prefix}_ci_low_ns"], out[f"{prefix}_ci_high_ns"] = (
            (float(x[ranks[0]]), float(x[ranks[1]])) if ranks else (_NAN, _NAN))
    return {k: out[k] for k in SUMMARY_COLUMNS}
