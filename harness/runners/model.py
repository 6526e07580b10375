"""What every runner-output parser returns: :class:`RunnerReport` and :class:`LatencyStats`; and the
helpers the parsers share: number reading (:data:`NUM`, :func:`to_float`, :func:`to_count`) and line
rules (:data:`LineRules`, a table of pattern and handler read by :func:`apply_rules`).

Units, one convention for all four runners:

* every duration is a float in **milliseconds**, in a name ending ``_ms``
  (vendor tools print µs, ms or s; the parsers convert);
* memory is in **MB** (as the tool printed it, ``_mb``) or bytes (``_bytes``);
* rates are per second (``throughput_per_s``).

A value the output does not contain is ``None``, never ``0``. Per-iteration
samples are only ever the ones the runner itself wrote (trtexec ``--exportTimes``,
onnxruntime_perf_test's result file or ``-v`` lines); when there are none,
``samples_ms`` is ``None`` and ``aggregate_only`` is ``True``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, TypeVar

__all__ = [
    "RUNNERS",
    "LatencyStats",
    "RunnerReport",
    "canonical_runner",
]

#: Canonical runner names (also the folder names of the recorded outputs).
RUNNERS: tuple[str, ...] = (
    "tflite_benchmark_model",
    "onnxruntime_perf_test",
    "trtexec",
    "openvino_benchmark_app",
)

_ALIASES: dict[str, str] = {
    "tflite": "tflite_benchmark_model",
    "litert": "tflite_benchmark_model",
    "benchmark_model": "tflite_benchmark_model",
    "tflite_benchmark_model": "tflite_benchmark_model",
    "ort": "onnxruntime_perf_test",
    "onnxruntime": "onnxruntime_perf_test",
    "onnxruntime_perf": "onnxruntime_perf_test",
    "onnxruntime_perf_test": "onnxruntime_perf_test",
    "trtexec": "trtexec",
    "tensorrt": "trtexec",
    "openvino": "openvino_benchmark_app",
    "benchmark_app": "openvino_benchmark_app",
    "openvino_benchmark_app": "openvino_benchmark_app",
}


def canonical_runner(name: str) -> str | None:
    """The canonical name (one of :data:`RUNNERS`) for ``name`` or an alias of it; ``None`` if unknown."""
    return _ALIASES.get(name.strip().lower().replace("-", "_"))


#: Named percentiles, as (field name, percent).
_NAMED_PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50_ms", 50.0),
    ("p90_ms", 90.0),
    ("p95_ms", 95.0),
    ("p99_ms", 99.0),
    ("p999_ms", 99.9),
)


@dataclass(frozen=True)
class LatencyStats:
    """Aggregate latency statistics of one phase (warm-up or timed) or one metric, in ms.

    ``first_ms`` and ``last_ms`` are LiteRT's ``first=`` and ``curr=`` (the first and
    the last iteration). ``percentiles_ms`` holds every percentile the tool printed
    (or that was computed from its samples), keyed by percent (``99.9`` for P999);
    the named fields ``p50_ms`` … ``p999_ms`` are filled from it.
    """

    count: int | None = None
    mean_ms: float | None = None
    std_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    first_ms: float | None = None
    last_ms: float | None = None
    percentiles_ms: dict[float, float] = field(default_factory=dict)
    throughput_per_s: float | None = None

    @classmethod
    def build(
        cls,
        *,
        count: int | None = None,
        mean_ms: float | None = None,
        std_ms: float | None = None,
        min_ms: float | None = None,
        max_ms: float | None = None,
        first_ms: float | None = None,
        last_ms: float | None = None,
        percentiles_ms: Mapping[float, float] | None = None,
        throughput_per_s: float | None = None,
    ) -> LatencyStats:
        """Build stats, filling the named percentile fields from ``percentiles_ms``."""
        pct = {p: v for p, v in dict(percentiles_ms or {}).items() if _finite(p) and _finite(v)}
        named = {name: pct.get(percent) for name, percent in _NAMED_PERCENTILES}
        return cls(
            count=count,
            mean_ms=_finite_or_none(mean_ms),
            std_ms=_finite_or_none(std_ms),
            min_ms=_finite_or_none(min_ms),
            max_ms=_finite_or_none(max_ms),
            first_ms=_finite_or_none(first_ms),
            last_ms=_finite_or_none(last_ms),
            percentiles_ms=pct,
            throughput_per_s=_finite_or_none(throughput_per_s),
            **named,
        )

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float], *, throughput_per_s: float | None = None) -> LatencyStats:
        """Statistics of real per-iteration samples (ms), with hilbench's own quantile definition.

        Percentiles use :func:`harness.analysis.stats.quantile` (linear interpolation), std is
        the sample standard deviation (``ddof=1``; ``None`` below 2 samples).
        """
        if not samples_ms:
            return cls(count=0)
        from harness.analysis.stats import quantile  # numpy/pandas only when samples exist

        values = [float(v) for v in samples_ms]
        n = len(values)
        try:
            mean = math.fsum(values) / n
        except OverflowError:  # hostile magnitudes (1e308 and more): no mean rather than a crash
            mean = math.fsum(v / n for v in values)
        # d * d, not d ** 2: a float ** overflows with an exception, a product with inf (dropped by build).
        std = math.sqrt(math.fsum((v - mean) * (v - mean) for v in values) / (n - 1)) if n > 1 else None
        pct = {percent: float(quantile(values, percent / 100.0)) for _, percent in _NAMED_PERCENTILES}
        return cls.build(
            count=n,
            mean_ms=mean,
            std_ms=std,
            min_ms=min(values),
            max_ms=max(values),
            first_ms=values[0],
            last_ms=values[-1],
            percentiles_ms=pct,
            throughput_per_s=throughput_per_s,
        )

    def is_empty(self) -> bool:
        """True when not a single value is known."""
        return all(getattr(self, f.name) in (None, {}) for f in fields(self))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (percentile keys become strings such as ``"99.9"``)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["percentiles_ms"] = {_percent_key(k): v for k, v in self.percentiles_ms.items()}
        return out


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _finite_or_none(value: float | None) -> float | None:
    """``value``, or ``None`` when it is not finite: a printed 1e308 s becomes inf once in ms."""
    if value is None:
        return None
    try:
        return value if math.isfinite(value) else None
    except OverflowError:  # an int beyond float range
        return None


def _percent_key(percent: float) -> str:
    return f"{percent:g}"


@dataclass(frozen=True)
class RunnerReport:
    """Everything one vendor runner's output says about one benchmark run.

    Fields:

    * ``runner``: one of :data:`RUNNERS`; ``version``: the tool's or runtime's version
      when printed (``"8.5.2"``, ``"2.15.0"``), else ``None``.
    * ``settings``: what the run was asked to do, normalised where the runners agree:
      ``threads``, ``delegate`` (LiteRT) / ``execution_provider`` (ORT) / ``device``
      (OpenVINO, trtexec), ``graph``, ``num_runs``, ``warmup_runs``, ``batch``, … plus
      the raw echo under ``echo`` / ``flags``.
    * ``init_ms``: session / engine / model initialisation; ``first_inference_ms``.
    * ``warmup`` and ``timed``: :class:`LatencyStats` (``timed`` is never ``None`` in a
      parsed report); ``metrics``: further named statistics (trtexec ``gpu_compute``,
      ``enqueue``, ``h2d``, ``d2h``, ``end_to_end``).
    * ``samples_ms``: per-iteration latencies the runner wrote, else ``None``;
      ``aggregate_only`` is ``True`` exactly when ``samples_ms`` is ``None``.
    * ``memory``: ``init_mb``, ``overall_mb``, ``peak_mb``, ``peak_working_set_bytes``…
    * ``warnings``: the tool's own warnings and the parser's (invalid values, truncation).
    * ``extra``: everything else, documented by each parser.
    """

    runner: str
    version: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    init_ms: float | None = None
    first_inference_ms: float | None = None
    warmup: LatencyStats | None = None
    timed: LatencyStats | None = None
    metrics: dict[str, LatencyStats] = field(default_factory=dict)
    samples_ms: list[float] | None = None
    aggregate_only: bool = True
    memory: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.runner not in RUNNERS:
            raise ValueError(f"unknown runner {self.runner!r}; expected one of {', '.join(RUNNERS)}")
        if self.aggregate_only != (self.samples_ms is None):
            raise ValueError("aggregate_only must be True exactly when samples_ms is None")

    @property
    def throughput_per_s(self) -> float | None:
        """The timed phase's throughput as the runner printed it (``None`` when absent or invalid)."""
        return self.timed.throughput_per_s if self.timed is not None else None

    def aggregates_ns(self) -> dict[str, float]:
        """The timed statistics under :data:`harness.analysis.stats.SUMMARY_COLUMNS` names (ns), present values only.

        This is the runner's own aggregate, for ``result["aggregates"]`` of an
        ``aggregate_only`` run in the store; nothing missing is filled in.
        """
        out: dict[str, float] = {}
        if self.timed is None:
            return out
        if self.timed.count is not None:
            out["count"] = float(self.timed.count)
        for name in ("mean", "std", "min", "p50", "p90", "p95", "p99", "p999", "max"):
            value = getattr(self.timed, f"{name}_ms")
            if value is not None:
                out[f"{name}_ns"] = value * 1e6
        if self.timed.throughput_per_s is not None:
            out["throughput_per_s"] = self.timed.throughput_per_s
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of the whole report."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, LatencyStats):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# --- helpers shared by the parsers ---------------------------------------------------------

