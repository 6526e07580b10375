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
_LATENCY_GROUPS = re.compile(r"^Latency for each")
_LATENCY_ITEM = re.compile(rf"^(Median|Average|AVG|Min|Max|(\d+(?:\.\d+)?) percentile):\s*({NUM})\s*ms")
_THROUGHPUT = re.compile(rf"^Throughput:\s*({NUM})\s*FPS")
_EXEC_DEVICES = re.compile(r"^Execution Devices:\s*(.*)$")
_PROPERTY = re.compile(r"^\s+([A-Z][A-Z0-9_]+):\s*(.*)$")
_MEASURING = "Measuring performance ("  # found with str.find (see _measuring_text)
_HINT_WARNING = re.compile(r"performance hint will be set to (?:PerformanceMode\.)?(\w+)")
_BATCH = re.compile(r"^Model batch size:\s*(\d+)")
_COMMAND = re.compile(r"benchmark_app(?:\.exe|\.py)?\s+(.*)$")
_NUM_TOKEN = re.compile(rf"^{NUM}$")
_DEVICE_NAME = re.compile(r"^[A-Z][\w.]*$")
_VERSION = re.compile(r"^(\d+\.\d+(?:\.\d+)?)")
_QUOTED_WORD = re.compile(r"'(\w+)'")
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


@dataclass
class _OpenVinoState:
    """What the lines of one benchmark_app output said, as they are read."""

    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)
    version: str | None = None
    init_ms: float | None = None
    first_ms: float | None = None
    count: int | None = None
    throughput: float | None = None
    latency: dict[str, float] = field(default_factory=dict)
    percentiles: dict[float, float] = field(default_factory=dict)
    in_latency: bool = False
    step: int = 0
    device_info_next: bool = False

    def feed(self, raw: str) -> None:
        """Read one line: the command line, a ``[Step N/11]`` header, a warning or error, or a log line."""
        line = raw.rstrip()
        m = _COMMAND.search(line)
        if m and not line.lstrip().startswith("["):
            self.settings.update(_command_settings(m.group(1)))
            return
        m = _STEP.match(line.strip())
        if m:
            self.step_header(m)
            return
        m = _PREFIX.match(line)
        level = m.group(1) if m else ""
        body = line[m.end() :] if m else line
        stripped = body.strip()
        if level in ("WARNING", "WARN"):
            self.warnings.append(stripped)
            m = _HINT_WARNING.search(stripped)
            if m:
                self.settings.setdefault("performance_hint", m.group(1).upper())
        elif level == "ERROR":
            self.warnings.append(f"error: {stripped}")
        elif stripped:
            self.log_line(body, stripped)

    def step_header(self, m: re.Match[str]) -> None:
        """``[Step 11/11] Measuring performance (…)``: a new step; step 11 tells how the run was asked."""
        self.step = to_count(m.group(1)) or 0
        self.in_latency = False
        measuring = _measuring_text(m.group(3))
        if measuring is not None:
            _measuring(measuring, self.settings)

    def log_line(self, body: str, stripped: str) -> None:
        """An ``[ INFO ]`` (or unprefixed) line that is not blank; ``body`` keeps its indentation."""
        if self.device_info(stripped) or apply_rules(_HEAD_LINES, self, stripped):
            return
        if self.step in (0, 8):  # step 8 lists the compiled model's properties; step 0: a pasted excerpt
            m = _PROPERTY.match(body)
            if m:
                self.properties[m.group(1)] = m.group(2).strip()
                return
        if apply_rules(_BODY_LINES, self, stripped) or self.latency_item(stripped):
            return
        m = _THROUGHPUT.match(stripped)
        if m:
            self.throughput = to_float(m.group(1))

    def device_info(self, stripped: str) -> bool:
        """``Device info:`` and the device name on the next line; True when ``stripped`` was one of them."""
        if stripped == "Device info:":
            self.device_info_next = True
            return True
        if self.device_info_next:
            self.device_info_next = False
            if _DEVICE_NAME.match(stripped):
                self.extra.setdefault("device_info", stripped)
                return True
        return False

    def latency_item(self, stripped: str) -> bool:
        """A ``Median: X ms`` line of the latency block; any other line ends the block. True when one."""
        if not self.in_latency:
            return False
        m = _LATENCY_ITEM.match(stripped)
        if m is None:
            self.in_latency = False
            return False
        value = to_float(m.group(3))
        if value is not None:
            if m.group(2):
                self.percentiles[float(m.group(2))] = value
            else:
                self.latency.setdefault(m.group(1).lower().replace("avg", "average"), value)
        return True


