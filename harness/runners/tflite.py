"""Parser for LiteRT / TensorFlow Lite ``benchmark_model`` output (TF 1.12 to current LiteRT).

What it reads (every dialect in ``runner-outputs/SOURCES.md``):

* the bracketed parameter echo (``Num threads: [4]``, ``Use gpu : [0]``, …) into
  ``settings`` (normalised keys) and ``settings["echo"]`` (raw);
* ``Initialized session in X ms`` -> ``init_ms``;
* the ``count=`` lines: the first is the warm-up, the second the timed run
  (``first curr min max avg std`` plus optional ``p5 median p95``; µs -> ms;
  scientific notation accepted). A ``count=1 curr=X`` line has mean, min, max and
  median equal to ``X`` (exact for one iteration);
* the summary line in its three dialects (``Warmup/Init/no stats``,
  ``Warmup/Init/Inference`` and ``Init/First inference/Warmup (avg)/Inference (avg)``)
  into ``extra["summary_ms"]``, and ``first_inference_ms``;
* memory lines (``Peak memory footprint``, ``Memory footprint delta``, periodic
  monitoring) into ``memory`` (``init_mb``, ``overall_mb``, ``peak_mb``), with the
  wording in ``extra["memory_kind"]`` (``"peak"`` or ``"delta"``);
* delegate lines into ``settings["delegate"]`` and ``extra["delegation"]``
  (``fully_delegated``, ``kernels``, ``nodes_replaced``, ``nodes_total``, ``partitions``);
* op-profiling tables (tab-separated or space-aligned) into ``extra["op_profile"]``,
  per section (``"init"``, ``"runs"``): ``run_order``, ``top_by_computation_time``,
  ``summary_by_node_type`` (row dicts, times in ms), ``timings`` (:class:`LatencyStats`),
  ``nodes_executed``, ``nodes_observed``.

Line prefixes (``INFO:``, ``WARNING:``, ``VERBOSE:``, logcat, absl, ``[file.cc:NN]``)
are removed first; blank lines are never relied on. ``benchmark_model`` keeps no
per-iteration times, so reports are always ``aggregate_only``.
"""

from __future__ import annotations

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
    store_float,
    to_count,
    to_float,
)

__all__ = ["parse_tflite", "score_tflite"]

RUNNER = "tflite_benchmark_model"

# Linear by construction (issue 18): no two adjacent repeats share characters. ``[VDIWEF]\s[^:]*:`` ends
# where the old ``\s+[^:]*?:`` did (the first ':'), without trying every split of a run of spaces.
_LOGCAT = re.compile(r"^\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+([VDIWEF])\s[^:]*:\s?")
_ABSL = re.compile(r"^([IWEF])\d{4}\s+\d\d:\d\d:[\d.]+\s+\d+\s+\S+:\d+\]\s?")
_LEVEL = re.compile(r"^(INFO|WARNING|VERBOSE|ERROR|DEBUG):\s?")
_SOURCE_TAG = re.compile(r"^\[[^\]\s]+\.(?:cc|h|cpp):\d+\]\s?")

# The key is greedy and may keep trailing spaces (callers strip it): a lazy key followed by ``\s*`` tried
# every split of a run of spaces.
_ECHO = re.compile(r"^(?P<key>[^\[\]:]+):\s*\[(?P<val>[^\]]*)\]\s*$")
_VERSION = re.compile(r"(?:TensorFlow(?: Lite)?|LiteRT)\s+[Vv]ersion\s*:\s*(\S+)", re.IGNORECASE)
_INIT = re.compile(rf"^Initialized session in\s*({NUM})\s*ms")
_MODEL_SIZE = re.compile(rf"^The input model file size \(MB\):\s*({NUM})")
_RUN_HEADER = re.compile(r"^Running benchmark for (?:at least )?(\d+) iterations")
_COUNT_LINE = re.compile(r"^count=")
# ``(?<!\w)``: a key starts at the start of a word; without it every start inside a long word scanned to
# its end (quadratic). The matches are the same: a match inside a word would also match at its start.
_KV = re.compile(rf"(?<!\w)(\w+)=({NUM}|nan|-?inf)")
_SUMMARY = re.compile(r"^(?:Average )?[Ii]nference timings in us:\s*(.*)$")
_SUMMARY_VALUE = re.compile(rf"\s*({NUM})")
_LABEL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz ()")
_MEM_PEAK = re.compile(rf"^Peak memory footprint \(MB\):\s*init=({NUM})\s+overall=({NUM})")
_MEM_DELTA = re.compile(rf"^Memory footprint delta from the start of the tool \(MB\):\s*init=({NUM})\s+overall=({NUM})")
_MEM_MONITOR = re.compile(rf"^Overall peak memory footprint \(MB\) via periodic monitoring:\s*({NUM})")
_APPLIED = re.compile(
    r"Explicitly applied (\w+) delegate, and the model graph will be (completely|partially) executed"
    r"(?: by the delegate)?(?: w/ (\d+) delegate kernels)?"
)
_NOT_APPLIED = re.compile(r"Though (\w+) delegate is explicitly applied, the model graph will not be executed")
_REPLACING = re.compile(
    r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]+)\) node, yielding (\d+) partitions"
)
_CREATED = re.compile(r"Created TensorFlow Lite (?:(\w+) )?delegate for (\w+)")
_GPU_KERNELS = re.compile(r"Created (\d+) GPU delegate kernels")
_GOING_TO_APPLY = re.compile(r"Going to apply (\d+) delegates")
_OPENCL = re.compile(r"Initialized (OpenCL|OpenGL)[- ]based API")

