"""Property-based fuzzing of the device-facing text parsers (issue 18): runner outputs and telemetry.

Inputs are hostile: lines built from each format's own tokens mixed with hostile characters (NUL,
escapes, Unicode digits and line breaks, NaN/inf, 400-digit numbers, unbalanced brackets), and real
recorded samples from ``../shared`` cut at any point or with a slice removed. Properties:

* runner parsers return a :class:`RunnerReport` or raise :class:`HilbenchError` (their documented
  contract), nothing else; every timing is a finite float or None, counts are non-negative ints;
* ``parse_text(kind, text)`` never raises (its contract: partial or truncated input gives the readings
  that can be read) and every reading's value is a finite float or None; ``harness.analysis.telemetry.parse_string``
  raises only :class:`HilbenchError`;
* time: Hypothesis ``deadline`` per example; memory: the tracemalloc peak stays under a bound.

Derandomized (a fixed sequence of examples) so CI is stable; the whole file runs in a few seconds.
"""

from __future__ import annotations

import math
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hilbench_agent.telemetry import KINDS, detect_kind, parse_text
from hilbench_agent.telemetry.jetson import parse_tegrastats_line
from hilbench_agent.telemetry.reading import Reading
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import harness.analysis.stats  # noqa: F401  (imported here, not inside a traced parse: numpy's import is not the parser's memory)
from harness.analysis.telemetry import parse_string
from harness.errors import HilbenchError
from harness.runners import RUNNERS, LatencyStats, RunnerReport, detect_runner, parse_runner_output

