"""The per-run offload verdict (docs/backends.md, "Offload verdicts"; harness/analysis/offload.py).

Real runtimes where they run here: ONNX Runtime's graph assignment and profiler on the bundled sample models
(CPU, and the Azure provider, which takes no node, as "an accelerator that left everything on the CPU"), LiteRT's
XNNPACK partitions on the bundled .tflite models and on one written here with a node XNNPACK does not take.
TensorRT's engine inspector and Core ML's compute plan run against the existing STAND-INS (tests/support/
fake_tensorrt.py, dicts shaped like the Core ML backend's compute plan); the real ones are hardware tests.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hilbench_agent.backends.base import generate_inputs, offload_problem
from hilbench_agent.protocol import AgentError
from support.helpers import run_agent, write_agent

from harness.agent.validate import MessageChecker
from harness.analysis.offload import differs, from_column, label, normalize, required_problem, share
from harness.cli import main
from harness.errors import MessageError
from harness.store import SCHEMAS, open_store

MODELS = Path(__file__).resolve().parents[1] / "harness" / "samples" / "models"
AZURE = "AzureExecutionProvider"


def _ort():
    return pytest.importorskip("onnxruntime")


def ort_backend_available() -> list[str]:
    return list(_ort().get_available_providers())


def _litert():
    return pytest.importorskip("ai_edge_litert.interpreter")


# ---------------------------------------------------------------------- the verdict itself
def test_normalize_fills_keys_and_labels_say_the_share():
    d = normalize({"accelerator": "XNNPACK", "nodes_total": 60, "nodes_accelerated": 58, "nodes_cpu": 2,
                   "cpu_ops": ["MEAN", "PAD", "MEAN"], "source": "litert\nnode list", "future_key": 1})
    assert d == {"accelerator": "XNNPACK", "nodes_total": 60, "nodes_accelerated": 58, "nodes_cpu": 2,
                 "partitions": None, "cpu_ops": ["MEAN", "PAD"], "source": "litert node list"}
    assert label(d) == "XNNPACK 58/60 (97%)" and share(d) == pytest.approx(58 / 60)
    assert label({**d, "nodes_accelerated": 599, "nodes_total": 600}) == "XNNPACK 599/600 (99%)"  # never 100%
    cpu = normalize({"accelerator": "cpu", "nodes_total": 7, "nodes_accelerated": 0, "nodes_cpu": 7})
    assert label(cpu) == "cpu" and share(cpu) is None and required_problem(cpu) is None  # nothing could fall back
    old = from_column(None)
    assert old["accelerator"] is None and "not recorded" in label(old) and label(old, short=True) == "unknown"
    assert label(normalize({"accelerator": "cuda", "source": "x"})) == "cuda (share unknown)"
    assert normalize(None)["source"] == "not reported by this agent"


def test_require_offload_names_the_first_op_left_on_the_cpu():
    partial = normalize({"accelerator": "XNNPACK", "nodes_total": 8, "nodes_accelerated": 7, "nodes_cpu": 1,
                         "cpu_ops": ["ZEROS_LIKE"], "source": "s"})
    assert required_problem(partial) == ("require_offload: 1 of 8 nodes ran on the CPU, not on XNNPACK; the first "
                                         "op left on the CPU is ZEROS_LIKE (s)")
    assert required_problem({**partial, "nodes_accelerated": 8, "nodes_cpu": 0, "cpu_ops": []}) is None
    assert "could not be verified (not reported by this agent)" in required_problem(normalize(None))
    assert "how much of the model cuda ran could not be verified" in required_problem(
        normalize({"accelerator": "cuda", "source": "s"}))
    dla = normalize({"accelerator": "DLA:0", "nodes_total": 3, "nodes_accelerated": 1, "nodes_cpu": 0, "source": "s"})
    assert required_problem(dla) == "require_offload: only 1 of 3 nodes ran on DLA:0 (s)"
    assert offload_problem(partial) == required_problem(partial)  # one rule, on the device and on the host


def test_differs_compares_accelerator_and_share_but_not_unknowns():
    a = normalize({"accelerator": "XNNPACK", "nodes_total": 8, "nodes_accelerated": 7})
    assert differs(a, dict(a)) is None
    assert differs(a, {**a, "nodes_accelerated": 8}) == "XNNPACK 7/8 (88%) vs XNNPACK 8/8 (100%)"
    assert differs(a, normalize({"accelerator": "cpu"})) == "XNNPACK 7/8 (88%) vs cpu"
    assert differs(a, from_column(None)) is None  # a run stored before the verdicts is no evidence of a change


HOSTILE = [
    ("a string", "offload must be an object, not str"),
    ({"accelerator": 5}, "accelerator must be a string"),
    ({"accelerator": "x" * 65}, "accelerator is longer than 64"),
    ({"accelerator": "GPU\x1b[2J"}, "accelerator holds a control character"),
    ({"nodes_total": -1}, "nodes_total must be between 0 and"),
    ({"nodes_total": True}, "nodes_total must be an integer or null, not bool"),
    ({"nodes_total": 1.5}, "nodes_total must be an integer"),
    ({"nodes_total": 10 ** 12}, "nodes_total must be between 0 and"),
    ({"nodes_total": 5, "nodes_accelerated": 6}, "nodes_accelerated (6) is more than nodes_total (5)"),
    ({"nodes_total": 5, "nodes_accelerated": 3, "nodes_cpu": 3}, "nodes_accelerated + nodes_cpu (3 + 3)"),
    ({"cpu_ops": "CONV"}, "cpu_ops must be a list"),
    ({"cpu_ops": ["X"] * 33}, "cpu_ops has 33 entries (at most 32)"),
    ({"cpu_ops": ["x" * 65]}, "cpu_ops[0] is longer than 64"),
    ({"cpu_ops": [{"op": 1}]}, "cpu_ops[0] must be a string"),
    ({"source": ["x"]}, "source must be a string"),
    ({"devices": {"GPU": -2}}, "devices.GPU must be a count"),
    ({"precisions": {str(i): 1 for i in range(17)}}, "precisions has more than 16 entries"),
]


@pytest.mark.parametrize("offload, needle", HOSTILE)
def test_a_hostile_offload_ends_only_that_job_with_one_line(offload, needle):
    checker = MessageChecker()
    with pytest.raises(MessageError) as info:
        checker.check({"type": "result", "status": "ok", "offload": offload})
    assert str(info.value).startswith("result message: offload") and needle in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(MessageError, match="error message: offload"):
        MessageChecker().check({"type": "error", "category": "backend", "message": "m", "offload": offload})


def test_a_long_source_is_cut_and_a_good_verdict_passes_the_checker():
    out = MessageChecker().check({"type": "result", "status": "ok",
                                  "offload": {"accelerator": "GPU", "source": "s" * 5000}})
    assert len(out["offload"]["source"]) == 1003 and out["offload"]["nodes_total"] is None


# ---------------------------------------------------------------------- ONNX Runtime (real, on the CPU)
def _ort_backend(model, **settings):
    from hilbench_agent.backends.onnxruntime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend()
    backend.load(str(MODELS / model), settings)
    backend.set_inputs(generate_inputs(backend.input_specs(), None, 0))
    backend.invoke()
    return backend


@pytest.mark.parametrize("model", ["digits_cnn_fp32.onnx",
                                   pytest.param("mobilenet_v2_035_224_int8.onnx", marks=pytest.mark.slow)])
def test_ort_cpu_placement_on_the_sample_models(model):
    ort = _ort()
    backend = _ort_backend(model)
    d = backend.offload()
    if d is None:  # an onnxruntime before 1.24: the placement comes from a profiled run after the loops
        d = backend.offload(after_run=True)
    d = normalize(d)
    assert d["accelerator"] == "cpu" and d["nodes_total"] > 0 and d["nodes_cpu"] == d["nodes_total"]
    assert d["nodes_accelerated"] == 0 and d["cpu_ops"] == [] and label(d) == "cpu"
    assert d["devices"] == {"CPUExecutionProvider": d["nodes_total"]}
    assert ("get_provider_graph_assignment_info" in d["source"]) == hasattr(ort.InferenceSession,
                                                                             "get_provider_graph_assignment_info")
    eff = backend.effective_settings()
    assert eff["provider_options"] == {"CPUExecutionProvider": {}} and eff["io_binding"] is False


def test_ort_accelerator_that_took_no_node_and_require_offload():
    ort = _ort()
    if AZURE not in ort.get_available_providers():
        pytest.skip(f"this onnxruntime has no {AZURE} (the provider that takes no node)")
    backend = _ort_backend("digits_cnn_fp32.onnx", providers=[AZURE, "CPUExecutionProvider"])
    d = normalize(backend.offload() or backend.offload(after_run=True))
    assert d["accelerator"] == AZURE and d["nodes_accelerated"] == 0 and d["nodes_cpu"] == d["nodes_total"] > 0
    assert d["cpu_ops"][0] == "Transpose" and label(d) == f"{AZURE} 0/{d['nodes_total']} (0%)"
    assert set(backend.effective_settings()["provider_options"]) == {AZURE, "CPUExecutionProvider"}
    # require_offload: the CPU provider is dropped and CPU fallback switched off, so ONNX Runtime refuses the
    # session before anything runs; the error names the first op only the CPU runs and carries the verdict
    from hilbench_agent.backends.onnxruntime import OnnxRuntimeBackend

    with pytest.raises(AgentError) as info:
        OnnxRuntimeBackend().load(str(MODELS / "digits_cnn_fp32.onnx"),
                                  {"providers": [AZURE, "CPUExecutionProvider"], "require_offload": True})
    assert info.value.category == "backend" and "\n" not in info.value.message
    if hasattr(ort.InferenceSession, "get_provider_graph_assignment_info"):
        assert info.value.message.startswith(f"require_offload: {d['nodes_total']} of {d['nodes_total']} nodes can "
                                             f"run only on the CPU, not on {AZURE}; the first is Transpose")
        assert normalize(info.value.offload)["cpu_ops"][0] == "Transpose"
    else:
        assert "session.disable_cpu_ep_fallback" in info.value.message
    # a CPU-only run with require_offload asked for no accelerator: nothing can fall back, and it runs
    cpu = _ort_backend("digits_cnn_fp32.onnx", require_offload=True)
    assert offload_problem(cpu.offload() or cpu.offload(after_run=True)) is None


def test_ort_without_graph_assignment_profiles_one_run_after_the_loops(monkeypatch):
    _ort()
    from hilbench_agent.backends import onnxruntime as ort_backend

    monkeypatch.setattr(ort_backend, "_records_assignment", lambda ort: False)  # as onnxruntime < 1.24
    backend = _ort_backend("digits_cnn_fp32.onnx", providers=[AZURE, "CPUExecutionProvider"]
                           if AZURE in ort_backend_available() else None)
    assert backend.offload() is None  # nothing before the timed loop
    d = normalize(backend.offload(after_run=True))
    assert d["nodes_total"] == d["nodes_cpu"] > 0 and "profiling" in d["source"]
    if d["accelerator"] != "cpu":  # the kernels that ran, after fusions, in the order they ran
        assert d["cpu_ops"][0] == "Transpose" and "Conv" in d["cpu_ops"]


def test_ort_a_provider_the_session_lost_is_an_error_not_a_fallback(monkeypatch):
    """A STAND-IN session that says it runs on the CPU alone although CUDA was asked for: what onnxruntime's own
    Python fallback leaves behind when the CUDA provider fails to initialise."""
    ort = _ort()
    real = ort.InferenceSession
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])

    class Fallen(real):
        def __init__(self, path, sess_options=None, providers=None, provider_options=None, **kw):
            real.__init__(self, path, sess_options=sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ort, "InferenceSession", Fallen)
    from hilbench_agent.backends.onnxruntime import OnnxRuntimeBackend

    with pytest.raises(AgentError) as info:
        OnnxRuntimeBackend().load(str(MODELS / "digits_cnn_fp32.onnx"),
                                  {"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]})
    assert info.value.category == "backend"
    assert info.value.message.startswith("execution provider CUDAExecutionProvider was requested but the session "
                                         "runs without it (on CPUExecutionProvider): install what it needs")


def test_ort_io_binding_gives_the_same_outputs():
    _ort()
    plain = _ort_backend("digits_cnn_fp32.onnx")
    bound = _ort_backend("digits_cnn_fp32.onnx", io_binding=True)
    assert bound.effective_settings()["io_binding"] == "cpu:0"
    np.testing.assert_allclose(bound.outputs()[0], plain.outputs()[0], rtol=1e-6)


# ---------------------------------------------------------------------- LiteRT (real XNNPACK partitions)
def _litert_backend(path, **settings):
    from hilbench_agent.backends.litert import LiteRTBackend

    backend = LiteRTBackend()
    backend.load(str(path), settings)
    backend.set_inputs(generate_inputs(backend.input_specs(), None, 0))
    backend.invoke()
    return backend


@pytest.mark.parametrize("model, nodes", [("digits_cnn_fp32.tflite", 7), ("digits_cnn_int8.tflite", 7),
                                          ("mobilenet_v2_035_224_int8.tflite", 70)])
def test_litert_xnnpack_takes_the_whole_sample_models(model, nodes):
    _litert()
    d = normalize(_litert_backend(MODELS / model).offload())
    assert (d["accelerator"], d["nodes_total"], d["nodes_accelerated"], d["nodes_cpu"], d["partitions"]) == (
        "XNNPACK", nodes, nodes, 0, 1)
    assert label(d) == f"XNNPACK {nodes}/{nodes} (100%)" and "_get_ops_details" in d["source"]
    off = normalize(_litert_backend(MODELS / model, xnnpack=False).offload())
    assert (off["accelerator"], off["nodes_total"], off["nodes_cpu"]) == ("cpu", nodes, nodes)


@pytest.mark.parametrize("after, partitions", [(2, 2), (6, 1)])
def test_litert_a_node_xnnpack_refuses_splits_the_model(tmp_path, after, partitions):
    _litert()
    from support.offload_models import tflite_with_cpu_op

    model = tflite_with_cpu_op(MODELS / "digits_cnn_fp32.tflite", tmp_path / "partial.tflite", after)
    backend = _litert_backend(model)
    d = normalize(backend.offload())
    assert (d["nodes_total"], d["nodes_accelerated"], d["nodes_cpu"], d["partitions"], d["cpu_ops"]) == (
        8, 7, 1, partitions, ["ZEROS_LIKE"])
    assert label(d) == "XNNPACK 7/8 (88%)"
    if after == 6:
        assert not backend.outputs()[0].any()  # the zeros-like really ran, last


@pytest.mark.slow  # an agent process importing LiteRT (~1 s)
def test_agent_fails_a_partly_offloaded_litert_run_before_timing_it(tmp_path):
    _litert()
    from support.offload_models import tflite_with_cpu_op

    model = tflite_with_cpu_op(MODELS / "digits_cnn_fp32.tflite", tmp_path / "partial.tflite", 2)
    job = {"v": 1, "job_id": "o1", "backend": "litert", "settings": {}, "model": {"path": str(model)},
           "warmup": {"count": 1}, "timed": {"count": 3}, "require_offload": True}
    code, msgs, _ = run_agent(sys.executable, write_agent(tmp_path), job)
    assert code == 2
    error = msgs[-1]
    assert error["type"] == "error" and error["category"] == "backend"
    assert error["message"].startswith("require_offload: 1 of 8 nodes ran on the CPU, not on XNNPACK; the first op "
                                       "left on the CPU is ZEROS_LIKE")
    assert normalize(error["offload"])["partitions"] == 2
    assert not any(m.get("phase") in ("first", "timed") for m in msgs)  # nothing was timed
    job["require_offload"] = False
    code, msgs, _ = run_agent(sys.executable, write_agent(tmp_path), job)
    assert code == 0 and label(normalize(msgs[-1]["offload"])) == "XNNPACK 7/8 (88%)"


@pytest.mark.slow  # an agent process under Python 3.7
def test_the_python37_agent_reports_and_enforces_the_verdict(tmp_path):
    from support.helpers import missing_in_ci, pyenv_python

    python = pyenv_python("3.7")
    if python is None:
        missing_in_ci("the Python 3.7 agent test", "no Python 3.7 (pyenv install 3.7)")
    partial = {"accelerator": "NNAPI", "nodes_total": 4, "nodes_accelerated": 3, "nodes_cpu": 1, "cpu_ops": ["TopK"],
               "source": "stand-in"}
    job = {"v": 1, "job_id": "o37", "backend": "synthetic", "settings": {"latency_ms": 0.1, "offload": partial},
           "warmup": {"count": 1}, "timed": {"count": 3}}
    agent = write_agent(tmp_path)
    code, msgs, _ = run_agent(python, agent, job)
    assert code == 0 and msgs[-1]["offload"] == partial
    code, msgs, _ = run_agent(python, agent, dict(job, settings=dict(job["settings"], require_offload=True)))
    assert code == 2 and msgs[-1]["message"].startswith("require_offload: 1 of 4 nodes ran on the CPU, not on NNAPI")
    assert msgs[-1]["offload"] == partial


def _node(index, op, inputs, outputs):
    return {"index": index, "op_name": op, "inputs": np.array(inputs), "outputs": np.array(outputs)}


def test_litert_edge_tpu_and_external_delegate_node_lists():
    """STAND-IN node lists shaped like ``_get_ops_details()`` of an Edge TPU compiled model: a QUANTIZE, the
    compiled subgraph as ``edgetpu-custom-op``, a SOFTMAX the compiler left outside."""
    from hilbench_agent.backends.litert import litert_verdict

    nodes = [_node(0, "QUANTIZE", [0], [1]), _node(1, "edgetpu-custom-op", [1], [2]), _node(2, "SOFTMAX", [2], [3])]
    d = normalize(litert_verdict(nodes, "edgetpu", set(), "s"))  # the delegate claimed the custom op as a kernel
    assert (d["nodes_total"], d["nodes_accelerated"], d["partitions"], d["cpu_ops"]) == (3, 1, 1, ["QUANTIZE", "SOFTMAX"])
    # the Edge TPU delegate made a partition of the custom op; XNNPACK took the two builtins afterwards: they are
    # still the CPU's
    with_delegates = nodes + [_node(3, "DELEGATE", [1], [2]), _node(4, "DELEGATE", [0], [1]),
                              _node(5, "DELEGATE", [2], [3])]
    d = normalize(litert_verdict(with_delegates, "edgetpu", {3}, "s"))
    assert (d["nodes_accelerated"], d["nodes_cpu"], d["partitions"], d["cpu_ops"]) == (1, 2, 1, ["QUANTIZE", "SOFTMAX"])
    assert "the XNNPACK partitions of the rest run on the CPU" in d["source"]
    # without the Edge TPU, the custom op counts for nothing: XNNPACK's partitions are the accelerator's
    d = normalize(litert_verdict(with_delegates, "XNNPACK", None, "s"))
    assert (d["nodes_accelerated"], d["partitions"], d["cpu_ops"]) == (3, 3, [])


def test_litert_gpu_delegate_missing_is_one_line_naming_the_library(monkeypatch):
    interpreter = _litert()

    def refuse(path, options=None):
        raise ValueError(f"Failed to load delegate from {path}\n")

    monkeypatch.setattr(interpreter, "load_delegate", refuse)
    from hilbench_agent.backends.litert import LiteRTBackend

    with pytest.raises(AgentError) as info:
        LiteRTBackend().load(str(MODELS / "digits_cnn_fp32.tflite"), {"delegate": "gpu"})
    assert info.value.category == "backend" and "\n" not in info.value.message
    assert info.value.message.startswith('delegate = "gpu": the LiteRT GPU delegate is not on this device '
                                         "(libtensorflowlite_gpu_delegate.so: Failed to load delegate")


# ---------------------------------------------------------------------- TensorRT and Core ML (stand-ins)
@pytest.mark.parametrize("version", [pytest.param("8.5.2.2", marks=pytest.mark.slow), "10.3.0"])
def test_tensorrt_inspector_feeds_the_verdict(monkeypatch, tmp_path, version):
    pytest.importorskip("onnx")
    from hilbench_agent.backends.tensorrt import TensorRTBackend
    from support.fake_tensorrt import FakeGPU, engine_bytes, fake_tensorrt, install_cuda_python

    gpu = FakeGPU()
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(version, gpu))
    install_cuda_python(monkeypatch, gpu, "bindings")

    def verdict(model, **settings):
        backend = TensorRTBackend()
        settings = dict(settings, cache_dir=str(tmp_path / "cache"))
        backend.prepare(model, settings, None)
        backend.load(model, settings)
        return normalize(backend.offload())

    d = verdict(str(MODELS / "digits_cnn_fp32.onnx"), fp16=True)
    assert (d["accelerator"], d["nodes_total"], d["nodes_accelerated"], d["nodes_cpu"]) == ("GPU", 2, 2, 0)
    assert d["precisions"] == {"FP16": 1, "FP32": 1} and "IEngineInspector" in d["source"]
    dla = verdict(str(MODELS / "digits_cnn_fp32.onnx"), fp16=True, dla_core=1)
    assert (dla["accelerator"], dla["nodes_total"], dla["nodes_accelerated"], dla["partitions"]) == ("DLA:1", 2, 1, 1)
    assert "1 fell back to the GPU (first: CaskGemm fc)" in dla["source"]  # the reformat layer is not counted
    assert required_problem(dla).startswith("require_offload: only 1 of 2 nodes ran on DLA:1")
    engine = tmp_path / "names.plan"
    engine.write_bytes(engine_bytes(version, (8, 7), verbosity="LAYER_NAMES_ONLY"))
    plain = verdict(str(engine))
    assert (plain["nodes_total"], plain["nodes_accelerated"]) == (1, 1) and "precisions" not in plain


def _core_ml_plan(units):
    """The Core ML backend's compute-plan dict (what ``_compute_plan`` makes of MLComputePlan), as a STAND-IN."""
    ops = [{"op": "conv", "unit": "NE"}, {"op": "reduce_mean", "unit": "CPU"}, {"op": "linear", "unit": "NE"},
           {"op": "softmax", "unit": "GPU"}]
    return {"available": True, "operations": 4, "ops_by_unit": {"NE": 2, "CPU": 1, "GPU": 1}, "ops": ops}


