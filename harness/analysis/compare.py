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
     statistics, blocks resampled; a percentile bootstrap, ``scipy.stats.bootstrap``'s method in numpy) above 1,
     the interval widened by
     the session-to-session variation where there is a history; without one, that bound must
     clear the threshold itself (docs/analysis.md says why).

* ``faster`` is the mirror image; ``unchanged`` when the interval lies inside
  ``1 +- threshold``; otherwise ``inconclusive``.

Two levels of noise (docs/analysis.md, "Between-session noise: processes"): where a configuration has several
runs on each side (``policy.processes``: fresh agent processes, interleaved across configurations), each run's
quantile is one observation and the test is Welch's t on their logarithms (``scipy.stats.ttest_ind``), its 99%
interval the ratio's: the spread between processes holds the noise inside a process and between them. With one
run per side and no history the noise between sessions is unknown: a change the blocks call significant but
whose interval does not clear ``max(threshold, shift floor)`` (:data:`SESSION_SHIFT_FLOOR`, the whole-session
shift this kind of machine shows, benchmarks/aa_false_alarms.py) is ``inconclusive``, with
``shift_unknown`` set and a note saying to run more processes or build a history.

Per-run metrics (peak memory, energy) have one value per run: they are tested
across runs and need several runs per side (repeat the job); with fewer they are
``inconclusive`` whenever they moved by more than the threshold.

Selections (:func:`select_runs`): a session id or prefix, run ids (comma-separated; a unique prefix
or suffix of one, as ``hilbench show`` takes), a date ``YYYY-MM-DD`` (UTC), ``KEY=VALUE`` of a label
(``build=abc``), or a bare label value such as a git ref. With no selections, the last two sessions of the
same plan.