#: ``HILBENCH_FUZZ_EXAMPLES=5000`` (and ``HILBENCH_FUZZ_RANDOM=1``) for a longer hunt than CI's.
EXAMPLES = int(os.environ.get("HILBENCH_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=1000,  # ms per example: a super-linear path on a few kB shows up as seconds
    derandomize=not os.environ.get("HILBENCH_FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
#: tracemalloc peak allowed per character of input, plus a constant.
MEM_PER_CHAR = 200
MEM_BASE = 8 * 1024 * 1024

HOSTILE = [
    "\x00", "\r", "\x1b[2J", "\x1b]0;t\x07", "\u2028", "\x85", "\t", "١٢", "²", "nan", "NaN", "inf", "-inf",
    "1e999", "-1e308", "1e308", "9" * 400, "0x", "{", "}", "[", "]", "(", ")", ":", "=", ",", "%", "@", "/",
    "'", '"', "-", ".", "..", " ", "  ", "\n", "\n\n", "€", "\ufffd",
]

RUNNER_TOKENS = {
    "tflite_benchmark_model": [
        "INFO: ", "WARNING: ", "ERROR: ", "Num threads: [4]", "Use gpu : [1]", "Graph: [m.tflite]",
        "Initialized session in ", "ms", "count=", "first=", "curr=", "min=", "max=", "avg=", "std=", "p5=",
        "median=", "p95=", "Running benchmark for at least ", " iterations", "Inference timings in us: ",
        "Init: ", "First inference: ", "Warmup (avg): ", "Inference (avg): ", "no stats: ",
        "Peak memory footprint (MB): init=", " overall=", "Memory footprint delta from the start of the tool (MB): ",
        "Explicitly applied GPU delegate, and the model graph will be completely executed by the delegate.",
        "Replacing 10 out of 12 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 2 partitions",
        "============ Run Order ============", "[node type]", "[start]", "[first]", "[avg ms]", "[%]",
        "[cdf%]", "[mem KB]", "[times called]", "[name]", "Timings (microseconds): ", "CONV_2D", "100.000%",
        "Profiling Info for Benchmark Initialization:", "01-02 03:04:05.678  123  456 I tflite  : ",
        "I0102 03:04:05.678 123 benchmark.cc:12] ", "[benchmark.cc:12] ", "TensorFlow Lite version: 2.15",
    ],
    "onnxruntime_perf_test": [
        "Session creation time cost: ", "First inference time cost: ", "Total inference time cost: ",
        "Total inference requests: ", "Average inference time cost: ", "Total inference run time: ",
        "Number of inferences per second: ", "Avg CPU usage: ", "Peak working set size: ", " bytes", "Runs:",
        "P50 Latency: ", "P999 Latency is ", "Min Latency: ", "Max Latency: ", " s", "sec", "ms", " %",
        "Setting intra_op_num_threads to ", "using CPUExecutionProvider", "iteration:", ",time_cost:",
        "[W:onnxruntime:, graph.cc:1 f] ", "onnxruntime_perf_test -e cpu -r 100 -x 4 model.onnx out.txt",
        "model.onnx,", "0.0167,", "12345,", "96,", "1",
    ],
    "trtexec": [
        "[01/02/2024-03:04:05] ", "[I] ", "[W] ", "[E] ", "[V] ", "[TRT] ", "=== Performance summary ===",
        "Throughput: ", " qps", "Latency: ", "Host Latency: ", "GPU Compute Time: ", "Enqueue Time: ",
        "min = ", "max = ", "mean = ", "median = ", "percentile(99%) = ", "percentile(90.5%) = ", " ms", ", ",
        "Total Host Walltime: ", "Total GPU Compute Time: ", "Timing trace has ", " queries over ", " s",
        "Engine loaded in ", " sec", "&&&& PASSED TensorRT.trtexec [TensorRT v8601] # trtexec --onnx=m.onnx",
        "Host Latency", "GPU Compute", "min: ", "percentile: ", " at 99%", "(end to end ", "throughput: ",
        "walltime: ", "Precision: ", "FP16", "Duration: ", "3s (+ 200ms warm up)", "Streams: ", "coefficient of variance = ",
        '[{"startEnqMs": 1, "endEnqMs": 2, "latencyMs": ', '{"latencyMs": ', "}", "]",
    ],
    "openvino_benchmark_app": [
        "[ INFO ] ", "[ WARNING ] ", "[ ERROR ] ", "[Step 1/11] ", "[Step 8/11] ", "[Step 11/11] ",
        "Measuring performance (", "Start inference asynchronously, 4 inference requests, limits: 10000 ms duration)",
        "Build ................................. ", "2024.1.0-15008", "Count: ", " iterations", "Duration: ", " ms",
        "Latency:", "Median: ", "Average: ", "Min: ", "Max: ", "90 percentile: ", "Throughput: ", " FPS",
        "Compile model took ", "First inference took ", "Execution Devices:", "['CPU']", "  NUM_STREAMS: ",
        "  PERFORMANCE_HINT: ", "THROUGHPUT", "Model batch size: ", "Device info:", "CPU",
        "benchmark_app -m model.xml -d CPU -hint throughput", "Latency for each",
    ],
}

TELEMETRY_TOKENS = [
    "RAM ", "1234/7764MB", "(lfb ", "4x4MB)", "SWAP ", "CPU [", "12%@1190", ",", "off", "]", "EMC_FREQ ",
    "0%@1600", "GR3D_FREQ ", "99%@[305,0]", "cpu@45.5C", "PMIC@50C", "tj@-256C", "VDD_IN ", "5000mW/4800mW",
    "cpu0: ", "Online=1 Governor=schedutil MinFreq=102000 MaxFreq=1479000 CurrentFreq=1479000 IdleStates: C1=1",
    "GPU MinFreq=76800000 MaxFreq=921600000 CurrentFreq=921600000", "EMC FreqOverride=1", "Fan: PWM=0 speed=255",
    "NV Power Mode: MAXN", "SOC family:tegra210  Machine:NVIDIA Jetson Nano", "POWER_MODEL: ID=0 NAME=MAXN",
    "PARAM TYPE=CLOCK NAME=CPU_A57", "CPU_A57 MAX_FREQ 2147483647", "PM_CONFIG: DEFAULT=MAXN(0)",
    "temp=45.6'C", "frequency(48)=1500000000", "volt=0.8563V", "throttled=0x50005",
    'error=1 error_msg="Command not registered"', "  VDD_CORE_A current(7)=1.23A", "  VDD_CORE_V volt(15)=0.81V",
    "Current Battery Service state:", "  level: ", "  scale: 100", "  voltage: ", "  temperature: ", "  status: ",
    "  health: ", "  AC powered: true", "  Max charging current: ", "Thermal Status: ", "HAL Ready: true",
    "Current temperatures from HAL:", "Cached temperatures:", "Current cooling devices from HAL:",
    "Temperature{mValue=", ", mType=", ", mName=", ", mStatus=", "}", "CoolingDevice{mValue=",
    "POWER_SUPPLY_STATUS=Discharging", "POWER_SUPPLY_CURRENT_NOW=", "POWER_SUPPLY_NAME=battery", "CAPACITY=",
    "/sys/class/thermal/thermal_zone0/type", "tsens_tz_sensor1", "*** Sampled system activity (Mon) (1000.5ms elapsed) ***",
    "CPU Power: ", " mW", "GPU Power: ", "Combined Power (CPU + GPU + ANE): ", "E-Cluster HW active frequency: ",
    " MHz", "GPU idle residency: ", "%", "Current pressure level: Nominal", "CPU_Speed_Limit \t= ",
    '{"all_power": ', '"cpu_usage": [1000, 0.5]', '"temp": {"cpu_temp_avg": 40}', '"memory": {"ram_total": 1}',
    "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>elapsed_ns</key><integer>", "</integer>",
    "<key>processor</key><dict><key>cpu_power</key><real>", "</real></dict></dict></plist>",
    "MemTotal:       16 kB", "VmRSS:\t  1234 kB", "Threads:\t4", "# ttar ", "Path: sys/class/thermal/thermal_zone0/temp",
    "Lines: ", "Mode: 644", "Directory: sys/class/thermal", "SymlinkTo: ../../x", "/sys/class/powercap/intel-rapl:0/energy_uj:",
    "---", "/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/in1_label", "cat: /sys/x: Input/output error",
    "trip_point_0_temp", "-40000", "apex_0", "temp", "/sys/class/apex/apex_0", "VDD_GPU_SOC,/sys/bus/i2c/x",
]

NUMBERS = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "-0", "1e999", "9" * 400, "1.2.3", ".", "-", "+1", "١٢٣", "²", "0x1F", "1_000"]),
)


