"""The TensorRT backend against stand-ins shaped like each TensorRT it claims (8.5, 8.6, 10.x, 11: built from
the per-version API table in tests/support/tensorrt_api.py) and like cuda-python (both import layouts) and
pycuda (tests/support/fake_tensorrt.py): every backend method, the engine cache, optimization profiles, DLA,
CUDA graphs and events, the bad-input errors; plus the check that every TensorRT name the backend uses exists
in the version it runs on. The real TensorRT is a hardware test (``--hardware tensorrt``, docs/hardware.md)."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hilbench_agent.backends import tensorrt as trt_backend
from hilbench_agent.backends.base import generate_inputs
from hilbench_agent.backends.tensorrt import TensorRTBackend
from hilbench_agent.protocol import AgentError
from support.fake_tensorrt import FakeGPU, engine_bytes, fake_tensorrt, install_cuda_python, install_pycuda
from support.tensorrt_api import API, VERSIONS, has

MODELS = Path(__file__).resolve().parents[1] / "harness" / "samples" / "models"
FP32 = str(MODELS / "digits_cnn_fp32.onnx")
INT8_ASYMMETRIC = str(MODELS / "digits_cnn_int8.onnx")  # onnxruntime quantize_static: activations' zero point -128
ALL = list(VERSIONS)
WEAKLY_TYPED = [v for v in ALL if not v.startswith("11.")]

pytest.importorskip("onnx")


class Env:
    def __init__(self, monkeypatch, tmp_path, version, bindings="cuda-python", **gpu):
        self.gpu = FakeGPU(**gpu)
        self.trt = fake_tensorrt(version, self.gpu)
        monkeypatch.setitem(sys.modules, "tensorrt", self.trt)
        if bindings == "pycuda":
            install_pycuda(monkeypatch, self.gpu)
        else:
            install_cuda_python(monkeypatch, self.gpu, "cudart" if bindings == "cudart" else "bindings")
        self.cache = str(tmp_path / "cache")

    def settings(self, **kw):
        return dict({"cache_dir": self.cache}, **kw)

    def run(self, model=FP32, shapes=None, invokes=3, **settings):
        """prepare, load, bind generated inputs, invoke: the agent's order; (backend, build info)."""
        backend = TensorRTBackend()
        s = self.settings(**settings)
        info = backend.prepare(model, s, shapes)
        backend.load(model, s)
        arrays = generate_inputs(backend.input_specs(), shapes, seed=1)
        backend.set_inputs(arrays)
        for _ in range(invokes):
            backend.invoke()
        backend.arrays = arrays
        return backend, info

    def built(self):
        return [entry for entry in self.trt.log if entry[0] == "build"]


@pytest.fixture
def env(monkeypatch, tmp_path):
    return lambda version, **kw: Env(monkeypatch, tmp_path, version, **kw)


# ---------------------------------------------------------------------- the whole path, every version
@pytest.mark.parametrize("version", ALL)
def test_onnx_builds_caches_runs_and_reports_from_the_engine(env, version):
    e = env(version)
    backend, info = e.run()
    assert info["cache"] == "miss" and info["what"] == "tensorrt engine" and info["engine_bytes"] > 0
    (spec,) = backend.input_specs()
    assert (spec.name, spec.shape, spec.dtype) == ("input", [1, 8, 8, 1], "float32")
    # the stand-in engine writes the sum of the input into every output: the bytes went up and came back
    (out,) = backend.outputs()
    assert out.shape == (1, 10) and np.allclose(out, backend.arrays["input"].sum(), rtol=1e-5)
    assert backend.take_gpu_ns() == [e.gpu.kernel_ns] * 3 and backend.take_gpu_ns() == []
    eff = backend.effective_settings()
    assert eff["tensorrt"] == version and eff["engine"] == "built" and eff["gpu"] == "Orin"
    assert eff["compute_capability"] == "8.7" and eff["cuda_bindings"] == "cuda-python 12.6.2"
    assert eff["layer_precisions"] == {"FP32": 2} and eff["layer_devices"] == {"GPU": 2}
    assert eff["strongly_typed"] is version.startswith("11.") and eff["sync"] == "stream"
    assert eff["engine_device_memory_bytes"] == 3 << 20 and eff["load_gpu_memory_bytes"] >= 3 << 20
    # explicit batch where 8.x needs it; never in 10+ (ignored) or 11 (gone)
    (create,) = [x for x in e.trt.log if x[0] == "create_network"]
    assert create[1] == (["EXPLICIT_BATCH"] if version.startswith("8.") else [])
    assert e.built()[0][4] == "DETAILED"  # so the inspector can say precisions and placement
    backend.close()

    again, info2 = e.run()  # the second run of the same job: the engine comes from the cache
    assert info2["cache"] == "hit" and info2["key"] == info["key"] and len(e.built()) == 1
    assert again.effective_settings()["engine"] == "cache"
    assert Path(info["path"]).is_file() and json.loads(Path(info["path"] + ".json").read_text())["tensorrt"] == version


