"""Parser for NVIDIA ``trtexec`` logs (TensorRT 7 to 10) and its ``--exportTimes`` JSON.

Summary layouts (``runner-outputs/SOURCES.md``):

* TRT >= 8: one ``[I]`` line per metric, ``Name: min = a ms, max = b ms, mean = c ms,
  median = d ms, percentile(NN%) = e ms`` (any set of percentiles);
* TRT 7: blocks (``Host Latency`` / ``Enqueue Time`` / ``GPU Compute`` followed by
  ``min: X ms (end to end Y ms)`` … ``percentile: X ms at 99%`` … ``throughput: N qps``,
  ``walltime: S s``, ``total compute time: S s``).

Mapping: ``Latency`` / ``Host Latency`` (= H2D + GPU compute + D2H, per query) is
``timed``; the others go to ``metrics`` as ``end_to_end``, ``enqueue``, ``h2d``,
``gpu_compute``, ``d2h``. ``Throughput`` (qps) is ``timed.throughput_per_s``; a
printed **0 qps** (TRT 7 bug) is invalid: it becomes ``None``, ``extra["throughput_invalid"]``
is set and a warning says why. ``Timing trace has N queries over S s`` gives
``timed.count`` (when N > 0) and ``extra["trace_walltime_s"]``. Walltime and total GPU
compute time are kept in seconds (``extra["total_host_walltime_s"]``,
``extra["total_gpu_compute_s"]``). ``init_ms`` is the engine load/deserialisation time;
``extra["engine_build_s"]`` the build time.

Only ``[I]`` and ``[W]`` lines are read (``[V]`` verbose lines repeat metric names in
their explanations); ``Average on 10 runs`` trace lines are skipped.

``--exportTimes`` JSON (a list of per-query records with ``startEnqMs``, ``endEnqMs``,
``startComputeMs``, ``endComputeMs``, ``h2dMs``, ``computeMs``, ``d2hMs``, ``latencyMs``…)
gives ``samples_ms`` (``latencyMs``) and ``extra["compute_samples_ms"]`` etc.; ``timed``
(and ``metrics["gpu_compute"]``) are then computed from those samples. No throughput is
derived from it: a trimmed file would give a wrong one.
"""

from __future__ import annotations

import json
import re
from typing import Any

from harness.errors import HilbenchError
from harness.runners.model import NUM, LatencyStats, RunnerReport, to_count, to_float

__all__ = ["parse_trtexec", "parse_export_times", "score_trtexec", "tensorrt_version"]

RUNNER = "trtexec"

_TIMESTAMP = re.compile(r"^(?:\[\d\d/\d\d/\d{4}-\d\d:\d\d:\d\d\]\s*)+")
_SEVERITY = re.compile(r"^\[([IWEVF])\]\s?")
_TRT_TAG = re.compile(r"^\[TRT\]\s*")
_BANNER = re.compile(r"^&&&& (RUNNING|PASSED|FAILED|WAIVED) TensorRT\.trtexec(?: \[TensorRT v(\d+)\])?(?: \[(b\d+)\])?\s*#?\s*(.*)$")
_VERSION_LINE = re.compile(r"^TensorRT version:\s*(\S+)")
# ``(?=[^=]*=)`` is checked once after the ':'; ``:\s*(.*=.*)$`` retried ``.*=`` for every split of a run
# of spaces when no '=' followed (quadratic). Same matches, same group 2.
_METRIC_LINE = re.compile(
    r"^(Latency|Host Latency|End-to-End Host Latency|Enqueue Time|H2D Latency|GPU Compute Time|D2H Latency):"
    r"(?=[^=]*=)\s*(.*)$"
)
_METRIC_ITEM = re.compile(rf"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\))\s*=\s*({NUM})\s*ms")
_THROUGHPUT = re.compile(rf"^Throughput:\s*({NUM})\s*qps")
_WALLTIME = re.compile(rf"^Total Host Walltime:\s*({NUM})\s*s")
_TOTAL_GPU = re.compile(rf"^Total GPU Compute Time:\s*({NUM})\s*s")
_TRACE = re.compile(rf"^Timing trace has (\d+) queries over ({NUM})\s*s")
_WARMUP = re.compile(rf"^Warmup completed (\d+) queries over ({NUM})\s*ms")
_ENGINE_LOADED = re.compile(rf"^Engine (?:loaded|deserialized) in ({NUM})\s*sec")
_ENGINE_BUILT = re.compile(rf"^Engine built in ({NUM})\s*sec")
_COV = re.compile(rf"coefficient of variance = ({NUM})\s*%")
_AVERAGE_ON = re.compile(r"^Average on \d+ runs")
# TRT 7 blocks
_BLOCK_HEAD = {"Host Latency": "latency", "Enqueue Time": "enqueue", "GPU Compute": "gpu_compute"}
_BLOCK_STAT = re.compile(rf"^(min|max|mean|median):\s*({NUM})\s*ms(?:\s*\(end to end ({NUM})\s*ms\))?")
_BLOCK_PCT = re.compile(
    rf"^percentile:\s*({NUM})\s*ms at (\d+(?:\.\d+)?)%(?:\s*\(end to end ({NUM})\s*ms at \d+(?:\.\d+)?%\))?"
)
_BLOCK_QPS = re.compile(rf"^throughput:\s*({NUM})\s*qps")
_BLOCK_WALL = re.compile(rf"^walltime:\s*({NUM})\s*s")
_BLOCK_TOTAL = re.compile(rf"^total compute time:\s*({NUM})\s*s")

