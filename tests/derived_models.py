"""Models derived from ST's real weights with other keypoint layouts, for the K x D tests.

A GATHER appended to the output picks rows: the box and score (0-4), then the chosen keypoints'
values. The values are copied, not recomputed, so the derived model's poses are the original's
on the same keypoints, exactly. Built with LiteRT's own flatbuffer object API.
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

BOX_ROWS = [0, 1, 2, 3, 4]


def keypoint_rows(keypoints: list[int], dims: int = 3) -> list[int]:
    """Output rows of the 17-keypoint model for these keypoints: (x, y[, conf]) each, in order."""
    return BOX_ROWS + [5 + 3 * k + d for k in keypoints for d in range(dims)]


def gather_rows(source: Path, dest: Path, rows: list[int]) -> Path:
    """Copy a TFLite pose model with a GATHER (axis 1) keeping `rows` of its (1, R, F) output."""
    model = schema.ModelT.InitFromPackedBuf(source.read_bytes(), 0)
    graph = model.subgraphs[0]
    old_output = graph.outputs[0]
    shape = [int(v) for v in graph.tensors[old_output].shape]
    indices = _constant_tensor(model, np.array(rows, np.int32), "kept_rows")
    output = _tensor(model, [shape[0], len(rows), shape[2]], schema.TensorType.FLOAT32, "rows")
    op = schema.OperatorT()
    op.opcodeIndex = _opcode(model, schema.BuiltinOperator.GATHER)
    op.inputs, op.outputs = [old_output, indices], [output]
    op.builtinOptionsType = schema.BuiltinOptions.GatherOptions
    op.builtinOptions = schema.GatherOptionsT()
    op.builtinOptions.axis = 1
    graph.operators.append(op)
    graph.outputs = [output]
    for signature in model.signatureDefs or []:
        for item in signature.outputs:
            item.tensorIndex = output
    builder = flatbuffers.Builder(len(source.read_bytes()) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dest.write_bytes(bytes(builder.Output()))
    return dest


def _tensor(model: schema.ModelT, shape: list[int], dtype: int, name: str, buffer=None) -> int:
    """Append a tensor (with a new empty buffer unless one is given); its index."""
    graph = model.subgraphs[0]
    tensor = schema.TensorT()
    tensor.shape, tensor.type, tensor.name = shape, dtype, name
    if buffer is None:
        model.buffers.append(schema.BufferT())
        buffer = len(model.buffers) - 1
    tensor.buffer = buffer
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _constant_tensor(model: schema.ModelT, values: np.ndarray, name: str) -> int:
    """Append a constant int32 tensor holding values; its index."""
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(values.tobytes(), np.uint8)
    model.buffers.append(buffer)
    return _tensor(model, list(values.shape), schema.TensorType.INT32, name,
                   len(model.buffers) - 1)  # fmt: skip


def _opcode(model: schema.ModelT, builtin: int) -> int:
    """Index of the operator code for a builtin op, added if the model has none."""
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = builtin
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1