def _texts(tokens: list[str]) -> st.SearchStrategy[str]:
    piece = st.one_of(st.sampled_from(tokens), st.sampled_from(HOSTILE), NUMBERS, st.text(max_size=8))
    line = st.lists(piece, max_size=12).map("".join)
    return st.lists(line, max_size=20).map("\n".join)


def _finite_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isfinite(value))


def _check_stats(stats: LatencyStats | None, where: str) -> None:
    if stats is None:
        return
    assert isinstance(stats, LatencyStats), where
    assert stats.count is None or (isinstance(stats.count, int) and stats.count >= 0), (where, stats.count)
    for name in ("mean_ms", "std_ms", "min_ms", "max_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms",
                 "first_ms", "last_ms", "throughput_per_s"):
        assert _finite_or_none(getattr(stats, name)), (where, name, getattr(stats, name))
    for pct, value in stats.percentiles_ms.items():
        assert _finite_or_none(float(pct)) and _finite_or_none(value), (where, pct, value)


def check_report(report: RunnerReport) -> None:
    assert isinstance(report, RunnerReport)
    assert report.runner in RUNNERS
    assert report.timed is not None
    _check_stats(report.timed, "timed")
    _check_stats(report.warmup, "warmup")
    for name, stats in report.metrics.items():
        _check_stats(stats, name)
    for name in ("init_ms", "first_inference_ms"):
        assert _finite_or_none(getattr(report, name)), (name, getattr(report, name))
    if report.samples_ms is not None:
        assert all(isinstance(v, float) and math.isfinite(v) for v in report.samples_ms)
    for key, value in report.memory.items():
        assert _finite_or_none(value), (key, value)
    assert all(isinstance(w, str) for w in report.warnings)
    report.to_dict()


