"""``hilbench inspect`` on the host: our own Edge-TPU-compiled-format fixture (tests/support/edgetpu_model.py, a
stand-in payload in place of the TPU executable), a plain one, the bundled sample models, a stand-in TensorRT engine
header, Core ML and PyTorch files, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.edgetpu_model import build, write

from harness.cli import main
from harness.prep.inspect import engine_version, inspect_model

MODELS = Path(__file__).resolve().parents[1] / "harness" / "samples" / "models"
pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    return write(tmp_path_factory.mktemp("edgetpu"))


def _json(capsys, *argv):
    assert main(["inspect", *argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_compiled_model_counts_its_tpu_and_cpu_ops(fixtures, capsys):
    compiled, _ = fixtures
    info = _json(capsys, str(compiled))
    assert info["format"] == "tflite"
    assert info["edgetpu"] == {"compiled": True, "ops_tpu": 1, "ops_cpu": 3,
                               "cpu_ops": ["QUANTIZE", "DEQUANTIZE", "LOGISTIC"]}
    assert info["op_histogram"] == {"QUANTIZE": 1, "edgetpu-custom-op": 1, "DEQUANTIZE": 1, "LOGISTIC": 1}
    assert info["inputs"] == [{"name": "input", "shape": [1, 4], "dtype": "float32"}]
    assert [o["name"] for o in info["outputs"]] == ["output"]
    assert info["quantization"]["quantized"] and info["quantization"]["symmetric"] is True
    assert main(["inspect", str(compiled)]) == 0
    table = capsys.readouterr().out
    assert "compiled: 1 edgetpu-custom-op node(s), 3 op(s) on the CPU" in table
    assert "QUANTIZE, DEQUANTIZE, LOGISTIC" in table


def test_several_compiled_subgraphs_and_a_plain_model(fixtures, tmp_path, capsys):
    two = tmp_path / "two.tflite"
    two.write_bytes(build(compiled=True, tpu_ops=2))
    assert inspect_model(two)["edgetpu"] == {"compiled": True, "ops_tpu": 2, "ops_cpu": 3,
                                             "cpu_ops": ["QUANTIZE", "DEQUANTIZE", "LOGISTIC"]}
    info = _json(capsys, str(fixtures[1]))
    assert info["edgetpu"] == {"compiled": False, "ops_tpu": 0, "ops_cpu": 2, "cpu_ops": ["RELU", "LOGISTIC"]}
    assert info["quantization"]["quantized"] is False


@pytest.mark.parametrize("name, ops_total, symmetric", [
    ("digits_cnn_fp32.tflite", 7, None),
    ("digits_cnn_int8.tflite", 7, False),     # TFLite int8: activations carry zero points (-128 at the input)
    ("mobilenet_v2_035_224_int8.tflite", 70, False),
    ("digits_cnn_int8.onnx", 29, False),      # ORT's default QDQ: asymmetric activations
    ("digits_cnn_fp32.onnx", 10, None),
])
def test_bundled_models(name, ops_total, symmetric, capsys):
    info = _json(capsys, str(MODELS / name))
    assert info["ops_total"] == ops_total == sum(info["op_histogram"].values())
    assert info["quantization"]["symmetric"] is symmetric
    if name.endswith(".tflite"):
        assert info["edgetpu"] == {"compiled": False, "ops_tpu": 0, "ops_cpu": ops_total,
                                   "cpu_ops": info["edgetpu"]["cpu_ops"]}
        assert set(info["edgetpu"]["cpu_ops"]) == set(info["op_histogram"])
    else:
        assert "edgetpu" not in info
    if name == "digits_cnn_int8.tflite":
        assert info["inputs"][0]["dtype"] == "int8" and info["inputs"][0]["quantization"]["zero_point"] == [-128]
        assert -128 in info["quantization"]["zero_points"]
    assert main(["inspect", str(MODELS / name)]) == 0
    table = capsys.readouterr().out
    assert table.startswith(str(MODELS / name)) and "ops" in table


def test_inspect_agrees_with_the_tensorrt_check():
    from hilbench_agent.backends.tensorrt import asymmetric_zero_points

    for name in ("digits_cnn_int8.onnx", "mobilenet_v2_035_224_int8.onnx"):
        info = inspect_model(MODELS / name)
        bad = asymmetric_zero_points(str(MODELS / name))
        assert info["quantization"]["symmetric"] is (not bad) is False
        assert info["quantization"]["nonzero_zero_point_tensors"] >= len(bad) > 0


def test_engine_header_version():
    # A stand-in header: bytes 24-26 hold major, minor, patch (NVIDIA/TensorRT#3073); not a real engine.
    head = bytearray(64)
    head[24:27] = bytes([10, 3, 0])
    assert engine_version(bytes(head)) == "10.3.0"
    head[24:27] = bytes([8, 6, 1])
    assert engine_version(bytes(head)) == "8.6.1"
    assert engine_version(bytes(64)) is None
    assert engine_version(b"\xff" * 64) is None


def test_engine_file(tmp_path, capsys):
    engine = tmp_path / "m.engine"
    head = bytearray(256)
    head[24:27] = bytes([8, 5, 2])
    engine.write_bytes(bytes(head))
    info = _json(capsys, str(engine))
    assert info["format"] == "tensorrt-engine" and info["tensorrt_version"] == "8.5.2"
    engine.write_bytes(b"\xee" * 256)
    assert _json(capsys, str(engine))["tensorrt_version"] == "unknown"


@pytest.mark.parametrize("name, content, needle", [
    ("m.tflite", None, "corrupt TFLite flatbuffer"),
    ("m.tflite", b"not a flatbuffer at all", "not a TFLite model"),
    ("m.onnx", b"hello world", "not a readable ONNX model"),
    ("m.pt", b"hello", "not a PyTorch archive"),
    ("m.txt", b"x", "unknown model format .txt"),
    ("m.onnx", b"", "empty file"),
    ("gone.onnx", "missing", "model file not found"),
    ("m.engine", b"\x00" * 8, "too short to be a TensorRT engine"),
    ("m.ort", b"\x00" * 64, "ORT format"),
])
def test_bad_input_is_one_line_naming_the_file(tmp_path, capsys, name, content, needle):
    path = tmp_path / name
    if content is None:
        path.write_bytes((MODELS / "digits_cnn_fp32.tflite").read_bytes()[:400])  # truncated
    elif content != "missing":
        path.write_bytes(content)
    assert main(["inspect", str(path)]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and len(err.splitlines()) == 1, err
    assert str(path) in err and needle in err


@pytest.mark.slow
def test_core_ml_spec_inputs(tmp_path, capsys):
    ct = pytest.importorskip("coremltools")
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

    builder = NeuralNetworkBuilder([("x", datatypes.Array(1, 4))], [("y", datatypes.Array(1, 4))])
    builder.add_activation("relu", "RELU", "x", "y")
    ct.utils.save_spec(builder.spec, str(tmp_path / "tiny.mlmodel"))
    info = _json(capsys, str(tmp_path / "tiny.mlmodel"))
    assert info["format"] == "coreml" and info["coreml_type"] == "neuralNetwork"
    assert info["inputs"] == [{"name": "x", "shape": [1, 4], "dtype": "double"}]  # the builder's default
    assert info["op_histogram"] == {"activation": 1}
    (tmp_path / "bad.mlmodel").write_bytes(b"\x01\x02garbage")
    assert main(["inspect", str(tmp_path / "bad.mlmodel")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a readable Core ML model" in err


@pytest.mark.slow
def test_pytorch_files(capsys):
    pytest.importorskip("torch")
    info = _json(capsys, str(MODELS / "digits_cnn_fp32.pt2"))
    assert info["format"] == "torch-export"
    assert info["inputs"] == [{"name": "input", "shape": [1, 8, 8, 1], "dtype": "float32"}]
    assert info["outputs"][0]["shape"] == [1, 10]
    assert info["ops_total"] == 10
    info = _json(capsys, str(MODELS / "digits_cnn_fp32.pt"))
    assert info["format"] == "torchscript" and info["op_histogram"]["aten::relu"] == 3