@pytest.mark.parametrize("units, expected", [
    ("CPU_AND_NE", ("ANE", 2, 1, 2, "ANE 2/4 (50%)")),
    ("ALL", ("ANE+GPU", 3, 1, 2, "ANE+GPU 3/4 (75%)")),
    ("CPU_AND_GPU", ("GPU", 1, 1, 1, "GPU 1/4 (25%)")),
    ("CPU_ONLY", ("cpu", 0, 1, 0, "cpu")),
])
def test_core_ml_compute_plan_feeds_the_verdict(units, expected):
    from hilbench_agent.backends.coreml import plan_offload

    d = normalize(plan_offload(_core_ml_plan(units), units))
    assert (d["accelerator"], d["nodes_accelerated"], d["nodes_cpu"], d["partitions"], label(d)) == expected
    assert d["nodes_total"] == 4 and "MLComputePlan" in d["source"]
    if units != "CPU_ONLY":
        assert d["cpu_ops"] == ["reduce_mean"] and d["devices"] == {"NE": 2, "CPU": 1, "GPU": 1}
    gone = normalize(plan_offload({"available": False, "reason": "MLComputePlan needs macOS 14.4+"}, "ALL"))
    assert gone["nodes_total"] is None and "macOS 14.4" in gone["source"] and label(gone) == "ANE+GPU (share unknown)"
    assert "compute_plan = false" in normalize(plan_offload(None, "ALL"))["source"]