@pytest.mark.parametrize("version", ALL)
def test_every_tensorrt_name_the_backend_uses_exists_in_that_version(env, version):
    """Runs the backend's paths (build with a profile, DLA, load, inspect, run, a prebuilt engine) on the
    stand-in of ``version``, which has exactly that version's names, and checks what it recorded against the
    table; and every ``trt.<name>`` written in the backend's source is a module name of every version."""
    e = env(version)
    dyn = _dynamic_onnx(Path(e.cache).parent / "dyn.onnx")
    e.run(model=dyn, shapes={"x": [2, 4]}, workspace_mb=64)
    precision = {} if version.startswith("11.") else {"fp16": True}
    e.run(dla_core=0, **precision)
    engine = Path(e.cache).parent / "m.engine"
    engine.write_bytes(engine_bytes(version, (8, 7)))
    e.run(model=str(engine))
    for where, name in e.trt.used:
        assert has(version, where, name), f"{where}.{name} is not in TensorRT {version}"
    assert ("IExecutionContext", "execute_async_v3") in e.trt.used
    memory = "device_memory_size" if version.startswith("8.") else "device_memory_size_v2"
    assert ("ICudaEngine", memory) in e.trt.used

    source = ast.parse(Path(trt_backend.__file__).read_text())
    module_names = {n.attr for n in ast.walk(source) if isinstance(n, ast.Attribute)
                    and isinstance(n.value, ast.Name) and n.value.id == "trt"}
    assert module_names and all(has(v, "module", name) for v in API for name in module_names), module_names


# ---------------------------------------------------------------------- precision per version
@pytest.mark.parametrize("version", WEAKLY_TYPED)
def test_fp16_and_int8_are_builder_flags_before_11(env, version):
    e = env(version)
    backend, _ = e.run(fp16=True)
    assert e.built()[0][1] == ["FP16"]
    assert backend.effective_settings()["layer_precisions"] == {"FP16": 1, "FP32": 1}  # read, not echoed


def test_tensorrt_11_refuses_precision_flags_before_building(env):
    e = env("11.4.1")
    with pytest.raises(AgentError, match=r"TensorRT 11.4.1 builds strongly typed networks only: fp16 = true") as info:
        e.run(fp16=True)
    assert info.value.category == "backend" and "\n" not in info.value.message
    assert e.built() == [] and not any(x[0] == "create_network" for x in e.trt.log)
    with pytest.raises(AgentError, match="no weakly typed networks"):
        e.run(strongly_typed=False)


@pytest.mark.parametrize("version, flags", [("10.3.0", ["STRONGLY_TYPED"]), ("11.4.1", [])])
def test_strongly_typed_networks(env, version, flags):
    e = env(version)
    backend, _ = e.run(strongly_typed=True)
    (create,) = [x for x in e.trt.log if x[0] == "create_network"]
    assert create[1] == flags and e.built()[0][1] == []  # no precision flags
    assert backend.effective_settings()["strongly_typed"] is True


@pytest.mark.parametrize("settings, needle", [
    ({"strongly_typed": True}, "strongly_typed = true needs TensorRT 10"),
    ({"builder_optimization_level": 4}, "builder_optimization_level needs TensorRT 8.6"),
    ({"gpu_fallback": False}, "gpu_fallback applies to DLA builds only"),
])
def test_settings_an_old_tensorrt_cannot_honour_are_one_line_errors(env, settings, needle):
    e = env("8.5.2.2")
    with pytest.raises(AgentError, match=needle):
        e.run(**settings)
    assert e.built() == []


def test_builder_optimization_level_on_86(env):
    e = env("8.6.2.3")
    e.run(builder_optimization_level=5)
    assert ("IBuilderConfig", "builder_optimization_level") in e.trt.used