def run_runner(text: str, runner: str | None) -> None:
    tracemalloc.start()
    try:
        try:
            report = parse_runner_output(text, runner)
        except HilbenchError:
            pass  # the documented failure: unrecognisable text or no timings
        else:
            check_report(report)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEM_BASE + MEM_PER_CHAR * len(text), f"peak {peak} bytes for {len(text)} chars"


def check_readings(readings: Any) -> None:
    assert isinstance(readings, list)
    for r in readings:
        assert isinstance(r, Reading)
        assert isinstance(r.sensor, str)
        assert _finite_or_none(r.value), (r.sensor, r.value)
        if r.value is None:
            assert r.reason is None or isinstance(r.reason, str)
        r.to_dict(extra=True)


def run_telemetry(kind: str, text: str) -> None:
    tracemalloc.start()
    try:
        check_readings(parse_text(kind, text))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEM_BASE + MEM_PER_CHAR * len(text), f"peak {peak} bytes for {len(text)} chars"


# --- runner parsers ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("runner", RUNNERS)
@FUZZ
@given(data=st.data())
def test_runner_parser_on_token_soup(runner: str, data: st.DataObject) -> None:
    text = data.draw(_texts(RUNNER_TOKENS[runner]))
    run_runner(text, runner)


@FUZZ
@given(text=_texts([t for tokens in RUNNER_TOKENS.values() for t in tokens]))
def test_runner_detection_on_token_soup(text: str) -> None:
    assert detect_runner(text) in (None, *RUNNERS)
    run_runner(text, None)


def _recorded(shared: Path, folder: str) -> list[tuple[str, str]]:
    out = []
    for p in sorted((shared / folder).rglob("*")):
        if p.is_file() and p.suffix != ".md":
            out.append((p.parent.name, p.read_text(encoding="utf-8", errors="replace")))
    assert out, f"no recorded samples under {shared / folder}"
    return out


def _cut(data: st.DataObject, text: str) -> str:
    """``text`` cut at a random point, or with a random slice removed, or with a hostile piece inserted."""
    n = len(text)
    a = data.draw(st.integers(0, n))
    b = data.draw(st.integers(a, n))
    how = data.draw(st.sampled_from(["head", "tail", "hole", "insert"]))
    if how == "head":
        return text[:a]
    if how == "tail":
        return text[a:]
    if how == "hole":
        return text[:a] + text[b:]
    return text[:a] + data.draw(st.sampled_from(HOSTILE) | NUMBERS) + text[a:]


@pytest.mark.slow
@FUZZ
@given(data=st.data())
def test_runner_parsers_on_truncated_recordings(shared_dir: Path, data: st.DataObject) -> None:
    samples = _recorded(shared_dir, "runner-outputs")
    runner, text = data.draw(st.sampled_from(samples))
    cut = _cut(data, text)
    run_runner(cut, runner)
    run_runner(cut, None)


# --- telemetry parsers ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@settings(FUZZ, max_examples=max(1, EXAMPLES * 3 // 8))
@given(text=_texts(TELEMETRY_TOKENS))
def test_telemetry_parser_on_token_soup(kind: str, text: str) -> None:
    run_telemetry(kind, text)


@pytest.mark.slow
@FUZZ
@given(text=_texts(TELEMETRY_TOKENS))
def test_telemetry_detection_and_host_parse(text: str) -> None:
    assert detect_kind(text) in (None, *KINDS)
    check_readings(parse_tegrastats_line(text.replace("\n", " ")))
    try:
        out = parse_string(text)
    except HilbenchError:
        return
    assert all(isinstance(d, dict) and _finite_or_none(d["value"]) for d in out)


@pytest.mark.slow
@FUZZ
@given(data=st.data())
def test_telemetry_parsers_on_truncated_recordings(shared_dir: Path, data: st.DataObject) -> None:
    samples = _recorded(shared_dir, "telemetry-samples")
    _, text = data.draw(st.sampled_from(samples))
    cut = _cut(data, text)
    kind = detect_kind(text)
    run_telemetry(kind or "sysfs-temp", cut)
    if detect_kind(cut) is not None:
        run_telemetry(detect_kind(cut), cut)


