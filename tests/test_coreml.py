"""The Core ML backend. Conversion (coremltools from PyTorch to an ML program) and spec reading run here on Linux
with the real coremltools; prediction, compilation and the compute plan need macOS, so they run against
stand-ins shaped like coremltools' API (``compile_model(model, destination_path) -> path``,
``CompiledMLModel(path, compute_units=)`` with ``predict(dict)``, ``MLComputePlan.load_from_path(path,
compute_units=)`` with the real ``MLModelStructure*``/``MLComputePlanDeviceUsage``/``MLComputePlanCost``
dataclasses and ``MLComputeDevice`` subclasses). The real thing is a hardware test (``--hardware coreml``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hilbench_agent.backends import coreml as coreml_backend
from hilbench_agent.backends.base import generate_inputs
from hilbench_agent.backends.coreml import CoreMLBackend, spec_inputs
from hilbench_agent.protocol import AgentError
from support.helpers import missing_in_ci

MODELS = Path(__file__).resolve().parents[1] / "harness" / "samples" / "models"


def _ct():
    try:
        import coremltools as ct
        import torch  # noqa: F401
    except ImportError as exc:
        missing_in_ci("the Core ML conversion tests", f"{exc} (pip install -e '.[dev]' installs coremltools and torch)")
    return ct


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Two ML programs converted here: the digits CNN (a multi-array input) and a small image model (RGB)."""
    ct = _ct()
    import torch

    folder = tmp_path_factory.mktemp("coreml")
    digits = torch.jit.load(str(MODELS / "digits_cnn_fp32.pt"))
    ct.convert(digits, inputs=[ct.TensorType(name="input", shape=(1, 8, 8, 1))], convert_to="mlprogram",
               minimum_deployment_target=ct.target.macOS13).save(str(folder / "digits.mlpackage"))

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, image):
            return self.fc(self.conv(image).mean((2, 3)))

    torch.manual_seed(0)
    traced = torch.jit.trace(Tiny().eval(), torch.rand(1, 3, 24, 32))
    ct.convert(traced, inputs=[ct.ImageType(name="image", shape=(1, 3, 24, 32), color_layout=ct.colorlayout.RGB)],
               convert_to="mlprogram", minimum_deployment_target=ct.target.macOS13).save(str(folder / "image.mlpackage"))
    ct.convert(traced, inputs=[ct.ImageType(name="image", shape=(1, 3, 24, 32), color_layout=ct.colorlayout.BGR)],
               convert_to="mlprogram", minimum_deployment_target=ct.target.macOS13).save(str(folder / "bgr.mlpackage"))
    return folder


@pytest.mark.slow  # the module's conversion (coremltools, ~8 s once)
def test_spec_inputs_of_converted_models(converted):
    ct = _ct()
    specs, images = spec_inputs(ct.utils.load_spec(str(converted / "digits.mlpackage")))
    # coremltools 8+ for macOS 13 makes an FP16 program with an FP16 input: the spec says so
    assert [(s.name, s.shape, s.dtype) for s in specs] == [("input", [1, 8, 8, 1], "float16")] and images == {}
    specs, images = spec_inputs(ct.utils.load_spec(str(converted / "image.mlpackage")))
    # an image is generated as the image it is (height x width x 3 bytes), not as a scalar
    assert [(s.name, s.shape, s.dtype) for s in specs] == [("image", [24, 32, 3], "uint8")] and images == {"image": 20}
    arrays = generate_inputs(specs, seed=3)
    assert arrays["image"].shape == (24, 32, 3) and arrays["image"].dtype == np.uint8
    assert len(np.unique(arrays["image"])) > 100  # noise over the whole byte range, not one value
    picture = coreml_backend._image(arrays["image"], images["image"])
    assert picture.size == (32, 24) and picture.mode == "RGB"
    _, bgr = spec_inputs(ct.utils.load_spec(str(converted / "bgr.mlpackage")))
    assert bgr == {"image": 30}


