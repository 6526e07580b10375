"""Real runtimes on this machine's CPU: ONNX Runtime and LiteRT through the agent, and the
error paths of every backend (including the hardware-only ones) on a machine without them."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness import open_store
from harness.cli import main
from harness.config.plan import QUICKSTART_PLAN, expand_jobs, load_plan
from harness.config.targets import LOCAL
from harness.run.session import run_jobs

MODELS = QUICKSTART_PLAN.parent / "models"
pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")
if not (MODELS / "digits_cnn_fp32.onnx").exists():
    pytest.skip("sample models are not built (scripts/build_models.py)", allow_module_level=True)


def small_plan(tmp: Path, models: str, backends: str = "", policy: str = "") -> Path:
    path = tmp / "plan.toml"
    path.write_text(f"""
name = "t"
{models}
{backends}
[policy]
warmup = 3
timed = {{ count = 30 }}
percentiles = [50]
telemetry = false
{policy}
""")
    return path


def model_block(path: Path, extra: str = "", name: str | None = None) -> str:
    return f'[[models]]\npath = "{path}"\n' + (f'name = "{name}"\n' if name else "") + extra


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path):
    """The bundled plan: ORT and LiteRT, FP32 and INT8, every raw sample stored."""
    plan = load_plan(QUICKSTART_PLAN)
    quick = replace(plan.policy, warmup={"count": 3}, timed={"count": 50}, percentiles=(50,))
    jobs = [replace(j, policy=quick) for j in expand_jobs(plan, {"local": LOCAL})]
    store = open_store(tmp_path / "res")
    result = run_jobs(jobs, store, plan=plan)
    assert [r["error_message"] for r in result.failed] == []
    summary = store.summary()
    assert set(summary["backend"]) == {"onnxruntime", "litert"}
    precisions = {json.loads(t)["precision"] for t in summary["model_tags"]}
    assert precisions == {"fp32", "int8"}
    assert (summary["count"] >= 50).all() and (summary["p50_ns"] > 0).all()
    runs = store.runs()
    assert runs["model_sha256"].str.len().eq(64).all()
    eff = [json.loads(e) for e in runs["effective_settings"]]
    assert any(e.get("providers") == ["CPUExecutionProvider"] for e in eff)
    assert any(e.get("runtime") == "ai-edge-litert" for e in eff)
    # three agent processes per model (the plan's policy.processes), folded into one row per configuration
    assert len(summary) == 3 * len(store.configurations()) and set(summary["processes"]) == {3}
    # the MobileNet-class model is far slower than the digits CNN on the same backend
    by_model = store.configurations().set_index(["model"])["p50_ns"]
    assert by_model["mobilenet-v2-0.35"] > 5 * by_model["digits-cnn"]


@pytest.mark.slow
def test_litert_without_xnnpack_and_threads(tmp_path):
    plan = small_plan(tmp_path, model_block(MODELS / "digits_cnn_fp32.tflite"),
                      "[backends.litert]\nthreads = 2\nxnnpack = [true, false]\n")
    assert main(["run", str(plan), "--store", str(tmp_path / "res"), "--quiet"]) == 0
    eff = [json.loads(e) for e in open_store(tmp_path / "res").runs()["effective_settings"]]
    assert sorted(e["xnnpack"] for e in eff) == [False, True] and {e["threads"] for e in eff} == {2}


@pytest.mark.slow
def test_truncated_model_is_a_stored_model_error(tmp_path):
    data = (MODELS / "digits_cnn_fp32.onnx").read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 2])
    plan = small_plan(tmp_path, model_block(bad) + model_block(MODELS / "digits_cnn_int8.onnx"))
    assert main(["run", str(plan), "--store", str(tmp_path / "res"), "--quiet"]) == 3
    runs = open_store(tmp_path / "res").runs().set_index("model")
    assert runs.loc["truncated", "status"] == "error"
    assert runs.loc["truncated", "error_category"] == "model"
    assert "truncated.onnx" in runs.loc["truncated", "error_message"]
    assert runs.loc["digits_cnn_int8", "status"] == "ok"  # the rest of the plan went on


def _dynamic_onnx(path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "dyn", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.mark.slow
def test_dynamic_dimension_needs_a_shape(tmp_path):
    model = tmp_path / "dyn.onnx"
    _dynamic_onnx(model)
    plan = small_plan(tmp_path, model_block(model))
    assert main(["run", str(plan), "--store", str(tmp_path / "a"), "--quiet"]) == 3
    run = open_store(tmp_path / "a").runs().iloc[0]
    assert run["error_category"] == "input"
    assert "dynamic shape" in run["error_message"] and "shapes" in run["error_message"]
    plan = small_plan(tmp_path, model_block(model, "[models.inputs]\nshapes = { x = [8, 4] }\n"))
    assert main(["run", str(plan), "--store", str(tmp_path / "b"), "--quiet"]) == 0
    result = json.loads(open_store(tmp_path / "b").runs().iloc[0]["result"])
    assert result["inputs"][0]["used_shape"] == [8, 4]


@pytest.mark.slow
def test_inputs_from_a_file_and_wrong_shapes(tmp_path):
    model = MODELS / "digits_cnn_fp32.onnx"
    import onnxruntime as ort

    name = ort.InferenceSession(str(model)).get_inputs()[0].name
    good = tmp_path / "good.npz"
    np.savez(good, **{name: np.zeros((1, 8, 8, 1), np.float32)})
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((1, 3, 3), np.float32))
    plan = small_plan(tmp_path, model_block(model, f'[models.inputs]\nfile = "{good}"\n'))
    assert main(["run", str(plan), "--store", str(tmp_path / "a"), "--quiet"]) == 0
    assert json.loads(open_store(tmp_path / "a").runs().iloc[0]["result"])["input_source"] == "file"
    plan = small_plan(tmp_path, model_block(model, f'[models.inputs]\nfile = "{bad}"\n'))
    assert main(["run", str(plan), "--store", str(tmp_path / "b"), "--quiet"]) == 3
    run = open_store(tmp_path / "b").runs().iloc[0]
    assert run["error_category"] == "input" and "shape [1, 3, 3]" in run["error_message"]


@pytest.mark.slow
@pytest.mark.parametrize("backend, settings, model, needle", [
    ("onnxruntime", 'providers = ["TensorrtExecutionProvider"]', "digits_cnn_fp32.onnx", "install the onnxruntime build"),
    # A model not compiled for the Edge TPU takes its delegate only with allow_cpu_fallback (else the host refuses
    # the plan: tests/test_edgetpu.py); the missing library is then the device's one-line error naming the package.
    ("litert", 'delegate = "/nonexistent/libedgetpu.so.1"\nallow_cpu_fallback = true', "digits_cnn_int8.tflite",
     "install libedgetpu1-std"),
    ("tensorrt", "fp16 = true", "digits_cnn_fp32.onnx", "not available on this device"),
    ("coreml", 'compute_units = "ALL"', "digits_cnn_fp32.onnx", "no jobs"),
])
def test_unavailable_backends_are_backend_errors(tmp_path, capsys, backend, settings, model, needle):
    plan = small_plan(tmp_path, model_block(MODELS / model, f'backends = ["{backend}"]\n'),
                      f"[backends.{backend}]\n{settings}\n")
    if backend == "coreml":
        # a .onnx file is not a Core ML model: no job, refused on the host before anything runs, in one line
        assert main(["run", str(plan), "--store", str(tmp_path / "res"), "--quiet"]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "expands to no jobs" in err and "model formats" in err, err
        assert not (tmp_path / "res").exists()
        return
    assert main(["run", str(plan), "--store", str(tmp_path / "res"), "--quiet"]) == 3
    run = open_store(tmp_path / "res").runs().iloc[0]
    assert run["error_category"] == "backend" and needle in run["error_message"]


def test_coreml_probe_is_honest_off_macos():
    from hilbench_agent.backends.coreml import CoreMLBackend
    from hilbench_agent.backends.tensorrt import TensorRTBackend

    probe = CoreMLBackend.probe()
    assert probe["available"] is False and "macOS" in probe["reason"]
    trt = TensorRTBackend.probe()
    if not trt["available"]:
        assert "tensorrt" in trt["reason"].lower() or "gpu" in trt["reason"].lower() or "cuda" in trt["reason"].lower()


def test_quantized_inputs_are_generated_in_range():
    from hilbench_agent.backends.base import InputSpec, generate_inputs

    arrays = generate_inputs([InputSpec("q", [2, 100], "int8", (0.5, -3)), InputSpec("f", [3], "float32")], seed=1)
    q = arrays["q"]
    assert q.dtype == np.int8 and q.shape == (2, 100)
    # uniform [0, 1) quantised with scale 0.5 and zero point -3 lands in {-3, -2, -1}
    assert set(np.unique(q)) <= {-3, -2, -1}
    again = generate_inputs([InputSpec("q", [2, 100], "int8", (0.5, -3))], seed=1)["q"]
    assert np.array_equal(q, again)  # seeded


_SHAPE_NAMES_37 = r"""
import sys
assert sys.version_info[:2] == (3, 7), sys.version
from hilbench_agent.backends.base import InputSpec, generate_inputs, load_inputs
from hilbench_agent.protocol import AgentError
specs = [InputSpec("images", [1, 8, 8, 1], "float32"), InputSpec("mask", [1, 8], "bool")]
for call in (lambda: generate_inputs(specs, {"imgaes": [1, 8, 8, 1]}), lambda: load_inputs("/no/such.npz", specs, {"x": [1]})):
    try:
        call()
    except AgentError as exc:
        print(exc.category, exc)
    else:
        raise SystemExit("no error")
"""


def test_a_shape_for_an_input_the_model_lacks_is_an_input_error_on_python37():
    """Issue 14, item 12: ``[models.inputs] shapes = { imgaes = [...] }`` names no input of the model; the agent fails
    the job as an ``input`` error naming the unknown name and the model's inputs (on Python 3.7, before numpy)."""
    from support.helpers import missing_in_ci, pyenv_python

    py37 = pyenv_python("3.7")
    if py37 is None:
        missing_in_ci("the agent's input-name check under Python 3.7", "no Python 3.7 interpreter here")
    agent_dir = Path(__file__).resolve().parents[1] / "device_agents"
    proc = subprocess.run([py37, "-c", _SHAPE_NAMES_37], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(agent_dir), PYTHONDONTWRITEBYTECODE="1"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "input [models.inputs] shapes names input 'imgaes', which the model does not have (its inputs: images, mask)",
        "input [models.inputs] shapes names input 'x', which the model does not have (its inputs: images, mask)",
    ]
