"""Parser for ONNX Runtime ``onnxruntime_perf_test`` output and its result file.

Formats (``runner-outputs/SOURCES.md``): the 2019 format (``Total time cost:58.8``,
``Total iterations:``, ``Average time cost: … ms``, ``P50 Latency is 0.0587sec``),
the 2020 no-space format (``Session creation time cost:1.84 s``), the modern format
with a space, and ``Average inference time cost total:`` of builds after 1.23.2.

Units: ``Session creation`` and totals are printed in **s**, the average and the
first inference in **ms**, the latency percentiles in **s**; everything is stored
in ms (``init_ms``, ``first_inference_ms``, ``timed.*_ms``); the totals as printed
in ``extra["total_inference_time_s"]`` and ``extra["total_run_time_s"]``.

Per-iteration samples come only from what the tool wrote: result-file rows
(``model,time_s,peak_bytes,cpu_pct,run`` and the older four-column form) and
``-v`` lines ``iteration:N,time_cost:S``. Then ``samples_ms`` holds them (s -> ms)
and any statistic the text did not print is computed from them
(``extra["computed_from_samples"]`` lists which).

The machine-readable echo (``Avg CPU usage:96``, ``Peak working set size:…``,
``Runs:N``) is cross-checked, never counted twice; a mismatch is a warning.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.errors import InputError
from harness.runners.model import (
    NUM,
    LatencyStats,
    LineRules,
    RunnerReport,
    apply_rules,
    percent_from_label,
    store_float,
    to_count,
    to_float,
)

__all__ = ["parse_onnxruntime_perf", "score_onnxruntime_perf"]

RUNNER = "onnxruntime_perf_test"

_SESSION = re.compile(rf"^Session creation time cost:\s*({NUM})\s*s")
_FIRST = re.compile(rf"^First inference time cost:\s*({NUM})\s*ms")
_TOTAL_TIME = re.compile(rf"^Total (?:inference )?time cost:\s*({NUM})\s*(?:s\b)?")
_REQUESTS = re.compile(r"^Total (?:inference requests|iterations):\s*(\d+)")
_AVERAGE = re.compile(rf"^Average (?:inference )?time cost(?: total)?:\s*({NUM})\s*ms")
_RUN_TIME = re.compile(rf"^Total (?:inference )?run time:\s*({NUM})\s*s")
_QPS = re.compile(rf"^Number of inferences per second:\s*({NUM})")
_CPU = re.compile(r"^(?:Avg|Total) CPU usage:\s*(\d+)\s*%")
_CPU_ECHO = re.compile(r"^(?:Avg|Total) CPU usage:(\d+)\s*$")
_PEAK = re.compile(r"^Peak working set size:\s*(\d+)\s*bytes")
_PEAK_ECHO = re.compile(r"^Peak working set size:(\d+)\s*$")
_RUNS_ECHO = re.compile(r"^Runs:\s*(\d+)\s*$")
# "P50 Latency: 0.0167 s", "P50 Latency is 0.0587108sec" and the cut "…se" of the 2019 README.
# The trailing spaces are read once: ``\s*(unit)?\s*$`` tried every split of a run of spaces.
_LATENCY = re.compile(rf"^(Min|Max|P(\d+)) Latency(?: is|:)\s*({NUM})\s*(?:(ms|s|se|sec|seconds)\s*)?$")
_THREADS = re.compile(r"^Setting intra_op_num_threads to (\d+)")
_USING_EP = re.compile(r"^using (\w+?)(?:ExecutionProvider)?\s*$")
_SPINNING = re.compile(r"^Disabling intra-op thread spinning")
# Found with a literal search and str.find (see _ort_log): ``\[([WEF]):onnxruntime:[^\]]*\]`` searched from
# every repetition of the prefix to the end of a line without ']' (quadratic).
_ORT_LOG_HEAD = re.compile(r"\[([WEF]):onnxruntime:")
_VERBOSE_ITER = re.compile(rf"^iteration:(\d+),time_cost:({NUM})\s*$")
_RESULT_ROW = re.compile(rf"^([^,\s][^,]*),({NUM}),(\d+),(?:(-?\d+),)?(\d+)\s*$")
_COMMAND = re.compile(r"onnxruntime_perf_test(?:\.exe)?\s+(.*)$")

#: perf_test options that take a value (the others are switches).
_VALUE_OPTIONS = set("bcdefFimoprtxyCRSTulLgG")

_MARKERS = (
    re.compile(r"(?m)^Session creation time cost:"),
    re.compile(r"(?m)^Total inference requests:"),
    re.compile(r"(?m)^Average (?:inference )?time cost"),
    re.compile(r"(?m)^Total (?:inference )?run time:"),
    re.compile(r"(?m)^Total iterations:"),
    re.compile(r"(?m)^P\d+ Latency(?: is|:)"),
    re.compile(r"onnxruntime_perf_test"),
    re.compile(r"(?m)^Number of inferences per second:"),
)


def score_onnxruntime_perf(text: str) -> int:
    """How many onnxruntime_perf_test markers ``text`` contains (0: not this runner)."""
    score = sum(1 for m in _MARKERS if m.search(text))
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if lines and sum(1 for ln in lines if _RESULT_ROW.match(ln.strip())) >= max(1, len(lines) // 2):
        score += 2  # a result file: mostly model,time,peak,cpu,run rows
    return score


def _ort_log(line: str) -> tuple[str, str] | None:
    """``(level, message)`` of an ``[W:onnxruntime:…] message`` line, else None.

    The first ``[X:onnxruntime:`` decides: if no ']' follows it, none follows a later one either.
    """
    m = _ORT_LOG_HEAD.search(line)
    if m is None:
        return None
    close = line.find("]", m.end())
    if close < 0:
        return None
    return m.group(1), line[close + 1 :]


def _command_settings(args: str) -> dict[str, Any]:
    """Settings from the perf_test command line (split on spaces: Windows paths keep their backslashes)."""
    settings: dict[str, Any] = {}
    tokens = args.split()
    flags: dict[str, str | bool] = {}
    positional: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if re.match(r"^-[A-Za-z]$", tok):
            letter = tok[1]
            if letter in _VALUE_OPTIONS and i + 1 < len(tokens):
                flags[letter] = tokens[i + 1]
                i += 2
                continue
            flags[letter] = True
        elif not tok.startswith("-"):
            positional.append(tok)
        i += 1
    settings["flags"] = flags
    if isinstance(flags.get("e"), str):
        settings["execution_provider"] = flags["e"]
    for letter, key in (("r", "num_runs"), ("x", "threads"), ("y", "inter_op_threads"), ("c", "concurrency")):
        value = flags.get(letter)
        if isinstance(value, str) and value.isdigit():
            settings[key] = to_count(value)
    if isinstance(flags.get("t"), str):
        settings["duration_s"] = to_float(str(flags["t"]))
    if isinstance(flags.get("m"), str):
        settings["test_mode"] = flags["m"]
    if positional:
        settings["graph"] = positional[0]
    if len(positional) > 1:
        settings["result_file"] = positional[1]
    return settings


@dataclass
class _OrtState:
    """What the lines of one onnxruntime_perf_test output said, as they are read."""

    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    percentiles: dict[float, float] = field(default_factory=dict)
    low: float | None = None
    high: float | None = None
    count: int | None = None
    mean_ms: float | None = None
    qps: float | None = None
    init_ms: float | None = None
    first_ms: float | None = None
    verbose_samples: list[float] = field(default_factory=list)
    file_samples: list[float] = field(default_factory=list)
    echoes: dict[str, int] = field(default_factory=dict)

    def feed(self, raw: str) -> None:
        """Read one line: an ORT log line, the command line, or one of :data:`_LINES`."""
        line = raw.strip()
        if not line:
            return
        log = _ort_log(line)
        if log is not None:
            self.warnings.append(f"{'warning' if log[0] == 'W' else 'error'}: {log[1].strip()}")
            return
        m = _COMMAND.search(line)
        if m:
            self.settings.update(_command_settings(m.group(1)))
            return
        apply_rules(_LINES, self, line)


def _session(st: _OrtState, m: re.Match[str]) -> None:
    value = to_float(m.group(1))
    st.extra["session_creation_s"] = value
    st.init_ms = None if value is None else value * 1000.0


def _first(st: _OrtState, m: re.Match[str]) -> None:
    st.first_ms = to_float(m.group(1))


def _requests(st: _OrtState, m: re.Match[str]) -> None:
    st.count = to_count(m.group(1))


def _average(st: _OrtState, m: re.Match[str]) -> None:
    st.mean_ms = to_float(m.group(1))


def _qps(st: _OrtState, m: re.Match[str]) -> None:
    st.qps = to_float(m.group(1))


def _peak(st: _OrtState, m: re.Match[str]) -> None:
    peak = to_float(m.group(1))
    if peak is not None:
        st.memory["peak_working_set_bytes"] = peak


def _echo(name: str) -> Callable[[_OrtState, re.Match[str]], None]:
    """A handler for one machine-readable echo line (``Runs:10``), kept for :func:`_cross_check`."""

    def handler(st: _OrtState, m: re.Match[str]) -> None:
        echo = to_count(m.group(1))
        if echo is not None:
            st.echoes[name] = echo

    return handler


def _latency(st: _OrtState, m: re.Match[str]) -> None:
    value = to_float(m.group(3))
    if value is None:
        return
    # Percentiles are printed in seconds; only an explicit "ms" is taken as ms.
    value_ms = value if m.group(4) == "ms" else value * 1000.0
    if m.group(1) == "Min":
        st.low = value_ms
    elif m.group(1) == "Max":
        st.high = value_ms
    else:
        st.percentiles[percent_from_label(m.group(2))] = value_ms


def _verbose_iteration(st: _OrtState, m: re.Match[str]) -> None:
    value = to_float(m.group(2))
    if value is not None and math.isfinite(value * 1000.0):  # 1e308 s is no longer finite in ms
        st.verbose_samples.append(value * 1000.0)


def _result_row(st: _OrtState, m: re.Match[str]) -> None:
    value = to_float(m.group(2))
    if value is None or not math.isfinite(value * 1000.0):
        return
    st.file_samples.append(value * 1000.0)
    st.extra.setdefault("result_file_model", m.group(1))
    peak = to_float(m.group(3))
    if peak is not None:
        st.memory.setdefault("peak_working_set_bytes", peak)
    if m.group(4) is not None:
        st.extra.setdefault("cpu_usage_pct", to_float(m.group(4)))


def _threads(st: _OrtState, m: re.Match[str]) -> None:
    st.settings["threads"] = to_count(m.group(1))


def _using_ep(st: _OrtState, m: re.Match[str]) -> None:
    st.settings.setdefault("execution_provider", m.group(1))


def _spinning(st: _OrtState, m: re.Match[str]) -> None:
    st.settings["intra_op_spinning"] = False


#: The lines read after the log and command lines, first match wins.
_LINES: LineRules[_OrtState] = (
    (_SESSION, _session),
    (_FIRST, _first),
    (_REQUESTS, _requests),
    (_AVERAGE, _average),
    (_RUN_TIME, store_float("total_run_time_s")),
    (_TOTAL_TIME, store_float("total_inference_time_s")),
    (_QPS, _qps),
    (_CPU, store_float("cpu_usage_pct")),
    (_PEAK, _peak),
    (_CPU_ECHO, _echo("cpu_usage_pct")),
    (_PEAK_ECHO, _echo("peak_working_set_bytes")),
    (_RUNS_ECHO, _echo("runs")),
    (_LATENCY, _latency),
    (_VERBOSE_ITER, _verbose_iteration),
    (_RESULT_ROW, _result_row),
    (_THREADS, _threads),
    (_USING_EP, _using_ep),
    (_SPINNING, _spinning),
)


def parse_onnxruntime_perf(text: str, *, source: str = "onnxruntime_perf_test output") -> RunnerReport:
    """Parse onnxruntime_perf_test stdout and/or its result file; raise :class:`InputError` without timings."""
    st = _OrtState()
    for raw in text.splitlines():
        st.feed(raw)
    _cross_check(st.echoes, st.extra, st.memory, st.count, st.warnings)
    if "peak_working_set_bytes" in st.memory:
        st.memory["peak_working_set_mb"] = st.memory["peak_working_set_bytes"] / 1e6
    samples = _samples(st)
    count = st.count if st.count is not None else st.echoes.get("runs")
    timed = _timed(st, count, samples)
    if timed.mean_ms is None and timed.p50_ms is None and timed.min_ms is None:
        raise InputError(
            f"{source}: no inference timings in onnxruntime_perf_test output "
            "(the run failed or the output is cut before the summary)"
        )
    if count is not None and st.extra.get("total_run_time_s"):
        st.extra["throughput_derived_per_s"] = count / st.extra["total_run_time_s"]
    return RunnerReport(
        runner=RUNNER,
        version=None,
        settings=st.settings,
        init_ms=st.init_ms,
        first_inference_ms=st.first_ms,
        warmup=None,
        timed=timed,
        samples_ms=samples,
        aggregate_only=samples is None,
        memory=st.memory,
        warnings=st.warnings,
        extra=st.extra,
    )


def _samples(st: _OrtState) -> list[float] | None:
    """The per-run times (ms): the result file's, else the ``-v`` lines', else None; warns when they disagree."""
    samples = st.file_samples or st.verbose_samples or None
    if st.file_samples and st.verbose_samples and len(st.file_samples) != len(st.verbose_samples):
        st.warnings.append(
            f"result file has {len(st.file_samples)} runs but -v printed {len(st.verbose_samples)}: "
            "using the result file"
        )
    if samples is not None and st.count is not None and len(samples) != st.count:
        st.warnings.append(f"{len(samples)} per-run times for {st.count} inference requests: some runs are missing")
    return samples


def _timed(st: _OrtState, count: int | None, samples: list[float] | None) -> LatencyStats:
    """The timed statistics as printed, the ones not printed filled from ``samples``."""
    timed = LatencyStats.build(
        count=count,
        mean_ms=st.mean_ms,
        min_ms=st.low,
        max_ms=st.high,
        percentiles_ms=st.percentiles,
        throughput_per_s=st.qps,
    )
    return timed if samples is None else _fill_from_samples(timed, samples, st.extra)


def _cross_check(
    echoes: dict[str, int],
    extra: dict[str, Any],
    memory: dict[str, float],
    count: int | None,
    warnings: list[str],
) -> None:
    """Compare the machine-readable echo with the printed values: fill what was not printed, warn on a mismatch."""
    checks: tuple[tuple[str, float | None], ...] = (
        ("cpu_usage_pct", extra.get("cpu_usage_pct")),
        ("peak_working_set_bytes", memory.get("peak_working_set_bytes")),
        ("runs", None if count is None else float(count)),
    )
    for name, printed in checks:
        echoed = echoes.get(name)
        if echoed is None:
            continue
        if printed is None:
            if name == "cpu_usage_pct":
                extra[name] = float(echoed)
            elif name == "peak_working_set_bytes":
                memory[name] = float(echoed)
        elif float(echoed) != printed:
            warnings.append(f"machine-readable {name}={echoed} disagrees with the printed value {printed:g}")


def _fill_from_samples(timed: LatencyStats, samples: list[float], extra: dict[str, Any]) -> LatencyStats:
    """Fill the statistics the text did not print from the real samples."""
    computed = LatencyStats.from_samples(samples)
    filled: list[str] = []
    values: dict[str, Any] = {}
    for name in ("count", "mean_ms", "std_ms", "min_ms", "max_ms", "first_ms", "last_ms"):
        printed = getattr(timed, name)
        if printed is None and getattr(computed, name) is not None:
            filled.append(name)
            values[name] = getattr(computed, name)
        else:
            values[name] = printed
    percentiles = dict(timed.percentiles_ms)
    for percent, value in computed.percentiles_ms.items():
        if percent not in percentiles:
            percentiles[percent] = value
            filled.append(f"p{percent:g}")
    if filled:
        extra["computed_from_samples"] = filled
    return LatencyStats.build(percentiles_ms=percentiles, throughput_per_s=timed.throughput_per_s, **values)
