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
from dataclasses import dataclass, field
from typing import Any

from harness.errors import InputError
from harness.runners.model import (
    NUM,
    LatencyStats,
    LineRules,
    RunnerReport,
    apply_rules,
    store_float,
    to_count,
    to_float,
)

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


@dataclass
class _Trt7Block:
    """The TRT 7 summary block being read: its values (``min``, ``percentiles``, ``end_to_end``…) and
    the report's ``extra`` (the block's throughput, walltime and total compute time go there)."""

    values: dict[str, Any]
    extra: dict[str, Any]


def _block_stat(block: _Trt7Block, m: re.Match[str]) -> None:
    """``min: X ms (end to end Y ms)``."""
    block.values[m.group(1)] = to_float(m.group(2))
    if m.group(3) is not None:
        block.values.setdefault("end_to_end", {})[m.group(1)] = to_float(m.group(3))


def _block_percentile(block: _Trt7Block, m: re.Match[str]) -> None:
    """``percentile: X ms at 99% (end to end Y ms at 99%)``."""
    percent = float(m.group(2))
    block.values.setdefault("percentiles", {})[percent] = to_float(m.group(1))
    if m.group(3) is not None:
        block.values.setdefault("end_to_end", {}).setdefault("percentiles", {})[percent] = to_float(m.group(3))


#: The lines inside a TRT 7 summary block.
_BLOCK_LINES: LineRules[_Trt7Block] = (
    (_BLOCK_STAT, _block_stat),
    (_BLOCK_PCT, _block_percentile),
    (_BLOCK_QPS, store_float("throughput_qps")),
    (_BLOCK_WALL, store_float("total_host_walltime_s")),
    (_BLOCK_TOTAL, store_float("total_gpu_compute_s")),
)


@dataclass
class _TrtState:
    """What the lines of one trtexec log said, as they are read."""

    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    metrics: dict[str, LatencyStats] = field(default_factory=dict)
    version: str | None = None
    init_ms: float | None = None
    throughput: float | None = None
    trace_count: int | None = None
    warmup: LatencyStats | None = None
    block: _Trt7Block | None = None
    block_values: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending_warning: list[str] = field(default_factory=list)

    def feed(self, raw: str) -> None:
        """Read one line (timestamps removed): the ``&&&&`` banner, a ``[W]``/``[E]`` line or an ``[I]`` line."""
        line = _TIMESTAMP.sub("", raw.rstrip())
        m = _BANNER.match(line.strip())
        if m:
            self.flush_warning()
            self.banner(m)
            return
        m = _SEVERITY.match(line)
        severity = m.group(1) if m else "I"
        body = line[m.end() :] if m else line
        if severity == "V":
            return
        if severity == "W":
            self.warning_line(body)
            return
        self.flush_warning()
        body = body.strip()
        if severity in ("E", "F"):
            self.warnings.append(f"error: {_TRT_TAG.sub('', body)}")
        elif body and not _AVERAGE_ON.match(body) and not body.startswith("[TRT]"):
            self.info_line(body)

    def banner(self, m: re.Match[str]) -> None:
        """``&&&& PASSED TensorRT.trtexec [TensorRT v8502] # command``."""
        self.extra["result"] = m.group(1)
        if m.group(2):
            self.version = tensorrt_version(m.group(2))
        if m.group(3):
            self.extra["build_tag"] = m.group(3)
        if m.group(4) and "command" not in self.settings:
            self.settings.update(_command_settings(m.group(4)))

    def warning_line(self, body: str) -> None:
        """A ``[W]`` line: a new advisory, or (indented) the continuation of the previous one."""
        if self.pending_warning and body.startswith(" "):
            self.pending_warning.append(body.strip())
        else:
            self.flush_warning()
            self.pending_warning.append(_TRT_TAG.sub("", body.strip()).lstrip("* ").strip())
        m = _COV.search(body)
        if m:
            self.extra["gpu_compute_cov_pct"] = to_float(m.group(1))

    def flush_warning(self) -> None:
        """The advisory read so far becomes one warning."""
        if self.pending_warning:
            self.warnings.append(" ".join(self.pending_warning))
            self.pending_warning.clear()

    def info_line(self, body: str) -> None:
        """An ``[I]`` line (stripped, not empty): a summary line, a TRT 7 block line or an option echo."""
        if apply_rules(_INFO_LINES, self, body):
            return
        if body in _BLOCK_HEAD:
            self.block = _Trt7Block(self.block_values.setdefault(_BLOCK_HEAD[body], {}), self.extra)
            return
        if self.block is not None and apply_rules(_BLOCK_LINES, self.block, body):
            return
        m = _OPTION.match(body)
        if m and m.group(1) in _OPTION_LINES:
            _option(self.settings, _OPTION_LINES[m.group(1)], m.group(2).strip())


def _version_line(st: _TrtState, m: re.Match[str]) -> None:
    st.version = tensorrt_version(m.group(1))