# ---------------------------------------------------------------------- profiles and dynamic shapes
def _dynamic_onnx(path: Path) -> str:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "dyn", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize("version", ALL)
def test_a_dynamic_input_without_a_shape_is_refused_before_the_build(env, tmp_path, version):
    e = env(version)
    model = _dynamic_onnx(tmp_path / "dyn.onnx")
    with pytest.raises(AgentError) as info:
        TensorRTBackend().prepare(model, e.settings(), None)
    assert info.value.category == "input" and "\n" not in info.value.message
    assert info.value.message.startswith("input 'x' has a dynamic shape [-1, 4] and TensorRT needs an optimization "
                                         "profile for it: give its shape in the plan ([models.inputs] shapes")
    assert e.built() == []


def test_the_profile_comes_from_the_plan_shape_and_the_profile_setting(env, tmp_path):
    e = env("10.3.0")
    model = _dynamic_onnx(tmp_path / "dyn.onnx")
    backend, first = e.run(model=model, shapes={"x": [8, 4]})
    assert ("set_shape", "x", [8, 4], [8, 4], [8, 4]) in e.trt.log
    assert backend.outputs()[0].shape == (8, 4)
    _, wide = e.run(model=model, shapes={"x": [8, 4]}, profile={"x": {"min": [1, 4], "max": [32, 4]}})
    assert ("set_shape", "x", [1, 4], [8, 4], [32, 4]) in e.trt.log
    assert wide["cache"] == "miss" and wide["key"] != first["key"]  # the profile is part of the cache key
    with pytest.raises(AgentError, match=r"min <= opt <= max"):
        e.run(model=model, shapes={"x": [64, 4]}, profile={"x": {"min": [1, 4], "max": [32, 4]}})


def test_a_shape_outside_a_prebuilt_engines_profile_is_an_input_error(env, tmp_path):
    e = env("10.3.0")
    model = _dynamic_onnx(tmp_path / "dyn.onnx")
    backend = TensorRTBackend()
    s = e.settings(profile={"x": {"min": [1, 4], "max": [4, 4]}})
    backend.prepare(model, s, {"x": [2, 4]})
    backend.load(model, s)
    with pytest.raises(AgentError, match=r"input 'x': shape \[9, 4\] is outside the engine's optimization profile "
                                         r"\(min \[1, 4\], max \[4, 4\]\)"):
        backend.set_inputs({"x": np.zeros((9, 4), np.float32)})


# ---------------------------------------------------------------------- bad input: engines and INT8
@pytest.mark.parametrize("built_by, cc, needle", [
    ("8.6.2.3", (8, 7), "expecting library version 10.3.0 got 8.6.2.3"),
    ("10.3.0", (7, 2), "expecting compute 8.7 got compute 7.2"),
])
def test_an_engine_built_for_another_tensorrt_or_gpu_is_a_one_line_error(env, tmp_path, built_by, cc, needle):
    e = env("10.3.0")
    engine = tmp_path / "old.engine"
    engine.write_bytes(engine_bytes(built_by, cc))
    backend = TensorRTBackend()
    assert backend.prepare(str(engine), e.settings()) is None  # nothing to build
    with pytest.raises(AgentError) as info:
        backend.load(str(engine), e.settings())
    message = info.value.message
    assert info.value.category == "model" and "\n" not in message
    assert message.startswith("TensorRT 10.3.0 cannot load the engine old.engine: it was built by another TensorRT "
                              "version or for another GPU (this device: Orin, compute capability 8.7)")
    assert needle in message and "give hilbench the .onnx" in message


def test_a_cached_engine_the_runtime_refuses_is_dropped(env, monkeypatch):
    e = env("10.3.0")
    _, info = e.run()
    Path(info["path"]).write_bytes(b"not an engine")
    with pytest.raises(AgentError, match="was removed from the cache: run again to rebuild it"):
        e.run()
    assert not Path(info["path"]).exists()
    _, again = e.run()
    assert again["cache"] == "miss" and len(e.built()) == 2


@pytest.mark.parametrize("version", ALL)
def test_asymmetric_int8_is_refused_before_the_build(env, version):
    e = env(version)
    with pytest.raises(AgentError) as info:
        e.run(model=INT8_ASYMMETRIC)
    message = info.value.message
    assert info.value.category == "model" and "\n" not in message
    assert message.startswith("digits_cnn_int8.onnx has asymmetric INT8 quantization (")
    assert "quantize it symmetrically" in message and "--for tensorrt" in message
    assert e.built() == []