#: Summary-line labels (lower case) -> key in ``extra["summary_ms"]``.
_SUMMARY_KEYS = {
    "warmup": "warmup_avg",
    "warmup (avg)": "warmup_avg",
    "init": "init",
    "no stats": "inference_avg",
    "inference": "inference_avg",
    "inference (avg)": "inference_avg",
    "first inference": "first_inference",
}

_PROFILE_SECTION = {
    "Profiling Info for Benchmark Initialization:": "init",
    "Operator-wise Profiling Info for Regular Benchmark Runs:": "runs",
}
_TIMINGS = re.compile(r"^Timings \(microseconds\):\s*(.*)$")
_NODES_OBSERVED = re.compile(r"^(\d+) nodes observed")
_NODES_EXECUTED = re.compile(r"^Number of nodes executed:\s*(\d+)")
_MEMORY_BYTES = re.compile(r"^Memory \(bytes\):\s*count=(\d+)")
_CELL_NUM = re.compile(rf"^{NUM}%?$")

_COLUMN_KEYS = {
    "node type": "node_type",
    "start": "start_ms",
    "first": "first_ms",
    "avg ms": "avg_ms",
    "%": "pct",
    "avg %": "pct",
    "cdf%": "cdf_pct",
    "cdf %": "cdf_pct",
    "mem kb": "mem_kb",
    "times called": "times_called",
    "name": "name",
    "count": "count",
}

#: Parameter echo keys (lower case, single spaces) -> normalised setting name.
_SETTING_KEYS = {
    "num threads": "threads",
    "#threads used for cpu inference": "threads",
    "graph": "graph",
    "num runs": "num_runs",
    "min num runs": "num_runs",
    "min runs duration (seconds)": "min_secs",
    "max runs duration (seconds)": "max_secs",
    "warmup runs": "warmup_runs",
    "min warmup runs": "warmup_runs",
    "min warmup runs duration (seconds)": "warmup_min_secs",
    "inter-run delay (seconds)": "run_delay_s",
    "use nnapi": "use_nnapi",
    "use gpu": "use_gpu",
    "use xnnpack": "use_xnnpack",
    "use hexagon": "use_hexagon",
    "allow fp16": "allow_fp16",
    "require full delegation": "require_full_delegation",
    "enable op profiling": "enable_op_profiling",
    "nnapi accelerator name": "nnapi_accelerator_name",
    "nnapi accelerators available": "nnapi_accelerators",
    "external delegate path": "external_delegate_path",
    "gpu backend": "gpu_backend",
}
_BOOL_SETTINGS = {
    "use_nnapi",
    "use_gpu",
    "use_xnnpack",
    "use_hexagon",
    "allow_fp16",
    "require_full_delegation",
    "enable_op_profiling",
}
_INT_SETTINGS = {"threads", "num_runs", "warmup_runs"}
_FLOAT_SETTINGS = {"min_secs", "max_secs", "warmup_min_secs", "run_delay_s"}
_FLAG_DELEGATES = (("use_gpu", "GPU"), ("use_nnapi", "NNAPI"), ("use_hexagon", "HEXAGON"), ("use_xnnpack", "XNNPACK"))

