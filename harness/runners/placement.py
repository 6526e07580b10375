"""The offload verdict of a vendor runner's run: how much of the model the accelerator ran, as the tool printed it.

:func:`runner_offload` turns a parsed :class:`~harness.runners.model.RunnerReport` (and, for what the parsers do
not keep, the raw output) into the runs table's ``offload`` dict (issue 11's shared shape)::

    {"accelerator": "XNNPACK", "nodes_total": 66, "nodes_accelerated": 60, "nodes_cpu": 6, "partitions": 3,
     "cpu_ops": ["SOFTMAX"], "source": "benchmark_model: 'Replacing 60 out of 66 node(s) ...'"}

What each runner says:

* ``benchmark_model``: ``Replacing A out of B node(s) with delegate (X) node, yielding P partitions`` gives the
  counts; ``Explicitly applied X delegate, and the model graph will be completely|partially executed ... w/ K
  delegate kernels`` the delegate, whether anything was left to the CPU and the partitions; the op-profiling
  tables (``--enable_op_profiling``) the ops the CPU ran (every row that is not a delegate's pseudo-op). A run
  without a delegate is ``accelerator = "cpu"`` (with the node count from the profile where printed).
* ``trtexec``: TensorRT runs every layer of an engine on the GPU, or on a DLA core with ``--useDLACore`` (its
  fallback layers on the GPU); the per-layer lists come from the builder's verbose ``Layers Running on DLA`` /
  ``Layers Running on GPU`` sections (``--verbose``) where the log has them.
* ``onnxruntime_perf_test``: the execution provider asked for (``-e``); the node placement only where ORT's verbose
  placement log (``All nodes placed on [X]. Number of nodes: N`` / ``Node(s) placed on [X]. Number of nodes: N``)
  is in the output.
* ``benchmark_app``: the execution devices; OpenVINO prints no per-layer placement in its summary.

Counts the output does not hold are ``None``, with the reason in ``source``; nothing is guessed. Strings come
from a device's or a stranger's log: each is cut to 64 characters, ``cpu_ops`` to 32 entries.
"""

from __future__ import annotations

import re
from typing import Any

from harness.runners.model import RunnerReport

__all__ = ["runner_offload", "MAX_CPU_OPS", "MAX_OP_CHARS"]

#: The most op names an offload verdict lists, and the longest name kept (the spec's bounds).
MAX_CPU_OPS = 32
MAX_OP_CHARS = 64
#: How much of a raw output is searched for placement lines (its start: builders and sessions print them early).
_SCAN_CHARS = 4 * 1024 * 1024

_ORT_ALL = re.compile(r"All nodes placed on \[(\w{1,64})\]\. Number of nodes: (\d{1,9})")
_ORT_SOME = re.compile(r"Node\(s\) placed on \[(\w{1,64})\]\. Number of nodes: (\d{1,9})")
_ORT_NODE = re.compile(r"^\s+(\w{1,64}) \(")
_TRT_SECTION = re.compile(r"-{3,}\s*Layers Running on (DLA|GPU)\s*:?\s*-*", re.IGNORECASE)
_TRT_LAYER = re.compile(r"\[(?:V|I)\]\s*\[TRT\]\s*\[(DlaLayer|GpuLayer)\]\s*(?:([A-Z_]{1,40}):)?")
_ORT_CPU = {"cpu", "cpuexecutionprovider"}


def _name(value: Any) -> str | None:
    """A printable name of at most :data:`MAX_OP_CHARS` characters, or None."""
    if value is None:
        return None
    text = "".join(ch for ch in str(value) if ch.isprintable()).strip()
    return text[:MAX_OP_CHARS] or None


def _verdict(accelerator: str | None, source: str, *, total: int | None = None, accelerated: int | None = None,
             cpu: int | None = None, partitions: int | None = None, cpu_ops: list[str] | None = None) -> dict[str, Any]:
    """The dict in the shared shape, counts checked (``accelerated + cpu <= total`` where all are known)."""
    if total is not None and accelerated is not None and cpu is not None and accelerated + cpu > total:
        source += f" (counts dropped: {accelerated} + {cpu} nodes exceed the {total} printed as the total)"
        total = accelerated = cpu = None
    ops: list[str] = []
    for op in cpu_ops or []:
        name = _name(op)
        if name and name not in ops:
            ops.append(name)
        if len(ops) >= MAX_CPU_OPS:
            break
    return {"accelerator": _name(accelerator), "nodes_total": total, "nodes_accelerated": accelerated,
            "nodes_cpu": cpu, "partitions": partitions, "cpu_ops": ops, "source": source[:500]}