def test_without_onnx_on_the_device_tensorrts_parser_error_is_rephrased(env, monkeypatch):
    e = env("8.6.2.3")
    monkeypatch.setattr(trt_backend, "asymmetric_zero_points", lambda path: None)
    with pytest.raises(AgentError) as info:
        e.run(model=INT8_ASYMMETRIC)
    assert info.value.message.startswith("digits_cnn_int8.onnx has asymmetric INT8 quantization (a Q/DQ zero point is "
                                         "not 0), which TensorRT refuses: quantize it symmetrically")
    assert "TensorRT only supports symmetric quantization" in info.value.message and e.built() == []


def test_a_truncated_onnx_is_a_parse_error(env, tmp_path):
    e = env("10.3.0")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(Path(FP32).read_bytes()[:3000])
    with pytest.raises(AgentError, match=r"TensorRT cannot parse bad.onnx: ") as info:
        e.run(model=str(bad))
    assert info.value.category == "model"


# ---------------------------------------------------------------------- DLA
@pytest.mark.parametrize("version", ["8.6.2.3", "10.3.0"])
def test_dla_core_with_gpu_fallback(env, version):
    e = env(version)
    backend, _ = e.run(dla_core=1, fp16=True)
    (build,) = e.built()
    assert build[1] == ["FP16", "GPU_FALLBACK"] and build[2] == "DLA" and build[3] == 1
    assert ("deserialize", 1) in e.trt.log  # the runtime's DLA core too
    eff = backend.effective_settings()
    assert eff["dla_core"] == 1 and eff["gpu_fallback"] is True
    assert eff["layer_devices"] == {"GPU": 2, "DLA": 1}  # the DLA subgraph runs as a foreign node
    placement = {layer["name"]: layer["device"] for layer in eff["layer_placement"]}
    assert placement["{ForeignNode[conv1...relu2]}"] == "DLA" and placement["fc"] == "GPU"


def test_dla_without_fallback_and_on_tensorrt_11(env):
    e = env("10.3.0")
    e.run(dla_core=0, fp16=True, gpu_fallback=False)
    assert e.built()[0][1] == ["FP16"]
    e11 = env("11.4.1")
    e11.run(dla_core=0)  # strongly typed: the model's types decide; no precision flag needed
    assert e11.built()[0][1] == ["GPU_FALLBACK"] and e11.built()[0][2] == "DLA"


@pytest.mark.parametrize("settings, needle", [
    ({"dla_core": 2, "fp16": True}, "setting dla_core = 2 but this device has 2 DLA core"),
    ({"dla_core": 0}, "dla_core needs fp16 = true or int8 = true: the DLA runs no FP32 layers"),
])
def test_dla_settings_the_device_cannot_take(env, settings, needle):
    e = env("8.5.2.2")
    with pytest.raises(AgentError, match=needle):
        e.run(**settings)
    assert e.built() == []


# ---------------------------------------------------------------------- CUDA: device, bindings, graphs, sync
def test_the_device_setting_is_honoured(env):
    e = env("10.3.0", gpus=2)
    backend, info = e.run(device=1)
    assert "cudaSetDevice 1" in e.gpu.calls and backend.effective_settings()["gpu"] == "Orin #1"
    _, other = e.run(device=0)
    assert other["key"] != info["key"]  # the GPU is part of the engine cache key
    with pytest.raises(AgentError, match=r"setting device = 3 but this device has 2 CUDA device\(s\)"):
        e.run(device=3)


@pytest.mark.parametrize("bindings, name", [("cuda-python", "cuda-python 12.6.2"), ("cudart", "cuda-python 12.2.0"),
                                            ("pycuda", "pycuda 2024.1")])
def test_cuda_python_first_then_its_old_layout_then_pycuda(env, bindings, name):
    e = env("8.5.2.2", bindings=bindings)
    backend, _ = e.run()
    assert backend.effective_settings()["cuda_bindings"] == name
    assert backend.take_gpu_ns() == [e.gpu.kernel_ns] * 3
    (out,) = backend.outputs()
    assert np.allclose(out, backend.arrays["input"].sum(), rtol=1e-5)
    backend.close()
    if bindings == "pycuda":
        assert "make_context 0" in e.gpu.calls and "context.pop" in e.gpu.calls


