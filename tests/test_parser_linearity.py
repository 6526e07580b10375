"""The device-facing text parsers take time linear in their input (issue 18: quadratic regexes).

Every runner-output parser and telemetry text parser gets adversarial lines of growing size: the
shapes that used to blow up (long runs of digits, dots, spaces, letters; a prefix repeated without
the rest of its line). Within one run, the time of the 10x larger input must stay within
:data:`MAX_RATIO` x that of the smaller one (linear is ~10x, quadratic ~100x), and a 1 MB line must
parse under :data:`MAX_1MB_S`. Ratios, not absolute times, so a shared noisy machine does not matter.

Before the fix, ``ort-latency-spaces`` took 18 ms at 2 kB and 1.3 s at 20 kB; ``tflite-table-heading``
(``"=" * 20000 + "x"``) did not finish in 10 minutes. ``benchmarks/parser_linearity.py`` prints the
same cases as a table; ``HILBENCH_LINEARITY_SIZES=2000,20000`` runs them smaller (old code, a slow CI).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest
from hilbench_agent.telemetry import detect_kind, parse_text
from hilbench_agent.telemetry.jetson import parse_tegrastats_line

from harness.errors import HilbenchError
from harness.runners import detect_runner, parse_runner_output

pytestmark = pytest.mark.slow  # timing measurements over many input sizes

_SIZES = os.environ.get("HILBENCH_LINEARITY_SIZES", "20000,200000").split(",")
SMALL, LARGE = int(_SIZES[0]), int(_SIZES[1])
#: Linear input x10 -> time ~x10; quadratic -> ~x100.
MAX_RATIO = 30.0
#: Below this the small time is noise; ratios are taken against at least this much.
FLOOR_S = 0.001
MAX_1MB_S = 2.0
REPEAT = 3


def _runner(name: str) -> Callable[[str], object]:
    def parse(text: str) -> object:
        try:
            return parse_runner_output(text, name)
        except HilbenchError:
            return None

    return parse


def _kind(kind: str) -> Callable[[str], object]:
    return lambda text: parse_text(kind, text)


def _rep(unit: str, n: int) -> str:
    return unit * max(1, n // len(unit))


#: (case id, parser entry point, text of about n characters).
CASES: list[tuple[str, Callable[[str], object], Callable[[int], str]]] = [
    # LiteRT benchmark_model
    ("tflite-digits", _runner("tflite"), lambda n: "Initialized session in " + "1" * n + "x"),
    ("tflite-echo-spaces", _runner("tflite"), lambda n: "Num threads" + " " * n + "x"),
    ("tflite-count-word", _runner("tflite"), lambda n: "count=1 " + "a" * n),
    ("tflite-summary-words", _runner("tflite"), lambda n: "Inference timings in us: " + _rep("a ", n)),
    ("tflite-summary-colons", _runner("tflite"), lambda n: "Inference timings in us: " + _rep("Init :", n)),
    ("tflite-table-heading", _runner("tflite"), lambda n: "=" * n + "x"),
    ("tflite-info-prefix", _runner("tflite"), lambda n: _rep("INFO: ", n)),
    ("tflite-logcat-spaces", _runner("tflite"), lambda n: "01-02 03:04:05.678 1 2 I" + " " * n + "x"),
    ("tflite-memory-digits", _runner("tflite"), lambda n: "Peak memory footprint (MB): init=" + "4" * n),
    ("tflite-delegate-prefix", _runner("tflite"), lambda n: _rep("Replacing 1 out of 2 node(s) with delegate (", n)),
    ("tflite-table-row", _runner("tflite"),
     lambda n: "============ Run Order ============\n[node type] [start] [first] [avg ms] [name]\nconv "
     + _rep("1.0 ", n)),
    # onnxruntime_perf_test
    ("ort-latency-spaces", _runner("ort"), lambda n: "P50 Latency: 0.1" + " " * n + "x"),
    ("ort-session-digits", _runner("ort"), lambda n: "Session creation time cost: " + "1" * n + "x"),
    ("ort-latency-prefix", _runner("ort"), lambda n: _rep("Latency", n)),
    ("ort-log-prefix", _runner("ort"), lambda n: _rep("[W:onnxruntime:", n)),
    ("ort-result-row", _runner("ort"), lambda n: "m," + "1" * n + ",x"),
    ("ort-dots", _runner("ort"), lambda n: "Average inference time cost: " + "." * n),
    # OpenVINO benchmark_app
    ("openvino-latency-spaces", _runner("openvino"), lambda n: "[ INFO ] Latency:" + " " * n + "x"),
    ("openvino-throughput-digits", _runner("openvino"), lambda n: "[ INFO ] Throughput: " + "1" * n + "x"),
    ("openvino-measuring-prefix", _runner("openvino"), lambda n: "[Step 11/11] " + _rep("Measuring performance (", n)),
    ("openvino-measuring-digits", _runner("openvino"), lambda n: "[Step 11/11] Measuring performance (" + "1" * n),
    ("openvino-info-prefix", _runner("openvino"), lambda n: _rep("[ INFO ] ", n)),
    ("openvino-build-dots", _runner("openvino"), lambda n: "[ INFO ] Build " + "." * n),
    # trtexec
    ("trtexec-metric-digits", _runner("trtexec"), lambda n: "[I] Latency: mean = " + "1" * n),
    ("trtexec-metric-spaces", _runner("trtexec"), lambda n: "[I] Latency:" + " " * n + "x"),
    ("trtexec-metric-words", _runner("trtexec"), lambda n: "[I] Latency: " + _rep("min", n) + " = 1"),
    ("trtexec-throughput-digits", _runner("trtexec"), lambda n: "[I] Throughput: " + "1" * n + "x"),
    ("trtexec-timestamp-prefix", _runner("trtexec"), lambda n: _rep("[01/02/2024-03:04:05] ", n)),
    ("trtexec-export-braces", _runner("trtexec"), lambda n: '[{"latencyMs": 1}' + _rep("{a", n)),
    # runner detection (whole-text searches)
    ("detect-runner-equals", detect_runner, lambda n: "=" * n + "x"),
    ("detect-runner-digits", detect_runner, lambda n: "Throughput: " + "1" * n + "x"),
    ("detect-runner-count", detect_runner, lambda n: "\n".join(["count=1 x"] * (n // 10))),
    # telemetry text parsers
    ("tegrastats-cpu-bracket", parse_tegrastats_line, lambda n: "RAM 1/2MB CPU [" + _rep(" a", n)),
    ("tegrastats-digits", parse_tegrastats_line, lambda n: "RAM " + "1" * n + "/2MB GR3D_FREQ " + "1" * n),
    ("jetson-clocks-word", _kind("jetson_clocks"), lambda n: "cpu0: " + "a" * n),
    ("thermalservice-prefix", _kind("dumpsys-thermalservice"),
     lambda n: "Current temperatures from HAL:\n" + _rep("Temperature{mValue=", n)),
    ("thermalservice-cooling-prefix", _kind("dumpsys-thermalservice"),
     lambda n: "Current cooling devices from HAL:\n" + _rep("CoolingDevice{mValue=1, mType=1, mName=", n)),
    ("sysfs-grep-colons", _kind("sysfs-grep"), lambda n: "/sys/a" + _rep(":a", n)),
    ("sysfs-grep-same-path", _kind("sysfs-grep"), lambda n: _rep("/sys/class/thermal/thermal_zone0/temp:1\n", n)),
    ("sysfs-grep-many-zones", _kind("sysfs-grep"),
     lambda n: "".join(f"/sys/class/thermal/thermal_zone{i}/temp:1\n" for i in range(n // 40))),
    ("sysfs-grep-zone-digits", _kind("sysfs-grep"),
     lambda n: "/sys/class/thermal/thermal_zone" + "1" * n + "x/temp:1"),
    ("sysfs-ttar-paths", _kind("sysfs-ttar"), lambda n: _rep("Path: sys/a\nLines: 1\n1\n", n)),
    ("sysfs-dump-dashes", _kind("sysfs-dump"), lambda n: _rep("---\n", n)),
    ("powermetrics-power", _kind("powermetrics"), lambda n: "CPU Power: " + _rep("1.", n)),
    ("powermetrics-sample", _kind("powermetrics"),
     lambda n: "*** Sampled system activity (" + _rep(") (1", n)),
    ("vcgencmd-error", _kind("vcgencmd"), lambda n: _rep('error=1 error_msg="', n)),
    ("pmic-underscores", _kind("pmic_read_adc"), lambda n: "  " + _rep("A_", n) + "A current(1)=x"),
    ("thermal-zone-types-digits", _kind("thermal-zone-types"), lambda n: "thermal_zone" + "1" * n + "x"),
    ("nvpmodel-digits", _kind("nvpmodel"), lambda n: "POWER_MODEL: ID=" + "1" * n + "x"),
    ("battery-digits", _kind("dumpsys-battery"), lambda n: "  level: " + "9" * n),
    ("uevent-long", _kind("uevent"), lambda n: "POWER_SUPPLY_CURRENT_NOW=" + "1" * n),
    ("detect-kind-newlines", detect_kind, lambda n: "x" + "\n" * n),
    ("detect-kind-spaces", detect_kind, lambda n: "x" + " " * n),
    ("detect-kind-ram", detect_kind, lambda n: _rep(" RAM 1", n)),
]


def best_time(func: Callable[[str], object], text: str, repeat: int = REPEAT) -> float:
    """The fastest of ``repeat`` runs of ``func(text)``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        func(text)
        best = min(best, time.perf_counter() - t0)
    return best


@pytest.mark.parametrize("case_id,func,build", CASES, ids=[c[0] for c in CASES])
def test_parse_time_is_linear(case_id: str, func: Callable[[str], object], build: Callable[[int], str]) -> None:
    small_text, large_text = build(SMALL), build(LARGE)
    small = best_time(func, small_text)
    large = best_time(func, large_text)
    ratio = large / max(small, FLOOR_S)
    assert ratio < MAX_RATIO, (
        f"{case_id}: {len(small_text)} chars {small * 1e3:.2f} ms, {len(large_text)} chars {large * 1e3:.2f} ms: "
        f"x{ratio:.0f} for x10 input (super-linear)"
    )


@pytest.mark.parametrize("case_id,func,build", CASES, ids=[c[0] for c in CASES])
def test_one_megabyte_line_is_fast(case_id: str, func: Callable[[str], object], build: Callable[[int], str]) -> None:
    if LARGE < 200_000:
        pytest.skip("small sizes requested")
    took = best_time(func, build(1_000_000), repeat=1)
    assert took < MAX_1MB_S, f"{case_id}: a 1 MB input took {took:.2f} s"