# --- regressions: crashes the fuzzers found (each was an uncaught exception before) ----------------

BIG = "9" * 400


@pytest.mark.parametrize(
    "runner,text",
    [
        # OverflowError: a 400-digit request count went through float()
        ("ort", f"Total inference requests: {BIG}\nAverage inference time cost: 1.5 ms\nAvg CPU usage:{BIG}"),
        ("ort", f"Peak working set size: {BIG} bytes\nP50 Latency: 0.1 s\n"),
        ("ort", "m," + "1e308,1,2\n" * 3),  # samples overflow to inf in ms: not finite, not a crash
        ("tflite", "count=-5 curr=1000\ncount=1 curr=1e999\n"),  # a negative count
        ("tflite", "count=1 curr=1\ncount=1 curr=2\n" + "9" * 5000 + " nodes observed"),  # int() of 5,000 digits
        ("trtexec", f"[I] Latency: mean = 1 ms\n[I] Warmup completed {BIG} queries over 1 ms\n"
         f"[I] Timing trace has {'9' * 5000} queries over 1 s"),
        ("trtexec", '[{"latencyMs": 1e200}, {"latencyMs": -1e200}]'),  # fsum overflow, (v - mean) ** 2 overflow
        ("trtexec", '[{"latencyMs": 1}, ' + "[" * 100000 + "]" * 100000 + "]"),  # RecursionError in json.loads
        ("openvino", f"[Step {'1' * 5000}/11] x\n[ INFO ] Count: {BIG} iterations\n[ INFO ] Throughput: 1 FPS"),
    ],
)
def test_runner_regressions(runner: str, text: str) -> None:
    run_runner(text, runner)


@pytest.mark.parametrize(
    "kind,text",
    [
        ("sysfs-temp", BIG),  # OverflowError: raw / 1000.0
        ("trip-points", BIG),
        ("vcgencmd", "volt=.1.2000V\ntemp=1.2.3'C"),  # ValueError: float("1.2.3")
        ("pmic_read_adc", "  X_A current(1)=1.2.3A"),
        ("powermetrics", "*** Sampled system activity (x) (...ms elapsed) ***\nCPU Power: 1.2.3 mW"),
        ("sysfs-ttar", "Path: sys/a\nLines: -5\nx\n"),  # looped for ever
        ("meminfo", f"MemTotal: {BIG} kB"),  # Reading(float(10**400)): OverflowError
        ("dumpsys-battery", "status: inf\nhealth: nan\nlevel: 1e999"),  # int(inf)
        ("dumpsys-thermalservice", "Cached temperatures:\nTemperature{mValue=abc, mType=0, mName=x, mStatus=0}"),
        ("dumpsys-thermalservice",
         f"Current temperatures from HAL:\nTemperature{{mValue=1, mType={'1' * 5000}, mName=x, mStatus=0}}"),
        ("macmon", '{"temp": [1], "gpu_usage": ["a", "b"], "cpu_power": 1' + "0" * 400 + "}"),
        ("macmon", "{" + "[" * 100000),
        ("powermetrics", '<?xml version="1.0"?><plist version="1.0"><array/></plist>'),
        # "²".isdigit() is True, int("²...") raises; a device-chosen CPU range must not build a huge list
        ("jetson_clocks", "cpu0: Online=x MinFreq=²1 MaxFreq=²2 CurrentFreq=²3\nGPU MinFreq=²1 MaxFreq=1 CurrentFreq=1"),
        ("jetson_clocks", "Online CPUs: 0-999999999999,1-99999999"),
        ("powermetrics", '<?xml version="1.0"?><plist version="1.0"><dict><key>elapsed_ns</key><string>x</string>'
         "<key>processor</key><dict><key>clusters</key><string>x</string></dict>"
         "<key>gpu</key><dict><key>idle_ratio</key><string>x</string></dict></dict></plist>"),
    ],
)
def test_telemetry_regressions(kind: str, text: str) -> None:
    run_telemetry(kind, text)
