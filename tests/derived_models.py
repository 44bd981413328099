"""Models derived from ST's real weights with other keypoint layouts, for the K x D tests.

A GATHER appended to the output picks rows: the box and score (0-4), then the chosen keypoints'
values. The values are copied, not recomputed, so the derived model's poses are the original's
on the same keypoints, exactly. Built with LiteRT's own flatbuffer object API.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

BOX_ROWS = [0, 1, 2, 3, 4]
TIE_BREAK = 1e-7  # per anchor; the int8 model's scores are a step of about 1/256 apart


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


# Ultralytics' layouts, built on ST's 256 model by appending (or prepending) operators; each
# keeps the original's numbers (to float rounding, or the int8 output's step).


def load(source: Path) -> schema.ModelT:
    """A TFLite file as LiteRT's flatbuffer object tree."""
    return schema.ModelT.InitFromPackedBuf(source.read_bytes(), 0)


def save(model: schema.ModelT, dest: Path, metadata: dict | None = None) -> Path:
    """Write the model; with metadata, append it as Ultralytics does (a zip holding
    metadata.json)."""
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dest.write_bytes(bytes(builder.Output()))
    if metadata is not None:
        with zipfile.ZipFile(dest, "a") as archive:
            archive.writestr("metadata.json", json.dumps(metadata))
    return dest


def output_shape(model: schema.ModelT) -> list[int]:
    """The shape of the model's output."""
    graph = model.subgraphs[0]
    return [int(v) for v in graph.tensors[graph.outputs[0]].shape]


def append_op(model: schema.ModelT, builtin: int, inputs: list[int], shape: list[int],
              dtype: int = schema.TensorType.FLOAT32, options=None) -> int:  # fmt: skip
    """Append an operator on `inputs` with one new output tensor of `shape`; its index."""
    output = _tensor(model, shape, dtype, f"op{len(model.subgraphs[0].operators)}")
    _add_op(model, builtin, inputs, [output], options)
    return output


def _add_op(model: schema.ModelT, builtin: int, inputs: list[int], outputs: list[int],
            options=None, first: bool = False) -> None:  # fmt: skip
    """Add an operator (at the end, or the start) with its options object, if any."""
    op = schema.OperatorT()
    op.opcodeIndex = _opcode(model, builtin)
    op.inputs, op.outputs = inputs, outputs
    if options is not None:
        name = type(options).__name__.removesuffix("T")
        op.builtinOptionsType = getattr(schema.BuiltinOptions, name)
        op.builtinOptions = options
    operators = model.subgraphs[0].operators
    operators.insert(0, op) if first else operators.append(op)


def set_output(model: schema.ModelT, tensor: int) -> None:
    """Make `tensor` the model's one output."""
    model.subgraphs[0].outputs = [tensor]
    for signature in model.signatureDefs or []:
        for item in signature.outputs:
            item.tensorIndex = tensor


def constant(model: schema.ModelT, values: np.ndarray, name: str) -> int:
    """Append a constant tensor (int32, float32 or bool) holding values; its index."""
    types = {np.dtype(np.int32): schema.TensorType.INT32,
             np.dtype(np.float32): schema.TensorType.FLOAT32}  # fmt: skip
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(values.tobytes(), np.uint8)
    model.buffers.append(buffer)
    return _tensor(model, list(values.shape), types[values.dtype], name, len(model.buffers) - 1)


def transpose_output(source: Path, dest: Path) -> Path:
    """(1, C, F) -> (1, F, C), as some exports give it."""
    model = load(source)
    _, rows, anchors = output_shape(model)
    perm = constant(model, np.array([0, 2, 1], np.int32), "perm")
    out = append_op(model, schema.BuiltinOperator.TRANSPOSE,
                    [model.subgraphs[0].outputs[0], perm], [1, anchors, rows])  # fmt: skip
    set_output(model, out)
    return save(model, dest)


def int8_output(source: Path, dest: Path, scale: float, zero: int = 0) -> Path:
    """The output quantized to int8 with this scale and zero point."""
    model = load(source)
    out = append_op(model, schema.BuiltinOperator.QUANTIZE, [model.subgraphs[0].outputs[0]],
                    output_shape(model), schema.TensorType.INT8)  # fmt: skip
    quantization = schema.QuantizationParametersT()
    quantization.scale, quantization.zeroPoint = [scale], [zero]
    model.subgraphs[0].tensors[out].quantization = quantization
    set_output(model, out)
    return save(model, dest)


def scaled_rows(source: Path, dest: Path, factors: np.ndarray) -> Path:
    """Each output row multiplied by its factor (keypoint x, y by the input size: pixels)."""
    model = load(source)
    shape = output_shape(model)
    weights = constant(model, factors.astype(np.float32).reshape(1, -1, 1), "row_scale")
    out = append_op(model, schema.BuiltinOperator.MUL, [model.subgraphs[0].outputs[0], weights],
                    shape, options=schema.MulOptionsT())  # fmt: skip
    set_output(model, out)
    return save(model, dest)


def with_rows(source: Path, dest: Path, rows: list[int], metadata: dict) -> Path:
    """`gather_rows` with Ultralytics metadata appended (class names, kpt_shape)."""
    gather_rows(source, dest, rows)
    return save(load(dest), dest, metadata)


