"""The PyTorch backend: the real torch on this machine's CPU (TorchScript .pt and exported .pt2 sample models,
through the real agent and store), and its CUDA path against a stand-in torch shaped like torch.cuda's API
(tests/support/fake_torch.py); the real CUDA path is a hardware test (``--hardware cuda``)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from hilbench_agent.backends import DEFAULT_BACKEND, canonical_name
from hilbench_agent.backends.pytorch import PyTorchBackend
from hilbench_agent.protocol import AgentError
from support.fake_torch import FakeTorch
from support.helpers import missing_in_ci

from harness import open_store
from harness.cli import main

MODELS = Path(__file__).resolve().parents[1] / "harness" / "samples" / "models"
INPUT = {"input": np.random.default_rng(0).random((1, 8, 8, 1), dtype=np.float32)}


def _torch():
    try:
        import torch
    except ImportError:
        missing_in_ci("the PyTorch CPU tests", "torch is not installed (pip install -e '.[dev]' installs it)")
    return torch


def test_pytorch_files_run_on_the_pytorch_backend_by_default():
    assert DEFAULT_BACKEND[".pt"] == "pytorch" and DEFAULT_BACKEND[".pt2"] == "pytorch"
    assert canonical_name("torch") == "pytorch"


@pytest.mark.slow  # importing torch takes seconds on 2 cores
@pytest.mark.parametrize("name", ["digits_cnn_fp32.pt", "digits_cnn_fp32.pt2"])
def test_both_formats_load_and_match_the_onnx_model_on_the_cpu(name):
    _torch()
    ort = pytest.importorskip("onnxruntime")
    backend = PyTorchBackend()
    backend.load(str(MODELS / name), {"threads": 1})
    (spec,) = backend.input_specs()
    assert (spec.name, spec.shape, spec.dtype) == ("input", [1, 8, 8, 1], "float32")
    backend.set_inputs(INPUT)
    backend.invoke()
    (out,) = backend.outputs()
    want = ort.InferenceSession(str(MODELS / "digits_cnn_fp32.onnx")).run(None, INPUT)[0]
    assert out.shape == (1, 10) and np.allclose(out, want, atol=1e-4)
    assert backend.take_gpu_ns() is None  # the CPU times nothing on a GPU
    eff = backend.effective_settings()
    assert eff["device"] == "cpu" and eff["threads"] == 1
    assert eff["format"] == ("exported_program" if name.endswith(".pt2") else "torchscript")
    backend.close()

@pytest.mark.slow  # importing torch takes seconds on 2 cores

def test_torchscript_without_its_shape_file_takes_the_plan_shape(tmp_path):
    torch = _torch()
    module = torch.jit.load(str(MODELS / "digits_cnn_fp32.pt"))
    bare = tmp_path / "bare.pt"
    torch.jit.save(module, str(bare))  # no hilbench.json extra file
    backend = PyTorchBackend()
    backend.load(str(bare), {})
    (spec,) = backend.input_specs()
    assert spec.name == "input" and spec.shape is None
    from hilbench_agent.backends.base import generate_inputs

    with pytest.raises(AgentError, match=r"does not say the shape of input 'input': give it in the plan"):
        generate_inputs([spec])
    arrays = generate_inputs([spec], {"input": [2, 8, 8, 1]})
    backend.set_inputs(arrays)
    assert backend.outputs()[0].shape == (2, 10)


@pytest.mark.slow  # importing torch takes seconds on 2 cores
@pytest.mark.parametrize("settings, needle", [
    ({"device": "cuda"}, "has no CUDA"),
    ({"device": "tpu"}, "not a torch device"),
    ({"cuda_graph": True}, "cuda_graph = true needs a CUDA device"),
    ({"gpu_time": True}, "gpu_time = true needs a CUDA device"),
])
def test_cuda_settings_without_cuda_are_one_line_errors(settings, needle):
    torch = _torch()
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(AgentError, match=needle) as info:
        PyTorchBackend().load(str(MODELS / "digits_cnn_fp32.pt"), settings)
    assert info.value.category == "backend" and "\n" not in info.value.message

@pytest.mark.slow  # importing torch takes seconds on 2 cores

def test_a_file_that_is_not_a_torch_archive_is_a_model_error(tmp_path):
    _torch()
    bad = tmp_path / "m.pt"
    bad.write_bytes((MODELS / "digits_cnn_fp32.pt").read_bytes()[:5000])
    with pytest.raises(AgentError, match="cannot load .*m.pt as TorchScript") as info:
        PyTorchBackend().load(str(bad), {})
    assert info.value.category == "model"
    wrong = tmp_path / "m.pt2"
    shutil.copy(MODELS / "digits_cnn_fp32.pt", wrong)  # a TorchScript archive named as an exported program
    with pytest.raises(AgentError, match="as an exported program"):
        PyTorchBackend().load(str(wrong), {})


@pytest.mark.slow
def test_pytorch_runs_end_to_end_with_accuracy(tmp_path):
    """The real agent (a child process) runs both sample files with generated inputs, and the .pt on the
    digits evaluation set: its accuracy is the committed model's (MODELS.md: 0.9889)."""
    _torch()
    plan = tmp_path / "plan.toml"
    plan.write_text(f"""
name = "pytorch"
[[models]]
path = "{MODELS / 'digits_cnn_fp32.pt'}"
[models.eval]
data = "{MODELS / 'digits_eval.npz'}"
[[models]]
path = "{MODELS / 'digits_cnn_fp32.pt2'}"
name = "exported"
[backends.pytorch]
threads = 1
[policy]
warmup = 3
timed = {{ count = 30 }}
percentiles = [50]
telemetry = false
""")
    assert main(["run", str(plan), "--store", str(tmp_path / "res"), "--quiet"]) == 0
    store = open_store(tmp_path / "res")
    runs = store.runs().set_index("model")
    assert set(runs["backend"]) == {"pytorch"} and set(runs["status"]) == {"ok"}
    assert json.loads(runs.loc["exported", "effective_settings"])["format"] == "exported_program"
    result = json.loads(runs.loc["digits_cnn_fp32", "result"])
    assert result["inputs"][0]["used_shape"] == [1, 8, 8, 1] and result["build"] is None
    acc = store.accuracy()
    assert len(acc) == 360 and (acc["prediction"] == acc["label"]).mean() == pytest.approx(0.9889, abs=1e-4)
    samples = store.samples(phase="timed")
    assert len(samples) == 60 and samples["gpu_ns"].isna().all()