_METRIC_NAMES = {
    "Latency": "latency",
    "Host Latency": "latency",
    "End-to-End Host Latency": "end_to_end",
    "Enqueue Time": "enqueue",
    "H2D Latency": "h2d",
    "GPU Compute Time": "gpu_compute",
    "D2H Latency": "d2h",
}
#: ``[I]`` option echo lines kept as settings (label -> setting name).
_OPTION_LINES = {
    "Precision": "precision",
    "Streams": "streams",
    "Inference Streams": "streams",
    "Iterations": "iterations",
    "Duration": "duration",
    "Percentile": "percentiles",
    "Percentiles": "percentiles",
    "Batch": "batch_mode",
    "Selected Device": "device",
    "Compute Capability": "compute_capability",
    "Data transfers": "data_transfers",
    "CUDA Graph": "cuda_graph",
    "Spin-wait": "spin_wait",
    "Input inference shape": "input_shapes",
    "Input inference shapes": "input_shapes",
    "Load engine": "load_engine",
    "Save engine": "save_engine",
    "Model": "model",
    "Format": "model_format",
}
_OPTION = re.compile(r"^([A-Za-z][\w\- ()]*?):\s*(.*)$")
_DURATION = re.compile(rf"^({NUM})s\s*\(\+\s*({NUM})ms warm up\)")
_EXPORT_RECORD = re.compile(r"\{[^{}]*\}")

_MARKERS = (
    re.compile(r"&&&& (?:RUNNING|PASSED|FAILED) TensorRT\.trtexec"),
    re.compile(r"=== Performance summary ==="),
    re.compile(r"GPU Compute Time: min ="),
    re.compile(r"\[I\] GPU Compute\s*$", re.MULTILINE),
    re.compile(r"Timing trace has \d+ queries"),
    re.compile(r"\btrtexec\b"),
)


def score_trtexec(text: str) -> int:
    """How many trtexec markers ``text`` contains (0: not this runner); exportTimes JSON scores high."""
    if _looks_like_export_times(text):
        return 10
    return sum(1 for m in _MARKERS if m.search(text))


def _looks_like_export_times(text: str) -> bool:
    head = text.lstrip()[:4000]
    return head.startswith("[") and ('"latencyMs"' in head or '"startEnqMs"' in head)


def tensorrt_version(code: str) -> str:
    """``"8003"`` -> ``"8.0.3"``, ``"101401"`` -> ``"10.14.1"``; a dotted version is returned as is.

    TRT 8/9 encode ``major*1000 + minor*100 + patch``; TRT 10 ``major*10000 + minor*100 + patch``.
    """
    n = to_count(code) if code.isdigit() else None
    if n is None:
        return code
    if n >= 100000:
        return f"{n // 10000}.{(n // 100) % 100}.{n % 100}"
    return f"{n // 1000}.{(n // 100) % 10}.{n % 100}"


