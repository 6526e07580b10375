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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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
        return {"code": self.code, "message": self.message, "remedy": self.remedy}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StabilityWarning:
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

    @property
    def warning_codes(self) -> list[str]:
        return [w.code for w in self.warnings]

    def to_dict(self) -> dict[str, Any]:
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
    return bool(settings.get("affinity") or settings.get("cpu_affinity_pinned"))


def _governor(settings: Mapping[str, Any]) -> str | None:
    gov = settings.get("governor") or settings.get("cpu_governor")
    return str(gov) if gov else None


def _rate_hz(settings: Mapping[str, Any]) -> float | None:
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
    return f"p{p:g}"


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.3g} ms"


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

    ``settings`` is what the run was asked for (the plan's policy and backend
    settings: ``warmup``, ``timed``, ``affinity``, ``threads`` ...; ``governor``
    where known); it only shapes the remedies, never the verdict.
    """
    s: Mapping[str, Any] = settings or {}
    x = np.asarray(latency_ns)
    if x.ndim != 1:
        raise ValueError(f"latencies must be a 1-D array, got shape {x.shape}")
    n = int(x.size)
    reasons: list[str] = []
    warnings: list[StabilityWarning] = []
    if n == 0:
        return Verdict(
            valid=False,
            reasons=["no timed samples: the timed phase recorded nothing (check timed.count and timed.min_s)"],
        )
    xf = x.astype(np.float64, copy=False)
    if not np.all(np.isfinite(xf)):
        return Verdict(valid=False, reasons=["timed samples contain NaN or infinity: the samples are corrupt"])

    nonpos = int(np.count_nonzero(xf <= 0))
    if nonpos:
        reasons.append(
            f"{nonpos} of {n} timed samples are zero or negative: the clock did not advance across the "
            "invoke (a timer too coarse for this model, or a backend that did no work)"
        )

    for p in sorted({float(p) for p in requested_percentiles}):
        need = min_samples_for_percentile(p)
        if n < need:
            source = "MLPerf LoadGen's minimum" if p in LOADGEN_MIN_SAMPLES else "hilbench's minimum"
            reasons.append(
                f"{n} timed samples are too few for {_pct_label(p)}: it needs at least {need} ({source}); "
                f"raise timed.count to {need} or more, or drop {_pct_label(p)} from percentiles"
            )

    q1, median, q3 = (float(v) for v in np.quantile(xf, [0.25, 0.5, 0.75]))
    mean = float(np.mean(xf))

    # high variation (pyperf: std > 10% of the mean)
    if n >= 2 and mean > 0:
        cv = float(np.std(xf, ddof=1)) / mean
        if cv > cv_threshold:
            remedies = _jitter_remedies(s)
            rate = _rate_hz(s)
            if rate is not None:
                remedies.append(
                    f"at a fixed rate ({rate:g} Hz) the CPU may clock down between frames: "
                    "compare with an unpaced run to tell pacing from noise"
                )
            warnings.append(
                StabilityWarning(
                    code="high_cv",
                    message=(
                        f"the standard deviation is {cv:.1%} of the mean ({_ms(mean)}), above {cv_threshold:.0%}: "
                        "the run is unstable"
                    ),
                    remedy="; ".join(remedies),
                )
            )

    # slow first run (hyperfine)
    if first_inference_ns is not None and median > 0 and first_inference_ns > first_run_factor * median:
        kind, _ = _warmup(s)
        if kind == "stable":
            remedy = (
                "no action needed for steady-state numbers: the first inference is reported apart and the "
                "warm-up ran until stable; quote it as cold-start latency where that matters"
            )
        else:
            remedy = "the first inference is kept out of the timed samples, but " + _warmup_remedy(s, seen=False)
        warnings.append(
            StabilityWarning(
                code="slow_first_run",
                message=(
                    f"the first inference took {_ms(first_inference_ns)}, {first_inference_ns / median:.0f}x the "
                    f"median ({_ms(median)}): one-time initialisation (allocation, kernel compilation, caches)"
                ),
                remedy=remedy,
            )
        )

    # outliers (Tukey's far-out fences)
    if n >= 4 and median > 0:
        iqr = max(q3 - q1, 0.01 * median)
        low_fence = q1 - outlier_fence * iqr
        high_fence = q3 + outlier_fence * iqr
        is_out = (xf < low_fence) | (xf > high_fence)
        n_out = int(np.count_nonzero(is_out))
        if n_out and n_out / n > outlier_fraction_threshold:
            n_high = int(np.count_nonzero(xf > high_fence))
            head = max(1, math.ceil(drift_window * n))
            in_head = int(np.count_nonzero(is_out[:head]))
            if in_head * 2 > n_out:
                remedy = (
                    f"{in_head} of them came in the first {drift_window:.0%} of the run: the warm-up was too short; "
                    + _warmup_remedy(s)
                )
            else:
                remedy = "re-run on a quiet device; " + "; ".join(_jitter_remedies(s))
                if s.get("telemetry", True) is not False:
                    remedy += "; if they persist, compare with telemetry = false (the sampler runs on the device too)"
            warnings.append(
                StabilityWarning(
                    code="outliers",
                    message=(
                        f"{n_out} of {n} samples ({n_out / n:.1%}) are outliers ({n_high} slow, {n_out - n_high} fast) "
                        f"beyond Q3 + {outlier_fence:g} x IQR = {_ms(high_fence)}: the tail percentiles are "
                        "set by interference, not by the model"
                    ),
                    remedy=remedy,
                )
            )

    # drift (sustained-mode stability: p50 of the last window / p50 of the first)
    w = int(math.floor(drift_window * n))
    if w >= 10:
        first_part, last_part = xf[:w], xf[-w:]
        first_med = float(np.median(first_part))
        last_med = float(np.median(last_part))
        if first_med > 0:
            drift = (last_med - first_med) / first_med
            # Noise alone moves window medians too: require the two medians' 95% CIs not to overlap.
            head_lo, head_hi = quantile_ci(first_part, 0.5)
            tail_lo, tail_hi = quantile_ci(last_part, 0.5)
            separated = tail_lo > head_hi or tail_hi < head_lo
            if abs(drift) > drift_threshold and separated:
                if drift > 0:
                    message = (
                        f"latency drifted by {drift:+.1%} during the run (median of the last {drift_window:.0%} "
                        f"{_ms(last_med)} vs the first {_ms(first_med)}): thermal throttling or background load"
                    )
                    parts = [
                        "check the telemetry for throttle flags, rising temperatures and falling clocks",
                        "add cooling or a cool-down between jobs, or measure throttled behaviour on purpose "
                        "(sustained mode)",
                    ]
                    gov = _governor(s)
                    if gov is not None and gov != "performance":
                        parts.append(f"set the CPU governor to 'performance' (it was {gov!r})")
                    remedy = "; ".join(parts)
                else:
                    message = (
                        f"latency drifted by {drift:+.1%} during the run (median of the last {drift_window:.0%} "
                        f"{_ms(last_med)} vs the first {_ms(first_med)}): the device was still warming up "
                        "(caches, clocks) when timing began"
                    )
                    remedy = _warmup_remedy(s)
                warnings.append(StabilityWarning(code="drift", message=message, remedy=remedy))

    return Verdict(valid=not reasons, reasons=reasons, warnings=warnings)
