"""The committed sample models load and run on this CPU, with onnxruntime and LiteRT.

No torch here: the models are built by ``scripts/build_models.py`` in a venv of its own; this only
checks what is committed under ``harness/samples/models`` (see MODELS.md there).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

MODELS = Path(__file__).resolve().parents[1] / "harness" / "samples" / "models"

DIGITS = [
    "digits_cnn_fp32.onnx",
    "digits_cnn_fp32.tflite",
    "digits_cnn_int8.onnx",
    "digits_cnn_int8.tflite",
]
# MobileNetV2-0.35 at 224x224x3 with random weights (latency only) and a 10-class head (MODELS.md).
MOBILENET = [
    "mobilenet_v2_035_224_fp32.onnx",
    "mobilenet_v2_035_224_int8.onnx",
    "mobilenet_v2_035_224_int8.tflite",
]
ACCURACY_FLOOR = 0.9
#: What the committed sample files may weigh together: the issue asks for a few MB at most.
COMMITTED_BUDGET_BYTES = 4_000_000


def _model(name: str) -> Path:
    path = MODELS / name
    assert path.is_file(), f"{path} missing: run scripts/build_models.py (see MODELS.md)"
    return path


def _onnx_runner(path: Path):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    (out,) = sess.get_outputs()
    assert (inp.name, out.name) == ("input", "logits")
    assert inp.type == "tensor(float)"
    return lambda x: sess.run([out.name], {inp.name: x})[0]


def _tflite_runner(path: Path):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    interp = litert.Interpreter(model_path=str(path))
    interp.allocate_tensors()
    (inp,) = interp.get_input_details()
    (out,) = interp.get_output_details()
    assert interp.get_signature_list() == {
        "serving_default": {"inputs": ["input"], "outputs": ["logits"]}
    }
    if "_int8" in path.name:
        # Fully int8 graphs: int8 input and output with their own (scale, zero_point).
        assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    else:
        assert inp["dtype"] == np.float32 and out["dtype"] == np.float32

    def run(x: np.ndarray) -> np.ndarray:
        if inp["dtype"] == np.int8:
            scale, zp = inp["quantization"]
            x = np.clip(np.round(x / scale) + zp, -128, 127).astype(np.int8)
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        y = interp.get_tensor(out["index"])
        if out["dtype"] == np.int8:
            scale, zp = out["quantization"]
            y = (y.astype(np.float32) - zp) * scale
        return y

    return run


def _runner(path: Path):
    return _onnx_runner(path) if path.suffix == ".onnx" else _tflite_runner(path)


@pytest.fixture(scope="module")
def digits_eval() -> tuple[np.ndarray, np.ndarray]:
    data = np.load(_model("digits_eval.npz"))
    x, y = data["x"], data["y"]
    assert x.dtype == np.float32 and x.shape[1:] == (8, 8, 1)
    assert y.dtype == np.int64 and len(y) == len(x) >= 300
    assert 0.0 <= x.min() and x.max() <= 1.0
    return x, y


def test_calibration_set_shape() -> None:
    x = np.load(_model("digits_calib.npz"))["x"]
    assert x.dtype == np.float32 and x.shape[1:] == (8, 8, 1) and len(x) >= 100


@pytest.mark.parametrize("name", DIGITS)
def test_digits_model_accuracy(name: str, digits_eval) -> None:
    x, y = digits_eval
    run = _runner(_model(name))
    logits = np.concatenate([run(x[i:i + 1]) for i in range(len(x))])
    assert logits.shape == (len(x), 10)
    accuracy = float((logits.argmax(1) == y).mean())
    assert accuracy > ACCURACY_FLOOR, f"{name}: accuracy {accuracy:.4f}"


@pytest.mark.parametrize("name", MOBILENET)
def test_mobilenet_model_output_shape(name: str) -> None:
    run = _runner(_model(name))
    x = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)  # NHWC
    y = run(x)
    assert y.shape == (1, 10)
    assert np.all(np.isfinite(y))


def test_models_md_lists_every_committed_model() -> None:
    text = _model("MODELS.md").read_text()
    for name in DIGITS + MOBILENET + ["digits_eval.npz", "digits_calib.npz"]:
        assert f"`{name}`" in text


def test_committed_models_stay_small() -> None:
    """Every file of the folder that git keeps (not named in its .gitignore) counts."""
    ignored = {line.strip().lstrip("/") for line in _model(".gitignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    kept = [p for p in MODELS.iterdir() if p.is_file() and p.name not in ignored]
    assert {p.name for p in kept} >= set(DIGITS + MOBILENET)
    total = sum(p.stat().st_size for p in kept)
    assert total < COMMITTED_BUDGET_BYTES, f"committed sample files weigh {total / 1e6:.2f} MB"