def _metric_line(st: _TrtState, m: re.Match[str]) -> None:
    """A TRT >= 8 ``Name: min = a ms, …`` line; it ends any TRT 7 block."""
    st.metrics[_METRIC_NAMES[m.group(1)]] = _stats_from_items(m.group(2))
    st.block = None


def _throughput(st: _TrtState, m: re.Match[str]) -> None:
    st.throughput = to_float(m.group(1))


def _trace(st: _TrtState, m: re.Match[str]) -> None:
    st.trace_count = to_count(m.group(1))
    st.extra["trace_queries"] = st.trace_count
    st.extra["trace_walltime_s"] = to_float(m.group(2))


def _warmup(st: _TrtState, m: re.Match[str]) -> None:
    queries = to_count(m.group(1))
    st.extra["warmup_queries"] = queries
    st.extra["warmup_duration_ms"] = to_float(m.group(2))
    if queries is not None and queries > 0:
        st.warmup = LatencyStats.build(count=queries)


def _engine_loaded(st: _TrtState, m: re.Match[str]) -> None:
    value = to_float(m.group(1))
    st.init_ms = None if value is None else value * 1000.0


#: The ``[I]`` lines read before the TRT 7 blocks and the option echo, first match wins.
_INFO_LINES: LineRules[_TrtState] = (
    (_VERSION_LINE, _version_line),
    (_METRIC_LINE, _metric_line),
    (_THROUGHPUT, _throughput),
    (_WALLTIME, store_float("total_host_walltime_s")),
    (_TOTAL_GPU, store_float("total_gpu_compute_s")),
    (_TRACE, _trace),
    (_WARMUP, _warmup),
    (_ENGINE_LOADED, _engine_loaded),
    (_ENGINE_BUILT, store_float("engine_build_s")),
)


def parse_trtexec(text: str, *, source: str = "trtexec output") -> RunnerReport:
    """Parse a trtexec log (or ``--exportTimes`` JSON); raise :class:`InputError` when it has no timings."""
    if _looks_like_export_times(text):
        return parse_export_times(text, source=source)
    st = _TrtState()
    for raw in text.splitlines():
        st.feed(raw)
    st.flush_warning()
    if st.block_values:
        st.extra["summary_format"] = "trt7"
        _finish_blocks(st.block_values, st.metrics, st.extra)
        if st.throughput is None and "throughput_qps" in st.extra:
            st.throughput = st.extra.pop("throughput_qps")
    _drop_printing_bugs(st)
    latency = st.metrics.pop("latency", None)
    if latency is None:
        failed = st.extra.get("result") == "FAILED"
        hint = " (trtexec reported FAILED)" if failed else " (the run failed or the output is truncated)"
        raise InputError(f"{source}: no performance summary in trtexec output{hint}")
    _result_warning(st)
    return RunnerReport(
        runner=RUNNER,
        version=st.version,
        settings=st.settings,
        init_ms=st.init_ms,
        first_inference_ms=None,
        warmup=st.warmup,
        timed=LatencyStats.build(
            count=st.trace_count,
            mean_ms=latency.mean_ms,
            std_ms=latency.std_ms,
            min_ms=latency.min_ms,
            max_ms=latency.max_ms,
            percentiles_ms=latency.percentiles_ms,
            throughput_per_s=st.throughput,
        ),
        metrics=st.metrics,
        samples_ms=None,
        aggregate_only=True,
        memory={},
        warnings=st.warnings,
        extra=st.extra,
    )


def _drop_printing_bugs(st: _TrtState) -> None:
    """A printed throughput <= 0 or 0 timed queries (TensorRT 7 bugs) become missing, with a warning."""
    if st.throughput is not None and st.throughput <= 0:
        st.extra["throughput_invalid"] = True
        st.extra["throughput_printed_qps"] = st.throughput
        st.warnings.append(
            f"trtexec printed a throughput of {st.throughput:g} qps, a known TensorRT 7 printing bug: "
            "throughput treated as missing"
        )
        st.throughput = None
    if st.trace_count == 0:
        st.warnings.append(
            "trtexec reported 0 timed queries (TensorRT 7 printing bug): query count treated as missing"
        )
        st.trace_count = None
    if st.extra.get("warmup_queries") == 0:
        st.warnings.append("trtexec reported 0 warm-up queries: warm-up count treated as missing")


def _result_warning(st: _TrtState) -> None:
    """Warn unless the banner said PASSED: another result, or no final banner (a truncated log)."""
    if st.extra.get("result") not in ("PASSED", None):
        st.warnings.append(f"trtexec result: {st.extra['result']}")
    elif "result" not in st.extra or st.extra["result"] == "RUNNING":
        st.warnings.append("no '&&&& PASSED' line: the output may be truncated")


def _option(settings: dict[str, Any], name: str, value: str) -> None:
    """An ``[I]`` option echo (``Iterations: 10``) as the setting ``name``; empty values are ignored."""
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

    A file cut mid-way is read record by record, with a warning. Raises :class:`InputError` when no
    record has a ``latencyMs`` value.
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
        raise InputError(f"{source}: no per-query 'latencyMs' records in trtexec --exportTimes JSON")
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
