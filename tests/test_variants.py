"""hilbench variants: FP16 and calibrated INT8 variants of the bundled digits model, whose plan
snippet runs, and whose accuracy on the device stays close to the FP32 model's."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from harness import open_store
from harness.analysis.accuracy import score_runs
from harness.cli import main
from harness.errors import AnalysisError, ModelError
from harness.prep.variants import make_variants

MODELS = Path(__file__).resolve().parents[1] / "harness" / "samples" / "models"
pytestmark = pytest.mark.skipif(not (MODELS / "digits_calib.npz").is_file(), reason="sample models not built")


@pytest.mark.slow
def test_variants_are_real_and_the_snippet_runs(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["variants", str(MODELS / "digits_cnn_fp32.onnx"), "--calibration", str(MODELS / "digits_calib.npz"),
                 "--out", str(out), "--eval", str(MODELS / "digits_eval.npz")]) == 0
    printed = capsys.readouterr().out
    assert "fp16" in printed and "int8" in printed
    fp16 = onnx.load(str(out / "digits_cnn_fp16.onnx"))
    int8 = onnx.load(str(out / "digits_cnn_int8.onnx"))
    init_types = {onnx.TensorProto.DataType.Name(t.data_type) for t in fp16.graph.initializer}
    assert "FLOAT16" in init_types
    assert any(n.op_type == "QuantizeLinear" for n in int8.graph.node)
    # Inputs stay float32 so one evaluation set serves every variant.
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    plan = out / "variants.toml"
    text = plan.read_text()
    assert 'precision = "int8"' in text and 'reference = "digits-cnn-fp32"' in text
    plan.write_text(text + '\n[policy]\ntimed = 30\nwarmup = 2\ntelemetry = false\n')
    store_dir = tmp_path / "res"
    assert main(["run", str(plan), "--store", str(store_dir), "--quiet"]) == 0
    scores = score_runs(open_store(store_dir)).set_index("model")
    assert set(scores.index) == {"digits-cnn-fp32", "digits-cnn-fp16", "digits-cnn-int8"}
    assert scores.loc["digits-cnn-fp16", "agreement"] >= 0.99
    assert scores.loc["digits-cnn-int8", "agreement"] >= 0.95
    assert abs(scores.loc["digits-cnn-int8", "top1"] - scores.loc["digits-cnn-fp32", "top1"]) <= 0.03


def test_variant_errors(tmp_path):
    with pytest.raises(AnalysisError, match="INT8 needs calibration"):
        make_variants(MODELS / "digits_cnn_fp32.onnx", out_dir=tmp_path)
    with pytest.raises(AnalysisError, match="from an ONNX model"):
        make_variants(MODELS / "digits_cnn_fp32.tflite", out_dir=tmp_path, kinds=("fp16",))
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 8, 8)))
    with pytest.raises(AnalysisError, match="does not fit input"):
        make_variants(MODELS / "digits_cnn_fp32.onnx", calibration=tmp_path / "bad.npz", out_dir=tmp_path,
                      kinds=("int8",))


@pytest.mark.parametrize("content", [b"hello, I am text\n", None])
def test_a_file_that_is_not_an_onnx_model_is_a_model_error_and_writes_nothing(tmp_path, capsys, content):
    model = tmp_path / "m.onnx"
    real = (MODELS / "digits_cnn_fp32.onnx").read_bytes()
    model.write_bytes(content if content is not None else real[: len(real) // 3])  # text, or a truncated copy
    out = tmp_path / "out"
    with pytest.raises(ModelError, match=r"m.onnx: not a readable ONNX model \("):
        make_variants(model, out_dir=out, kinds=("fp16",))
    assert main(["variants", str(model), "--only", "fp16", "--out", str(out)]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    assert not out.exists()


def test_bad_calibration_data_fails_before_any_variant_is_written(tmp_path):
    (tmp_path / "cal.npz").write_bytes(b"not numpy")
    out = tmp_path / "out"
    with pytest.raises(AnalysisError, match="cannot read the calibration data"):
        make_variants(MODELS / "digits_cnn_fp32.onnx", calibration=tmp_path / "cal.npz", out_dir=out)
    assert not out.exists() or not list(out.iterdir())


def test_existing_variants_are_not_overwritten_and_files_get_normal_permissions(tmp_path):
    model = tmp_path / "digits_cnn_fp32.onnx"
    model.write_bytes((MODELS / "digits_cnn_fp32.onnx").read_bytes())
    mine = tmp_path / "digits_cnn_int8.onnx"
    mine.write_bytes(b"the user's own int8 model")
    old = os.umask(0o022)
    try:
        with pytest.raises(AnalysisError, match=r"digits_cnn_int8.onnx: already exists, not overwriting"):
            make_variants(model, calibration=MODELS / "digits_calib.npz")
        assert mine.read_bytes() == b"the user's own int8 model"
        assert not (tmp_path / "digits_cnn_fp16.onnx").exists()  # checked before anything was written
        made = make_variants(model, calibration=MODELS / "digits_calib.npz", force=True, calibration_limit=20)
    finally:
        os.umask(old)
    assert [v.path.name for v in made] == ["digits_cnn_fp16.onnx", "digits_cnn_int8.onnx"]
    assert mine.read_bytes() != b"the user's own int8 model"
    for v in made:
        assert stat.S_IMODE(v.path.stat().st_mode) == 0o644, v.path
        ort.InferenceSession(str(v.path), providers=["CPUExecutionProvider"])  # a whole model, loadable
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "digits_cnn_fp16.onnx", "digits_cnn_fp32.onnx", "digits_cnn_int8.onnx"]  # no temporary file left


def test_cli_refuses_to_overwrite_without_force(tmp_path, capsys):
    model = tmp_path / "digits_cnn_fp32.onnx"
    model.write_bytes((MODELS / "digits_cnn_fp32.onnx").read_bytes())
    args = ["variants", str(model), "--only", "fp16"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "variants.toml: already exists" in err and "--force" in err
    assert main([*args, "--force"]) == 0