def runner_offload(report: RunnerReport, text: str = "") -> dict[str, Any]:
    """The ``offload`` verdict of one vendor runner's run from its parsed ``report`` and raw output ``text``."""
    scan = text[:_SCAN_CHARS]
    if report.runner == "tflite_benchmark_model":
        return _tflite(report)
    if report.runner == "trtexec":
        return _trtexec(report, scan)
    if report.runner == "onnxruntime_perf_test":
        return _ort(report, scan)
    return _openvino(report)


# ----------------------------------------------------------------------------------------- benchmark_model
def _is_delegate_op(node_type: str) -> bool:
    return "delegate" in node_type.lower()


def _profile_ops(report: RunnerReport) -> tuple[int | None, list[str], int]:
    """From the op-profiling tables of the regular runs: (nodes observed, the non-delegate op types in run
    order, how many rows were delegate pseudo-ops)."""
    runs = ((report.extra.get("op_profile") or {}).get("runs")) or {}
    rows = runs.get("run_order") or runs.get("summary_by_node_type") or []
    ops: list[str] = []
    delegate_rows = 0
    for row in rows:
        node_type = str(row.get("node_type") or "")
        if not node_type:
            continue
        if _is_delegate_op(node_type):
            delegate_rows += 1
        else:
            ops.append(node_type)
    observed = runs.get("nodes_observed")
    return (observed if isinstance(observed, int) else None), ops, delegate_rows


def _tflite(report: RunnerReport) -> dict[str, Any]:
    d = report.extra.get("delegation") or {}
    delegate = d.get("delegate") or report.settings.get("delegate")
    observed, profile_ops, _delegate_rows = _profile_ops(report)
    if d.get("nodes_total") is not None and d.get("nodes_replaced") is not None:
        total, replaced = int(d["nodes_total"]), int(d["nodes_replaced"])
        return _verdict(delegate or d.get("delegate_node"),
                        f"benchmark_model: 'Replacing {replaced} out of {total} node(s) with delegate "
                        f"({d.get('delegate_node')}) node, yielding {d.get('partitions')} partitions'",
                        total=total, accelerated=replaced, cpu=total - replaced, partitions=d.get("partitions"),
                        cpu_ops=profile_ops)
    if delegate and d.get("fully_delegated") is not None:
        kernels = d.get("kernels")
        if d["fully_delegated"]:
            return _verdict(delegate, f"benchmark_model: the {delegate} delegate executes the model graph completely "
                            "(node counts not printed: run with --verbose)", cpu=0, partitions=kernels)
        if kernels == 0:
            return _verdict(delegate, f"benchmark_model: the {delegate} delegate was applied but executes none of "
                            "the graph: every node ran on the CPU", total=observed, accelerated=0, cpu=observed,
                            partitions=0, cpu_ops=profile_ops)
        return _verdict(delegate, f"benchmark_model: the {delegate} delegate executes the graph partially in "
                        f"{kernels} delegate kernel(s) (node counts not printed: run with --verbose; op profiling "
                        "lists the CPU ops)", partitions=kernels, cpu_ops=profile_ops)
    if delegate:
        return _verdict(delegate, f"benchmark_model: the {delegate} delegate was created but the output says "
                        "nothing of what it executes")
    if observed is not None:
        return _verdict("cpu", f"benchmark_model: no delegate; op profiling observed {observed} nodes on the CPU",
                        total=observed, accelerated=0, cpu=observed, partitions=0, cpu_ops=profile_ops)
    return _verdict("cpu", "benchmark_model: no delegate was applied (node count not printed)", accelerated=0,
                    partitions=0, cpu_ops=profile_ops)


