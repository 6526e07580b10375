"""Writes tiny .tflite flatbuffers in the Edge TPU compiler's output format, with the TFLite schema's own bindings
(LiteRT's ``schema_py_generated`` object API and the ``flatbuffers`` builder), for ``hilbench inspect`` and the
Edge TPU rules' tests.

A compiled model is what ``edgetpu_compiler`` writes: each part of the graph it mapped to the Edge TPU becomes one
``CUSTOM`` operator with custom code ``edgetpu-custom-op`` (its options carry the TPU executable), and the ops it
could not map stay builtin ops around it. These fixtures carry a stand-in payload, not a real Edge TPU executable:
they load into LiteRT only with the delegate, and no real Edge TPU could run them.

    python3 tests/support/edgetpu_model.py OUT_DIR     # writes edgetpu_compiled.tflite and edgetpu_plain.tflite
"""

from __future__ import annotations

import sys
from pathlib import Path

STANDIN_PAYLOAD = b"hilbench stand-in: not an Edge TPU executable"


def _schema():
    from harness.prep.inspect import tflite_schema

    return tflite_schema()


def build(compiled: bool = True, tpu_ops: int = 1, description: str = "hilbench Edge TPU fixture (stand-in)") -> bytes:
    """float32 [1, 4] -> QUANTIZE -> (``tpu_ops`` x edgetpu-custom-op, uint8) -> DEQUANTIZE -> LOGISTIC.
    ``compiled=False``: the same chain with the custom ops replaced by RELU (a plain, float model)."""
    import flatbuffers

    s = _schema()
    model = s.ModelT()
    model.version = 3
    model.description = description
    model.buffers = [s.BufferT()]  # buffer 0: the empty one every model starts with

    def code(builtin, custom=None):
        c = s.OperatorCodeT()
        c.builtinCode = builtin
        c.deprecatedBuiltinCode = min(builtin, 127)
        c.version = 1
        if custom:
            c.customCode = custom
        return c

    B = s.BuiltinOperator
    model.operatorCodes = [code(B.QUANTIZE), code(B.DEQUANTIZE), code(B.LOGISTIC),
                           code(B.CUSTOM, "edgetpu-custom-op") if compiled else code(B.RELU)]
    sg = s.SubGraphT()
    sg.name = "main"
    sg.tensors = []

    def tensor(name, dtype, quant=None):
        t = s.TensorT()
        t.name = name
        t.shape = [1, 4]
        t.type = dtype
        t.buffer = 0
        if quant:
            q = s.QuantizationParametersT()
            q.scale, q.zeroPoint = [quant[0]], [quant[1]]
            t.quantization = q
        sg.tensors.append(t)
        return len(sg.tensors) - 1

    T = s.TensorType
    inner = (T.UINT8, (1 / 255.0, 0)) if compiled else (T.FLOAT32, None)
    x = tensor("input", T.FLOAT32)
    prev = tensor("quantized", inner[0], inner[1]) if compiled else x
    ops = []

    def op(index, inputs, outputs, custom=False):
        o = s.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = index, inputs, outputs
        if custom:
            o.customOptions = list(STANDIN_PAYLOAD)
            o.customOptionsFormat = s.CustomOptionsFormat.FLEXBUFFERS
        ops.append(o)

    if compiled:
        op(0, [x], [prev])
    for i in range(tpu_ops):
        out = tensor(f"tpu_{i}" if compiled else f"relu_{i}", inner[0], inner[1])
        op(3, [prev], [out], custom=compiled)
        prev = out
    if compiled:
        deq = tensor("dequantized", T.FLOAT32)
        op(1, [prev], [deq])
        prev = deq
    y = tensor("output", T.FLOAT32)
    op(2, [prev], [y])
    sg.inputs, sg.outputs, sg.operators = [x], [y], ops
    model.subgraphs = [sg]
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def write(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    compiled, plain = folder / "edgetpu_compiled.tflite", folder / "edgetpu_plain.tflite"
    compiled.write_bytes(build(compiled=True))
    plain.write_bytes(build(compiled=False))
    return compiled, plain


if __name__ == "__main__":
    for p in write(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
        print(p)
