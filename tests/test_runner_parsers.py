"""Runner-output parsers against every recorded real output and against small fixtures.

The expected values for ``../shared/runner-outputs/**`` are transcribed from
``runner-outputs/SOURCES.md`` in the units written there (tflite µs -> ``us()``,
ORT/trtexec seconds -> ``sec()``), never from the parser's own output. "n/a" there
is ``None`` here. The inline fixtures at the bottom are written by hand in each
format, so every format family is covered where ``../shared`` is absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.errors import HilbenchError, InputError
from harness.runners import (
    RUNNERS,
    LatencyStats,
    RunnerReport,
    detect_runner,
    parse_runner_file,
    parse_runner_output,
)

FIXTURES = Path(__file__).parent / "fixtures" / "runners"


def us(value: float) -> float:
    """µs as printed by benchmark_model -> ms."""
    return value / 1000.0


def sec(value: float) -> float:
    """s as printed (ORT percentiles, session time) -> ms."""
    return value * 1000.0


def _get(obj: Any, path: str) -> Any:
    """Follow ``a.b.0.c`` through attributes, dict keys and list indexes; a missing dict key is None."""
    for part in path.split("."):
        if isinstance(obj, dict):
            obj = obj.get(part)
        elif isinstance(obj, list):
            obj = obj[int(part)]
        elif obj is None:
            return None
        else:
            obj = getattr(obj, part)
    return obj


def _check(report: RunnerReport, expected: dict[str, Any]) -> None:
    failures = []
    for path, want in expected.items():
        got = _get(report, path)
        if want is None:
            ok = got is None
        elif isinstance(want, float):
            ok = isinstance(got, (int, float)) and got == pytest.approx(want, rel=1e-9, abs=1e-12)
        else:
            ok = got == want
        if not ok:
            failures.append(f"{path}: expected {want!r}, got {got!r}")
    assert not failures, "\n".join(failures)


def _timed(prefix: str, count: int, first: float, curr: float, low: float, high: float, avg: float, std: float) -> dict[str, Any]:
    """A benchmark_model count= line (µs) as expectations in ms."""
    return {
        f"{prefix}.count": count,
        f"{prefix}.first_ms": us(first),
        f"{prefix}.last_ms": us(curr),
        f"{prefix}.min_ms": us(low),
        f"{prefix}.max_ms": us(high),
        f"{prefix}.mean_ms": us(avg),
        f"{prefix}.std_ms": us(std),
    }


def _summary(init: float | None, first: float | None, warmup: float, inference: float) -> dict[str, Any]:
    return {
        "extra.summary_ms.init": None if init is None else us(init),
        "extra.summary_ms.first_inference": None if first is None else us(first),
        "extra.summary_ms.warmup_avg": us(warmup),
        "extra.summary_ms.inference_avg": us(inference),
        "first_inference_ms": None if first is None else us(first),
    }


# --- expectations from SOURCES.md -------------------------------------------------------------

TFLITE: dict[str, dict[str, Any]] = {
    "linux_armv7_ti_am57xx_tf1.12_oldest_format.txt": {
        "settings.num_runs": 50,
        "settings.warmup_runs": 1,
        "settings.threads": 1,
        "settings.graph": "mobilenet_v1_1.0_224_quant.tflite",
        "settings.use_nnapi": False,
        "settings.delegate": None,
        "init_ms": 4.452,
        "warmup.count": 1,
        "warmup.last_ms": us(146161),
        "warmup.first_ms": None,
        "warmup.std_ms": None,
        **_timed("timed", 50, 137789, 137254, 137079, 143416, 137722, 896),
        **_summary(4452, None, 146161, 137722),
        "extra.model_size_mb": None,
        "memory.init_mb": None,
        "memory.overall_mb": None,
    },
    "linux_armv7_zedboard_tf2.0_era_legacy_format_tflite_soc.txt": {
        "settings.num_runs": 50,
        "settings.max_secs": 150.0,
        "settings.threads": 1,
        "settings.use_gpu": False,
        "settings.graph": "../../tensorflow-models/mobilenet-v1/mobilenet_v1_1.0_224_quant.tflite",
        "init_ms": 21.039,
        "warmup.count": 1,
        "warmup.last_ms": us(751932),
        **_timed("timed", 50, 747738, 747428, 747331, 748577, 747733, 293),
        **_summary(21039, None, 751932, 747733),
        "extra.model_size_mb": None,
        "memory.overall_mb": None,
    },
    "android_pixel2_tf1.x_op_profiling_official_readme.txt": {
        "extra.op_profile.runs.nodes_executed": 31,
        "extra.op_profile.runs.nodes_observed": 31,
        "extra.op_profile.runs.run_order.0.node_type": "CONV_2D",
        "extra.op_profile.runs.run_order.0.start_ms": 0.0,
        "extra.op_profile.runs.run_order.0.first_ms": 4.269,
        "extra.op_profile.runs.run_order.0.avg_ms": 4.269,
        "extra.op_profile.runs.run_order.0.pct": 0.107,
        "extra.op_profile.runs.run_order.0.times_called": 0,
        "extra.op_profile.runs.run_order.0.name": "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]",
        "extra.op_profile.runs.summary_by_node_type.0.node_type": "CONV_2D",
        "extra.op_profile.runs.summary_by_node_type.0.count": 15,
        "extra.op_profile.runs.summary_by_node_type.0.avg_ms": 1.406,
        "extra.op_profile.runs.summary_by_node_type.0.pct": 89.270,
        "extra.op_profile.runs.summary_by_node_type.1.node_type": "DEPTHWISE_CONV_2D",
        "extra.op_profile.runs.summary_by_node_type.1.count": 13,
        "extra.op_profile.runs.summary_by_node_type.1.avg_ms": 0.169,
        "extra.op_profile.runs.summary_by_node_type.1.pct": 10.730,
        **_timed("extra.op_profile.runs.timings", 50, 79449, 81350, 77385, 88213, 79732, 1929),
        "extra.summary_ms.warmup_avg": us(83235),
        "extra.summary_ms.init": us(38467),
        "extra.summary_ms.inference_avg": us(79760.9),
        # No benchmark count= lines: the timed mean is the summary's, the count unknown.
        "timed.mean_ms": us(79760.9),
        "timed.count": None,
        "init_ms": us(38467),
    },
    "linux_arm64_imx8mp_tf2.6_cpu_op_profiling_tab_tables.txt": {
        "extra.model_size_mb": 4.27635,
        "init_ms": 2.409,
        **_timed("warmup", 4, 169816, 162804, 162804, 169816, 164822, 2899),
        **_timed("timed", 50, 162827, 162916, 162744, 163299, 162980, 146),
        **_summary(2409, 169816, 164822, 162980),
        "memory.init_mb": 4.10156,
        "memory.overall_mb": 10.332,
        "memory.peak_mb": None,
        "extra.memory_kind": "peak",
        "extra.op_profile.init.run_order.0.node_type": "AllocateTensors",
        "extra.op_profile.init.run_order.0.avg_ms": 0.948,
        "extra.op_profile.init.summary_by_node_type.0.avg_ms": 0.948,
        "extra.op_profile.runs.nodes_observed": 31,
        "extra.op_profile.runs.nodes_executed": 31,
        "extra.op_profile.runs.run_order.0.name": "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0",
        "extra.op_profile.runs.summary_by_node_type.0.node_type": "CONV_2D",
        "extra.op_profile.runs.summary_by_node_type.0.count": 15,
        "extra.op_profile.runs.summary_by_node_type.0.avg_ms": 143.812,
        "extra.op_profile.runs.summary_by_node_type.0.pct": 88.285,
        "extra.op_profile.runs.summary_by_node_type.1.node_type": "DEPTHWISE_CONV_2D",
        "extra.op_profile.runs.summary_by_node_type.1.count": 13,
        "extra.op_profile.runs.summary_by_node_type.1.avg_ms": 18.910,
        "extra.op_profile.runs.summary_by_node_type.1.pct": 11.609,
        **_timed("extra.op_profile.runs.timings", 50, 162746, 162847, 162674, 163230, 162910, 147),
    },
    "android_tf2.15_nnapi_synap_npu_synaptics.txt": {
        "version": "2.15.0",
        "settings.nnapi_accelerators": ["synap-npu", "nnapi-reference"],
        "extra.model_size_mb": 0.497264,
        "init_ms": 66.002,
        "warmup.count": 1,
        "warmup.last_ms": us(637079),
        **_timed("timed", 520, 2531, 2793, 1171, 9925, 1885.74, 870),
        **_summary(66002, 637079, 637079, 1885.74),
        "memory.init_mb": 7.40234,
        "memory.overall_mb": 7.83203,
        "memory.peak_mb": None,
        "settings.delegate": "NNAPI",
        "extra.delegation.fully_delegated": True,
        "extra.delegation.nodes_replaced": 31,
        "extra.delegation.nodes_total": 31,
        "extra.delegation.partitions": 1,
    },
    "linux_arm64_ti_am62x_tf2.18_cpu_no_xnnpack.txt": {
        "settings.threads": 4,
        "settings.use_xnnpack": False,
        "settings.delegate": None,
        "extra.model_size_mb": 67.3128,
        "init_ms": 6.418,
        "warmup.count": 1,
        "warmup.last_ms": us(1041765),
        **_timed("timed", 50, 977738, 964908, 911877, 1112273, 971535, 39112),
        **_summary(6418, 1041765, 1041760, 971535),
        "memory.init_mb": 6.14844,
        "memory.overall_mb": 109.848,
    },
    "linux_arm64_ti_am62x_tf2.18_xnnpack_partial_delegation.txt": {
        "init_ms": 592.232,
        "warmup.count": 1,
        "warmup.last_ms": us(633430),
        **_timed("timed", 50, 605745, 618849, 568228, 722188, 602943, 27690),
        **_summary(592232, 633430, 633430, 602943),
        "memory.init_mb": 133.086,
        "memory.overall_mb": 149.531,
        "settings.delegate": "XNNPACK",
        "extra.delegation.fully_delegated": False,
        "extra.delegation.kernels": 1,
    },
    "linux_arm64_ti_am62x_tf2.20_xnnpack_p5_median_p95_no_blank_lines.txt": {
        "init_ms": 614.333,
        "warmup.count": 1,
        "warmup.last_ms": us(905463),
        "warmup.percentiles_ms": {5.0: us(905463), 50.0: us(905463), 95.0: us(905463)},
        **_timed("timed", 50, 900416, 898333, 898007, 906121, 899641, 1549),
        "timed.p50_ms": us(899281),
        "timed.p95_ms": us(904305),
        "timed.p99_ms": None,
        **_summary(614333, 905463, 905463, 899641),
        "memory.init_mb": 146.363,
        "memory.overall_mb": 150.141,
        "settings.delegate": "XNNPACK",
        "extra.delegation.fully_delegated": False,
        "extra.delegation.kernels": 1,
    },
    "android_arm32_nightly2020_gpu_opencl_op_profiling_issue43541_truncated.txt": {
        "extra.model_size_mb": 7.07479,
        "init_ms": 870.557,
        **_timed("warmup", 4, 130565, 120829, 117370, 130565, 122373, 4930),
        **_timed("timed", 50, 119212, 118055, 113737, 124776, 119375, 1948),
        **_summary(870557, 130565, 122373, 119375),
        "memory.init_mb": None,
        "memory.overall_mb": None,
        "settings.delegate": "GPU",
        "settings.threads": 4,
        "extra.delegation.fully_delegated": True,
    },
}

ORT: dict[str, dict[str, Any]] = {
    "legacy_2019_format_official_perftest_readme_sample.txt": {
        "extra.total_inference_time_s": 58.8053,
        "timed.count": 1000,
        "timed.mean_ms": 58.8053,
        "extra.total_run_time_s": 58.8102,
        "timed.min_ms": sec(0.0559777),
        "timed.max_ms": sec(0.0623472),
        "timed.p50_ms": sec(0.0587108),
        "timed.p90_ms": sec(0.0599845),
        "timed.p95_ms": sec(0.0605676),
        "timed.p99_ms": sec(0.0619517),
        "timed.p999_ms": sec(0.0623472),
    },
    "windows_x64_ort1.1dev_trt7_debug_with_warning_pr2798.txt": {
        "init_ms": sec(1.84149),
        "extra.session_creation_s": 1.84149,
        "extra.total_inference_time_s": 0.734606,
        "timed.count": 1,
        "timed.mean_ms": 734.606,
        "extra.total_run_time_s": 0.734761,
        "first_inference_ms": None,
        "timed.throughput_per_s": None,
        "extra.cpu_usage_pct": None,
        "memory.peak_working_set_bytes": None,
        "timed.p50_ms": None,
    },
    "linux_armv8_ambarella_ort1.3_no_space_after_colon_issue4331.txt": {
        "init_ms": sec(0.133189),
        "extra.total_inference_time_s": 600.051,
        "timed.count": 7160,
        "timed.mean_ms": 83.8059,
        "extra.total_run_time_s": 600.102,
        "first_inference_ms": None,
        "timed.throughput_per_s": None,
        "timed.min_ms": None,
        "timed.p50_ms": None,
        "timed.p999_ms": None,
        "extra.cpu_usage_pct": None,
        "memory.peak_working_set_bytes": None,
        "extra.throughput_derived_per_s": 7160 / 600.102,
    },
    "linux_arm64_ti_sitara_ort1.20.1_acl_ep.txt": {
        "init_ms": sec(0.0273071),
        "first_inference_ms": 20.0,
        "extra.total_inference_time_s": 0.14188,
        "timed.count": 8,
        "timed.mean_ms": 17.735,
        "extra.total_run_time_s": 0.141991,
        "timed.throughput_per_s": 56.3415,
        "extra.cpu_usage_pct": 98.0,
        "memory.peak_working_set_bytes": 35299328.0,
        "timed.min_ms": 15.9831,
        "timed.max_ms": 23.2702,
        "timed.p50_ms": 16.7086,
        "timed.p90_ms": 23.2702,
        "timed.p95_ms": 23.2702,
        "timed.p99_ms": 23.2702,
        "timed.p999_ms": 23.2702,
        "settings.execution_provider": "acl",
        "settings.num_runs": 8,
    },
    "linux_azure_cobalt100_arm64_cpu_squeezenet_int8_armlp.txt": {
        "init_ms": sec(0.0102016),
        "first_inference_ms": 2.0,
        "extra.total_inference_time_s": 0.185739,
        "timed.count": 100,
        "timed.mean_ms": 1.85739,
        "extra.total_run_time_s": 0.18581,
        "timed.throughput_per_s": 538.184,
        "extra.cpu_usage_pct": 96.0,
        "memory.peak_working_set_bytes": 36696064.0,
        "timed.min_ms": 1.83404,
        "timed.max_ms": 1.90312,
        "timed.p50_ms": 1.85674,
        "timed.p90_ms": 1.87215,
        "timed.p95_ms": 1.87393,
        "timed.p99_ms": 1.90312,
        "timed.p999_ms": 1.90312,
    },
    "android_vivo_x300_c1pro_sme2_kleidiai_avg_total_format_armlp.txt": {
        "settings.threads": 1,
        "init_ms": sec(0.217932),
        "first_inference_ms": 196.0,
        "extra.total_inference_time_s": 0.49481,
        "timed.count": 5,
        "timed.mean_ms": 98.961997,
        "extra.total_run_time_s": 0.494854,
        "timed.throughput_per_s": 10.104,
        "extra.cpu_usage_pct": 11.0,
        "memory.peak_working_set_bytes": 271122432.0,
        "timed.min_ms": 95.8204,
        "timed.max_ms": 101.519,
        "timed.p50_ms": 99.5086,
        "timed.p90_ms": 101.519,
        "timed.p95_ms": 101.519,
        "timed.p99_ms": 101.519,
        "timed.p999_ms": 101.519,
    },
    "riscv_spacemit_k1_ort2.0.1_yolov8n_spacemit_ep_docs_ai.txt": {
        "init_ms": sec(1.14476),
        "first_inference_ms": 248.0,
        "extra.total_inference_time_s": 0.823382,
        "timed.count": 10,
        "timed.mean_ms": 82.3382,
        "extra.total_run_time_s": 0.823483,
        "timed.throughput_per_s": 12.1435,
        "extra.cpu_usage_pct": 48.0,
        "memory.peak_working_set_bytes": 78946304.0,
        "timed.min_ms": 80.8129,
        "timed.max_ms": 83.8817,
        "timed.p50_ms": 82.6095,
        "timed.p90_ms": 83.8817,
        "timed.p95_ms": 83.8817,
        "timed.p99_ms": 83.8817,
        "timed.p999_ms": 83.8817,
        "settings.execution_provider": "spacemit",
        "settings.threads": 4,
    },
}


def _trt_metric(prefix: str, **values: float | None) -> dict[str, Any]:
    names = {"min": "min_ms", "max": "max_ms", "mean": "mean_ms", "median": "p50_ms", "p90": "p90_ms",
             "p95": "p95_ms", "p99": "p99_ms"}
    return {f"{prefix}.{names[k]}": v for k, v in values.items()}


TRTEXEC: dict[str, dict[str, Any]] = {
    "jetson_orin_nano_trt8.5.2_fp16_summary_only_idein.txt": {
        "version": "8.5.2",
        "extra.result": "PASSED",
        "timed.throughput_per_s": 97.8649,
        **_trt_metric("timed", min=10.642, max=10.9861, mean=10.7971, median=10.7972, p90=10.9329, p95=10.949,
                      p99=10.9744),
        "metrics.enqueue.mean_ms": 1.36227,
        "metrics.h2d.mean_ms": 0.316446,
        **_trt_metric("metrics.gpu_compute", min=10.0343, max=10.3575, mean=10.1824, median=10.1851, p90=10.3206,
                      p95=10.338, p99=10.356),
        "metrics.d2h.mean_ms": 0.29821,
        "metrics.end_to_end": None,
        "extra.total_host_walltime_s": 3.0348,
        "extra.total_gpu_compute_s": 3.02418,
        "timed.count": None,
    },
    "gtx1070_trt8.0.3_load_engine_verbose_end_to_end_latency_hackathon_cn.txt": {
        "version": "8.0.3",
        "extra.result": "PASSED",
        "timed.throughput_per_s": 6378.46,
        "timed.count": 19138,
        "extra.trace_walltime_s": 3.00041,
        **_trt_metric("timed", min=0.157104, max=0.49942, mean=0.16121, median=0.160278, p99=0.17421),
        "timed.p90_ms": None,
        "metrics.end_to_end.mean_ms": 0.284299,
        "metrics.enqueue.mean_ms": 0.0433759,
        "metrics.h2d.mean_ms": 0.00437015,
        **_trt_metric("metrics.gpu_compute", min=0.151367, max=0.488464, mean=0.154466, median=0.153564,
                      p99=0.165878),
        "metrics.d2h.mean_ms": 0.00237627,
        "extra.total_host_walltime_s": 3.00041,
        "extra.total_gpu_compute_s": 2.95617,
        "warmup.count": 1131,
        "extra.warmup_duration_ms": 200.0,
    },
    "gtx1070_trt8.4.1_load_engine_verbose_hackathon_cn.txt": {
        "version": "8.4.1",
        "timed.throughput_per_s": 5888.57,
        "timed.count": 17669,
        "extra.trace_walltime_s": 3.00056,
        **_trt_metric("timed", min=0.157227, max=0.43042, mean=0.162304, median=0.161438, p99=0.178589),
        "metrics.end_to_end": None,
        "metrics.enqueue.mean_ms": 0.0515419,
        "metrics.h2d.mean_ms": 0.00539478,
        **_trt_metric("metrics.gpu_compute", min=0.151367, max=0.420898, mean=0.15449, median=0.153687,
                      p99=0.160645),
        "metrics.d2h.mean_ms": 0.00242706,
        "extra.total_host_walltime_s": 3.00056,
        "extra.total_gpu_compute_s": 2.72968,
    },
    "rtx6000ada_trt10.14.1_onnx_build_and_bench_hackathon_cn.txt": {
        "version": "10.14.1",
        "timed.throughput_per_s": 23188.6,
        "timed.count": 69569,
        "extra.trace_walltime_s": 3.00014,
        **_trt_metric("timed", min=0.0333252, max=0.26416, mean=0.0385501, median=0.0383301, p90=0.0395508,
                      p95=0.0400391, p99=0.046875),
        "metrics.enqueue.mean_ms": 0.0228688,
        "metrics.h2d.mean_ms": 0.00430425,
        **_trt_metric("metrics.gpu_compute", min=0.0266113, max=0.255997, mean=0.0287623, median=0.0285645,
                      p90=0.0297241, p95=0.0302734, p99=0.0368652),
        "metrics.d2h.mean_ms": 0.00548477,
        "extra.total_host_walltime_s": 3.00014,
        "extra.total_gpu_compute_s": 2.00097,
        "extra.gpu_compute_cov_pct": 12.8763,
    },
    "rtx3070_laptop_trt7.x_legacy_summary_format_zero_qps_fastmot.txt": {
        "version": None,
        **_trt_metric("timed", min=9.6973, max=11.1243, mean=10.2318, median=10.213, p99=11.0729),
        "metrics.end_to_end.mean_ms": 19.454,
        **_trt_metric("metrics.enqueue", min=0.398315, max=2.73254, median=1.75308, mean=None),
        **_trt_metric("metrics.gpu_compute", min=9.42078, max=10.798, mean=9.88183, median=9.86676, p99=10.626),
        "extra.total_host_walltime_s": 3.03401,
        "extra.total_gpu_compute_s": 3.02384,
        # Printed as 0 qps: invalid, so missing (and flagged), never 0.
        "timed.throughput_per_s": None,
        "extra.throughput_invalid": True,
        "settings.batch": 16,
    },
    "titan_rtx_trt8.4_exportTimes_json_mobilenet_qat_trex_truncated.txt": {
        "extra.record_count": 11,
        "extra.records.0.startEnqMs": 4.19666,
        "extra.records.0.endEnqMs": 4.28702,
        "extra.records.0.startComputeMs": 4.17414,
        "extra.records.0.endComputeMs": 4.65866,
        "extra.records.0.h2dMs": 0,
        "extra.records.0.computeMs": 0.484512,
        "extra.records.0.d2hMs": 0,
        "extra.records.0.latencyMs": 0.484512,
        "extra.records.-1.startEnqMs": 3200.32,
        "extra.records.-1.computeMs": 0.350342,
        "extra.records.-1.latencyMs": 0.350342,
        "samples_ms.0": 0.484512,
        "samples_ms.-1": 0.350342,
        "extra.compute_samples_ms.0": 0.484512,
        "extra.compute_samples_ms.-1": 0.350342,
        "aggregate_only": False,
        "timed.count": 11,
        "timed.first_ms": 0.484512,
        "timed.last_ms": 0.350342,
    },
}

OPENVINO_TABLE = {
    # file: (devices, read, reshape, compile, first, count, duration, median, avg, min, max, fps)
    "windows_ov2024.1_cpu_throughput_hint_nanonet.txt":
        (["CPU"], 15.20, 15.07, 111.41, 14.61, 1668, 10042.46, 20.76, 23.91, 11.55, 90.43, 166.09),
    "windows_ov2024.1_gpu0_nanonet.txt":
        (["GPU.0"], 17.66, 0.00, 8119.39, 7.20, 3576, 10029.86, 10.73, 11.14, 5.41, 16.54, 356.54),
    "windows_ov2024.1_npu3720_nanonet.txt":
        (["NPU.3720"], 14.19, 6.00, 1180.63, 51.11, 932, 10074.51, 42.83, 43.03, 22.87, 74.75, 92.51),
}


def _openvino(row: tuple[Any, ...]) -> dict[str, Any]:
    devices, read, reshape, compile_, first, count, duration, median, avg, low, high, fps = row
    return {
        "version": "2024.1.0",
        "settings.execution_devices": devices,
        "settings.performance_hint": "THROUGHPUT",
        "settings.infer_requests": 4,
        "extra.read_model_ms": read,
        "extra.reshape_model_ms": reshape,
        "extra.compile_model_ms": compile_,
        "init_ms": compile_,
        "first_inference_ms": first,
        "timed.count": count,
        "extra.duration_ms": duration,
        "timed.p50_ms": median,
        "timed.mean_ms": avg,
        "timed.min_ms": low,
        "timed.max_ms": high,
        "timed.throughput_per_s": fps,
    }


EXPECTED: dict[str, dict[str, dict[str, Any]]] = {
    "tflite_benchmark_model": TFLITE,
    "onnxruntime_perf_test": ORT,
    "trtexec": TRTEXEC,
    "openvino_benchmark_app": {name: _openvino(row) for name, row in OPENVINO_TABLE.items()},
}
CASES = [(runner, name) for runner, files in EXPECTED.items() for name in files]


@pytest.mark.parametrize(("runner", "name"), CASES, ids=[n for _, n in CASES])
def test_recorded_output_matches_sources(shared_dir: Path, runner: str, name: str) -> None:
    path = shared_dir / "runner-outputs" / runner / name
    if not path.is_file():
        pytest.skip(f"{name} is listed in SOURCES.md but not saved under runner-outputs/{runner}/")
    report = parse_runner_file(path)  # auto-detected
    assert report.runner == runner
    _check(report, EXPECTED[runner][name])
    json.dumps(report.to_dict())  # the whole report is JSON-safe


def test_every_recorded_output_has_expectations(shared_dir: Path) -> None:
    root = shared_dir / "runner-outputs"
    found = {(p.parent.name, p.name) for p in root.glob("*/*") if p.is_file()}
    assert found, "no recorded runner outputs found"
    missing = sorted(found - set(CASES))
    assert not missing, f"recorded outputs without expectations in this test: {missing}"


@pytest.mark.parametrize(("runner", "name"), CASES, ids=[n for _, n in CASES])
def test_detect_runner_on_recorded_output(shared_dir: Path, runner: str, name: str) -> None:
    path = shared_dir / "runner-outputs" / runner / name
    if not path.is_file():
        pytest.skip(f"{name} not saved")
    assert detect_runner(path.read_text(encoding="utf-8")) == runner


def test_only_export_times_has_samples(shared_dir: Path) -> None:
    for runner, name in CASES:
        path = shared_dir / "runner-outputs" / runner / name
        if not path.is_file():
            continue
        report = parse_runner_file(path)
        has_samples = "exportTimes" in name
        assert report.aggregate_only is (not has_samples), name
        assert (report.samples_ms is not None) is has_samples, name


# --- hand-written fixtures, one per format family ------------------------------------------------

TFLITE_LOGCAT_SCI = """\
11-24 14:00:00.100  4242  4242 I tflite  : Log parameter values verbosely: [0]
11-24 14:00:00.100  4242  4242 I tflite  : Num threads: [2]
11-24 14:00:00.100  4242  4242 I tflite  : Graph: [/data/local/tmp/m.tflite]
11-24 14:00:00.101  4242  4242 I tflite  : Use NNAPI: [1]
11-24 14:00:00.200  4242  4242 I tflite  : Though NNAPI delegate is explicitly applied, the model graph will not be executed by the delegate.
11-24 14:00:00.300  4242  4242 W tflite  : some driver complaint
11-24 14:00:00.400  4242  4242 I tflite  : Initialized session in 12.5ms.
11-24 14:00:00.500  4242  4242 I tflite  : Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
11-24 14:00:00.600  4242  4242 I tflite  : count=2 first=4.6e+06 curr=4.5e+06 min=4.5e+06 max=4.6e+06 avg=4.55e+06 std=50000
11-24 14:00:00.700  4242  4242 I tflite  : Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
11-24 14:00:00.800  4242  4242 I tflite  : count=50 first=1.25e+06 curr=1.24e+06 min=1.2e+06 max=1.3e+06 avg=1.24027e+06 std=20000 p5=1.21e+06 median=1.24e+06 p95=1.29e+06
11-24 14:00:00.900  4242  4242 I tflite  : Inference timings in us: Init: 12500, First inference: 4.6e+06, Warmup (avg): 4.62513e+06, Inference (avg): 1.24027e+06
11-24 14:00:01.000  4242  4242 I tflite  : Memory footprint delta from the start of the tool (MB): init=0 overall=55.5\x20\x20\x20
11-24 14:00:01.000  4242  4242 I tflite  : Overall peak memory footprint (MB) via periodic monitoring: 60.25
"""

TFLITE_SPACE_TABLES = """\
STARTING!
Graph: [m.tflite]
Initialized session in 1.5ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=1 curr=2000
Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=1100 curr=1000 min=900 max=1200 avg=1000 std=30
Inference timings in us: Init: 1500, First inference: 2000, Warmup (avg): 2000, Inference (avg): 1000
Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Run Order ==============================
                 [node type]      [first]  [avg ms]      [%]    [cdf%]  [mem KB]  [times called]  [Name]
                 Vx Delegate        0.950     0.940  94.000%   94.000%     0.000               1  [Vx Delegate node 0]:0
                     SOFTMAX        0.060     0.060   6.000%100.000%     0.000               1  [softmax]:1