def test_no_cuda_bindings_is_a_one_line_error_saying_what_to_install(env, monkeypatch):
    e = env("10.3.0")
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart", "pycuda", "pycuda.driver"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(AgentError, match=r"no CUDA bindings for Python on this device: .*install cuda-python"):
        e.run()
    info = TensorRTBackend.probe()
    assert info["available"] is False and "cuda-python" in info["reason"]


@pytest.mark.parametrize("sync, waits", [("stream", "cudaStreamSynchronize"), ("event", "cudaEventSynchronize")])
def test_each_invoke_is_timed_with_events_and_waits_as_asked(env, sync, waits):
    e = env("10.3.0")
    backend, _ = e.run(sync=sync, invokes=0)
    e.gpu.calls.clear()
    backend.invoke()
    assert e.gpu.calls == ["cudaEventRecord", "execute_async_v3", "cudaEventRecord", waits]
    assert backend.effective_settings()["sync"] == sync


def test_without_gpu_time_no_events_are_recorded(env):
    e = env("10.3.0")
    backend, _ = e.run(gpu_time=False, invokes=0)
    e.gpu.calls.clear()
    backend.invoke()
    assert e.gpu.calls == ["execute_async_v3", "cudaStreamSynchronize"]
    assert backend.take_gpu_ns() is None and backend.effective_settings()["gpu_time"] is None


def test_a_cuda_graph_is_captured_once_and_launched(env):
    e = env("10.3.0")
    backend, _ = e.run(cuda_graph=True, invokes=0)
    assert e.gpu.calls.count("cudaStreamBeginCapture") == 1 and e.gpu.calls.count("cudaGraphInstantiate") == 1
    e.gpu.calls.clear()
    backend.invoke()
    backend.invoke()
    assert "execute_async_v3" not in e.gpu.calls and e.gpu.calls.count("cudaGraphLaunch") == 2
    assert backend.take_gpu_ns()[-2:] == [e.gpu.kernel_ns] * 2
    (out,) = backend.outputs()
    assert np.allclose(out, backend.arrays["input"].sum(), rtol=1e-5)  # the graph ran the real work
    assert backend.effective_settings()["cuda_graph"] is True
    backend.close()
    assert "cudaGraphExecDestroy" in e.gpu.calls


def test_cuda_graphs_need_cuda_python(env):
    e = env("10.3.0", bindings="pycuda")
    with pytest.raises(AgentError, match="cuda_graph = true needs cuda-python"):
        e.run(cuda_graph=True)


# ---------------------------------------------------------------------- prebuilt engines, probe
def test_a_prebuilt_engine_without_detailed_layer_info_says_so(env, tmp_path):
    e = env("8.5.2.2")
    engine = tmp_path / "m.plan"
    engine.write_bytes(engine_bytes("8.5.2.2", (8, 7), verbosity="LAYER_NAMES_ONLY"))
    backend, info = e.run(model=str(engine))
    assert info is None and e.built() == []
    eff = backend.effective_settings()
    assert eff["engine"] == "file" and eff["layers"] == 1 and eff["layer_precisions"] is None
    assert "profilingVerbosity=detailed" in eff["layer_info"]
    assert "fp16" not in eff and "int8" not in eff  # nothing is echoed from the request


@pytest.mark.parametrize("version", ALL)
def test_probe_names_the_gpu(env, version):
    env(version)
    info = TensorRTBackend.probe()
    assert info == {"available": True, "version": version, "gpu": "Orin", "compute_capability": "8.7",
                    "gpu_count": 1, "cuda_bindings": "cuda-python 12.6.2"}


def test_probe_refuses_a_tensorrt_older_than_85(monkeypatch, env):
    e = env("8.5.2.2")
    monkeypatch.setitem(e.trt.__dict__, "__version__", "8.4.1.5")
    info = TensorRTBackend.probe()
    assert info["available"] is False and "older than 8.5" in info["reason"]


# ---------------------------------------------------------------------- the real thing
@pytest.mark.hardware("tensorrt")
def test_real_tensorrt_builds_caches_and_times(tmp_path):
    """On a Jetson or a GPU machine with TensorRT and cuda-python: the digits CNN builds, the second load hits the
    cache, GPU time is at most the host time."""
    import time

    settings = {"cache_dir": str(tmp_path / "cache"), "fp16": True}
    for expected in ("miss", "hit"):
        backend = TensorRTBackend()
        info = backend.prepare(FP32, settings)
        assert info["cache"] == expected
        backend.load(FP32, settings)
        backend.set_inputs(generate_inputs(backend.input_specs()))
        host = []
        for _ in range(100):
            t0 = time.monotonic_ns()
            backend.invoke()
            host.append(time.monotonic_ns() - t0)
        gpu = backend.take_gpu_ns()
        assert len(gpu) == 100 and np.median(gpu) <= np.median(host)
        assert backend.outputs()[0].shape == (1, 10)
        assert backend.effective_settings()["layer_precisions"]
        backend.close()