@pytest.mark.slow
def test_grayscale_and_float16_images():
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    for name, space in (("g", 10), ("h", 40)):
        inp = spec.description.input.add()
        inp.name = name
        inp.type.imageType.width, inp.type.imageType.height, inp.type.imageType.colorSpace = 5, 7, space
    specs, images = spec_inputs(spec)
    assert [(s.shape, s.dtype) for s in specs] == [([7, 5], "uint8"), ([7, 5], "float16")]
    arrays = generate_inputs(specs)
    assert coreml_backend._image(arrays["g"], 10).mode == "L"
    assert coreml_backend._image(arrays["h"], 40).mode == "F"


def test_a_string_input_cannot_be_generated():
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    inp = spec.description.input.add()
    inp.name = "text"
    inp.type.stringType.SetInParent()
    with pytest.raises(AgentError, match="input 'text' is a stringType, which hilbench cannot generate"):
        spec_inputs(spec)


# ---------------------------------------------------------------------- macOS, as a stand-in
class MacOS:
    """coremltools' macOS-only calls, as stand-ins: what compile_model, CompiledMLModel and MLComputePlan get."""

    def __init__(self, monkeypatch, ct, *, plan: bool = True, compiler: bool = True) -> None:
        self.compiled: list[str] = []
        self.loaded: list[tuple[str, str]] = []
        self.predicted: list[dict] = []
        outer = self
        monkeypatch.setattr(sys, "platform", "darwin")
        monkeypatch.setattr(coreml_backend.platform, "mac_ver", lambda: ("14.5", ("", "", ""), "arm64"))
        monkeypatch.setattr(coreml_backend.platform, "machine", lambda: "arm64")

        def compile_model(model, destination_path=None):
            outer.compiled.append(str(model))
            Path(destination_path).mkdir(parents=True)
            (Path(destination_path) / "model.mil").write_text("program")
            return destination_path

        class CompiledMLModel:
            def __init__(self, path, compute_units=ct.ComputeUnit.ALL, function_name=None, optimization_hints=None,
                         asset=None):
                assert isinstance(compute_units, ct.ComputeUnit)
                assert Path(path, "model.mil").is_file()
                outer.loaded.append((path, compute_units.name))

            def predict(self, data, state=None):
                outer.predicted.append(data)
                return {"var_1": np.zeros((1, 2), np.float32)}

        if compiler:
            monkeypatch.setattr(ct.models.utils, "compile_model", compile_model)
            monkeypatch.setattr(ct.models, "CompiledMLModel", CompiledMLModel)
        else:
            monkeypatch.delattr(ct.models, "CompiledMLModel")

            class MLModel:
                def __init__(self, path, compute_units=None):
                    outer.loaded.append((path, compute_units.name))

                predict = CompiledMLModel.predict
            monkeypatch.setattr(ct.models, "MLModel", MLModel)
        from coremltools.models import compute_plan as cp

        if plan:
            monkeypatch.setattr(cp.MLComputePlan, "load_from_path", classmethod(lambda cls, path, compute_units:
                                                                                  _plan(cp, compute_units)))


def _device(cp_module, name):
    from coremltools.models import compute_device

    return object.__new__(getattr(compute_device, name))  # the real classes; their proxies exist on macOS only


def _plan(cp, units):
    """A compute plan of three ML program operations: two the Neural Engine runs, one the CPU."""
    def op(name, out):
        return cp.MLModelStructureProgramOperation(inputs={}, operator_name=name, blocks=[], __proxy__=None,
                                                   outputs=[cp.MLModelStructureProgramNamedValueType(name=out, type=None)])

    ops = [op("conv", "c1"), op("reduce_mean", "m1"), op("linear", "y")]
    block = cp.MLModelStructureProgramBlock(inputs=[], operations=ops, output_names=["y"])
    program = cp.MLModelStructureProgram(functions={"main": cp.MLModelStructureProgramFunction(inputs=[], block=block)})
    structure = cp.MLModelStructure(neuralnetwork=None, program=program, pipeline=None)
    ne, cpu, gpu = (_device(cp, n) for n in ("MLNeuralEngineComputeDevice", "MLCPUComputeDevice", "MLGPUComputeDevice"))
    usage = {"conv": (ne, [cpu, gpu, ne]), "reduce_mean": (cpu, [cpu, gpu]), "linear": (ne, [cpu, ne])}
    cost = {"conv": 0.7, "reduce_mean": 0.1, "linear": 0.2}

    class Plan:
        model_structure = structure

        def get_compute_device_usage_for_mlprogram_operation(self, operation):
            preferred, supported = usage[operation.operator_name]
            return cp.MLComputePlanDeviceUsage(preferred_compute_device=preferred, supported_compute_devices=supported)

        def get_estimated_cost_for_mlprogram_operation(self, operation):
            return cp.MLComputePlanCost(weight=cost[operation.operator_name])

    assert units.name in ("ALL", "CPU_AND_NE")
    return Plan()