#: Lines that make a text look like benchmark_model output, for auto-detection.
_MARKERS = (
    re.compile(r"(?:Average )?[Ii]nference timings in us:"),
    re.compile(r"(?m)^(?:\S+:\s)?count=\d+ (?:first|curr)="),
    re.compile(r"Initialized session in\s*" + NUM + r"\s*ms"),
    re.compile(r"Running benchmark for (?:at least )?\d+ iterations"),
    re.compile(r"benchmark_model"),
    re.compile(r"(?m)^(?:\S+:\s)?STARTING!"),
    re.compile(r"= (?:Run Order|Summary by node type) ="),
)


def score_tflite(text: str) -> int:
    """How many benchmark_model markers ``text`` contains (0: not this runner)."""
    return sum(1 for m in _MARKERS if m.search(text))


def _summary_items(text: str) -> list[tuple[str, str]]:
    """``label: number`` pairs of the summary line, as ``([A-Za-z][A-Za-z ()]*?)\\s*:\\s*(NUM)`` found them.

    A scan instead of that regex, which was quadratic (a lazy label over spaces then ``\\s*``, tried from
    every letter). The label is the run of letters, spaces and brackets before the ':' (trailing
    whitespace dropped), from its first letter; it never reaches back past the previous item.
    """
    items: list[tuple[str, str]] = []
    floor = 0
    colon = text.find(":")
    while colon >= 0:
        end = colon
        while end > floor and text[end - 1].isspace():
            end -= 1
        start = end
        while start > floor and text[start - 1] in _LABEL_CHARS:
            start -= 1
        while start < end and not text[start].isalpha():
            start += 1
        m = _SUMMARY_VALUE.match(text, colon + 1)
        if start < end and text[start].isascii() and m:
            items.append((text[start:end], m.group(1)))
            floor = m.end()
            colon = text.find(":", floor)
        else:
            floor = colon + 1
            colon = text.find(":", floor)
    return items


def _table_heading(stripped: str) -> str | None:
    """The name in ``=== Run Order ===``, as ``^=+\\s*(.+?)\\s*=+$`` gave it, or None (no regex: that one was cubic)."""
    if len(stripped) < 3 or stripped[0] != "=" or stripped[-1] != "=":
        return None
    inner = stripped.lstrip("=").lstrip().rstrip("=").rstrip()
    if inner:
        return inner
    # Only '=' and spaces: the regex still matched, with a name made of them (which normalises to "").
    return stripped[1:-1] if stripped.strip("= \t") == "" else None


def _strip(line: str) -> tuple[str, str]:
    """Remove log prefixes; return ``(level, text)`` with level ``""`` when none was given."""
    level = ""
    text = line.rstrip("\r\n")
    for _ in range(3):
        m = _LOGCAT.match(text) or _ABSL.match(text)
        if m:
            level = {"W": "WARNING", "E": "ERROR", "F": "ERROR"}.get(m.group(1), "INFO")
            text = text[m.end() :]
            continue
        m = _LEVEL.match(text)
        if m:
            level = m.group(1)
            text = text[m.end() :]
            continue
        m = _SOURCE_TAG.match(text)
        if m:
            text = text[m.end() :]
            continue
        break
    return level, text


def _bool(value: str) -> bool | None:
    v = value.strip().lower()
    if v in ("1", "true", "yes"):
        return True
    if v in ("0", "false", "no"):
        return False
    return None


def _setting(name: str, raw: str) -> Any:
    if name in _BOOL_SETTINGS:
        return _bool(raw)
    if name in _INT_SETTINGS:
        value = to_float(raw)
        return int(value) if value is not None and value == int(value) else None
    if name in _FLOAT_SETTINGS:
        return to_float(raw)
    if name == "nnapi_accelerators":
        return [a.strip() for a in raw.split(",") if a.strip()]
    return raw.strip() or None


def count_line_stats(text: str) -> LatencyStats:
    """A ``count=… first=… curr=… min=… max=… avg=… std=… [p5=… median=… p95=…]`` line (µs) as ms stats."""
    values: dict[str, float | None] = {k: to_float(v) for k, v in _KV.findall(text)}

    def ms(key: str) -> float | None:
        value = values.get(key)
        return None if value is None else value / 1000.0

    count_f = values.get("count")
    count = int(count_f) if count_f is not None and 0 <= count_f < 2**63 else None
    pct: dict[float, float] = {}
    for key, percent in (("p5", 5.0), ("median", 50.0), ("p95", 95.0)):
        value = ms(key)
        if value is not None:
            pct[percent] = value
    mean, low, high = ms("avg"), ms("min"), ms("max")
    one = ms("curr")
    if count == 1 and one is not None:
        # One iteration: its time is the mean, min, max and median, exactly.
        mean = one if mean is None else mean
        low = one if low is None else low
        high = one if high is None else high
        pct.setdefault(50.0, one)
    return LatencyStats.build(
        count=count,
        mean_ms=mean,
        std_ms=ms("std"),
        min_ms=low,
        max_ms=high,
        first_ms=ms("first"),
        last_ms=ms("curr"),
        percentiles_ms=pct,
    )


