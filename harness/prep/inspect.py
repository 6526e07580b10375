"""``hilbench inspect MODEL``: what a model file is, read on the host with no device.

Format, inputs and outputs (names, shapes, dtypes), an op histogram, quantization (per-tensor zero points and
whether every one is 0, i.e. symmetric) and per format:

* ``.tflite``: read with the TFLite flatbuffer schema bindings LiteRT ships (``ai_edge_litert.schema_py_generated``;
  else TensorFlow's copy of the same generated module). Every one says whether it was compiled for the Edge TPU:
  ``edgetpu = {"compiled", "ops_tpu", "ops_cpu", "cpu_ops"}``, where ``ops_tpu`` counts the ``edgetpu-custom-op``
  nodes (each a compiled subgraph) and ``ops_cpu`` the builtin or other custom ops left outside them.
* ``.onnx``: the ``onnx`` package. Symmetric means every 8-bit QuantizeLinear/DequantizeLinear zero point is 0,
  the same test the TensorRT backend refuses asymmetric models by
  (:func:`hilbench_agent.backends.tensorrt.asymmetric_zero_points`).
* ``.engine``/``.plan``/``.trt`` (a serialized TensorRT engine): the TensorRT version it was built with where the
  header says it. TensorRT documents no engine format and no API reads it without deserializing on a GPU; NVIDIA
  said in NVIDIA/TensorRT#3073 that the version sits in the header, bytes 24, 25 and 26 (major, minor, patch).
  hilbench reads those and reports them only when they look like a TensorRT version; else ``"unknown"``.
* ``.mlmodel``/``.mlpackage``: the spec's inputs and outputs via ``coremltools`` (the ``coreml`` extra).
* ``.pt`` (TorchScript) / ``.pt2`` (``torch.export``): what ``torch`` reads (the ``pytorch`` extra). Loading a
  TorchScript file runs no Python, but give inspect only models you would run.

A file that is not the model its name says (truncated, another format, an unknown suffix) is a ModelError: one line
naming the file.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from harness.errors import ModelError

__all__ = ["inspect_model", "format_inspection", "edgetpu_summary", "tflite_schema", "EDGETPU_CUSTOM_OP", "FORMATS"]

EDGETPU_CUSTOM_OP = "edgetpu-custom-op"
#: suffix -> format name
FORMATS = {".tflite": "tflite", ".onnx": "onnx", ".engine": "tensorrt-engine", ".plan": "tensorrt-engine",
           ".trt": "tensorrt-engine", ".mlmodel": "coreml", ".mlpackage": "coreml", ".pt": "torchscript",
           ".pt2": "torch-export"}
#: cpu_ops lists at most this many distinct op names (as the offload verdict does)
MAX_CPU_OPS = 32
#: per-tensor quantization rows kept in the JSON (a big model has thousands)
MAX_QUANT_ROWS = 2000


def _first_line(exc: BaseException) -> str:
    return ((str(exc).strip().splitlines() or [exc.__class__.__name__])[0])[:200]


def tflite_schema() -> Any:
    """The TFLite flatbuffer schema's generated Python bindings: LiteRT's own, else TensorFlow's copy of the same
    module. Raises ModelError saying what to install when neither is there."""
    try:
        from ai_edge_litert import schema_py_generated
        return schema_py_generated
    except ImportError:
        pass
    try:
        from tensorflow.lite.python import schema_py_generated as tf_schema
        return tf_schema
    except ImportError:
        pass
    raise ModelError("reading a .tflite needs the TFLite schema bindings LiteRT ships: pip install ai-edge-litert "
                     "(hilbench[litert])")


def _enum_names(cls: Any) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read it ({exc.strerror or exc})") from exc


# ---------------------------------------------------------------- TFLite


def _tflite_model(path: Path) -> Any:
    schema = tflite_schema()
    buf = _read(path)
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelError(f"{path}: not a TFLite model (no TFL3 flatbuffer identifier)")
    try:
        model = schema.Model.GetRootAs(buf, 0)
        # Touch every table inspect reads, so a truncated or corrupt buffer fails here, as one line.
        for i in range(model.SubgraphsLength()):
            sg = model.Subgraphs(i)
            for t in range(sg.TensorsLength()):
                tensor = sg.Tensors(t)
                tensor.Name(), tensor.ShapeAsNumpy(), tensor.Type(), tensor.Quantization()
            for o in range(sg.OperatorsLength()):
                sg.Operators(o).OpcodeIndex()
        for c in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(c)
            code.BuiltinCode(), code.DeprecatedBuiltinCode(), code.CustomCode()
    except Exception as exc:  # noqa: BLE001 - flatbuffers raises IndexError, struct.error... on a bad buffer
        raise ModelError(f"{path}: corrupt TFLite flatbuffer ({exc.__class__.__name__}: {_first_line(exc)})") from exc
    return schema, model


def _op_names(schema: Any, model: Any) -> list[str]:
    builtin = _enum_names(schema.BuiltinOperator)
    names = []
    for c in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(c)
        # builtin_code took over from the int8 deprecated_builtin_code at 127 (the schema's own rule: the larger).
        value = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        if value == schema.BuiltinOperator.CUSTOM:
            custom = code.CustomCode()
            names.append(custom.decode("utf-8", "replace") if custom else "CUSTOM")
        else:
            names.append(builtin.get(value, f"BUILTIN_{value}"))
    return names


def _tflite_ops(schema: Any, model: Any) -> list[str]:
    """Every operator's name, subgraph by subgraph, in graph order."""
    names = _op_names(schema, model)
    ops = []
    for i in range(model.SubgraphsLength()):
        sg = model.Subgraphs(i)
        for o in range(sg.OperatorsLength()):
            index = sg.Operators(o).OpcodeIndex()
            ops.append(names[index] if 0 <= index < len(names) else f"OPCODE_{index}")
    return ops


