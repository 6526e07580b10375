"""Accuracy on the device: [models.eval] validation, image packing, the agent's accuracy phase
on the bundled digits models (real onnxruntime and LiteRT), scoring, fidelity and user scorers."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from harness import open_store
from harness.analysis.accuracy import score_runs
from harness.cli import main
from harness.config.plan import load_plan
from harness.errors import AnalysisError, ConfigError
from harness.prep.evalsets import pack_images

MODELS = Path(__file__).resolve().parents[1] / "harness" / "samples" / "models"
needs_models = pytest.mark.skipif(not (MODELS / "digits_eval.npz").is_file(), reason="sample models not built")


def plan(tmp: Path, body: str) -> Path:
    path = tmp / "plan.toml"
    path.write_text(f'name = "acc"\n[policy]\ntimed = 50\nwarmup = 2\ntelemetry = false\n{body}')
    return path


@pytest.mark.slow
@needs_models
def test_eval_on_the_device_scores_and_fidelity(tmp_path, capsys):
    (tmp_path / "m").symlink_to(MODELS)
    body = """
[[models]]
name = "fp32"
path = "m/digits_cnn_fp32.tflite"
eval = { data = "m/digits_eval.npz", limit = 120 }
[[models]]
name = "int8"
path = "m/digits_cnn_int8.tflite"
eval = { data = "m/digits_eval.npz", limit = 120, reference = "fp32", top_k = 3 }
[[models]]
name = "int8-onnx"
path = "m/digits_cnn_int8.onnx"
eval = { data = "m/digits_eval.npz", limit = 120, reference = "fp32" }
"""
    store_dir = tmp_path / "res"
    assert main(["run", str(plan(tmp_path, body)), "--store", str(store_dir), "--quiet"]) == 0
    store = open_store(store_dir)
    acc = store.accuracy()
    assert acc.groupby("run_id").size().tolist() == [120, 120, 120]
    y = np.load(MODELS / "digits_eval.npz")["y"][:120]
    scores = score_runs(store).set_index("model")
    for model in scores.index:
        preds = acc[acc["run_id"] == scores.loc[model, "run_id"]].sort_values("index")["prediction"].to_numpy()
        assert scores.loc[model, "top1"] == pytest.approx(np.mean(preds == y))
        assert scores.loc[model, "top1"] > 0.9  # a trained digits model, not noise
    assert np.isnan(scores.loc["int8", "top5"])  # top_k = 3 cannot say top-5
    assert scores.loc["fp32", "top5"] >= scores.loc["fp32", "top1"]
    # Fidelity: int8 (LiteRT, int8 output dequantised) against fp32 on the same target.
    fid = scores.loc["int8"]
    assert fid["reference_run_id"] == scores.loc["fp32", "run_id"]
    assert 0.9 < fid["agreement"] <= 1.0 and 0 < fid["output_error"] < 1.0
    # Across backends the reference still matches (only LiteRT ran fp32).
    assert scores.loc["int8-onnx", "reference_run_id"] == scores.loc["fp32", "run_id"]
    phases = store.run(fid["run_id"])["result"]["accuracy"]
    assert phases["count"] == 120 and phases["output_dequantized"] is True
    # The device no longer echoes the scorer or the reference: the host reads them from its own plan record.
    assert "reference" not in phases and "scorer" not in phases and len(phases["sha256"]) == 64
    capsys.readouterr()
    assert main(["accuracy", "--store", str(store_dir)]) == 0
    assert "int8-onnx" in capsys.readouterr().out
    # Timing saw none of the evaluation set: 50 timed samples per run.
    assert (store.samples(phase="timed").groupby("run_id").size() == 50).all()


def scorer_mae(outputs, labels):
    """A user's scorer for a non-classifier: outputs (items x outputs) and labels."""
    return {"mean_abs_output": float(np.mean(np.abs(outputs))), "items": float(len(labels))}


