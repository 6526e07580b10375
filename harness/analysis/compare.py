"""Noise-aware comparison of two run selections: did the candidate get slower?

For every configuration (model, target, backend, settings) present on both sides
and every metric (p50 and p99 latency, peak memory, energy per inference where
stored) :func:`compare` gives the candidate / baseline ratio with a 99% bootstrap
confidence interval and a verdict:

* ``slower`` (a regression) needs ALL of

  1. a one-sided Mann-Whitney U test (``scipy.stats.mannwhitneyu``) on *block*
     statistics, with Benjamini-Hochberg adjusted p (``scipy.stats.false_discovery_control``
     over every pair and metric of the comparison) below ``alpha`` (0.01). Latency
     samples are cut into consecutive blocks that close at 25 inferences or 1 s,
     whichever comes first (at least 100 inferences for p99), and the test sees one
     median (p99) per block: a device that warms up drifts, and a per-sample test
     would read the drift as a difference;
  2. a slowdown of at least ``max(2%, 2 x the baseline's session-to-session
     variation)`` (the coefficient of variation of that metric's per-session medians for
     that configuration over the store's last 20 sessions up to the baseline, when there are >= 3);
  3. the lower bound of the 99% bootstrap interval of the ratio (of the medians of the block
     statistics, blocks resampled; ``scipy.stats.bootstrap``) above 1, the interval widened by
     the session-to-session variation where there is a history; without one, that bound must
     clear the threshold itself (docs/analysis.md says why).

* ``faster`` is the mirror image; ``unchanged`` when the interval lies inside
  ``1 +- threshold``; otherwise ``inconclusive``.

Per-run metrics (peak memory, energy) have one value per run: they are tested
across runs and need several runs per side (repeat the job); with fewer they are
``inconclusive`` whenever they moved by more than the threshold.

Selections (:func:`select_runs`): a session id or prefix, run ids (comma-separated),
a date ``YYYY-MM-DD`` (UTC), ``KEY=VALUE`` of a label (``build=abc``), or a bare
label value such as a git ref. With no selections, the last two sessions of the
same plan.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np
import numpy.typing as npt
import pandas as pd

from harness.errors import AnalysisError
from harness.safetext import safe
from harness.store import Store
from harness.text import json_object

__all__ = [
    "Selection",
    "PairResult",
    "Comparison",
    "select_runs",
    "default_selections",
    "compare",
    "compare_series",
    "compare_values",
    "block_size",
    "format_comparison",
    "CONFIG_COLUMNS",
    "METRICS",
]

CONFIG_COLUMNS = ("model", "target", "backend", "settings")
#: metric name -> (unit, kind): kind "samples" is tested on latency blocks, "runs" across runs.
METRICS: dict[str, tuple[str, str]] = {
    "p50": ("ms", "samples"),
    "p99": ("ms", "samples"),
    "peak_memory": ("MiB", "runs"),
    "energy_per_inference": ("mJ", "runs"),
}
BLOCK_COUNT = 25
BLOCK_NS = 1_000_000_000
P99_BLOCK_COUNT = 100
MIN_BLOCKS = 5
#: Long runs get longer blocks so that each side has at most this many (the test and the
#: bootstrap then cost the same for 1,000 or 1,000,000 samples, and long-range drift
#: is averaged inside a block rather than counted as independent evidence).
MAX_BLOCKS = 400
#: The baseline's session-to-session variation comes from its most recent sessions.
HISTORY_SESSIONS = 20
DEFAULT_ALPHA = 0.01
DEFAULT_MIN_CHANGE = 0.02
CONFIDENCE = 0.99
RESAMPLES = 2000
SEED = 20261124
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Selection:
    """A named set of runs: what the user typed and the runs it matched."""

    spec: str
    description: str
    run_ids: tuple[str, ...]


@dataclass
class PairResult:
    """One configuration and metric, baseline against candidate."""

    model: str
    target: str
    backend: str
    settings: str
    metric: str
    unit: str
    baseline: float
    candidate: float
    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    q_value: float
    threshold: float
    history_cv: float | None
    history_sessions: int
    n_baseline: int
    n_candidate: int
    verdict: str = "inconclusive"
    note: str = ""
    #: "emulated" and/or "stand-in" when runs on either side were (such figures are no board's)
    marks: str = ""

    @property
    def regressed(self) -> bool:
        """Whether this pair is a regression (verdict ``slower``)."""
        return self.verdict == "slower"

    def config(self) -> str:
        """The configuration, with its marks, as one line."""
        settings = _fmt_settings(self.settings)
        marks = f" ({self.marks})" if self.marks else ""
        return f"{self.model} on {self.target}{marks} [{self.backend}{' ' + settings if settings else ''}]"


@dataclass
class Comparison:
    """The result of :func:`compare`: every pair tested, and the configurations only one side has."""
    baseline: Selection
    candidate: Selection
    pairs: list[PairResult] = field(default_factory=list)
    only_baseline: list[str] = field(default_factory=list)
    only_candidate: list[str] = field(default_factory=list)
    alpha: float = DEFAULT_ALPHA
    min_change: float = DEFAULT_MIN_CHANGE
    #: configurations whose runs were left out of the sample-based metrics: aggregate-only runs (an imported log, a
    #: vendor runner's summary) have no samples to test
    aggregate_only: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[PairResult]:
        """The pairs that regressed."""
        return [p for p in self.pairs if p.regressed]

    def to_dict(self) -> dict[str, Any]:
        """The comparison as JSON-ready data (``--format json``)."""
        return {
            "baseline": asdict(self.baseline),
            "candidate": asdict(self.candidate),
            "alpha": self.alpha,
            "min_change": self.min_change,
            "confidence": CONFIDENCE,
            "regressed": bool(self.regressions),
            "pairs": [dict(asdict(p), regressed=p.regressed) for p in self.pairs],
            "only_baseline": self.only_baseline,
            "only_candidate": self.only_candidate,
            "aggregate_only": self.aggregate_only,
        }


# ----------------------------------------------------------------------------- selections


_labels = json_object


def select_runs(runs: pd.DataFrame, spec: str) -> Selection:
    """The successful runs ``spec`` names (see the module docstring); AnalysisError if none."""
    ok = runs[runs["status"] == "ok"]
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise AnalysisError("empty run selection")
    ids: list[str] = []
    kinds: list[str] = []
    for part in parts:
        matched, kind = _select_one(ok, part)
        if matched.empty:
            raise AnalysisError(
                f"selection {part!r} matches no successful run (give a session id or prefix, run ids, "
                "a date YYYY-MM-DD, KEY=VALUE of a label, or a label value such as a git ref)")
        ids.extend(r for r in matched["run_id"] if r not in ids)
        kinds.append(kind)
    return Selection(spec=spec, description=", ".join(kinds), run_ids=tuple(ids))


def _select_one(ok: pd.DataFrame, part: str) -> tuple[pd.DataFrame, str]:
    """The runs one part of a selection names (date, label, session, run id or label value) and what it is."""
    if _DATE.match(part):
        day = pd.to_datetime(ok["started_at"], utc=True).dt.strftime("%Y-%m-%d")
        return ok[day == part], f"runs of {part}"
    if "=" in part:
        key, _, value = part.partition("=")
        labels = ok["labels"].map(_labels)
        return ok[labels.map(lambda d: str(d.get(key.strip())) == value.strip() if key.strip() in d else False)], \
            f"label {part}"
    by_session = ok[ok["session_id"].astype(str).str.startswith(part)]
    sessions = by_session["session_id"].unique()
    if len(sessions) > 1:
        raise AnalysisError(f"session prefix {part!r} is ambiguous ({len(sessions)} sessions): give more of the id")
    if len(sessions) == 1:
        return by_session, f"session {sessions[0]}"
    by_run = ok[ok["run_id"].astype(str).str.startswith(part)]
    if len(by_run) > 1:
        raise AnalysisError(f"run id prefix {part!r} is ambiguous ({len(by_run)} runs)")
    if len(by_run) == 1:
        return by_run, f"run {by_run['run_id'].iloc[0]}"
    labels = ok["labels"].map(_labels)
    return ok[labels.map(lambda d: part in {str(v) for v in d.values()})], f"label value {part}"


def default_selections(store: Store, runs: pd.DataFrame | None = None) -> tuple[Selection, Selection]:
    """The last two sessions of the same plan (the newest session's plan)."""
    runs = store.runs() if runs is None else runs
    ok = runs[runs["status"] == "ok"]
    if ok.empty:
        raise AnalysisError(f"{store.root}: no successful runs to compare")
    last = ok.sort_values("started_at").iloc[-1]
    same_plan = ok[ok["plan"] == last["plan"]]
    order = same_plan.groupby("session_id")["started_at"].min().sort_values()
    if len(order) < 2:
        raise AnalysisError(
            f"{store.root}: plan {last['plan']!r} has only one session with successful runs; "
            "run it again or name BASELINE and CANDIDATE")
    base_id, cand_id = order.index[-2], order.index[-1]
    return select_runs(ok, str(base_id)), select_runs(ok, str(cand_id))


# ----------------------------------------------------------------------------- statistics


def block_size(latency_ns: npt.ArrayLike, min_count: int = BLOCK_COUNT) -> int:
    """Inferences per block: a block closes at ``min_count`` inferences or at 1 s, whichever comes first."""
    arr = np.asarray(latency_ns, dtype=np.float64)
    med = float(np.median(arr)) if arr.size else 0.0
    per_second = math.ceil(BLOCK_NS / med) if med > 0 else min_count
    return max(1, min(min_count, per_second))


def _blocks(latency_ns: npt.NDArray[np.float64], size: int) -> npt.NDArray[np.float64]:
    """Consecutive whole blocks as a 2-D array (the partial last block is dropped)."""
    n = (latency_ns.size // size) * size
    return latency_ns[:n].reshape(-1, size)


def _bootstrap_ratio(base: npt.NDArray[np.float64], cand: npt.NDArray[np.float64], seed: int,
                     resamples: int = RESAMPLES) -> tuple[float, float]:
    """Percentile CI of median(cand blocks) / median(base blocks), each side's block statistics
    resampled independently (a block bootstrap: the correlation inside a block is kept).
    Works on one number per block, so its cost does not grow with the samples per block."""
    from scipy import stats as sps  # imported here: scipy takes ~1 s, and the CLI starts without it
    res = sps.bootstrap((base, cand), lambda b, c, axis: np.median(c, axis=axis) / np.median(b, axis=axis),
                        confidence_level=CONFIDENCE, n_resamples=resamples, method="percentile",
                        vectorized=True, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@dataclass
class _Test:
    """One test's figures: raw quantiles or medians, the ratio and its interval, one-sided p values."""
    baseline: float
    candidate: float
    ratio: float
    ci_low: float
    ci_high: float
    p_slower: float
    p_faster: float
    n_baseline: int
    n_candidate: int
    note: str = ""


def compare_series(base_ns: npt.ArrayLike, cand_ns: npt.ArrayLike, q: float = 0.5, *, seed: int = SEED,
                   resamples: int = RESAMPLES) -> _Test:
    """Compare the ``q`` quantile of two latency series (in time order), block-wise.

    Returns raw p values (one-sided, both directions) of the Mann-Whitney test on
    block statistics, the ratio of the median block statistics and its block-bootstrap CI
    (``baseline``/``candidate`` stay the raw quantiles of all samples, for display).
    """
    from scipy import stats as sps  # imported here: scipy takes ~1 s, and the CLI starts without it
    base = np.asarray(base_ns, dtype=np.float64)
    cand = np.asarray(cand_ns, dtype=np.float64)
    size = max(block_size(base), math.ceil(base.size / MAX_BLOCKS))
    if q > 0.9:
        # A tail quantile needs enough inferences per block to exist at all.
        size = max(size, P99_BLOCK_COUNT)
    bb, cb = _blocks(base, size), _blocks(cand, size)
    b_q = float(np.quantile(base, q)) if base.size else math.nan
    c_q = float(np.quantile(cand, q)) if cand.size else math.nan
    ratio = c_q / b_q if b_q > 0 else math.nan
    nan = math.nan
    if len(bb) < MIN_BLOCKS or len(cb) < MIN_BLOCKS:
        return _Test(b_q, c_q, ratio, nan, nan, nan, nan, len(bb), len(cb),
                     f"too few blocks of {size} ({len(bb)} and {len(cb)}; need {MIN_BLOCKS}): run longer")
    b_stat = np.quantile(bb, q, axis=1)
    c_stat = np.quantile(cb, q, axis=1)
    p_slower = float(sps.mannwhitneyu(b_stat, c_stat, alternative="less").pvalue)
    p_faster = float(sps.mannwhitneyu(b_stat, c_stat, alternative="greater").pvalue)
    lo, hi = _bootstrap_ratio(b_stat, c_stat, seed, resamples)
    # The verdict's ratio is the point estimate of the statistic the interval is about (the
    # median of the blocks' quantiles); the raw quantile of a tail is set by a few outliers
    # and could disagree with its own interval.
    b_mid, c_mid = float(np.median(b_stat)), float(np.median(c_stat))
    if b_mid > 0:
        ratio = c_mid / b_mid
    return _Test(b_q, c_q, ratio, lo, hi, p_slower, p_faster, len(bb), len(cb), f"blocks of {size}")


def compare_values(base: npt.ArrayLike, cand: npt.ArrayLike, *, seed: int = SEED,
                   resamples: int = RESAMPLES) -> _Test:
    """Compare per-run values (peak memory, energy): medians, Mann-Whitney across runs,
    bootstrap CI of the ratio of medians (``scipy.stats.bootstrap``) when each side has >= 2 runs."""
    from scipy import stats as sps  # imported here: scipy takes ~1 s, and the CLI starts without it
    b = np.asarray(base, dtype=np.float64)
    c = np.asarray(cand, dtype=np.float64)
    b, c = b[np.isfinite(b)], c[np.isfinite(c)]
    nan = math.nan
    if not b.size or not c.size:
        return _Test(nan, nan, nan, nan, nan, nan, nan, int(b.size), int(c.size), "missing on one side")
    bm, cm = float(np.median(b)), float(np.median(c))
    ratio = cm / bm if bm > 0 else nan
    if b.size < 2 or c.size < 2:
        return _Test(bm, cm, ratio, nan, nan, nan, nan, int(b.size), int(c.size),
                     "one run per side: repeat the job to test this metric")
    p_slower = float(sps.mannwhitneyu(b, c, alternative="less").pvalue)
    p_faster = float(sps.mannwhitneyu(b, c, alternative="greater").pvalue)
    if np.ptp(b) == 0 and np.ptp(c) == 0:
        lo = hi = ratio
    else:
        res = sps.bootstrap((b, c), lambda x, y, axis: np.median(y, axis=axis) / np.median(x, axis=axis),
                            confidence_level=CONFIDENCE, n_resamples=resamples, method="percentile",
                            vectorized=True, rng=np.random.default_rng(seed))
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return _Test(bm, cm, ratio, lo, hi, p_slower, p_faster, int(b.size), int(c.size), f"{b.size} and {c.size} runs")


def _with_session_noise(t: _Test, session_cv: float, sessions: int) -> tuple[float, float]:
    """The ratio's interval widened by the noise between sessions, which the block bootstrap of two
    single sessions cannot see: on the log scale each side of the interval becomes
    sqrt(side^2 + (t * sqrt(2) * cv)^2), both sessions varying, with Student's t for the ``sessions``
    the variation was estimated from (a CV from five sessions is itself uncertain); the bootstrap's
    asymmetry is kept."""
    from scipy import stats as sps  # imported here: scipy takes ~1 s, and the CLI starts without it
    if not (math.isfinite(t.ci_low) and t.ci_low > 0 and t.ratio > 0):
        return t.ci_low, t.ci_high
    q = float(sps.t.ppf(0.5 + CONFIDENCE / 2, df=max(1, sessions - 1)))
    extra = q * math.sqrt(2.0) * session_cv
    mid = math.log(t.ratio)
    down = math.hypot(mid - math.log(t.ci_low), extra)
    up = math.hypot(math.log(t.ci_high) - mid, extra)
    return math.exp(mid - down), math.exp(mid + up)


def _verdict(t: _Test, q_slower: float, q_faster: float, threshold: float, alpha: float,
             with_history: bool) -> str:
    """``slower`` needs the adjusted p below alpha, a change of at least the threshold and an interval
    that excludes 1. With the baseline's session history, the interval includes the noise between
    sessions (:func:`_with_session_noise`); without it that noise is unknown, so the interval's bound
    must clear the threshold itself."""
    if not math.isfinite(t.ratio):
        return "inconclusive"
    margin = 0.0 if with_history else threshold
    if math.isfinite(t.ci_low) and q_slower < alpha and t.ratio - 1.0 >= threshold and t.ci_low > 1.0 + margin:
        return "slower"
    if math.isfinite(t.ci_high) and q_faster < alpha and 1.0 - t.ratio >= threshold and t.ci_high < 1.0 - margin:
        return "faster"
    if math.isfinite(t.ci_low) and 1.0 - threshold <= t.ci_low and t.ci_high <= 1.0 + threshold:
        return "unchanged"
    if not math.isfinite(t.ci_low) and abs(t.ratio - 1.0) < threshold:
        return "unchanged"
    return "inconclusive"


# ----------------------------------------------------------------------------- the comparison


def _history_cv(same: pd.DataFrame, values: pd.Series, before: pd.Timestamp,
                exclude: set[str]) -> tuple[float, int] | None:
    """CV of the per-session medians of one metric (``values``: run id -> value) over one configuration's
    runs ``same`` in sessions up to ``before``, and the number of sessions (needs >= 3)."""
    same = same[(same["started_at"] <= before) & ~same["run_id"].isin(exclude) & same["run_id"].isin(values.index)]
    if same["session_id"].nunique() < 3:
        return None
    per_session = same.assign(m=same["run_id"].map(values)).groupby("session_id")["m"].median()
    mean = float(per_session.mean())
    return (float(per_session.std(ddof=1) / mean), len(per_session)) if mean > 0 else None


_Key = tuple[str, str, str, str]


@dataclass
class _Inputs:
    """What the pair tests read, loaded once for the whole comparison."""

    #: configuration -> every successful run of it in the store
    by_key: dict[_Key, pd.DataFrame]
    #: run id -> timed latencies in the order measured (the two selections' runs only)
    latencies: dict[str, npt.NDArray[Any]]
    #: metric -> run id -> value, for the session-to-session variation of each metric
    history: dict[str, pd.Series]
    #: run id -> energy per inference (mJ)
    energy: pd.Series
    #: the baseline's latest start: the history ends there
    base_latest: pd.Timestamp
    #: the candidate's run ids, never part of the history
    exclude: set[str]


def _check_metrics(metrics: Sequence[str]) -> None:
    """AnalysisError naming the first metric that is not in :data:`METRICS`."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise AnalysisError(f"unknown metric {unknown[0]!r} (known: {', '.join(METRICS)})")


def _ok_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The successful runs, each with its configuration (:data:`CONFIG_COLUMNS`) as ``_key``."""
    runs = runs[runs["status"] == "ok"].copy()
    columns = [runs[c].fillna("{}") if c == "settings" else runs[c] for c in CONFIG_COLUMNS]
    runs["_key"] = list(zip(*(col.astype(str) for col in columns), strict=True))
    return runs


def _sides(runs: pd.DataFrame, baseline: Selection, candidate: Selection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The baseline's and the candidate's runs; AnalysisError when the selections share runs."""
    base_runs = runs[runs["run_id"].isin(baseline.run_ids)]
    cand_runs = runs[runs["run_id"].isin(candidate.run_ids)]
    overlap = set(base_runs["run_id"]) & set(cand_runs["run_id"])
    if overlap:
        raise AnalysisError(f"baseline and candidate share {len(overlap)} runs: name two different selections")
    return base_runs, cand_runs


def _latency_inputs(store: Store, runs: pd.DataFrame, base_runs: pd.DataFrame, cand_runs: pd.DataFrame,
                    common: list[_Key]) -> tuple[dict[str, pd.Series], dict[str, npt.NDArray[Any]]]:
    """The p50 and p99 history (metric -> run id -> ns) and the two selections' raw latencies.

    History needs only each run's median (the summary reads the store a file at a time); raw samples
    are read for the two selections alone."""
    base_time = pd.to_datetime(base_runs["started_at"]).max()
    past = runs[runs["_key"].isin(set(common)) & (runs["started_at"] <= base_time)
                & ~runs["run_id"].isin(set(cand_runs["run_id"]))]
    recent = past.groupby("session_id")["started_at"].max().sort_values().index[-HISTORY_SESSIONS:]
    summary = store.summary(past.loc[past["session_id"].isin(set(recent)), "run_id"]).set_index("run_id")
    history = {"p50": summary["p50_ns"].dropna(), "p99": summary["p99_ns"].dropna()}
    wanted_ids = set(base_runs["run_id"]) | set(cand_runs["run_id"])
    latencies = store.timed_latencies(wanted_ids)  # those runs' files (or row groups) only, as Arrow
    return history, latencies


def _energy(store: Store, runs: pd.DataFrame, run_ids: set[str]) -> pd.Series:
    """Energy per inference (mJ) of the runs ``run_ids``, by run id (empty when none has it)."""
    from harness.analysis.metrics import energy_per_inference

    e = energy_per_inference(store, runs[runs["run_id"].isin(run_ids)])
    return e.set_index("run_id")["energy_mj"] if not e.empty else pd.Series(dtype=float)


def _load_inputs(store: Store, runs: pd.DataFrame, base_runs: pd.DataFrame, cand_runs: pd.DataFrame,
                 common: list[_Key], metrics: Sequence[str]) -> _Inputs:
    """Read what the metrics asked for need: latencies and their history, energy, peak memory."""
    history: dict[str, pd.Series] = {"peak_memory": runs.set_index("run_id")["hwm_kb"].dropna().astype(float)}
    latencies: dict[str, npt.NDArray[Any]] = {}
    if any(METRICS[m][1] == "samples" for m in metrics):
        lat_history, latencies = _latency_inputs(store, runs, base_runs, cand_runs, common)
        history.update(lat_history)
    wanted_ids = set(base_runs["run_id"]) | set(cand_runs["run_id"])
    energy = _energy(store, runs, wanted_ids) if "energy_per_inference" in metrics else pd.Series(dtype=float)
    return _Inputs(
        by_key={k: g for k, g in runs.groupby("_key", sort=False) if k in set(common)},
        latencies=latencies, history=history, energy=energy,
        base_latest=pd.to_datetime(base_runs["started_at"]).max(), exclude=set(cand_runs["run_id"]))


def _marks(b: pd.DataFrame, c: pd.DataFrame) -> str:
    """The marks of one configuration's runs: "emulated" and/or "stand-in" when any run on either side was."""
    both = pd.concat([b, c])
    return ", ".join(name for name, col in (("emulated", "emulated"), ("stand-in", "stand_in"))
                     if col in both and both[col].fillna(False).astype(bool).any())


def _threshold(inputs: _Inputs, key: _Key, metric: str, min_change: float) -> tuple[float, float | None, int]:
    """(threshold, session-to-session CV or None, sessions it came from) of one configuration's metric."""
    found = None
    if metric in inputs.history:
        found = _history_cv(inputs.by_key[key], inputs.history[metric], inputs.base_latest, inputs.exclude)
    hist, sessions = found if found is not None else (None, 0)
    threshold = max(min_change, 2.0 * hist) if hist is not None else min_change
    return threshold, hist, sessions


def _test_metric(metric: str, b: pd.DataFrame, c: pd.DataFrame, inputs: _Inputs, seed: int,
                 resamples: int) -> tuple[_Test, float] | None:
    """The test of ``metric`` between one configuration's baseline runs ``b`` and candidate runs ``c``, and
    the factor from the test's unit to the metric's; None when either side lacks the data."""
    if METRICS[metric][1] == "samples":
        bl = [inputs.latencies[r] for r in b["run_id"] if r in inputs.latencies]
        cl = [inputs.latencies[r] for r in c["run_id"] if r in inputs.latencies]
        if not bl or not cl:
            return None
        return compare_series(np.concatenate(bl), np.concatenate(cl), 0.5 if metric == "p50" else 0.99,
                              seed=seed, resamples=resamples), 1e-6
    if metric == "peak_memory":
        if b["hwm_kb"].isna().all() or c["hwm_kb"].isna().all():
            return None
        return compare_values(b["hwm_kb"].to_numpy(dtype=float), c["hwm_kb"].to_numpy(dtype=float),
                              seed=seed, resamples=resamples), 1 / 1024
    bv = b["run_id"].map(inputs.energy).dropna()
    cv = c["run_id"].map(inputs.energy).dropna()
    if bv.empty or cv.empty:
        return None
    return compare_values(bv.to_numpy(dtype=float), cv.to_numpy(dtype=float), seed=seed, resamples=resamples), 1.0


def _test_pairs(base_runs: pd.DataFrame, cand_runs: pd.DataFrame, common: list[_Key], inputs: _Inputs,
                metrics: Sequence[str], min_change: float, seed: int,
                resamples: int) -> list[tuple[PairResult, _Test]]:
    """Every configuration in common and metric with data on both sides, tested (raw p values)."""
    tests: list[tuple[PairResult, _Test]] = []
    for key in common:
        b = base_runs[base_runs["_key"] == key]
        c = cand_runs[cand_runs["_key"] == key]
        marks = _marks(b, c)
        for metric in metrics:
            threshold, hist, sessions = _threshold(inputs, key, metric, min_change)
            tested = _test_metric(metric, b, c, inputs, seed, resamples)
            if tested is None:
                continue
            t, scale = tested
            pair = PairResult(model=key[0], target=key[1], backend=key[2], settings=key[3], metric=metric,
                              unit=METRICS[metric][0], baseline=t.baseline * scale, candidate=t.candidate * scale,
                              ratio=t.ratio, ci_low=t.ci_low, ci_high=t.ci_high, p_value=t.p_slower,
                              q_value=math.nan, threshold=threshold, history_cv=hist, history_sessions=sessions,
                              n_baseline=t.n_baseline, n_candidate=t.n_candidate, note=t.note, marks=marks)
            tests.append((pair, t))
    return tests


def _bh_adjust(tests: list[tuple[PairResult, _Test]]) -> list[tuple[float, float]]:
    """Benjamini-Hochberg adjusted (q_slower, q_faster) of every test, each direction on its own over
    every tested pair; NaN where the raw p value is."""
    from scipy import stats as sps  # imported here: scipy takes ~1 s, and the CLI starts without it
    adjusted = [[math.nan, math.nan] for _ in tests]
    for side, attr in enumerate(("p_slower", "p_faster")):
        idx = [i for i, (_, t) in enumerate(tests) if math.isfinite(getattr(t, attr))]
        if idx:
            qs = sps.false_discovery_control([getattr(tests[i][1], attr) for i in idx], method="bh")
            for i, qv in zip(idx, qs, strict=True):
                adjusted[i][side] = float(qv)
    return [(q_slower, q_faster) for q_slower, q_faster in adjusted]


def _conclude(pair: PairResult, t: _Test, q_slower: float, q_faster: float, alpha: float) -> None:
    """Fill in ``pair``'s q value, its interval widened by the session history, its note and its verdict."""
    pair.q_value = q_slower
    if pair.history_cv is not None:
        t.ci_low, t.ci_high = _with_session_noise(t, pair.history_cv, pair.history_sessions)
        pair.ci_low, pair.ci_high = t.ci_low, t.ci_high
        extra = (f"interval includes {pair.history_cv:.1%} session-to-session variation "
                 f"({pair.history_sessions} sessions)")
    else:
        extra = "no session history (< 3 earlier sessions): the bound must clear the threshold"
    pair.note = "; ".join(x for x in (pair.note, extra) if x)
    pair.verdict = _verdict(t, q_slower if math.isfinite(q_slower) else 1.0,
                            q_faster if math.isfinite(q_faster) else 1.0, pair.threshold, alpha,
                            with_history=pair.history_cv is not None)


def compare(store: Store, baseline: Selection, candidate: Selection, *, alpha: float = DEFAULT_ALPHA,
            min_change: float = DEFAULT_MIN_CHANGE, metrics: Sequence[str] = tuple(METRICS),
            seed: int = SEED, resamples: int = RESAMPLES, runs: pd.DataFrame | None = None) -> Comparison:
    """Compare two selections of the store, configuration by configuration (see the module docstring).
    ``runs`` is ``store.runs()`` when the caller has it already."""
    _check_metrics(metrics)
    runs = _ok_runs(store.runs() if runs is None else runs)
    base_runs, cand_runs = _sides(runs, baseline, candidate)
    base_keys, cand_keys = set(base_runs["_key"]), set(cand_runs["_key"])
    common = sorted(base_keys & cand_keys)
    out = Comparison(baseline, candidate, alpha=alpha, min_change=min_change,
                     only_baseline=[_fmt_key(k) for k in sorted(base_keys - cand_keys)],
                     only_candidate=[_fmt_key(k) for k in sorted(cand_keys - base_keys)])
    if not common:
        raise AnalysisError("baseline and candidate have no configuration (model, target, backend, settings) in common")
    inputs = _load_inputs(store, runs, base_runs, cand_runs, common, metrics)
    tests = _test_pairs(base_runs, cand_runs, common, inputs, metrics, min_change, seed, resamples)
    out.aggregate_only = _aggregate_only(base_runs, cand_runs, common, metrics)
    if out.aggregate_only and not tests:
        raise AnalysisError(
            f"compare: the runs in common are aggregate-only ({out.aggregate_only[0]}"
            f"{f' and {len(out.aggregate_only) - 1} more' if len(out.aggregate_only) > 1 else ''}: an imported log or "
            "a vendor runner's own summary, no samples), so no test can call one side slower; `hilbench results` "
            "shows their figures side by side")
    for (pair, t), (q_slower, q_faster) in zip(tests, _bh_adjust(tests), strict=True):
        _conclude(pair, t, q_slower, q_faster, alpha)
        out.pairs.append(pair)
    return out


def _aggregate_only(base_runs: pd.DataFrame, cand_runs: pd.DataFrame, common: list[_Key],
                    metrics: Sequence[str]) -> list[str]:
    """The configurations in common with aggregate-only runs on either side, when a sample-based metric was
    asked for: those runs have no samples, so they are left out of p50 and p99 (never compared by their printed
    summaries as if they were samples)."""
    if "aggregate_only" not in base_runs or not any(METRICS[m][1] == "samples" for m in metrics):
        return []
    both = pd.concat([base_runs, cand_runs])
    both = both[both["_key"].isin(set(common)) & both["aggregate_only"].eq(True)]
    return [_fmt_key(k) for k in sorted(set(both["_key"]))]


def _fmt_settings(text: Any) -> str:
    """Settings (JSON text or a dict) as ``key=value`` words, sorted."""
    settings = _labels(text)
    return " ".join(f"{k}={v}" for k, v in sorted(settings.items()))


def _fmt_key(key: _Key) -> str:
    """A configuration as ``model on target [backend settings]``."""
    settings = _fmt_settings(key[3])
    return f"{key[0]} on {key[1]} [{key[2]}{' ' + settings if settings else ''}]"


# ----------------------------------------------------------------------------- output


def _num(v: float, digits: int = 3) -> str:
    """A number with ``digits`` decimals; ``-`` for None, NaN or infinity."""
    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _change(p: PairResult) -> str:
    """The change in percent with its interval, as ``+3.1% [+1.0, +5.2]``."""
    if not math.isfinite(p.ratio):
        return "-"
    ci = "" if not math.isfinite(p.ci_low) else f" [{(p.ci_low - 1) * 100:+.1f}, {(p.ci_high - 1) * 100:+.1f}]"
    return f"{(p.ratio - 1) * 100:+.1f}%{ci}"


def _rows(c: Comparison) -> list[dict[str, str]]:
    """The table's rows, one per pair, as column -> text."""
    return [{
        "configuration": p.config(),
        "metric": p.metric,
        "baseline": f"{_num(p.baseline)} {p.unit}",
        "candidate": f"{_num(p.candidate)} {p.unit}",
        "change (99% CI)": _change(p),
        "q": "-" if not math.isfinite(p.q_value) else f"{p.q_value:.2g}",
        "threshold": f"{p.threshold * 100:.1f}%",
        "verdict": p.verdict.upper() if p.regressed else p.verdict,
    } for p in c.pairs]


def _headline(c: Comparison) -> str:
    """One line: regressed or not, and how many pairs got each verdict."""
    reg = c.regressions
    counts = {v: sum(1 for p in c.pairs if p.verdict == v) for v in ("slower", "faster", "unchanged", "inconclusive")}
    text = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    status = f"REGRESSED: {len(reg)} of {len(c.pairs)} comparisons slower" if reg else "no regression"
    return f"{status} ({text or 'nothing compared'})"


def format_comparison(c: Comparison, fmt: str = "table") -> str:
    """The comparison as ``table`` (terminal), ``markdown``, ``json`` or ``junit`` (XML)."""
    if fmt == "json":
        return json.dumps(_finite(c.to_dict()), indent=2, default=_json_default)
    if fmt == "junit":
        return _junit(c)
    rows = _rows(c)
    cols = list(rows[0]) if rows else ["configuration", "metric", "verdict"]
    head = [f"baseline:  {c.baseline.spec} ({c.baseline.description}; {len(c.baseline.run_ids)} runs)",
            f"candidate: {c.candidate.spec} ({c.candidate.description}; {len(c.candidate.run_ids)} runs)"]
    tail = [f"only in baseline: {k}" for k in c.only_baseline] + [f"only in candidate: {k}" for k in c.only_candidate]
    tail += [f"not tested on p50/p99 (aggregate-only runs, no samples): {k}" for k in c.aggregate_only]
    if fmt == "markdown":
        lines = ["# hilbench compare", "", *[f"- {h}" for h in head], "", f"**{_headline(c)}**", "",
                 "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(r[k].replace("|", "\\|") for k in cols) + " |" for r in rows]
        if tail:
            lines += ["", *[f"- {t}" for t in tail]]
        return "\n".join(lines)
    if fmt != "table":
        raise AnalysisError(f"unknown format {fmt!r} (table, markdown, json, junit)")
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) if rows else len(k) for k in cols}
    lines = head + [""]
    lines.append("  ".join(k.ljust(widths[k]) for k in cols))
    lines += ["  ".join(r[k].ljust(widths[k]) for k in cols) for r in rows]
    lines += ["", *tail, _headline(c)] if tail else ["", _headline(c)]
    return "\n".join(lines)


def _junit(c: Comparison) -> str:
    """JUnit XML; every text from the store is made safe first (a control character is not valid XML 1.0)."""
    suite = ET.Element("testsuite", name="hilbench compare", tests=str(len(c.pairs)),
                       failures=str(len(c.regressions)), errors="0", skipped="0")
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="baseline", value=safe(c.baseline.spec, None))
    ET.SubElement(props, "property", name="candidate", value=safe(c.candidate.spec, None))
    for p in c.pairs:
        case = ET.SubElement(suite, "testcase", classname=safe(p.config(), None), name=safe(p.metric, None))
        summary = (f"{p.metric}: {_num(p.baseline)} -> {_num(p.candidate)} {p.unit}, {_change(p)}, "
                   f"q={_num(p.q_value, 4)}, threshold {p.threshold * 100:.1f}%: {p.verdict}")
        if p.regressed:
            fail = ET.SubElement(case, "failure", message=f"{p.metric} slower by {(p.ratio - 1) * 100:.1f}%",
                                 type="regression")
            fail.text = safe(summary, None)
        else:
            ET.SubElement(case, "system-out").text = safe(summary, None)
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode")


def _finite(v: Any) -> Any:
    """NaN and infinity become null: JSON has no NaN."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _json_default(v: Any) -> Any:
    """JSON for what the encoder does not know: numpy scalars as numbers, anything else as text."""
    if isinstance(v, np.generic):
        return v.item()
    return str(v)