def edgetpu_summary(ops: list[str]) -> dict[str, Any]:
    """The ``edgetpu`` key from a .tflite's op names in graph order."""
    from hilbench_agent.edgetpu import summary  # one definition for the host and the device

    return summary(ops, MAX_CPU_OPS)


def _tflite_tensor(schema: Any, sg: Any, index: int, dtypes: dict[int, str]) -> dict[str, Any]:
    t = sg.Tensors(index)
    sig = t.ShapeSignatureAsNumpy() if t.ShapeSignatureLength() else t.ShapeAsNumpy()
    shape = [int(d) if int(d) >= 0 else None for d in (sig if not isinstance(sig, int) else [])]
    out: dict[str, Any] = {"name": (t.Name() or b"").decode("utf-8", "replace"), "shape": shape,
                           "dtype": dtypes.get(t.Type(), str(t.Type())).lower()}
    q = _tflite_quant(t)
    if q is not None:
        out["quantization"] = {"scale": q[0], "zero_point": q[1]}
    return out


def _tflite_quant(t: Any) -> tuple[list[float], list[int]] | None:
    q = t.Quantization()
    if q is None or not q.ScaleLength():
        return None
    scales = [float(s) for s in q.ScaleAsNumpy()]
    zps = [int(z) for z in q.ZeroPointAsNumpy()] if q.ZeroPointLength() else [0] * len(scales)
    return scales, zps


def _inspect_tflite(path: Path) -> dict[str, Any]:
    schema, model = _tflite_model(path)
    dtypes = _enum_names(schema.TensorType)
    ops = _tflite_ops(schema, model)
    info: dict[str, Any] = {"inputs": [], "outputs": []}
    if model.SubgraphsLength():
        sg = model.Subgraphs(0)
        info["inputs"] = [_tflite_tensor(schema, sg, int(i), dtypes) for i in _indices(sg.InputsAsNumpy())]
        info["outputs"] = [_tflite_tensor(schema, sg, int(i), dtypes) for i in _indices(sg.OutputsAsNumpy())]
    rows = []
    for i in range(model.SubgraphsLength()):
        sg = model.Subgraphs(i)
        for ti in range(sg.TensorsLength()):
            t = sg.Tensors(ti)
            q = _tflite_quant(t)
            if q is not None:
                rows.append({"tensor": (t.Name() or b"").decode("utf-8", "replace"),
                             "dtype": dtypes.get(t.Type(), str(t.Type())).lower(), "zero_points": q[1]})
    info["ops"] = ops
    info["quantization"] = _quant_summary(rows, "every quantized tensor's zero points (TFLite)")
    info["edgetpu"] = edgetpu_summary(ops)
    info["description"] = (model.Description() or b"").decode("utf-8", "replace")
    info["schema_version"] = int(model.Version())
    return info


def _indices(arr: Any) -> list[int]:
    return [] if isinstance(arr, int) else [int(i) for i in arr]


def tflite_ops(path: Path) -> list[str]:
    """The op names of a .tflite in graph order (ModelError when it cannot be read)."""
    schema, model = _tflite_model(path)
    return _tflite_ops(schema, model)


# ---------------------------------------------------------------- quantization