#: A decimal or scientific-notation number as vendor tools print them.
#: ``\d+(?:\.\d*)?`` and not ``\d+\.?\d*``: the latter splits a run of digits between ``\d+``
#: and ``\d*`` in every possible way when what follows fails (quadratic per attempt; a
#: 20 kB line of digits from a device took seconds). Every number has one parse now.
NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"

_NUM_RE = re.compile(rf"^{NUM}$")


def to_float(text: str | None) -> float | None:
    """``text`` as a float, or ``None`` when it is missing, not a number, NaN or infinite."""
    if text is None:
        return None
    text = text.strip()
    if not _NUM_RE.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def to_count(text: str | None) -> int | None:
    """A run of digits as an int, or ``None`` beyond 18 digits (no real count or setting has more, and
    ``int()`` of 4,301 digits raises; a float of 400 overflows)."""
    if text is None:
        return None
    text = text.strip()
    if not text or len(text) > 18:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def percent_from_label(digits: str) -> float:
    """``"50"`` -> 50.0, ``"999"`` -> 99.9, ``"9999"`` -> 99.99 (ORT's ``P999`` style labels)."""
    if len(digits) <= 2 or digits == "100":
        return float(digits)
    return float(f"{digits[:2]}.{digits[2:]}")


# --- line rules: how the parsers read a line -----------------------------------------------

_S = TypeVar("_S")

#: A parser's line rules, in order of precedence: a compiled pattern and the handler that its match is
#: given to, with the parser's state object (``handler(state, match)``).
LineRules = Sequence[tuple[re.Pattern[str], Callable[[_S, re.Match[str]], None]]]


def apply_rules(rules: LineRules[_S], state: _S, text: str, *, search: bool = False) -> bool:
    """Give ``state`` and the match to the handler of the first rule whose pattern matches ``text``.

    Patterns are matched at the start of ``text`` (``search=True``: anywhere in it). True when a rule
    matched; the rules after it are not tried.
    """
    for pattern, handler in rules:
        m = pattern.search(text) if search else pattern.match(text)
        if m is not None:
            handler(state, m)
            return True
    return False


class HasExtra(Protocol):
    """A parser state with an ``extra`` dict (the report's ``extra``)."""

    extra: dict[str, Any]


def store_float(key: str) -> Callable[[HasExtra, re.Match[str]], None]:
    """A handler that stores the number in the match's first group as ``state.extra[key]`` (None if invalid)."""

    def handler(state: HasExtra, m: re.Match[str]) -> None:
        state.extra[key] = to_float(m.group(1))

    return handler