def _build(st: _OpenVinoState, m: re.Match[str]) -> None:
    """``Build ................. 2024.1.0-15008-…``: the first one gives the version."""
    if st.version is None:
        build = m.group(1)
        st.extra["build"] = build
        mv = _VERSION.match(build)
        st.version = mv.group(1) if mv else build


def _took(st: _OpenVinoState, m: re.Match[str]) -> None:
    """``Compile model took 123.4 ms`` and the other ``… took`` lines."""
    value = to_float(m.group(2))
    what = m.group(1)
    if what == "First inference":
        st.first_ms = value
    elif what in ("Compile model", "Load network", "Load model"):
        st.init_ms = value
        st.extra["compile_model_ms"] = value
    else:
        st.extra["read_model_ms" if what == "Read model" else "reshape_model_ms"] = value


def _batch(st: _OpenVinoState, m: re.Match[str]) -> None:
    st.settings["batch"] = to_count(m.group(1))


def _execution_devices(st: _OpenVinoState, m: re.Match[str]) -> None:
    st.settings["execution_devices"] = _devices(m.group(1))


def _count(st: _OpenVinoState, m: re.Match[str]) -> None:
    st.count = to_count(m.group(1))


def _latency_groups(st: _OpenVinoState, m: re.Match[str]) -> None:
    """``Latency for each data shape group:``: the per-group blocks that follow are not read."""
    st.in_latency = False
    st.extra["latency_groups"] = True


def _latency_head(st: _OpenVinoState, m: re.Match[str]) -> None:
    """``Latency:`` opens the latency block; the older ``Latency: X ms`` is the median."""
    st.in_latency = m.group(1) is None
    if m.group(1) is not None and "median" not in st.latency:
        value = to_float(m.group(1))
        if value is not None:
            st.latency["median"] = value


#: Lines read before the compiled-model properties, first match wins.
_HEAD_LINES: LineRules[_OpenVinoState] = (
    (_BUILD, _build),
    (_TOOK, _took),
)
#: Lines read after the compiled-model properties and before the latency block's items.
_BODY_LINES: LineRules[_OpenVinoState] = (
    (_BATCH, _batch),
    (_EXEC_DEVICES, _execution_devices),
    (_COUNT, _count),
    (_DURATION, store_float("duration_ms")),
    (_LATENCY_GROUPS, _latency_groups),
    (_LATENCY_HEAD, _latency_head),
)


def parse_openvino(text: str, *, source: str = "benchmark_app output") -> RunnerReport:
    """Parse OpenVINO ``benchmark_app`` output; raise :class:`InputError` when it has no timings."""
    st = _OpenVinoState()
    for raw in text.splitlines():
        st.feed(raw)
    if st.properties:
        st.extra["device_properties"] = st.properties
        _settings_from_properties(st.properties, st.settings)
    if "device" not in st.settings:
        st.settings["device"] = st.extra.get("device_info", "CPU" if "flags" in st.settings else None)
    if "median" in st.latency:
        st.percentiles.setdefault(50.0, st.latency["median"])
    timed = LatencyStats.build(
        count=st.count,
        mean_ms=st.latency.get("average"),
        min_ms=st.latency.get("min"),
        max_ms=st.latency.get("max"),
        percentiles_ms=st.percentiles,
        throughput_per_s=st.throughput,
    )
    if timed.mean_ms is None and timed.p50_ms is None and st.throughput is None:
        raise InputError(
            f"{source}: no latency or throughput in OpenVINO benchmark_app output "
            "(the run failed or the output is cut before step 11)"
        )
    return RunnerReport(
        runner=RUNNER,
        version=st.version,
        settings=st.settings,
        init_ms=st.init_ms,
        first_inference_ms=st.first_ms,
        warmup=None,
        timed=timed,
        samples_ms=None,
        aggregate_only=True,
        memory={},
        warnings=st.warnings,
        extra=st.extra,
    )


def _settings_from_properties(properties: dict[str, str], settings: dict[str, Any]) -> None:
    """Settings the compiled-model properties tell (execution devices, hint, streams, threads, precision)."""
    if "execution_devices" not in settings and "EXECUTION_DEVICES" in properties:
        settings["execution_devices"] = _devices(properties["EXECUTION_DEVICES"])
    if "PERFORMANCE_HINT" in properties:
        settings.setdefault("performance_hint", properties["PERFORMANCE_HINT"].split(".")[-1].upper())
    for key, name in (("NUM_STREAMS", "streams"), ("INFERENCE_NUM_THREADS", "threads")):
        if properties.get(key, "").isdigit():
            settings[name] = int(properties[key])
    if "INFERENCE_PRECISION_HINT" in properties:
        mp = _QUOTED_WORD.search(properties["INFERENCE_PRECISION_HINT"])
        settings["precision"] = mp.group(1) if mp else properties["INFERENCE_PRECISION_HINT"]


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
