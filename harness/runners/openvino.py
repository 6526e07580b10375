"""Parser for OpenVINO ``benchmark_app`` output (Python and C++ builds).

What it reads: the ``[Step N/11]`` log with ``[ INFO ]`` / ``[ WARNING ]`` prefixes.

* ``Count: N iterations`` -> ``timed.count``; ``Duration: X ms`` -> ``extra["duration_ms"]``;
* the latency block (``Median``, ``Average``, ``Min``, ``Max`` indented under
  ``Latency:``; or the older one-line ``Latency: X ms``, which is the median) ->
  ``timed.p50_ms``, ``mean_ms``, ``min_ms``, ``max_ms``; per-shape-group blocks are ignored;
* ``Throughput: X FPS`` -> ``timed.throughput_per_s``;
* ``First inference took X ms`` -> ``first_inference_ms``; ``Compile model took``
  (older ``Load network took``) -> ``init_ms``; read and reshape times in
  ``extra["read_model_ms"]``, ``extra["reshape_model_ms"]``;
* ``settings``: ``device`` (``-d``, default CPU), ``execution_devices`` (a list, whether
  printed as a Python list or bare text), ``performance_hint``, ``infer_requests``,
  ``api`` (``sync``/``async``), ``duration_limit_ms`` or ``num_runs``, ``streams``,
  ``threads``, ``batch``, ``graph``; all compiled-model properties in
  ``extra["device_properties"]``.

``benchmark_app`` prints no per-iteration times: reports are ``aggregate_only``.
"""

from __future__ import annotations

import re
from typing import Any

from harness.errors import HilbenchError
from harness.runners.model import NUM, LatencyStats, RunnerReport, to_count, to_float

__all__ = ["parse_openvino", "score_openvino"]

RUNNER = "openvino_benchmark_app"

_PREFIX = re.compile(r"^\[\s*(INFO|WARNING|WARN|ERROR|DEBUG)\s*\]\s?")
_STEP = re.compile(r"^\[Step (\d+)/(\d+)\]\s*(.*)$")
_BUILD = re.compile(r"^Build\s*\.*\s*(\S+)")
_TOOK = re.compile(rf"^(Read model|Reshape model|Compile model|Load network|Load model|First inference) took\s*({NUM})\s*ms")
_COUNT = re.compile(r"^Count:\s*(\d+)\s*iterations")
_DURATION = re.compile(rf"^Duration:\s*({NUM})\s*ms")
# Trailing spaces read once (``\s*(...)?\s*$`` tried every split of a run of spaces: quadratic).
_LATENCY_HEAD = re.compile(rf"^Latency:\s*(?:({NUM})\s*ms\s*)?$")
_LATENCY_ITEM = re.compile(rf"^(Median|Average|AVG|Min|Max|(\d+(?:\.\d+)?) percentile):\s*({NUM})\s*ms")
_THROUGHPUT = re.compile(rf"^Throughput:\s*({NUM})\s*FPS")
_EXEC_DEVICES = re.compile(r"^Execution Devices:\s*(.*)$")
_PROPERTY = re.compile(r"^\s+([A-Z][A-Z0-9_]+):\s*(.*)$")
_MEASURING = "Measuring performance ("  # found with str.find (see _measuring_text)
_HINT_WARNING = re.compile(r"performance hint will be set to (?:PerformanceMode\.)?(\w+)")
_BATCH = re.compile(r"^Model batch size:\s*(\d+)")
_COMMAND = re.compile(r"benchmark_app(?:\.exe|\.py)?\s+(.*)$")
_NUM_TOKEN = re.compile(rf"^{NUM}$")
# ``(?<!\d)``: a number starts at the start of a digit run (the same matches; without it every digit of
# a long run started a scan to its end).
_INFER_REQUESTS = re.compile(r"(?<!\d)(\d+) inference requests?")
_STREAMS = re.compile(r"(?<!\d)(\d+) streams")

_MARKERS = (
    re.compile(r"\[Step \d+/11\]"),
    re.compile(r"benchmark_app"),
    re.compile(rf"Throughput:\s*{NUM}\s*FPS"),
    re.compile(r"\[ INFO \] Count:"),
    re.compile(r"\[ INFO \] OpenVINO:"),
)