def test_pytorch_says_cpu_and_leaves_cuda_uncounted():
    from hilbench_agent.backends.pytorch import PyTorchBackend

    backend = PyTorchBackend()
    backend.device = type("Device", (), {"type": "cpu"})()
    assert normalize(backend.offload())["accelerator"] == "cpu"
    backend.device = type("Device", (), {"type": "cuda", "__str__": lambda self: "cuda:0"})()
    d = normalize(backend.offload())
    assert d["accelerator"] == "cuda" and d["nodes_total"] is None and "no per-op placement record" in d["source"]


# ---------------------------------------------------------------------- the store, show, results, compare
def _runs_rows(session: str, offload: dict | None, n: int = 2) -> list[dict]:
    at = pd.Timestamp("2026-12-01", tz="UTC") if session == "s1" else pd.Timestamp("2026-12-02", tz="UTC")
    return [{"run_id": f"{session}-r{i}", "session_id": session, "plan": "p", "model": "m", "target": "t",
             "backend": "litert", "settings": {}, "status": "ok", "valid": True, "started_at": at,
             "timed_ns": 10 ** 8, "offload": offload} for i in range(n)]


def _store_with(tmp_path, base, cand):
    store = open_store(tmp_path / "res")
    store.ensure_writable()
    rng = np.random.default_rng(1)
    for session, offload in (("s1", base), ("s2", cand)):
        rows = _runs_rows(session, offload)
        store.write_table("runs", session, rows)
        for r in rows:
            lat = rng.normal(1e6, 1e4, 200).astype(np.int64)
            store.write_table("samples", r["run_id"], {"run_id": [r["run_id"]] * 200, "phase": ["timed"] * 200,
                                                        "iteration": list(range(200)), "latency_ns": lat,
                                                        "t_ns": np.cumsum(lat)})
    return store


