"""Writes tiny TFLite models with a chosen input and constant output, for layouts and errors.

The model has a uint8 image input and one constant float32 output; no operators. Built with
the flatbuffers package against the TFLite schema (Model, SubGraph, Tensor, Buffer tables).
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np

FLOAT32, UINT8 = 0, 3


def _int_vector(builder: flatbuffers.Builder, values: list[int]) -> int:
    builder.StartVector(4, len(values), 4)
    for v in reversed(values):
        builder.PrependInt32(v)
    return builder.EndVector()


def _offset_vector(builder: flatbuffers.Builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        builder.PrependUOffsetTRelative(off)
    return builder.EndVector()


def _tensor(builder, shape: list[int], dtype: int, buffer: int, name: str) -> int:
    name_off = builder.CreateString(name)
    shape_off = _int_vector(builder, shape)
    builder.StartObject(4)
    builder.PrependUOffsetTRelativeSlot(0, shape_off, 0)
    builder.PrependInt8Slot(1, dtype, 0)
    builder.PrependUint32Slot(2, buffer, 0)
    builder.PrependUOffsetTRelativeSlot(3, name_off, 0)
    return builder.EndObject()


def _buffer(builder, data: bytes | None) -> int:
    data_off = builder.CreateByteVector(data) if data else None
    builder.StartObject(1)
    if data_off is not None:
        builder.PrependUOffsetTRelativeSlot(0, data_off, 0)
    return builder.EndObject()


def write_constant_model(
    path: Path,
    input_size: int | tuple[int, int],
    output_shape: list[int],
    output: np.ndarray | None = None,
) -> Path:
    """A model with a uint8 (1, N, M, 3) input (S: S x S) and a float32 constant output."""
    height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
    builder = flatbuffers.Builder(1024)
    values = np.zeros(output_shape, np.float32) if output is None else output
    const = values.astype(np.float32).reshape(output_shape).tobytes()
    buffers = [_buffer(builder, None), _buffer(builder, None), _buffer(builder, const)]
    tensors = [
        _tensor(builder, [1, height, width, 3], UINT8, 1, "images"),
        _tensor(builder, output_shape, FLOAT32, 2, "output"),
    ]
    tensors_off = _offset_vector(builder, tensors)
    inputs_off, outputs_off = _int_vector(builder, [0]), _int_vector(builder, [1])
    operators_off = _offset_vector(builder, [])
    builder.StartObject(5)
    builder.PrependUOffsetTRelativeSlot(0, tensors_off, 0)
    builder.PrependUOffsetTRelativeSlot(1, inputs_off, 0)
    builder.PrependUOffsetTRelativeSlot(2, outputs_off, 0)
    builder.PrependUOffsetTRelativeSlot(3, operators_off, 0)
    subgraph = builder.EndObject()
    subgraphs_off = _offset_vector(builder, [subgraph])
    buffers_off = _offset_vector(builder, buffers)
    codes_off = _offset_vector(builder, [])
    builder.StartObject(5)
    builder.PrependUint32Slot(0, 3, 0)
    builder.PrependUOffsetTRelativeSlot(1, codes_off, 0)
    builder.PrependUOffsetTRelativeSlot(2, subgraphs_off, 0)
    builder.PrependUOffsetTRelativeSlot(4, buffers_off, 0)
    model = builder.EndObject()
    builder.Finish(model, file_identifier=b"TFL3")
    path.write_bytes(builder.Output())
    return path