============================== Summary by node type ==============================
                 [Node type]   [count]  [avg ms]    [avg %]    [cdf %]  [mem KB]  [times called]
                 Vx Delegate         1     0.940    94.000%    94.000%     0.000               1
                     SOFTMAX         1     0.060     6.000%   100.000%     0.000               1
Timings (microseconds): count=50 first=1010 curr=990 min=950 max=1100 avg=1000 std=20
Memory (bytes): count=0
2 nodes observed
"""


def test_tflite_logcat_prefix_scientific_notation_and_memory() -> None:
    report = parse_runner_output(TFLITE_LOGCAT_SCI)
    assert report.runner == "tflite_benchmark_model"
    assert report.settings["threads"] == 2
    assert report.settings["delegate"] == "NNAPI"
    assert report.extra["delegation"] == {"delegate": "NNAPI", "fully_delegated": False, "kernels": 0}
    assert report.init_ms == pytest.approx(12.5)
    assert report.warmup is not None and report.warmup.mean_ms == pytest.approx(4550.0)
    assert report.timed is not None
    assert report.timed.count == 50
    assert report.timed.mean_ms == pytest.approx(1240.27)
    assert report.timed.percentiles_ms == pytest.approx({5.0: 1210.0, 50.0: 1240.0, 95.0: 1290.0})
    assert report.extra["summary_ms"]["warmup_avg"] == pytest.approx(4625.13)
    assert report.first_inference_ms == pytest.approx(4600.0)
    # init=0 is a real value, not a missing one; trailing spaces are tolerated.
    assert report.memory == {"init_mb": 0.0, "overall_mb": 55.5, "peak_mb": 60.25}
    assert report.warnings == ["some driver complaint"]
    assert report.aggregate_only and report.samples_ms is None


def test_tflite_space_aligned_tables_with_glued_percentages() -> None:
    report = parse_runner_output(TFLITE_SPACE_TABLES, "tflite")
    runs = report.extra["op_profile"]["runs"]
    assert [r["node_type"] for r in runs["run_order"]] == ["Vx Delegate", "SOFTMAX"]
    assert runs["run_order"][1]["pct"] == pytest.approx(6.0)
    assert runs["run_order"][1]["cdf_pct"] == pytest.approx(100.0)
    assert runs["run_order"][0]["name"] == "[Vx Delegate node 0]:0"
    assert runs["summary_by_node_type"][0] == {
        "node_type": "Vx Delegate", "count": 1, "avg_ms": 0.94, "pct": 94.0, "cdf_pct": 94.0, "mem_kb": 0.0,
        "times_called": 1,
    }
    assert runs["nodes_observed"] == 2
    assert isinstance(runs["timings"], LatencyStats) and runs["timings"].count == 50
    # The profiling Timings line is not the timed run.
    assert report.timed is not None and report.timed.first_ms == pytest.approx(1.1)


def test_tflite_truncated_after_timed_run_warns() -> None:
    cut = TFLITE_SPACE_TABLES.split("Inference timings")[0]
    report = parse_runner_output(cut)
    assert report.timed is not None and report.timed.count == 50
    assert report.first_inference_ms is None
    assert any("truncated" in w for w in report.warnings)


def test_tflite_truncated_before_timed_run_is_an_error() -> None:
    cut = TFLITE_SPACE_TABLES.split("Running benchmark for at least 50")[0]
    with pytest.raises(HilbenchError, match="no timed results"):
        parse_runner_output(cut)


def test_tflite_failed_run_names_the_error() -> None:
    text = "INFO: STARTING!\nINFO: Graph: [x.tflite]\nERROR: Failed to allocate tensors!\nERROR: Benchmarking failed.\n"
    with pytest.raises(HilbenchError, match="Benchmarking failed") as info:
        parse_runner_output(text, "tflite_benchmark_model")
    assert "\n" not in str(info.value)


ORT_RESULT_FILE = """\
resnet,0.0102,36696064,96,0
resnet,0.0104,36696064,96,1
resnet,0.0101,36696064,96,2
resnet,0.0110,36696064,96,3

