"""``hilbench import``: recorded vendor runner logs stored as aggregate-only runs, their offload verdicts
(harness/runners/placement.py), and the readers (results, show, report, compare) on such runs.

Expected values for ``../shared/runner-outputs/**`` are transcribed from ``runner-outputs/SOURCES.md`` (µs for
benchmark_model, ms for the others, seconds for ORT percentiles), never from the parsers' output. The small logs
written here (a delegated benchmark_model run, a trtexec DLA build, an ORT placement log) are this file's own,
written by hand in each tool's format.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.helpers import missing_in_ci

from harness.analysis.compare import compare
from harness.errors import AnalysisError, InputError
from harness.run.importer import MAX_LOG_BYTES, import_log
from harness.runners import parse_runner_output
from harness.runners.placement import runner_offload
from harness.store import open_store

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "runner-outputs"


def us(v: float) -> float:
    """µs (benchmark_model) -> ns."""
    return v * 1e3


def ms(v: float) -> float:
    return v * 1e6


def sec(v: float) -> float:
    return v * 1e9


# file -> (backend, aggregates in ns / counts, offload fields). From SOURCES.md; None = "n/a" there.
EXPECTED: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "tflite_benchmark_model/linux_armv7_ti_am57xx_tf1.12_oldest_format.txt": (
        "litert", {"count": 50, "mean_ns": us(137722), "min_ns": us(137079), "max_ns": us(143416), "std_ns": us(896)},
        {"accelerator": "cpu", "nodes_accelerated": 0}),
    "tflite_benchmark_model/linux_armv7_zedboard_tf2.0_era_legacy_format_tflite_soc.txt": (
        "litert", {"count": 50, "mean_ns": us(747733), "min_ns": us(747331), "max_ns": us(748577)},
        {"accelerator": "cpu"}),
    "tflite_benchmark_model/android_pixel2_tf1.x_op_profiling_official_readme.txt": (
        "litert", {"count": None, "mean_ns": us(79760.9)},
        {"accelerator": "cpu", "nodes_total": 31, "nodes_cpu": 31, "nodes_accelerated": 0,
         "cpu_ops": ["CONV_2D", "DEPTHWISE_CONV_2D"]}),
    "tflite_benchmark_model/linux_arm64_imx8mp_tf2.6_cpu_op_profiling_tab_tables.txt": (
        "litert", {"count": 50, "mean_ns": us(162980), "min_ns": us(162744), "max_ns": us(163299), "std_ns": us(146)},
        {"accelerator": "cpu", "nodes_total": 31, "nodes_cpu": 31}),
    "tflite_benchmark_model/android_tf2.15_nnapi_synap_npu_synaptics.txt": (
        "litert", {"count": 520, "mean_ns": us(1885.74), "min_ns": us(1171), "max_ns": us(9925)},
        {"accelerator": "NNAPI", "nodes_total": 31, "nodes_accelerated": 31, "nodes_cpu": 0, "partitions": 1}),
    "tflite_benchmark_model/linux_arm64_ti_am62x_tf2.18_cpu_no_xnnpack.txt": (
        "litert", {"count": 50, "mean_ns": us(971535), "min_ns": us(911877), "max_ns": us(1112273)},
        {"accelerator": "cpu"}),
    "tflite_benchmark_model/linux_arm64_ti_am62x_tf2.18_xnnpack_partial_delegation.txt": (
        "litert", {"count": 50, "mean_ns": us(602943), "min_ns": us(568228), "max_ns": us(722188)},
        {"accelerator": "XNNPACK", "partitions": 1, "nodes_total": None, "nodes_cpu": None}),
    "tflite_benchmark_model/linux_arm64_ti_am62x_tf2.20_xnnpack_p5_median_p95_no_blank_lines.txt": (
        "litert", {"count": 50, "mean_ns": us(899641), "p50_ns": us(899281), "p95_ns": us(904305)},
        {"accelerator": "XNNPACK", "partitions": 1}),
    "tflite_benchmark_model/android_arm32_nightly2020_gpu_opencl_op_profiling_issue43541_truncated.txt": (
        "litert", {"count": 50, "mean_ns": us(119375), "min_ns": us(113737), "max_ns": us(124776)},
        {"accelerator": "GPU", "nodes_cpu": 0, "partitions": 1}),
    "onnxruntime_perf_test/legacy_2019_format_official_perftest_readme_sample.txt": (
        "onnxruntime", {"count": 1000, "mean_ns": ms(58.8053), "p50_ns": sec(0.0587108), "p99_ns": sec(0.0619517),
                        "min_ns": sec(0.0559777), "max_ns": sec(0.0623472)},
        {"accelerator": "cpu"}),
    "onnxruntime_perf_test/windows_x64_ort1.1dev_trt7_debug_with_warning_pr2798.txt": (
        "onnxruntime", {"count": 1, "mean_ns": ms(734.606)}, {"accelerator": "cpu"}),
    "onnxruntime_perf_test/linux_armv8_ambarella_ort1.3_no_space_after_colon_issue4331.txt": (
        "onnxruntime", {"count": 7160, "mean_ns": ms(83.8059), "p50_ns": None, "throughput_per_s": None},
        {"accelerator": "cpu"}),
    "onnxruntime_perf_test/linux_arm64_ti_sitara_ort1.20.1_acl_ep.txt": (
        "onnxruntime", {"count": 8, "mean_ns": ms(17.735), "throughput_per_s": 56.3415, "p50_ns": sec(0.0167086),
                        "min_ns": sec(0.0159831), "max_ns": sec(0.0232702)},
        {"accelerator": "acl", "nodes_total": None}),
    "onnxruntime_perf_test/linux_azure_cobalt100_arm64_cpu_squeezenet_int8_armlp.txt": (
        "onnxruntime", {"count": 100, "mean_ns": ms(1.85739), "throughput_per_s": 538.184, "p50_ns": ms(1.85674),
                        "p99_ns": ms(1.90312)},
        {"accelerator": "cpu"}),
    "onnxruntime_perf_test/android_vivo_x300_c1pro_sme2_kleidiai_avg_total_format_armlp.txt": (
        "onnxruntime", {"count": 5, "mean_ns": ms(98.961997), "throughput_per_s": 10.104, "p50_ns": ms(99.5086),
                        "p99_ns": ms(101.519)},
        {"accelerator": "cpu"}),
    "onnxruntime_perf_test/riscv_spacemit_k1_ort2.0.1_yolov8n_spacemit_ep_docs_ai.txt": (
        "onnxruntime", {"count": 10, "mean_ns": ms(82.3382), "throughput_per_s": 12.1435, "p50_ns": ms(82.6095),
                        "p99_ns": ms(83.8817)},
        {"accelerator": "spacemit"}),
    "trtexec/gtx1070_trt8.0.3_load_engine_verbose_end_to_end_latency_hackathon_cn.txt": (
        "tensorrt", {"count": 19138, "throughput_per_s": 6378.46, "mean_ns": ms(0.16121), "p50_ns": ms(0.160278),
                     "p99_ns": ms(0.17421), "min_ns": ms(0.157104), "max_ns": ms(0.49942)},
        {"accelerator": "GPU", "nodes_cpu": 0, "nodes_total": None}),
    "trtexec/gtx1070_trt8.4.1_load_engine_verbose_hackathon_cn.txt": (
        "tensorrt", {"count": 17669, "throughput_per_s": 5888.57, "mean_ns": ms(0.162304), "p50_ns": ms(0.161438),
                     "p99_ns": ms(0.178589)},
        {"accelerator": "GPU"}),
    "trtexec/jetson_orin_nano_trt8.5.2_fp16_summary_only_idein.txt": (
        "tensorrt", {"count": None, "throughput_per_s": 97.8649, "mean_ns": ms(10.7971), "p50_ns": ms(10.7972),
                     "p90_ns": ms(10.9329), "p95_ns": ms(10.949), "p99_ns": ms(10.9744)},
        {"accelerator": "GPU"}),
    "trtexec/rtx6000ada_trt10.14.1_onnx_build_and_bench_hackathon_cn.txt": (
        "tensorrt", {"count": 69569, "throughput_per_s": 23188.6, "mean_ns": ms(0.0385501), "p50_ns": ms(0.0383301),
                     "p99_ns": ms(0.046875)},
        {"accelerator": "GPU"}),
    "trtexec/rtx3070_laptop_trt7.x_legacy_summary_format_zero_qps_fastmot.txt": (
        "tensorrt", {"count": None, "throughput_per_s": None, "mean_ns": ms(10.2318), "p50_ns": ms(10.213),
                     "p99_ns": ms(11.0729)},
        {"accelerator": "GPU"}),
    "openvino_benchmark_app/windows_ov2024.1_cpu_throughput_hint_nanonet.txt": (
        "openvino", {"count": 1668, "throughput_per_s": 166.09, "p50_ns": ms(20.76), "mean_ns": ms(23.91),
                     "min_ns": ms(11.55), "max_ns": ms(90.43)},
        {"accelerator": "cpu"}),
    "openvino_benchmark_app/windows_ov2024.1_gpu0_nanonet.txt": (
        "openvino", {"count": 3576, "throughput_per_s": 356.54, "p50_ns": ms(10.73), "mean_ns": ms(11.14)},
        {"accelerator": "GPU"}),
}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, dict[str, Any]]]:
    """Every recorded output imported into one store: (store, file -> its runs row as import_log returned it)."""
    if not SHARED.is_dir():
        missing_in_ci("the recorded-output import tests", f"recorded samples not found at {SHARED}")
    store = open_store(tmp_path_factory.mktemp("imported") / "results")
    rows = {}
    for path in sorted(SHARED.glob("*/*")):
        if path.name == "SOURCES.md":
            continue
        rows[f"{path.parent.name}/{path.name}"] = import_log(store, path, target="lab-board")
    return store, rows


@pytest.mark.slow
def test_every_recorded_output_imports_and_is_expected(recorded: tuple[Any, dict[str, Any]]) -> None:
    _store, rows = recorded
    unexpected = set(rows) - set(EXPECTED) - {
        "trtexec/titan_rtx_trt8.4_exportTimes_json_mobilenet_qat_trex_truncated.txt"}
    assert not unexpected, f"recorded outputs without expectations here: {sorted(unexpected)}"
    assert set(EXPECTED) <= set(rows)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_imported_figures_match_sources(recorded: tuple[Any, dict[str, Any]], name: str) -> None:
    _store, rows = recorded
    backend, aggregates, offload = EXPECTED[name]
    row = rows[name]
    assert row["backend"] == backend
    assert row["aggregate_only"] is True and row["transport"] == "import" and row["status"] == "ok"
    assert row["settings"]["source"].startswith("import:")
    got = row["result"]["aggregates"]
    failures = []
    for key, want in aggregates.items():
        have = got.get(key)
        if want is None:
            if have is not None:
                failures.append(f"{key}: expected n/a, got {have!r}")
        elif have is None or have != pytest.approx(want, rel=1e-6):
            failures.append(f"{key}: expected {want!r}, got {have!r}")
    for key, want in offload.items():
        have = row["offload"].get(key)
        if key == "cpu_ops":
            if have[: len(want)] != want:
                failures.append(f"offload.cpu_ops: expected to begin {want}, got {have}")
        elif have != want:
            failures.append(f"offload.{key}: expected {want!r}, got {have!r}")
    assert not failures, "\n".join(failures)
    assert set(row["offload"]) == {"accelerator", "nodes_total", "nodes_accelerated", "nodes_cpu", "partitions",
                                   "cpu_ops", "source"}
    assert row["offload"]["source"]


@pytest.mark.slow
def test_export_times_imports_as_aggregates_of_its_records(recorded: tuple[Any, dict[str, Any]]) -> None:
    """The trimmed --exportTimes JSON (11 records: first latencyMs 0.484512, last 0.350342 per SOURCES.md)."""
    _store, rows = recorded
    agg = rows["trtexec/titan_rtx_trt8.4_exportTimes_json_mobilenet_qat_trex_truncated.txt"]["result"]["aggregates"]
    assert agg["count"] == 11
    assert rows["trtexec/titan_rtx_trt8.4_exportTimes_json_mobilenet_qat_trex_truncated.txt"]["result"][
        "aggregates_basis"].startswith("computed from the 11 per-query records")
    assert agg["min_ns"] <= ms(0.350342) and agg["max_ns"] >= ms(0.484512)


@pytest.mark.slow
def test_results_show_report_and_compare_read_imported_runs(recorded: tuple[Any, dict[str, Any]],
                                                            tmp_path: Path) -> None:
    from harness.analysis.compare import Selection
    from harness.cli.commands import format_summary
    from harness.report.html import build_report

    store, rows = recorded
    summary = store.summary()
    assert len(summary) == len(rows) and summary["aggregate_only"].all()
    nnapi = rows["tflite_benchmark_model/android_tf2.15_nnapi_synap_npu_synaptics.txt"]
    line = summary[summary["run_id"] == nnapi["run_id"]].iloc[0]
    assert line["mean_ns"] == pytest.approx(us(1885.74)) and line["count"] == 520
    text = format_summary(summary, "table")
    assert "AGGREGATE" in text and "INVALID" not in text and "source=import:benchmark_model" in text
    html = build_report(store, None, plots=False)
    assert ">AGGREGATE<" in html and ">INVALID<" not in html
    # Two imports of one log: the same configuration on both sides, and nothing but aggregates: refused, one line.
    orin = SHARED / "trtexec" / "jetson_orin_nano_trt8.5.2_fp16_summary_only_idein.txt"
    again = import_log(store, orin, target="lab-board")
    first = rows["trtexec/jetson_orin_nano_trt8.5.2_fp16_summary_only_idein.txt"]
    base = Selection(spec=first["run_id"], description="run", run_ids=(first["run_id"],))
    cand = Selection(spec=again["run_id"], description="run", run_ids=(again["run_id"],))
    with pytest.raises(AnalysisError, match="aggregate-only") as err:
        compare(store, base, cand, resamples=100)
    assert "\n" not in str(err.value)


# --- this file's own logs -------------------------------------------------------------------------------------

DELEGATED_TFLITE = """\
INFO: STARTING!
INFO: Graph: [model_int8.tflite]
INFO: Num threads: [4]
INFO: Use xnnpack: [1]
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
VERBOSE: Replacing 60 out of 66 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 3 partitions for the whole graph.
INFO: Explicitly applied XNNPACK delegate, and the model graph will be partially executed by the delegate w/ 3 delegate kernels.
INFO: The input model file size (MB): 3.1
INFO: Initialized session in 12.5ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=20 first=5100 curr=4100 min=4000 max=5100 avg=4200 std=250
INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=240 first=4150 curr=4120 min=4010 max=4700 avg=4150.5 std=90
INFO: Inference timings in us: Init: 12500, First inference: 5100, Warmup (avg): 4200, Inference (avg): 4150.5
"""

TRTEXEC_DLA = """\
&&&& RUNNING TensorRT.trtexec [TensorRT v8502] # /usr/src/tensorrt/bin/trtexec --onnx=resnet.onnx --useDLACore=0 --allowGPUFallback --fp16 --verbose
[12/01/2026-10:00:00] [V] [TRT] ---------- Layers Running on DLA ----------
[12/01/2026-10:00:00] [V] [TRT] [DlaLayer] {ForeignNode[conv1...res4]}
[12/01/2026-10:00:00] [V] [TRT] [DlaLayer] {ForeignNode[res5...pool]}
[12/01/2026-10:00:00] [V] [TRT] ---------- Layers Running on GPU ----------
[12/01/2026-10:00:00] [V] [TRT] [GpuLayer] SHUFFLE: reshape_before_fc
[12/01/2026-10:00:00] [V] [TRT] [GpuLayer] SOFTMAX: prob
[12/01/2026-10:00:01] [I] Throughput: 250.5 qps
[12/01/2026-10:00:01] [I] Latency: min = 3.9 ms, max = 4.5 ms, mean = 4.0 ms, median = 3.98 ms, percentile(99%) = 4.4 ms
[12/01/2026-10:00:01] [I] GPU Compute Time: min = 3.5 ms, max = 4.1 ms, mean = 3.6 ms, median = 3.58 ms, percentile(99%) = 4.0 ms
&&&& PASSED TensorRT.trtexec [TensorRT v8502] # /usr/src/tensorrt/bin/trtexec --onnx=resnet.onnx --useDLACore=0
"""

ORT_PLACEMENT = """\
2026-12-01 10:00:00.000 [V:onnxruntime:, session_state.cc:1148 VerifyEachNodeIsAssignedToAnEp] Node placements
2026-12-01 10:00:00.000 [V:onnxruntime:, session_state.cc:1150 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 40
2026-12-01 10:00:00.000 [V:onnxruntime:, session_state.cc:1150 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 2
  Shape (shape_1)
  Gather (gather_1)
Session creation time cost: 0.5 s
First inference time cost: 12 ms
Total inference time cost: 0.2 s
Total inference requests: 100
Average inference time cost: 2 ms
Total inference run time: 0.21 s
Number of inferences per second: 476.2
"""


def test_offload_from_own_delegated_benchmark_model_log() -> None:
    off = runner_offload(parse_runner_output(DELEGATED_TFLITE), DELEGATED_TFLITE)
    assert off == {"accelerator": "XNNPACK", "nodes_total": 66, "nodes_accelerated": 60, "nodes_cpu": 6,
                   "partitions": 3, "cpu_ops": [], "source": off["source"]}
    assert "Replacing 60 out of 66" in off["source"]


def test_offload_from_own_trtexec_dla_build_log() -> None:
    off = runner_offload(parse_runner_output(TRTEXEC_DLA), TRTEXEC_DLA)
    assert off["accelerator"] == "DLA:0"
    assert (off["nodes_total"], off["nodes_accelerated"], off["nodes_cpu"]) == (4, 2, 0)
    assert off["cpu_ops"] == ["SHUFFLE", "SOFTMAX"] and "fallback" in off["source"]


def test_offload_from_own_ort_placement_log() -> None:
    off = runner_offload(parse_runner_output(ORT_PLACEMENT, "onnxruntime_perf_test"), ORT_PLACEMENT)
    assert off["accelerator"] == "CUDAExecutionProvider"
    assert (off["nodes_total"], off["nodes_accelerated"], off["nodes_cpu"]) == (42, 40, 2)
    assert off["cpu_ops"] == ["Shape", "Gather"]


def test_import_own_log_with_model_and_labels(tmp_path: Path) -> None:
    log = tmp_path / "bm.log"
    log.write_text(DELEGATED_TFLITE)
    model = tmp_path / "mobilenet_int8.tflite"
    model.write_bytes(b"TFL3 not a real model")
    store = open_store(tmp_path / "results")
    row = import_log(store, log, target="pi5", model=str(model), labels={"lab": "a"})
    stored = store.run(row["run_id"])
    assert stored["model"] == "mobilenet_int8" and len(stored["model_sha256"]) == 64
    assert stored["target"] == "pi5" and stored["labels"] == {"lab": "a"}
    assert stored["offload"]["nodes_accelerated"] == 60
    assert stored["result"]["aggregates"]["mean_ns"] == pytest.approx(us(4150.5))
    assert store.samples([row["run_id"]]).empty and store.telemetry([row["run_id"]]).empty
    sessions = store.sessions()
    assert list(sessions["status"]) == ["finished"] and list(sessions["plan"]) == ["import"]


def test_import_never_opens_the_paths_a_log_names(tmp_path: Path) -> None:
    """The graph a log names is text: a path to a file that exists is not read or hashed."""
    secret = tmp_path / "secret.tflite"
    secret.write_bytes(b"private")
    log = tmp_path / "bm.log"
    log.write_text(DELEGATED_TFLITE.replace("[model_int8.tflite]", f"[{secret}]"))
    row = import_log(open_store(tmp_path / "results"), log)
    assert row["model"] == "secret" and row["model_path"] is None and row["model_sha256"] is None


@pytest.mark.parametrize("content, expected", [
    ("hello world\nnothing to see\n", "not recognised as the output of a runner hilbench knows (benchmark_model, "
                                      "onnxruntime_perf_test, trtexec, benchmark_app)"),
    ("", "empty: nothing to import"),
])
def test_unrecognised_log_is_one_line_and_stores_nothing(tmp_path: Path, content: str, expected: str) -> None:
    log = tmp_path / "mystery.log"
    log.write_text(content)
    store = open_store(tmp_path / "results")
    with pytest.raises(InputError) as err:
        import_log(store, log)
    assert str(err.value).startswith(str(log)) and expected in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "results").exists()


def test_import_bounds_the_log_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.run.importer as importer

    monkeypatch.setattr(importer, "MAX_LOG_BYTES", 1000)
    log = tmp_path / "big.log"
    log.write_text(DELEGATED_TFLITE * 3)
    with pytest.raises(InputError, match="larger than"):
        import_log(open_store(tmp_path / "results"), log)
    assert MAX_LOG_BYTES >= 16 * 1024 * 1024


@pytest.mark.slow
def test_cli_import_and_unrecognised_exit(tmp_path: Path) -> None:
    """The command itself (a child process with this worktree's code): stored, printed, and a one-line refusal."""
    env = {"PYTHONPATH": f"{ROOT}:{ROOT / 'device_agents'}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    log = tmp_path / "trtexec.log"
    log.write_text(TRTEXEC_DLA)
    store = tmp_path / "results"
    ok = subprocess.run([sys.executable, "-m", "harness.cli", "import", str(log), "--target", "orin-agx",
                         "--store", str(store)], capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "import:trtexec" in ok.stdout and "2/4 nodes on DLA:0" in ok.stdout
    bad = tmp_path / "notes.txt"
    bad.write_text("just some notes\n")
    refused = subprocess.run([sys.executable, "-m", "harness.cli", "import", str(bad), "--store", str(store)],
                             capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode != 0 and refused.stdout == ""
    assert len(refused.stderr.strip().splitlines()) == 1 and "notes.txt" in refused.stderr
    assert "trtexec" in refused.stderr
    runs = open_store(store).runs()
    assert len(runs) == 1 and json.loads(runs["offload"].iloc[0])["accelerator"] == "DLA:0"


def test_a_session_that_cannot_be_written_takes_its_run_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.errors import StoreError
    from harness.store import Store

    log = tmp_path / "bm.log"
    log.write_text(DELEGATED_TFLITE)
    store = open_store(tmp_path / "results")
    real = Store.write_table

    def full_disk(self: Store, table: str, name: str, rows: Any) -> Path:
        if table == "sessions":
            raise StoreError(f"{self.root}: no space left on the device")
        return real(self, table, name, rows)

    monkeypatch.setattr(Store, "write_table", full_disk)
    with pytest.raises(StoreError):
        import_log(store, log)
    assert list((tmp_path / "results" / "runs").glob("*.parquet")) == []


@pytest.mark.slow
def test_compare_says_which_configurations_were_aggregate_only(tmp_path: Path) -> None:
    """Selections with both kinds of run: the sampled configuration is tested, the aggregate-only one is named as
    not tested (never compared by its printed summary as if that were samples)."""
    import datetime as dt

    import numpy as np

    from harness.analysis.compare import format_comparison, select_runs
    from harness.store import Store

    store = Store(tmp_path / "res")
    store.ensure_writable()
    rng = np.random.default_rng(3)
    t0 = dt.datetime(2026, 11, 1, 2, 0, tzinfo=dt.timezone.utc)
    for i, (session, model, agg) in enumerate([("s-a", "m0", False), ("s-a", "m1", True), ("s-b", "m0", False),
                                               ("s-b", "m1", True)]):
        run_id = f"r{i}"
        row: dict[str, Any] = {"run_id": run_id, "session_id": session, "plan": "p", "model": model,
                               "target": "board", "backend": "litert", "settings": {"threads": 1}, "status": "ok",
                               "started_at": t0 + dt.timedelta(days=i // 2, seconds=i), "labels": {}}
        if agg:
            row.update(aggregate_only=True, runner="benchmark_model", valid=None, timed_count=50,
                       result={"aggregate_only": True, "aggregates": {"count": 50, "mean_ns": 4e6, "p50_ns": 4e6}})
        else:
            lat = rng.normal(4e6, 4e4, 300).astype(np.int64)
            store.write_table("samples", run_id, {"run_id": [run_id] * 300, "phase": ["timed"] * 300,
                                                  "iteration": list(range(300)), "latency_ns": lat.tolist(),
                                                  "t_ns": np.cumsum(lat).tolist()})
            row.update(aggregate_only=False, valid=True, timed_count=300, timed_ns=int(lat.sum()))
        store.write_table("runs", run_id, [row])
    runs = store.runs()
    result = compare(store, select_runs(runs, "s-a"), select_runs(runs, "s-b"), metrics=("p50",), resamples=200)
    assert {p.model for p in result.pairs} == {"m0"}
    assert result.aggregate_only == ["m1 on board [litert threads=1]"]
    table = format_comparison(result, "table")
    assert "not tested on p50/p99 (aggregate-only runs, no samples): m1 on board [litert threads=1]" in table
    assert json.loads(format_comparison(result, "json"))["aggregate_only"] == ["m1 on board [litert threads=1]"]