@pytest.mark.slow  # the module's conversion (coremltools, ~8 s once)
def test_compiled_apart_cached_and_planned(converted, monkeypatch, tmp_path):
    ct = _ct()
    mac = MacOS(monkeypatch, ct)
    model = str(converted / "image.mlpackage")
    settings = {"compute_units": "CPU_AND_NE", "cache_dir": str(tmp_path / "cache")}
    backend = CoreMLBackend()
    info = backend.prepare(model, settings)
    assert info["cache"] == "miss" and mac.compiled == [model] and Path(info["path"]).name.endswith(".mlmodelc")
    backend.load(model, settings)
    assert mac.loaded == [(info["path"], "CPU_AND_NE")]  # the compiled model, loaded apart
    (spec,) = backend.input_specs()
    backend.set_inputs(generate_inputs([spec]))
    backend.invoke()
    fed = mac.predicted[-1]["image"]
    assert fed.mode == "RGB" and fed.size == (32, 24)  # a PIL image, as Core ML takes image inputs
    assert backend.outputs()[0].shape == (1, 2)
    eff = backend.effective_settings()
    assert eff["compute_units"] == "CPU_AND_NE" and eff["compiled"] == "compiled" and eff["macos"] == "14.5"
    plan = eff["compute_plan"]
    assert plan["available"] and plan["operations"] == 3 and plan["ops_by_unit"] == {"NE": 2, "CPU": 1}
    assert plan["cost_by_unit"] == {"NE": pytest.approx(0.9), "CPU": pytest.approx(0.1)}
    assert plan["ops"][0] == {"op": "conv", "output": "c1", "unit": "NE", "supported": ["CPU", "GPU", "NE"],
                              "cost": 0.7}
    offload = backend.offload()  # the per-run verdict, from the same plan
    assert (offload["accelerator"], offload["nodes_total"], offload["nodes_accelerated"], offload["nodes_cpu"],
            offload["partitions"], offload["cpu_ops"]) == ("ANE", 3, 2, 1, 2, ["reduce_mean"])

    again = CoreMLBackend()
    hit = again.prepare(model, settings)
    assert hit["cache"] == "hit" and hit["key"] == info["key"] and mac.compiled == [model]  # compiled once
    again.load(model, settings)
    assert again.effective_settings()["compiled"] == "cache"


@pytest.mark.slow  # the module's conversion (coremltools, ~8 s once)
def test_without_compute_plan_or_cache(converted, monkeypatch, tmp_path):
    ct = _ct()
    MacOS(monkeypatch, ct, plan=False)
    model = str(converted / "digits.mlpackage")
    backend = CoreMLBackend()
    settings = {"model_cache": False, "compute_plan": True}
    assert backend.prepare(model, settings)["cache"] == "off"
    backend.load(model, settings)
    plan = backend.effective_settings()["compute_plan"]
    assert plan["available"] is False and "macOS 14.4" in plan["reason"]  # the real MLComputePlan, no proxy here
    offload = backend.offload()
    assert offload["nodes_total"] is None and offload["source"].startswith("no Core ML compute plan: MLComputePlan")


@pytest.mark.slow  # the module's conversion (coremltools, ~8 s once)
def test_a_coremltools_that_cannot_compile_apart_says_so(converted, monkeypatch):
    ct = _ct()
    mac = MacOS(monkeypatch, ct, compiler=False)
    model = str(converted / "digits.mlpackage")
    backend = CoreMLBackend()
    assert backend.prepare(model, {}) is None and "compile and load are timed together" in backend._build["note"]
    backend.load(model, {})
    assert mac.loaded == [(model, "ALL")]
    assert backend.effective_settings()["compiled"] == "inside MLModel"