class _Profile:
    """State for the op-profiling tables."""

    def __init__(self) -> None:
        self.sections: dict[str, dict[str, Any]] = {}
        self.section = "runs"
        self.table: str | None = None
        self.columns: list[str] = []

    def current(self) -> dict[str, Any]:
        return self.sections.setdefault(self.section, {})

    def feed(self, text: str) -> bool:
        """Consume ``text`` if it belongs to the op-profiling output; True when consumed."""
        stripped = text.strip()
        if stripped in _PROFILE_SECTION:
            self.section = _PROFILE_SECTION[stripped]
            self.table, self.columns = None, []
            return True
        heading = _table_heading(stripped)
        if heading is not None:
            self.table = re.sub(r"\W+", "_", heading.strip().lower()).strip("_")
            self.columns = []
            self.current().setdefault(self.table, [])
            return True
        if self.table is not None and "[node type]" in stripped.lower():
            self.columns = [c.strip() for c in re.findall(r"\[([^\]]*)\]", stripped)]
            return True
        if apply_rules(_PROFILE_LINES, self, stripped):
            return True
        if self.table is not None and self.columns:
            row = _table_row(text, self.columns)
            if row is not None:
                self.current()[self.table].append(row)
                return True
        return False


def _profile_timings(profile: _Profile, m: re.Match[str]) -> None:
    """``Timings (microseconds): count=… avg=…``: the section's timings; it ends the table."""
    profile.current()["timings"] = count_line_stats(m.group(1))
    profile.table, profile.columns = None, []


def _profile_count(key: str) -> Callable[[_Profile, re.Match[str]], None]:
    """A handler that stores the count in the match as the section's ``key``."""

    def handler(profile: _Profile, m: re.Match[str]) -> None:
        profile.current()[key] = to_count(m.group(1))

    return handler


#: The profiling lines read after the section, table and column headings, first match wins.
_PROFILE_LINES: LineRules[_Profile] = (
    (_TIMINGS, _profile_timings),
    (_NODES_EXECUTED, _profile_count("nodes_executed")),
    (_NODES_OBSERVED, _profile_count("nodes_observed")),
    (_MEMORY_BYTES, _profile_count("memory_bytes_count")),
)


def _table_row(text: str, columns: list[str]) -> dict[str, Any] | None:
    """One row of a profiling table, tab-separated or space-aligned, or None if it is not one."""
    keys = [_COLUMN_KEYS.get(c.lower(), re.sub(r"\W+", "_", c.lower()).strip("_")) for c in columns]
    has_type = bool(keys) and keys[0] == "node_type"
    has_name = bool(keys) and keys[-1] == "name"
    numeric_keys = keys[(1 if has_type else 0) : (len(keys) - 1 if has_name else len(keys))]
    k = len(numeric_keys)
    # Space-aligned tables can glue "100.000%100.000%"; split after every '%'.
    tokens = re.sub(r"%(?=[\d.])", "% ", text.strip()).split()
    start = 1 if has_type else 0
    # run[i]: how many numeric cells start at token i (one pass; testing every window was O(tokens x columns)).
    run = [0] * (len(tokens) + 1)
    for i in range(len(tokens) - 1, -1, -1):
        run[i] = run[i + 1] + 1 if _CELL_NUM.match(tokens[i]) else 0
    for i in range(start, len(tokens) - k + 1):
        if run[i] < k:
            continue
        cells = tokens[i : i + k]
        rest = tokens[i + k :]
        if rest and not has_name:
            return None
        row: dict[str, Any] = {}
        if has_type:
            row["node_type"] = " ".join(tokens[:i])
        for key, cell in zip(numeric_keys, cells, strict=True):
            value = to_float(cell.rstrip("%"))
            if value is None:  # beyond float range: not a table row
                return None
            row[key] = int(value) if key in ("count", "times_called") else value
        if has_name:
            row["name"] = " ".join(rest)
        return row
    return None