@pytest.mark.slow
@needs_models
def test_user_scorer(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.setitem(sys.modules, "acc_scorer", sys.modules[__name__])
    body = f"""
[[models]]
name = "fp32"
path = "{MODELS / 'digits_cnn_fp32.onnx'}"
eval = {{ data = "{MODELS / 'digits_eval.npz'}", limit = 30, scorer = "acc_scorer:scorer_mae" }}
"""
    store_dir = tmp_path / "res"
    assert main(["run", str(plan(tmp_path, body)), "--store", str(store_dir), "--quiet"]) == 0
    row = score_runs(open_store(store_dir), scorers=["acc_scorer:scorer_mae"]).iloc[0]
    assert row["metrics"]["items"] == 30 and row["metrics"]["mean_abs_output"] > 0
    assert row["scorer"] == "acc_scorer:scorer_mae" and row["note"] is None
    # Not trusted: not run, a note that says how to trust it, top-1 still scored.
    untrusted = score_runs(open_store(store_dir)).iloc[0]
    assert untrusted["metrics"] is None and untrusted["top1"] > 0.9
    assert "--scorer acc_scorer:scorer_mae" in untrusted["note"]


def test_images_are_packed_with_the_declared_preprocessing(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("HILBENCH_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, value in enumerate((0, 128, 255)):
        Image.new("RGB", (10, 6), (value, value, 0)).save(folder / f"img{i}.png")
    (tmp_path / "labels.txt").write_text("img2.png 7\nimg0.png 1\nimg1.png 3\n")
    body = """
[[models]]
name = "m"
backends = ["synthetic"]
[models.eval]
images = "imgs"
labels = "labels.txt"
resize = [4, 5]
layout = "NCHW"
scale = 0.00392156862745098
mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]
"""
    spec = load_plan(plan(tmp_path, body)).models[0].eval
    data = np.load(spec["path"])
    assert data["x"].shape == (3, 3, 4, 5) and data["x"].dtype == np.float32
    assert data["y"].tolist() == [1, 3, 7]
    assert data["x"][0, 0].max() == pytest.approx(-1.0) and data["x"][2, 0].min() == pytest.approx(1.0)
    assert data["x"][:, 2].max() == pytest.approx(-1.0)  # blue channel is 0 everywhere
    # The packed file is cached by content: the same inputs give the same file.
    again = pack_images(folder, tmp_path / "labels.txt", {"resize": [4, 5], "layout": "NCHW",
                                                            "scale": 0.00392156862745098, "mean": [0.5] * 3,
                                                            "std": [0.5] * 3, "dtype": "float32", "color": "RGB"})
    assert str(again) == spec["path"]
    q = pack_images(folder, tmp_path / "labels.txt", {"dtype": "uint8", "color": "L"})
    assert np.load(q)["x"].dtype == np.uint8 and np.load(q)["x"].shape == (3, 6, 10, 1)


@pytest.mark.parametrize("eval_text, message", [
    ('eval = { data = "nope.npz" }', "eval.data: evaluation file not found"),
    ('eval = { data = "x.npz", images = "imgs" }', "eval.data: give either data"),
    ('eval = { images = "imgs" }', "eval.labels: images need a labels file"),
    ('eval = { data = "x.npz", resize = [2, 2] }', "eval.resize: preprocessing and labels apply to images"),
    ('eval = { data = "x.npz", scorer = "nocolon" }', "eval.scorer: expected"),
    ('eval = { data = "x.npz", reference = "ghost" }', "eval.reference: no model named 'ghost'"),
    ('eval = { data = "x.npz", layout = "HWC" }', "eval.layout: must be one of"),
    ('eval = { data = "x.npz", top_k = 0 }', "eval.top_k: must be >= 1"),
    ('eval = { data = "x.npz", colour = "RGB" }', "eval.colour: unknown key"),
])
def test_bad_eval_tables(tmp_path, eval_text, message):
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 1)), y=np.zeros(2))
    (tmp_path / "imgs").mkdir()
    body = f'[[models]]\nname = "m"\nbackends = ["synthetic"]\n{eval_text}\n'
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_plan(plan(tmp_path, body))


