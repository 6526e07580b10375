"""Model variants for a latency-vs-accuracy sweep from one ONNX model: FP16 and INT8
(static, calibrated), written next to each other with a plan snippet that tags them.

* FP16: ``onnxruntime.transformers.float16.convert_float_to_float16`` with the
  model's inputs and outputs kept float32 (``keep_io_types``), so the same input
  data and evaluation set serve every variant.
* INT8: ``onnxruntime.quantization.quantize_static`` (QDQ format, per-channel
  weights, MinMax calibration) over a calibration .npz: one array (or the array
  named like the model's input) with a leading sample axis, fed one sample at a time
  in the model's batch size.
* INT8 for TensorRT (``for_runtime="tensorrt"``, ``hilbench variants --for tensorrt``): the same with symmetric
  activations and weights (``ActivationSymmetric``/``WeightSymmetric``), so every Q/DQ zero point is 0, the only
  INT8 TensorRT takes; read back with ``onnx`` after writing, and refused if a zero point is not 0.

Both need ``onnx`` and ``onnxruntime`` on the host (``pip install hilbench[onnx] onnx``).

An existing file is never replaced unless ``force=True``: every output is checked before
anything is written. Each file is written to a temporary name in its folder and renamed
into place (a crash leaves no half model), with the permissions of a normal new file
(0666 minus the umask, typically 0644).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import AnalysisError, ModelError

__all__ = ["Variant", "make_variants", "plan_snippet", "default_kinds", "VARIANT_KINDS", "COREML_VARIANT_KINDS",
           "FOR_RUNTIMES"]

VARIANT_KINDS = ("fp16", "int8")
#: Core ML variants of a PyTorch model (harness/prep/coreml.py)
COREML_VARIANT_KINDS = ("coreml", "coreml-fp32")
#: runtimes ``--for`` tailors the variants to
FOR_RUNTIMES = ("tensorrt",)


@dataclass(frozen=True)
class Variant:
    name: str
    path: Path
    precision: str
    size_bytes: int
    note: str = ""


def _imports() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise AnalysisError(f"variants need onnx and onnxruntime on the host ({exc}): "
                            "pip install onnx onnxruntime") from exc
    return onnx, onnxruntime


def _check_model(model_path: Path) -> None:
    """Raise ModelError when ``model_path`` is not an ONNX model onnx and ONNX Runtime can read (a truncated
    download, a text file named .onnx), before any variant is written."""
    onnx, ort = _imports()
    try:
        onnx.checker.check_model(onnx.load(str(model_path), load_external_data=False))
        ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - protobuf, checker and runtime errors alike: not a usable model
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
        raise ModelError(f"{model_path}: not a readable ONNX model ({exc.__class__.__name__}: {first}): "
                         "give the .onnx file the model was exported to") from exc


def _fp16(model_path: Path, out: Path) -> str:
    onnx, _ = _imports()
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as exc:
        raise AnalysisError(f"FP16 conversion needs onnxruntime.transformers ({exc})") from exc
    model = onnx.load(str(model_path))
    converted = convert_float_to_float16(model, keep_io_types=True)
    _save(onnx, converted, out)
    return "float32 inputs/outputs kept; weights and activations float16"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_atomic(out: Path, write: Callable[[str], object]) -> None:
    """``write(tmp)`` into a temporary file beside ``out``, give it normal permissions, rename it."""
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix="." + out.name, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes 0600 files; a model is shared like any other file the user writes.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save(onnx: Any, model: Any, out: Path) -> None:
    _write_atomic(out, lambda tmp: onnx.save(model, tmp))


def _calibration_arrays(model_path: Path, calibration: Path, limit: int | None) -> tuple[str, np.ndarray, list[Any]]:
    _, ort = _imports()
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise AnalysisError(f"{model_path.name}: INT8 calibration supports single-input models "
                            f"(this one has {len(inputs)})")
    name, shape = inputs[0].name, list(inputs[0].shape)
    try:
        data = np.load(calibration, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise AnalysisError(f"{calibration}: cannot read the calibration data ({exc})") from exc
    if isinstance(data, np.ndarray):
        x = data
    else:
        keys = list(data.keys())
        key = name if name in keys else ("x" if "x" in keys else (keys[0] if len(keys) == 1 else None))
        if key is None:
            raise AnalysisError(f"{calibration}: no array named {name!r} or 'x' (it has {', '.join(keys)})")
        x = data[key]
    if x.ndim != len(shape):
        raise AnalysisError(f"{calibration}: array of shape {list(x.shape)} does not fit input {name!r} {shape}")
    if limit:
        x = x[:limit]
    return name, x.astype(np.float32), shape


def _int8(model_path: Path, out: Path, calibration: Path, arrays: tuple[str, np.ndarray, list[Any]],
          symmetric: bool = False) -> str:
    _imports()
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name, x, shape = arrays
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else 1

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.i = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.i + batch > len(x):
                return None
            item = x[self.i:self.i + batch]
            self.i += batch
            return {name: item}

        def rewind(self) -> None:
            self.i = 0

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(model_path), str(pre), skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001 - pre-processing is an optimisation; quantise the original then
            pre = model_path
        staged = Path(tmp) / "int8.onnx"
        try:
            extra = {"ActivationSymmetric": True, "WeightSymmetric": True} if symmetric else {}
            quantize_static(str(pre), str(staged), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, extra_options=extra)
        except Exception as exc:
            raise AnalysisError(f"{model_path.name}: INT8 quantisation failed: {str(exc).splitlines()[0]}") from exc
        if symmetric:
            # The TensorRT backend's own test: what it would refuse is never written.
            from hilbench_agent.backends.tensorrt import asymmetric_zero_points

            bad = asymmetric_zero_points(str(staged))
            if bad:
                raise AnalysisError(f"{model_path.name}: symmetric INT8 quantisation left {len(bad)} zero point(s) "
                                    f"other than 0 (e.g. {bad[0]!r}); TensorRT would refuse it")
        _write_atomic(out, lambda tmp: shutil.copyfile(staged, tmp))
    sym = "symmetric activations and weights (every zero point 0, for TensorRT), " if symmetric else ""
    return f"static QDQ, {sym}per-channel weights, MinMax calibration on {len(x)} samples of {calibration.name}"


def make_variants(model: Path, *, calibration: Path | None = None, out_dir: Path | None = None,
                  kinds: tuple[str, ...] = VARIANT_KINDS, calibration_limit: int | None = 500,
                  force: bool = False, for_runtime: str | None = None) -> list[Variant]:
    """Write the requested variants of ``model`` (an .onnx) to ``out_dir`` (default: beside it).
    ``for_runtime="tensorrt"``: symmetric INT8 (every zero point 0), written as ``<stem>_int8_sym.onnx``.

    Raises AnalysisError naming the first output that already exists unless ``force``. A PyTorch model
    (.pt/.pt2) makes Core ML variants instead (:mod:`harness.prep.coreml`; kinds ``coreml``, ``coreml-fp32``)."""
    if for_runtime is not None and for_runtime not in FOR_RUNTIMES:
        raise AnalysisError(f"unknown runtime {for_runtime!r} for --for (known: {', '.join(FOR_RUNTIMES)})")
    if model.suffix.lower() in (".pt", ".pt2"):
        if for_runtime:
            raise AnalysisError(f"{model.name}: --for {for_runtime} makes ONNX variants: give the .onnx model")
        return _coreml_variants(model, out_dir, kinds, force)
    if model.suffix.lower() != ".onnx":
        raise AnalysisError(f"{model}: variants are made from an ONNX model (.onnx), or Core ML ones from a "
                            "PyTorch model (.pt, .pt2)")
    if not model.is_file():
        raise AnalysisError(f"{model}: model file not found")
    unknown = [k for k in kinds if k not in VARIANT_KINDS]
    if unknown:
        hint = " (Core ML variants are made from a PyTorch model: .pt, .pt2)" if unknown[0] in COREML_VARIANT_KINDS else ""
        raise AnalysisError(f"unknown variant {unknown[0]!r} for an ONNX model (known: {', '.join(VARIANT_KINDS)}){hint}")
    if "int8" in kinds and calibration is None:
        raise AnalysisError("INT8 needs calibration data: --calibration DATA.npz (a few hundred real inputs)")
    # Everything that can be wrong with the inputs fails here, before the first variant is written.
    _check_model(model)
    arrays = _calibration_arrays(model, calibration, calibration_limit) if calibration and "int8" in kinds else None
    out_dir = out_dir or model.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = model.stem.removesuffix("_fp32")
    symmetric = for_runtime == "tensorrt"
    suffix = {"int8": "_sym"} if symmetric else {}
    paths = {kind: out_dir / f"{stem}_{kind}{suffix.get(kind, '')}.onnx" for kind in kinds}
    if model.resolve() in {p.resolve() for p in paths.values()}:
        raise AnalysisError(f"{model}: a variant would replace the model itself: give --out DIR")
    existing = [p for p in paths.values() if p.exists()]
    if existing and not force:
        raise AnalysisError(f"{existing[0]}: already exists, not overwriting it "
                            "(remove it, or write elsewhere with --out DIR)")
    made = []
    for kind in kinds:
        path = paths[kind]
        if kind == "fp16":
            note = _fp16(model, path)
        else:
            assert calibration is not None and arrays is not None
            note = _int8(model, path, calibration, arrays, symmetric=symmetric)
        made.append(Variant(name=f"{stem}-{kind}{suffix.get(kind, '')}".replace("_", "-"), path=path, precision=kind,
                            size_bytes=path.stat().st_size, note=note))
    return made


def default_kinds(model: Path) -> tuple[str, ...]:
    """The variants ``hilbench variants`` makes of ``model`` when told none."""
    return ("coreml",) if model.suffix.lower() in (".pt", ".pt2") else VARIANT_KINDS


def _coreml_variants(model: Path, out_dir: Path | None, kinds: tuple[str, ...], force: bool) -> list[Variant]:
    from harness.prep.coreml import COREML_KINDS, convert_variants, package_size

    if not model.is_file():
        raise AnalysisError(f"{model}: model file not found")
    wrong = [k for k in kinds if k not in COREML_KINDS]
    if wrong:
        raise AnalysisError(f"{model.name}: a PyTorch model makes Core ML variants ({', '.join(COREML_KINDS)}), not "
                            f"{wrong[0]!r}: export it to ONNX for FP16/INT8 ONNX variants")
    out_dir = out_dir or model.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = model.stem.removesuffix("_fp32")
    return [Variant(name=f"{stem}-{precision}-coreml".replace("_", "-"), path=path, precision=precision,
                    size_bytes=package_size(path), note=note)
            for _, path, precision, note in convert_variants(model, out_dir, kinds, force)]


def plan_snippet(model: Path, variants: list[Variant], *, relative_to: Path | None = None,
                 eval_data: Path | None = None) -> str:
    """``[[models]]`` tables for the original and its variants, tagged precision=..., family=...,
    with fidelity against the original when an evaluation set is given."""
    def rel(p: Path) -> str:
        if relative_to is not None:
            try:
                return os.path.relpath(p.resolve(), relative_to.resolve())
            except ValueError:
                pass
        return str(p)

    family = model.stem.removesuffix("_fp32").replace("_", "-")
    base_name = f"{family}-fp32"
    lines = [f"# Variants of {model.name} made by `hilbench variants`.", ""]
    entries = [(base_name, model, "fp32", None)] + [(v.name, v.path, v.precision, base_name) for v in variants]
    for name, path, precision, ref in entries:
        lines += ["[[models]]", f'name = "{name}"', f'path = "{rel(path)}"',
                  f'tags = {{ precision = "{precision}", family = "{family}" }}']
        if eval_data is not None:
            ref_part = f', reference = "{ref}"' if ref else ""
            lines.append(f'eval = {{ data = "{rel(eval_data)}"{ref_part} }}')
        lines.append("")
    return "\n".join(lines)
