"""Issue 12, item 2: ``hilbench variants --for tensorrt`` writes symmetric INT8 Q/DQ (every zero point 0), read back
here with ``onnx``; ``inspect``, the host's plan check and the TensorRT backend's own check all agree on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.config.plan import expand_jobs, load_plan
from harness.config.targets import LOCAL
from harness.errors import ConfigError
from harness.prep.inspect import inspect_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
MODELS = Path(__file__).resolve().parents[1] / "harness" / "samples" / "models"


@pytest.mark.slow
def test_variants_for_tensorrt_write_symmetric_int8(tmp_path, capsys):
    from hilbench_agent.backends.tensorrt import _check_symmetric_onnx, asymmetric_zero_points
    from hilbench_agent.protocol import AgentError
    from onnx import numpy_helper

    out = tmp_path / "v"
    assert main(["variants", str(MODELS / "digits_cnn_fp32.onnx"), "--calibration", str(MODELS / "digits_calib.npz"),
                 "--for", "tensorrt", "--only", "int8", "--out", str(out)]) == 0
    assert "symmetric" in capsys.readouterr().out
    model_path = out / "digits_cnn_int8_sym.onnx"
    model = onnx.load(str(model_path))
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq) > 10
    zero_points = [consts[n.input[2]] for n in qdq if len(n.input) > 2 and n.input[2]]
    assert len(zero_points) == len(qdq)
    assert all(z.dtype in (np.int8, np.int32) and not z.any() for z in zero_points)  # every zero point 0
    assert any(z.dtype == np.int8 for z in zero_points)
    # inspect, the TensorRT backend and the host's plan check say the same, here and on the asymmetric sample
    assert inspect_model(model_path)["quantization"]["symmetric"] is True
    assert asymmetric_zero_points(str(model_path)) == []
    _check_symmetric_onnx(str(model_path))
    with pytest.raises(AgentError, match="asymmetric INT8"):
        _check_symmetric_onnx(str(MODELS / "digits_cnn_int8.onnx"))
    assert inspect_model(MODELS / "digits_cnn_int8.onnx")["quantization"]["symmetric"] is False
    for path, ok in ((model_path, True), (MODELS / "digits_cnn_int8.onnx", False)):
        plan = tmp_path / "plan.toml"
        plan.write_text(f'name = "t"\n[[models]]\npath = "{path}"\nbackends = ["tensorrt"]\n')
        if ok:
            assert len(expand_jobs(load_plan(plan), {"local": LOCAL})) == 1
        else:
            with pytest.raises(ConfigError, match="asymmetric INT8"):
                expand_jobs(load_plan(plan), {"local": LOCAL})
    # still the same classifier
    x = np.load(MODELS / "digits_calib.npz")["x"][:50].astype(np.float32)
    fp32 = ort.InferenceSession(str(MODELS / "digits_cnn_fp32.onnx"), providers=["CPUExecutionProvider"])
    int8 = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    agree = np.mean([np.argmax(fp32.run(None, {"input": x[i:i + 1]})[0]) ==
                     np.argmax(int8.run(None, {"input": x[i:i + 1]})[0]) for i in range(len(x))])
    assert agree >= 0.9


def test_variants_for_refusals(tmp_path, capsys):
    assert main(["variants", str(MODELS / "digits_cnn_fp32.pt2"), "--for", "tensorrt", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "--for tensorrt makes ONNX variants" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())
    with pytest.raises(SystemExit) as exc:
        main(["variants", str(MODELS / "digits_cnn_fp32.onnx"), "--for", "openvino"])
    assert exc.value.code == 2