Min Latency is 0.0101sec
Max Latency is 0.011sec
P50 Latency is 0.0104sec
P90 Latency is 0.011sec
P95 Latency is 0.011sec
P99 Latency is 0.011sec
P999 Latency is 0.011sec
"""

ORT_VERBOSE = """\
Setting intra_op_num_threads to 2
iteration:1,time_cost:0.002
iteration:2,time_cost:0.004
iteration:3,time_cost:0.003
Session creation time cost: 0.05 s
Total inference time cost: 0.009 s
Total inference requests: 3
Average inference time cost: 3 ms
Total inference run time: 0.0095 s
"""


def test_ort_result_file_gives_samples_and_seconds_to_ms() -> None:
    report = parse_runner_output(ORT_RESULT_FILE)
    assert report.runner == "onnxruntime_perf_test"
    assert report.samples_ms == pytest.approx([10.2, 10.4, 10.1, 11.0])
    assert report.aggregate_only is False
    assert report.timed is not None
    # Printed percentiles win (seconds -> ms) ...
    assert report.timed.min_ms == pytest.approx(10.1)
    assert report.timed.p50_ms == pytest.approx(10.4)
    assert report.timed.p999_ms == pytest.approx(11.0)
    # ... and what was not printed is computed from the real samples.
    assert report.timed.count == 4
    assert report.timed.mean_ms == pytest.approx(10.425)
    assert "mean_ms" in report.extra["computed_from_samples"]
    assert report.memory["peak_working_set_bytes"] == 36696064


def test_ort_verbose_iterations_are_samples() -> None:
    report = parse_runner_output(ORT_VERBOSE)
    assert report.samples_ms == pytest.approx([2.0, 4.0, 3.0])
    assert report.timed is not None
    assert report.timed.mean_ms == 3.0  # printed
    assert report.timed.p50_ms == pytest.approx(3.0)  # computed: median of 2, 4, 3
    assert report.init_ms == pytest.approx(50.0)
    assert report.settings["threads"] == 2


def test_ort_percentiles_in_seconds_become_ms() -> None:
    text = "Total inference requests: 2\nAverage inference time cost: 1.5 ms\nP99 Latency: 0.002 s\nP999 Latency: 0.0025 s\n"
    report = parse_runner_output(text)
    assert report.timed is not None
    assert report.timed.p99_ms == pytest.approx(2.0)
    assert report.timed.p999_ms == pytest.approx(2.5)
    assert report.timed.percentiles_ms[99.9] == pytest.approx(2.5)


def test_ort_disagreeing_machine_readable_echo_warns() -> None:
    text = ("Total inference requests: 8\nAverage inference time cost: 17 ms\nAvg CPU usage: 98 %\n"
            "Avg CPU usage:97\nRuns:8\n")
    report = parse_runner_output(text)
    assert report.extra["cpu_usage_pct"] == 98.0
    assert any("cpu_usage_pct=97" in w for w in report.warnings)
    assert not any("runs=" in w for w in report.warnings)


def test_ort_without_timings_is_an_error() -> None:
    text = "Setting intra_op_num_threads to 4\nSession creation time cost: 0.1 s\n"
    with pytest.raises(HilbenchError, match="no inference timings"):
        parse_runner_output(text, "ort")


TRT8_GENERIC = """\
&&&& RUNNING TensorRT.trtexec [TensorRT v8601] # trtexec --onnx=m.onnx --percentile=50,99.9 --int8
[11/24/2026-10:00:00] [I] TensorRT version: 8.6.1
[11/24/2026-10:00:01] [I] Engine loaded in 0.25 sec.
[11/24/2026-10:00:04] [I] Warmup completed 10 queries over 200 ms
[11/24/2026-10:00:04] [I] Timing trace has 300 queries over 3.0 s
[11/24/2026-10:00:04] [I] Average on 10 runs - GPU latency: 9.9 ms - Host latency: 10 ms (enqueue 0.5 ms)
[11/24/2026-10:00:04] [I] === Performance summary ===
[11/24/2026-10:00:04] [I] Throughput: 100 qps
[11/24/2026-10:00:04] [I] Latency: min = 9 ms, max = 12 ms, mean = 10 ms, median = 9.9 ms, percentile(50%) = 9.9 ms, percentile(99.9%) = 11.9 ms
[11/24/2026-10:00:04] [I] GPU Compute Time: min = 8 ms, max = 11 ms, mean = 9 ms, median = 8.9 ms, percentile(50%) = 8.9 ms, percentile(99.9%) = 10.9 ms
[11/24/2026-10:00:04] [W] * Throughput may be bound by Enqueue Time rather than GPU Compute and the GPU may be under-utilized.
[11/24/2026-10:00:04] [W]   If not already in use, --useCudaGraph (utilize CUDA graphs where possible) may increase the throughput.
[11/24/2026-10:00:04] [V] Latency: the summation of H2D Latency, GPU Compute Time, and D2H Latency. min = 1 ms
&&&& PASSED TensorRT.trtexec [TensorRT v8601] # trtexec --onnx=m.onnx --percentile=50,99.9 --int8
"""


def test_trtexec_generic_percentiles_and_multiline_warning() -> None:
    report = parse_runner_output(TRT8_GENERIC)
    assert report.runner == "trtexec"
    assert report.version == "8.6.1"
    assert report.settings["precision"] == "INT8"
    assert report.settings["graph"] == "m.onnx"
    assert report.init_ms == pytest.approx(250.0)
    assert report.timed is not None
    assert report.timed.count == 300
    assert report.timed.p999_ms == pytest.approx(11.9)
    assert report.timed.p50_ms == pytest.approx(9.9)
    assert report.timed.min_ms == 9.0  # the [V] explanation line is not read
    assert report.metrics["gpu_compute"].p999_ms == pytest.approx(10.9)
    assert report.warmup is not None and report.warmup.count == 10
    assert any(w.startswith("Throughput may be bound by Enqueue Time") and "--useCudaGraph" in w
               for w in report.warnings)


def test_trtexec_banner_version_encodings() -> None:
    from harness.runners.trtexec import tensorrt_version

    assert tensorrt_version("8003") == "8.0.3"
    assert tensorrt_version("8201") == "8.2.1"
    assert tensorrt_version("8502") == "8.5.2"
    assert tensorrt_version("101601") == "10.16.1"
    assert tensorrt_version("8.4.1") == "8.4.1"


TRT7_ZERO_QPS = """\
&&&& RUNNING TensorRT.trtexec # trtexec --onnx=m.onnx --shapes=in:8x3x64x64
[01/01/2021-00:00:00] [I] Timing trace has 0 queries over 3.01 s
[01/01/2021-00:00:00] [I] Host Latency
[01/01/2021-00:00:00] [I] min: 1.5 ms (end to end 2.5 ms)
[01/01/2021-00:00:00] [I] max: 2.5 ms (end to end 3.5 ms)
[01/01/2021-00:00:00] [I] mean: 2 ms (end to end 3 ms)
[01/01/2021-00:00:00] [I] median: 1.9 ms (end to end 2.9 ms)
[01/01/2021-00:00:00] [I] percentile: 2.4 ms at 99% (end to end 3.4 ms at 99%)
[01/01/2021-00:00:00] [I] throughput: 0 qps
[01/01/2021-00:00:00] [I] walltime: 3.01 s
[01/01/2021-00:00:00] [I] GPU Compute
[01/01/2021-00:00:00] [I] min: 1 ms
[01/01/2021-00:00:00] [I] mean: 1.5 ms
[01/01/2021-00:00:00] [I] total compute time: 2.9 s
&&&& PASSED TensorRT.trtexec # trtexec --onnx=m.onnx --shapes=in:8x3x64x64
"""


def test_trtexec_trt7_blocks_and_zero_qps_is_invalid_not_zero() -> None:
    report = parse_runner_output(TRT7_ZERO_QPS)
    assert report.timed is not None
    assert report.timed.throughput_per_s is None
    assert report.throughput_per_s is None
    assert report.extra["throughput_invalid"] is True
    assert report.timed.count is None  # "0 queries" is the same bug
    assert report.timed.p99_ms == pytest.approx(2.4)
    assert report.metrics["end_to_end"].mean_ms == pytest.approx(3.0)
    assert report.metrics["end_to_end"].p99_ms == pytest.approx(3.4)
    assert report.metrics["gpu_compute"].max_ms is None
    assert report.extra["total_gpu_compute_s"] == pytest.approx(2.9)
    assert report.settings["batch"] == 8
    assert any("0 qps" in w for w in report.warnings)


def test_trtexec_failed_without_summary_is_an_error() -> None:
    text = ("&&&& RUNNING TensorRT.trtexec [TensorRT v8502] # trtexec --onnx=bad.onnx\n"
            "[11/24/2026-10:00:00] [E] Failed to parse onnx file\n"
            "&&&& FAILED TensorRT.trtexec [TensorRT v8502] # trtexec --onnx=bad.onnx\n")
    with pytest.raises(HilbenchError, match="FAILED"):
        parse_runner_output(text)


def test_trtexec_export_times_json_gives_samples() -> None:
    text = (FIXTURES / "trtexec_export_times.json").read_text()
    report = parse_runner_output(text)
    assert report.runner == "trtexec"
    assert report.samples_ms == [1.5, 1.25, 2.0, 1.75]
    assert report.aggregate_only is False
    assert report.timed is not None
    assert report.timed.count == 4
    assert report.timed.mean_ms == pytest.approx(1.625)
    assert report.timed.p50_ms == pytest.approx(1.625)  # linear interpolation between 1.5 and 1.75
    assert report.timed.throughput_per_s is None  # never derived from a possibly trimmed file
    assert report.extra["compute_samples_ms"] == [1.0, 0.75, 1.5, 1.25]
    assert report.extra["enqueue_samples_ms"] == pytest.approx([0.25, 0.5, 0.25, 0.25])
    assert report.metrics["gpu_compute"].max_ms == 1.5
    assert report.warnings == []


def test_trtexec_export_times_cut_mid_record_keeps_whole_records() -> None:
    text = (FIXTURES / "trtexec_export_times.json").read_text()
    cut = text[: text.index('"latencyMs" : 1.75')]
    report = parse_runner_output(cut, "trtexec")
    assert report.samples_ms == [1.5, 1.25, 2.0]
    assert any("not complete" in w for w in report.warnings)


OPENVINO_NPU_STYLE = """\
[Step 2/11] Loading OpenVINO Runtime
[ INFO ] OpenVINO:
[ INFO ] Build ................................. 2024.1.0-15008-f4afc983258-releases/2024/1
[Step 7/11] Loading the model to the device
[ INFO ] Compile model took 1180.63 ms
[Step 10/11] Measuring performance (Start inference asynchronously, 4 inference requests, limits: 10000 ms duration)
[ INFO ] First inference took 51.11 ms
[Step 11/11] Dumping statistics report
[ INFO ] Execution Devices: NPU.3720
[ INFO ] Count:            932 iterations
[ INFO ] Duration:         10074.51 ms
[ INFO ] Latency:
[ INFO ]    Median:        42.83 ms
[ INFO ]    Average:       43.03 ms
[ INFO ]    Min:           22.87 ms
[ INFO ]    Max:           74.75 ms
[ INFO ] Throughput:   92.51 FPS
"""


def test_openvino_bare_execution_devices() -> None:
    # Values of the NPU row of SOURCES.md's table, in the format its notes describe (file not saved).
    report = parse_runner_output(OPENVINO_NPU_STYLE)
    assert report.runner == "openvino_benchmark_app"
    assert report.settings["execution_devices"] == ["NPU.3720"]
    assert report.settings["api"] == "async"
    assert report.settings["duration_limit_ms"] == 10000
    assert report.init_ms == pytest.approx(1180.63)
    assert report.first_inference_ms == pytest.approx(51.11)
    assert report.timed is not None
    assert (report.timed.count, report.timed.p50_ms, report.timed.mean_ms) == (932, 42.83, 43.03)
    assert (report.timed.min_ms, report.timed.max_ms, report.timed.throughput_per_s) == (22.87, 74.75, 92.51)
    assert report.aggregate_only


def test_openvino_old_one_line_latency_is_the_median() -> None:
    text = "[Step 11/11] Dumping statistics report\nCount:      100 iterations\nDuration:   1000.0 ms\nLatency:    9.5 ms\nThroughput: 105.2 FPS\n"
    report = parse_runner_output(text, "openvino")
    assert report.timed is not None
    assert report.timed.p50_ms == 9.5
    assert report.timed.mean_ms is None
    assert report.timed.throughput_per_s == 105.2


def test_openvino_cut_before_statistics_is_an_error() -> None:
    cut = OPENVINO_NPU_STYLE.split("[Step 11/11]")[0]
    with pytest.raises(HilbenchError, match="no latency or throughput"):
        parse_runner_output(cut)


# --- API: detection, errors, the report's invariants --------------------------------------------


def test_unrecognisable_text_is_a_one_line_error() -> None:
    with pytest.raises(HilbenchError, match="not recognised") as info:
        parse_runner_output("hello\nworld\n", source="job 7 stdout")
    assert str(info.value).startswith("job 7 stdout: ")
    assert "\n" not in str(info.value)
    with pytest.raises(HilbenchError, match="empty output"):
        parse_runner_output("  \n")
    assert detect_runner("nothing to see") is None


def test_unknown_runner_name_is_an_error() -> None:
    with pytest.raises(HilbenchError, match="unknown runner 'snpe'"):
        parse_runner_output(TRT8_GENERIC, "snpe")


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(HilbenchError, match="cannot read"):
        parse_runner_file(tmp_path / "absent.txt")


@pytest.mark.parametrize(
    "text,runner,message",
    [
        ("  \n", None, "empty output"),
        ("hello\n", None, "not recognised"),
        ("count=1 curr=5\n", "snpe", "unknown runner 'snpe'"),
        ("INFO: STARTING!\n", "tflite", "no timed results in LiteRT benchmark_model output"),
        ("Session creation time cost: 0.1 s\n", "ort", "no inference timings in onnxruntime_perf_test output"),
        ("[I] Throughput: 10 qps\n", "trtexec", "no performance summary in trtexec output"),
        ('[{"startEnqMs": 1}]', "trtexec", "no per-query 'latencyMs' records"),
        ("[ INFO ] Count: 10 iterations\n", "openvino", "no latency or throughput in OpenVINO benchmark_app output"),
    ],
)
def test_every_parser_error_is_an_input_error(text: str, runner: str | None, message: str) -> None:
    """Unrecognisable or timing-less runner output is a file in the wrong format: :class:`InputError`."""
    with pytest.raises(InputError, match=message) as info:
        parse_runner_output(text, runner, source="out.txt")
    assert str(info.value).startswith("out.txt: ")


def test_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read runner output"):
        parse_runner_file(tmp_path)  # a directory


def test_line_rules_first_match_wins_and_search_finds_anywhere() -> None:
    import re

    from harness.runners.model import apply_rules

    seen: list[str] = []
    rules = (
        (re.compile(r"a(\d)"), lambda st, m: st.append("first " + m.group(1))),
        (re.compile(r"a"), lambda st, m: st.append("second")),
    )
    assert apply_rules(rules, seen, "a1 b") and seen == ["first 1"]
    assert not apply_rules(rules, seen, "b a2") and seen == ["first 1"]
    assert apply_rules(rules, seen, "b a2", search=True) and seen == ["first 1", "first 2"]


def test_report_refuses_samples_marked_aggregate_only() -> None:
    with pytest.raises(ValueError):
        RunnerReport(runner="trtexec", samples_ms=[1.0], aggregate_only=True)
    with pytest.raises(ValueError):
        RunnerReport(runner="trtexec", samples_ms=None, aggregate_only=False)
    with pytest.raises(ValueError):
        RunnerReport(runner="snpe")
    assert set(RUNNERS) == {"tflite_benchmark_model", "onnxruntime_perf_test", "trtexec", "openvino_benchmark_app"}


def test_aggregates_ns_uses_store_summary_names() -> None:
    from harness.analysis.stats import SUMMARY_COLUMNS

    report = parse_runner_output(TRT8_GENERIC)
    aggregates = report.aggregates_ns()
    assert set(aggregates) <= set(SUMMARY_COLUMNS)
    assert aggregates["mean_ns"] == pytest.approx(10e6)
    assert aggregates["p999_ns"] == pytest.approx(11.9e6)
    assert aggregates["count"] == 300
    assert aggregates["throughput_per_s"] == 100.0
    assert "std_ns" not in aggregates  # not printed: left out, not zero


def test_tflite_litert_absl_and_source_tag_prefixes() -> None:
    text = (
        "INFO: [litert/tools/benchmark_model.cc:120] STARTING!\n"
        "INFO: [litert/tools/benchmark_model.cc:121] Num threads: [3]\n"
        "I0000 00:00:1732450000.123456   31337 benchmark_tflite_model.cc:900] Initialized session in 3.25ms.\n"
        "I0000 00:00:1732450000.223456   31337 benchmark_model.cc:200] count=1 curr=5000\n"
        "W0000 00:00:1732450000.323456   31337 delegate.cc:10] slow path taken\n"
        "I0000 00:00:1732450000.423456   31337 benchmark_model.cc:200] count=20 first=2100 curr=2000 min=1900 "
        "max=2200 avg=2050 std=40\n"
        "INFO: [litert/tools/benchmark_model.cc:250] Inference timings in us: Init: 3250, First inference: 5000, "
        "Warmup (avg): 5000, Inference (avg): 2050\n"
    )
    report = parse_runner_output(text)
    assert report.runner == "tflite_benchmark_model"
    assert report.settings["threads"] == 3
    assert report.init_ms == pytest.approx(3.25)
    assert report.warmup is not None and report.warmup.count == 1
    assert report.timed is not None and (report.timed.count, report.timed.mean_ms) == (20, pytest.approx(2.05))
    assert report.warnings == ["slow path taken"]