Two sides named by run id that each hold one configuration are compared even when the configurations
differ (another model file, backend, setting or board: "is the new export slower?"); the comparison lists
what differs (:func:`run_differences`).
"""

from __future__ import annotations

import functools
import json
import math
import re
import warnings
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
    "run_differences",
    "SESSION_SHIFT_FLOOR",
    "DEFAULT_RUN_PROCESSES",
    "compare_processes",
    "pairing_by_runs",
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
#: ``compare --run``: agent processes a side for each job unless the plans ask for more (policy.processes)
DEFAULT_RUN_PROCESSES = 3
#: How far a whole session can shift every latency on a quiet shared machine, as the bound of a 99% interval
#: sees it: back-to-back identical one-process quick-start sessions on the project's 2-core machine, quiet,
#: differed by up to +4.6% [+3.5, +5.6] (issue 13; benchmarks/aa_false_alarms.py measures it). With one process
#: per side and no history, a change's interval must clear this before it is called slower or faster
#: (docs/analysis.md); a loaded machine shifts far more.
SESSION_SHIFT_FLOOR = 0.04
SEED = 20261124
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Selection:
    """A named set of runs: what the user typed and the runs it matched."""

    spec: str
    description: str
    run_ids: tuple[str, ...]
    #: every part of the spec named runs by id: such sides are paired even when their configurations differ
    by_run_id: bool = False


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
    #: where the noise between sessions came from: "processes" (several runs a side), "history" (earlier
    #: sessions), "floor" (unknown: :data:`SESSION_SHIFT_FLOOR` assumed) or "" (a per-run metric)
    session_noise: str = ""
    #: inconclusive because the change cannot be told from a whole-session shift (one process a side, no
    #: history): more processes (policy.processes) or a history would decide it
    shift_unknown: bool = False
    #: the candidate's configuration where it differs from the baseline's (``compare --run`` pairs by position)
    candidate_config: str = ""

    @property
    def regressed(self) -> bool:
        """Whether this pair is a regression (verdict ``slower``)."""
        return self.verdict == "slower"

    def config(self) -> str:
        """The configuration, with its marks, as one line."""
        settings = _fmt_settings(self.settings)
        marks = f" ({self.marks})" if self.marks else ""
        line = f"{self.model} on {self.target}{marks} [{self.backend}{' ' + settings if settings else ''}]"
        return f"{line} vs {self.candidate_config}" if self.candidate_config else line


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
    #: two runs named by id with different configurations, paired: what differs (``run_differences``)
    differences: list[dict[str, str]] = field(default_factory=list)
    #: configurations whose runs were left out of the sample-based metrics: aggregate-only runs (an imported log, a
    #: vendor runner's summary) have no samples to test
    aggregate_only: list[str] = field(default_factory=list)
    #: configurations compared although their offload verdict changed (--allow-offload-change), with the change
    offload_changed: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[PairResult]:
        """The pairs that regressed."""
        return [p for p in self.pairs if p.regressed]

    @property
    def undecided(self) -> list[PairResult]:
        """The pairs that may have slowed down by more than the threshold but whose change cannot be told from a
        whole-session shift (``shift_unknown``): a CI gate's "measure again", not "ok" (exit status 6)."""
        return [p for p in self.pairs if p.shift_unknown and p.ratio > 1.0]

    def to_dict(self) -> dict[str, Any]:
        """The comparison as JSON-ready data (``--format json``)."""
        return {
            "baseline": asdict(self.baseline),
            "candidate": asdict(self.candidate),
            "alpha": self.alpha,
            "min_change": self.min_change,
            "confidence": CONFIDENCE,
            "regressed": bool(self.regressions),
            "inconclusive": bool(self.undecided) and not self.regressions,
            "pairs": [dict(asdict(p), regressed=p.regressed) for p in self.pairs],
            "only_baseline": self.only_baseline,
            "only_candidate": self.only_candidate,
            "differences": self.differences,
            "aggregate_only": self.aggregate_only,
            "offload_changed": self.offload_changed,
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
    return Selection(spec=spec, description=", ".join(kinds), run_ids=tuple(ids),
                     by_run_id=all(k.startswith("run ") for k in kinds))


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
    ids = ok["run_id"].astype(str)
    by_run = ok[ids.str.startswith(part) | ids.str.endswith(part)]  # as Store.run: the table shows the suffix
    if len(by_run) > 1:
        raise AnalysisError(f"run id prefix {part!r} is ambiguous ({len(by_run)} runs)")
    if len(by_run) == 1:
        return by_run, f"run {by_run['run_id'].iloc[0]}"
    labels = ok["labels"].map(_labels)
    return ok[labels.map(lambda d: part in {str(v) for v in d.values()})], f"label value {part}"


def default_selections(store: Store, runs: pd.DataFrame | None = None) -> tuple[Selection, Selection]:
    """The last two sessions of the same plan (the newest session's plan). Runs of a ``compare --run`` session
    (labelled ``ab``) are left out: such a session holds both sides of an A/B, not one state of a plan."""
    runs = store.runs() if runs is None else runs
    ok = runs[runs["status"] == "ok"]
    ok = ok[~ok["labels"].map(lambda v: "ab" in _labels(v))]
    if ok.empty:
        raise AnalysisError(f"{store.root}: no successful runs to compare (outside `compare --run` sessions: "
                            "name BASELINE and CANDIDATE)")
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


def _resampled_medians(x: npt.NDArray[np.float64], counts: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.float64]:
    """The median of each resample of ``x``, ``counts[r, i]`` being how often resample ``r`` drew ``x[i]``: to the bit
    ``np.median(x[idx], axis=-1)`` of the index matrix those counts come from, without a partition of every row. In
    ``x``'s order the counts' running total says which values are a row's middle ones (one cumsum over all rows, the
    running total at the end of row ``r`` being ``(r + 1) * n``); the two middle values' mean, as numpy's, where ``n``
    is even."""
    resamples, n = counts.shape
    order = np.argsort(x, kind="stable")
    cum = np.take(counts, order, axis=1).ravel().cumsum(dtype=counts.dtype)  # take: C order, ravel copies nothing
    offsets = np.arange(resamples, dtype=counts.dtype) * n
    lo = np.searchsorted(cum, offsets + (n - 1) // 2, side="right") - offsets
    hi = np.searchsorted(cum, offsets + n // 2, side="right") - offsets
    ordered = x[order]
    return np.asarray((ordered[lo] + ordered[hi]) / 2, dtype=np.float64)


@functools.lru_cache(maxsize=4)
def _resample_counts(seed: int, resamples: int, n_base: int, n_cand: int) -> tuple[npt.NDArray[np.integer[Any]], ...]:
    """The bootstrap's resamples of each side as counts (row ``r``, column ``i``: how often resample ``r`` drew item
    ``i``), from the index matrices scipy draws (``rng.integers(0, n, (resamples, n))`` for each side in turn, from a
    generator seeded afresh). The same for every test of the same sizes and seed, so made once for all (read-only; a
    few recent sizes kept: a comparison cycles through its metrics' block counts)."""
    rng = np.random.default_rng(seed)
    out: list[npt.NDArray[np.integer[Any]]] = []
    for n in (n_base, n_cand):
        idx = rng.integers(0, n, (resamples, n))
        idx += (np.arange(resamples) * n)[:, None]
        dtype = np.int32 if resamples * n < 2**31 else np.int64
        counts: npt.NDArray[np.integer[Any]] = np.bincount(idx.ravel(), minlength=resamples * n).astype(dtype)
        counts = counts.reshape(resamples, n)
        counts.flags.writeable = False
        out.append(counts)
    return tuple(out)


def _bootstrap_ratio(base: npt.NDArray[np.float64], cand: npt.NDArray[np.float64], seed: int,
                     resamples: int = RESAMPLES) -> tuple[float, float]:
    """Percentile CI of median(cand) / median(base), each side resampled independently (with the block
    statistics: a block bootstrap, the correlation inside a block is kept). Works on one number per block,
    so its cost does not grow with the samples per block.

    The same computation as ``scipy.stats.bootstrap((base, cand), ..., method="percentile", vectorized=True,
    rng=np.random.default_rng(seed))``, to the bit (the same index matrices from the same generator, the same
    medians and percentiles), without scipy's per-call overhead and with a faster median
    (:func:`_resampled_medians`)."""
    b_counts, c_counts = _resample_counts(seed, resamples, base.size, cand.size)
    theta = _resampled_medians(cand, c_counts) / _resampled_medians(base, b_counts)
    alpha = (1 - CONFIDENCE) / 2
    return float(np.percentile(theta, alpha * 100)), float(np.percentile(theta, (1 - alpha) * 100))


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
    #: the two-level test (:func:`compare_processes`): the runs' spread holds the noise between processes
    processes: bool = False


def compare_series(base_ns: npt.ArrayLike, cand_ns: npt.ArrayLike, q: float = 0.5, *, seed: int = SEED,
                   resamples: int = RESAMPLES, known: tuple[float, float] | None = None) -> _Test:
    """Compare the ``q`` quantile of two latency series (in time order), block-wise.

    Returns raw p values (one-sided, both directions) of the Mann-Whitney test on
    block statistics, the ratio of the median block statistics and its block-bootstrap CI
    (``baseline``/``candidate`` stay the raw quantiles of all samples, for display: ``known`` gives them
    when the caller has them already, ``np.quantile`` of each side).
    """
    from scipy import stats as sps  # imported here: scipy takes ~1 s, and the CLI starts without it
    base = np.asarray(base_ns, dtype=np.float64)
    cand = np.asarray(cand_ns, dtype=np.float64)
    size = max(block_size(base), math.ceil(base.size / MAX_BLOCKS))
    if q > 0.9:
        # A tail quantile needs enough inferences per block to exist at all.
        size = max(size, P99_BLOCK_COUNT)
    bb, cb = _blocks(base, size), _blocks(cand, size)
    if known is not None:
        b_q, c_q = known
    else:
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
    bootstrap CI of the ratio of medians (:func:`_bootstrap_ratio`) when each side has >= 2 runs."""
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
        lo, hi = _bootstrap_ratio(b, c, seed, resamples)
    return _Test(bm, cm, ratio, lo, hi, p_slower, p_faster, int(b.size), int(c.size), f"{b.size} and {c.size} runs")


def compare_processes(base_runs: Sequence[npt.ArrayLike], cand_runs: Sequence[npt.ArrayLike],
                      q: float = 0.5) -> _Test:
    """Compare the ``q`` quantile of two sets of runs, one agent process each: the two-level test.

    Each process gives one number, its quantile; the test is Welch's t (``scipy.stats.ttest_ind``, unequal
    variances) on their logarithms, the ratio the geometric mean ratio and its interval the t interval of the
    difference (99%), exponentiated. A process's quantile varies by the noise between processes plus the noise
    of its own samples, so the spread of these numbers carries both levels (the summary-statistic analysis of a
    nested design: exact where the processes have alike sample counts). Needs two processes a side."""
    from scipy import stats as sps  # imported here: scipy takes ~1 s, and the CLI starts without it
    b = np.log([float(np.quantile(np.asarray(r, dtype=np.float64), q)) for r in base_runs if np.size(r)])
    c = np.log([float(np.quantile(np.asarray(r, dtype=np.float64), q)) for r in cand_runs if np.size(r)])
    nb, nc = len(b), len(c)
    b_q = float(np.exp(np.mean(b))) if nb else math.nan
    c_q = float(np.exp(np.mean(c))) if nc else math.nan
    ratio = c_q / b_q if nb and nc else math.nan
    nan = math.nan
    if min(nb, nc) < 2:
        return _Test(b_q, c_q, ratio, nan, nan, nan, nan, nb, nc, "too few processes (need 2 a side)",
                     processes=True)
    if np.ptp(b) == 0 and np.ptp(c) == 0:  # no spread at all (a replayed run): the ratio is exact
        same = bool(c[0] == b[0])
        p_slower = 1.0 if c[0] <= b[0] else 0.0
        p_faster = 1.0 if c[0] >= b[0] else 0.0
        return _Test(b_q, c_q, ratio, ratio, ratio, 1.0 if same else p_slower, 1.0 if same else p_faster, nb, nc,
                     f"{nb} and {nc} processes, no spread", processes=True)
    with warnings.catch_warnings():
        # processes that agree to the nanosecond make scipy warn of precision loss; the interval is then ~exact
        warnings.simplefilter("ignore", RuntimeWarning)
        res = sps.ttest_ind(c, b, equal_var=False, alternative="two-sided")
        ci = res.confidence_interval(confidence_level=CONFIDENCE)
    p_slower = float(sps.t.sf(res.statistic, res.df))  # one-sided: the candidate's quantiles are higher
    p_faster = float(sps.t.cdf(res.statistic, res.df))
    return _Test(b_q, c_q, ratio, float(np.exp(ci.low)), float(np.exp(ci.high)), p_slower, p_faster, nb, nc,
                 f"{nb} and {nc} processes (Welch t on log quantiles)", processes=True)


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
             with_history: bool, margin: float | None = None) -> str:
    """``slower`` needs the adjusted p below alpha, a change of at least the threshold and an interval
    that excludes 1. With the baseline's session history, the interval includes the noise between
    sessions (:func:`_with_session_noise`); without it that noise is unknown, so the interval's bound
    must clear the threshold itself (or ``margin``, where given)."""
    if not math.isfinite(t.ratio):
        return "inconclusive"
    if margin is None:
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


_Key = tuple[str, str, str, str]


def _history_cvs(runs: pd.DataFrame, values: pd.Series, before: pd.Timestamp,
                 exclude: set[str]) -> dict[_Key, tuple[float, int]]:
    """Configuration -> (CV of the per-session medians of one metric, number of sessions), for every configuration
    (``_key``) of ``runs`` with >= 3 sessions up to ``before`` that have the metric (``values``: run id -> value),
    the runs in ``exclude`` left out. The sessions' medians of every configuration are taken in one groupby; each
    configuration's CV is then ``std(ddof=1) / mean`` of its medians (in session order)."""
    same = runs[(runs["started_at"] <= before) & ~runs["run_id"].isin(exclude) & runs["run_id"].isin(values.index)]
    if same.empty:
        return {}
    codes, keys = pd.factorize(same["_key"])
    per_session = (same.assign(m=same["run_id"].map(values).astype("float64"), _code=codes)
                   .groupby(["_code", "session_id"])["m"].median())
    out: dict[_Key, tuple[float, int]] = {}
    for code, medians in per_session.groupby(level="_code", sort=False):
        if len(medians) < 3:
            continue
        mean = float(medians.mean())
        if mean > 0:
            out[keys[int(code)]] = (float(medians.std(ddof=1) / mean), len(medians))
    return out


@dataclass
class _Inputs:
    """What the pair tests read, loaded once for the whole comparison."""

    #: run id -> timed latencies in the order measured (the two selections' runs only)
    latencies: dict[str, npt.NDArray[Any]]
    #: metric -> configuration -> (session-to-session CV, sessions it came from), where >= 3 sessions have it
    history_cv: dict[str, dict[_Key, tuple[float, int]]]
    #: run id -> energy per inference (mJ)
    energy: pd.Series
    #: one side's runs (their ids) -> their latencies joined and the p50 and p99 of them, made once for both
    #: metrics (one partition of the samples instead of one per metric)
    series: dict[tuple[str, ...], tuple[npt.NDArray[Any], dict[float, float]]] = field(default_factory=dict)

    def joined(self, run_ids: Sequence[str]) -> tuple[npt.NDArray[Any], dict[float, float]]:
        key = tuple(run_ids)
        found = self.series.get(key)
        if found is None:
            arr = np.concatenate([self.latencies[r] for r in key]).astype(np.float64, copy=False)
            qs = np.quantile(arr, (0.5, 0.99)) if arr.size else (math.nan, math.nan)
            found = self.series[key] = (arr, {0.5: float(qs[0]), 0.99: float(qs[1])})
        return found


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
    summary = _history_summaries(store, past[past["session_id"].isin(set(recent))])
    history = {"p50": summary["p50_ns"].dropna(), "p99": summary["p99_ns"].dropna()}
    wanted_ids = set(base_runs["run_id"]) | set(cand_runs["run_id"])
    latencies = store.timed_latencies(wanted_ids)  # those runs' files (or row groups) only, as Arrow
    return history, latencies


def _history_summaries(store: Store, runs: pd.DataFrame) -> pd.DataFrame:
    """p50_ns and p99_ns of ``runs`` by run id, as :meth:`Store.summary` gives them: from the stored summaries
    (schema v2), and through :meth:`Store.summary` only for the runs that have none or are aggregate-only (a
    vendor runner's own figures), so the history costs a read of the summaries table, not of every run."""
    columns = ["p50_ns", "p99_ns"]
    stored = store.stored_summaries(set(runs["run_id"]))
    agg = runs["aggregate_only"].eq(True) if "aggregate_only" in runs else pd.Series(False, index=runs.index)
    rest = set(runs.loc[agg | ~runs["run_id"].isin(stored.index), "run_id"])
    stored = stored.loc[stored.index.difference(sorted(rest))]
    stored = stored.loc[stored["count"] > 0, columns]  # a run without samples has no statistics
    if not rest:
        return stored
    computed = store.summary(rest).set_index("run_id")[columns]
    return pd.concat([stored, computed]) if not stored.empty else computed


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
    mine = runs[runs["_key"].isin(set(common))]
    before, exclude = pd.to_datetime(base_runs["started_at"]).max(), set(cand_runs["run_id"])
    return _Inputs(latencies=latencies, energy=energy,
                   history_cv={m: _history_cvs(mine, v, before, exclude) for m, v in history.items()})


def _marks(b: pd.DataFrame, c: pd.DataFrame) -> str:
    """The marks of one configuration's runs: "emulated" and/or "stand-in" when any run on either side was."""
    return ", ".join(name for name, col in (("emulated", "emulated"), ("stand-in", "stand_in"))
                     if any(col in side and side[col].fillna(False).astype(bool).any() for side in (b, c)))


def _threshold(inputs: _Inputs, key: _Key, metric: str, min_change: float) -> tuple[float, float | None, int]:
    """(threshold, session-to-session CV or None, sessions it came from) of one configuration's metric."""
    found = inputs.history_cv.get(metric, {}).get(key)
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
        if len(bl) >= 2 and len(cl) >= 2:  # one run per agent process: the two-level test
            return compare_processes(bl, cl, 0.5 if metric == "p50" else 0.99), 1e-6
        q = 0.5 if metric == "p50" else 0.99
        (base, b_qs), (cand, c_qs) = (inputs.joined([r for r in side["run_id"] if r in inputs.latencies])
                                      for side in (b, c))
        return compare_series(base, cand, q, seed=seed, resamples=resamples, known=(b_qs[q], c_qs[q])), 1e-6
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


def _test_pairs(base_runs: pd.DataFrame, cand_runs: pd.DataFrame, common: list[tuple[_Key, _Key]],
                inputs: _Inputs, metrics: Sequence[str], min_change: float, seed: int,
                resamples: int) -> list[tuple[PairResult, _Test]]:
    """Every pair of configurations (baseline's, candidate's) and metric with data on both sides, tested (raw p
    values)."""
    tests: list[tuple[PairResult, _Test]] = []
    base_by_key = dict(iter(base_runs.groupby("_key", sort=False)))
    cand_by_key = dict(iter(cand_runs.groupby("_key", sort=False)))
    for key, cand_key in common:
        b, c = base_by_key.get(key, base_runs.iloc[:0]), cand_by_key.get(cand_key, cand_runs.iloc[:0])
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
                              n_baseline=t.n_baseline, n_candidate=t.n_candidate, note=t.note, marks=marks,
                              candidate_config=_fmt_key(cand_key) if cand_key != key else "")
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


def _conclude(pair: PairResult, t: _Test, q_slower: float, q_faster: float, alpha: float,
              shift_floor: float = SESSION_SHIFT_FLOOR) -> None:
    """Fill in ``pair``'s q value, its interval widened by the session history, its note and its verdict."""
    pair.q_value = q_slower
    qs = q_slower if math.isfinite(q_slower) else 1.0
    qf = q_faster if math.isfinite(q_faster) else 1.0
    margin: float | None = None
    if t.processes:
        pair.session_noise = "processes"
        extra = "interval from the spread between processes"
        margin = 0.0
        if pair.history_cv is not None:
            # A slow spell that lasts a whole session moves all its processes alike: the spread between them
            # cannot see it, the history can. Counting both is conservative (the history holds some of the
            # spread between processes too).
            t.ci_low, t.ci_high = _with_session_noise(t, pair.history_cv, pair.history_sessions)
            pair.ci_low, pair.ci_high = t.ci_low, t.ci_high
            extra += (f", widened by {pair.history_cv:.1%} session-to-session variation "
                      f"({pair.history_sessions} sessions)")
    elif pair.history_cv is not None:
        t.ci_low, t.ci_high = _with_session_noise(t, pair.history_cv, pair.history_sessions)
        pair.ci_low, pair.ci_high = t.ci_low, t.ci_high
        pair.session_noise = "history"
        extra = (f"interval includes {pair.history_cv:.1%} session-to-session variation "
                 f"({pair.history_sessions} sessions)")
    elif METRICS[pair.metric][1] == "samples":
        pair.session_noise = "floor"
        margin = max(pair.threshold, shift_floor)
        extra = (f"one process a side and no session history: the bound must clear {margin:.1%}, a whole-session "
                 "shift")
    else:
        extra = "no session history (< 3 earlier sessions): the bound must clear the threshold"
    pair.note = "; ".join(x for x in (pair.note, extra) if x)
    pair.verdict = _verdict(t, qs, qf, pair.threshold, alpha, with_history=pair.history_cv is not None,
                            margin=margin)
    if pair.session_noise == "floor" and pair.verdict not in ("slower", "faster"):
        within = _verdict(t, qs, qf, pair.threshold, alpha, with_history=True, margin=0.0)
        if within in ("slower", "faster"):
            pair.verdict = "inconclusive"
            pair.shift_unknown = True
            pair.note += (f"; {within} within this session, but by less than a whole session can shift: "
                          "measure again with policy.processes = 3 or more (or keep >= 3 sessions of history)")


def _offload_changes(base_runs: pd.DataFrame, cand_runs: pd.DataFrame,
                     common: Sequence[tuple[_Key, _Key]]) -> list[str]:
    """The compared configurations whose offload verdict differs between the sides (accelerator, or accelerated and
    total nodes; harness/analysis/offload.py), each as ``configuration: offload changed: reason``."""
    from harness.analysis.offload import differs, from_column

    if "offload" not in base_runs.columns:
        return []
    out: list[str] = []
    for bkey, ckey in common:
        base = [from_column(v) for v in base_runs.loc[base_runs["_key"] == bkey, "offload"]]
        cand = [from_column(v) for v in cand_runs.loc[cand_runs["_key"] == ckey, "offload"]]
        reason = next((r for b in base for c in cand for r in (differs(b, c),) if r), None)
        if reason:
            what = _fmt_key(bkey) if bkey == ckey else f"{_fmt_key(bkey)} vs {_fmt_key(ckey)}"
            out.append(f"{what}: offload changed: {reason}")
    return out


def compare(store: Store, baseline: Selection, candidate: Selection, *, alpha: float = DEFAULT_ALPHA,
            min_change: float = DEFAULT_MIN_CHANGE, metrics: Sequence[str] = tuple(METRICS),
            seed: int = SEED, resamples: int = RESAMPLES, runs: pd.DataFrame | None = None,
            shift_floor: float = SESSION_SHIFT_FLOOR, pairing: Sequence[tuple[str, str]] | None = None,
            allow_offload_change: bool = False) -> Comparison:
    """Compare two selections of the store, configuration by configuration (see the module docstring).
    ``runs`` is ``store.runs()`` when the caller has it already. ``pairing``: (baseline run id, candidate run id)
    of each pair of configurations to compare (:func:`pairing_by_runs`; ``compare --run``), instead of the
    configurations both sides have. Runs of one configuration whose offload verdict differs (another accelerator,
    or another share of the model on it) are not comparable: AnalysisError names the first, unless
    ``allow_offload_change``; configurations paired on purpose (two run ids, ``pairing``) are compared with the
    change listed."""
    _check_metrics(metrics)
    runs = _ok_runs(store.runs() if runs is None else runs)
    base_runs, cand_runs = _sides(runs, baseline, candidate)
    cand_runs, differences = _pair_by_run_id(base_runs, cand_runs, baseline, candidate)
    base_keys, cand_keys = set(base_runs["_key"]), set(cand_runs["_key"])
    common = pairing_by_runs(runs, pairing) if pairing is not None else [(k, k) for k in sorted(base_keys & cand_keys)]
    paired_b, paired_c = {b for b, _ in common}, {c for _, c in common}
    out = Comparison(baseline, candidate, alpha=alpha, min_change=min_change,
                     only_baseline=[_fmt_key(k) for k in sorted(base_keys - paired_b)],
                     only_candidate=[_fmt_key(k) for k in sorted(cand_keys - paired_c)], differences=differences)
    if not common:
        raise AnalysisError("baseline and candidate have no configuration (model, target, backend, settings) in common"
                            " (name one run on each side, by id, to compare two configurations)")
    changed = _offload_changes(base_runs, cand_runs, common)
    if changed and not allow_offload_change and not differences and pairing is None:
        first = changed[0]
        more = f" (and {len(changed) - 1} more configuration{'s' if len(changed) > 2 else ''})" if len(changed) > 1 else ""
        raise AnalysisError(f"{first.replace(': offload changed', more + ': not comparable, offload changed', 1)}: "
                            "the accelerator ran another part of the model; --allow-offload-change compares them anyway")
    out.offload_changed = changed
    inputs = _load_inputs(store, runs, base_runs, cand_runs, sorted(paired_b | paired_c), metrics)
    tests = _test_pairs(base_runs, cand_runs, common, inputs, metrics, min_change, seed, resamples)
    out.aggregate_only = _aggregate_only(base_runs, cand_runs, sorted(paired_b | paired_c), metrics)
    if out.aggregate_only and not tests:
        raise AnalysisError(
            f"compare: the runs in common are aggregate-only ({out.aggregate_only[0]}"
            f"{f' and {len(out.aggregate_only) - 1} more' if len(out.aggregate_only) > 1 else ''}: an imported log or "
            "a vendor runner's own summary, no samples), so no test can call one side slower; `hilbench results` "
            "shows their figures side by side")
    for (pair, t), (q_slower, q_faster) in zip(tests, _bh_adjust(tests), strict=True):
        _conclude(pair, t, q_slower, q_faster, alpha, shift_floor)
        out.pairs.append(pair)
    return out


# ----------------------------------------------------------------------------- two runs named by id


#: run columns whose values are compared between two paired runs: (column, what it is)
_DIFF_COLUMNS = (("model", "model"), ("model_sha256", "model sha256"), ("model_format", "model format"),
                 ("target", "target"), ("device_model", "device"), ("backend", "backend"),
                 ("hilbench_version", "hilbench"), ("agent_version", "agent"), ("python", "python"), ("os", "os"))


def _pair_by_run_id(base_runs: pd.DataFrame, cand_runs: pd.DataFrame, baseline: Selection, candidate: Selection
                    ) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """The candidate's runs, keyed as the baseline's when both sides name runs by id and each holds one
    configuration, different ones; and what differs between them (empty when nothing was paired)."""
    base_keys, cand_keys = set(base_runs["_key"]), set(cand_runs["_key"])
    if not (baseline.by_run_id and candidate.by_run_id and len(base_keys) == 1 == len(cand_keys)
            and base_keys != cand_keys):
        return cand_runs, []
    (key,) = base_keys
    paired = cand_runs.copy()
    paired["_key"] = [key] * len(paired)
    return paired, run_differences(base_runs, cand_runs)


def _one_value(values: pd.Series) -> str:
    """The distinct values of a column on one side, as text (``a | b`` when the side's runs disagree)."""
    seen = [str(v) for v in dict.fromkeys(values.dropna().tolist()) if str(v) != ""]
    return " | ".join(seen) if seen else "-"


def _runtime_version(run: Any) -> str:
    """The backend's version from a run's hello (``device``), as stored; ``""`` when absent."""
    backends = json_object(run.get("device")).get("backends")
    backend = json_object(backends.get(run.get("backend"))) if isinstance(backends, dict) else {}
    return str(backend.get("version") or "")


def run_differences(base_runs: pd.DataFrame, cand_runs: pd.DataFrame) -> list[dict[str, str]]:
    """What differs between two sides' runs: ``{"what", "baseline", "candidate"}`` per model, model sha256,
    format, target, device, backend, runtime version, setting (one entry per key), hilbench, agent, Python
    and OS that are not the same on both sides."""
    out = []
    for col, what in _DIFF_COLUMNS:
        if col in base_runs and col in cand_runs:
            b, c = _one_value(base_runs[col]), _one_value(cand_runs[col])
            if b != c:
                out.append({"what": what, "baseline": b, "candidate": c})
        if col == "backend":
            b = _one_value(pd.Series([_runtime_version(r) for _, r in base_runs.iterrows()], dtype=object))
            c = _one_value(pd.Series([_runtime_version(r) for _, r in cand_runs.iterrows()], dtype=object))
            if b != c:
                out.append({"what": "runtime version", "baseline": b, "candidate": c})
    bs = [_labels(v) for v in base_runs["settings"]]
    cs = [_labels(v) for v in cand_runs["settings"]]
    for k in sorted({k for d in bs + cs for k in d}):
        b = _one_value(pd.Series([json.dumps(d[k]) if k in d else None for d in bs], dtype=object))
        c = _one_value(pd.Series([json.dumps(d[k]) if k in d else None for d in cs], dtype=object))
        if b != c:
            out.append({"what": f"setting {k}", "baseline": b, "candidate": c})
    return out


def _fmt_differences(c: Comparison) -> list[str]:
    """Lines naming what differs between two paired runs (empty when the sides share their configuration)."""
    if not c.differences:
        return []
    lines = ["paired by run id: the two runs differ in"]
    lines += [f"  {d['what']}: {d['baseline']} -> {d['candidate']}" for d in c.differences]
    return lines


def pairing_by_runs(runs: pd.DataFrame, pairs: Sequence[tuple[str, str]]) -> list[tuple[_Key, _Key]]:
    """The configurations (baseline's, candidate's) of each (baseline run id, candidate run id), each pair once,
    in the order given; AnalysisError naming a run id that is not a successful run."""
    runs = runs if "_key" in runs else _ok_runs(runs)
    key_of = dict(zip(runs["run_id"], runs["_key"], strict=True))
    out: list[tuple[_Key, _Key]] = []
    for b, c in pairs:
        for rid in (b, c):
            if rid not in key_of:
                raise AnalysisError(f"run {rid}: not a successful run of the store")
        pair = (key_of[b], key_of[c])
        if pair not in out:
            out.append(pair)
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
    if not reg and c.undecided:
        status = (f"INCONCLUSIVE: {len(c.undecided)} of {len(c.pairs)} comparisons slower within their sessions by "
                  "less than a whole session can shift; measure again with policy.processes = 3 or more, or keep a "
                  "history of >= 3 sessions")
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
    head += _fmt_differences(c)
    tail = [f"only in baseline: {k}" for k in c.only_baseline] + [f"only in candidate: {k}" for k in c.only_candidate]
    tail += [f"not tested on p50/p99 (aggregate-only runs, no samples): {k}" for k in c.aggregate_only]
    tail += [f"compared although the offload differs: {k}" for k in c.offload_changed]
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
                       failures=str(len(c.regressions)), errors="0",
                       skipped=str(len([p for p in c.undecided if not p.regressed])))
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="baseline", value=safe(c.baseline.spec, None))
    ET.SubElement(props, "property", name="candidate", value=safe(c.candidate.spec, None))
    for d in c.differences:
        ET.SubElement(props, "property", name=safe(f"differs: {d['what']}", None),
                      value=safe(f"{d['baseline']} -> {d['candidate']}", None))
    for p in c.pairs:
        case = ET.SubElement(suite, "testcase", classname=safe(p.config(), None), name=safe(p.metric, None))
        summary = (f"{p.metric}: {_num(p.baseline)} -> {_num(p.candidate)} {p.unit}, {_change(p)}, "
                   f"q={_num(p.q_value, 4)}, threshold {p.threshold * 100:.1f}%: {p.verdict}")
        if p.regressed:
            fail = ET.SubElement(case, "failure", message=f"{p.metric} slower by {(p.ratio - 1) * 100:.1f}%",
                                 type="regression")
            fail.text = safe(summary, None)
        elif p in c.undecided:
            ET.SubElement(case, "skipped", message="inconclusive: cannot be told from a whole-session shift")
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