def _quant_summary(rows: list[dict[str, Any]], source: str, symmetric: bool | None = None) -> dict[str, Any]:
    """``rows``: {tensor, dtype, zero_points}. Symmetric: every zero point is 0 (unless the caller decided)."""
    nonzero = [r for r in rows if any(int(z) for z in r["zero_points"])]
    if symmetric is None:
        symmetric = not nonzero if rows else None
    distinct = sorted({int(z) for r in rows for z in r["zero_points"]})
    kept = [dict(r, zero_points=sorted(set(int(z) for z in r["zero_points"]))) for r in rows[:MAX_QUANT_ROWS]]
    return {"quantized": bool(rows), "symmetric": symmetric, "tensors": len(rows),
            "nonzero_zero_point_tensors": len(nonzero), "zero_points": distinct[:64],
            "per_tensor": kept, "source": source}


# ---------------------------------------------------------------- ONNX


def _onnx_type(t: Any, onnx: Any) -> tuple[list[Any] | None, str]:
    tt = t.type.tensor_type
    if not t.type.HasField("tensor_type"):
        return None, t.type.WhichOneof("value") or "unknown"
    try:
        dtype = str(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)) if tt.elem_type else "unknown"
    except Exception:  # noqa: BLE001 - a type numpy has no name for (bfloat16, float8...)
        dtype = onnx.TensorProto.DataType.Name(tt.elem_type).lower()
    if not tt.HasField("shape"):
        return None, dtype
    shape: list[Any] = []
    for d in tt.shape.dim:
        kind = d.WhichOneof("value")
        shape.append(int(d.dim_value) if kind == "dim_value" else (d.dim_param if kind == "dim_param" else None))
    return shape, dtype


