"""The stability verdict of one run: can its numbers be trusted, and if not, what to change.

Like trtexec and MLPerf LoadGen, a run is *INVALID* when its numbers cannot mean
what they claim (no samples, a clock that did not advance, fewer samples than
the percentile asked for needs). Like pyperf and hyperfine, a valid run can still
carry *warnings* (high variation, slow first run, outliers, drift), each with a
remedy that depends on the settings the run already used: a fixed warm-up count
gets "use ``warmup = "stable"``", an unpinned run gets "pin the cores".

The thresholds and their sources are in ``docs/methodology.md``. All checks are
pure functions of the raw latencies; nothing here measures, prints or exits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.analysis.stats import quantile_ci
from harness.errors import StoreError

__all__ = [
    "StabilityWarning",
    "Verdict",
    "VERDICT_VERSION",
    "LOADGEN_MIN_SAMPLES",
    "min_samples_for_percentile",
    "assess",
]

#: Version of :meth:`Verdict.to_dict`'s format (stored as JSON in the runs table).
VERDICT_VERSION = 1

#: MLPerf LoadGen's minimum sample counts for a percentile (its early-stopping
#: floors for SingleStream with no sample over the target, loadgen/early_stopping.cc).
LOADGEN_MIN_SAMPLES: dict[float, int] = {90.0: 64, 95.0: 130, 99.0: 662}

# The tail probability that reproduces LoadGen's three floors (p^n <= 0.0013 gives
# 64, 130 and 662 exactly); used for percentiles LoadGen has no floor for.
_FLOOR_TAIL = 0.0013


@dataclass(frozen=True)
class StabilityWarning:
    """A reason to doubt a valid run's numbers: ``code`` (stable identifier),
    ``message`` (what was seen, with the numbers) and ``remedy`` (what to change,
    given the settings this run used)."""

    code: str
    message: str
    remedy: str

    def to_dict(self) -> dict[str, str]:
        """The warning as stored."""
        return {"code": self.code, "message": self.message, "remedy": self.remedy}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StabilityWarning:
        """Read a stored warning; :class:`StoreError` when it has no code or message."""
        try:
            return cls(code=str(data["code"]), message=str(data["message"]), remedy=str(data.get("remedy", "")))
        except (KeyError, TypeError) as exc:
            raise StoreError(f"stability warning: expected code and message, got {data!r}") from exc


@dataclass(frozen=True)
class Verdict:
    """The stability verdict of one run.

    ``valid`` is False when any of ``reasons`` holds (each a one-line sentence
    saying why, and what to do); ``warnings`` never make a run invalid.
    Stored as ``to_dict()``::

        {"version": 1, "valid": true, "reasons": ["..."],
         "warnings": [{"code": "high_cv", "message": "...", "remedy": "..."}]}
    """

    valid: bool
    reasons: list[str] = field(default_factory=list)
    warnings: list[StabilityWarning] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The verdict as stored (see the class docstring)."""
        return {
            "version": VERDICT_VERSION,
            "valid": self.valid,
            "reasons": list(self.reasons),
            "warnings": [w.to_dict() for w in self.warnings],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """Read a stored verdict; a newer format version is refused with :class:`StoreError`."""
        if not isinstance(data, Mapping):
            raise StoreError(f"stability verdict: expected an object, got {type(data).__name__}")
        version = data.get("version", VERDICT_VERSION)
        if not isinstance(version, int) or version > VERDICT_VERSION:
            raise StoreError(
                f"stability verdict has format version {version!r}; this hilbench reads up to "
                f"{VERDICT_VERSION}: upgrade hilbench"
            )
        if "valid" not in data:
            raise StoreError("stability verdict: missing 'valid'")
        reasons = data.get("reasons") or []
        warnings = data.get("warnings") or []
        if not isinstance(reasons, list) or not isinstance(warnings, list):
            raise StoreError("stability verdict: 'reasons' and 'warnings' must be lists")
        return cls(
            valid=bool(data["valid"]),
            reasons=[str(r) for r in reasons],
            warnings=[StabilityWarning.from_dict(w) for w in warnings],
        )


def min_samples_for_percentile(percentile: float) -> int:
    """The fewest timed samples a run needs to report ``percentile`` (0 < p < 100).

    90, 95 and 99 use MLPerf LoadGen's floors (64, 130, 662). Any other
    percentile uses the rule those three floors follow: the smallest ``n`` with
    ``max(q, 1 - q) ** n <= 0.0013`` (``q = p / 100``), i.e. with fewer samples
    there is more than a 0.13% chance that every sample lies on one side of the
    true quantile. p50 needs 10, p99.9 needs 6,643.
    """
    p = float(percentile)
    if not 0.0 < p < 100.0:
        raise ValueError(f"percentile must be between 0 and 100, got {percentile}")
    if p in LOADGEN_MIN_SAMPLES:
        return LOADGEN_MIN_SAMPLES[p]
    q = max(p / 100.0, 1.0 - p / 100.0)
    n = max(1, math.ceil(math.log(_FLOOR_TAIL) / math.log(q)))
    while q**n > _FLOOR_TAIL:  # guard the float rounding of the ratio
        n += 1
    return n


# --- what the settings say -------------------------------------------------------------


def _warmup(settings: Mapping[str, Any]) -> tuple[str, int]:
    """("none" | "count" | "stable" | "time" | "unknown", count) from the plan's warm-up policy."""
    w = settings.get("warmup")
    if w is None:
        return "unknown", 0
    if isinstance(w, str):
        return ("stable", 0) if w == "stable" else ("unknown", 0)
    if isinstance(w, bool):
        return "unknown", 0
    if isinstance(w, int):
        return ("count", w) if w > 0 else ("none", 0)
    if isinstance(w, Mapping):
        if w.get("until_stable"):
            return "stable", int(w.get("count") or 0)
        count = int(w.get("count") or 0)
        if w.get("min_s"):
            return "time", count
        return ("count", count) if count > 0 else ("none", 0)
    return "unknown", 0


def _threads(settings: Mapping[str, Any]) -> int | None:
    """The thread count asked for; None when left to the runtime (unset, 0 or -1)."""
    for key in ("threads", "intra_op_threads", "num_threads"):
        value = settings.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _pinned(settings: Mapping[str, Any]) -> bool:
    """Whether the run was pinned to fixed cores."""
    return bool(settings.get("affinity") or settings.get("cpu_affinity_pinned"))


def _governor(settings: Mapping[str, Any]) -> str | None:
    """The CPU governor the run reported, or None where unknown."""
    gov = settings.get("governor") or settings.get("cpu_governor")
    return str(gov) if gov else None


def _rate_hz(settings: Mapping[str, Any]) -> float | None:
    """The fixed rate the timed phase was paced at (Hz), or None when it ran back to back."""
    timed = settings.get("timed")
    rate = timed.get("rate_hz") if isinstance(timed, Mapping) else None
    rate = rate if rate is not None else settings.get("rate_hz")
    return float(rate) if isinstance(rate, (int, float)) and rate > 0 else None


def _warmup_remedy(settings: Mapping[str, Any], *, seen: bool = True) -> str:
    """What to change about the warm-up; ``seen``: the timed samples show it was too short."""
    kind, count = _warmup(settings)
    short = "was too short" if seen else "may not cover the rest of the one-time cost"
    if kind == "none":
        return 'there was no warm-up: set warmup = "stable" in the plan so it runs until the latency settles'
    if kind == "count":
        return f'the fixed warm-up of {count} iterations {short}: set warmup = "stable" in the plan to calibrate it'
    if kind == "time":
        return f'the timed warm-up {short}: set warmup = "stable" in the plan, or raise warmup.min_s'
    if kind == "stable":
        if not seen:
            return "the warm-up already ran until stable"
        return (
            "the warm-up ran until stable but stopped too early: widen warmup.window, lower warmup.tolerance "
            "or raise warmup.max_count"
        )
    return 'set warmup = "stable" in the plan so the warm-up runs until the latency settles'


def _jitter_remedies(settings: Mapping[str, Any]) -> list[str]:
    """What to change against run-to-run jitter, given the run's pinning, governor and threads."""
    out: list[str] = []
    if not _pinned(settings):
        out.append("pin the agent to fixed cores (affinity = [...] in the plan; on big.LITTLE, the big cores)")
    gov = _governor(settings)
    if gov is None:
        out.append("check the CPU governor is 'performance' (cpufreq scaling_governor on the device)")
    elif gov != "performance":
        out.append(f"set the CPU governor to 'performance' (it was {gov!r})")
    threads = _threads(settings)
    if threads is None:
        out.append(
            "set threads explicitly: the runtime default uses every core, competing with the OS and the telemetry"
        )
    elif threads > 1:
        out.append(f"try fewer threads than {threads} (e.g. threads = 1): thread wake-ups and migrations add jitter")
    out.append("stop background load on the device")
    return out


def _pct_label(p: float) -> str:
    """A percentile as written in a plan: ``p99``, ``p99.9``."""
    return f"p{p:g}"


def _ms(ns: float) -> str:
    """Nanoseconds as milliseconds, three significant digits."""
    return f"{ns / 1e6:.3g} ms"


# --- the checks -------------------------------------------------------------------


@dataclass(frozen=True)
class _Limits:
    """The thresholds :func:`assess` was given (its keyword arguments)."""

    cv_threshold: float
    first_run_factor: float
    outlier_fence: float
    outlier_fraction_threshold: float
    drift_threshold: float
    drift_window: float


@dataclass(frozen=True)
class _Run:
    """One run's finite, non-empty timed latencies with the figures every check reads."""

    x: npt.NDArray[np.float64]
    settings: Mapping[str, Any]
    limits: _Limits
    percentiles: tuple[float, ...]
    first_inference_ns: int | None

    @property
    def n(self) -> int:
        """The number of timed samples."""
        return int(self.x.size)

    @cached_property
    def quartiles(self) -> tuple[float, float, float]:
        """(Q1, median, Q3)."""
        q1, median, q3 = (float(v) for v in np.quantile(self.x, [0.25, 0.5, 0.75]))
        return q1, median, q3

    @property
    def median(self) -> float:
        """The median latency."""
        return self.quartiles[1]

    @cached_property
    def mean(self) -> float:
        """The mean latency."""
        return float(np.mean(self.x))


def _unusable(x: npt.NDArray[Any]) -> Verdict | None:
    """The INVALID verdict of a run with no samples or with non-finite ones; None when the samples are usable."""
    if x.size == 0:
        return Verdict(
            valid=False,
            reasons=["no timed samples: the timed phase recorded nothing (check timed.count and timed.min_s)"],
        )
    if not np.all(np.isfinite(x.astype(np.float64, copy=False))):
        return Verdict(valid=False, reasons=["timed samples contain NaN or infinity: the samples are corrupt"])
    return None


def _nonpositive_samples(run: _Run) -> list[str]:
    """INVALID: samples of zero or less (the clock did not advance)."""
    nonpos = int(np.count_nonzero(run.x <= 0))
    if not nonpos:
        return []
    return [
        f"{nonpos} of {run.n} timed samples are zero or negative: the clock did not advance across the "
        "invoke (a timer too coarse for this model, or a backend that did no work)"
    ]


def _timed_setting(settings: Mapping[str, Any], key: str) -> Any:
    """``key`` of the plan's timed policy (a count alone: ``count``); None where not given."""
    timed = settings.get("timed")
    if isinstance(timed, Mapping):
        return timed.get(key)
    if isinstance(timed, int) and not isinstance(timed, bool) and key == "count":
        return timed
    return None


def _more_runs_remedy(run: _Run, need: int) -> str:
    """What gets ``need`` timed runs, given what ended this run's timed phase (``timed_stop`` in the settings):
    the time limit (timed.max_s, with the time ``need`` runs take at this run's mean), the iteration cap
    (timed.max_count), or the count asked for (timed.count)."""
    stop = run.settings.get("timed_stop")
    if stop == "max_time":
        max_s = _timed_setting(run.settings, "max_s")
        limit = f" (timed.max_s = {max_s:g} s)" if isinstance(max_s, (int, float)) else ""
        seconds = math.ceil(need * run.mean * 1.1 / 1e9)
        return (f"the time limit ended the timed phase{limit}: raise timed.max_s to {seconds} s or more "
                f"({need} runs of {_ms(run.mean)})")
    if stop == "max_count":
        return f"the iteration cap ended the timed phase: raise timed.max_count to {need} or more"
    return f"raise timed.count to {need} or more"


def _too_few_for_percentiles(run: _Run) -> list[str]:
    """INVALID: fewer samples than a requested percentile needs, one reason per percentile; the remedy names
    what ended the timed phase (:func:`_more_runs_remedy`)."""
    reasons = []
    for p in run.percentiles:
        need = min_samples_for_percentile(p)
        if run.n < need:
            source = "MLPerf LoadGen's minimum" if p in LOADGEN_MIN_SAMPLES else "hilbench's minimum"
            reasons.append(
                f"{run.n} timed samples are too few for {_pct_label(p)}: it needs at least {need} ({source}); "
                f"{_more_runs_remedy(run, need)}, or drop {_pct_label(p)} from percentiles"
            )
    return reasons


def _cut_short(run: _Run) -> StabilityWarning | None:
    """``cut_short``: a limit (timed.max_s or timed.max_count) ended the timed phase before the count asked for,
    though with enough samples for every percentile (fewer is a reason, not a warning)."""
    stop = run.settings.get("timed_stop")
    count = _timed_setting(run.settings, "count")
    if stop not in ("max_time", "max_count") or not isinstance(count, int) or run.n >= count:
        return None
    if any(run.n < min_samples_for_percentile(p) for p in run.percentiles):
        return None
    if stop == "max_time":
        max_s = _timed_setting(run.settings, "max_s")
        limit = f"timed.max_s ({max_s:g} s)" if isinstance(max_s, (int, float)) else "timed.max_s"
        remedy = (f"raise timed.max_s to {math.ceil(count * run.mean * 1.1 / 1e9)} s or more ({count} runs of "
                  f"{_ms(run.mean)}), or lower timed.count to what the time allows")
    else:
        limit = "timed.max_count"
        remedy = f"raise timed.max_count to {count}, or lower timed.count"
    return StabilityWarning(
        code="cut_short",
        message=f"{limit} ended the timed phase after {run.n} of the {count} runs asked for",
        remedy=remedy,
    )


def _high_cv(run: _Run) -> StabilityWarning | None:
    """``high_cv``: the standard deviation above ``cv_threshold`` of the mean (pyperf)."""
    mean = run.mean
    if run.n < 2 or mean <= 0:
        return None
    cv = float(np.std(run.x, ddof=1)) / mean
    threshold = run.limits.cv_threshold
    if cv <= threshold:
        return None
    remedies = _jitter_remedies(run.settings)
    rate = _rate_hz(run.settings)
    if rate is not None:
        remedies.append(
            f"at a fixed rate ({rate:g} Hz) the CPU may clock down between frames: "
            "compare with an unpaced run to tell pacing from noise"
        )
    return StabilityWarning(
        code="high_cv",
        message=(
            f"the standard deviation is {cv:.1%} of the mean ({_ms(mean)}), above {threshold:.0%}: "
            "the run is unstable"
        ),
        remedy="; ".join(remedies),
    )


def _slow_first_run(run: _Run) -> StabilityWarning | None:
    """``slow_first_run``: the first inference over ``first_run_factor`` x the median (hyperfine)."""
    first, median = run.first_inference_ns, run.median
    if first is None or median <= 0 or first <= run.limits.first_run_factor * median:
        return None
    kind, _ = _warmup(run.settings)
    if kind == "stable":
        remedy = (
            "no action needed for steady-state numbers: the first inference is reported apart and the "
            "warm-up ran until stable; quote it as cold-start latency where that matters"
        )
    else:
        remedy = "the first inference is kept out of the timed samples, but " + _warmup_remedy(run.settings, seen=False)
    return StabilityWarning(
        code="slow_first_run",
        message=(
            f"the first inference took {_ms(first)}, {first / median:.0f}x the "
            f"median ({_ms(median)}): one-time initialisation (allocation, kernel compilation, caches)"
        ),
        remedy=remedy,
    )


def _outlier_fences(run: _Run) -> tuple[float, float]:
    """Tukey's far-out fences (low, high), the IQR floored at 1% of the median."""
    q1, median, q3 = run.quartiles
    iqr = max(q3 - q1, 0.01 * median)
    fence = run.limits.outlier_fence
    return q1 - fence * iqr, q3 + fence * iqr


def _outlier_remedy(run: _Run, is_out: npt.NDArray[np.bool_], n_out: int) -> str:
    """A short warm-up when most outliers come in the run's first ``drift_window``, else interference."""
    window = run.limits.drift_window
    head = max(1, math.ceil(window * run.n))
    in_head = int(np.count_nonzero(is_out[:head]))
    if in_head * 2 > n_out:
        return (
            f"{in_head} of them came in the first {window:.0%} of the run: the warm-up was too short; "
            + _warmup_remedy(run.settings)
        )
    remedy = "re-run on a quiet device; " + "; ".join(_jitter_remedies(run.settings))
    if run.settings.get("telemetry", True) is not False:
        remedy += "; if they persist, compare with telemetry = false (the sampler runs on the device too)"
    return remedy


def _outliers(run: _Run) -> StabilityWarning | None:
    """``outliers``: more than ``outlier_fraction_threshold`` of the samples beyond Tukey's far-out fences."""
    n = run.n
    if n < 4 or run.median <= 0:
        return None
    low_fence, high_fence = _outlier_fences(run)
    is_out = (run.x < low_fence) | (run.x > high_fence)
    n_out = int(np.count_nonzero(is_out))
    if not n_out or n_out / n <= run.limits.outlier_fraction_threshold:
        return None
    n_high = int(np.count_nonzero(run.x > high_fence))
    return StabilityWarning(
        code="outliers",
        message=(
            f"{n_out} of {n} samples ({n_out / n:.1%}) are outliers ({n_high} slow, {n_out - n_high} fast) "
            f"beyond Q3 + {run.limits.outlier_fence:g} x IQR = {_ms(high_fence)}: the tail percentiles are "
            "set by interference, not by the model"
        ),
        remedy=_outlier_remedy(run, is_out, n_out),
    )


def _window_medians(run: _Run) -> tuple[float, float] | None:
    """Medians of the first and the last ``drift_window`` of the run when they differ by more than
    ``drift_threshold`` and their 95% confidence intervals do not overlap (noise alone moves window
    medians too); None otherwise or with fewer than 10 samples a window."""
    w = int(math.floor(run.limits.drift_window * run.n))
    if w < 10:
        return None
    first_part, last_part = run.x[:w], run.x[-w:]
    first_med = float(np.median(first_part))
    last_med = float(np.median(last_part))
    if first_med <= 0:
        return None
    head_lo, head_hi = quantile_ci(first_part, 0.5)
    tail_lo, tail_hi = quantile_ci(last_part, 0.5)
    separated = tail_lo > head_hi or tail_hi < head_lo
    if abs((last_med - first_med) / first_med) > run.limits.drift_threshold and separated:
        return first_med, last_med
    return None


def _slowdown_remedy(settings: Mapping[str, Any]) -> str:
    """What to do about latency that rose during the run (throttling or load)."""
    parts = [
        "check the telemetry for throttle flags, rising temperatures and falling clocks",
        "add cooling or a cool-down between jobs, or measure throttled behaviour on purpose (sustained mode)",
    ]
    gov = _governor(settings)
    if gov is not None and gov != "performance":
        parts.append(f"set the CPU governor to 'performance' (it was {gov!r})")
    return "; ".join(parts)


def _drift(run: _Run) -> StabilityWarning | None:
    """``drift``: the median of the last ``drift_window`` moved from the first's (sustained-mode stability)."""
    medians = _window_medians(run)
    if medians is None:
        return None
    first_med, last_med = medians
    drift = (last_med - first_med) / first_med
    seen = (
        f"latency drifted by {drift:+.1%} during the run (median of the last {run.limits.drift_window:.0%} "
        f"{_ms(last_med)} vs the first {_ms(first_med)}): "
    )
    if drift > 0:
        message = seen + "thermal throttling or background load"
        remedy = _slowdown_remedy(run.settings)
    else:
        message = seen + "the device was still warming up (caches, clocks) when timing began"
        remedy = _warmup_remedy(run.settings)
    return StabilityWarning(code="drift", message=message, remedy=remedy)


#: The checks that make a run INVALID, in the order their reasons are listed.
_REASON_CHECKS: tuple[Callable[[_Run], list[str]], ...] = (_nonpositive_samples, _too_few_for_percentiles)

#: The checks that warn about a valid run, in the order their warnings are listed.
_WARNING_CHECKS: tuple[Callable[[_Run], StabilityWarning | None], ...] = (_cut_short, _high_cv, _slow_first_run,
                                                                          _outliers, _drift)


# --- the verdict -------------------------------------------------------------------


def assess(
    latency_ns: npt.ArrayLike,
    *,
    first_inference_ns: int | None = None,
    requested_percentiles: Iterable[float] = (50, 90, 95, 99),
    settings: Mapping[str, Any] | None = None,
    cv_threshold: float = 0.10,
    first_run_factor: float = 10.0,
    outlier_fence: float = 3.0,
    outlier_fraction_threshold: float = 0.01,
    drift_threshold: float = 0.05,
    drift_window: float = 0.10,
) -> Verdict:
    """Judge one run's timed latencies (ns, in the order measured).

    INVALID when: there are no samples; any sample is zero or negative; there are
    fewer samples than a requested percentile needs (:func:`min_samples_for_percentile`).

    Warnings (each checked independently):

    * ``high_cv``: ``std / mean > cv_threshold`` (pyperf warns above 10%).
    * ``slow_first_run``: ``first_inference_ns > first_run_factor * median``
      (hyperfine's "first run was significantly slower").
    * ``outliers``: more than ``outlier_fraction_threshold`` of the samples lie
      beyond Tukey's far-out fences ``Q1 - k*IQR`` / ``Q3 + k*IQR`` (``k = outlier_fence``;
      the IQR is floored at 1% of the median so a coarse clock does not make every
      other value an outlier).
    * ``drift``: the median of the last ``drift_window`` of the run differs from
      the median of the first by more than ``drift_threshold``, and their 95%
      confidence intervals do not overlap (so noise alone rarely triggers it);
      needs 10+ samples in each window.

    * ``cut_short``: a limit (``timed.max_s``, ``timed.max_count``; ``timed_stop`` in ``settings``) ended the
      timed phase before ``timed.count`` runs.

    ``settings`` is what the run was asked for (the plan's policy and backend
    settings: ``warmup``, ``timed``, ``affinity``, ``threads`` ...; ``governor``
    where known; ``timed_stop``, what ended the timed phase); it only shapes the remedies, never the verdict.
    """
    x = np.asarray(latency_ns)
    if x.ndim != 1:
        raise ValueError(f"latencies must be a 1-D array, got shape {x.shape}")
    unusable = _unusable(x)
    if unusable is not None:
        return unusable
    run = _Run(
        x=x.astype(np.float64, copy=False),
        settings=settings or {},
        limits=_Limits(cv_threshold, first_run_factor, outlier_fence, outlier_fraction_threshold,
                       drift_threshold, drift_window),
        percentiles=tuple(sorted({float(p) for p in requested_percentiles})),
        first_inference_ns=first_inference_ns,
    )
    reasons = [reason for check in _REASON_CHECKS for reason in check(run)]
    warnings = [w for w in (check(run) for check in _WARNING_CHECKS) if w is not None]
    return Verdict(valid=not reasons, reasons=reasons, warnings=warnings)