@pytest.mark.slow  # the module's conversion (coremltools, ~8 s once)
def test_off_macos_every_path_says_macos(converted):
    assert CoreMLBackend.probe() == {"available": False, "reason": "Core ML runs on macOS only"}
    with pytest.raises(AgentError, match="Core ML runs on macOS only"):
        CoreMLBackend().prepare(str(converted / "digits.mlpackage"), {})


@pytest.mark.hardware("coreml")
def test_real_core_ml_compiles_caches_and_plans(converted, tmp_path):
    settings = {"cache_dir": str(tmp_path / "cache"), "compute_units": "ALL"}
    for expected in ("miss", "hit"):
        backend = CoreMLBackend()
        assert backend.prepare(str(converted / "image.mlpackage"), settings)["cache"] == expected
        backend.load(str(converted / "image.mlpackage"), settings)
        backend.set_inputs(generate_inputs(backend.input_specs()))
        backend.invoke()
        assert backend.outputs()[0].shape == (1, 2)
        plan = backend.effective_settings()["compute_plan"]
        assert plan["available"] is False or plan["operations"] > 0


# ---------------------------------------------------------------------- hilbench variants: PyTorch -> ML program
@pytest.mark.slow
def test_variants_convert_a_pytorch_model_to_ml_programs(tmp_path, capsys):
    """`hilbench variants model.pt` on the host (Linux here): an FP16 ML program by default, FP32 on request, from
    TorchScript (its hilbench.json says the inputs) and from an exported program; the plan snippet runs the .pt
    on pytorch and the packages on coreml; an existing package is not replaced."""
    ct = _ct()
    from harness.cli import main

    out = tmp_path / "out"
    assert main(["variants", str(MODELS / "digits_cnn_fp32.pt"), "--out", str(out)]) == 0
    package = out / "digits_cnn_fp16.mlpackage"
    spec = ct.utils.load_spec(str(package))
    assert spec.WhichOneof("Type") == "mlProgram"
    specs, _ = spec_inputs(spec)
    assert [(s.name, s.shape) for s in specs] == [("input", [1, 8, 8, 1])] and spec.description.output[0].name == "logits"
    plan = (out / "variants.toml").read_text()
    assert 'name = "digits-cnn-fp16-coreml"' in plan and "digits_cnn_fp16.mlpackage" in plan
    assert 'tags = { precision = "fp16", family = "digits-cnn" }' in plan
    assert "fp16  " in capsys.readouterr().out

    assert main(["variants", str(MODELS / "digits_cnn_fp32.pt2"), "--out", str(tmp_path / "ep"), "--only",
                 "coreml-fp32"]) == 0
    specs, _ = spec_inputs(ct.utils.load_spec(str(tmp_path / "ep" / "digits_cnn_fp32.mlpackage")))
    assert [(s.name, s.shape, s.dtype) for s in specs] == [("input", [1, 8, 8, 1], "float32")]

    before = sorted(p.name for p in out.iterdir())
    (out / "variants.toml").unlink()
    assert main(["variants", str(MODELS / "digits_cnn_fp32.pt"), "--out", str(out)]) == 1
    assert "already exists, not overwriting it" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [n for n in before if n != "variants.toml"]


@pytest.mark.parametrize("args, needle", [
    (["--only", "int8"], "a PyTorch model makes Core ML variants (coreml, coreml-fp32), not 'int8'"),
])
def test_variants_refuse_kinds_a_pytorch_model_cannot_make(tmp_path, capsys, args, needle):
    from harness.cli import main

    assert main(["variants", str(MODELS / "digits_cnn_fp32.pt"), "--out", str(tmp_path), *args]) == 1
    assert needle in capsys.readouterr().err


@pytest.mark.slow
def test_a_torchscript_without_its_shape_file_cannot_be_converted(tmp_path, capsys):
    _ct()
    import torch

    from harness.cli import main

    bare = tmp_path / "bare.pt"
    torch.jit.save(torch.jit.load(str(MODELS / "digits_cnn_fp32.pt")), str(bare))
    assert main(["variants", str(bare), "--out", str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err
    assert "does not say its inputs' shapes" in err and "torch.export (.pt2)" in err
    assert not any((tmp_path / "o").glob("*.mlpackage"))
