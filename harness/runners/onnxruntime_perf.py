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
from typing import Any

from harness.errors import HilbenchError
from harness.runners.model import NUM, LatencyStats, RunnerReport, percent_from_label, to_count, to_float

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


def parse_onnxruntime_perf(text: str, *, source: str = "onnxruntime_perf_test output") -> RunnerReport:
    """Parse onnxruntime_perf_test stdout and/or its result file; raise :class:`HilbenchError` without timings."""
    settings: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    memory: dict[str, float] = {}
    warnings: list[str] = []
    percentiles: dict[float, float] = {}
    low: float | None = None
    high: float | None = None
    count: int | None = None
    mean_ms: float | None = None
    qps: float | None = None
    init_ms: float | None = None
    first_ms: float | None = None
    verbose_samples: list[float] = []
    file_samples: list[float] = []
    echoes: dict[str, int] = {}

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        log = _ort_log(line)
        if log is not None:
            warnings.append(f"{'warning' if log[0] == 'W' else 'error'}: {log[1].strip()}")
            continue
        m = _COMMAND.search(line)
        if m:
            settings.update(_command_settings(m.group(1)))
            continue
        m = _SESSION.match(line)
        if m:
            value = to_float(m.group(1))
            extra["session_creation_s"] = value
            init_ms = None if value is None else value * 1000.0
            continue
        m = _FIRST.match(line)
        if m:
            first_ms = to_float(m.group(1))
            continue
        m = _REQUESTS.match(line)
        if m:
            count = to_count(m.group(1))
            continue
        m = _AVERAGE.match(line)
        if m:
            mean_ms = to_float(m.group(1))
            continue
        m = _RUN_TIME.match(line)
        if m:
            extra["total_run_time_s"] = to_float(m.group(1))
            continue
        m = _TOTAL_TIME.match(line)
        if m:
            extra["total_inference_time_s"] = to_float(m.group(1))
            continue
        m = _QPS.match(line)
        if m:
            qps = to_float(m.group(1))
            continue
        m = _CPU.match(line)
        if m:
            extra["cpu_usage_pct"] = to_float(m.group(1))
            continue
        m = _PEAK.match(line)
        if m:
            peak = to_float(m.group(1))
            if peak is not None:
                memory["peak_working_set_bytes"] = peak
            continue
        for name, pattern in (("cpu_usage_pct", _CPU_ECHO), ("peak_working_set_bytes", _PEAK_ECHO), ("runs", _RUNS_ECHO)):
            m = pattern.match(line)
            if m:
                echo = to_count(m.group(1))
                if echo is not None:
                    echoes[name] = echo
                break
        if m:
            continue
        m = _LATENCY.match(line)
        if m:
            value = to_float(m.group(3))
            if value is None:
                continue
            # Percentiles are printed in seconds; only an explicit "ms" is taken as ms.
            value_ms = value if m.group(4) == "ms" else value * 1000.0
            if m.group(1) == "Min":
                low = value_ms
            elif m.group(1) == "Max":
                high = value_ms
            else:
                percentiles[percent_from_label(m.group(2))] = value_ms
            continue
        m = _VERBOSE_ITER.match(line)
        if m:
            value = to_float(m.group(2))
            if value is not None and math.isfinite(value * 1000.0):  # 1e308 s is no longer finite in ms
                verbose_samples.append(value * 1000.0)
            continue
        m = _RESULT_ROW.match(line)
        if m:
            value = to_float(m.group(2))
            if value is not None and math.isfinite(value * 1000.0):
                file_samples.append(value * 1000.0)
                extra.setdefault("result_file_model", m.group(1))
                peak = to_float(m.group(3))
                if peak is not None:
                    memory.setdefault("peak_working_set_bytes", peak)
                if m.group(4) is not None:
                    extra.setdefault("cpu_usage_pct", to_float(m.group(4)))
            continue
        m = _THREADS.match(line)
        if m:
            settings["threads"] = to_count(m.group(1))
            continue
        m = _USING_EP.match(line)
        if m:
            settings.setdefault("execution_provider", m.group(1))
            continue
        if _SPINNING.match(line):
            settings["intra_op_spinning"] = False
            continue

    _cross_check(echoes, extra, memory, count, warnings)
    if "peak_working_set_bytes" in memory:
        memory["peak_working_set_mb"] = memory["peak_working_set_bytes"] / 1e6

    samples = file_samples or verbose_samples or None
    if file_samples and verbose_samples and len(file_samples) != len(verbose_samples):
        warnings.append(
            f"result file has {len(file_samples)} runs but -v printed {len(verbose_samples)}: using the result file"
        )
    if samples is not None and count is not None and len(samples) != count:
        warnings.append(f"{len(samples)} per-run times for {count} inference requests: some runs are missing")
    if count is None and "runs" in echoes:
        count = echoes["runs"]

    timed = LatencyStats.build(
        count=count,
        mean_ms=mean_ms,
        min_ms=low,
        max_ms=high,
        percentiles_ms=percentiles,
        throughput_per_s=qps,
    )
    if samples is not None:
        timed = _fill_from_samples(timed, samples, extra)
    if timed.mean_ms is None and timed.p50_ms is None and timed.min_ms is None:
        raise HilbenchError(
            f"{source}: no inference timings in onnxruntime_perf_test output "
            "(the run failed or the output is cut before the summary)"
        )
    if count is not None and extra.get("total_run_time_s"):
        extra["throughput_derived_per_s"] = count / extra["total_run_time_s"]
    return RunnerReport(
        runner=RUNNER,
        version=None,
        settings=settings,
        init_ms=init_ms,
        first_inference_ms=first_ms,
        warmup=None,
        timed=timed,
        samples_ms=samples,
        aggregate_only=samples is None,
        memory=memory,
        warnings=warnings,
        extra=extra,
    )


def _cross_check(
    echoes: dict[str, int],
    extra: dict[str, Any],
    memory: dict[str, float],
    count: int | None,
    warnings: list[str],
) -> None:
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