FULL = {"accelerator": "XNNPACK", "nodes_total": 8, "nodes_accelerated": 8, "nodes_cpu": 0, "partitions": 1,
        "cpu_ops": [], "source": "s"}


@pytest.mark.slow  # two comparisons (scipy's bootstrap)
def test_compare_refuses_runs_whose_offload_differs(tmp_path, capsys):
    partial = dict(FULL, nodes_accelerated=7, nodes_cpu=1, cpu_ops=["ZEROS_LIKE"])
    _store_with(tmp_path, FULL, partial)
    store = str(tmp_path / "res")
    assert main(["compare", "s1", "s2", "--store", store]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "m on t [litert]: not comparable, offload changed: XNNPACK 8/8 (100%) vs XNNPACK 7/8 " \
                              "(88%)" in err[0] and "--allow-offload-change" in err[0]
    assert main(["compare", "s1-r0", "s2-r0", "--store", store]) == 1  # two runs of one configuration, by id
    assert "not comparable, offload changed" in capsys.readouterr().err
    assert main(["compare", "s1", "s2", "--store", store, "--allow-offload-change", "--metric", "p50"]) in (0, 5)
    out = capsys.readouterr().out
    assert "compared although the offload differs: m on t [litert]: offload changed: XNNPACK 8/8" in out


@pytest.mark.slow  # a comparison (scipy's bootstrap)
def test_compare_and_results_read_an_older_store_without_the_column(tmp_path, capsys):
    store = _store_with(tmp_path, FULL, FULL)
    # the candidate's runs file as a store written before the offload column existed
    path = tmp_path / "res" / "runs" / "s2.parquet"
    import pyarrow.parquet as pq

    old = pq.read_table(path).drop(["offload"])
    assert "offload" in SCHEMAS["runs"].names and "offload" not in old.column_names
    pq.write_table(old, path)
    runs = store.runs().set_index("run_id")
    assert pd.isna(runs.loc["s2-r0", "offload"]) and json.loads(runs.loc["s1-r0", "offload"])["accelerator"] == "XNNPACK"
    assert main(["compare", "s1", "s2", "--store", str(tmp_path / "res"), "--metric", "p50"]) in (0, 5)
    capsys.readouterr()
    assert main(["results", "--store", str(tmp_path / "res"), "--format", "json"]) == 0
    rows = {r["run_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["s2-r0"]["offload"] == "unknown" and rows["s1-r0"]["offload"] == "XNNPACK 8/8 (100%)"
    assert rows["s1-r0"]["offload_share"] == 1.0 and rows["s2-r0"]["offload_share"] is None
    assert main(["show", "s2-r0", "--store", str(tmp_path / "res")]) == 0
    assert "offload   unknown: not recorded (a run stored before hilbench kept offload verdicts)" in capsys.readouterr().out


PLAN = """
name = "offload"
[[models]]
name = "fake"
backends = ["synthetic"]
[[models]]
name = "digits"
path = "{model}"
backends = ["onnxruntime"]
[backends.synthetic]
latency_ms = 0.1
offload = [
  {{ accelerator = "GPU", nodes_total = 8, nodes_accelerated = 8, nodes_cpu = 0, source = "stand-in" }},
  {{ accelerator = "GPU", nodes_total = 8, nodes_accelerated = 6, nodes_cpu = 2, cpu_ops = ["ArgMax", "TopK"], source = "stand-in" }},
  {{ accelerator = "GPU", nodes_total = 2, nodes_accelerated = 3, source = "hostile" }},
]
[policy]
warmup = 2
timed = {{ count = 20 }}
telemetry = false
require_offload = true
"""


@pytest.mark.slow  # one session of four jobs (synthetic STAND-IN and ONNX Runtime) through the local agent
def test_run_stores_the_verdict_and_require_offload_fails_partial_runs(tmp_path, capsys):
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN.format(model=MODELS / "digits_cnn_fp32.onnx"))
    store_dir = tmp_path / "res"
    assert main(["run", str(plan), "--store", str(store_dir), "--quiet"]) == 3
    capsys.readouterr()
    runs = open_store(store_dir).runs()
    by = {(r["backend"], json.loads(r["settings"]).get("offload", {}).get("nodes_accelerated")): r
          for _, r in runs.iterrows()}
    full, partial, hostile = by[("synthetic", 8)], by[("synthetic", 6)], by[("synthetic", 3)]
    assert full["status"] == "ok" and label(from_column(full["offload"])) == "GPU 8/8 (100%)"
    assert partial["status"] == "error" and partial["error_category"] == "backend"
    assert partial["error_message"].startswith("require_offload: 2 of 8 nodes ran on the CPU, not on GPU; the first op "
                                               "left on the CPU is ArgMax")
    assert from_column(partial["offload"])["cpu_ops"] == ["ArgMax", "TopK"]  # the failed run keeps its verdict
    assert hostile["status"] == "error" and hostile["error_category"] == "agent"
    assert "offload: nodes_accelerated (3) is more than nodes_total (2)" in hostile["error_message"]
    ort = by[("onnxruntime", None)]
    assert ort["status"] == "ok" and from_column(ort["offload"])["accelerator"] == "cpu"  # nothing could fall back
    assert main(["show", str(partial["run_id"]), "--store", str(store_dir)]) == 0
    out = capsys.readouterr().out
    assert "offload   GPU 6/8 (75%)  (stand-in)" in out and "left on the CPU: ArgMax, TopK" in out
    assert main(["results", "--store", str(store_dir)]) == 0
    table = capsys.readouterr().out
    assert "offload" in table.splitlines()[0] and "GPU 8/8 (100%)" in table
    html = tmp_path / "report.html"
    assert main(["report", "--store", str(store_dir), "--output", str(html), "--no-plots"]) == 0
    page = html.read_text()
    assert "<small>offload GPU 8/8 (100%)</small>" in page and "<small>offload cpu</small>" in page