def _linear_onnx(path: Path, weights: np.ndarray) -> None:
    """A real ONNX model, y = x @ weights, built with onnx.helper (no training, exact outputs)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    n_in, n_out = weights.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])],
        initializer=[numpy_helper.from_array(weights.astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


SEEN: dict[str, np.ndarray] = {}


def scorer_regression(outputs, labels):
    """A real regression scorer: mean absolute and squared error of outputs against labels."""
    SEEN["labels"] = labels
    err = outputs - np.asarray(labels, dtype=np.float64).reshape(outputs.shape)
    return {"mae": float(np.mean(np.abs(err))), "mse": float(np.mean(err ** 2))}


@pytest.mark.slow
def test_scorer_gets_the_evaluation_files_labels_for_regression_and_boxes(tmp_path, monkeypatch):
    """Float labels in 0.1..0.9 and 4-value box labels reach the scorer as they are in the file,
    end to end on the local target; no top-1 is reported for them."""
    monkeypatch.setitem(sys.modules, "acc_scorer", sys.modules[__name__])
    monkeypatch.setenv("HILBENCH_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(3)
    w_reg = np.array([[0.2], [0.3], [0.1]])
    w_box = rng.uniform(0.1, 1.0, (3, 4))
    _linear_onnx(tmp_path / "reg.onnx", w_reg)
    _linear_onnx(tmp_path / "box.onnx", w_box)
    x = rng.uniform(0.2, 1.4, (40, 3)).astype(np.float32)  # item i runs as x[i:i+1]
    y_reg = (x @ w_reg)[:, 0] + 0.05          # 0.1 .. 0.9, float64, shape (40,)
    y_box = (x @ w_box) - 0.2                  # (40, 4), float64
    assert 0.1 < y_reg.min() and y_reg.max() < 0.9
    np.savez(tmp_path / "reg.npz", x=x, y=y_reg)
    np.savez(tmp_path / "box.npz", x=x, boxes=y_box)
    body = """
[[models]]
name = "reg"
path = "reg.onnx"
eval = { data = "reg.npz", limit = 30, scorer = "acc_scorer:scorer_regression" }
[[models]]
name = "box"
path = "box.onnx"
eval = { data = "box.npz", y = "boxes", scorer = "acc_scorer:scorer_regression" }
"""
    store_dir = tmp_path / "res"
    assert main(["run", str(plan(tmp_path, body)), "--store", str(store_dir), "--quiet"]) == 0
    store = open_store(store_dir)
    assert store.accuracy()["label"].isna().all()  # no real number was turned into a class index
    trust = ["acc_scorer:scorer_regression"]
    scores = score_runs(store, scorers=trust).set_index("model")
    reg, box = scores.loc["reg"], scores.loc["box"]
    assert np.isnan(reg["top1"]) and np.isnan(reg["top5"]) and np.isnan(box["top1"])
    assert reg["eval_count"] == 30 and reg["metrics"]["mae"] == pytest.approx(0.05, abs=1e-5)
    assert box["eval_count"] == 40 and box["metrics"]["mae"] == pytest.approx(0.2, abs=1e-5)
    assert box["metrics"]["mse"] == pytest.approx(0.04, abs=1e-5)
    # The scorer saw the file's array itself: float, (items, 4), the stored values.
    score_runs(store, [box["run_id"]], scorers=trust)
    assert SEEN["labels"].shape == (40, 4) and SEEN["labels"].dtype == np.float64
    np.testing.assert_array_equal(SEEN["labels"], y_box)
    # A changed evaluation file is refused, not silently scored against other labels.
    np.savez(tmp_path / "box.npz", x=x, boxes=y_box + 1)
    with pytest.raises(AnalysisError, match="box.npz.*changed since the run"):
        score_runs(store, [box["run_id"]], scorers=trust)
    # ...unless the caller hands the labels over.
    again = score_runs(store, [box["run_id"]], scorers=trust, eval_labels={"box": y_box}).iloc[0]
    assert again["metrics"]["mae"] == pytest.approx(0.2, abs=1e-5)


def test_an_older_run_with_float_labels_stored_as_integers_scores_no_top1(tmp_path, monkeypatch):
    """Before the agent sent only class labels, 0.1..0.9 were stored as 0 and scored a top-1:
    such a run (no class_labels in its summary) is judged by its evaluation file's labels."""
    import datetime as dt

    from harness.store import Store

    monkeypatch.setitem(sys.modules, "acc_scorer", sys.modules[__name__])
    y = np.array([0.1, 0.4, 0.9, 0.3])
    np.savez(tmp_path / "reg.npz", x=np.zeros((4, 3), dtype=np.float32), y=y)
    plan_text = 'name = "old"\n[[models]]\nname = "reg"\neval = { data = "reg.npz", scorer = "acc_scorer:scorer_regression" }\n'
    (tmp_path / "plan.toml").write_text(plan_text)
    store = Store(tmp_path / "res")
    store.ensure_writable()
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    store.write_table("accuracy", "r1", {
        "run_id": ["r1"] * 4, "index": [0, 1, 2, 3], "label": [0, 0, 0, 0], "prediction": [0, 0, 0, 0],
        "top5": [[0]] * 4, "score": [0.2, 0.4, 0.8, 0.3], "output": [[0.2], [0.4], [0.8], [0.3]]})
    store.write_table("runs", "r1", [{
        "run_id": "r1", "session_id": "s1", "model": "reg", "target": "local", "backend": "onnxruntime",
        "settings": {}, "status": "ok", "started_at": now,
        "result": {"accuracy": {"count": 4, "top_k": 1, "scorer": "acc_scorer:scorer_regression"}}}])
    store.write_table("sessions", "s1", [{"session_id": "s1", "started_at": now, "plan": "old",
                                          "plan_path": str(tmp_path / "plan.toml"), "plan_text": plan_text}])
    # The file's labels decide (read as data) whether or not the scorer is trusted.
    assert np.isnan(score_runs(store).iloc[0]["top1"])
    row = score_runs(store, scorers=["acc_scorer:scorer_regression"]).iloc[0]
    assert np.isnan(row["top1"])  # the stored 0s are not class labels
    assert row["metrics"]["mae"] == pytest.approx(np.mean(np.abs(np.array([0.2, 0.4, 0.8, 0.3]) - y)))