def nchw_float_input(source: Path, dest: Path) -> Path:
    """A float32 (1, 3, N, M) input of 0..1 values, transposed and quantized to the original's
    uint8 input in the graph (Ultralytics LiteRT exports take NCHW floats)."""
    model = load(source)
    graph = model.subgraphs[0]
    old = graph.inputs[0]
    _, height, width, channels = (int(v) for v in graph.tensors[old].shape)
    nchw = _tensor(model, [1, channels, height, width], schema.TensorType.FLOAT32, "images")
    nhwc = _tensor(model, [1, height, width, channels], schema.TensorType.FLOAT32, "nhwc")
    perm = constant(model, np.array([0, 2, 3, 1], np.int32), "to_nhwc")
    _add_op(model, schema.BuiltinOperator.QUANTIZE, [nhwc], [old], first=True)
    _add_op(model, schema.BuiltinOperator.TRANSPOSE, [nchw, perm], [nhwc], first=True)
    graph.inputs = [nchw]
    for signature in model.signatureDefs or []:
        for item in signature.inputs:
            item.tensorIndex = nchw
    return save(model, dest)


def end_to_end(source: Path, dest: Path, keep: int = 300, iou: float = 0.7) -> Path:
    """An end-to-end (1, keep, 6 + K*D) output: x1 y1 x2 y2, score, class 0, keypoints of the
    people TFLite's own NMS keeps, zero rows after them (Ultralytics' nms=True exports). The
    NMS ranks equal scores by anchor, as posecli's stable sort does (a ramp far below the
    scores' step)."""
    model = load(source)
    _, rows, anchors = output_shape(model)
    values = rows + 1
    op = schema.BuiltinOperator
    perm = constant(model, np.array([0, 2, 1], np.int32), "perm")
    flat = append_op(model, op.TRANSPOSE, [model.subgraphs[0].outputs[0], perm],
                     [1, anchors, rows])  # fmt: skip
    flat = append_op(model, op.RESHAPE, [flat, constant(model, np.array([anchors, rows], np.int32),
                     "flat")], [anchors, rows])  # fmt: skip
    dets = append_op(model, op.FULLY_CONNECTED, [flat, constant(model, _e2e_weights(rows), "w"),
                     -1], [anchors, values], options=schema.FullyConnectedOptionsT())  # fmt: skip
    yxyx = append_op(model, op.GATHER, [dets, constant(model, np.array([1, 0, 3, 2], np.int32),
                     "yxyx")], [anchors, 4], options=_axis(1))  # fmt: skip
    scores = append_op(model, op.GATHER, [dets, constant(model, np.array(4, np.int32), "score")],
                       [anchors], options=_axis(1))  # fmt: skip
    ramp = constant(model, np.arange(anchors, dtype=np.float32) * TIE_BREAK, "ties")
    scores = append_op(model, op.SUB, [scores, ramp], [anchors], options=schema.SubOptionsT())
    limits = [constant(model, np.array(keep, np.int32), "keep"),
              constant(model, np.array(iou, np.float32), "iou"),
              constant(model, np.array(0.001, np.float32), "min_score")]  # fmt: skip
    selected = _tensor(model, [keep], schema.TensorType.INT32, "selected")
    valid = _tensor(model, [], schema.TensorType.INT32, "valid")
    _add_op(model, op.NON_MAX_SUPPRESSION_V4, [yxyx, scores, *limits], [selected, valid],
            schema.NonMaxSuppressionV4OptionsT())  # fmt: skip
    kept = append_op(model, op.GATHER, [dets, selected], [keep, values], options=_axis(0))
    index = constant(model, np.arange(keep, dtype=np.int32), "index")
    live = append_op(model, op.LESS, [index, valid], [keep], schema.TensorType.BOOL)
    mask = append_op(model, op.CAST, [live], [keep])
    mask = append_op(model, op.RESHAPE, [mask, constant(model, np.array([keep, 1], np.int32),
                     "column")], [keep, 1])  # fmt: skip
    kept = append_op(model, op.MUL, [kept, mask], [keep, values], options=schema.MulOptionsT())
    out = append_op(model, op.RESHAPE, [kept, constant(model, np.array([1, keep, values],
                    np.int32), "batch")], [1, keep, values])  # fmt: skip
    set_output(model, out)
    return save(model, dest)


def _e2e_weights(rows: int) -> np.ndarray:
    """(rows + 1, rows) fully-connected weights: cx cy w h score kpts -> x1 y1 x2 y2 score 0
    kpts."""
    weights = np.zeros((rows + 1, rows), np.float32)
    for corner, sign in ((0, -0.5), (2, 0.5)):
        weights[corner, 0] = weights[corner + 1, 1] = 1
        weights[corner, 2] = weights[corner + 1, 3] = sign
    weights[4, 4] = 1
    weights[6:, 5:] = np.eye(rows - 5, dtype=np.float32)
    return weights


def _axis(axis: int) -> schema.GatherOptionsT:
    """GATHER's options for this axis."""
    options = schema.GatherOptionsT()
    options.axis = axis
    return options