# ---------------------------------------------------------------------- through the agent and the store
_SITE = '''
import sys
sys.path.insert(0, {tests!r})
from support.fake_tensorrt import FakeGPU, fake_tensorrt, install_cuda_python


class _Patch:
    def setitem(self, mapping, key, value):
        mapping[key] = value


gpu = FakeGPU(kernel_ns=4_000)
sys.modules["tensorrt"] = fake_tensorrt({version!r}, gpu)
install_cuda_python(_Patch(), gpu)
'''


@pytest.mark.slow
def test_end_to_end_the_cache_hit_shows_on_the_second_run_and_gpu_time_is_stored(tmp_path):
    """`hilbench run` twice on a target whose Python has the TensorRT 10.3 stand-in (a sitecustomize on the target's
    own interpreter wrapper): the real agent builds the engine, then finds it in its cache; the store keeps the
    build apart from the load, and every sample's GPU time beside its host latency."""
    from harness import open_store
    from harness.cli import main

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_SITE.format(tests=str(Path(__file__).parent), version="10.3.0"))
    wrapper = tmp_path / "python-with-trt"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    targets = tmp_path / "targets"
    targets.mkdir()
    (targets / "jetson.toml").write_text(f'transport = "local"\npython = "{wrapper}"\n'
                                         f'env = {{ HILBENCH_CACHE = "{tmp_path / "device-cache"}" }}\n')
    plan = tmp_path / "plan.toml"
    plan.write_text(f"""
name = "trt"
targets = ["jetson"]
[[models]]
path = "{FP32}"
backends = ["tensorrt"]
[backends.tensorrt]
workspace_mb = 256
[policy]
warmup = 3
timed = {{ count = 25 }}
percentiles = [50]
telemetry = false
""")
    store_dir = tmp_path / "res"
    for _ in range(2):
        assert main(["run", str(plan), "--store", str(store_dir), "--targets-dir", str(targets), "--quiet"]) == 0
    store = open_store(store_dir)
    runs = store.runs()
    assert list(runs["status"]) == ["ok", "ok"], runs["error_message"].tolist()
    results = [json.loads(r) for r in runs["result"]]
    assert [r["build"]["cache"] for r in results] == ["miss", "hit"]
    assert all(r["build"]["duration_ns"] > 0 and r["load_ns"] > 0 for r in results)
    eff = json.loads(runs["effective_settings"].iloc[1])
    assert eff["engine"] == "cache" and eff["layer_precisions"] == {"FP32": 2} and eff["tensorrt"] == "10.3.0"
    samples = store.samples(phase="timed")
    # the stand-in GPU takes 4 us an inference; the agent clamps a GPU time to its host latency
    assert len(samples) == 50 and (samples["gpu_ns"] == np.minimum(samples["latency_ns"], 4_000)).all()


def test_the_host_refuses_asymmetric_int8_for_tensorrt_before_anything_runs(tmp_path):
    from harness.config.plan import expand_jobs, load_plan
    from harness.config.targets import LOCAL
    from harness.errors import ConfigError

    plan = tmp_path / "plan.toml"
    plan.write_text(f'[[models]]\npath = "{INT8_ASYMMETRIC}"\nname = "q"\nbackends = ["tensorrt", "onnxruntime"]\n')
    with pytest.raises(ConfigError) as info:
        expand_jobs(load_plan(plan), {"local": LOCAL})
    message = str(info.value)
    assert message.startswith(f"{plan}: model 'q' (digits_cnn_int8.onnx) has asymmetric INT8 quantization (")
    assert "TensorRT refuses" in message and "leave tensorrt out for it" in message and "\n" not in message
    plan.write_text(f'[[models]]\npath = "{INT8_ASYMMETRIC}"\nname = "q"\nbackends = ["onnxruntime"]\n')
    assert len(expand_jobs(load_plan(plan), {"local": LOCAL})) == 1  # other runtimes take it