def _stats_from_items(text: str) -> LatencyStats:
    values: dict[str, float] = {}
    pct: dict[float, float] = {}
    for name, percent, value in _METRIC_ITEM.findall(text):
        number = to_float(value)
        if number is None:
            continue
        if percent:
            pct[float(percent)] = number
        else:
            values[name] = number
    if "median" in values:
        pct.setdefault(50.0, values["median"])
    return LatencyStats.build(
        mean_ms=values.get("mean"), min_ms=values.get("min"), max_ms=values.get("max"), percentiles_ms=pct
    )


def _command_settings(command: str) -> dict[str, Any]:
    settings: dict[str, Any] = {"command": command.strip()}
    flags: dict[str, str | bool] = {}
    for tok in command.split():
        m = re.match(r"^--?([A-Za-z][\w-]*)(?:=(.*))?$", tok)
        if m:
            flags[m.group(1)] = m.group(2) if m.group(2) is not None else True
    settings["flags"] = flags
    for key in ("onnx", "loadEngine", "deploy", "uff", "model"):
        if isinstance(flags.get(key), str):
            settings["graph"] = flags[key]
            break
    for precision in ("best", "int8", "fp8", "fp16", "bf16"):
        if flags.get(precision) is True:
            settings["precision"] = precision.upper()
            break
    shapes = flags.get("shapes")
    if isinstance(shapes, str):
        settings["shapes"] = shapes
        batches = set()
        for spec in shapes.split(","):
            dims = spec.rsplit(":", 1)[-1].split("x")
            batch = to_count(dims[0]) if dims and dims[0].isdigit() else None
            if batch is not None:
                batches.add(batch)
        if len(batches) == 1:
            settings["batch"] = batches.pop()
    return settings