def _inspect_onnx(path: Path) -> dict[str, Any]:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise ModelError(f"{path}: reading an ONNX model needs the onnx package: pip install onnx") from exc
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise ModelError(f"{path}: not a readable ONNX model ({exc.__class__.__name__}: {_first_line(exc)})") from exc
    graph = model.graph
    if not graph.node and not graph.input and not graph.output:
        raise ModelError(f"{path}: not a readable ONNX model (no graph)")
    inits = {i.name: i for i in graph.initializer}
    consts = dict(inits)
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    consts[node.output[0]] = attr.t

    def io(values: Any) -> list[dict[str, Any]]:
        out = []
        for v in values:
            if v.name in inits:
                continue
            shape, dtype = _onnx_type(v, onnx)
            out.append({"name": v.name, "shape": shape, "dtype": dtype})
        return out

    ops = [n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}" for n in graph.node]
    rows = []
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        tensor = consts.get(node.input[2]) if len(node.input) >= 3 and node.input[2] else None
        if tensor is None:  # no zero point: 0 by the operator's definition
            rows.append({"tensor": node.name or node.output[0], "dtype": "default", "zero_points": [0]})
            continue
        values = numpy_helper.to_array(tensor)
        rows.append({"tensor": node.name or node.output[0], "dtype": str(values.dtype),
                     "zero_points": [int(z) for z in values.reshape(-1)]})
    symmetric = None
    if rows:
        # The TensorRT backend's own test, so inspect and the backend never disagree.
        from hilbench_agent.backends.tensorrt import asymmetric_zero_points

        symmetric = not asymmetric_zero_points(str(path))
    return {"inputs": io(graph.input), "outputs": io(graph.output), "ops": ops,
            "quantization": _quant_summary(rows, "QuantizeLinear/DequantizeLinear zero points (8-bit ones decide "
                                                 "symmetric, as TensorRT does)", symmetric),
            "opsets": {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
            "producer": f"{model.producer_name} {model.producer_version}".strip()}


# ---------------------------------------------------------------- TensorRT engine


def engine_version(head: bytes) -> str | None:
    """The TensorRT version in a serialized engine's header (bytes 24-26: major, minor, patch, per NVIDIA in
    NVIDIA/TensorRT#3073), or None where they do not look like one."""
    if len(head) < 27:
        return None
    major, minor, patch = head[24], head[25], head[26]
    if 7 <= major <= 30 and minor < 100 and patch < 100:
        return f"{major}.{minor}.{patch}"
    return None


def _inspect_engine(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        head = f.read(64)
    if len(head) < 32:
        raise ModelError(f"{path}: too short to be a TensorRT engine ({len(head)} bytes)")
    version = engine_version(head)
    return {"inputs": [], "outputs": [], "ops": [],
            "tensorrt_version": version or "unknown",
            "tensorrt_version_source": ("engine header bytes 24-26 (observed layout, NVIDIA/TensorRT#3073; TensorRT "
                                        "documents none)" if version else
                                        "unknown: the header does not carry a recognisable version"),
            "note": "inputs, outputs and layers need TensorRT on a GPU to deserialize the engine: the device reads "
                    "them when it runs"}


# ---------------------------------------------------------------- Core ML


def _inspect_coreml(path: Path) -> dict[str, Any]:
    # Off macOS coremltools warns, on import, that it cannot predict (and about an untested torch): not news here.
    quiet = logging.getLogger("coremltools")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        import coremltools as ct
    except ImportError as exc:
        raise ModelError(f"{path}: reading a Core ML model needs coremltools: pip install 'hilbench[coreml]'") from exc
    finally:
        quiet.setLevel(level)
    try:
        spec = ct.utils.load_spec(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf and coremltools errors alike
        raise ModelError(f"{path}: not a readable Core ML model ({exc.__class__.__name__}: {_first_line(exc)})") from exc

    def features(values: Any) -> list[dict[str, Any]]:
        out = []
        for f in values:
            kind = f.type.WhichOneof("Type")
            row: dict[str, Any] = {"name": f.name, "shape": None, "dtype": kind}
            if kind == "multiArrayType":
                arr = f.type.multiArrayType
                row["shape"] = [int(d) for d in arr.shape] or None
                row["dtype"] = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(arr.dataType).lower()
            elif kind == "imageType":
                img = f.type.imageType
                row["shape"] = [int(img.height), int(img.width)]
                row["dtype"] = "image:" + ct.proto.FeatureTypes_pb2.ImageFeatureType.ColorSpace.Name(
                    img.colorSpace).lower()
            out.append(row)
        return out

    kind = spec.WhichOneof("Type") or "unknown"
    ops: list[str] = []
    if kind == "mlProgram":
        for fn in spec.mlProgram.functions.values():
            for block in fn.block_specializations.values():
                ops += [op.type for op in block.operations]
    elif kind == "neuralNetwork":
        ops = [layer.WhichOneof("layer") or "unknown" for layer in spec.neuralNetwork.layers]
    return {"inputs": features(spec.description.input), "outputs": features(spec.description.output), "ops": ops,
            "coreml_type": kind, "specification_version": int(spec.specificationVersion)}


# ---------------------------------------------------------------- PyTorch


def _inspect_torch(path: Path) -> dict[str, Any]:
    if _read_head(path, 4) != b"PK\x03\x04":
        raise ModelError(f"{path}: not a PyTorch archive (a TorchScript or exported-program file is a zip)")
    try:
        import torch
    except ImportError as exc:
        raise ModelError(f"{path}: reading a PyTorch model needs torch: pip install 'hilbench[pytorch]'") from exc
    try:
        if path.suffix.lower() == ".pt2":
            return _torch_export(torch.export.load(str(path)))
        module = torch.jit.load(str(path), map_location="cpu")
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch's errors for a file that is not its archive vary
        raise ModelError(f"{path}: torch cannot load it ({exc.__class__.__name__}: {_first_line(exc)})") from exc
    graph = module.graph
    inputs = []
    for v in list(graph.inputs())[1:]:  # the first is the module itself
        t = v.type()
        sizes = t.sizes() if hasattr(t, "sizes") else None
        dtype = t.dtype() if hasattr(t, "dtype") else None
        inputs.append({"name": v.debugName(), "shape": list(sizes) if sizes else None,
                       "dtype": str(dtype).replace("torch.", "") if dtype is not None else str(t)})
    ops = [n.kind() for n in module.inlined_graph.nodes() if not n.kind().startswith("prim::")]
    return {"inputs": inputs, "outputs": [], "ops": ops,
            "note": "TorchScript does not record input shapes; export with torch.export (.pt2) to have them"}


def _torch_export(program: Any) -> dict[str, Any]:
    user_inputs = set(program.graph_signature.user_inputs)
    user_outputs = list(program.graph_signature.user_outputs)
    inputs, outputs, ops = [], [], []
    for node in program.graph.nodes:
        val = node.meta.get("val")
        if node.op == "placeholder" and node.name in user_inputs:
            inputs.append(_fake(node.name, val))
        elif node.op == "call_function":
            ops.append(str(getattr(node.target, "__name__", node.target)))
        elif node.op == "output":
            vals = node.args[0] if node.args else []
            for name, v in zip(user_outputs, vals, strict=False):
                outputs.append(_fake(str(name), getattr(v, "meta", {}).get("val")))
    return {"inputs": inputs, "outputs": outputs, "ops": ops}


def _fake(name: str, val: Any) -> dict[str, Any]:
    shape = [int(d) if str(d).lstrip("-").isdigit() else str(d) for d in val.shape] if hasattr(val, "shape") else None
    dtype = str(val.dtype).replace("torch.", "") if hasattr(val, "dtype") else "unknown"
    return {"name": name, "shape": shape, "dtype": dtype}


def _read_head(path: Path, n: int) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(n)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read it ({exc.strerror or exc})") from exc


# ---------------------------------------------------------------- entry points


def inspect_model(path: Path) -> dict[str, Any]:
    """Everything ``hilbench inspect`` says about ``path``, as a JSON-able dict. Raises ModelError (one line
    naming the file) for a missing, unknown or unreadable model."""
    path = Path(path)
    suffix = path.suffix.lower()
    fmt = FORMATS.get(suffix)
    if not path.exists():
        raise ModelError(f"{path}: model file not found")
    if suffix == ".ort":
        raise ModelError(f"{path}: an ONNX Runtime (ORT format) model, which inspect does not read: inspect the .onnx "
                         "it was converted from")
    if fmt is None:
        raise ModelError(f"{path}: unknown model format {suffix or '(no suffix)'} "
                         f"(known: {', '.join(sorted(FORMATS))})")
    if path.is_dir() and suffix != ".mlpackage":
        raise ModelError(f"{path}: a folder, not a model file")
    if path.is_file() and path.stat().st_size == 0:
        raise ModelError(f"{path}: empty file")
    readers = {"tflite": _inspect_tflite, "onnx": _inspect_onnx, "tensorrt-engine": _inspect_engine,
               "coreml": _inspect_coreml, "torchscript": _inspect_torch, "torch-export": _inspect_torch}
    info = readers[fmt](path)
    ops = info.pop("ops")
    out: dict[str, Any] = {"file": str(path), "format": fmt, "size_bytes": _size(path),
                           "inputs": info.pop("inputs"), "outputs": info.pop("outputs"),
                           "ops_total": len(ops), "op_histogram": dict(Counter(ops).most_common())}
    out["quantization"] = info.pop("quantization", None) or {
        "quantized": None, "symmetric": None, "source": f"not read for {fmt} models"}
    out.update(info)
    return out


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _shape(shape: Any) -> str:
    if shape is None:
        return "?"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def format_inspection(info: dict[str, Any], fmt: str = "table") -> str:
    """``info`` from :func:`inspect_model` as JSON or as a table for people."""
    if fmt == "json":
        return json.dumps(info, indent=2, sort_keys=False) + "\n"
    lines = [f"{info['file']}: {info['format']}, {info['size_bytes'] / 1024:.1f} KiB"]
    for key in ("inputs", "outputs"):
        for t in info[key]:
            q = t.get("quantization")
            qtext = f"  (scale {q['scale'][0]:.6g}, zero point {q['zero_point'][0]})" if q and q["scale"] else ""
            lines.append(f"  {key[:-1]:6} {t['name']}  {t['dtype']} {_shape(t['shape'])}{qtext}")
    if "tensorrt_version" in info:
        lines.append(f"  tensorrt version {info['tensorrt_version']}  ({info['tensorrt_version_source']})")
    hist = info["op_histogram"]
    if hist:
        shown = ", ".join(f"{op} {n}" for op, n in list(hist.items())[:12])
        more = f", ... ({len(hist) - 12} more kinds)" if len(hist) > 12 else ""
        lines.append(f"  ops    {info['ops_total']}: {shown}{more}")
    q = info["quantization"]
    if q.get("quantized"):
        sym = {True: "symmetric (every zero point 0)", False: "asymmetric", None: "unknown"}[q["symmetric"]]
        zps = ", ".join(str(z) for z in q["zero_points"][:8]) + (", ..." if len(q["zero_points"]) > 8 else "")
        lines.append(f"  quant  {q['tensors']} quantized tensors, {sym}; "
                     f"{q['nonzero_zero_point_tensors']} with a zero point other than 0; zero points: {zps}")
    elif q.get("quantized") is False:
        lines.append("  quant  none (float model)")
    else:
        lines.append(f"  quant  {q['source']}")
    e = info.get("edgetpu")
    if e is not None:
        if e["compiled"]:
            cpu = f"; left on the CPU: {', '.join(e['cpu_ops'])}" if e["cpu_ops"] else ""
            lines.append(f"  edgetpu compiled: {e['ops_tpu']} edgetpu-custom-op node(s), {e['ops_cpu']} op(s) on "
                         f"the CPU{cpu}")
        else:
            lines.append(f"  edgetpu not compiled for the Edge TPU: all {e['ops_cpu']} ops run on the CPU "
                         "(compile it with edgetpu_compiler)")
    if info.get("note"):
        lines.append(f"  note   {info['note']}")
    return "\n".join(lines) + "\n"