@dataclass
class _TfliteState:
    """What the lines of one benchmark_model output said, as they are read."""

    settings: dict[str, Any] = field(default_factory=dict)
    echo: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    delegation: dict[str, Any] = field(default_factory=dict)
    version: str | None = None
    init_ms: float | None = None
    headers: int = 0
    runs: list[LatencyStats | None] = field(default_factory=list)
    summary: dict[str, float] = field(default_factory=dict)
    profile: _Profile = field(default_factory=_Profile)

    def feed(self, raw: str) -> None:
        """Read one line (log prefixes removed): profiling output, the version, one of :data:`_LINES`
        or a delegate line. Warnings and errors are also kept as they are."""
        level, line = _strip(raw)
        body = line.strip()
        if not body:
            return
        if level == "WARNING":
            self.warnings.append(body)
        elif level == "ERROR":
            self.errors.append(body)
        if self.profile.feed(line):
            return
        if self.version is None:
            m = _VERSION.search(body)
            if m:
                self.version = m.group(1)
                return
        if not apply_rules(_LINES, self, body):
            apply_rules(_DELEGATE_LINES, self.delegation, body, search=True)


def _echo(st: _TfliteState, m: re.Match[str]) -> None:
    """A parameter echo ``Num threads: [4]``: raw in ``echo``, normalised in ``settings`` when known."""
    key = re.sub(r"\s+", " ", m.group("key").strip()).lower()
    st.echo[m.group("key").strip()] = m.group("val")
    name = _SETTING_KEYS.get(key)
    if name is not None:
        value = _setting(name, m.group("val"))
        if value is not None:
            st.settings[name] = value


def _init(st: _TfliteState, m: re.Match[str]) -> None:
    st.init_ms = to_float(m.group(1))


def _run_header(st: _TfliteState, m: re.Match[str]) -> None:
    st.headers += 1


def _count_line(st: _TfliteState, m: re.Match[str]) -> None:
    """A ``count=`` line. The n-th "Running benchmark" header owns the n-th one; without headers (pasted
    excerpts) the order decides: warm-up first, then timed."""
    index = st.headers - 1 if st.headers > 0 else len(st.runs)
    if index < len(st.runs) and st.runs[index] is not None:
        index = len(st.runs)
    while len(st.runs) <= index:
        st.runs.append(None)
    st.runs[index] = count_line_stats(m.string)


def _summary(st: _TfliteState, m: re.Match[str]) -> None:
    """``Inference timings in us: Init: …, First inference: …, …`` (µs) into ``summary`` (ms)."""
    for label, value in _summary_items(m.group(1)):
        summary_key = _SUMMARY_KEYS.get(label.strip().lower())
        number = to_float(value)
        if summary_key is not None and number is not None:
            st.summary[summary_key] = number / 1000.0


def _memory_footprint(kind: str) -> Callable[[_TfliteState, re.Match[str]], None]:
    """A handler for the ``init=… overall=…`` memory line worded as ``kind`` (``"peak"`` or ``"delta"``)."""

    def handler(st: _TfliteState, m: re.Match[str]) -> None:
        st.extra["memory_kind"] = kind
        for key, value in (("init_mb", m.group(1)), ("overall_mb", m.group(2))):
            number = to_float(value)
            if number is not None:
                st.memory[key] = number

    return handler


def _memory_monitor(st: _TfliteState, m: re.Match[str]) -> None:
    number = to_float(m.group(1))
    if number is not None:
        st.memory["peak_mb"] = number


#: The lines read after the profiling output and the version, first match wins.
_LINES: LineRules[_TfliteState] = (
    (_ECHO, _echo),
    (_INIT, _init),
    (_MODEL_SIZE, store_float("model_size_mb")),
    (_RUN_HEADER, _run_header),
    (_COUNT_LINE, _count_line),
    (_SUMMARY, _summary),
    (_MEM_PEAK, _memory_footprint("peak")),
    (_MEM_DELTA, _memory_footprint("delta")),
    (_MEM_MONITOR, _memory_monitor),
)


def parse_tflite(text: str, *, source: str = "benchmark_model output") -> RunnerReport:
    """Parse LiteRT/TFLite ``benchmark_model`` output; raise :class:`InputError` when it has no timings."""
    st = _TfliteState()
    for raw in text.splitlines():
        st.feed(raw)
    _collect_extra(st)
    warmup, timed = _phases(st)
    if timed is None:
        hint = f"; last error: {st.errors[-1]}" if st.errors else ""
        raise InputError(
            f"{source}: no timed results in LiteRT benchmark_model output "
            f"(the run failed or the output is cut before the timed run){hint}"
        )
    if not st.summary:
        st.warnings.append("no 'Inference timings in us' summary line: the output may be truncated")
    init_ms = st.init_ms if st.init_ms is not None else st.summary.get("init")
    return RunnerReport(
        runner=RUNNER,
        version=st.version,
        settings=st.settings,
        init_ms=init_ms,
        first_inference_ms=st.summary.get("first_inference"),
        warmup=warmup,
        timed=timed,
        samples_ms=None,
        aggregate_only=True,
        memory=st.memory,
        warnings=st.warnings + [f"error: {e}" for e in st.errors],
        extra=st.extra,
    )