def parse_trtexec(text: str, *, source: str = "trtexec output") -> RunnerReport:
    """Parse a trtexec log (or ``--exportTimes`` JSON); raise :class:`HilbenchError` when it has no timings."""
    if _looks_like_export_times(text):
        return parse_export_times(text, source=source)
    settings: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    warnings: list[str] = []
    metrics: dict[str, LatencyStats] = {}
    version: str | None = None
    init_ms: float | None = None
    throughput: float | None = None
    trace_count: int | None = None
    warmup: LatencyStats | None = None
    block: str | None = None
    block_values: dict[str, dict[str, Any]] = {}
    pending_warning: list[str] = []

    def flush_warning() -> None:
        if pending_warning:
            message = " ".join(pending_warning)
            warnings.append(message)
            pending_warning.clear()

    for raw in text.splitlines():
        line = _TIMESTAMP.sub("", raw.rstrip())
        m = _BANNER.match(line.strip())
        if m:
            flush_warning()
            extra["result"] = m.group(1)
            if m.group(2):
                version = tensorrt_version(m.group(2))
            if m.group(3):
                extra["build_tag"] = m.group(3)
            if m.group(4) and "command" not in settings:
                settings.update(_command_settings(m.group(4)))
            continue
        m = _SEVERITY.match(line)
        severity = m.group(1) if m else "I"
        body = line[m.end() :] if m else line
        if severity == "V":
            continue
        if severity == "W":
            # A [W] line indented under the previous one continues that advisory.
            if pending_warning and body.startswith(" "):
                pending_warning.append(body.strip())
            else:
                flush_warning()
                pending_warning.append(_TRT_TAG.sub("", body.strip()).lstrip("* ").strip())
            m = _COV.search(body)
            if m:
                extra["gpu_compute_cov_pct"] = to_float(m.group(1))
            continue
        flush_warning()
        body = body.strip()
        if severity in ("E", "F"):
            warnings.append(f"error: {_TRT_TAG.sub('', body)}")
            continue
        if not body or _AVERAGE_ON.match(body) or body.startswith("[TRT]"):
            continue
        m = _VERSION_LINE.match(body)
        if m:
            version = tensorrt_version(m.group(1))
            continue
        m = _METRIC_LINE.match(body)
        if m:
            metrics[_METRIC_NAMES[m.group(1)]] = _stats_from_items(m.group(2))
            block = None
            continue
        m = _THROUGHPUT.match(body)
        if m:
            throughput = to_float(m.group(1))
            continue
        m = _WALLTIME.match(body)
        if m:
            extra["total_host_walltime_s"] = to_float(m.group(1))
            continue
        m = _TOTAL_GPU.match(body)
        if m:
            extra["total_gpu_compute_s"] = to_float(m.group(1))
            continue
        m = _TRACE.match(body)
        if m:
            trace_count = to_count(m.group(1))
            extra["trace_queries"] = trace_count
            extra["trace_walltime_s"] = to_float(m.group(2))
            continue
        m = _WARMUP.match(body)
        if m:
            extra["warmup_queries"] = to_count(m.group(1))
            extra["warmup_duration_ms"] = to_float(m.group(2))
            queries = to_count(m.group(1))
            if queries is not None and queries > 0:
                warmup = LatencyStats.build(count=queries)
            continue
        m = _ENGINE_LOADED.match(body)
        if m:
            value = to_float(m.group(1))
            init_ms = None if value is None else value * 1000.0
            continue
        m = _ENGINE_BUILT.match(body)
        if m:
            extra["engine_build_s"] = to_float(m.group(1))
            continue
        if body in _BLOCK_HEAD:
            block = _BLOCK_HEAD[body]
            block_values.setdefault(block, {})
            continue
        if block is not None and _block_line(body, block, block_values[block], extra):
            continue
        m = _OPTION.match(body)
        if m and m.group(1) in _OPTION_LINES:
            _option(settings, _OPTION_LINES[m.group(1)], m.group(2).strip())
            continue
    flush_warning()

    if block_values:
        extra["summary_format"] = "trt7"
        _finish_blocks(block_values, metrics, extra)
        if throughput is None and "throughput_qps" in extra:
            throughput = extra.pop("throughput_qps")
    if throughput is not None and throughput <= 0:
        extra["throughput_invalid"] = True
        extra["throughput_printed_qps"] = throughput
        warnings.append(
            f"trtexec printed a throughput of {throughput:g} qps, a known TensorRT 7 printing bug: "
            "throughput treated as missing"
        )
        throughput = None
    if trace_count == 0:
        warnings.append("trtexec reported 0 timed queries (TensorRT 7 printing bug): query count treated as missing")
        trace_count = None
    if extra.get("warmup_queries") == 0:
        warnings.append("trtexec reported 0 warm-up queries: warm-up count treated as missing")

    latency = metrics.pop("latency", None)
    if latency is None:
        status = extra.get("result")
        hint = " (trtexec reported FAILED)" if status == "FAILED" else " (the run failed or the output is truncated)"
        raise HilbenchError(f"{source}: no performance summary in trtexec output{hint}")
    timed = LatencyStats.build(
        count=trace_count,
        mean_ms=latency.mean_ms,
        std_ms=latency.std_ms,
        min_ms=latency.min_ms,
        max_ms=latency.max_ms,
        percentiles_ms=latency.percentiles_ms,
        throughput_per_s=throughput,
    )
    if extra.get("result") not in ("PASSED", None):
        warnings.append(f"trtexec result: {extra['result']}")
    elif "result" not in extra or extra["result"] == "RUNNING":
        warnings.append("no '&&&& PASSED' line: the output may be truncated")
    return RunnerReport(
        runner=RUNNER,
        version=version,
        settings=settings,
        init_ms=init_ms,
        first_inference_ms=None,
        warmup=warmup,
        timed=timed,
        metrics=metrics,
        samples_ms=None,
        aggregate_only=True,
        memory={},
        warnings=warnings,
        extra=extra,
    )


def _option(settings: dict[str, Any], name: str, value: str) -> None:
    if not value:
        return
    if name == "duration":
        m = _DURATION.match(value)
        if m:
            settings["duration_s"] = to_float(m.group(1))
            settings["warmup_ms"] = to_float(m.group(2))
        return
    if name == "percentiles":
        settings[name] = [p for p in (to_float(v) for v in value.split(",")) if p is not None]
        return
    if name in ("streams", "iterations") and value.isdigit():
        settings[name] = to_count(value)
        return
    settings.setdefault(name, value)