@pytest.mark.slow
def test_the_agent_sends_large_outputs_in_batches_that_fit_a_protocol_line(tmp_path):
    """Items with many output values go in smaller batches, so no accuracy line nears the host's 16 MiB limit."""
    import json

    from hilbench_agent import accuracy as agent_accuracy
    from hilbench_agent.backends.base import InputSpec

    from harness.agent.protocol import MAX_LINE_BYTES

    width = 50_000  # 4 items per batch at BATCH_VALUES = 200,000
    path = tmp_path / "wide.npz"
    np.savez(path, x=np.zeros((10, 2), dtype=np.float32), y=np.arange(10))

    class Backend:
        def set_inputs(self, inputs):
            pass

        def invoke(self):
            return [np.linspace(0.0, 1.0, width)]

    sent: list[str] = []

    class Channel:
        def send(self, kind, **fields):
            sent.append(json.dumps(dict(fields, type=kind)))

    agent_accuracy.run_accuracy(Channel(), Backend(), [InputSpec("x", [1, 2], "float32")],
                                {"path": str(path), "keep_outputs": True})
    batches = [json.loads(line) for line in sent if json.loads(line)["type"] == "accuracy"]
    assert [len(b["index"]) for b in batches] == [4, 4, 2]
    assert [b["start"] for b in batches] == [0, 4, 8]
    assert max(len(line) for line in sent) < MAX_LINE_BYTES // 4


def test_the_agent_keeps_no_output_vector_too_large_for_a_line(tmp_path, monkeypatch):
    """An item whose output alone would make a line too long (a segmentation map) is scored, its vector not
    sent, and the summary counts it (the host turns that into an outputs_not_kept warning)."""
    import json

    from hilbench_agent import accuracy as agent_accuracy
    from hilbench_agent.backends.base import InputSpec

    monkeypatch.setattr(agent_accuracy, "ITEM_VALUES", 100)
    path = tmp_path / "seg.npz"
    np.savez(path, x=np.zeros((3, 2), dtype=np.float32), y=np.arange(3))
    widths = iter([50, 500, 50])

    class Backend:
        def set_inputs(self, inputs):
            pass

        def invoke(self):
            return [np.linspace(0.0, 1.0, next(widths))]

    sent: list[dict] = []

    class Channel:
        def send(self, kind, **fields):
            sent.append(json.loads(json.dumps(dict(fields, type=kind))))

    info = agent_accuracy.run_accuracy(Channel(), Backend(), [InputSpec("x", [1, 2], "float32")],
                                       {"path": str(path)})
    (batch,) = [m for m in sent if m["type"] == "accuracy"]
    assert [o is None for o in batch["output"]] == [False, True, False]
    assert [len(t) for t in batch["top"]] == [5, 5, 5]
    assert info["outputs_not_kept"] == 1