def _collect_extra(st: _TfliteState) -> None:
    """The settings and extras gathered over the whole output: echo, delegate, delegation, profile, summary."""
    if st.echo:
        st.settings["echo"] = st.echo
    delegate: str | None = st.delegation.get("delegate")
    if delegate is None:
        delegate = next((name for flag, name in _FLAG_DELEGATES if st.settings.get(flag) is True), None)
    st.settings["delegate"] = delegate
    if st.delegation:
        st.extra["delegation"] = st.delegation
    if st.profile.sections:
        st.extra["op_profile"] = st.profile.sections
    if st.summary:
        st.extra["summary_ms"] = st.summary


def _phases(st: _TfliteState) -> tuple[LatencyStats | None, LatencyStats | None]:
    """``(warmup, timed)``: the first two ``count=`` lines, else the summary line's averages (with a warning)."""
    runs = st.runs
    warmup = runs[0] if len(runs) > 0 else None
    timed = runs[1] if len(runs) > 1 else None
    if len(runs) > 2:
        st.extra["additional_runs"] = [r for r in runs[2:] if r is not None]
    if timed is None and "inference_avg" in st.summary:
        timed = LatencyStats.build(mean_ms=st.summary["inference_avg"])
        st.extra["timed_source"] = "summary"
        st.warnings.append("no timed count= line: timed mean taken from the 'Inference timings' summary line")
    if warmup is None and "warmup_avg" in st.summary:
        warmup = LatencyStats.build(mean_ms=st.summary["warmup_avg"])
    return warmup, timed


def _applied(delegation: dict[str, Any], m: re.Match[str]) -> None:
    """``Explicitly applied GPU delegate, and the model graph will be completely executed…``."""
    delegation["delegate"] = m.group(1).upper()
    delegation["fully_delegated"] = m.group(2) == "completely"
    if m.group(3) is not None:
        delegation["kernels"] = to_count(m.group(3))


def _not_applied(delegation: dict[str, Any], m: re.Match[str]) -> None:
    """``Though GPU delegate is explicitly applied, the model graph will not be executed…``."""
    delegation["delegate"] = m.group(1).upper()
    delegation["fully_delegated"] = False
    delegation["kernels"] = 0


def _replacing(delegation: dict[str, Any], m: re.Match[str]) -> None:
    """``Replacing 60 out of 66 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 3 partitions``."""
    delegation["nodes_replaced"] = to_count(m.group(1))
    delegation["nodes_total"] = to_count(m.group(2))
    delegation["delegate_node"] = m.group(3)
    delegation["partitions"] = to_count(m.group(4))


def _created(delegation: dict[str, Any], m: re.Match[str]) -> None:
    """``Created TensorFlow Lite XNNPACK delegate for CPU`` or ``… delegate for GPU``."""
    # "XNNPACK delegate for CPU" names the delegate first; "delegate for GPU" names the target.
    created = (m.group(1) or m.group(2)).upper()
    delegation.setdefault("created", []).append(created)
    delegation.setdefault("delegate", created)


def _delegation_value(key: str, convert: Callable[[str], Any]) -> Callable[[dict[str, Any], re.Match[str]], None]:
    """A handler that stores ``convert`` of the match's first group as ``delegation[key]``."""

    def handler(delegation: dict[str, Any], m: re.Match[str]) -> None:
        delegation[key] = convert(m.group(1))

    return handler


#: Delegate lines, searched anywhere in a line that no other rule took; first match wins.
_DELEGATE_LINES: LineRules[dict[str, Any]] = (
    (_APPLIED, _applied),
    (_NOT_APPLIED, _not_applied),
    (_REPLACING, _replacing),
    (_CREATED, _created),
    (_GPU_KERNELS, _delegation_value("kernels", to_count)),
    (_GOING_TO_APPLY, _delegation_value("delegates_to_apply", to_count)),
    (_OPENCL, _delegation_value("gpu_api", str)),
)
