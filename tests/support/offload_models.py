"""Models for the offload tests, written here from the bundled samples: a ``.tflite`` with one op XNNPACK does not
take (``ZEROS_LIKE``, which LiteRT's builtin kernels run) inserted into the graph, so the real interpreter splits
the model into XNNPACK partitions around a node left on the CPU. Written with the LiteRT flatbuffer schema's
object API (``ai_edge_litert.schema_py_generated``) and ``flatbuffers``."""

from __future__ import annotations

import copy
from pathlib import Path


def tflite_with_cpu_op(source: Path, target: Path, after: int) -> Path:
    """``source`` with a ZEROS_LIKE node inserted after operator ``after`` (its output feeds the zeros-like, whose
    output replaces it for every later consumer and the graph's outputs)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(source.read_bytes(), 0)
    graph = model.subgraphs[0]
    produced = graph.operators[after].outputs[0]
    tensor = copy.deepcopy(graph.tensors[produced])
    tensor.name = b"zeros_like_out"
    tensor.buffer = 0  # the empty buffer: computed, not constant
    graph.tensors.append(tensor)
    new = len(graph.tensors) - 1
    for op in graph.operators[after + 1:]:
        op.inputs = [new if int(t) == produced else int(t) for t in op.inputs]
    graph.outputs = [new if int(t) == produced else int(t) for t in graph.outputs]
    for signature in model.signatureDefs or []:
        for out in signature.outputs:
            if out.tensorIndex == produced:
                out.tensorIndex = new
    code = schema.OperatorCodeT()
    code.builtinCode = schema.BuiltinOperator.ZEROS_LIKE
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    code.version = 1
    model.operatorCodes.append(code)
    op = schema.OperatorT()
    op.opcodeIndex = len(model.operatorCodes) - 1
    op.inputs = [produced]
    op.outputs = [new]
    op.builtinOptionsType = schema.BuiltinOptions.ZerosLikeOptions
    op.builtinOptions = schema.ZerosLikeOptionsT()
    graph.operators.insert(after + 1, op)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    target.write_bytes(builder.Output())
    return target