def score_openvino(text: str) -> int:
    """How many benchmark_app markers ``text`` contains (0: not this runner)."""
    return sum(1 for m in _MARKERS if m.search(text))


def _devices(value: str) -> list[str]:
    quoted = re.findall(r"'([^']*)'", value)
    if quoted:
        return quoted
    return [v for v in re.split(r"[\s,\[\]]+", value) if v]


def _command_settings(args: str) -> dict[str, Any]:
    tokens = args.split()
    flags: dict[str, str | bool] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("-") and not _NUM_TOKEN.match(tok):
            name = tok.lstrip("-")
            if i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
                flags[name] = tokens[i + 1]
                i += 2
                continue
            flags[name] = True
        i += 1
    settings: dict[str, Any] = {"flags": flags}
    if isinstance(flags.get("m"), str):
        settings["graph"] = flags["m"]
    if isinstance(flags.get("d"), str):
        settings["device"] = flags["d"]
    if isinstance(flags.get("hint"), str):
        settings["performance_hint"] = str(flags["hint"]).upper()
    return settings


def parse_openvino(text: str, *, source: str = "benchmark_app output") -> RunnerReport:
    """Parse OpenVINO ``benchmark_app`` output; raise :class:`HilbenchError` when it has no timings."""
    settings: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    warnings: list[str] = []
    properties: dict[str, str] = {}
    version: str | None = None
    init_ms: float | None = None
    first_ms: float | None = None
    count: int | None = None
    throughput: float | None = None
    latency: dict[str, float] = {}
    percentiles: dict[float, float] = {}
    in_latency = False
    step = 0
    device_info_next = False

    for raw in text.splitlines():
        line = raw.rstrip()
        m = _COMMAND.search(line)
        if m and not line.lstrip().startswith("["):
            settings.update(_command_settings(m.group(1)))
            continue
        m = _STEP.match(line.strip())
        if m:
            step = to_count(m.group(1)) or 0
            in_latency = False
            measuring = _measuring_text(m.group(3))
            if measuring is not None:
                _measuring(measuring, settings)
            continue
        m = _PREFIX.match(line)
        level = m.group(1) if m else ""
        body = line[m.end() :] if m else line
        stripped = body.strip()
        if level in ("WARNING", "WARN"):
            warnings.append(stripped)
            mm = _HINT_WARNING.search(stripped)
            if mm:
                settings.setdefault("performance_hint", mm.group(1).upper())
            continue
        if level == "ERROR":
            warnings.append(f"error: {stripped}")
            continue
        if not stripped:
            continue
        if stripped == "Device info:":
            device_info_next = True
            continue
        if device_info_next:
            device_info_next = False
            if re.match(r"^[A-Z][\w.]*$", stripped):
                extra.setdefault("device_info", stripped)
                continue
        m = _BUILD.match(stripped)
        if m:
            if version is None:
                build = m.group(1)
                extra["build"] = build
                mv = re.match(r"^(\d+\.\d+(?:\.\d+)?)", build)
                version = mv.group(1) if mv else build
            continue
        m = _TOOK.match(stripped)
        if m:
            value = to_float(m.group(2))
            what = m.group(1)
            if what == "First inference":
                first_ms = value
            elif what in ("Compile model", "Load network", "Load model"):
                init_ms = value
                extra["compile_model_ms"] = value
            else:
                extra["read_model_ms" if what == "Read model" else "reshape_model_ms"] = value
            continue
        if step == 8 or (step == 0 and _PROPERTY.match(body)):
            m = _PROPERTY.match(body)
            if m:
                properties[m.group(1)] = m.group(2).strip()
                continue
        m = _BATCH.match(stripped)
        if m:
            settings["batch"] = to_count(m.group(1))
            continue
        m = _EXEC_DEVICES.match(stripped)
        if m:
            settings["execution_devices"] = _devices(m.group(1))
            continue
        m = _COUNT.match(stripped)
        if m:
            count = to_count(m.group(1))
            continue
        m = _DURATION.match(stripped)
        if m:
            extra["duration_ms"] = to_float(m.group(1))
            continue
        if stripped.startswith("Latency for each"):
            in_latency = False
            extra["latency_groups"] = True
            continue
        m = _LATENCY_HEAD.match(stripped)
        if m:
            in_latency = m.group(1) is None
            if m.group(1) is not None and "median" not in latency:
                value = to_float(m.group(1))
                if value is not None:
                    latency["median"] = value
            continue
        if in_latency:
            m = _LATENCY_ITEM.match(stripped)
            if m:
                value = to_float(m.group(3))
                if value is not None:
                    if m.group(2):
                        percentiles[float(m.group(2))] = value
                    else:
                        latency.setdefault(m.group(1).lower().replace("avg", "average"), value)
                continue
            in_latency = False
        m = _THROUGHPUT.match(stripped)
        if m:
            throughput = to_float(m.group(1))
            continue

    if properties:
        extra["device_properties"] = properties
        if "execution_devices" not in settings and "EXECUTION_DEVICES" in properties:
            settings["execution_devices"] = _devices(properties["EXECUTION_DEVICES"])
        if "PERFORMANCE_HINT" in properties:
            settings.setdefault("performance_hint", properties["PERFORMANCE_HINT"].split(".")[-1].upper())
        for key, name in (("NUM_STREAMS", "streams"), ("INFERENCE_NUM_THREADS", "threads")):
            if properties.get(key, "").isdigit():
                settings[name] = int(properties[key])
        if "INFERENCE_PRECISION_HINT" in properties:
            mp = re.search(r"'(\w+)'", properties["INFERENCE_PRECISION_HINT"])
            settings["precision"] = mp.group(1) if mp else properties["INFERENCE_PRECISION_HINT"]
    if "device" not in settings:
        settings["device"] = extra.get("device_info", "CPU" if "flags" in settings else None)
    if "median" in latency:
        percentiles.setdefault(50.0, latency["median"])
    timed = LatencyStats.build(
        count=count,
        mean_ms=latency.get("average"),
        min_ms=latency.get("min"),
        max_ms=latency.get("max"),
        percentiles_ms=percentiles,
        throughput_per_s=throughput,
    )
    if timed.mean_ms is None and timed.p50_ms is None and throughput is None:
        raise HilbenchError(
            f"{source}: no latency or throughput in OpenVINO benchmark_app output "
            "(the run failed or the output is cut before step 11)"
        )
    return RunnerReport(
        runner=RUNNER,
        version=version,
        settings=settings,
        init_ms=init_ms,
        first_inference_ms=first_ms,
        warmup=None,
        timed=timed,
        samples_ms=None,
        aggregate_only=True,
        memory={},
        warnings=warnings,
        extra=extra,
    )


def _measuring_text(text: str) -> str | None:
    """What ``Measuring performance \\((.*)\\)`` captured: from the first opening to the last ')'.

    str.find/rfind, not that regex: searched from every repetition of the prefix to the end of the
    line, it was quadratic on a line without ')'.
    """
    start = text.find(_MEASURING)
    if start < 0:
        return None
    start += len(_MEASURING)
    close = text.rfind(")")
    return text[start:close] if close >= start else None


def _measuring(text: str, settings: dict[str, Any]) -> None:
    """``Start inference asynchronously, 4 inference requests, limits: 10000 ms duration``."""
    m = re.search(r"\b(a?synchronously)\b", text)
    if m:
        settings["api"] = "async" if m.group(1).startswith("a") else "sync"
    m = _INFER_REQUESTS.search(text)
    if m:
        settings["infer_requests"] = to_count(m.group(1))
    m = _STREAMS.search(text)
    if m:
        settings.setdefault("streams", to_count(m.group(1)))
    m = re.search(r"limits:\s*(\d+) ms duration", text)
    if m:
        settings["duration_limit_ms"] = to_count(m.group(1))
    m = re.search(r"limits:\s*(\d+) iterations", text)
    if m:
        settings["num_runs"] = to_count(m.group(1))