def _block_line(body: str, block: str, values: dict[str, Any], extra: dict[str, Any]) -> bool:
    """One line inside a TRT 7 summary block; True when consumed."""
    m = _BLOCK_STAT.match(body)
    if m:
        values[m.group(1)] = to_float(m.group(2))
        if m.group(3) is not None:
            values.setdefault("end_to_end", {})[m.group(1)] = to_float(m.group(3))
        return True
    m = _BLOCK_PCT.match(body)
    if m:
        percent = float(m.group(2))
        values.setdefault("percentiles", {})[percent] = to_float(m.group(1))
        if m.group(3) is not None:
            values.setdefault("end_to_end", {}).setdefault("percentiles", {})[percent] = to_float(m.group(3))
        return True
    m = _BLOCK_QPS.match(body)
    if m:
        extra["throughput_qps"] = to_float(m.group(1))
        return True
    m = _BLOCK_WALL.match(body)
    if m:
        extra["total_host_walltime_s"] = to_float(m.group(1))
        return True
    m = _BLOCK_TOTAL.match(body)
    if m:
        extra["total_gpu_compute_s"] = to_float(m.group(1))
        return True
    return False


def _block_stats(values: dict[str, Any]) -> LatencyStats:
    pct = {k: v for k, v in dict(values.get("percentiles", {})).items() if v is not None}
    if values.get("median") is not None:
        pct.setdefault(50.0, values["median"])
    return LatencyStats.build(
        mean_ms=values.get("mean"), min_ms=values.get("min"), max_ms=values.get("max"), percentiles_ms=pct
    )


def _finish_blocks(blocks: dict[str, dict[str, Any]], metrics: dict[str, LatencyStats], extra: dict[str, Any]) -> None:
    for name, values in blocks.items():
        metrics.setdefault(name, _block_stats(values))
        if "end_to_end" in values and name == "latency":
            metrics.setdefault("end_to_end", _block_stats(values["end_to_end"]))


def parse_export_times(text: str, *, source: str = "trtexec --exportTimes JSON") -> RunnerReport:
    """Parse ``trtexec --exportTimes`` JSON into per-query samples (ms).

    A file cut mid-way is read record by record, with a warning.
    """
    warnings: list[str] = []
    records: list[dict[str, Any]]
    try:
        loaded = json.loads(text)
        if not isinstance(loaded, list):
            raise ValueError("not a list")
        records = [r for r in loaded if isinstance(r, dict)]
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep (a hostile file)
        records = []
        for chunk in _EXPORT_RECORD.findall(text):
            try:
                item = json.loads(chunk)
            except (ValueError, RecursionError):
                continue
            if isinstance(item, dict):
                records.append(item)
        warnings.append(f"exportTimes JSON is not complete: read {len(records)} whole records")
    latency = [to_float(str(r.get("latencyMs"))) for r in records]
    samples = [v for v in latency if v is not None]
    if not samples:
        raise HilbenchError(f"{source}: no per-query 'latencyMs' records in trtexec --exportTimes JSON")
    if len(samples) != len(records):
        warnings.append(f"{len(records) - len(samples)} records without a latencyMs value were skipped")
    # The records as written (all values in ms), for timelines; summaries use the series below.
    extra: dict[str, Any] = {"export_times": True, "record_count": len(records), "records": records}
    for key, name in (("computeMs", "compute_samples_ms"), ("h2dMs", "h2d_samples_ms"), ("d2hMs", "d2h_samples_ms")):
        series = [to_float(str(r.get(key))) for r in records]
        if all(v is not None for v in series):
            extra[name] = series
    enqueue = [
        (to_float(str(r.get("endEnqMs"))), to_float(str(r.get("startEnqMs")))) for r in records
    ]
    if all(end is not None and start is not None for end, start in enqueue):
        extra["enqueue_samples_ms"] = [end - start for end, start in enqueue if end is not None and start is not None]
    metrics: dict[str, LatencyStats] = {}
    if "compute_samples_ms" in extra:
        metrics["gpu_compute"] = LatencyStats.from_samples(extra["compute_samples_ms"])
    return RunnerReport(
        runner=RUNNER,
        version=None,
        settings={},
        timed=LatencyStats.from_samples(samples),
        metrics=metrics,
        samples_ms=samples,
        aggregate_only=False,
        warnings=warnings,
        extra=extra,
    )