# --------------------------------------------------------------------------- CUDA, against the stand-in torch
@pytest.fixture
def fake_torch(monkeypatch):
    def make(**kw) -> FakeTorch:
        fake = FakeTorch(extra={"hilbench.json": json.dumps(
            {"inputs": [{"name": "input", "shape": [1, 8, 8, 1], "dtype": "float32"}]}).encode()}, **kw)
        monkeypatch.setitem(sys.modules, "torch", fake)
        return fake
    return make


def _model(tmp_path: Path) -> str:
    path = tmp_path / "m.pt"
    path.write_bytes(b"PK stand-in")  # the stand-in torch reads nothing; the backend checks the file exists
    return str(path)


def test_cuda_probe_names_the_gpu(fake_torch):
    fake_torch(name="NVIDIA Jetson Orin")
    info = PyTorchBackend.probe()
    assert info == {"available": True, "version": "2.5.0+cu124", "cuda": True, "cuda_version": "12.4",
                    "gpu": "NVIDIA Jetson Orin", "gpu_count": 1}


def test_cuda_invoke_times_each_pass_with_events_after_one_sync(fake_torch, tmp_path):
    torch = fake_torch(kernel_ns=250_000)
    backend = PyTorchBackend()
    backend.load(_model(tmp_path), {"device": "cuda"})
    backend.set_inputs(INPUT)
    torch.calls.clear()
    for _ in range(3):
        backend.invoke()
    assert torch.calls == ["event.record", "forward", "event.record", "event.synchronize"] * 3
    assert backend.take_gpu_ns() == [250_000] * 3 and backend.take_gpu_ns() == []
    out = backend.outputs()
    assert out[0].shape == (1, 8, 8) and backend.take_gpu_ns() == []  # outputs() is not a timed invoke
    eff = backend.effective_settings()
    assert eff["device"] == "cuda:0" and eff["gpu_time"] == "cuda_events" and eff["sync"] == "event"
    assert eff["gpu"] == "NVIDIA Fake GPU" and eff["cuda_graph"] is False


def test_cuda_device_sync_and_no_gpu_time(fake_torch, tmp_path):
    torch = fake_torch()
    backend = PyTorchBackend()
    backend.load(_model(tmp_path), {"device": "cuda:0", "gpu_time": False, "sync": "device"})
    backend.set_inputs(INPUT)
    torch.calls.clear()
    backend.invoke()
    assert torch.calls == ["forward", "cuda.synchronize"]
    assert backend.take_gpu_ns() is None


def test_cuda_graph_is_captured_once_and_replayed(fake_torch, tmp_path):
    torch = fake_torch(kernel_ns=40_000)
    backend = PyTorchBackend()
    backend.load(_model(tmp_path), {"device": "cuda", "cuda_graph": True})
    backend.set_inputs(INPUT)
    assert torch.calls.count("graph.capture") == 1 and torch.calls.count("forward") == 3  # warm-up, capture
    torch.calls.clear()
    backend.invoke()
    backend.invoke()
    assert torch.calls == ["event.record", "graph.replay", "event.record", "event.synchronize"] * 2
    assert backend.take_gpu_ns() == [40_000, 40_000]
    assert backend.effective_settings()["cuda_graph"] is True


def test_a_cuda_index_the_device_lacks_is_a_one_line_error(fake_torch, tmp_path):
    fake_torch(gpus=1)
    with pytest.raises(AgentError, match=r"device = 'cuda:3' but this device has 1 CUDA device"):
        PyTorchBackend().load(_model(tmp_path), {"device": "cuda:3"})


# --------------------------------------------------------------------------- the real GPU
@pytest.mark.hardware("cuda")
@pytest.mark.parametrize("graph", [False, True])
def test_real_cuda_gpu_time_is_below_host_time(graph):
    torch = _torch()
    backend = PyTorchBackend()
    backend.load(str(MODELS / "digits_cnn_fp32.pt2"), {"device": "cuda", "cuda_graph": graph})
    backend.set_inputs(INPUT)
    import time

    host = []
    for _ in range(200):
        t0 = time.monotonic_ns()
        backend.invoke()
        host.append(time.monotonic_ns() - t0)
    gpu = backend.take_gpu_ns()
    assert len(gpu) == 200 and all(0 < g for g in gpu)
    assert np.median(gpu) <= np.median(host)
    want = backend.outputs()[0]
    assert want.shape == (1, 10) and np.isfinite(want).all()
    assert torch.cuda.is_available()