# ----------------------------------------------------------------------------------------- trtexec
def _trt_layers(text: str) -> tuple[int, int, list[str]] | None:
    """(DLA layers, GPU layers, the GPU layers' types) from the builder's verbose placement sections; None
    when the log has none."""
    if "Layers Running on" not in text and "layers running on" not in text.lower():
        return None
    dla = gpu = 0
    gpu_types: list[str] = []
    seen = False
    for line in text.splitlines():
        if _TRT_SECTION.search(line):
            seen = True
            continue
        m = _TRT_LAYER.search(line)
        if not m:
            continue
        if m.group(1) == "DlaLayer":
            dla += 1
        else:
            gpu += 1
            if m.group(2):
                gpu_types.append(m.group(2))
    return (dla, gpu, gpu_types) if seen else None


def _trtexec(report: RunnerReport, text: str) -> dict[str, Any]:
    flags = report.settings.get("flags") or {}
    dla = flags.get("useDLACore")
    accelerator = f"DLA:{dla}" if isinstance(dla, str) and dla.isdigit() else "GPU"
    layers = _trt_layers(text)
    if layers is None:
        why = ("trtexec: TensorRT runs every layer on the " + ("DLA or, as fallback, the GPU" if accelerator != "GPU"
               else "GPU") + "; the log has no per-layer placement (build with --verbose for the "
               "'Layers Running on DLA/GPU' lists)")
        return _verdict(accelerator, why, cpu=0)
    n_dla, n_gpu, gpu_types = layers
    if accelerator == "GPU" and n_dla == 0:
        return _verdict("GPU", f"trtexec: builder placement: {n_gpu} layers on the GPU", total=n_gpu,
                        accelerated=n_gpu, cpu=0)
    return _verdict(accelerator if accelerator != "GPU" else "DLA",
                    f"trtexec: builder placement: {n_dla} layer(s) on the DLA, {n_gpu} fallback layer(s) on the GPU "
                    "(listed in cpu_ops: not on the DLA)", total=n_dla + n_gpu, accelerated=n_dla, cpu=0,
                    cpu_ops=gpu_types)


# ----------------------------------------------------------------------------------------- onnxruntime_perf_test
def _ort(report: RunnerReport, text: str) -> dict[str, Any]:
    requested = report.settings.get("execution_provider")
    placed: dict[str, int] = {}
    cpu_ops: list[str] = []
    in_cpu_list = False
    for line in text.splitlines():
        m = _ORT_ALL.search(line) or _ORT_SOME.search(line)
        if m:
            placed[m.group(1)] = placed.get(m.group(1), 0) + int(m.group(2))
            in_cpu_list = m.group(1).lower() in _ORT_CPU
            continue
        if in_cpu_list:
            node = _ORT_NODE.match(line)
            if node:
                cpu_ops.append(node.group(1))
            elif line.strip():
                in_cpu_list = False
    if placed:
        total = sum(placed.values())
        cpu = sum(n for ep, n in placed.items() if ep.lower() in _ORT_CPU)
        accel = [ep for ep in placed if ep.lower() not in _ORT_CPU]
        accelerator = accel[0] if accel else (requested if requested and requested.lower() not in _ORT_CPU else "cpu")
        return _verdict(accelerator, "onnxruntime_perf_test: ORT's node placement log ("
                        + ", ".join(f"{ep} {n}" for ep, n in placed.items()) + ")",
                        total=total, accelerated=total - cpu, cpu=cpu, cpu_ops=cpu_ops)
    if not requested or str(requested).lower() in _ORT_CPU:
        why = "the CPU execution provider" if requested else "no execution provider echoed: the tool's default, CPU"
        return _verdict("cpu", f"onnxruntime_perf_test: {why} (node count not printed)", accelerated=0)
    return _verdict(str(requested), f"onnxruntime_perf_test: execution provider {requested!s} was asked for; the "
                    "output has no node placement (ORT's verbose log, -v, prints it)")


# ----------------------------------------------------------------------------------------- benchmark_app
def _openvino(report: RunnerReport) -> dict[str, Any]:
    device = report.settings.get("device")
    name = str(device) if device else None
    if name is not None and name.upper().startswith("CPU"):
        return _verdict("cpu", "benchmark_app: executed on the CPU (no per-layer placement printed)", accelerated=0)
    return _verdict(name, "benchmark_app: execution device " + (name or "not printed")
                    + "; OpenVINO prints no per-layer placement in its summary")
